//! JavaScript semantics that mapping-kit inherits: `Number#toString`, `String(value)`, loose
//! `value != ''`, `String#trim`, `JSON.stringify`, UTF-16 lengths and array-index keys.

use std::fmt::Write as _;

use super::value::{Handle, View};

/// `Number.prototype.toString()` for any double, e.g. `1` for 1.0, `1e+21`, `0.30000000000000004`.
pub fn number_to_string(value: f64) -> String {
    let mut out = String::new();
    push_number(value, &mut out);
    out
}

/// Appends `Number.prototype.toString()` of `value`.
pub(crate) fn push_number(value: f64, out: &mut String) {
    if value.is_nan() {
        out.push_str("NaN");
        return;
    }
    if value == 0.0 {
        out.push('0');
        return;
    }
    if value.is_infinite() {
        out.push_str(if value > 0.0 { "Infinity" } else { "-Infinity" });
        return;
    }
    if value < 0.0 {
        out.push('-');
    }
    // Rust prints the shortest digits that round-trip, as ECMAScript requires; only the layout
    // differs, so take the digits and the exponent and lay them out the JavaScript way.
    let mut sci = String::with_capacity(32);
    let _ = write!(sci, "{:e}", value.abs());
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let digits = even_on_tie(value.abs(), digits, exponent);
    let k = digits.len() as i32;
    let n = exponent + 1;
    if k <= n && n <= 21 {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', (n - k) as usize));
    } else if 0 < n && n <= 21 {
        let (int, frac) = digits.split_at(n as usize);
        out.push_str(int);
        out.push('.');
        out.push_str(frac);
    } else if -6 < n && n <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-n) as usize));
        out.push_str(&digits);
    } else {
        let (first, rest) = digits.split_at(1);
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        out.push('e');
        let e = n - 1;
        out.push(if e >= 0 { '+' } else { '-' });
        out.push_str(&e.unsigned_abs().to_string());
    }
}

/// ECMAScript's Number::toString picks, of two shortest digit strings equally close to the
/// value, the even one; Rust's shortest formatting may pick the odd one (1237689483383240.25
/// is `…240.2` in JavaScript, `…240.3` in Rust). Ties need the value to sit exactly halfway,
/// which only happens with the longest (16–17 digit) forms.
fn even_on_tie(value: f64, digits: String, exponent: i32) -> String {
    let k = digits.len();
    if k < 16 {
        return digits;
    }
    // The exact decimal expansion (a double has one), as many digits as it takes.
    let exact = format!("{value:.800e}");
    let Some((exact_mantissa, exact_exponent)) = exact.split_once('e') else {
        return digits;
    };
    if exact_exponent.parse::<i32>().ok() != Some(exponent) {
        return digits;
    }
    let exact_digits: Vec<u8> = exact_mantissa.bytes().filter(|b| *b != b'.').collect();
    if exact_digits.len() <= k
        || exact_digits[k] != b'5'
        || exact_digits[k + 1..].iter().any(|b| *b != b'0')
    {
        return digits;
    }
    let (Ok(low), Ok(shortest)) = (
        std::str::from_utf8(&exact_digits[..k])
            .unwrap_or("x")
            .parse::<u64>(),
        digits.parse::<u64>(),
    ) else {
        return digits;
    };
    let even = if low % 2 == 0 { low } else { low + 1 };
    if even == shortest || even.to_string().len() != k {
        return digits;
    }
    let candidate = even.to_string();
    let text = format!("{}.{}e{exponent}", &candidate[..1], &candidate[1..]);
    if text.parse::<f64>().ok() == Some(value) {
        candidate.trim_end_matches('0').to_owned()
    } else {
        digits
    }
}

/// Appends the string JavaScript makes of a value in a template or an array join:
/// `null`/`undefined` give "", arrays join their items with ",", objects give
/// `[object Object]`.
pub(crate) fn push_string(h: Handle<'_, '_>, out: &mut String) {
    match h.view() {
        View::Undef | View::Null => {}
        View::Bool(b) => out.push_str(if b { "true" } else { "false" }),
        View::Num(n) => push_number(n, out),
        View::Str(s) => out.push_str(s),
        View::Object => out.push_str("[object Object]"),
        View::Array => {
            if let Some(items) = h.items() {
                for (i, item) in items.enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    push_string(item, out);
                }
            }
        }
    }
}

