//! Random mappings and events for the differential test, as proptest strategies: every
//! directive (well-formed and not), nested; paths, templates and Liquid templates over a small
//! vocabulary of keys that the events also use; numbers written as text in every form a JSON
//! sender may use (so both sides parse the same characters); strings with unicode.

use proptest::prelude::*;
use proptest::strategy::Union;

/// JSON with numbers kept as the text that will be parsed.
#[derive(Debug, Clone)]
pub enum J {
    Null,
    Bool(bool),
    Num(String),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

impl J {
    pub fn obj(entries: Vec<(&str, J)>) -> J {
        J::Obj(
            entries
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
        )
    }

    pub fn s(text: &str) -> J {
        J::Str(text.to_owned())
    }

    pub fn write(&self, out: &mut String) {
        match self {
            J::Null => out.push_str("null"),
            J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            J::Num(text) => out.push_str(text),
            J::Str(s) => out.push_str(&quote(s)),
            J::Arr(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write(out);
                }
                out.push(']');
            }
            J::Obj(entries) => {
                out.push('{');
                let mut seen = std::collections::HashSet::new();
                let mut first = true;
                for (k, v) in entries {
                    // Duplicate keys mean different things to different parsers: keep one.
                    if !seen.insert(k.as_str()) {
                        continue;
                    }
                    if !first {
                        out.push(',');
                    }
                    first = false;
                    out.push_str(&quote(k));
                    out.push(':');
                    v.write(out);
                }
                out.push('}');
            }
        }
    }
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
}

/// Object keys of events, and the steps of paths.
const KEYS: &[&str] = &[
    "a",
    "b",
    "c",
    "x",
    "n",
    "s",
    "email",
    "name",
    "traits",
    "properties",
    "list",
    "0",
    "1",
    "10",
    "length",
    "é",
    "k y",
    "A",
    "_metadata",
    "",
];

/// Strings of events and mappings: unicode, case-mapping edge cases, JSON texts, template
/// braces, whitespace.
const STRINGS: &[&str] = &[
    "",
    " ",
    "a",
    "abc",
    "Hello World",
    "hello world",
    "héllo",
    "😀 smile",
    "ß",
    "İstanbul",
    "ΣΑΣ",
    "ǅ",
    "ﬁ",
    "Ann@Example.COM",
    "0",
    "1",
    "false",
    "true",
    "null",
    "95.84963262304987",
    "{\"a\":1,\"b\":[1.5,\"x\"]}",
    "[1,2,3]",
    "\"quoted\"",
    "{{a}}",
    "{{{a}}}",
    " a b ",
    "a\nb\tc",
    "\u{2028}",
    "<b>bold</b> & co",
    "a,b,c",
    "a.b",
    "-12.5",
    "1e21",
    "  42  ",
    "\u{0}\u{1f}",
    "日本語テキスト",
    "x-y_z",
];

/// A number as text: integers, shortest decimals, 15–17 significant digits (the ones a parser
/// that is not correctly rounded gets wrong), exponent forms, zeros. None beyond a double's
/// range (`1e400` is a documented difference: refused here, `Infinity` in JavaScript).
pub fn number_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (-1000i64..1000).prop_map(|n| n.to_string()),
        2 => (-(1i64 << 53)..(1i64 << 53)).prop_map(|n| n.to_string()),
        4 => (1u64..100_000_000_000_000_000, 0u32..19, any::<bool>())
            .prop_map(|(digits, point, neg)| decimal(digits, point, neg)),
        2 => any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(segment::mapping::number_to_string),
        1 => any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| format!("{f:e}")),
        1 => (1u32..10, 0u32..1000, -330i32..308, any::<bool>())
            .prop_map(|(lead, frac, exp, upper)| {
                let e = if upper { 'E' } else { 'e' };
                if exp >= 0 && exp % 2 == 0 {
                    format!("{lead}.{frac}{e}+{exp}")
                } else {
                    format!("{lead}.{frac}{e}{exp}")
                }
            }),
        1 => prop::sample::select(vec![
            "0", "-0", "0.0", "1.0", "-1.50", "1e21", "1e-7", "0.000001", "1E2", "100e-2",
            "123456789012345680000", "0.1", "0.30000000000000004", "5e-324",
            "1.7976931348623157e308", "4.35", "2.675", "1.005", "-0.0",
        ])
        .prop_map(str::to_owned),
    ]
}

/// `digits` with a decimal point `point` places from the right.
fn decimal(digits: u64, point: u32, neg: bool) -> String {
    let s = digits.to_string();
    let point = (point as usize).min(s.len());
    let (int, frac) = s.split_at(s.len() - point);
    let int = if int.is_empty() { "0" } else { int };
    let sign = if neg { "-" } else { "" };
    if frac.is_empty() {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    }
}

