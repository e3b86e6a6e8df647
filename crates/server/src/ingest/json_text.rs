//! JSON text as Segment's SDKs write it, where serde_json alone would refuse or lose something:
//! a lone UTF-16 surrogate escape (a JavaScript or Python string cut inside an emoji) becomes
//! U+FFFD, and a numeric `messageId` is read as the text it was written with. Both are looked at
//! only when needed (a parse that failed; a `messageId` that is not an exact integer), so the
//! common path is serde_json's alone.

use std::cell::OnceCell;

use serde::Deserialize;
use serde::de::IgnoredAny;

/// A copy of `text` in which the `\u` escape of every lone UTF-16 surrogate is `\ufffd`, or
/// `None` when `text` has none.
///
/// A lone surrogate is a high one (`\ud800`–`\udbff`) not directly followed by the escape of a
/// low one (`\udc00`–`\udfff`), or a low one not directly preceded by a high one: what
/// JavaScript's `TextEncoder` turns into U+FFFD. An escaped backslash (`\\`) is skipped as a
/// pair, so `\\ud83d` (a backslash and the text `ud83d`) is left alone. Every replacement has
/// the length of what it replaces, so positions in the copy are those of `text`.
///
/// Backslashes are read as escapes wherever they are, inside strings or not: in JSON that parses
/// there is none outside a string, and in JSON that does not, the copy fails to parse at the
/// same place or before it.
pub fn replace_lone_surrogates(text: &[u8]) -> Option<Vec<u8>> {
    let mut copy: Option<Vec<u8>> = None;
    let mut at = 0;
    while let Some(offset) = text.get(at..).and_then(find_backslash) {
        let escape = at + offset;
        if text.get(escape + 1) != Some(&b'u') {
            // `\\`, `\"`, `\n`, ...: the escaped byte is not the start of another escape.
            at = escape + 2;
            continue;
        }
        at = escape + 6;
        match hex4(text, escape + 2) {
            Some(0xD800..=0xDBFF) => {
                let low_follows = text.get(at) == Some(&b'\\')
                    && text.get(at + 1) == Some(&b'u')
                    && matches!(hex4(text, at + 2), Some(0xDC00..=0xDFFF));
                if low_follows {
                    at += 6;
                    continue;
                }
            }
            Some(0xDC00..=0xDFFF) => {}
            // Another character, or not an escape at all (the parser reports that).
            _ => {
                at = escape + 2;
                continue;
            }
        }
        let copy = copy.get_or_insert_with(|| text.to_vec());
        copy[escape + 2..escape + 6].copy_from_slice(b"fffd");
    }
    copy
}

fn find_backslash(text: &[u8]) -> Option<usize> {
    text.iter().position(|&byte| byte == b'\\')
}

/// The four hex digits (either case) at `at`, as a number.
fn hex4(text: &[u8], at: usize) -> Option<u16> {
    let digits = text.get(at..at.checked_add(4)?)?;
    digits.iter().try_fold(0u16, |unit, &digit| {
        let value = char::from(digit).to_digit(16)?;
        Some(unit << 4 | u16::try_from(value).ok()?)
    })
}

/// How a body holds its events, for [`WrittenIds`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `{"batch": [event, ...], ...}`: `/v1/batch`.
    Batch,
    /// `[event, ...]`: a batched webhook.
    Array,
    /// The body is the one event: `/v1/identify`, `/v1/track`, a single webhook.
    Single,
}

/// The `messageId` of each event of a body as written in its text, read from the text (once)
/// only when asked for: serde_json turns a number that is not an exact `i64` or `u64`
/// (`1e3`, `1.50`, `123456789012345678901234567890`) into an `f64`, which loses the digits.
pub struct WrittenIds<'a> {
    text: &'a [u8],
    shape: Shape,
    ids: OnceCell<Vec<Option<&'a str>>>,
}

impl<'a> WrittenIds<'a> {
    /// For a body `text` that parsed as JSON of the given shape.
    pub fn new(text: &'a [u8], shape: Shape) -> Self {
        Self {
            text,
            shape,
            ids: OnceCell::new(),
        }
    }

