//! Random `@liquid` templates: output of variables through chains of the allowed filters, the
//! allowed tags (`if`/`elsif`/`else`, `unless`, `assign`, `capture`, `echo`, `raw`, `comment`,
//! `liquid`, `cycle`, …), and refusals (disabled tags and filters, too long).
//!
//! Left out, as documented differences (README): `increment`/`decrement`, which LiquidJS
//! writes into the event itself; the `nil` literal, which LiquidJS's `json` and `inspect`
//! print as `{}`; `.size` of numbers and booleans; dates in text V8 guesses at. Table tests
//! (`liquid.rs`) cover the tags and `.size` of strings and arrays.

use proptest::prelude::*;

/// Variables: event paths in Liquid syntax, and literals.
fn operand() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "a", "b", "x", "n", "s", "email", "name", "traits.email", "traits.name",
            "properties.x", "properties.list", "list", "list[0]", "list.first", "list.last",
            "a.b", "missing", "traits['k y']", "properties.n",
        ])
        .prop_map(str::to_owned),
        1 => prop::sample::select(vec![
            "'text'", "\"Hello World\"", "1", "2.5", "-3", "0", "true", "false", "'  pad  '",
            "'a,b,c'", "'2024-01-15T10:30:00Z'", "1700000000", "'héllo'",
        ])
        .prop_map(str::to_owned),
    ]
}

/// One filter of the allowed set, with plausible arguments.
fn filter() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "upcase",
        "downcase",
        "capitalize",
        "strip",
        "lstrip",
        "rstrip",
        "strip_newlines",
        "size",
        "first",
        "last",
        "escape",
        "escape_once",
        "xml_escape",
        "strip_html",
        "url_encode",
        "url_decode",
        "cgi_escape",
        "uri_escape",
        "slugify",
        "abs",
        "ceil",
        "floor",
        "round",
        "round: 2",
        "plus: 1",
        "plus: 2.5",
        "minus: 3",
        "times: 1.1",
        "times: 2",
        "divided_by: 2",
        "divided_by: 3.0",
        "divided_by: 0",
        "modulo: 3",
        "at_least: 5",
        "at_most: 5",
        "append: '!'",
        "prepend: '> '",
        "remove: 'l'",
        "remove_first: 'l'",
        "remove_last: 'l'",
        "replace: 'l', 'L'",
        "replace_first: 'l', 'L'",
        "replace_last: 'l', 'L'",
        "split: ','",
        "split: ' '",
        "join: '-'",
        "join",
        "truncate: 5",
        "truncate: 5, '..'",
        "truncatewords: 1",
        "default: 'none'",
        "default: 0",
        "json",
        "jsonify",
        "inspect",
        "to_integer",
        "number_of_words",
        "normalize_whitespace",
        "squish",
        "compact",
        "sum",
        "slice: 1",
        "slice: 0, 2",
        "push: 'z'",
        "unshift: 'z'",
        "pop",
        "shift",
        "base64_encode",
        "base64_decode",
        "sha256",
        "hmac_sha256: 'key'",
        "raw",
        "where: 'a'",
        "where: 'a', 1",
        "nosuch",
    ])
    .prop_map(str::to_owned)
}

/// Date filters on what both sides read as a date (numbers, digit strings, ISO 8601): V8
/// also guesses dates in other text (`"2.5"` is 5 February 2001), a documented difference.
fn date_output() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec![
            "'2024-01-15T10:30:00Z'",
            "'2024-02-29'",
            "'2023-12-31T23:59:59.999+02:00'",
            "1700000000",
            "'1700000000'",
            "0",
            "-86400",
            "2.5",
            "'2024-01-15 10:30'",
        ]),
        prop::sample::select(vec![
            "date: '%Y-%m-%d'",
            "date: '%b %d, %Y %H:%M'",
            "date: '%a %A %B %j %U %W %u %w %e %l %p %s %L %N %z %:z %Z %c %x %X %%'",
            "date: '%-d %_m %^b %#p %10Y'",
            "date",
            "date_to_xmlschema",
            "date_to_string",
            "date_to_string: 'ordinal', 'US'",
            "date_to_long_string",
            "date_to_long_string: 'ordinal'",
            "date_to_rfc822",
        ]),
    )
        .prop_map(|(v, f)| format!("{{{{ {v} | {f} }}}}"))
}

