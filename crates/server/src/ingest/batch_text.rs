//! The fast path of `/v1/batch`: the body split into its events' texts, with no JSON tree
//! built. Each event is checked from a typed view borrowed from its text (an object, a `type`,
//! a usable `messageId`, no `writeKey`) and kept as text, for the destination's own typed read.
//!
//! The body is read in one pass with the destination's JSON cursor
//! ([`destination::fast::Cursor`]), which checks every value as a JSON tree would and refuses
//! what the tree refuses. It takes the common case
//! only: a UTF-8 body nested at most 64 levels, whose top-level keys are written without
//! escapes and appear once, no batch-level `context` or `integrations` to merge, and events
//! that need nothing changed (no `messageId` to synthesize or to turn from a number, no
//! `writeKey` to take out) and are small enough that their size cannot be over the limit. For
//! anything else it answers `None`, and the general path (`super::parse`) reads the body, with
//! its repairs and its messages. `props` checks that both read random bodies the same way.

use std::borrow::Cow;

use destination::fast::Cursor;
use serde_json::Value;

use super::IngestLimits;
use super::message_id::MAX_MESSAGE_ID_CHARS;
use super::parsed::{EventBody, Item, Parsed};

/// How much longer than its text an event's compact JSON can be: a number such as `1e15` is
/// written back as `1000000000000000.0` (4.5 times longer); strings and whitespace only shrink.
const MAX_COMPACT_GROWTH: usize = 5;

/// The batch body read on the fast path, or `None` when the general path must read it.
pub(super) fn read_batch(body: &[u8], limits: &IngestLimits) -> Option<Parsed> {
    let text = std::str::from_utf8(body).ok()?;
    let top = split_top(text)?;
    if top.events.len() > limits.max_batch_events {
        return None;
    }
    let write_key = match top.write_key {
        None | Some(Value::Null) => None,
        Some(Value::String(key)) => (!key.is_empty()).then_some(key),
        Some(_) => return None,
    };
    let sent_at = match top.sent_at {
        Some(Value::String(s)) => Some(s),
        _ => None,
    };
    let mut items = Vec::with_capacity(top.events.len());
    for (event, head) in top.events {
        if event.len() * MAX_COMPACT_GROWTH > limits.max_event_bytes {
            return None;
        }
        if head.write_key || head.event_type.is_none_or(|t| t.is_empty()) {
            return None;
        }
        let message_id = head.message_id?;
        if message_id.is_empty() || message_id.chars().count() > MAX_MESSAGE_ID_CHARS {
            return None;
        }
        items.push(Item::Event {
            message_id: message_id.into_owned(),
            event: EventBody::Text(event.to_owned()),
        });
    }
    Some(Parsed {
        write_key,
        items,
        sent_at,
    })
}

/// The top level of a batch body: its events' texts with what the checks read of them, and
/// the values of `writeKey` and `sentAt`.
#[derive(Default)]
struct Top<'a> {
    events: Vec<(&'a str, Head<'a>)>,
    write_key: Option<Value>,
    sent_at: Option<Value>,
}

/// The top-level keys the general path reads (it ignores the others).
const READ_KEYS: [&str; 5] = ["batch", "writeKey", "sentAt", "context", "integrations"];

/// Reads the body's top-level object, every value checked. Its keys must be written without
/// escapes, and those of [`READ_KEYS`] appear once (a JSON tree keeps the last of a repeated
/// key; other keys are skipped, repeated or not, in time linear in their number).
fn split_top(text: &str) -> Option<Top<'_>> {
    let mut c = Cursor::new(text);
    let mut top = Top::default();
    let mut seen = [false; READ_KEYS.len()];
    let mut batch = false;
    c.object(|c, key| {
        let Cow::Borrowed(key) = key else {
            return None;
        };
        let read = READ_KEYS.iter().position(|read| *read == key);
        if let Some(seen) = read.and_then(|k| seen.get_mut(k)) {
            if std::mem::replace(seen, true) {
                return None;
            }
        }
        match key {
            "batch" => {
                top.events = events(c)?;
                batch = true;
            }
            "writeKey" => top.write_key = Some(c.tree()?),
            "sentAt" => top.sent_at = Some(c.tree()?),
            // Shared members to merge into every event are the general path's work: only
            // `null` or `{}` here.
            "context" | "integrations" => {
                if !c.null()? {
                    c.object(|_, _| None)?;
                }
            }
            _ => c.skip()?,
        }
        Some(())
    })?;
    c.end()?;
    // No batch: the general path says so.
    batch.then_some(top)
}

/// The batch's events: each one's text and head.
fn events<'a>(c: &mut Cursor<'a>) -> Option<Vec<(&'a str, Head<'a>)>> {
    let mut events = Vec::new();
    c.array(|c| {
        c.peek()?;
        let start = c.offset();
        let head = Head::read(c)?;
        events.push((c.since(start)?, head));
        Some(())
    })?;
    Some(events)
}

/// What the batch's checks read of one event: an object with these members (the last of a
/// repeated member counts, as in a parsed event).
#[derive(Default)]
struct Head<'a> {
    event_type: Option<Cow<'a, str>>,
    message_id: Option<Cow<'a, str>>,
    write_key: bool,
}

