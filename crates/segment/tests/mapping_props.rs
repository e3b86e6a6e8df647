//! Property tests of mapping-kit invariants: `@literal` and raw values come back unchanged,
//! `@path` finds every `@flatten`ed leaf, `@json` round-trips, and text helpers agree with Rust.

use proptest::prelude::*;
use segment::mapping::{Mapping, number_to_string};
use serde_json::{Map, Value, json};

/// Keys that need no quoting in a path and are not directives.
fn plain_key() -> impl Strategy<Value = String> {
    "[a-zA-Z_][a-zA-Z0-9_ -]{0,6}"
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-(1i64 << 53)..(1i64 << 53)).prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "[ -~]{0,8}".prop_map(Value::String),
    ]
}

/// Any JSON whose object keys are plain (so no object is a directive).
fn json_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(plain_key(), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// JSON that `@json` can round-trip exactly: integers only (1.0 would come back as 1).
fn integral_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-(1i64 << 53)..(1i64 << 53)).prop_map(|n| json!(n)),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn resolve(mapping: &Value, event: &Value) -> Result<Option<Value>, TestCaseError> {
    let compiled = Mapping::compile(mapping)
        .map_err(|e| TestCaseError::fail(format!("{mapping} did not compile: {e}")))?;
    compiled
        .resolve_value(event)
        .map_err(|e| TestCaseError::fail(format!("{mapping} failed: {e}")))
}

/// Whether any object inside has a key JavaScript treats as an array index.
fn has_index_key(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.iter().any(|(k, v)| {
            let index_like = !k.is_empty()
                && k.bytes().all(|b| b.is_ascii_digit())
                && (k == "0" || !k.starts_with('0'))
                && k.parse::<u64>().is_ok_and(|n| n < u64::from(u32::MAX));
            index_like || has_index_key(v)
        }),
        Value::Array(items) => items.iter().any(has_index_key),
        _ => false,
    }
}

/// Every leaf of `value` (empty objects and arrays have none) with its dotted path.
fn leaves(value: &Value, prefix: &str, out: &mut Vec<(String, Value)>) {
    let join = |k: &str| {
        if prefix.is_empty() {
            k.to_owned()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                leaves(v, &join(k), out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                leaves(v, &join(&i.to_string()), out);
            }
        }
        other => out.push((prefix.to_owned(), other.clone())),
    }
}

proptest! {
    #[test]
    fn literal_returns_its_value_unchanged(value in json_value()) {
        let got = resolve(&json!({"@literal": value}), &json!({}))?;
        prop_assert_eq!(got, Some(value.clone()));
        // A raw value in a field is returned unchanged too.
        let got = resolve(&json!({"field": value}), &json!({}))?;
        prop_assert_eq!(got, Some(json!({"field": value})));
    }

    #[test]
    fn path_finds_every_flattened_leaf(
        root in prop::collection::btree_map(plain_key(), json_value(), 1..5)
    ) {
        let root = Value::Object(root.into_iter().collect());
        let event = json!({"root": root});
        let flat = resolve(&json!({"@flatten": {"separator": ".", "value": {"@path": "$.root"}}}), &event)?;
        let Some(Value::Object(flat)) = flat else {
            return Err(TestCaseError::fail(format!("@flatten gave {flat:?}")));
        };
        let mut expected = Vec::new();
        leaves(&root, "", &mut expected);
        prop_assert_eq!(flat.len(), expected.len(), "flattened {:?}", flat);
        for (key, value) in &flat {
            let found = resolve(&json!({"@path": key}), &root)?;
            prop_assert_eq!(found.as_ref(), Some(value), "key {:?}", key);
        }
    }

    #[test]
    fn json_encode_then_decode_round_trips(value in integral_json()) {
        let mapping = json!({"@json": {"mode": "decode", "value": {"@json": {"mode": "encode", "value": {"@path": "$.v"}}}}});
        prop_assert_eq!(resolve(&mapping, &json!({"v": value}))?, Some(value.clone()));
        // The encoded text is what serde_json (same escaping) writes for it, except that
        // JavaScript puts integer-like keys first.
        if !has_index_key(&value) {
            let text = resolve(&json!({"@json": {"mode": "encode", "value": {"@path": "$.v"}}}), &json!({"v": value}))?;
            prop_assert_eq!(text, Some(Value::String(value.to_string())));
        }
    }

    #[test]
    fn json_encode_puts_integer_keys_first(n in 0u32..1000, m in 0u32..1000, k in "[a-z]{1,4}") {
        prop_assume!(n != m);
        let value = json!({k.clone(): 0, n.to_string(): 1, m.to_string(): 2});
        let text = resolve(&json!({"@json": {"mode": "encode", "value": {"@path": "$.v"}}}), &json!({"v": value}))?;
        let (lo, hi) = if n < m { ((n, 1), (m, 2)) } else { ((m, 2), (n, 1)) };
        let expected = format!("{{\"{}\":{},\"{}\":{},\"{k}\":0}}", lo.0, lo.1, hi.0, hi.1);
        prop_assert_eq!(text, Some(Value::String(expected)));
    }

    #[test]
    fn templates_print_numbers_as_javascript(n in any::<f64>().prop_filter("finite", |f| f.is_finite())) {
        let got = resolve(&json!({"@template": "{{n}}"}), &json!({"n": n}))?;
        let Some(Value::String(text)) = got else {
            return Err(TestCaseError::fail(format!("template gave {got:?}")));
        };
        prop_assert_eq!(&text, &number_to_string(n));
        let back: f64 = text.parse().map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        prop_assert!(back == n, "{} printed as {}", n, text);
    }

    #[test]
    fn templates_insert_strings_verbatim(s in "[^{}]{0,20}") {
        let got = resolve(&json!({"@template": "<{{s}}>"}), &json!({"s": s}))?;
        prop_assert_eq!(got, Some(Value::String(format!("<{s}>"))));
    }

    #[test]
    fn replace_matches_str_replace(
        text in "[abAB+.$ ]{0,24}",
        pattern in "[abAB+.$ ]{1,3}",
        replacement in "[xy+. ]{0,4}",
    ) {
        let mapping = json!({"@replace": {"pattern": pattern, "replacement": replacement, "value": {"@path": "$.t"}}});
        let got = resolve(&mapping, &json!({"t": text}))?;
        prop_assert_eq!(got, Some(Value::String(text.replace(&pattern, &replacement))));
    }

    #[test]
    fn case_matches_rust_case_mapping(s in any::<String>()) {
        let lower = resolve(&json!({"@case": {"operator": "lower", "value": {"@path": "$.s"}}}), &json!({"s": s}))?;
        let upper = resolve(&json!({"@case": {"operator": "upper", "value": {"@path": "$.s"}}}), &json!({"s": s}))?;
        prop_assert_eq!(lower, Some(Value::String(s.to_lowercase())));
        prop_assert_eq!(upper, Some(Value::String(s.to_uppercase())));
    }

    #[test]
    fn missing_paths_are_dropped_whatever_the_event(event in json_value()) {
        prop_assume!(event.is_object());
        let got = resolve(&json!({"kept": 1, "gone": {"@path": "$.__surely_absent__.x"}}), &event)?;
        prop_assert_eq!(got, Some(json!({"kept": 1})));
    }
}
