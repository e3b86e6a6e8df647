//! The filters Segment allows in `@liquid`, each as LiquidJS 10 implements it (JavaScript
//! coercions, UTF-16 lengths, JavaScript number printing), and the ones it disables.

use base64::Engine as _;
use ring::{digest, hmac};

use super::super::js;
use super::date;
use super::jsval::Js;
use super::web::{
    COMPONENT, URI, cgi_escape, encode_uri, escape, slugify, strip_html, unescape, url_decode,
};

/// A filter: the input, positional arguments, keyword arguments.
pub(crate) type Run = fn(&Js, &[Js], &[(String, Js)]) -> Result<Js, String>;

/// A named filter.
#[derive(Clone, Copy)]
pub(crate) struct Def {
    pub(crate) name: &'static str,
    pub(crate) run: Run,
}

/// Filters Segment disables: they fail when a template calls them.
pub(crate) const DISABLED: &[&str] = &[
    "array_to_sentence_string",
    "concat",
    "find",
    "find_exp",
    "find_index",
    "find_index_exp",
    "group_by",
    "group_by_exp",
    "has",
    "has_exp",
    "map",
    "newline_to_br",
    "reject",
    "reject_exp",
    "reverse",
    "sort",
    "sort_natural",
    "uniq",
    "where_exp",
    "type",
];

macro_rules! defs {
    ($($name:literal => $run:expr),* $(,)?) => {
        &[$(Def { name: $name, run: $run }),*]
    };
}

