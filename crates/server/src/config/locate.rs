//! Turns serde's refusal of the file's shape into this configuration's message: the span of
//! the error is looked up in the parsed document to find the key it is about (and the
//! destination that key belongs to), and serde's wording is replaced by ours:
//!
//! - `unknown field `lisen`, expected one of ...` becomes
//!   `unknown key "lisen"; expected one of listen, ... (did you mean "listen"?)`;
//! - `invalid type: integer `8080`, expected a string` becomes
//!   `listen: expected a string, got an integer`; the value itself is never repeated (it may
//!   be a secret);
//! - anything else (this module's own readers' refusals) is kept, after the key.

use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::destinations::check_name;
use super::error::{Fail, Place, R, article, key_fail};
use super::mapping::NOT_FINITE;
use super::raw::RawConfig;
use super::values::{TABLE, TOO_LARGE};

/// One step of a path into the document.
#[derive(Clone)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// What an error's span is, in the document.
struct Hit<'a> {
    /// The steps to the key or value.
    path: Vec<Step<'a>>,
    /// The span is a key's.
    at_key: bool,
    /// The span is a value's (an implicit table's span is its key's: both).
    at_value: bool,
    /// The TOML type of the value at the span (`"integer"`), or of the key's value.
    kind: &'static str,
}

/// Reads the raw shape of `doc` (parsed from `text`), or says what is wrong with it.
pub(super) fn read_shape(text: &str, doc: &Spanned<DeTable<'_>>) -> R<RawConfig> {
    RawConfig::deserialize(toml::de::Deserializer::from(doc.clone())).map_err(|error| {
        let span = error.span().unwrap_or(doc.span());
        let message = error.message().trim();
        overflow(text, doc.get_ref(), message, span.clone())
            .unwrap_or_else(|| shape_error(message, doc.get_ref(), span))
    })
}

/// A number too large for toml to read (at `span`): what the key says of a small number of
/// the same type (a string key: "expected a string, got an integer"), or, when it takes one,
/// that the number is too large (a float: that it has no JSON equivalent, as `inf` has not).
fn overflow(text: &str, doc: &DeTable<'_>, message: &str, span: Range<usize>) -> Option<Fail> {
    let (small, too_large) = match message {
        "integer number overflowed" => ("0", TOO_LARGE),
        "floating-point number overflowed" => ("0.0", NOT_FINITE),
        _ => return None,
    };
    let patched = format!(
        "{}{small}{}",
        text.get(..span.start)?,
        text.get(span.end..)?
    );
    let patched_doc = DeTable::parse(&patched).ok()?;
    let refused = RawConfig::deserialize(toml::de::Deserializer::from(patched_doc.clone()))
        .err()
        .and_then(|e| e.span().filter(|s| s.start == span.start).map(|s| (e, s)));
    Some(match refused {
        Some((e, at)) => shape_error(e.message().trim(), patched_doc.get_ref(), at),
        None => {
            let hit = find(doc, &span, &mut Vec::new());
            let (owner, key) = hit.map_or_else(Default::default, |h| key_name(doc, &h.path));
            key_fail(&owner, &key, Some(span), too_large)
        }
    })
}

/// The [`Fail`] of serde's `message` about the part of `doc` at `span`.
fn shape_error(message: &str, doc: &DeTable<'_>, span: Range<usize>) -> Fail {
    let Some(hit) = find(doc, &span, &mut Vec::new()) else {
        return Fail {
            span: Some(span),
            message: reword(message, None),
        };
    };
    // A destination's name is read before anything else of it.
    if let [Step::Key("destination"), Step::Index(i), _, ..] = hit.path[..]
        && let Some(fail) = name_fail(doc, i)
    {
        return fail;
    }
    let (owner, key) = key_name(doc, &hit.path);
    if let Some(rest) = message.strip_prefix("unknown field `") {
        if hit.at_key {
            return unknown_key(doc, &hit.path, rest, span);
        }
        // A TOML date read as a table: serde sees a map of one private key.
        let problem = format!("expected {TABLE}, got {}", article(hit.kind));
        return key_fail(&owner, &key, Some(span), problem);
    }
    if !hit.at_value {
        // A refusal of the key itself is about the table that holds it.
        let (owner, key) = key_name(doc, &hit.path[..hit.path.len() - 1]);
        return key_fail(&owner, &key, Some(span), reword(message, None));
    }
    key_fail(&owner, &key, Some(span), reword(message, Some(hit.kind)))
}

/// What is wrong with the name of the `i`th destination, if anything.
fn name_fail(doc: &DeTable<'_>, i: usize) -> Option<Fail> {
    let DeValue::Array(items) = doc.get("destination")?.get_ref() else {
        return None;
    };
    let table = items.get(i)?;
    let DeValue::Table(t) = table.get_ref() else {
        return None;
    };
    let owner = format!("destination[{i}]");
    let Some(name) = t.get("name") else {
        return Some(key_fail(&owner, "name", Some(table.span()), "required"));
    };
    let problem = match name.get_ref() {
        DeValue::String(s) => check_name(s).err()?,
        other => format!("expected a string, got {}", article(other.type_str())),
    };
    Some(key_fail(&owner, "name", Some(name.span()), problem))
}