    /// The text of event `index`'s `messageId` (the last one, if the event repeats the key),
    /// when it is a JSON number.
    pub fn number(&self, index: usize) -> Option<&'a str> {
        let ids = self.ids.get_or_init(|| scan(self.text, self.shape));
        let text = ids.get(index).copied().flatten()?;
        text.starts_with(|c: char| c == '-' || c.is_ascii_digit())
            .then_some(text)
    }
}

/// Each event's raw `messageId` value (`None` where there is none, or the event is not an
/// object); empty if the text does not have the shape (it had, when it was parsed).
fn scan(text: &[u8], shape: Shape) -> Vec<Option<&str>> {
    let events = match shape {
        Shape::Single => return vec![member_of(text, skip_space(text, 0), "messageId")],
        Shape::Array => elements(text, skip_space(text, 0)),
        Shape::Batch => {
            let start = skip_space(text, 0);
            match member_span(text, start, "batch") {
                Some((at, _)) => elements(text, at),
                None => None,
            }
        }
    };
    events
        .unwrap_or_default()
        .into_iter()
        .map(|at| member_of(text, at, "messageId"))
        .collect()
}

/// The text of the value of member `key` of the object at `at` (the last, if repeated, as
/// serde_json's `Value` keeps the last); `None` if there is none or `at` is not an object.
fn member_of<'a>(text: &'a [u8], at: usize, key: &str) -> Option<&'a str> {
    let (start, end) = member_span(text, at, key)?;
    std::str::from_utf8(text.get(start..end)?).ok()
}

/// Where the value of member `key` of the object at `at` starts and ends.
fn member_span(text: &[u8], at: usize, key: &str) -> Option<(usize, usize)> {
    if text.get(at) != Some(&b'{') {
        return None;
    }
    let mut found = None;
    let mut at = skip_space(text, at + 1);
    if text.get(at) == Some(&b'}') {
        return None;
    }
    loop {
        let (name, after) = next_value::<std::borrow::Cow<'_, str>>(text, at)?;
        at = skip_space(text, after);
        if text.get(at) != Some(&b':') {
            return None;
        }
        let start = skip_space(text, at + 1);
        let (_, end) = next_value::<IgnoredAny>(text, start)?;
        if name == key {
            found = Some((start, end));
        }
        at = skip_space(text, end);
        match text.get(at) {
            Some(b',') => at = skip_space(text, at + 1),
            Some(b'}') => return found,
            _ => return None,
        }
    }
}

/// Where each element of the array at `at` starts.
fn elements(text: &[u8], at: usize) -> Option<Vec<usize>> {
    if text.get(at) != Some(&b'[') {
        return None;
    }
    let mut starts = Vec::new();
    let mut at = skip_space(text, at + 1);
    if text.get(at) == Some(&b']') {
        return Some(starts);
    }
    loop {
        starts.push(at);
        let (_, end) = next_value::<IgnoredAny>(text, at)?;
        at = skip_space(text, end);
        match text.get(at) {
            Some(b',') => at = skip_space(text, at + 1),
            Some(b']') => return Some(starts),
            _ => return None,
        }
    }
}

/// The JSON value that starts at `at`, read by serde_json, and where it ends.
fn next_value<'a, T: Deserialize<'a>>(text: &'a [u8], at: usize) -> Option<(T, usize)> {
    let rest = text.get(at..)?;
    let mut values = serde_json::Deserializer::from_slice(rest).into_iter::<T>();
    let value = values.next()?.ok()?;
    Some((value, at + values.byte_offset()))
}

