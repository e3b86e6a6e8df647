//! An event's `messageId`: read (a number kept as the text it was written with) and checked, or,
//! when it has none, synthesized from the event's content.

use std::collections::HashMap;

use segment::event::{JsonKind, TimeField};
use segment::mapping::number_to_string;
use serde_json::{Map, Number, Value};

use super::compact::compact_sha256;
use super::event_checks::At;

/// The longest `messageId` kept, in characters (Segment's ids are under 100).
pub const MAX_MESSAGE_ID_CHARS: usize = 100;

/// How a `messageId` made by [`parse_tracking`] or [`parse_webhook`] begins, for an event that
/// came without one.
///
/// [`parse_tracking`]: super::parse_tracking
/// [`parse_webhook`]: super::parse_webhook
pub const SYNTHETIC_MESSAGE_ID_PREFIX: &str = "ingest-";

/// Synthesized ids handed out so far in one request, by digest, with their count.
pub(super) type Seen = HashMap<[u8; 16], u32>;

/// A valid `messageId` (a number rewritten as the text it was written with), `None` when absent
/// or `null`.
pub(super) fn read_message_id<'t>(
    map: &mut Map<String, Value>,
    at: At,
    id_text: &dyn Fn(usize) -> Option<&'t str>,
) -> Result<Option<String>, String> {
    let Some(value) = map.get_mut("messageId") else {
        return Ok(None);
    };
    let message_id = match value {
        Value::Null => return Ok(None),
        Value::String(text) => text.clone(),
        Value::Number(number) => {
            let text = number_id(number, || id_text(at.index()));
            *value = Value::String(text.clone());
            text
        }
        other => {
            return Err(format!(
                "{}: expected a string, got {}",
                at.field("messageId"),
                JsonKind::of(other)
            ));
        }
    };
    if message_id.is_empty() {
        return Err(format!("{}: must not be empty", at.field("messageId")));
    }
    let chars = message_id.chars().count();
    if chars > MAX_MESSAGE_ID_CHARS {
        return Err(format!(
            "{}: {chars} characters is over the limit of {MAX_MESSAGE_ID_CHARS}",
            at.field("messageId")
        ));
    }
    Ok(Some(message_id))
}

/// A numeric id as the text it was written with. An `i64` or `u64` prints as it was written
/// (JSON writes integers one way only); any other number (a fraction, an exponent, more digits
/// than 64 bits hold, `-0`) lost its text in the parse, so it is read again from the body
/// (`written`, rarely called). `1e3` stays `"1e3"` and `1.50` stays `"1.50"`: two numeric ids
/// are the same event only when written the same way, and no two differently written ones
/// collapse into one.
fn number_id<'a>(number: &Number, written: impl FnOnce() -> Option<&'a str>) -> String {
    if let Some(n) = number.as_i64() {
        n.to_string()
    } else if let Some(n) = number.as_u64() {
        n.to_string()
    } else if let Some(text) = written() {
        text.to_owned()
    } else {
        // Not reached: the body parsed, so its text has the number. JavaScript's form, as the
        // `segment` crate coerces numeric ids, is the best left.
        number_to_string(number.as_f64().unwrap_or(f64::NAN))
    }
}

/// `ingest-` and the first 16 bytes of the SHA-256 of the event's compact JSON, in hex; the
/// N-th repeat of an identical event in the same request gets `-N` after it.
///
/// Only an event that says when it happened (`timestamp`, `originalTimestamp`, `sentAt` or
/// `receivedAt`) is identified by its content alone: the same event sent again is then truly
/// the same change, and ignoring it is right. An event without a time takes its version from its
/// arrival, so an identical one sent later is a new change (add, remove, add again for one user
/// must end with the user added): it also gets `-u` and 16 random hex digits, and is never
/// taken for a repeat.
pub(super) fn synthesize_message_id(map: &Map<String, Value>, seen: &mut Seen) -> String {
    let digest = compact_sha256(map);
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest.as_ref()[..16]);
    let mut id = String::with_capacity(SYNTHETIC_MESSAGE_ID_PREFIX.len() + 40);
    id.push_str(SYNTHETIC_MESSAGE_ID_PREFIX);
    push_hex(&mut id, &key);
    let repeat = seen.entry(key).or_insert(0);
    if *repeat > 0 {
        id.push('-');
        id.push_str(&repeat.to_string());
    }
    *repeat += 1;
    if !has_event_time(map) {
        id.push_str("-u");
        push_hex(&mut id, &unique_bytes());
    }
    id
}

