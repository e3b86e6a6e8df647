//! Ingestion requests shaped the way Segment's SDKs and Webhooks destination send them, taken
//! through the public `server::ingest` API in the order the HTTP server calls it.

use std::io::Write as _;

use base64::Engine as _;
use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use ring::hmac;
use serde_json::{Value, json};
use server::ingest::{
    self, CallKind, IngestError, IngestLimits, Item, Parsed, Signed, basic_auth_user, decode_body,
    parse_tracking, parse_webhook, verify_signature,
};

const WRITE_KEY: &str = "wk_live_4f2a9c";

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(data).expect("write to a Vec");
    encoder.finish().expect("finish a Vec")
}

fn basic(user_and_password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(user_and_password);
    format!("Basic {encoded}")
}

/// What the server does with a tracking request, up to the write key it looks up.
fn receive(
    kind: CallKind,
    authorization: Option<&str>,
    content_encoding: Option<&str>,
    raw: Vec<u8>,
) -> Result<(String, Parsed), IngestError> {
    let limits = IngestLimits::default();
    let header_key = basic_auth_user(authorization)?;
    let body = decode_body(content_encoding, Bytes::from(raw), limits.max_batch_bytes)?;
    let parsed = parse_tracking(kind, &body, &limits)?;
    let key = header_key
        .or_else(|| parsed.write_key.clone())
        .ok_or(IngestError::MissingWriteKey)?;
    Ok((key, parsed))
}

/// The events of a parse, as JSON (parsed from their text on the batch's fast path).
fn events(parsed: &Parsed) -> Vec<Value> {
    parsed
        .items
        .iter()
        .filter_map(|item| match item {
            Item::Event { event, .. } => Some(event.to_value().expect("an event's text is JSON")),
            Item::Invalid { .. } => None,
        })
        .collect()
}

#[test]
fn analytics_python_gzipped_batch() {
    // analytics-python: writeKey and sentAt in the body, Basic auth, optional gzip.
    let body = json!({
        "batch": [{
            "type": "identify",
            "userId": "u1",
            "traits": {"vip": true, "email": "ann@example.com"},
            "context": {"library": {"name": "analytics-python", "version": "2.3.3"}},
            "timestamp": "2024-05-01T10:00:00.000000+00:00",
            "messageId": "0b3d2f2e-7c1f-4a55-9d7b-6a5b8f0d1e23",
            "integrations": {},
        }],
        "sentAt": "2024-05-01T10:00:01.000000+00:00",
        "writeKey": WRITE_KEY,
    });
    let raw = gzip(body.to_string().as_bytes());
    let header = basic(&format!("{WRITE_KEY}:"));
    let (key, parsed) =
        receive(CallKind::Batch, Some(&header), Some("gzip"), raw).expect("accepted");
    assert_eq!(key, WRITE_KEY);
    assert_eq!(
        parsed.sent_at.as_deref(),
        Some("2024-05-01T10:00:01.000000+00:00")
    );
    assert_eq!(parsed.items.len(), 1);
    assert_eq!(
        parsed.items[0].message_id(),
        Some("0b3d2f2e-7c1f-4a55-9d7b-6a5b8f0d1e23")
    );
    let stored = events(&parsed);
    assert_eq!(stored[0]["traits"]["email"], "ann@example.com");
    assert!(!stored[0].to_string().contains(WRITE_KEY));
}

#[test]
fn analytics_node_batch_with_a_bad_event() {
    // @segment/analytics-node: {batch, writeKey, sentAt}; the key is also in Basic auth.
    let body = json!({
        "batch": [
            {"type": "track", "event": "Audience Entered", "userId": "u1", "messageId": "node-1",
             "properties": {"audience_key": "vip", "vip": true}},
            {"type": ["track"], "userId": "u2", "messageId": "node-2"},
            {"type": "track", "event": "Audience Exited", "userId": "u3"},
        ],
        "writeKey": WRITE_KEY,
        "sentAt": "2024-05-01T10:00:01.000Z",
    });
    let header = basic(&format!("{WRITE_KEY}:"));
    let (_, parsed) = receive(
        CallKind::Batch,
        Some(&header),
        None,
        body.to_string().into(),
    )
    .expect("the batch is accepted");
    assert_eq!(parsed.items.len(), 3);
    assert!(matches!(
        &parsed.items[1],
        Item::Invalid { index: 1, message_id: Some(id), reason }
            if id == "node-2" && reason == "batch[1].type: expected a string, got an array"
    ));
    let synthesized = parsed.items[2].message_id().expect("an id");
    assert!(synthesized.starts_with(ingest::SYNTHETIC_MESSAGE_ID_PREFIX));
    assert_eq!(events(&parsed).len(), 2);
}

#[test]
fn a_body_write_key_without_a_header_and_refusals() {
    let body = json!({"userId": "u1", "traits": {"vip": true}, "writeKey": WRITE_KEY});
    let (key, parsed) =
        receive(CallKind::Identify, None, None, body.to_string().into()).expect("identify");
    assert_eq!(key, WRITE_KEY);
    assert_eq!(events(&parsed)[0]["type"], "identify");

    let no_key = receive(CallKind::Track, None, None, br#"{"event":"x"}"#.to_vec());
    assert_eq!(no_key.map(|_| ()), Err(IngestError::MissingWriteKey));

    let malformed =
        receive(CallKind::Batch, None, None, br#"{"batch": [}"#.to_vec()).expect_err("malformed");
    assert_eq!(malformed.status(), 400);
    let answer: Value = serde_json::from_slice(&malformed.body()).expect("JSON");
    assert_eq!(
        answer,
        json!({"success": false, "code": "malformed_json",
               "message": "malformed JSON at line 1 column 12: expected value"})
    );

    let brotli = receive(CallKind::Batch, None, Some("br"), b"{}".to_vec()).expect_err("br");
    assert_eq!(brotli.status(), 415);
    assert_eq!(
        serde_json::from_slice::<Value>(ingest::success_body()).expect("JSON"),
        json!({"success": true})
    );
}

#[test]
fn webhooks_actions_batch_signed_on_its_first_event() {
    let secret = b"shared-secret";
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let first = json!({"type": "identify", "userId": "u1", "messageId": "w1"}).to_string();
    let second = json!({"type": "identify", "userId": "u2", "messageId": "w2"}).to_string();
    let body = format!("[{first},{second}]");
    let hex = |tag: hmac::Tag| {
        tag.as_ref()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect::<String>()
    };
    let signature = hex(hmac::sign(&key, first.as_bytes()));
    assert_eq!(
        verify_signature(secret, body.as_bytes(), Some(&signature)),
        Ok(Signed::FirstEvent)
    );
    let whole = hex(hmac::sign(&key, body.as_bytes()));
    assert_eq!(
        verify_signature(secret, body.as_bytes(), Some(&whole)),
        Ok(Signed::Body)
    );
    assert_eq!(
        verify_signature(b"wrong", body.as_bytes(), Some(&whole)),
        Err(IngestError::BadSignature)
    );
    let parsed = parse_webhook(body.as_bytes(), &IngestLimits::default()).expect("parsed");
    let ids: Vec<_> = parsed.items.iter().filter_map(Item::message_id).collect();
    assert_eq!(ids, ["w1", "w2"]);
}