/// `value != ''` under loose equality, for a value that is neither null nor undefined:
/// false for "", 0, false, [] and arrays that join to "".
pub(crate) fn loosely_non_empty(h: Handle<'_, '_>) -> bool {
    match h.view() {
        View::Undef | View::Null => false,
        View::Str(s) => !s.is_empty(),
        View::Num(n) => n != 0.0,
        View::Bool(b) => b,
        View::Object => true,
        View::Array => !joins_to_empty(h),
    }
}

fn joins_to_empty(h: Handle<'_, '_>) -> bool {
    let Some(mut items) = h.items() else {
        return false;
    };
    match (items.next(), items.next()) {
        (None, _) => true,
        (Some(only), None) => match only.view() {
            View::Undef | View::Null => true,
            View::Str(s) => s.is_empty(),
            View::Array => joins_to_empty(only),
            _ => false,
        },
        (Some(_), Some(_)) => false,
    }
}

/// JavaScript's WhiteSpace and LineTerminator code points (what `String#trim` removes).
fn is_js_space(c: char) -> bool {
    matches!(
        c,
        '\u{9}'..='\u{D}'
            | ' '
            | '\u{A0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200A}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202F}'
            | '\u{205F}'
            | '\u{3000}'
            | '\u{FEFF}'
    )
}

/// `String.prototype.trim`.
pub(crate) fn trim(s: &str) -> &str {
    s.trim_matches(is_js_space)
}

/// The length of a string in UTF-16 code units, as JavaScript counts it.
pub(crate) fn utf16_len(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

/// The UTF-16 unit at `index` as a string. Half of a surrogate pair cannot live in a Rust
/// string, so it comes back as U+FFFD.
pub(crate) fn utf16_unit_at(s: &str, index: usize) -> Option<String> {
    let mut pos = 0usize;
    for c in s.chars() {
        let width = c.len_utf16();
        if index < pos + width {
            return Some(if width == 1 {
                c.to_string()
            } else {
                '\u{FFFD}'.to_string()
            });
        }
        pos += width;
    }
    None
}

/// The string's UTF-16 units, each as a string (U+FFFD for surrogate halves).
pub(crate) fn utf16_units(s: &str) -> impl Iterator<Item = String> + '_ {
    s.chars().flat_map(|c| {
        let units = c.len_utf16();
        let text = if units == 1 { c } else { '\u{FFFD}' };
        std::iter::repeat_n(text.to_string(), units)
    })
}

/// The array index a property key stands for: a canonical decimal below 2^32 - 1.
pub(crate) fn array_index(key: &str) -> Option<u32> {
    let bytes = key.as_bytes();
    if bytes.is_empty() || bytes.len() > 10 || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if bytes.len() > 1 && bytes[0] == b'0' {
        return None;
    }
    let n: u64 = key.parse().ok()?;
    if n < u64::from(u32::MAX) {
        u32::try_from(n).ok()
    } else {
        None
    }
}

/// `JSON.stringify(value)`; `None` where JavaScript returns `undefined`.
pub(crate) fn stringify(h: Handle<'_, '_>) -> Option<String> {
    let mut out = String::new();
    write_json(h, &mut out).then_some(out)
}

fn write_json(h: Handle<'_, '_>, out: &mut String) -> bool {
    match h.view() {
        View::Undef => return false,
        View::Null => out.push_str("null"),
        View::Bool(b) => out.push_str(if b { "true" } else { "false" }),
        View::Num(n) => {
            if n.is_finite() {
                push_number(n, out);
            } else {
                out.push_str("null");
            }
        }
        View::Str(s) => push_quoted(s, out),
        View::Array => {
            out.push('[');
            if let Some(items) = h.items() {
                for (i, item) in items.enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    if !write_json(item, out) {
                        out.push_str("null");
                    }
                }
            }
            out.push(']');
        }
        View::Object => {
            out.push('{');
            let mut first = true;
            for (key, value) in h.entries().unwrap_or_default() {
                if matches!(value.view(), View::Undef) {
                    continue;
                }
                if !first {
                    out.push(',');
                }
                first = false;
                let mut k = String::new();
                key.push_to(&mut k);
                push_quoted(&k, out);
                out.push(':');
                write_json(value, out);
            }
            out.push('}');
        }
    }
    true
}

