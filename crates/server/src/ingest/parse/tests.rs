//! The ingestion bodies refused as a whole, and the ones read event by event: single calls,
//! batches and webhooks, write keys taken out, and keys kept out of error messages.

use serde_json::json;

use super::*;
use crate::ingest::error::cut;
use crate::ingest::test_support::{KEY, event, limits, parse, reason};

#[test]
fn refused_requests() {
    let small = IngestLimits {
        max_event_bytes: 100,
        max_call_bytes: 60,
        max_batch_bytes: 120,
        max_batch_events: 2,
    };
    let cases: &[(CallKind, &str, u16, &str, &str)] = &[
        (
            CallKind::Batch,
            "",
            400,
            "invalid_body",
            "body is empty: expected a JSON object",
        ),
        (
            CallKind::Batch,
            " \n",
            400,
            "invalid_body",
            "body is empty: expected a JSON object",
        ),
        (
            CallKind::Batch,
            "{",
            400,
            "malformed_json",
            "malformed JSON at line 1 column 1: EOF while parsing an object",
        ),
        (
            CallKind::Batch,
            "{\"batch\":[}",
            400,
            "malformed_json",
            "malformed JSON at line 1 column 11: expected value",
        ),
        (
            CallKind::Batch,
            "{}\n{}",
            400,
            "malformed_json",
            "malformed JSON at line 2 column 1: trailing characters",
        ),
        (
            CallKind::Batch,
            "{\"a\":\"\\q\"}",
            400,
            "malformed_json",
            "malformed JSON at line 1 column 8: invalid escape",
        ),
        (
            CallKind::Batch,
            "\u{feff}{}",
            400,
            "malformed_json",
            "malformed JSON at line 1 column 1: expected value",
        ),
        (
            CallKind::Batch,
            "[]",
            400,
            "invalid_body",
            "body: expected a JSON object, got an array",
        ),
        (
            CallKind::Batch,
            "\"x\"",
            400,
            "invalid_body",
            "body: expected a JSON object, got a string",
        ),
        (
            CallKind::Batch,
            "null",
            400,
            "invalid_body",
            "body: expected a JSON object, got null",
        ),
        (
            CallKind::Batch,
            "{}",
            400,
            "invalid_body",
            "batch: required, an array of events: {\"batch\": [...]}",
        ),
        (
            CallKind::Batch,
            "{\"batch\":null}",
            400,
            "invalid_body",
            "batch: required, an array of events",
        ),
        (
            CallKind::Batch,
            "{\"batch\":{}}",
            400,
            "invalid_body",
            "batch: expected an array of events, got an object",
        ),
        (
            CallKind::Batch,
            "{\"batch\":[{},{},{}]}",
            400,
            "too_many_events",
            "batch: 3 events is over the limit of 2 per batch",
        ),
        (
            CallKind::Batch,
            "{\"batch\":[],\"writeKey\":5}",
            400,
            "invalid_body",
            "writeKey: expected a string, got a number",
        ),
        (
            CallKind::Batch,
            "{\"batch\":[],\"context\":\"x\"}",
            400,
            "invalid_body",
            "context: expected an object, got a string",
        ),
        (
            CallKind::Batch,
            "{\"batch\":[],\"integrations\":[1]}",
            400,
            "invalid_body",
            "integrations: expected an object, got an array",
        ),
        (
            CallKind::Batch,
            concat!(
                "{\"batch\":[",
                "{\"type\":\"identify\",\"userId\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"},",
                "{\"type\":\"identify\",\"userId\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}]}"
            ),
            400,
            "body_too_large",
            "request body is over the 120-byte limit",
        ),
        (
            CallKind::Identify,
            "{\"userId\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
            400,
            "body_too_large",
            "request body is over the 60-byte limit",
        ),
        (
            CallKind::Track,
            "[{\"event\":\"x\"}]",
            400,
            "invalid_body",
            "body: expected a JSON object, got an array",
        ),
        (
            CallKind::Identify,
            "{\"writeKey\":true}",
            400,
            "invalid_body",
            "writeKey: expected a string, got a boolean",
        ),
        (
            CallKind::Webhook,
            "1",
            400,
            "invalid_body",
            "body: expected an event object or an array of events, got a number",
        ),
        (
            CallKind::Webhook,
            "[{},{},{}]",
            400,
            "too_many_events",
            "body: 3 events is over the limit of 2 per batch",
        ),
        (
            CallKind::Webhook,
            "tru",
            400,
            "malformed_json",
            "malformed JSON at line 1 column 3: ",
        ),
    ];
    for (kind, body, status, code, message) in cases {
        let err = parse_tracking(*kind, body.as_bytes(), &small).expect_err(body);
        assert_eq!(err.status(), *status, "{body}: {err}");
        assert_eq!(err.code(), *code, "{body}: {err}");
        assert!(err.to_string().starts_with(message), "{body}: {err}");
    }
}