/// Whether the event carries one of the fields its time is read from (not `null`).
fn has_event_time(map: &Map<String, Value>) -> bool {
    TimeField::PREFERENCE
        .iter()
        .any(|field| map.get(field.key()).is_some_and(|value| !value.is_null()))
}

/// Eight bytes no other id has: random from the system, or, should the system refuse, this
/// process's start time and a count.
fn unique_bytes() -> [u8; 8] {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{SystemTime, UNIX_EPOCH};
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let mut bytes = [0u8; 8];
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).is_err() {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        bytes = (nanos ^ COUNT.fetch_add(1, Ordering::Relaxed).rotate_left(48)).to_be_bytes();
    }
    bytes
}

pub(super) fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
}

#[cfg(test)]
mod tests {
    use ring::digest;
    use serde_json::json;

    use super::*;
    use crate::ingest::test_support::{batch_of, event, limits, parse, reason};
    use crate::ingest::{CallKind, Item, parse_tracking, parse_webhook};

    #[test]
    fn numeric_message_ids_become_strings() {
        let parsed = batch_of(vec![
            json!({"type": "identify", "messageId": 12345}),
            json!({"type": "identify", "messageId": -7}),
            json!({"type": "identify", "messageId": 18446744073709551615u64}),
            json!({"type": "identify", "messageId": 1.5}),
            json!({"type": "identify", "messageId": 1e21}),
        ]);
        let ids: Vec<&str> = parsed.items.iter().filter_map(Item::message_id).collect();
        assert_eq!(ids, ["12345", "-7", "18446744073709551615", "1.5", "1e+21"]);
        for item in &parsed.items {
            assert_eq!(event(item)["messageId"].as_str(), item.message_id());
        }
    }

