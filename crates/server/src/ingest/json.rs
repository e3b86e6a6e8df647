//! A request body read as JSON: serde_json's reading, then, only after a syntax error, again
//! with its lone surrogates repaired (`json_text`); errors give the line and column.

use std::borrow::Cow;

use segment::event::JsonKind;
use serde_json::{Map, Value};

use super::error::IngestError;
use super::json_text::replace_lone_surrogates;

/// Parses a body, and returns it with the text it was read from: `body` itself, or, when
/// serde_json refused it for a lone UTF-16 surrogate escape (`"\ud83d"`, what JavaScript's
/// `JSON.stringify` and Python's `json.dumps` write for a string cut inside an emoji), a copy
/// with each lone surrogate as U+FFFD, as JavaScript's `TextEncoder` encodes it. The copy is
/// made only after a syntax error, so well-formed bodies are parsed once, as they are.
pub(super) fn parse_json(body: &[u8]) -> Result<(Text<'_>, Value), IngestError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(IngestError::InvalidBody(
            "body is empty: expected a JSON object".to_owned(),
        ));
    }
    let err = match serde_json::from_slice(body) {
        Ok(value) => return Ok((Cow::Borrowed(body), value)),
        Err(err) => err,
    };
    if err.classify() == serde_json::error::Category::Syntax {
        if let Some(copy) = replace_lone_surrogates(body) {
            return match serde_json::from_slice(&copy) {
                Ok(value) => Ok((Cow::Owned(copy), value)),
                Err(err) => Err(malformed(&err)),
            };
        }
    }
    Err(malformed(&err))
}

fn malformed(err: &serde_json::Error) -> IngestError {
    let text = err.to_string();
    let position = format!(" at line {} column {}", err.line(), err.column());
    let reason = text.strip_suffix(&position).unwrap_or(&text).to_owned();
    IngestError::MalformedJson {
        line: err.line(),
        column: err.column(),
        reason,
    }
}

/// The text a body was parsed from: the body, or its repaired copy (see [`parse_json`]).
pub(super) type Text<'a> = Cow<'a, [u8]>;

pub(super) fn parse_object(body: &[u8]) -> Result<(Text<'_>, Map<String, Value>), IngestError> {
    match parse_json(body)? {
        (text, Value::Object(map)) => Ok((text, map)),
        (_, other) => Err(IngestError::InvalidBody(format!(
            "body: expected a JSON object, got {}",
            JsonKind::of(&other)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::ingest::test_support::{event, limits, reason};
    use crate::ingest::{CallKind, Item, parse_tracking, parse_webhook};

    #[test]
    fn lone_surrogates_become_replacement_characters() {
        let body = br#"{"writeKey": "k", "batch": [
            {"type": "identify", "messageId": "a", "userId": "ann", "traits": {"name": "Ann \ud83d"}},
            {"type": "identify", "messageId": "b", "userId": "bob",
             "traits": {"name": "Bob \\ud83d \ud83d\ud83d\ude00 \uDE00", "\udc00": 1}},
            {"type": "identify", "messageId": "c\ud800", "userId": "cy", "traits": {"name": "Cy"}}
        ]}"#;
        let parsed = parse_tracking(CallKind::Batch, body, &limits()).expect("parsed");
        assert_eq!(parsed.write_key.as_deref(), Some("k"));
        let names: Vec<Value> = parsed
            .items
            .iter()
            .map(|i| event(i)["traits"].clone())
            .collect();
        assert_eq!(
            names,
            [
                json!({"name": "Ann \u{fffd}"}),
                json!({"name": "Bob \\ud83d \u{fffd}\u{1f600} \u{fffd}", "\u{fffd}": 1}),
                json!({"name": "Cy"}),
            ]
        );
        let ids: Vec<&str> = parsed.items.iter().filter_map(Item::message_id).collect();
        assert_eq!(ids, ["a", "b", "c\u{fffd}"]);

        let call = br#"{"userId": "ann", "traits": {"name": "\ud83d"}, "messageId": 1e99}"#;
        for kind in [CallKind::Identify, CallKind::Webhook] {
            let parsed = parse_tracking(kind, call, &limits());
            let parsed = parsed.unwrap_or_else(|err| panic!("{kind:?}: {err}"));
            if let Item::Event { event, message_id } = &parsed.items[0] {
                let event = event.to_value().expect("JSON");
                assert_eq!(event["traits"]["name"], "\u{fffd}");
                assert_eq!(message_id, "1e99", "read from the repaired text");
            } else {
                assert_eq!(kind, CallKind::Webhook, "no type: {parsed:?}");
            }
        }
        let hook = br#"[{"type": "track", "event": "\udbff"}]"#;
        let parsed = parse_webhook(hook, &limits()).expect("parsed");
        assert_eq!(event(&parsed.items[0])["event"], "\u{fffd}");
    }

    #[test]
    fn serde_json_private_keys_are_ordinary_keys() {
        // With serde_json's `raw_value` or `arbitrary_precision` features, a first key named
        // like this makes `Value` parse the string as JSON instead; neither feature is on.
        let body = br#"{"batch": [{"$serde_json::private::RawValue": "{\"type\":\"identify\"}"},
            {"$serde_json::private::Number": "1", "type": "identify", "messageId": "n"}]}"#;
        let parsed = parse_tracking(CallKind::Batch, body, &limits()).expect("parsed");
        assert_eq!(
            reason(&parsed.items[0]),
            "batch[0].type: required (identify, track, ...)"
        );
        assert_eq!(
            event(&parsed.items[1])["$serde_json::private::Number"],
            json!("1")
        );
    }

    #[test]
    fn bodies_still_malformed_after_repair_are_refused() {
        let cases: &[(&str, &str)] = &[
            // Not in a string.
            (
                r#"{"batch": [\ud83d]}"#,
                "malformed JSON at line 1 column 12: expected value",
            ),
            // Another error after a lone surrogate: that one is reported.
            (
                r#"{"batch": [{"a": "\ud83d"},]}"#,
                "malformed JSON at line 1 column 28: trailing comma",
            ),
            // And before one.
            (
                r#"{"batch": [,{"a": "\ud83d"}]}"#,
                "malformed JSON at line 1 column 12: expected value",
            ),
            // Cut short.
            (
                r#"{"batch": [{"a": "\ud83d"#,
                "malformed JSON at line 1 column 24: EOF while parsing a string",
            ),
            (
                r#"{"batch": [{"a": "\ud83d\u12"}]}"#,
                "malformed JSON at line 1 column 30: invalid escape",
            ),
        ];
        for &(body, message) in cases {
            let err = parse_tracking(CallKind::Batch, body.as_bytes(), &limits()).expect_err(body);
            assert_eq!(
                (err.code(), err.to_string().as_str()),
                ("malformed_json", message)
            );
        }
    }
}
