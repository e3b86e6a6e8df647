//! JavaScript values for the filters: liquid-rust values in and out, and LiquidJS's
//! coercions (`stringify`, `toNumber`, `toArray`) with JavaScript's number printing.

use liquid_core::model::{Array, Object, ScalarCow, State};
use std::sync::OnceLock;

use liquid_core::{Value, ValueView};

use super::super::js;
use super::super::value::{Handle, View};
use super::view::PAYLOAD_OBJECT;

/// A JavaScript value as the filters see it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Js {
    /// JavaScript's `undefined`: a variable or member that is not there.
    Undefined,
    Nil,
    Bool(bool),
    Num(f64),
    Str(String),
    /// A string of the payload, as a template reads it (`s.size`, `s[0]` in UTF-16 units).
    Text(Box<Text>),
    Arr(Vec<Js>),
    Obj(Vec<(String, Js)>),
}

/// A payload string with what a template may read of it, computed when first read.
#[derive(Debug, Clone, Default)]
pub(crate) struct Text {
    pub(crate) s: String,
    pub(crate) size: OnceLock<Js>,
    pub(crate) units: OnceLock<Vec<Js>>,
}

impl PartialEq for Text {
    fn eq(&self, other: &Self) -> bool {
        self.s == other.s
    }
}

/// The key under which an object handed between filters keeps JavaScript's key order
/// (liquid-rust's objects are hash maps); no template can name it.
const ORDER_KEY: &str = "\u{0}js-key-order";

/// The largest integer a double holds exactly (`Number.MAX_SAFE_INTEGER`).
const SAFE: f64 = 9_007_199_254_740_991.0;

/// A JSON number as a liquid value: an integer when it is one JavaScript holds exactly (so
/// it prints as digits), else a double.
fn number(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() <= SAFE {
        Value::scalar(n as i64)
    } else {
        // Printed through `__js_output`, so NaN and infinities read as in JavaScript.
        Value::scalar(n)
    }
}