    #[test]
    fn numeric_message_ids_keep_the_text_they_were_written_with() {
        // Ids past 2^64 (serde_json's f64) no longer collapse into one `1e+30`.
        let body = br#"{"batch": [
            {"type": "identify", "messageId": 1000000000000000000000000000001},
            {"type": "identify", "messageId": 1000000000000000000000000000002},
            {"type": "identify", "messageId": 1e30},
            {"type": "identify", "messageId": 1E+30},
            {"type": "identify", "messageId": 9007199254740993},
            {"type": "identify", "messageId": -9223372036854775809},
            {"type": "identify", "messageId": 1.50},
            {"type": "identify", "messageId": -0},
            {"type": "identify", "messageId": 0.1e-2, "messageId": 2.5}
        ]}"#;
        let parsed = parse_tracking(CallKind::Batch, body, &limits()).expect("parsed");
        let ids: Vec<&str> = parsed.items.iter().filter_map(Item::message_id).collect();
        assert_eq!(
            ids,
            [
                "1000000000000000000000000000001",
                "1000000000000000000000000000002",
                "1e30",
                "1E+30",
                "9007199254740993",
                "-9223372036854775809",
                "1.50",
                "-0",
                "2.5"
            ]
        );
        for item in &parsed.items {
            assert_eq!(event(item)["messageId"].as_str(), item.message_id());
        }

        let call = br#"{"messageId": 123456789012345678901234567890.0, "userId": "u"}"#;
        let parsed = parse_tracking(CallKind::Identify, call, &limits()).expect("parsed");
        assert_eq!(
            parsed.items[0].message_id(),
            Some("123456789012345678901234567890.0")
        );
        let hook = br#"[{"type": "track", "messageId": 1e300}, {"type": "track", "messageId": 7}]"#;
        let parsed = parse_webhook(hook, &limits()).expect("parsed");
        let ids: Vec<&str> = parsed.items.iter().filter_map(Item::message_id).collect();
        assert_eq!(ids, ["1e300", "7"]);
        let hook = br#"{"type": "track", "messageId": 314.159e-2}"#;
        let parsed = parse_webhook(hook, &limits()).expect("parsed");
        assert_eq!(parsed.items[0].message_id(), Some("314.159e-2"));

        // Over the limit as written: 101 digits.
        let long = format!(
            r#"{{"batch": [{{"type": "identify", "messageId": 1{}}}]}}"#,
            "0".repeat(MAX_MESSAGE_ID_CHARS)
        );
        let parsed = parse_tracking(CallKind::Batch, long.as_bytes(), &limits()).expect("parsed");
        assert!(
            reason(&parsed.items[0]).contains("101 characters"),
            "{parsed:?}"
        );
    }

    #[test]
    fn synthesized_message_ids_are_stable() {
        let at = "2026-01-02T03:04:05Z";
        let one =
            json!({"type": "identify", "userId": "u1", "traits": {"vip": true}, "timestamp": at});
        let other =
            json!({"type": "identify", "userId": "u2", "traits": {"vip": true}, "sentAt": at});
        let first = batch_of(vec![one.clone(), other.clone()]);
        let again = batch_of(vec![one.clone(), other.clone()]);
        assert_eq!(first, again);
        let alone = batch_of(vec![one.clone()]);
        let id = first.items[0].message_id().expect("an id").to_owned();
        assert_eq!(alone.items[0].message_id(), Some(id.as_str()));
        assert_ne!(first.items[1].message_id(), Some(id.as_str()));
        assert!(id.starts_with(SYNTHETIC_MESSAGE_ID_PREFIX), "{id}");
        assert_eq!(id.len(), SYNTHETIC_MESSAGE_ID_PREFIX.len() + 32);
        assert!(
            id[SYNTHETIC_MESSAGE_ID_PREFIX.len()..]
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(event(&first.items[0])["messageId"], json!(id));
        // The id is the hash of the event as stored, so the same event sent alone is the same.
        let single = parse(CallKind::Identify, &one).expect("identify");
        assert_eq!(single.items[0].message_id(), Some(id.as_str()));
        // The pinned value: the first 16 bytes of the SHA-256 of the compact JSON.
        let digest = digest::digest(&digest::SHA256, one.to_string().as_bytes());
        let mut hex = String::new();
        push_hex(&mut hex, &digest.as_ref()[..16]);
        assert_eq!(id, format!("ingest-{hex}"));
        // Identical copies in one request get distinct, still deterministic ids.
        let copies = batch_of(vec![one.clone(), other, one.clone(), one]);
        let ids: Vec<&str> = copies.items.iter().filter_map(Item::message_id).collect();
        assert_eq!(ids[0], id);
        assert_eq!(ids[2], format!("{id}-1"));
        assert_eq!(ids[3], format!("{id}-2"));
        assert_eq!(copies, batch_of(copies_source()));

        fn copies_source() -> Vec<Value> {
            let at = "2026-01-02T03:04:05Z";
            let one = json!({"type": "identify", "userId": "u1", "traits": {"vip": true}, "timestamp": at});
            let other =
                json!({"type": "identify", "userId": "u2", "traits": {"vip": true}, "sentAt": at});
            vec![one.clone(), other, one.clone(), one]
        }
    }

    #[test]
    fn synthesized_ids_cover_the_merged_context() {
        let event = json!({"type": "identify", "userId": "u1", "timestamp": "2026-01-02"});
        let a = parse(
            CallKind::Batch,
            &json!({"batch": [event.clone()], "context": {"x": 1}}),
        )
        .expect("a");
        let b = parse(
            CallKind::Batch,
            &json!({"batch": [event], "context": {"x": 2}}),
        )
        .expect("b");
        assert_ne!(a.items[0].message_id(), b.items[0].message_id());
    }

    #[test]
    fn an_event_without_a_time_is_never_taken_for_a_repeat() {
        // Add, remove, add again for one user, each in its own request, no messageId and no
        // time: three changes, so three different ids (the third must not be dropped as the
        // first's repeat).
        let add = json!({"type": "identify", "userId": "u1", "traits": {"aud": true}});
        let ids: Vec<String> = (0..3)
            .map(|_| {
                let parsed = batch_of(vec![add.clone()]);
                parsed.items[0].message_id().expect("an id").to_owned()
            })
            .collect();
        assert_ne!(ids[0], ids[1]);
        assert_ne!(ids[0], ids[2]);
        let hash_part = &ids[0][..SYNTHETIC_MESSAGE_ID_PREFIX.len() + 32];
        for id in &ids {
            assert!(id.starts_with(hash_part), "{id}");
            let random = id[hash_part.len()..].strip_prefix("-u").expect("-u");
            assert_eq!(random.len(), 16, "{id}");
        }
        // A null time is no time; any present one makes the id the content's alone.
        let null_time = json!({"type": "identify", "userId": "u1", "timestamp": null});
        assert_ne!(batch_of(vec![null_time.clone()]), batch_of(vec![null_time]));
        for field in ["timestamp", "originalTimestamp", "sentAt", "receivedAt"] {
            let timed = json!({"type": "identify", "userId": "u1", field: "2026-01-02"});
            assert_eq!(
                batch_of(vec![timed.clone()]),
                batch_of(vec![timed]),
                "{field}"
            );
        }
    }
}