fn key() -> impl Strategy<Value = String> {
    prop::sample::select(KEYS).prop_map(str::to_owned)
}

fn string() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::sample::select(STRINGS).prop_map(str::to_owned),
        1 => "[a-zA-Zé😀 .{}$\\[\\]'\"0-9]{0,8}",
        1 => any::<String>().prop_map(|s| s.chars().take(6).collect()),
    ]
}

fn scalar() -> impl Strategy<Value = J> {
    prop_oneof![
        1 => Just(J::Null),
        1 => any::<bool>().prop_map(J::Bool),
        3 => number_text().prop_map(J::Num),
        3 => string().prop_map(J::Str),
    ]
}

/// A random event (any JSON, mostly objects over the shared keys).
pub fn event() -> impl Strategy<Value = J> {
    let value = scalar().prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            1 => prop::collection::vec(inner.clone(), 0..4).prop_map(J::Arr),
            2 => prop::collection::vec((key(), inner), 0..5).prop_map(J::Obj),
        ]
    });
    prop_oneof![
        20 => prop::collection::vec((key(), value.clone()), 0..8).prop_map(J::Obj),
        1 => value,
    ]
}

/// A path in Segment's syntax over the shared keys.
pub fn path() -> impl Strategy<Value = String> {
    let step = (key(), 0u8..8).prop_map(|(k, form)| match form {
        0 => format!("['{k}']"),
        1 => format!("[\"{k}\"]"),
        2 if k.chars().all(|c| c.is_ascii_digit()) && !k.is_empty() => format!("[{k}]"),
        _ => format!(".{k}"),
    });
    (
        prop::collection::vec(step, 0..4),
        prop::sample::select(vec!["$.", "$.", "$.", "", "$", "$.$."]),
        prop_oneof![8 => Just(String::new()), 1 => Just(".".to_owned()), 1 => Just("]".to_owned())],
    )
        .prop_map(|(steps, prefix, suffix)| {
            let mut p = steps.concat();
            if let Some(rest) = p.strip_prefix('.') {
                p = rest.to_owned();
            }
            format!("{prefix}{p}{suffix}")
        })
}

/// A `@template` text: literal text and `{{path}}`, `{{{path}}}` slots, some malformed.
pub fn template() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        3 => string(),
        3 => path().prop_map(|p| format!("{{{{{}}}}}", strip(&p))),
        1 => path().prop_map(|p| format!("{{{{ {} }}}}", strip(&p))),
        1 => path().prop_map(|p| format!("{{{{{{{}}}}}}}", strip(&p))),
        1 => prop::sample::select(vec!["{{", "}}", "{", "}", "{{}}", "{{{}}}", "{{ }}"])
            .prop_map(str::to_owned),
    ];
    prop::collection::vec(piece, 0..5).prop_map(|p| p.concat())
}

fn strip(path: &str) -> String {
    path.strip_prefix("$.").unwrap_or(path).to_owned()
}

/// A value that is falsy in JavaScript, or absent.
fn falsy() -> impl Strategy<Value = Option<J>> {
    prop_oneof![
        Just(None),
        Just(Some(J::Null)),
        Just(Some(J::Bool(false))),
        Just(Some(J::Num("0".into()))),
        Just(Some(J::s(""))),
    ]
}

/// With probability about 1/`rare`, replace an option by something of another type.
fn maybe_wrong(v: BoxedStrategy<Option<J>>, rare: u32) -> BoxedStrategy<Option<J>> {
    let wrong = prop_oneof![
        falsy(),
        scalar().prop_map(Some),
        Just(Some(J::Arr(vec![]))),
        Just(Some(J::obj(vec![("x", J::s("y"))]))),
    ];
    prop_oneof![rare => v, 1 => wrong].boxed()
}

fn some(v: impl Strategy<Value = J> + 'static) -> BoxedStrategy<Option<J>> {
    v.prop_map(Some).boxed()
}

fn directive(name: &str, options: J) -> J {
    J::Obj(vec![(name.to_owned(), options)])
}

/// Builds an options object from optional entries.
fn options(entries: Vec<(&str, Option<J>)>) -> J {
    J::Obj(
        entries
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)))
            .collect(),
    )
}