impl Js {
    /// The payload (JSON from the event, or built by the mapping), in JavaScript's key order.
    pub(crate) fn from_handle(h: Handle<'_, '_>) -> Js {
        match h.view() {
            View::Undef => Js::Undefined,
            View::Null => Js::Nil,
            View::Bool(b) => Js::Bool(b),
            View::Num(n) => Js::Num(n),
            View::Str(s) => Js::Text(Box::new(Text {
                s: s.to_owned(),
                ..Text::default()
            })),
            View::Array => Js::Arr(
                h.items()
                    .into_iter()
                    .flatten()
                    .map(Js::from_handle)
                    .collect(),
            ),
            View::Object => Js::Obj(
                h.entries()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| {
                        let mut key = String::new();
                        k.push_to(&mut key);
                        (key, Js::from_handle(v))
                    })
                    .collect(),
            ),
        }
    }

    pub(crate) fn from_view(v: &dyn ValueView) -> Js {
        if let Some(s) = v.as_scalar() {
            return Js::from_scalar(&s);
        }
        if let Some(a) = v.as_array() {
            return Js::Arr(a.values().map(Js::from_view).collect());
        }
        if let Some(o) = v.as_object() {
            let mut entries: Vec<(String, Js)> = o
                .iter()
                .filter(|(k, _)| k.as_str() != ORDER_KEY)
                .map(|(k, x)| (k.as_str().to_owned(), Js::from_view(x)))
                .collect();
            let order: Option<Vec<String>> = o.get(ORDER_KEY).and_then(|keys| {
                keys.as_array().map(|a| {
                    a.values()
                        .map(|k| k.to_kstr().as_str().to_owned())
                        .collect()
                })
            });
            if let Some(order) = order {
                entries.sort_by_key(|(k, _)| order.iter().position(|o| o == k));
            } else if v.type_name() != PAYLOAD_OBJECT {
                // liquid-rust's own objects are hash maps: put the keys in a fixed order,
                // JavaScript's for integer keys.
                entries.sort_by(
                    |(a, _), (b, _)| match (js::array_index(a), js::array_index(b)) {
                        (Some(x), Some(y)) => x.cmp(&y),
                        (Some(_), None) => std::cmp::Ordering::Less,
                        (None, Some(_)) => std::cmp::Ordering::Greater,
                        (None, None) => a.cmp(b),
                    },
                );
            }
            return Js::Obj(entries);
        }
        match v.as_state() {
            Some(State::DefaultValue) => Js::Undefined,
            // `empty` and `blank` as filter input: LiquidJS passes its drop, printed as "".
            Some(_) => Js::Str(String::new()),
            None => Js::Nil,
        }
    }

    fn from_scalar(s: &ScalarCow<'_>) -> Js {
        match s.type_name() {
            "boolean" => Js::Bool(s.to_bool().unwrap_or(false)),
            "whole number" => Js::Num(s.to_integer().map_or(f64::NAN, |i| i as f64)),
            "fractional number" => Js::Num(s.to_float().unwrap_or(f64::NAN)),
            _ => Js::Str(s.to_kstr().to_string()),
        }
    }

    /// Back to a liquid value.
    pub(crate) fn into_value(self) -> Value {
        match self {
            Js::Undefined => Value::State(State::DefaultValue),
            Js::Nil => Value::Nil,
            Js::Bool(b) => Value::scalar(b),
            Js::Num(n) => number(n),
            Js::Str(s) => Value::scalar(s),
            Js::Text(t) => Value::scalar(t.s),
            Js::Arr(items) => {
                Value::Array(items.into_iter().map(Js::into_value).collect::<Array>())
            }
            Js::Obj(entries) => {
                let mut o = Object::new();
                let order: Array = entries
                    .iter()
                    .map(|(k, _)| Value::scalar(k.clone()))
                    .collect();
                for (k, v) in entries {
                    o.insert(k.into(), v.into_value());
                }
                o.insert(ORDER_KEY.into(), Value::Array(order));
                Value::Object(o)
            }
        }
    }

    /// `value == null`: nil or undefined.
    pub(crate) fn is_nil(&self) -> bool {
        matches!(self, Js::Nil | Js::Undefined)
    }

    /// LiquidJS's `stringify`: nil is "", arrays join their items with nothing, objects are
    /// `[object Object]`, numbers print as JavaScript prints them.
    pub(crate) fn string(&self) -> String {
        let mut out = String::new();
        self.push_string(&mut out);
        out
    }

    fn push_string(&self, out: &mut String) {
        match self {
            Js::Undefined | Js::Nil => {}
            Js::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Js::Num(n) => out.push_str(&js::number_to_string(*n)),
            Js::Str(s) => out.push_str(s),
            Js::Text(t) => out.push_str(&t.s),
            Js::Arr(items) => items.iter().for_each(|i| i.push_string(out)),
            Js::Obj(_) => out.push_str("[object Object]"),
        }
    }

    /// JavaScript's `String(value)` (arrays join with commas).
    pub(crate) fn js_string(&self) -> String {
        match self {
            Js::Undefined => "undefined".to_owned(),
            Js::Nil => "null".to_owned(),
            Js::Arr(items) => items
                .iter()
                .map(|i| match i {
                    Js::Nil | Js::Undefined => String::new(),
                    other => other.js_string(),
                })
                .collect::<Vec<_>>()
                .join(","),
            other => other.string(),
        }
    }

    /// JavaScript's `Number(value)`.
    pub(crate) fn number(&self) -> f64 {
        match self {
            Js::Undefined => f64::NAN,
            Js::Nil => 0.0,
            Js::Bool(b) => f64::from(u8::from(*b)),
            Js::Num(n) => *n,
            Js::Str(s) => string_to_number(s),
            Js::Text(t) => string_to_number(&t.s),
            Js::Arr(_) => string_to_number(&self.js_string()),
            Js::Obj(_) => f64::NAN,
        }
    }

    /// LiquidJS's `toNumber`: `+value || 0`.
    pub(crate) fn to_number(&self) -> f64 {
        let n = self.number();
        if n.is_nan() { 0.0 } else { n }
    }

    /// LiquidJS's `toArray`: nil is empty, an array itself, anything else one item.
    pub(crate) fn to_array(&self) -> Vec<Js> {
        match self {
            Js::Nil | Js::Undefined => Vec::new(),
            Js::Arr(items) => items.clone(),
            other => vec![other.clone()],
        }
    }

    /// JSON.stringify: undefined for undefined.
    pub(crate) fn json(&self) -> Js {
        if matches!(self, Js::Undefined) {
            return Js::Undefined;
        }
        let mut out = String::new();
        self.push_json(&mut out);
        Js::Str(out)
    }

    fn push_json(&self, out: &mut String) {
        match self {
            Js::Nil | Js::Undefined => out.push_str("null"),
            Js::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Js::Num(n) if n.is_finite() => out.push_str(&js::number_to_string(*n)),
            Js::Num(_) => out.push_str("null"),
            Js::Str(s) => out.push_str(&serde_json::to_string(s).unwrap_or_default()),
            Js::Text(t) => out.push_str(&serde_json::to_string(&t.s).unwrap_or_default()),
            Js::Arr(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.push_json(out);
                }
                out.push(']');
            }
            Js::Obj(entries) => {
                out.push('{');
                let present = entries.iter().filter(|(_, v)| !matches!(v, Js::Undefined));
                for (i, (k, v)) in present.enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::to_string(k).unwrap_or_default());
                    out.push(':');
                    v.push_json(out);
                }
                out.push('}');
            }
        }
    }
}