/// Every filter registered: the allowed ones, then the disabled ones.
pub(crate) const ALL: &[Def] = defs![
    // HTML
    "escape" => |v, _, _| Ok(Js::Str(escape(&v.string()))),
    "xml_escape" => |v, _, _| Ok(Js::Str(escape(&v.string()))),
    "escape_once" => |v, _, _| Ok(Js::Str(escape(&unescape(&v.string())))),
    "strip_html" => |v, _, _| Ok(Js::Str(strip_html(&v.string()))),
    // math
    "abs" => |v, _, _| Ok(Js::Num(v.to_number().abs())),
    "at_least" => |v, a, _| Ok(Js::Num(js_max(v.to_number(), num(a, 0)))),
    "at_most" => |v, a, _| Ok(Js::Num(js_min(v.to_number(), num(a, 0)))),
    "ceil" => |v, _, _| Ok(Js::Num(v.to_number().ceil())),
    "floor" => |v, _, _| Ok(Js::Num(v.to_number().floor())),
    "divided_by" => |v, a, _| {
        let q = v.to_number() / num(a, 0);
        Ok(Js::Num(if num(a, 1) != 0.0 { q.floor() } else { q }))
    },
    "minus" => |v, a, _| Ok(Js::Num(v.to_number() - num(a, 0))),
    "plus" => |v, a, _| Ok(Js::Num(v.to_number() + num(a, 0))),
    "times" => |v, a, _| Ok(Js::Num(v.to_number() * num(a, 0))),
    "modulo" => |v, a, _| {
        let d = num(a, 0);
        Ok(Js::Num(((v.to_number() % d) + d) % d))
    },
    "round" => |v, a, _| Ok(Js::Num(round(v.to_number(), num(a, 0)))),
    // URLs
    "url_decode" => |v, _, _| url_decode(&v.string().replace('+', " ")).map(Js::Str),
    "url_encode" => |v, _, _| Ok(Js::Str(encode_uri(&v.string(), COMPONENT).replace("%20", "+"))),
    "cgi_escape" => |v, _, _| Ok(Js::Str(cgi_escape(&v.string()))),
    "uri_escape" => |v, _, _| Ok(Js::Str(encode_uri(&v.string(), URI).replace("%5B", "[").replace("%5D", "]"))),
    "slugify" => |v, a, _| Ok(Js::Str(slugify(&v.string(), a))),
    // arrays
    "join" => |v, a, _| {
        let sep = match a.first() {
            None | Some(Js::Nil | Js::Undefined) => " ".to_owned(),
            Some(s) => s.string(),
        };
        Ok(Js::Str(v.to_array().iter().map(join_item).collect::<Vec<_>>().join(&sep)))
    },
    "first" => |v, _, _| Ok(first_or_last(v, true)),
    "last" => |v, _, _| Ok(first_or_last(v, false)),
    "size" => |v, _, _| Ok(Js::Num(match v {
        Js::Str(s) => js::utf16_len(s) as f64,
        Js::Arr(items) => items.len() as f64,
        Js::Obj(entries) => entries
            .iter()
            .find(|(k, _)| k == "length")
            .map_or(0.0, |(_, l)| if let Js::Num(n) = l { if *n == 0.0 { 0.0 } else { *n } } else { 0.0 }),
        _ => 0.0,
    })),
    "sum" => |v, a, _| {
        let mut total = 0.0;
        for item in v.to_array() {
            let x = match a.first() {
                Some(p) if !p.is_nil() => property(&item, &p.string()).number(),
                _ => item.number(),
            };
            total += if x.is_nan() { 0.0 } else { x };
        }
        Ok(Js::Num(total))
    },
    "compact" => |v, _, _| Ok(Js::Arr(v.to_array().into_iter().filter(|x| !x.is_nil()).collect())),
    "push" => |v, a, _| {
        let mut items = v.to_array();
        items.push(a.first().cloned().unwrap_or(Js::Undefined));
        Ok(Js::Arr(items))
    },
    "unshift" => |v, a, _| {
        let mut items = v.to_array();
        items.insert(0, a.first().cloned().unwrap_or(Js::Undefined));
        Ok(Js::Arr(items))
    },
    "pop" => |v, _, _| {
        let mut items = v.to_array();
        items.pop();
        Ok(Js::Arr(items))
    },
    "shift" => |v, _, _| {
        let mut items = v.to_array();
        if !items.is_empty() {
            items.remove(0);
        }
        Ok(Js::Arr(items))
    },
    "slice" => |v, a, _| Ok(slice(v, num(a, 0), a.get(1).map_or(1.0, Js::number))),
    "where" => |v, a, _| {
        let prop = a.first().map(Js::string).unwrap_or_default();
        let expected = a.get(1);
        Ok(Js::Arr(
            v.to_array()
                .into_iter()
                .filter(|item| {
                    let got = property(item, &prop);
                    match expected {
                        None => !matches!(got, Js::Nil | Js::Undefined | Js::Bool(false)),
                        Some(e) => &got == e,
                    }
                })
                .collect(),
        ))
    },
    "sample" => |v, _, _| Ok(v.to_array().into_iter().next().unwrap_or(Js::Undefined)),
    // strings
    "append" => |v, a, _| Ok(Js::Str(v.string() + &arg_string(a, 0))),
    "prepend" => |v, a, _| Ok(Js::Str(arg_string(a, 0) + &v.string())),
    "lstrip" => |v, a, _| Ok(Js::Str(strip_with(&v.string(), a, true, false))),
    "rstrip" => |v, a, _| Ok(Js::Str(strip_with(&v.string(), a, false, true))),
    "strip" => |v, a, _| Ok(Js::Str(strip_with(&v.string(), a, true, true))),
    "downcase" => |v, _, _| Ok(Js::Str(v.string().to_lowercase())),
    "upcase" => |v, _, _| Ok(Js::Str(v.string().to_uppercase())),
    "capitalize" => |v, _, _| Ok(Js::Str(capitalize(&v.string()))),
    "remove" => |v, a, _| Ok(Js::Str(replace_all(&v.string(), &arg_string(a, 0), ""))),
    "remove_first" => |v, a, _| Ok(Js::Str(replace_first(&v.string(), &arg_string(a, 0), ""))),
    "remove_last" => |v, a, _| Ok(Js::Str(replace_last(&v.string(), &arg_string(a, 0), ""))),
    "replace" => |v, a, _| Ok(Js::Str(replace_all(&v.string(), &arg_string(a, 0), &arg_string(a, 1)))),
    "replace_first" => |v, a, _| Ok(Js::Str(replace_first(&v.string(), &arg_string(a, 0), &arg_string(a, 1)))),
    "replace_last" => |v, a, _| Ok(Js::Str(replace_last(&v.string(), &arg_string(a, 0), &arg_string(a, 1)))),
    "split" => |v, a, _| {
        let mut parts: Vec<Js> = split(&v.string(), &arg_string(a, 0)).into_iter().map(Js::Str).collect();
        while matches!(parts.last(), Some(Js::Str(s)) if s.is_empty()) {
            parts.pop();
        }
        Ok(Js::Arr(parts))
    },
    "strip_newlines" => |v, _, _| Ok(Js::Str(v.string().replace("\r\n", "").replace('\n', ""))),
    "squish" => |v, _, _| Ok(Js::Str(js::trim(&collapse_spaces(&v.string())).to_owned())),
    "normalize_whitespace" => |v, _, _| Ok(Js::Str(collapse_spaces(&v.string()))),
    "number_of_words" => |v, _, _| {
        let s = v.string();
        let t = js::trim(&s);
        Ok(Js::Num(if t.is_empty() { 0.0 } else { t.split(is_regex_space).filter(|w| !w.is_empty()).count() as f64 }))
    },
    "truncate" => |v, a, _| Ok(truncate(v, a)),
    "truncatewords" => |v, a, _| Ok(Js::Str(truncate_words(&v.string(), a))),
    "base64_encode" => |v, _, _| Ok(Js::Str(base64::engine::general_purpose::STANDARD.encode(v.string()))),
    "base64_decode" => |v, _, _| base64_decode(&v.string()).map(Js::Str),
    "sha256" => |v, _, _| Ok(Js::Str(hex(digest::digest(&digest::SHA256, v.string().as_bytes()).as_ref()))),
    "hmac_sha256" => |v, a, _| {
        let key = hmac::Key::new(hmac::HMAC_SHA256, arg_string(a, 0).as_bytes());
        Ok(Js::Str(hex(hmac::sign(&key, v.string().as_bytes()).as_ref())))
    },
    // misc
    "default" => |v, a, kw| {
        let fallback = a.first().cloned().unwrap_or(Js::Nil);
        Ok(match v {
            Js::Str(s) if s.is_empty() => fallback,
            Js::Arr(items) if items.is_empty() => fallback,
            Js::Bool(false) if kw.iter().any(|(k, x)| k == "allow_false" && !x.is_nil() && !matches!(x, Js::Bool(false))) => Js::Bool(false),
            Js::Nil | Js::Undefined | Js::Bool(false) => fallback,
            other => other.clone(),
        })
    },
    "raw" => |v, _, _| Ok(v.clone()),
    "json" => |v, _, _| Ok(v.json()),
    "jsonify" => |v, _, _| Ok(v.json()),
    "inspect" => |v, _, _| Ok(v.json()),
    "to_integer" => |v, _, _| Ok(Js::Num(v.number())),
    // dates
    "date" => |v, a, _| Ok(date::date(v, a)),
    "date_to_xmlschema" => |v, _, _| Ok(date::to_xmlschema(v)),
    "date_to_rfc822" => |v, _, _| Ok(date::to_rfc822(v)),
    "date_to_string" => |v, a, _| Ok(date::to_string(v, a, "%b")),
    "date_to_long_string" => |v, a, _| Ok(date::to_string(v, a, "%B")),
    // What `{{ … }}` and `{% echo %}` print: LiquidJS's `stringify` (added by `prepare`).
    "__js_output" => |v, _, _| Ok(Js::Str(v.string())),
    // disabled
    "array_to_sentence_string" => |_, _, _| Err(disabled("array_to_sentence_string")),
    "concat" => |_, _, _| Err(disabled("concat")),
    "find" => |_, _, _| Err(disabled("find")),
    "find_exp" => |_, _, _| Err(disabled("find_exp")),
    "find_index" => |_, _, _| Err(disabled("find_index")),
    "find_index_exp" => |_, _, _| Err(disabled("find_index_exp")),
    "group_by" => |_, _, _| Err(disabled("group_by")),
    "group_by_exp" => |_, _, _| Err(disabled("group_by_exp")),
    "has" => |_, _, _| Err(disabled("has")),
    "has_exp" => |_, _, _| Err(disabled("has_exp")),
    "map" => |_, _, _| Err(disabled("map")),
    "newline_to_br" => |_, _, _| Err(disabled("newline_to_br")),
    "reject" => |_, _, _| Err(disabled("reject")),
    "reject_exp" => |_, _, _| Err(disabled("reject_exp")),
    "reverse" => |_, _, _| Err(disabled("reverse")),
    "sort" => |_, _, _| Err(disabled("sort")),
    "sort_natural" => |_, _, _| Err(disabled("sort_natural")),
    "uniq" => |_, _, _| Err(disabled("uniq")),
    "where_exp" => |_, _, _| Err(disabled("where_exp")),
    "type" => |_, _, _| Err(disabled("type")),
];

