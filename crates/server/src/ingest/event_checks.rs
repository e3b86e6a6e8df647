//! One event of a request, checked on its own: an object, within the size limit, with a `type`
//! and a valid `messageId`; the batch's `context` and `integrations` merged in. A bad event
//! becomes [`Item::Invalid`] without failing the rest of the request.

use segment::event::JsonKind;
use serde_json::{Map, Value};

use super::IngestLimits;
use super::compact::compact_len;
use super::error::cut;
use super::message_id::{Seen, read_message_id, synthesize_message_id};
use super::parsed::{EventBody, Item};

/// The per-request settings of [`read_item`].
pub(super) struct Rules<'a> {
    pub(super) limits: &'a IngestLimits,
    /// The `type` of `/v1/identify` or `/v1/track`.
    pub(super) endpoint_type: Option<&'static str>,
    pub(super) endpoint_path: &'static str,
    pub(super) context: Option<&'a Map<String, Value>>,
    pub(super) integrations: Option<&'a Map<String, Value>>,
}

/// Where an event sits in its request, for item indexes and messages.
#[derive(Clone, Copy)]
pub(super) enum At {
    Single,
    Batch(usize),
    Array(usize),
}

impl At {
    pub(super) fn index(self) -> usize {
        match self {
            At::Single => 0,
            At::Batch(index) | At::Array(index) => index,
        }
    }

    /// The event itself, e.g. `batch[3]`.
    pub(super) fn whole(self) -> String {
        match self {
            At::Single => "event".to_owned(),
            At::Batch(index) => format!("batch[{index}]"),
            At::Array(index) => format!("body[{index}]"),
        }
    }

    /// One of its fields, e.g. `batch[3].type`.
    pub(super) fn field(self, name: &str) -> String {
        match self {
            At::Single => name.to_owned(),
            At::Batch(_) | At::Array(_) => format!("{}.{name}", self.whole()),
        }
    }
}

/// `id_text(index)`: the text a numeric `messageId` of the event at `index` was written with.
pub(super) fn read_item<'t>(
    mut event: Value,
    at: At,
    rules: &Rules<'_>,
    id_text: &dyn Fn(usize) -> Option<&'t str>,
    seen: &mut Seen,
) -> Item {
    let index = at.index();
    let invalid = |message_id: Option<String>, reason: String| Item::Invalid {
        index,
        message_id,
        reason,
    };
    let Value::Object(map) = &mut event else {
        return invalid(
            None,
            format!(
                "{}: expected an event object, got {}",
                at.whole(),
                JsonKind::of(&event)
            ),
        );
    };
    map.shift_remove("writeKey");

    let message_id = match read_message_id(map, at, id_text) {
        Ok(message_id) => message_id,
        Err(reason) => return invalid(None, reason),
    };

    let size = compact_len(map);
    if size > rules.limits.max_event_bytes {
        return invalid(
            message_id,
            format!(
                "{}: {size} bytes is over the {}-byte limit per event",
                at.whole(),
                rules.limits.max_event_bytes
            ),
        );
    }

    if let Err(reason) = check_type(map, at, rules) {
        return invalid(message_id, reason);
    }

    if let Some(shared) = rules.context {
        merge_shared(map, "context", shared);
    }
    if let Some(shared) = rules.integrations {
        merge_shared(map, "integrations", shared);
    }

    let message_id = match message_id {
        Some(message_id) => message_id,
        None => {
            let message_id = synthesize_message_id(map, seen);
            map.insert("messageId".to_owned(), Value::String(message_id.clone()));
            message_id
        }
    };
    Item::Event {
        message_id,
        event: EventBody::Json(event),
    }
}

fn check_type(map: &mut Map<String, Value>, at: At, rules: &Rules<'_>) -> Result<(), String> {
    let field = at.field("type");
    match map.get("type") {
        None | Some(Value::Null) => match rules.endpoint_type {
            Some(endpoint_type) => {
                map.insert("type".to_owned(), Value::String(endpoint_type.to_owned()));
                Ok(())
            }
            None => Err(format!("{field}: required (identify, track, ...)")),
        },
        Some(Value::String(name)) if name.is_empty() => Err(format!("{field}: must not be empty")),
        Some(Value::String(name)) => match rules.endpoint_type {
            Some(endpoint_type) if name != endpoint_type => Err(format!(
                "{field}: {} takes {endpoint_type:?} events, got {:?}",
                rules.endpoint_path,
                cut(name, 40)
            )),
            _ => Ok(()),
        },
        Some(other) => Err(format!(
            "{field}: expected a string, got {}",
            JsonKind::of(other)
        )),
    }
}

