//! The fast path of `/v1/batch`: the body split into its events' texts, with no JSON tree
//! built. Each event is checked from a typed view borrowed from its text (an object, a `type`,
//! a usable `messageId`, no `writeKey`) and kept as text, for the destination's own typed read.
//!
//! Members it does not read are skipped with the checks a JSON tree makes
//! ([`destination::fast::Skip`]), so it refuses what the tree refuses. It takes the common case
//! only: a UTF-8 body nested at most 64 levels, whose top-level keys are written without
//! escapes and appear once, no batch-level `context` or `integrations` to merge, and events
//! that need nothing changed (no `messageId` to synthesize or to turn from a number, no
//! `writeKey` to take out) and are small enough that their size cannot be over the limit. For
//! anything else it answers `None`, and the general path (`super::parse`) reads the body, with
//! its repairs and its messages. `props` checks that both read random bodies the same way.

use std::borrow::Cow;
use std::fmt;

use destination::fast::{Skip, Text};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;

use super::IngestLimits;
use super::message_id::MAX_MESSAGE_ID_CHARS;
use super::parsed::{EventBody, Item, Parsed};

/// How much longer than its text an event's compact JSON can be: a number such as `1e15` is
/// written back as `1000000000000000.0` (4.5 times longer); strings and whitespace only shrink.
const MAX_COMPACT_GROWTH: usize = 5;

/// How deep a value may nest on the fast path: the body and its batch add two levels, and a
/// JSON tree of the body refuses 128.
const MAX_DEPTH: usize = 64;

/// The batch body read on the fast path, or `None` when the general path must read it.
pub(super) fn read_batch(body: &[u8], limits: &IngestLimits) -> Option<Parsed> {
    let text = std::str::from_utf8(body).ok()?;
    let top = split_top(text)?;
    if top.events.len() > limits.max_batch_events {
        return None;
    }
    let write_key = match top.write_key.map(serde_json::from_str::<Value>) {
        None => None,
        Some(Ok(Value::Null)) => None,
        Some(Ok(Value::String(key))) => (!key.is_empty()).then_some(key),
        Some(_) => return None,
    };
    let sent_at = match top.sent_at.map(serde_json::from_str::<Value>) {
        None => None,
        Some(Ok(Value::String(s))) => Some(s),
        Some(Ok(_)) => None,
        Some(Err(_)) => return None,
    };
    let mut items = Vec::with_capacity(top.events.len());
    for event in top.events {
        if event.len() * MAX_COMPACT_GROWTH > limits.max_event_bytes {
            return None;
        }
        let head: Head<'_> = serde_json::from_str(event).ok()?;
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

/// The top level of a batch body: its events' texts and the texts of `writeKey` and `sentAt`.
#[derive(Default)]
struct Top<'a> {
    events: Vec<&'a str>,
    write_key: Option<&'a str>,
    sent_at: Option<&'a str>,
}

/// Splits the body's top-level object. Every piece of text it does not hand on is checked to be
/// JSON here; each event's text is checked when it is read.
fn split_top(text: &str) -> Option<Top<'_>> {
    let mut s = Scanner {
        b: text.as_bytes(),
        i: 0,
    };
    let mut top = Top::default();
    let mut keys: Vec<&str> = Vec::new();
    let mut batch = false;
    s.ws();
    s.expect(b'{')?;
    s.ws();
    if s.peek() == Some(b'}') {
        return None; // no batch: the general path says so
    }
    loop {
        s.ws();
        let key = s.plain_key(text)?;
        if keys.contains(&key) {
            return None;
        }
        keys.push(key);
        s.ws();
        s.expect(b':')?;
        s.ws();
        match key {
            "batch" => {
                top.events = s.array_items(text)?;
                batch = true;
            }
            _ => {
                let value = s.value(text)?;
                match key {
                    "writeKey" => top.write_key = Some(value),
                    "sentAt" => top.sent_at = Some(value),
                    "context" | "integrations" => {
                        // Shared members to merge into every event: the general path's work.
                        match serde_json::from_str::<Value>(value).ok()? {
                            Value::Null => {}
                            Value::Object(m) if m.is_empty() => {}
                            _ => return None,
                        }
                    }
                    _ => {
                        serde_json::from_str::<Skip>(value).ok()?;
                    }
                }
            }
        }
        s.ws();
        match s.next()? {
            b',' => continue,
            b'}' => break,
            _ => return None,
        }
    }
    s.ws();
    (batch && s.i == s.b.len()).then_some(top)
}

/// A cursor over the body's bytes. It only finds where values start and end; the values
/// themselves are checked by serde_json.
struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            self.i += 1;
        }
    }

    fn expect(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    /// A key written without escapes.
    fn plain_key<'t>(&mut self, text: &'t str) -> Option<&'t str> {
        self.expect(b'"')?;
        let start = self.i;
        loop {
            match self.next()? {
                b'"' => return text.get(start..self.i - 1),
                b'\\' => return None,
                c if c < 0x20 => return None,
                _ => {}
            }
        }
    }

    /// Past a string whose opening quote was just read.
    fn skip_string(&mut self) -> Option<()> {
        loop {
            match self.next()? {
                b'"' => return Some(()),
                b'\\' => {
                    self.next()?;
                }
                _ => {}
            }
        }
    }

    /// The text of the value that starts here.
    fn value<'t>(&mut self, text: &'t str) -> Option<&'t str> {
        let start = self.i;
        match self.next()? {
            b'"' => self.skip_string()?,
            b'{' | b'[' => {
                let mut depth = 1usize;
                while depth > 0 {
                    match self.next()? {
                        b'"' => self.skip_string()?,
                        b'{' | b'[' => {
                            depth += 1;
                            // The JSON tree of the whole body refuses 128 levels in all.
                            if depth > MAX_DEPTH {
                                return None;
                            }
                        }
                        b'}' | b']' => depth -= 1,
                        _ => {}
                    }
                }
            }
            _ => {
                while !matches!(
                    self.peek(),
                    None | Some(b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t')
                ) {
                    self.i += 1;
                }
            }
        }
        text.get(start..self.i)
    }

    /// The texts of an array's items.
    fn array_items<'t>(&mut self, text: &'t str) -> Option<Vec<&'t str>> {
        self.expect(b'[')?;
        let mut items = Vec::new();
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Some(items);
        }
        loop {
            self.ws();
            items.push(self.value(text)?);
            self.ws();
            match self.next()? {
                b',' => continue,
                b']' => return Some(items),
                _ => return None,
            }
        }
    }
}

/// What the batch's checks read of one event: an object with these members (the last of a
/// repeated member counts, as in a parsed event).
#[derive(Default)]
struct Head<'a> {
    event_type: Option<Cow<'a, str>>,
    message_id: Option<Cow<'a, str>>,
    write_key: bool,
}

impl<'de> Deserialize<'de> for Head<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Head<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an event object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut head = Head::default();
                while let Some(key) = map.next_key::<Text<'de>>()? {
                    match key.0.as_ref() {
                        "type" => head.event_type = map.next_value::<Option<Text>>()?.map(|s| s.0),
                        "messageId" => {
                            head.message_id = map.next_value::<Option<Text>>()?.map(|s| s.0);
                        }
                        "writeKey" => {
                            map.next_value::<Skip>()?;
                            head.write_key = true;
                        }
                        _ => {
                            map.next_value::<Skip>()?;
                        }
                    }
                }
                Ok(head)
            }
        }
        d.deserialize_map(V)
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
        for text in [
            r#"{"batch": [], "batch": []}"#,
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