/// A registered filter by name.
pub(crate) fn find(name: &str) -> Option<&'static Def> {
    ALL.iter().find(|d| d.name == name)
}

/// The message of a disabled filter (its position is added by the caller).
pub(crate) fn disabled(name: &str) -> String {
    format!("filter \"{name}\" is disabled")
}

fn num(args: &[Js], i: usize) -> f64 {
    args.get(i).map_or(0.0, Js::to_number)
}

fn arg_string(args: &[Js], i: usize) -> String {
    args.get(i).map(Js::string).unwrap_or_default()
}

/// `Math.max` of two numbers (NaN wins).
fn js_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

fn js_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

/// `Math.round`: halves toward +∞.
fn math_round(x: f64) -> f64 {
    if !x.is_finite() {
        return x;
    }
    let f = x.floor();
    if x - f >= 0.5 { f + 1.0 } else { f }
}

/// `Number(mantissa + 'e' + (power + shift))` of `String(n)`, as LiquidJS's `shiftDecimal`.
fn shift_decimal(n: f64, shift: f64) -> f64 {
    let text = js::number_to_string(n);
    let (mantissa, power) = text.split_once('e').unwrap_or((&text, "0"));
    let power = super::jsval::string_to_number(power) + shift;
    super::jsval::string_to_number(&format!("{mantissa}e{}", js::number_to_string(power)))
}