/// Mapping leaves: raw values, `@path`, `@template`, `@literal`, `@liquid`.
fn leaf_mapping() -> BoxedStrategy<J> {
    prop_oneof![
        2 => scalar(),
        6 => path().prop_map(|p| directive("@path", J::Str(p))),
        3 => template().prop_map(|t| directive("@template", J::Str(t))),
        1 => scalar().prop_map(|v| directive("@literal", v)),
        2 => super::liquid::template().prop_map(|t| directive("@liquid", J::Str(t))),
    ]
    .boxed()
}

/// A random mapping: every directive, nested, sometimes malformed.
pub fn mapping() -> BoxedStrategy<J> {
    leaf_mapping()
        .prop_recursive(4, 40, 4, |inner| {
            let m = inner.clone().boxed();
            Union::new_weighted(vec![
                (3, object_of(m.clone())),
                (
                    1,
                    prop::collection::vec(m.clone(), 0..3)
                        .prop_map(J::Arr)
                        .boxed(),
                ),
                (3, if_directive(m.clone())),
                (2, case_directive(m.clone())),
                (2, replace_directive(m.clone())),
                (2, array_path_directive(m.clone())),
                (1, flatten_directive(m.clone())),
                (2, json_directive(m.clone())),
                (1, merge_directive(m.clone())),
                (1, transform_directive(m.clone())),
                (
                    1,
                    m.clone()
                        .prop_map(|v| directive("@excludeWhenNull", v))
                        .boxed(),
                ),
                (1, m.clone().prop_map(|v| directive("@literal", v)).boxed()),
                (1, m.clone().prop_map(|v| directive("@path", v)).boxed()),
                (1, m.clone().prop_map(|v| directive("@template", v)).boxed()),
                (1, malformed(m)),
            ])
        })
        .boxed()
}

/// The top of a case: usually an object of fields, sometimes the root directive.
pub fn top_mapping() -> BoxedStrategy<J> {
    let fields = prop::collection::vec((key(), mapping()), 0..4)
        .prop_map(J::Obj)
        .boxed();
    prop_oneof![
        12 => fields.clone(),
        2 => mapping(),
        1 => (fields, prop::collection::vec((key(), mapping()), 0..3)).prop_map(|(f, apply)| {
            let mut entries = vec![(
                "__segment_internal_directive".to_owned(),
                directive("@transform", J::obj(vec![("apply", J::Obj(apply))])),
            )];
            if let J::Obj(f) = f {
                entries.extend(f);
            }
            J::Obj(entries)
        }),
    ]
    .boxed()
}

fn object_of(m: BoxedStrategy<J>) -> BoxedStrategy<J> {
    prop::collection::vec((key(), m), 0..4)
        .prop_map(J::Obj)
        .boxed()
}

fn if_directive(m: BoxedStrategy<J>) -> BoxedStrategy<J> {
    let cond = maybe_wrong(some(m.clone()), 8);
    let branch = prop_oneof![3 => some(m.clone()), 1 => falsy()].boxed();
    (cond, any::<bool>(), branch.clone(), branch, 0u8..10)
        .prop_map(|(test, exists, then, otherwise, both)| {
            let (e, b) = match (exists, both) {
                (_, 0) => (test.clone(), test.clone()),
                (true, _) => (test, None),
                (false, _) => (None, test),
            };
            directive(
                "@if",
                options(vec![
                    ("exists", e),
                    ("blank", b),
                    ("then", then),
                    ("else", otherwise),
                ]),
            )
        })
        .boxed()
}

fn case_directive(m: BoxedStrategy<J>) -> BoxedStrategy<J> {
    let operator = maybe_wrong(
        some(
            prop::sample::select(vec!["lower", "upper", "lower", "upper", "Upper", "title"])
                .prop_map(J::s),
        ),
        10,
    );
    (operator, maybe_wrong(some(m), 10))
        .prop_map(|(op, value)| {
            directive("@case", options(vec![("operator", op), ("value", value)]))
        })
        .boxed()
}

fn replace_directive(m: BoxedStrategy<J>) -> BoxedStrategy<J> {
    let short = prop_oneof![
        4 => prop::sample::select(vec![" ", "a", "l", ".", "-", "$", "[x]", "é", "😀", "\\", "(", "*", "^a", "ab|c", "o w"]).prop_map(str::to_owned),
        1 => "[a-z .*+?]{0,12}",
    ];
    let flag = maybe_wrong(
        prop_oneof![2 => Just(None), 1 => any::<bool>().prop_map(|b| Some(J::Bool(b)))].boxed(),
        12,
    );
    (
        maybe_wrong(some(short.clone().prop_map(J::Str)), 12),
        maybe_wrong(
            prop_oneof![1 => Just(None), 3 => some(short.clone().prop_map(J::Str))].boxed(),
            12,
        ),
        maybe_wrong(some(m), 12),
        flag.clone(),
        flag,
        prop_oneof![3 => Just(None), 1 => some(short.clone().prop_map(J::Str))],
        prop_oneof![3 => Just(None), 1 => some(short.prop_map(J::Str))],
    )
        .prop_map(
            |(pattern, replacement, value, ignorecase, global, pattern2, replacement2)| {
                directive(
                    "@replace",
                    options(vec![
                        ("pattern", pattern),
                        ("replacement", replacement),
                        ("value", value),
                        ("ignorecase", ignorecase),
                        ("global", global),
                        ("pattern2", pattern2),
                        ("replacement2", replacement2),
                    ]),
                )
            },
        )
        .boxed()
}

