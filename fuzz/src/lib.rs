//! What the fuzz targets share: how an input is cut into parts, and the properties every
//! answer of the ingestion parsers must have (beyond not panicking).

use serde_json::Value;
use server::ingest::{CallKind, IngestError, IngestLimits, Item, MAX_MESSAGE_ID_CHARS, Parsed};

/// Limits small enough that fuzzed inputs cross them.
pub const TINY: IngestLimits = IngestLimits {
    max_event_bytes: 64,
    max_call_bytes: 128,
    max_batch_bytes: 256,
    max_batch_events: 3,
};

/// The input before its first `0xff` byte and after it (`0xff` is never in UTF-8 text, so
/// neither part of a text seed holds one); the second part is `None` without one.
pub fn split_ff(data: &[u8]) -> (&[u8], Option<&[u8]>) {
    match data.iter().position(|&b| b == 0xff) {
        Some(at) => (&data[..at], Some(&data[at + 1..])),
        None => (data, None),
    }
}

/// A refusal has a 4xx status and a JSON body naming its code.
pub fn check_refusal(err: &IngestError) {
    let status = err.status();
    assert!((400..500).contains(&status), "{err:?}: status {status}");
    let body: Value = serde_json::from_slice(&err.body()).expect("an error body is JSON");
    assert_eq!(body["success"], false);
    assert_eq!(body["code"], err.code());
    assert!(body["message"].is_string());
}

/// What [`server::ingest::parse_tracking`] (or `parse_webhook`) read from `body` is well formed:
/// one item per event of the body, each an event with a non-empty `type`, its `messageId` set to
/// the item's and no `writeKey`, or a refusal at its own index.
pub fn check_parsed(kind: CallKind, body: &[u8], parsed: &Parsed) {
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        let events = match (kind, &value) {
            (CallKind::Batch, _) => value["batch"].as_array().map(Vec::len),
            (CallKind::Webhook, Value::Array(events)) => Some(events.len()),
            _ => Some(1),
        };
        assert_eq!(Some(parsed.items.len()), events, "one item per event");
    }
    for (i, item) in parsed.items.iter().enumerate() {
        match item {
            Item::Event { message_id, event } => {
                // Kept as text on the batch's fast path: it must be JSON.
                let event = event.to_value().expect("an event's text is JSON");
                assert!(event.get("writeKey").is_none(), "writeKey left in {event}");
                assert_eq!(event["messageId"].as_str(), Some(message_id.as_str()));
                assert!(!message_id.is_empty());
                assert!(message_id.chars().count() <= MAX_MESSAGE_ID_CHARS);
                let kind = event["type"].as_str();
                assert!(kind.is_some_and(|t| !t.is_empty()), "type of {event}");
            }
            Item::Invalid { index, reason, .. } => {
                assert_eq!(*index, i);
                assert!(!reason.is_empty());
            }
        }
    }
}