/// serde's and toml's words in ours, without the value: `expected a string, got an integer`.
fn reword(message: &str, kind: Option<&str>) -> String {
    let expected = ["invalid type: ", "invalid value: "]
        .iter()
        .find_map(|p| message.strip_prefix(p))
        .and_then(|rest| rest.rsplit_once(", expected "))
        .map(|(_, expected)| expected);
    match (expected, kind) {
        (Some(expected), Some(kind)) => format!("expected {expected}, got {}", article(kind)),
        (Some(expected), None) => format!("expected {expected}"),
        (None, _) => message.to_string(),
    }
}

/// `place: unknown key "name"; expected one of a, b (did you mean "a"?)`, where `rest` is
/// serde's message after "unknown field `".
fn unknown_key(doc: &DeTable<'_>, path: &[Step<'_>], rest: &str, span: Range<usize>) -> Fail {
    let (parent, name) = match path.split_last() {
        Some((Step::Key(name), parent)) => (parent, *name),
        _ => (path, ""),
    };
    // serde lists the keys after the name: "`, expected one of `a`, `b`" or "`, expected `a`".
    let known = rest
        .strip_prefix(name)
        .and_then(|r| r.strip_prefix("`, expected "))
        .unwrap_or(rest);
    let allowed: Vec<&str> = known.split('`').skip(1).step_by(2).collect();
    let mut message = format!(
        "{}unknown key {name:?}; expected one of {}",
        place(doc, parent).prefix(),
        allowed.join(", ")
    );
    if let Some(s) = suggestion(name, &allowed) {
        message.push_str(&format!(" (did you mean {s:?}?)"));
    }
    Fail {
        span: Some(span),
        message,
    }
}

/// The place of the table at `path`, as the readers name it.
fn place(doc: &DeTable<'_>, path: &[Step<'_>]) -> Place {
    match path {
        [Step::Key("destination"), Step::Index(i), rest @ ..] => Place {
            owner: destination_label(doc, *i),
            path: dotted(rest),
        },
        _ => Place {
            owner: String::new(),
            path: dotted(path),
        },
    }
}

/// The owner and the dotted key of the value at `path`: a destination's keys belong to it,
/// the destination itself (`destination[1]`) to the top level.
fn key_name(doc: &DeTable<'_>, path: &[Step<'_>]) -> (String, String) {
    match path {
        [Step::Key("destination"), Step::Index(i), rest @ ..] if !rest.is_empty() => {
            (destination_label(doc, *i), dotted(rest))
        }
        _ => (String::new(), dotted(path)),
    }
}

/// `destination "prod"` when the `i`th destination has a usable name, else `destination[i]`.
fn destination_label(doc: &DeTable<'_>, i: usize) -> String {
    let name = doc.get("destination").and_then(|d| match d.get_ref() {
        DeValue::Array(items) => match items.get(i)?.get_ref() {
            DeValue::Table(t) => match t.get("name")?.get_ref() {
                DeValue::String(name) => Some(name.to_string()),
                _ => None,
            },
            _ => None,
        },
        _ => None,
    });
    match name {
        Some(name) if check_name(&name).is_ok() => format!("destination {name:?}"),
        _ => format!("destination[{i}]"),
    }
}

/// `delivery.rate_limits.subscribe`, `write_keys[1]`.
fn dotted(path: &[Step<'_>]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Key(k) if out.is_empty() => out.push_str(k),
            Step::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// The key or value spanning exactly `span`, depth first in document order (a table's own
/// span may be its header alone, so no subtree is skipped).
fn find<'a>(
    table: &'a DeTable<'_>,
    span: &Range<usize>,
    path: &mut Vec<Step<'a>>,
) -> Option<Hit<'a>> {
    for (k, v) in table.iter() {
        path.push(Step::Key(k.get_ref().as_ref()));
        let kind = v.get_ref().type_str();
        if k.span() == *span || v.span() == *span {
            return Some(Hit {
                path: path.clone(),
                at_key: k.span() == *span,
                at_value: v.span() == *span,
                kind,
            });
        }
        if let Some(hit) = find_in(v.get_ref(), span, path) {
            return Some(hit);
        }
        path.pop();
    }
    None
}

fn find_in<'a>(
    value: &'a DeValue<'_>,
    span: &Range<usize>,
    path: &mut Vec<Step<'a>>,
) -> Option<Hit<'a>> {
    match value {
        DeValue::Table(t) => find(t, span, path),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(Step::Index(i));
                if item.span() == *span {
                    return Some(Hit {
                        path: path.clone(),
                        at_key: false,
                        at_value: true,
                        kind: item.get_ref().type_str(),
                    });
                }
                if let Some(hit) = find_in(item.get_ref(), span, path) {
                    return Some(hit);
                }
                path.pop();
            }
            None
        }
        _ => None,
    }
}

/// Levenshtein distance, for "did you mean" hints.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

