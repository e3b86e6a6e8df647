//! Numbers round-trip exactly: any finite double, written as JavaScript's `JSON.stringify`
//! writes it (`number_to_string`, itself checked against Node by the differential test),
//! comes out of `@path` as the same double (and JSON text that reads back as it), and out of
//! `@template`, `@json` and `@liquid` as the very same text. Integers above 2^53 stay exact
//! as values; inside text they print as JavaScript prints them, as in Segment.

use proptest::prelude::*;
use segment::mapping::{Mapping, number_to_string};
use serde_json::{Value, json};

/// `@path`, `@template`, `@json` and `@liquid` of the event's `x`.
fn mapping() -> Mapping {
    match Mapping::compile(&json!({
        "path": {"@path": "$.x"},
        "template": {"@template": "{{x}}"},
        "json": {"@json": {"mode": "encode", "value": {"@path": "$.x"}}},
        "liquid": {"@liquid": "{{ x }}"},
        "array": {"@json": {"mode": "encode", "value": [{"@path": "$.x"}]}},
    })) {
        Ok(m) => m,
        Err(e) => panic!("mapping: {e}"),
    }
}

/// Sends `text` through the evaluator as an event's number; checks every way out.
fn round_trip(m: &Mapping, text: &str) -> Result<(), TestCaseError> {
    let event: Value = serde_json::from_str(&format!("{{\"x\":{text}}}"))
        .map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
    let out = m
        .resolve_value(&event)
        .map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?
        .unwrap_or(Value::Null);
    let expected: f64 = text
        .parse()
        .map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
    let path = out["path"].as_f64();
    prop_assert_eq!(path, Some(expected), "@path of {}", text);
    // Written out (as `mapping eval`, `plan` and request bodies write JSON) and read back.
    let written = serde_json::to_string(&out["path"]).unwrap_or_default();
    let reread: Option<f64> = serde_json::from_str::<Value>(&written)
        .ok()
        .and_then(|v| v.as_f64());
    prop_assert_eq!(reread, Some(expected), "{} written as {}", text, written);
    prop_assert_eq!(out["template"].as_str(), Some(text), "@template");
    prop_assert_eq!(out["json"].as_str(), Some(text), "@json");
    prop_assert_eq!(out["liquid"].as_str(), Some(text), "@liquid");
    let array = format!("[{text}]");
    prop_assert_eq!(out["array"].as_str(), Some(array.as_str()), "@json array");
    Ok(())
}

/// A decimal with `digits` significant digits and the point anywhere, then as JavaScript
/// writes the double it stands for.
fn js_decimal() -> impl Strategy<Value = String> {
    (1u64..100_000_000_000_000_000, 0u32..20, any::<bool>()).prop_map(|(digits, point, neg)| {
        let value = digits as f64 / 10f64.powi(point as i32);
        let text = format!("{}{}", if neg { "-" } else { "" }, digits);
        let parsed: f64 = if point == 0 {
            text.parse().unwrap_or(value)
        } else {
            let s = digits.to_string();
            let p = (point as usize).min(s.len());
            let (int, frac) = s.split_at(s.len() - p);
            let int = if int.is_empty() { "0" } else { int };
            format!("{}{int}.{frac}", if neg { "-" } else { "" })
                .parse()
                .unwrap_or(value)
        };
        number_to_string(parsed)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_double_as_javascript_writes_it_survives(bits in any::<u64>()) {
        let value = f64::from_bits(bits);
        prop_assume!(value.is_finite() && value != 0.0);
        round_trip(&mapping(), &number_to_string(value))?;
    }

    #[test]
    fn sixteen_and_seventeen_digit_decimals_survive(text in js_decimal()) {
        prop_assume!(text != "0");
        round_trip(&mapping(), &text)?;
    }
}

#[test]
fn known_decimals_survive() {
    let m = mapping();
    for text in [
        "95.84963262304987",
        "0.30000000000000004",
        "1.7976931348623157e+308",
        "5e-324",
        "2.2250738585072014e-308",
        "1e+21",
        "1e-7",
        "123456789012345680000",
        "-0.000001",
        "9007199254740991",
        "4.35",
        "1.005",
    ] {
        if let Err(e) = round_trip(&m, text) {
            panic!("{e}");
        }
    }
}

#[test]
fn integers_above_2_pow_53_stay_exact_as_values() {
    let m = mapping();
    let event: Value = serde_json::from_str(r#"{"x": 9007199254740993}"#).unwrap_or(Value::Null);
    let out = m
        .resolve_value(&event)
        .ok()
        .flatten()
        .unwrap_or(Value::Null);
    assert_eq!(out["path"].to_string(), "9007199254740993");
    // In text, JavaScript's double: what Segment writes.
    assert_eq!(out["template"], "9007199254740992");
    assert_eq!(out["json"], "9007199254740992");
    assert_eq!(out["liquid"], "9007199254740992");
}
