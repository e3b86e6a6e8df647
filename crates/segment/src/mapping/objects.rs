//! Object-shaping operations: `@flatten`'s key joining, `@merge`'s `Object.assign`, and
//! `@excludeWhenNull`'s removal of `null` members.

use std::borrow::Cow;

use serde_json::Value;

use super::js;
use super::value::{Handle, Key, Obj, ObjBuilder, Val, View};

/// mapping-kit's `flattenObject(value, '', separator, omitArrays)`.
pub(crate) fn flatten<'a>(value: Handle<'_, 'a>, separator: &str, omit_arrays: bool) -> Obj<'a> {
    let mut out = ObjBuilder::new();
    let mut prefix = String::new();
    flatten_into(value, &mut prefix, separator, omit_arrays, &mut out);
    out.finish()
}

fn flatten_into<'a>(
    value: Handle<'_, 'a>,
    prefix: &mut String,
    separator: &str,
    omit_arrays: bool,
    out: &mut ObjBuilder<'a>,
) {
    match value.view() {
        View::Object => {
            for (key, child) in value.entries().unwrap_or_default() {
                descend(key, child, prefix, separator, omit_arrays, out);
            }
        }
        View::Array if !omit_arrays => {
            if let Some(items) = value.items() {
                for (i, child) in items.enumerate() {
                    descend(Key::Index(i), child, prefix, separator, omit_arrays, out);
                }
            }
        }
        _ => out.assign(Cow::Owned(prefix.clone()), value.to_val()),
    }
}

fn descend<'a>(
    key: Key<'_, 'a>,
    child: Handle<'_, 'a>,
    prefix: &mut String,
    separator: &str,
    omit_arrays: bool,
    out: &mut ObjBuilder<'a>,
) {
    let base = prefix.len();
    // `prefix ? prefix + separator + key : key`: an empty prefix is falsy.
    if base > 0 {
        prefix.push_str(separator);
    }
    key.push_to(prefix);
    flatten_into(child, prefix, separator, omit_arrays, out);
    prefix.truncate(base);
}

/// `Object.assign({}, ...sources)`: `null` and `undefined` are skipped, strings spread into
/// their UTF-16 units, arrays into their indexes, numbers and booleans add nothing.
pub(crate) fn assign_all<'a>(sources: &[Val<'a>]) -> Obj<'a> {
    let mut out = ObjBuilder::new();
    for source in sources {
        let h = Handle::of(source);
        match h.view() {
            View::Undef | View::Null | View::Bool(_) | View::Num(_) => {}
            View::Str(s) => {
                for (i, unit) in js::utf16_units(s).enumerate() {
                    out.assign(Cow::Owned(i.to_string()), Val::Str(unit));
                }
            }
            View::Array => {
                if let Some(items) = h.items() {
                    for (i, item) in items.enumerate() {
                        out.assign(Cow::Owned(i.to_string()), item.to_val());
                    }
                }
            }
            View::Object => {
                for (key, value) in h.entries().unwrap_or_default() {
                    out.assign(key.to_cow(), value.to_val());
                }
            }
        }
    }
    out.finish()
}

/// `@excludeWhenNull`'s `cleanNulls`: in an object, `null` members become `undefined` (and so
/// disappear) and nested objects are cleaned too; arrays and other values are left alone.
pub(crate) fn clean_nulls(value: Val<'_>) -> Val<'_> {
    match value {
        Val::Ref(Value::Object(map)) => Val::Obj(Obj {
            entries: map
                .iter()
                .map(|(k, v)| {
                    let cleaned = match v {
                        Value::Null => Val::Undef,
                        Value::Object(_) => clean_nulls(Val::Ref(v)),
                        _ => Val::Ref(v),
                    };
                    (Cow::Borrowed(k.as_str()), cleaned)
                })
                .collect(),
        }),
        Val::Obj(obj) => Val::Obj(Obj {
            entries: obj
                .entries
                .into_iter()
                .map(|(k, v)| {
                    let cleaned = match v.view() {
                        View::Null => Val::Undef,
                        View::Object => clean_nulls(v),
                        _ => v,
                    };
                    (k, cleaned)
                })
                .collect(),
        }),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn flat(value: &Value, separator: &str, omit_arrays: bool) -> Option<Value> {
        Val::Obj(flatten(Handle::Json(value), separator, omit_arrays)).to_json()
    }

    #[test]
    fn flattens_like_mapping_kit() {
        let cases = [
            (
                json!({"a": {"b": {"c": 1}, "d": 2}}),
                ".",
                false,
                json!({"a.b.c": 1, "a.d": 2}),
            ),
            (
                json!({"a": {"b": {"c": 1}, "d": 2}}),
                "/",
                false,
                json!({"a/b/c": 1, "a/d": 2}),
            ),
            (
                json!({"a": [{"b": 1}, {"c": 2}]}),
                ".",
                false,
                json!({"a.0.b": 1, "a.1.c": 2}),
            ),
            (
                json!([{"a": [{"b": 1}]}]),
                ".",
                false,
                json!({"0.a.0.b": 1}),
            ),
            (
                json!({"a": {"b": [1, 2]}}),
                ".",
                true,
                json!({"a.b": [1, 2]}),
            ),
            (
                json!({"a": {}, "b": [], "c": null}),
                ".",
                false,
                json!({"c": null}),
            ),
            (json!("x"), ".", false, json!({"": "x"})),
            (json!({"": {"a": 1}}), ".", false, json!({"a": 1})),
            (
                json!({"a": {"b": 1}, "a_b": 2}),
                "_",
                false,
                json!({"a_b": 2}),
            ),
        ];
        for (value, separator, omit, expected) in cases {
            assert_eq!(flat(&value, separator, omit), Some(expected), "for {value}");
        }
    }

    #[test]
    fn assign_spreads_like_object_assign() {
        let a = json!({"x": 1, "y": 2});
        let sources = vec![
            Val::Ref(&a),
            Val::Null,
            Val::Undef,
            Val::Num(7.into()),
            Val::Str("hé".into()),
            Val::Arr(vec![Val::Bool(true)]),
            Val::Obj(Obj {
                entries: vec![(Cow::Borrowed("y"), Val::Undef)],
            }),
        ];
        let merged = Val::Obj(assign_all(&sources));
        // `y` was assigned `undefined` last, so it disappears at the end.
        assert_eq!(merged.to_json(), Some(json!({"x": 1, "0": true, "1": "é"})));
    }

    #[test]
    fn clean_nulls_reaches_nested_objects_only() {
        let v = json!({"a": null, "b": {"c": null, "d": 1}, "e": [null], "f": 0});
        assert_eq!(
            clean_nulls(Val::Ref(&v)).to_json(),
            Some(json!({"b": {"d": 1}, "e": [null], "f": 0}))
        );
        assert_eq!(
            clean_nulls(Val::Ref(&json!([null]))).to_json(),
            Some(json!([null]))
        );
    }
}