#[test]
fn deep_nesting_is_malformed_not_a_crash() {
    let deep = format!("{{\"batch\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
    let err = parse_tracking(CallKind::Batch, deep.as_bytes(), &limits()).expect_err("deep");
    assert_eq!(err.code(), "malformed_json");
    assert!(
        err.to_string().contains("recursion limit exceeded"),
        "{err}"
    );
}

#[test]
fn write_keys_are_taken_out_of_events() {
    let body = json!({
        "batch": [
            {"type": "identify", "messageId": "m0", "writeKey": KEY},
            {"type": 3, "messageId": "m1", "writeKey": KEY},
        ],
        "writeKey": KEY,
        "sentAt": 17,
    });
    let parsed = parse(CallKind::Batch, &body).expect("batch");
    assert_eq!(parsed.write_key.as_deref(), Some(KEY));
    assert_eq!(parsed.sent_at, None);
    let debug = format!("{parsed:?}");
    assert!(!debug.contains(KEY), "{debug}");
    assert!(debug.contains("<redacted>"), "{debug}");
    assert!(event(&parsed.items[0]).get("writeKey").is_none());
    assert!(!reason(&parsed.items[1]).contains(KEY));

    let call = parse(
        CallKind::Track,
        &json!({"event": "x", "writeKey": KEY, "sentAt": "s"}),
    )
    .expect("track");
    assert_eq!(call.write_key.as_deref(), Some(KEY));
    assert_eq!(call.sent_at.as_deref(), Some("s"));
    assert_eq!(
        event(&call.items[0]),
        json!({"event": "x", "sentAt": "s", "type": "track",
            "messageId": call.items[0].message_id()})
    );

    for body in [
        json!({"batch": []}),
        json!({"batch": [], "writeKey": ""}),
        json!({"batch": [], "writeKey": null}),
    ] {
        assert_eq!(
            parse(CallKind::Batch, &body).expect("batch").write_key,
            None,
            "{body}"
        );
    }
    // A webhook never yields a write key.
    let hook = parse_webhook(
        json!({"type": "identify", "writeKey": KEY})
            .to_string()
            .as_bytes(),
        &limits(),
    )
    .expect("hook");
    assert_eq!(hook.write_key, None);
    assert!(event(&hook.items[0]).get("writeKey").is_none());
}

#[test]
fn keys_never_appear_in_error_messages() {
    let bodies = [
        format!("{{\"writeKey\":\"{KEY}\",\"batch\":[}}"),
        format!("{{\"writeKey\":\"{KEY}\"}}"),
        format!("{{\"writeKey\":\"{KEY}\",\"batch\":\"x\"}}"),
        format!("{{\"writeKey\":\"{KEY}\",\"context\":\"x\",\"batch\":[]}}"),
        format!("[\"{KEY}\"]"),
        format!("\"{KEY}\""),
        format!("{{\"writeKey\":\"{KEY}\" \"batch\":[]}}"),
    ];
    for body in &bodies {
        for kind in [
            CallKind::Batch,
            CallKind::Identify,
            CallKind::Track,
            CallKind::Webhook,
        ] {
            match parse_tracking(kind, body.as_bytes(), &limits()) {
                Err(err) => {
                    assert!(!err.to_string().contains(KEY), "{kind:?} {body}: {err}");
                    assert!(!String::from_utf8_lossy(&err.body()).contains(KEY));
                }
                Ok(parsed) => {
                    for item in &parsed.items {
                        if let Item::Invalid { reason, .. } = item {
                            assert!(!reason.contains(KEY), "{reason}");
                        }
                    }
                    assert!(!format!("{parsed:?}").contains(KEY));
                }
            }
        }
    }
    for err in [IngestError::MissingWriteKey, IngestError::UnknownWriteKey] {
        assert_eq!(err.status(), 401);
    }
    assert_eq!(
        IngestError::MissingWriteKey.to_string(),
        "no write key: send HTTP Basic auth with the write key as username, or writeKey in the body"
    );
    assert_eq!(
        IngestError::UnknownWriteKey.to_string(),
        "the write key is not configured for any destination"
    );
}

#[test]
fn single_calls() {
    let cases: Vec<(CallKind, Value, Result<&str, &str>)> = vec![
        (CallKind::Identify, json!({"userId": "u"}), Ok("identify")),
        (
            CallKind::Identify,
            json!({"type": null, "userId": "u"}),
            Ok("identify"),
        ),
        (
            CallKind::Identify,
            json!({"type": "identify", "userId": "u"}),
            Ok("identify"),
        ),
        (
            CallKind::Track,
            json!({"event": "Audience Entered"}),
            Ok("track"),
        ),
        (CallKind::Track, json!({"type": "track"}), Ok("track")),
        (
            CallKind::Identify,
            json!({"type": "track"}),
            Err("type: /v1/identify takes \"identify\" events, got \"track\""),
        ),
        (
            CallKind::Track,
            json!({"type": "page"}),
            Err("type: /v1/track takes \"track\" events, got \"page\""),
        ),
        (
            CallKind::Track,
            json!({"type": "Track"}),
            Err("type: /v1/track takes \"track\" events, got \"Track\""),
        ),
        (
            CallKind::Track,
            json!({"type": ""}),
            Err("type: must not be empty"),
        ),
        (
            CallKind::Track,
            json!({"type": 1}),
            Err("type: expected a string, got a number"),
        ),
        (
            CallKind::Track,
            json!({"type": "track", "messageId": {}}),
            Err("messageId: expected a string, got an object"),
        ),
        (
            CallKind::Identify,
            json!({"traits": {"bio": "x".repeat(32 * 1024)}}),
            Err("event: 32789 bytes is over the 32768-byte limit per event"),
        ),
    ];
    let roomy = IngestLimits {
        max_call_bytes: 64 * 1024,
        ..IngestLimits::default()
    };
    for (kind, body, expected) in cases {
        let body = body.to_string();
        let text = cut(&body, 80);
        let parsed = parse_tracking(kind, body.as_bytes(), &roomy).expect(&text);
        assert_eq!(parsed.items.len(), 1);
        match expected {
            Ok(event_type) => assert_eq!(event(&parsed.items[0])["type"], event_type, "{text}"),
            Err(message) => {
                let got = reason(&parsed.items[0]);
                assert!(got.starts_with(message), "{text}: {got}");
                assert!(matches!(parsed.items[0], Item::Invalid { index: 0, .. }));
            }
        }
    }
    let long_type = json!({"type": "p".repeat(500)}).to_string();
    let parsed =
        parse_tracking(CallKind::Track, long_type.as_bytes(), &limits()).expect("long type");
    assert!(
        reason(&parsed.items[0]).len() < 120,
        "{}",
        reason(&parsed.items[0])
    );
}

#[test]
fn webhook_bodies() {
    let one = parse_webhook(
        br#"{"type":"identify","userId":"u","messageId":"m"}"#,
        &limits(),
    )
    .expect("one");
    assert_eq!(one.items.len(), 1);
    assert_eq!(one.items[0].message_id(), Some("m"));
    assert_eq!(one.sent_at, None);

    let many = parse_webhook(
        br#"[{"type":"identify","messageId":"a"},"x",{"messageId":"c"},{"type":"track"}]"#,
        &limits(),
    )
    .expect("many");
    assert_eq!(many.items.len(), 4);
    assert_eq!(many.items[0].message_id(), Some("a"));
    assert_eq!(
        reason(&many.items[1]),
        "body[1]: expected an event object, got a string"
    );
    assert_eq!(
        reason(&many.items[2]),
        "body[2].type: required (identify, track, ...)"
    );
    assert!(
        many.items[3]
            .message_id()
            .is_some_and(|id| id.starts_with("ingest-"))
    );

    let empty = parse_webhook(b"[]", &limits()).expect("empty");
    assert!(empty.items.is_empty());

    let missing_type = parse_webhook(br#"{"userId":"u"}"#, &limits()).expect("object");
    assert_eq!(
        reason(&missing_type.items[0]),
        "type: required (identify, track, ...)"
    );

    let small = IngestLimits {
        max_batch_bytes: 10,
        ..IngestLimits::default()
    };
    let err = parse_webhook(br#"{"type":"identify"}"#, &small).expect_err("too big");
    assert_eq!(err, IngestError::BodyTooLarge { limit: 10 });
    assert_eq!(
        parse_tracking(CallKind::Webhook, b"[]", &limits()),
        parse_webhook(b"[]", &limits())
    );
}