fn round(v: f64, digits: f64) -> f64 {
    let scaled = shift_decimal(v.abs(), digits);
    if scaled.is_nan() || scaled > 9_007_199_254_740_991.0 {
        return v;
    }
    let rounded = shift_decimal(math_round(scaled), -digits);
    if v < 0.0 { -rounded } else { rounded }
}

/// An item of `join` as `Array.prototype.join` writes it.
fn join_item(item: &Js) -> String {
    match item {
        Js::Nil | Js::Undefined => String::new(),
        other => other.js_string(),
    }
}

fn first_or_last(v: &Js, first: bool) -> Js {
    match v {
        Js::Arr(items) => {
            let item = if first { items.first() } else { items.last() };
            item.cloned().unwrap_or(Js::Undefined)
        }
        Js::Str(s) => {
            let units: Vec<String> = js::utf16_units(s).collect();
            let unit = if first { units.first() } else { units.last() };
            unit.map_or(Js::Undefined, |u| Js::Str(u.clone()))
        }
        _ => Js::Str(String::new()),
    }
}

/// `item[path]` for a dotted path, own properties only.
fn property(item: &Js, path: &str) -> Js {
    let mut current = item.clone();
    for key in path.split('.') {
        current = match &current {
            Js::Obj(entries) => entries
                .iter()
                .find(|(k, _)| k == key)
                .map_or(Js::Nil, |(_, v)| v.clone()),
            Js::Arr(items) => key
                .parse::<usize>()
                .ok()
                .and_then(|i| items.get(i).cloned())
                .unwrap_or(Js::Nil),
            _ => Js::Nil,
        };
    }
    current
}

fn slice(v: &Js, begin: f64, length: f64) -> Js {
    match v {
        Js::Nil | Js::Undefined => Js::Arr(Vec::new()),
        Js::Arr(items) => {
            let begin = if begin < 0.0 {
                items.len() as f64 + begin
            } else {
                begin
            };
            if begin < 0.0 || length < 0.0 || length.is_nan() {
                return Js::Arr(Vec::new());
            }
            let start = (begin as usize).min(items.len());
            let end = ((begin + length) as usize).min(items.len());
            Js::Arr(items[start..end.max(start)].to_vec())
        }
        other => {
            let chars: Vec<char> = other.string().chars().collect();
            let begin = if begin < 0.0 {
                chars.len() as f64 + begin
            } else {
                begin
            };
            if begin < 0.0 || length < 0.0 || length.is_nan() {
                return Js::Str(String::new());
            }
            let start = (begin as usize).min(chars.len());
            let end = ((begin + length) as usize).min(chars.len());
            Js::Str(chars[start..end.max(start)].iter().collect())
        }
    }
}

/// `new Set(chars)` for a strip filter: its UTF-16 units as strings.
fn strip_with(s: &str, args: &[Js], start: bool, end: bool) -> String {
    match args
        .first()
        .filter(|c| !matches!(c, Js::Nil | Js::Bool(false)) && !c.string().is_empty())
    {
        None => {
            let t = match (start, end) {
                (true, true) => js::trim(s),
                (true, false) => s.trim_start_matches(is_js_space),
                _ => s.trim_end_matches(is_js_space),
            };
            t.to_owned()
        }
        Some(chars) => {
            let set: Vec<char> = chars.string().chars().collect();
            let mut t = s;
            if start {
                t = t.trim_start_matches(|c| set.contains(&c));
            }
            if end {
                t = t.trim_end_matches(|c| set.contains(&c));
            }
            t.to_owned()
        }
    }
}