fn output() -> impl Strategy<Value = String> {
    (
        operand(),
        prop::collection::vec(filter(), 0..3),
        any::<bool>(),
    )
        .prop_map(|(v, fs, trim)| {
            let mut s = v;
            for f in fs {
                s.push_str(" | ");
                s.push_str(&f);
            }
            if trim {
                format!("{{{{- {s} -}}}}")
            } else {
                format!("{{{{ {s} }}}}")
            }
        })
}

fn condition() -> impl Strategy<Value = String> {
    let cmp = prop::sample::select(vec!["==", "!=", ">", "<", ">=", "<=", "contains"]);
    let simple = prop_oneof![
        2 => operand(),
        3 => (operand(), cmp, operand()).prop_map(|(a, op, b)| format!("{a} {op} {b}")),
        1 => operand().prop_map(|a| format!("{a} == empty")),
        1 => operand().prop_map(|a| format!("{a} == blank")),
    ];
    (
        simple.clone(),
        prop::option::of((prop::sample::select(vec!["and", "or"]), simple)),
    )
        .prop_map(|(a, rest)| match rest {
            Some((op, b)) => format!("{a} {op} {b}"),
            None => a,
        })
}

fn text() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["", " ", "Hi ", "x", "-", "é", "\n", ", "]).prop_map(str::to_owned)
}

/// A Liquid template built from the pieces above.
pub fn template() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        3 => text(),
        6 => output(),
        1 => date_output(),
        2 => (condition(), output(), prop::option::of(output())).prop_map(|(c, t, e)| match e {
            Some(e) => format!("{{% if {c} %}}{t}{{% else %}}{e}{{% endif %}}"),
            None => format!("{{% if {c} %}}{t}{{% endif %}}"),
        }),
        1 => (condition(), condition(), output(), output()).prop_map(|(c1, c2, a, b)| {
            format!("{{% if {c1} %}}{a}{{% elsif {c2} %}}{b}{{% endif %}}")
        }),
        1 => (condition(), output()).prop_map(|(c, t)| format!("{{% unless {c} %}}{t}{{% endunless %}}")),
        1 => (operand(), filter()).prop_map(|(v, f)| format!("{{% assign v = {v} | {f} %}}{{{{ v }}}}")),
        1 => output().prop_map(|o| format!("{{% capture c %}}[{o}]{{% endcapture %}}{{{{ c | size }}}}{{{{ c }}}}")),
        1 => (operand(), filter()).prop_map(|(v, f)| format!("{{% echo {v} | {f} %}}")),
        1 => Just("{% raw %}{{ a }}{% endraw %}".to_owned()),
        1 => Just("{% comment %}{{ a }}{% endcomment %}{%# note %}".to_owned()),
        1 => (operand(), filter()).prop_map(|(v, f)| format!("{{% liquid\nassign w = {v} | {f}\necho w\n%}}")),
        1 => Just("{% cycle 'a', 'b' %}{% cycle 'a', 'b' %}".to_owned()),
        1 => prop::sample::select(vec![
            "{% for i in list %}{{ i }}{% endfor %}",
            "{% case a %}{% when 1 %}one{% endcase %}",
            "{% tablerow i in list %}{{ i }}{% endtablerow %}",
            "{% include 'x' %}",
            "{% render 'x' %}",
            "{% layout 'x' %}",
            "{{ list | sort }}",
            "{{ list | map: 'a' }}",
            "{{ list | reverse }}",
            "{{ list | uniq }}",
            "{{ a | type }}",
            "{{ a | concat: list }}",
            "{{ list | where_exp: 'i', 'i > 1' }}",
            "{{ s | newline_to_br }}",
            "{{ a",
            "{% if a %}",
            "{% endif %}",
            "{% nosuchtag %}",
        ])
        .prop_map(str::to_owned),
    ];
    prop_oneof![
        40 => prop::collection::vec(piece, 1..4).prop_map(|p| p.concat()),
        1 => (1usize..3).prop_map(|k| "x".repeat(999 + k)),
        1 => Just("{{ a }}".repeat(143)),
        1 => Just(String::new()),
    ]
}