fn array_path_directive(m: BoxedStrategy<J>) -> BoxedStrategy<J> {
    let root = prop_oneof![3 => path().prop_map(J::Str), 1 => m.clone()];
    let shape = prop_oneof![
        1 => Just(None),
        1 => Just(Some(J::Obj(vec![]))),
        4 => object_of(m).prop_map(Some),
        1 => scalar().prop_map(Some),
    ];
    prop_oneof![
        12 => (root, shape).prop_map(|(r, s)| {
            let mut items = vec![r];
            items.extend(s);
            J::Arr(items)
        }),
        1 => Just(J::Arr(vec![])),
        1 => scalar(),
    ]
    .prop_map(|v| directive("@arrayPath", v))
    .boxed()
}

fn flatten_directive(m: BoxedStrategy<J>) -> BoxedStrategy<J> {
    let separator = maybe_wrong(
        some(prop::sample::select(vec![".", "_", "-", "→", " / "]).prop_map(J::s)),
        10,
    );
    let omit = prop_oneof![2 => Just(None), 1 => any::<bool>().prop_map(|b| Some(J::Bool(b))), 1 => scalar().prop_map(Some)];
    (separator, maybe_wrong(some(m), 10), omit)
        .prop_map(|(sep, value, omit)| {
            directive(
                "@flatten",
                options(vec![
                    ("separator", sep),
                    ("value", value),
                    ("omitArrays", omit),
                ]),
            )
        })
        .boxed()
}

fn json_directive(m: BoxedStrategy<J>) -> BoxedStrategy<J> {
    let mode = maybe_wrong(
        some(
            prop::sample::select(vec![
                "encode", "decode", "encode", "decode", "Encode", "DECODE", "parse",
            ])
            .prop_map(J::s),
        ),
        12,
    );
    (mode, maybe_wrong(some(m), 8))
        .prop_map(|(mode, value)| {
            directive("@json", options(vec![("mode", mode), ("value", value)]))
        })
        .boxed()
}

fn merge_directive(m: BoxedStrategy<J>) -> BoxedStrategy<J> {
    let direction = maybe_wrong(
        some(
            prop::sample::select(vec!["left", "right", "left", "right", "Left", "up"])
                .prop_map(J::s),
        ),
        10,
    );
    let item = prop_oneof![
        3 => object_of(m.clone()),
        3 => path().prop_map(|p| directive("@path", J::Str(p))),
        1 => m,
    ];
    let objects = maybe_wrong(some(prop::collection::vec(item, 0..4).prop_map(J::Arr)), 10);
    (direction, objects)
        .prop_map(|(d, o)| directive("@merge", options(vec![("direction", d), ("objects", o)])))
        .boxed()
}

fn transform_directive(m: BoxedStrategy<J>) -> BoxedStrategy<J> {
    let obj = object_of(m.clone());
    (
        maybe_wrong(some(obj.clone()), 10),
        maybe_wrong(some(obj), 10),
    )
        .prop_map(|(apply, mapping)| {
            directive(
                "@transform",
                options(vec![("apply", apply), ("mapping", mapping)]),
            )
        })
        .boxed()
}

/// Directive objects mapping-kit's validator or runtime refuses, or treats as plain objects.
fn malformed(m: BoxedStrategy<J>) -> BoxedStrategy<J> {
    (m.clone(), m, 0u8..5, key())
        .prop_map(|(a, b, form, k)| match form {
            0 => J::Obj(vec![("@path".into(), a), ("@template".into(), b)]),
            1 => J::Obj(vec![("@path".into(), a), (k, b)]),
            2 => J::Obj(vec![("@nope".into(), a)]),
            3 => J::Obj(vec![("@if".into(), a), ("_metadata".into(), b)]),
            _ => J::Obj(vec![("@".into(), a)]),
        })
        .boxed()
}