fn is_js_space(c: char) -> bool {
    js::trim(c.encode_utf8(&mut [0u8; 4])).is_empty()
}

/// `\s` of a JavaScript regular expression.
fn is_regex_space(c: char) -> bool {
    is_js_space(c)
}

fn collapse_spaces(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_space = false;
    for c in s.chars() {
        if is_regex_space(c) {
            if !in_space {
                out.push(' ');
            }
            in_space = true;
        } else {
            out.push(c);
            in_space = false;
        }
    }
    out
}

fn capitalize(s: &str) -> String {
    let mut units = s.encode_utf16();
    let first: Vec<u16> = units.next().into_iter().collect();
    let rest: Vec<u16> = units.collect();
    String::from_utf16_lossy(&first).to_uppercase()
        + &String::from_utf16_lossy(&rest).to_lowercase()
}

/// `str.split(sep)` (an empty separator splits into UTF-16 units).
fn split(s: &str, sep: &str) -> Vec<String> {
    if sep.is_empty() {
        return js::utf16_units(s).collect();
    }
    s.split(sep).map(str::to_owned).collect()
}

fn replace_all(s: &str, pattern: &str, with: &str) -> String {
    split(s, pattern).join(with)
}

fn replace_first(s: &str, pattern: &str, with: &str) -> String {
    match s.find(pattern) {
        Some(i) => format!("{}{with}{}", &s[..i], &s[i + pattern.len()..]),
        None => s.to_owned(),
    }
}

fn replace_last(s: &str, pattern: &str, with: &str) -> String {
    match s.rfind(pattern) {
        Some(i) => format!("{}{with}{}", &s[..i], &s[i + pattern.len()..]),
        None => s.to_owned(),
    }
}

fn truncate(v: &Js, args: &[Js]) -> Js {
    let s = v.string();
    let l = args.first().map_or(50.0, Js::number);
    let o = args.get(1).map_or_else(|| "...".to_owned(), Js::string);
    let chars: Vec<char> = s.chars().collect();
    if (js::utf16_len(&s) as f64) <= l || (l >= 0.0 && chars.len() as f64 <= l) {
        return v.clone();
    }
    let keep = (l - o.chars().count() as f64).max(0.0) as usize;
    Js::Str(chars[..keep.min(chars.len())].iter().collect::<String>() + &o)
}

fn truncate_words(s: &str, args: &[Js]) -> String {
    let mut words = args.first().map_or(15.0, Js::number);
    let o = args.get(1).map_or_else(|| "...".to_owned(), Js::string);
    let trimmed = s.trim_start_matches(is_js_space);
    let parts: Vec<&str> = trimmed
        .split(is_regex_space)
        .filter(|w| !w.is_empty())
        .collect();
    let parts: Vec<&str> = if parts.is_empty() { vec![""] } else { parts };
    if words.is_nan() || words <= 0.0 {
        words = 1.0;
    }
    let n = (words as usize).min(parts.len());
    let mut out = parts[..n].join(" ");
    if parts.len() as f64 >= words {
        out.push_str(&o);
    }
    out
}

fn base64_decode(s: &str) -> Result<String, String> {
    let cleaned: String = s
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\u{c}' | '\r' | ' '))
        .collect();
    let body = if cleaned.len() % 4 == 0 {
        cleaned.trim_end_matches('=').to_owned()
    } else {
        cleaned.clone()
    };
    if body.len() % 4 == 1
        || !body
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/')
    {
        return Err("invalid base64 provided to base64_decode".to_owned());
    }
    // Node's Buffer ignores leftover bits, as this engine does.
    let lenient = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireNone),
    );
    let bytes = lenient
        .decode(body.as_bytes())
        .map_err(|_| "invalid base64 provided to base64_decode".to_owned())?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An unknown filter: LiquidJS lets the value through.
pub(crate) fn identity(name: &str) -> (String, Run) {
    (name.to_owned(), |v, _, _| Ok(v.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_shifts_decimals_as_liquidjs() {
        assert_eq!(round(1234567.891, 2.0), 1234567.89);
        assert_eq!(round(2.5, 0.0), 3.0);
        assert_eq!(round(-2.5, 0.0), -3.0);
        assert_eq!(round(1.005, 2.0), 1.01);
    }
}
