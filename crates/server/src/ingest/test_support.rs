//! What the ingestion unit tests share: a write key, the default limits, and reading a body
//! and its items.

use serde_json::{Value, json};

use super::{CallKind, IngestError, IngestLimits, Item, Parsed, parse_tracking};

pub(super) const KEY: &str = "wk_SECRET_9f8e7d6c5b4a";

pub(super) fn limits() -> IngestLimits {
    IngestLimits::default()
}

pub(super) fn parse(kind: CallKind, body: &Value) -> Result<Parsed, IngestError> {
    parse_tracking(kind, body.to_string().as_bytes(), &limits())
}

pub(super) fn batch_of(events: Vec<Value>) -> Parsed {
    parse(CallKind::Batch, &json!({ "batch": events })).expect("a well-formed batch")
}

pub(super) fn reason(item: &Item) -> &str {
    match item {
        Item::Invalid { reason, .. } => reason,
        Item::Event { event, .. } => panic!("expected an invalid item, got {event:?}"),
    }
}

/// The event of an item, as JSON (parsed from its text on the batch's fast path).
pub(super) fn event(item: &Item) -> Value {
    match item {
        Item::Event { event, .. } => event.to_value().expect("an event's text is JSON"),
        Item::Invalid { reason, .. } => panic!("expected an event, got invalid: {reason}"),
    }
}