/// JSON.stringify's QuoteJSONString.
fn push_quoted(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{C}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn numbers_print_as_javascript_does() {
        let cases: &[(f64, &str)] = &[
            (1.0, "1"),
            (-1.0, "-1"),
            (0.0, "0"),
            (-0.0, "0"),
            (1.5, "1.5"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (123456789012345680000.0, "123456789012345680000"),
            (1e-6, "0.000001"),
            (1e-7, "1e-7"),
            (1.5e-7, "1.5e-7"),
            (-2.5e-10, "-2.5e-10"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (100.0, "100"),
            (0.5, "0.5"),
            (123.456, "123.456"),
            (9007199254740993.0, "9007199254740992"),
            (12345678901234567890.0, "12345678901234567000"),
            // Halfway between two shortest forms: the even one, as in JavaScript.
            (1_237_689_483_383_240.0 + 0.25, "1237689483383240.2"),
            (724_426_514_822_791.0 + 0.25, "724426514822791.2"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
        ];
        for (value, expected) in cases {
            assert_eq!(number_to_string(*value), *expected, "for {value:?}");
        }
    }

    proptest! {
        #[test]
        fn number_strings_round_trip(bits in any::<u64>()) {
            let value = f64::from_bits(bits);
            prop_assume!(value.is_finite());
            let text = number_to_string(value);
            let back: f64 = text.parse().map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
            // -0 prints as "0", as in JavaScript.
            prop_assert!(back == value, "{} printed as {} read back as {}", value, text, back);
        }

        #[test]
        fn integers_print_as_their_digits(n in -(1i64 << 53)..(1i64 << 53)) {
            prop_assert_eq!(number_to_string(n as f64), n.to_string());
        }
    }

    #[test]
    fn values_stringify_as_in_templates() {
        let cases = [
            (json!(null), ""),
            (json!(true), "true"),
            (json!(false), "false"),
            (json!(2.0), "2"),
            (json!("x"), "x"),
            (json!([1, [2, 3], null, "a"]), "1,2,3,,a"),
            (json!({"a": 1}), "[object Object]"),
            (json!([{"a": 1}, {}]), "[object Object],[object Object]"),
        ];
        for (value, expected) in cases {
            let mut out = String::new();
            push_string(Handle::Json(&value), &mut out);
            assert_eq!(out, expected, "for {value}");
        }
    }

    #[test]
    fn blank_follows_loose_equality_with_empty_string() {
        let cases = [
            (json!(""), false),
            (json!(0), false),
            (json!(0.0), false),
            (json!(false), false),
            (json!([]), false),
            (json!([""]), false),
            (json!([null]), false),
            (json!([[]]), false),
            (json!("0"), true),
            (json!(" "), true),
            (json!([0]), true),
            (json!(["", ""]), true),
            (json!({}), true),
            (json!(true), true),
            (json!(-1), true),
        ];
        for (value, expected) in cases {
            assert_eq!(
                loosely_non_empty(Handle::Json(&value)),
                expected,
                "for {value}"
            );
        }
    }

    #[test]
    fn trim_uses_javascript_whitespace() {
        assert_eq!(trim(" \t\n a b \u{FEFF}\u{A0}"), "a b");
        // NEL is whitespace to Rust but not to JavaScript.
        assert_eq!(trim("\u{85}a"), "\u{85}a");
    }

    #[test]
    fn array_indexes_are_canonical() {
        assert_eq!(array_index("0"), Some(0));
        assert_eq!(array_index("42"), Some(42));
        assert_eq!(array_index("4294967294"), Some(4_294_967_294));
        for bad in [
            "",
            "01",
            "-1",
            "1.0",
            "4294967295",
            "99999999999",
            "a",
            " 1",
        ] {
            assert_eq!(array_index(bad), None, "for {bad:?}");
        }
    }

    #[test]
    fn utf16_helpers_count_code_units() {
        assert_eq!(utf16_len("a😀é"), 4);
        assert_eq!(utf16_unit_at("a😀é", 0).as_deref(), Some("a"));
        assert_eq!(utf16_unit_at("a😀é", 1).as_deref(), Some("\u{FFFD}"));
        assert_eq!(utf16_unit_at("a😀é", 3).as_deref(), Some("é"));
        assert_eq!(utf16_unit_at("a😀é", 4), None);
        assert_eq!(utf16_units("a😀").count(), 3);
    }

    #[test]
    fn stringify_matches_json_stringify() {
        let cases = [
            (
                json!({"a": [1, null, "x\"\n\u{1}"], "b": 1.0}),
                r#"{"a":[1,null,"x\"\n\u0001"],"b":1}"#,
            ),
            (json!({"10": 1, "9": 2, "x": 3}), r#"{"9":2,"10":1,"x":3}"#),
            (json!(1e21), "1e+21"),
            (json!("é/\u{2028}"), "\"é/\u{2028}\""),
            (json!([]), "[]"),
            (json!({}), "{}"),
        ];
        for (value, expected) in cases {
            assert_eq!(
                stringify(Handle::Json(&value)).as_deref(),
                Some(expected),
                "for {value}"
            );
        }
    }
}