/// Adds the batch's `shared` keys that the event's own object under `key` lacks.
fn merge_shared(map: &mut Map<String, Value>, key: &str, shared: &Map<String, Value>) {
    match map.get_mut(key) {
        None | Some(Value::Null) => {
            map.insert(key.to_owned(), Value::Object(shared.clone()));
        }
        Some(Value::Object(own)) => {
            for (name, value) in shared {
                if !own.contains_key(name) {
                    own.insert(name.clone(), value.clone());
                }
            }
        }
        Some(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::ingest::test_support::{batch_of, event, parse, reason};
    use crate::ingest::{CallKind, parse_tracking};

    #[test]
    fn batch_items_are_checked_one_by_one() {
        let long_id = "m".repeat(101);
        let ok_id = "m".repeat(100);
        let big = "x".repeat(33 * 1024);
        let cases: Vec<(Value, Result<(), &str>)> = vec![
            (
                json!({"type": "identify", "userId": "u", "messageId": "m1"}),
                Ok(()),
            ),
            (json!({"type": "page", "messageId": "m1"}), Ok(())),
            (json!({"type": "whatever", "messageId": "m1"}), Ok(())),
            (json!({"type": "identify", "messageId": ok_id}), Ok(())),
            (json!({"type": "identify"}), Ok(())),
            (json!({"type": "identify", "messageId": null}), Ok(())),
            (json!({"type": "identify", "messageId": 12345}), Ok(())),
            (
                json!("identify"),
                Err("batch[0]: expected an event object, got a string"),
            ),
            (
                json!(null),
                Err("batch[0]: expected an event object, got null"),
            ),
            (
                json!([{"type": "identify"}]),
                Err("batch[0]: expected an event object, got an array"),
            ),
            (
                json!({"userId": "u"}),
                Err("batch[0].type: required (identify, track, ...)"),
            ),
            (json!({"type": null}), Err("batch[0].type: required")),
            (json!({"type": ""}), Err("batch[0].type: must not be empty")),
            (
                json!({"type": 7}),
                Err("batch[0].type: expected a string, got a number"),
            ),
            (
                json!({"type": {"a": 1}}),
                Err("batch[0].type: expected a string, got an object"),
            ),
            (
                json!({"type": "identify", "messageId": true}),
                Err("batch[0].messageId: expected a string, got a boolean"),
            ),
            (
                json!({"type": "identify", "messageId": ["a"]}),
                Err("batch[0].messageId: expected a string, got an array"),
            ),
            (
                json!({"type": "identify", "messageId": ""}),
                Err("batch[0].messageId: must not be empty"),
            ),
            (
                json!({"type": "identify", "messageId": long_id}),
                Err("batch[0].messageId: 101 characters is over the limit of 100"),
            ),
            (
                json!({"type": "identify", "traits": {"bio": big}}),
                Err("batch[0]: 33831 bytes is over the 32768-byte limit per event"),
            ),
        ];
        for (item, expected) in cases {
            let text = cut(&item.to_string(), 80);
            let parsed = batch_of(vec![item]);
            assert_eq!(parsed.items.len(), 1);
            match expected {
                Ok(()) => {
                    let event = event(&parsed.items[0]);
                    assert_eq!(
                        event["messageId"].as_str(),
                        parsed.items[0].message_id(),
                        "{text}"
                    );
                }
                Err(message) => {
                    let got = reason(&parsed.items[0]);
                    assert!(got.starts_with(message), "{text}: {got}");
                    assert!(got.len() < 200, "{got}");
                }
            }
        }
    }

    #[test]
    fn bad_events_do_not_fail_the_batch() {
        let parsed = batch_of(vec![
            json!({"type": "identify", "userId": "a", "messageId": "m0"}),
            json!(42),
            json!({"type": "track", "event": "Audience Entered", "messageId": "m2"}),
            json!({"type": 5, "messageId": "m3"}),
            json!({"type": "identify", "messageId": "m4", "traits": {"bio": "x".repeat(40_000)}}),
        ]);
        assert_eq!(parsed.items.len(), 5);
        let summary: Vec<(usize, bool, Option<&str>)> = parsed
            .items
            .iter()
            .enumerate()
            .map(|(i, item)| (i, matches!(item, Item::Event { .. }), item.message_id()))
            .collect();
        assert_eq!(
            summary,
            vec![
                (0, true, Some("m0")),
                (1, false, None),
                (2, true, Some("m2")),
                (3, false, Some("m3")),
                (4, false, Some("m4")),
            ]
        );
        for (i, item) in parsed.items.iter().enumerate() {
            if let Item::Invalid { index, reason, .. } = item {
                assert_eq!(*index, i);
                assert!(reason.starts_with(&format!("batch[{i}]")), "{reason}");
            }
        }
    }

    #[test]
    fn an_event_at_exactly_the_limit_is_kept() {
        let mut event = json!({"type": "identify", "messageId": "m", "traits": {"bio": ""}});
        let base = event.to_string().len();
        let limit = 200;
        event["traits"]["bio"] = json!("x".repeat(limit - base));
        assert_eq!(event.to_string().len(), limit);
        let small = IngestLimits {
            max_event_bytes: limit,
            ..IngestLimits::default()
        };
        let body = json!({"batch": [event.clone()]}).to_string();
        let parsed = parse_tracking(CallKind::Batch, body.as_bytes(), &small).expect("batch");
        assert!(matches!(parsed.items[0], Item::Event { .. }));
        event["traits"]["bio"] = json!("x".repeat(limit - base + 1));
        let body = json!({"batch": [event]}).to_string();
        let parsed = parse_tracking(CallKind::Batch, body.as_bytes(), &small).expect("batch");
        assert_eq!(
            reason(&parsed.items[0]),
            "batch[0]: 201 bytes is over the 200-byte limit per event"
        );
        // Whitespace as sent does not count: the compact form is measured.
        let bio = "x".repeat(limit - base);
        let event = json!({"type": "identify", "messageId": "m", "traits": {"bio": bio}});
        let pretty = serde_json::to_string_pretty(&json!({"batch": [event]})).expect("pretty");
        let parsed = parse_tracking(CallKind::Batch, pretty.as_bytes(), &small).expect("batch");
        assert!(matches!(parsed.items[0], Item::Event { .. }));
    }

    #[test]
    fn batch_context_and_integrations_are_merged() {
        let body = json!({
            "batch": [
                {"type": "identify", "messageId": "m0"},
                {"type": "identify", "messageId": "m1",
                    "context": {"ip": "own", "traits": {"a": 1}}, "integrations": {"All": false}},
                {"type": "identify", "messageId": "m2", "context": null},
                {"type": "identify", "messageId": "m3", "context": "odd"},
            ],
            "context": {"ip": "shared", "library": {"name": "py"}, "traits": {"b": 2}},
            "integrations": {"All": true, "Iterable": true},
            "sentAt": "2024-05-01T00:00:00.000Z",
        });
        let parsed = parse(CallKind::Batch, &body).expect("batch");
        assert_eq!(parsed.sent_at.as_deref(), Some("2024-05-01T00:00:00.000Z"));
        let events: Vec<Value> = parsed.items.iter().map(event).collect();
        assert_eq!(
            events[0],
            json!({"type": "identify", "messageId": "m0",
                "context": {"ip": "shared", "library": {"name": "py"}, "traits": {"b": 2}},
                "integrations": {"All": true, "Iterable": true}})
        );
        // The event's own keys win, shallowly: its `context.traits` is kept whole.
        assert_eq!(
            events[1],
            json!({"type": "identify", "messageId": "m1",
                "context": {"ip": "own", "traits": {"a": 1}, "library": {"name": "py"}},
                "integrations": {"All": false, "Iterable": true}})
        );
        assert_eq!(events[2]["context"]["ip"], "shared");
        // A non-object is left for the destination's checks to report.
        assert_eq!(events[3]["context"], "odd");
        assert_eq!(events[3]["integrations"]["All"], true);
        // Nothing batch-level leaks into the events.
        for event in &events {
            assert!(event.get("sentAt").is_none());
            assert!(event.get("batch").is_none());
        }
    }

    #[test]
    fn the_size_limit_applies_to_the_event_as_sent() {
        let small = IngestLimits {
            max_event_bytes: 60,
            ..IngestLimits::default()
        };
        let body = json!({
            "batch": [{"type": "identify", "messageId": "m0"}],
            "context": {"big": "x".repeat(500)},
        })
        .to_string();
        let parsed = parse_tracking(CallKind::Batch, body.as_bytes(), &small).expect("batch");
        assert_eq!(
            event(&parsed.items[0])["context"]["big"]
                .as_str()
                .map(str::len),
            Some(500)
        );
    }
}
