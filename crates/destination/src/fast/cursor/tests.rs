//! The cursor against serde_json's JSON tree: what it accepts, the tree accepts too, with the
//! same strings and values; on the tree's own output it gives up only where it says it does.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

/// The whole text read into a JSON tree with the cursor's readers.
fn tree(text: &str) -> Option<Value> {
    let mut c = Cursor::new(text);
    let v = c.tree()?;
    c.end()?;
    Some(v)
}

/// `text` is read as the tree reads it, or given up on; never accepted where the tree refuses.
fn agrees(text: &str) -> Option<Value> {
    let ours = tree(text);
    let skipped = {
        let mut c = Cursor::new(text);
        c.skip().and_then(|()| c.end())
    };
    assert_eq!(
        ours.is_some(),
        skipped.is_some(),
        "skip and read differ on {text:?}"
    );
    if let Some(ours) = &ours {
        match serde_json::from_str::<Value>(text) {
            Ok(theirs) => assert_eq!(ours, &theirs, "{text:?}"),
            Err(e) => panic!("the cursor read {text:?}, which the tree refuses: {e}"),
        }
    }
    ours
}

#[test]
fn texts_the_tree_reads_are_read_the_same() {
    for text in [
        r#"{"a": 1, "b": [true, false, null], "c": {"d": "e"}}"#,
        " \t\r\n{ \"a\" : [ ] , \"b\" : { } } \n",
        r#""plain""#,
        r#""tab\tquote\"slash\/back\\ \b\f\n\r""#,
        r#""\u00e9\u0041\uFFFF\ud83d\ude00""#,
        "\"é 中 😀\"",
        r#"[0, -0, 1.5, -2.25e3, 1E-5, 2e+10, 123456789012345678901234567890, 0.000001]"#,
        r#"{"a": 1, "a": 2}"#,
        r#"{"": ""}"#,
        "[[[[[[[[[[1]]]]]]]]]]",
    ] {
        assert!(agrees(text).is_some(), "gave up on {text}");
    }
}

#[test]
fn texts_the_tree_refuses_are_refused() {
    for text in [
        "",
        " ",
        "{",
        "}",
        "[1,]",
        "{\"a\":1,}",
        "{\"a\" 1}",
        "{a:1}",
        "{\"a\":1}x",
        "[1 2]",
        "tru",
        "nul",
        "falsey",
        "01",
        "-",
        "1.",
        ".5",
        "1e",
        "1e+",
        "+1",
        "--1",
        "0x10",
        "1e400",
        "-1e400",
        "\"\\x\"",
        "\"\\u12\"",
        "\"\\ud83d\"",
        "\"\\ude00\"",
        "\"\\ud83d\\u0041\"",
        "\"a\u{1}b\"",
        "\"unterminated",
        "'a'",
        "\u{feff}{}",
        "NaN",
        "Infinity",
        "[1]]",
        "{\"a\":1}}",
    ] {
        assert!(agrees(text).is_none(), "read {text:?}");
    }
}

#[test]
fn it_gives_up_where_it_says_it_does() {
    let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    assert!(agrees(&deep(MAX_DEPTH)).is_some());
    assert!(agrees(&deep(MAX_DEPTH + 1)).is_none());
    assert!(serde_json::from_str::<Value>(&deep(MAX_DEPTH + 1)).is_ok());
    let long = "9".repeat(MAX_INTEGER_DIGITS);
    assert!(agrees(&long).is_some());
    assert!(agrees(&format!("{long}9")).is_none());
    // Within range for the tree, but given up on.
    for text in ["1e-301", "0e5", "1e300"] {
        assert!(serde_json::from_str::<Value>(text).is_ok(), "{text}");
        assert!(agrees(text).is_none(), "{text}");
    }
}

#[test]
fn strings_are_borrowed_unless_they_hold_escapes() {
    let text = r#"["plain", "esc\naped"]"#;
    let mut c = Cursor::new(text);
    let mut got = Vec::new();
    c.array(|c| {
        got.push(c.string()?);
        Some(())
    })
    .expect("an array of strings");
    assert!(matches!(got[0], Cow::Borrowed("plain")));
    assert!(matches!(&got[1], Cow::Owned(s) if s == "esc\naped"));
}

#[test]
fn a_reader_leaves_a_value_of_another_kind_unread() {
    let mut c = Cursor::new(" 5");
    assert_eq!(c.null(), Some(false));
    assert_eq!(c.boolean(), None);
    assert_eq!(c.offset(), 1);
    assert_eq!(c.value_text(), Some("5"));
}

/// A JSON tree of bounded size, with strings drawn to need escapes.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        (-1e200f64..1e200).prop_map(|f| json!(f)),
        any::<String>().prop_map(Value::String),
        "[a-z\"\\\\/\\t\\n\u{1}é😀]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(("[a-z\"é]{0,4}", inner), 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Bytes that make and break JSON.
const NOISE: &[&str] = &[
    "\"", "\\", "{", "}", "[", "]", ",", ":", " ", "0", "1", "-", ".", "e", "E", "+", "t", "n",
    "\\u", "d83d", "\\ude00", "\u{1}", "é", "true", "null", "1e999",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn the_trees_own_texts_are_read_back(v in json_value(), pretty in any::<bool>()) {
        let text = if pretty {
            serde_json::to_string_pretty(&v).expect("JSON")
        } else {
            v.to_string()
        };
        // The tree writes no surrogate escapes and nothing this deep, and these numbers'
        // exponents stay well inside the range the cursor reads: it must read all of it.
        prop_assert_eq!(agrees(&text), Some(v));
    }

    #[test]
    fn broken_texts_are_refused_or_read_as_the_tree_reads_them(
        v in json_value(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0..3u8, prop::sample::select(NOISE)), 1..4),
    ) {
        let mut text = v.to_string();
        for (at, kind, noise) in edits {
            let mut i = at.index(text.len() + 1);
            while !text.is_char_boundary(i) {
                i -= 1;
            }
            match kind {
                0 => text.insert_str(i, noise),
                1 => {
                    if let Some(c) = text[i..].chars().next() {
                        text.replace_range(i..i + c.len_utf8(), "");
                    }
                }
                _ => {
                    if let Some(c) = text[i..].chars().next() {
                        text.replace_range(i..i + c.len_utf8(), noise);
                    }
                }
            }
        }
        agrees(&text);
    }
}