/// JavaScript's StringToNumber: trimmed; "" is 0; decimal, `Infinity`, and `0x`/`0o`/`0b`
/// integers; anything else NaN.
pub(crate) fn string_to_number(s: &str) -> f64 {
    let t = js::trim(s);
    if t.is_empty() {
        return 0.0;
    }
    for (prefix, radix) in [
        ("0x", 16),
        ("0X", 16),
        ("0o", 8),
        ("0O", 8),
        ("0b", 2),
        ("0B", 2),
    ] {
        if let Some(digits) = t.strip_prefix(prefix) {
            if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
                return f64::NAN;
            }
            return digits.chars().fold(0.0, |acc, c| {
                acc * f64::from(radix) + f64::from(c.to_digit(radix).unwrap_or(0))
            });
        }
    }
    let (sign, body) = match t.as_bytes()[0] {
        b'-' => (-1.0, &t[1..]),
        b'+' => (1.0, &t[1..]),
        _ => (1.0, t),
    };
    if body == "Infinity" {
        return sign * f64::INFINITY;
    }
    if !is_decimal_literal(body) {
        return f64::NAN;
    }
    body.parse::<f64>().map_or(f64::NAN, |n| sign * n)
}

/// `digits[.digits][e[+-]digits]` or `.digits[…]`, at least one digit before the exponent.
fn is_decimal_literal(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    let int = b.iter().take_while(|c| c.is_ascii_digit()).count();
    i += int;
    let mut frac = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        frac = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        i += frac;
    }
    if int + frac == 0 {
        return false;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exp = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        if exp == 0 {
            return false;
        }
        i += exp;
    }
    i == b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_become_numbers_as_in_javascript() {
        let cases: &[(&str, f64)] = &[
            ("", 0.0),
            ("  42  ", 42.0),
            ("1e3", 1000.0),
            ("-1.5", -1.5),
            (".5", 0.5),
            ("5.", 5.0),
            ("0x10", 16.0),
            ("Infinity", f64::INFINITY),
            ("-Infinity", f64::NEG_INFINITY),
        ];
        for (s, n) in cases {
            assert_eq!(string_to_number(s), *n, "for {s:?}");
        }
        for s in [
            "abc", "1e", "inf", "nan", "1,5", "0x", "--1", "1 2", "infinity",
        ] {
            assert!(string_to_number(s).is_nan(), "for {s:?}");
        }
    }
}