impl<'a> Head<'a> {
    /// The event object at the cursor, every member checked.
    fn read(c: &mut Cursor<'a>) -> Option<Self> {
        let mut head = Head::default();
        c.object(|c, key| {
            match key.as_ref() {
                "type" => head.event_type = c.string_or_null()?,
                "messageId" => head.message_id = c.string_or_null()?,
                "writeKey" => {
                    c.skip()?;
                    head.write_key = true;
                }
                _ => c.skip()?,
            }
            Some(())
        })?;
        Some(head)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn engage(i: usize) -> Value {
        json!({"type": "identify", "messageId": format!("m{i}"), "userId": format!("u{i}"),
               "timestamp": "2026-11-29T10:00:00.000Z",
               "traits": {"email": format!("u{i}@x.com"), "vip": true},
               "context": {"personas": {"computation_key": "vip", "external_audience_id": "12"},
                           "library": {"name": "analytics-python"}}})
    }

    #[test]
    fn sdk_batches_take_the_fast_path() {
        let body = json!({"batch": [engage(0), engage(1)], "writeKey": "wk", "sentAt": "s",
                          "context": {}, "integrations": null});
        let text = serde_json::to_string_pretty(&body).expect("JSON");
        let parsed = read_batch(text.as_bytes(), &IngestLimits::default()).expect("fast path");
        assert_eq!(parsed.write_key.as_deref(), Some("wk"));
        assert_eq!(parsed.sent_at.as_deref(), Some("s"));
        let ids: Vec<&str> = parsed.items.iter().filter_map(Item::message_id).collect();
        assert_eq!(ids, ["m0", "m1"]);
        match &parsed.items[1] {
            Item::Event {
                event: EventBody::Text(t),
                ..
            } => {
                assert_eq!(serde_json::from_str::<Value>(t).expect("JSON"), engage(1));
            }
            other => panic!("expected an event kept as text, got {other:?}"),
        }
    }

    /// Near serde_json's nesting limit, the fast path reads no body that the tree refuses
    /// (the tree counts the body's and the batch's levels too).
    #[test]
    fn deep_events_are_read_only_when_the_tree_reads_them() {
        let limits = IngestLimits::default();
        for n in 60..130 {
            let text = format!(
                r#"{{"batch": [{{"type": "identify", "messageId": "m", "x": {}{}}}]}}"#,
                "[".repeat(n),
                "]".repeat(n)
            );
            let tree = crate::ingest::parse::parse_batch_tree(text.as_bytes(), &limits);
            if read_batch(text.as_bytes(), &limits).is_some() {
                assert!(
                    tree.is_ok(),
                    "{n} levels: the fast path read what the tree refuses"
                );
            }
        }
    }

    #[test]
    fn what_needs_the_general_path_is_left_to_it() {
        let limits = IngestLimits::default();
        let with = |f: &dyn Fn(&mut Value)| {
            let mut body = json!({"batch": [engage(0)], "writeKey": "wk"});
            f(&mut body);
            read_batch(body.to_string().as_bytes(), &limits)
        };
        assert!(with(&|_| {}).is_some());
        type Change<'a> = &'a dyn Fn(&mut Value);
        let cases: [(&str, Change); 8] = [
            ("shared context", &|b| b["context"] = json!({"ip": "1"})),
            ("no messageId", &|b| {
                b["batch"][0]["messageId"] = Value::Null
            }),
            ("numeric messageId", &|b| {
                b["batch"][0]["messageId"] = json!(7)
            }),
            ("writeKey in the event", &|b| {
                b["batch"][0]["writeKey"] = json!("k")
            }),
            ("no type", &|b| b["batch"][0]["type"] = Value::Null),
            ("big event", &|b| {
                b["batch"][0]["pad"] = json!("x".repeat(7000))
            }),
            ("a number as writeKey", &|b| b["writeKey"] = json!(5)),
            ("no batch", &|b| b["batch"] = Value::Null),
        ];
        for (name, f) in cases {
            assert!(with(f).is_none(), "{name}");
        }
        let deep = format!(
            r#"{{"batch": [{{"type": "identify", "messageId": "m", "x": {}{}}}]}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        assert!(read_batch(deep.as_bytes(), &limits).is_none());
        let repeated_other =
            r#"{"x": 1, "x": [2], "batch": [{"type": "identify", "messageId": "m"}]}"#;
        assert!(read_batch(repeated_other.as_bytes(), &limits).is_some());
        for text in [
            r#"{"batch": [], "batch": []}"#,
            r#"{"writeKey": "a", "batch": [], "writeKey": "b"}"#,
            r#"{"bat\u0063h": []}"#,
            r#"{"batch": [{"type": "identify", "messageId": "m", "x": "\ud83d"}]}"#,
            r#"{"batch": [{"type": "identify", "messageId": "m"}]} x"#,
            r#"{"batch": [{"type": "identify", "messageId": "m"},]}"#,
            r#"{"batch": [], "x": tru}"#,
            r#"{"batch": [{"type": "identify", "messageId": "m", "x": 1e400}]}"#,
            r#"{"x": 1e400, "batch": [{"type": "identify", "messageId": "m"}]}"#,
        ] {
            assert!(read_batch(text.as_bytes(), &limits).is_none(), "{text}");
        }
    }
}