fn suggestion<'k>(unknown: &str, allowed: &[&'k str]) -> Option<&'k str> {
    let lower = unknown.to_ascii_lowercase();
    allowed
        .iter()
        .map(|k| (edit_distance(&lower, k), *k))
        .filter(|(d, k)| *d <= 2 || (lower.len() >= 4 && k.starts_with(lower.as_str())))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use crate::config::test_support::*;

    /// Cases of (text, substrings the error must have).
    fn check(cases: &[(String, &str)]) {
        for (text, want) in cases {
            let msg = parse_err(text, &no_env);
            assert!(
                msg.contains(want),
                "{msg:?} lacks {want:?}\n--- in ---\n{text}"
            );
            assert!(!msg.contains("sekrit"), "value repeated in {msg:?}");
        }
    }

    #[test]
    fn a_value_of_the_wrong_kind_is_never_repeated() {
        // serde's message holds the value ("invalid type: string \"...\", expected ..."),
        // and the value may itself hold serde's words.
        let v = "\"sekrit, expected a string\"";
        let d = |extra: &str| dest("prod", "wk", extra);
        check(&[
            (
                format!("listen = [{v}]"),
                "line 1: listen: expected a string, got an array",
            ),
            (
                format!("[ingest]\nmax_event_bytes = {v}"),
                "line 2: ingest.max_event_bytes: expected a whole number, got a string",
            ),
            (
                format!("destination = {v}"),
                "line 1: destination: expected [[destination]] tables, got a string",
            ),
            (
                format!("destination = [{v}]"),
                "line 1: destination[0]: expected a table, got a string",
            ),
            (
                d(&format!("enabled = {v}")),
                r#"line 5: destination "prod": enabled: expected true or false, got a string"#,
            ),
            (
                d("").replace("[\"wk\"]", v),
                r#"line 4: destination "prod": write_keys: expected an array of strings, got a string"#,
            ),
            (
                d(&format!("delivery = {v}")),
                r#"line 5: destination "prod": delivery: expected a table, got a string"#,
            ),
            (
                d(&format!("audiences = {v}")),
                r#"destination "prod": audiences: expected a table of audience keys, got a string"#,
            ),
            (
                d(&format!("[destination.delivery.rate_limits]\nall = [{v}]")),
                r#"line 6: destination "prod": delivery.rate_limits.all: expected a string like"#,
            ),
        ]);
    }

    #[test]
    fn numbers_too_large_for_toml_are_named_like_others() {
        let huge = "999999999999999999999999999999999999999999";
        let d = |extra: &str| dest("prod", "wk", extra);
        check(&[
            (
                format!("listen = {huge}"),
                "line 1: listen: expected a string, got an integer",
            ),
            (
                "\nlisten = 1e400".to_string(),
                "line 2: listen: expected a string, got a float",
            ),
            (
                format!("[http]\nmax_connections = {huge}"),
                "line 2: http.max_connections: the number is too large",
            ),
            (
                "[http]\nmax_connections = -1e400".to_string(),
                "line 2: http.max_connections: expected a whole number, got a float",
            ),
            (
                d(&format!(
                    "mapping = {{ dataFields = {{ x = [1, {huge}] }} }}"
                )),
                r#"line 5: destination "prod": mapping.dataFields.x[1]: the number is too large"#,
            ),
            (
                d("mapping = { dataFields = { x = 1e400 } }"),
                r#"destination "prod": mapping.dataFields.x: infinite and NaN numbers have no JSON equivalent"#,
            ),
        ]);
    }

    #[test]
    fn dates_and_implicit_tables_are_named() {
        let d = |extra: &str| dest("prod", "wk", extra);
        check(&[
            (
                "storage = 1979-05-27".to_string(),
                "line 1: storage: expected a table, got a datetime",
            ),
            (
                d("mapping = 1979-05-27"),
                r#"destination "prod": mapping: expected a table (or a JSON string), got a datetime"#,
            ),
            (
                d("[destination.audiences.vip]\nx = 1979-05-27"),
                r#"line 6: destination "prod": audiences.vip: unknown key "x""#,
            ),
            (
                "[destination.delivery]\nbatch_size = 1".to_string(),
                "line 1: destination: expected [[destination]] tables, got a table",
            ),
            (
                d("[destination.extra]"),
                r#"line 5: destination "prod": unknown key "extra""#,
            ),
            (
                d("[destination.audiences.\" \"]"),
                r#"line 5: destination "prod": audiences: an audience key must not be empty"#,
            ),
        ]);
    }

    #[test]
    fn a_destination_name_is_read_first() {
        check(&[
            (
                "[[destination]]\napi_key = \"k\"\nwrite_key = [\"w\"]".to_string(),
                "line 1: destination[0]: name: required",
            ),
            (
                "[[destination]]\nname = \"a b\"\nenabled = 1".to_string(),
                r#"line 2: destination[0]: name: "a b" may only contain"#,
            ),
            (
                "[[destination]]\nname = 1\nenabled = 1".to_string(),
                "line 2: destination[0]: name: expected a string, got an integer",
            ),
        ]);
    }
}