fn skip_space(text: &[u8], mut at: usize) -> usize {
    while matches!(text.get(at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        at += 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use proptest::test_runner::RngSeed;
    use serde_json::{Value, json};

    use super::*;

    fn fixed(text: &str) -> Option<String> {
        replace_lone_surrogates(text.as_bytes())
            .map(|copy| String::from_utf8(copy).expect("only ASCII digits change"))
    }

    #[test]
    fn lone_surrogates_are_replaced_and_pairs_kept() {
        let cases: &[(&str, Option<&str>)] = &[
            (r#""plain""#, None),
            (r#""\ud83d\ude00""#, None),
            (r#""\uD83D\uDE00""#, None),
            (r#""\u00e9\n\"\\""#, None),
            (r#""Ann \ud83d""#, Some(r#""Ann \ufffd""#)),
            (r#""\uD83D""#, Some(r#""\ufffd""#)),
            (r#""\ude00 alone""#, Some(r#""\ufffd alone""#)),
            // A high surrogate before another high one that has its low one.
            (r#""\ud83d\ud83d\ude00""#, Some(r#""\ufffd\ud83d\ude00""#)),
            // Two lows, two highs, a low before a high.
            (r#""\ude00\ude00""#, Some(r#""\ufffd\ufffd""#)),
            (r#""\ud800\udbff""#, Some(r#""\ufffd\ufffd""#)),
            (r#""\ude00\ud83d""#, Some(r#""\ufffd\ufffd""#)),
            // A high surrogate before another escape, or at the very end.
            (r#""\ud83d\n""#, Some(r#""\ufffd\n""#)),
            (r#""\ud83d\u0041""#, Some(r#""\ufffd\u0041""#)),
            (r#""\ud83d"#, Some(r#""\ufffd"#)),
            // Escaped backslashes: `\\ud83d` is text, `\\\ud83d` a backslash and an escape.
            (r#""\\ud83d""#, None),
            (r#""\\\\ud83d""#, None),
            (r#""\\\ud83d""#, Some(r#""\\\ufffd""#)),
            (r#""\ud83d\\ude00""#, Some(r#""\ufffd\\ude00""#)),
            // Keys too.
            (r#"{"\udc00": 1}"#, Some(r#"{"\ufffd": 1}"#)),
            // Not escapes: left for the parser to report.
            (r#""\u12""#, None),
            (r#""\uzzzz""#, None),
            (r#""\"#, None),
        ];
        for &(text, want) in cases {
            assert_eq!(fixed(text).as_deref(), want, "{text}");
        }
    }

    #[test]
    fn the_copy_parses_as_text_encoder_would_read_it() {
        let copy = fixed(r#"{"a": "Ann \ud83d", "b": "\\ud83d", "c": "\ud83d\ud83d\ude00"}"#)
            .expect("lone surrogates");
        let value: Value = serde_json::from_str(&copy).expect("JSON");
        assert_eq!(
            value,
            json!({"a": "Ann \u{fffd}", "b": "\\ud83d", "c": "\u{fffd}\u{1f600}"})
        );
    }

    #[test]
    fn written_ids_are_the_text_of_numbers() {
        let body = br#"{"batch": [
            {"messageId": 123456789012345678901234567890},
            {"messageId": "s", "x": {"messageId": 1}},
            7,
            {"x": [1, 2], "messageId": 1.50},
            {"messageId": 1e3, "messageId": -0},
            {"message\u0049d": 2E+5}
        ], "batch": [
            {"messageId": 1.0}, {"messageId": null}, {"messageId": 12}, "x",
            {"messageId": [1]}, {"messageId": -1e-7}
        ]}"#;
        let ids = WrittenIds::new(body, Shape::Batch);
        let got: Vec<Option<&str>> = (0..7).map(|i| ids.number(i)).collect();
        assert_eq!(
            got,
            [
                Some("1.0"),
                None,
                Some("12"),
                None,
                None,
                Some("-1e-7"),
                None
            ]
        );

        let first = br#"{"batch": [{"messageId": 123456789012345678901234567890},
            {"messageId": "s"}, 7, {"x": [1, 2], "messageId": 1.50},
            {"messageId": 1e3, "messageId": -0}, {"message\u0049d": 2E+5}]}"#;
        let ids = WrittenIds::new(first, Shape::Batch);
        let got: Vec<Option<&str>> = (0..6).map(|i| ids.number(i)).collect();
        assert_eq!(
            got,
            [
                Some("123456789012345678901234567890"),
                None,
                None,
                Some("1.50"),
                Some("-0"),
                Some("2E+5")
            ]
        );

        let array = br#"[{"messageId": 1e30}, {}, {"messageId":  9.99 }]"#;
        let ids = WrittenIds::new(array, Shape::Array);
        assert_eq!(ids.number(0), Some("1e30"));
        assert_eq!(ids.number(1), None);
        assert_eq!(ids.number(2), Some("9.99"));
        assert_eq!(ids.number(3), None);

        let single = br#" {"type": "track", "messageId": 100000000000000000000000.5} "#;
        let ids = WrittenIds::new(single, Shape::Single);
        assert_eq!(ids.number(0), Some("100000000000000000000000.5"));
        assert_eq!(WrittenIds::new(b"[1]", Shape::Single).number(0), None);
    }

    fn config() -> ProptestConfig {
        ProptestConfig {
            cases: 1024,
            rng_seed: RngSeed::Fixed(0xfffd),
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    /// `\uXXXX`, the hex digits in either case.
    fn escape(unit: u16, upper: bool) -> String {
        if upper {
            format!("\\u{unit:04X}")
        } else {
            format!("\\u{unit:04x}")
        }
    }

    /// A piece of a JSON string's contents and the UTF-16 units it stands for: text (with
    /// quotes, backslashes, emoji), escapes of lone surrogates, of pairs and of other
    /// characters, and escaped backslashes followed by `u` and a surrogate's hex digits.
    fn piece() -> impl Strategy<Value = (String, Vec<u16>)> {
        let high = 0xD800u16..=0xDBFF;
        let low = 0xDC00u16..=0xDFFF;
        prop_oneof![
            "[a-z é😀\"\\\\/\n]{0,4}".prop_map(|text| {
                let quoted = serde_json::to_string(&text).expect("a string");
                (
                    quoted[1..quoted.len() - 1].to_owned(),
                    text.encode_utf16().collect(),
                )
            }),
            (high.clone(), any::<bool>()).prop_map(|(h, upper)| (escape(h, upper), vec![h])),
            (low.clone(), any::<bool>()).prop_map(|(l, upper)| (escape(l, upper), vec![l])),
            (high, low, any::<bool>()).prop_map(|(h, l, upper)| {
                (
                    format!("{}{}", escape(h, upper), escape(l, upper)),
                    vec![h, l],
                )
            }),
            (0xD800u16..=0xDFFF).prop_map(|u| {
                let text = format!("\\u{u:04x}");
                (format!("\\{text}"), text.encode_utf16().collect())
            }),
            (0x20u16..0xD800, any::<bool>()).prop_map(|(u, upper)| (escape(u, upper), vec![u])),
        ]
    }

    proptest! {
        #![proptest_config(config())]

        /// A string of random pieces reads, once repaired, as JavaScript's `TextEncoder` reads
        /// the same UTF-16 units: each lone surrogate is U+FFFD (a high and a low one that end
        /// up side by side are a pair, in JavaScript too). A copy is made exactly when serde_json
        /// refuses the text, and has its length.
        #[test]
        fn repaired_strings_read_as_text_encoder_would(
            pieces in proptest::collection::vec(piece(), 0..12),
        ) {
            let mut text = String::from("{\"k\": \"");
            let mut units = Vec::new();
            for (escaped, piece_units) in &pieces {
                text.push_str(escaped);
                units.extend_from_slice(piece_units);
            }
            text.push_str("\"}");
            let want = Value::String(String::from_utf16_lossy(&units));
            let as_is = serde_json::from_str::<Value>(&text);
            let repaired = replace_lone_surrogates(text.as_bytes());
            prop_assert_eq!(repaired.is_some(), as_is.is_err(), "{}", text);
            let parsed: Value = match &repaired {
                Some(copy) => {
                    prop_assert_eq!(copy.len(), text.len());
                    serde_json::from_slice(copy).expect("the repaired copy parses")
                }
                None => as_is.expect("parses as is"),
            };
            prop_assert_eq!(&parsed["k"], &want, "{}", text);
        }

        /// Random text of backslashes, quotes and hex digits: the copy keeps the length,
        /// changes only the digits of `\u` escapes (to `fffd`), and needs no second repair.
        #[test]
        fn arbitrary_text_only_changes_escape_digits(text in "[\\\\ud83DcCfFe0\"a]{0,40}") {
            let Some(copy) = replace_lone_surrogates(text.as_bytes()) else {
                return Ok(());
            };
            prop_assert_eq!(copy.len(), text.len());
            for (i, (a, b)) in text.bytes().zip(&copy).enumerate() {
                if a != *b {
                    let replaced = (i.saturating_sub(5)..i.saturating_sub(1)).any(|p| {
                        copy[p..].starts_with(b"\\ufffd") && i < p + 6
                    });
                    prop_assert!(replaced, "{:?} -> {:?} at {}", text, String::from_utf8_lossy(&copy), i);
                }
            }
            prop_assert!(replace_lone_surrogates(&copy).is_none(), "repairing is idempotent");
        }
    }
}
