//! Table tests of every mapping-kit directive and of missing-value dropping: each case is a
//! mapping, an event and the JSON mapping-kit produces (`None` where it produces `undefined`).

use segment::mapping::Mapping;
use serde_json::{Value, json};

struct Case {
    name: &'static str,
    mapping: Value,
    event: Value,
    expected: Option<Value>,
}

fn case(name: &'static str, mapping: Value, event: Value, expected: Option<Value>) -> Case {
    Case {
        name,
        mapping,
        event,
        expected,
    }
}

fn run(cases: Vec<Case>) {
    let mut failures = Vec::new();
    for c in &cases {
        let mapping = match Mapping::compile(&c.mapping) {
            Ok(m) => m,
            Err(e) => {
                failures.push(format!("{}: did not compile: {e}", c.name));
                continue;
            }
        };
        let got = match mapping.resolve(&c.event) {
            Ok(resolved) => {
                // The three ways out of a result must agree.
                let by_ref = resolved.to_value();
                let serialised = if resolved.is_undefined() {
                    None
                } else {
                    serde_json::to_value(&resolved).ok()
                };
                let owned = resolved.into_value();
                if by_ref != owned || serialised != owned {
                    failures.push(format!(
                        "{}: to_value {by_ref:?}, serialised {serialised:?} and into_value {owned:?} differ",
                        c.name
                    ));
                }
                owned
            }
            Err(e) => {
                failures.push(format!("{}: failed at run time: {e}", c.name));
                continue;
            }
        };
        if got != c.expected {
            failures.push(format!(
                "{}:\n   expected {:?}\n        got {:?}",
                c.name, c.expected, got
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// An Engage identify event with a few awkward traits.
fn event() -> Value {
    json!({
        "type": "identify",
        "userId": "u-1",
        "anonymousId": null,
        "pointer": "traits.name",
        "traits": {
            "email": "Ann@Example.com",
            "name": "Ann",
            "age": 41,
            "score": 1.5,
            "vip": true,
            "churned": false,
            "empty": "",
            "zero": 0,
            "nothing": null,
            "tags": ["a", "b"],
            "noTags": [],
            "html": "<b>&</b>",
            "address": {"city": "Paris", "zip": null, "geo": {"lat": 1.0, "lng": null}},
            "space key": "sp",
            "weird.key": "dot"
        },
        "properties": {
            "email": "prop@example.com",
            "products": [
                {"id": "p1", "price": 0.5},
                {"id": "p2", "price": 1e21, "extra": true}
            ],
            "single": {"id": "s1"},
            "text": "a+b+c",
            "json": "{\"k\":[1,2]}",
            "bad_json": "{nope",
            "big": 100000000000000000000000.0,
            "tiny": 0.0000001
        },
        "context": {
            "personas": {"computation_key": "vip_users", "external_audience_id": "123"}
        }
    })
}

#[test]
fn raw_values_and_plain_objects() {
    let e = event();
    run(vec![
        // `transform` spreads a mapping that is not an object (`{...mapping}`): a string
        // into its characters, an array into its indexes, anything else into nothing.
        case(
            "raw string mapping",
            json!("neat"),
            e.clone(),
            Some(json!({"0": "n", "1": "e", "2": "a", "3": "t"})),
        ),
        case("raw number mapping", json!(5), e.clone(), Some(json!({}))),
        case(
            "raw array mapping",
            json!(["cool", {"@path": "$.a"}]),
            json!({"a": 1}),
            Some(json!({"0": "cool", "1": 1})),
        ),
        case(
            "directives in objects in arrays",
            json!({"k": [{"x": {"@literal": "ß"}}]}),
            e.clone(),
            Some(json!({"k": [{"x": "ß"}]})),
        ),
        case("empty mapping", json!({}), e.clone(), Some(json!({}))),
        case(
            "pass-through object",
            json!({"cool": true, "n": null}),
            e.clone(),
            Some(json!({"cool": true, "n": null})),
        ),
        case(
            "object of directives",
            json!({"a": 1, "b": {"@path": "$.userId"}, "c": {"d": {"@path": "$.traits.name"}}}),
            e.clone(),
            Some(json!({"a": 1, "b": "u-1", "c": {"d": "Ann"}})),
        ),
        case(
            "arrays resolve item by item",
            json!({"list": [{"@path": "$.userId"}, 2, {"x": {"@path": "$.traits.age"}}]}),
            e.clone(),
            Some(json!({"list": ["u-1", 2, {"x": 41}]})),
        ),
        case(
            "_metadata beside a directive is ignored",
            json!({"a": {"@path": "$.userId", "_metadata": {"label": "x"}}}),
            e.clone(),
            Some(json!({"a": "u-1"})),
        ),
        case(
            "inside arrays an @-key mixed with other keys is an ordinary object",
            json!({"a": [{"@path": {"@path": "$.pointer"}, "x": 1}]}),
            e.clone(),
            // The value under "@path" is itself a mapping, resolved like any other.
            Some(json!({"a": [{"@path": "traits.name", "x": 1}]})),
        ),
        case(
            "an object holding only _metadata is an ordinary object",
            json!({"a": {"_metadata": 1}}),
            e.clone(),
            Some(json!({"a": {"_metadata": 1}})),
        ),
    ]);
}

#[test]
fn missing_values_are_dropped_and_null_is_kept() {
    let e = event();
    run(vec![
        case(
            "undefined members vanish, null members stay",
            json!({
                "missing": {"@path": "$.nope"},
                "null_trait": {"@path": "$.traits.nothing"},
                "null_raw": null,
                "kept": {"@path": "$.userId"}
            }),
            e.clone(),
            Some(json!({"null_trait": null, "null_raw": null, "kept": "u-1"})),
        ),
        case(
            "nested objects keep their shell",
            json!({"x": {"y": {"@path": "$.nope"}}, "z": {"w": {"v": {"@path": "$.nope"}}}}),
            e.clone(),
            Some(json!({"x": {}, "z": {"w": {}}})),
        ),
        case(
            "undefined array items become null",
            json!({"a": [{"@path": "$.nope"}, 1, {"@path": "$.traits.nothing"}]}),
            e.clone(),
            Some(json!({"a": [null, 1, null]})),
        ),
        case(
            "a top-level directive can be undefined",
            json!({"@path": "$.nope"}),
            e.clone(),
            None,
        ),
        case(
            "a path through a missing parent is undefined",
            json!({"a": {"@path": "$.nope.deeper.still"}}),
            e.clone(),
            Some(json!({})),
        ),
        case(
            "a path through null returns null",
            json!({"a": {"@path": "$.traits.nothing.deeper"}}),
            e.clone(),
            Some(json!({"a": null})),
        ),
        case(
            "a path through a falsy value returns that value",
            json!({"zero": {"@path": "$.traits.zero.x"}, "empty": {"@path": "$.traits.empty.x"}, "no": {"@path": "$.traits.churned.x"}}),
            e.clone(),
            Some(json!({"zero": 0, "empty": "", "no": false})),
        ),
    ]);
}

#[test]
fn path_directive() {
    let e = event();
    let path = |p: &str| json!({"v": {"@path": p}});
    run(vec![
        case(
            "$. prefix",
            path("$.userId"),
            e.clone(),
            Some(json!({"v": "u-1"})),
        ),
        case(
            "no prefix",
            path("userId"),
            e.clone(),
            Some(json!({"v": "u-1"})),
        ),
        case(
            "nested",
            path("$.traits.address.city"),
            e.clone(),
            Some(json!({"v": "Paris"})),
        ),
        case(
            "bracket index",
            path("$.traits.tags[1]"),
            e.clone(),
            Some(json!({"v": "b"})),
        ),
        case(
            "dot index",
            path("$.traits.tags.0"),
            e.clone(),
            Some(json!({"v": "a"})),
        ),
        case(
            "quoted key",
            path("$.traits['space key']"),
            e.clone(),
            Some(json!({"v": "sp"})),
        ),
        case(
            "double-quoted key",
            path("$.traits[\"space key\"]"),
            e.clone(),
            Some(json!({"v": "sp"})),
        ),
        case(
            "key with a space",
            path("$.traits.space key"),
            e.clone(),
            Some(json!({"v": "sp"})),
        ),
        case(
            "keys with dots cannot be reached",
            path("$.traits['weird.key']"),
            e.clone(),
            Some(json!({})),
        ),
        case(
            "string length",
            path("$.traits.name.length"),
            e.clone(),
            Some(json!({"v": 3})),
        ),
        case(
            "array length",
            path("$.traits.tags.length"),
            e.clone(),
            Some(json!({"v": 2})),
        ),
        case(
            "string character",
            path("$.traits.name[0]"),
            e.clone(),
            Some(json!({"v": "A"})),
        ),
        case(
            "empty path is the whole event",
            json!({"@path": ""}),
            e.clone(),
            Some(e.clone()),
        ),
        case(
            "$. alone is the whole event",
            json!({"@path": "$."}),
            e.clone(),
            Some(e.clone()),
        ),
        case(
            "$ alone is the key \"$\"",
            path("$"),
            e.clone(),
            Some(json!({})),
        ),
        case(
            "only the first $. is removed",
            path("$.traits.$.name"),
            e.clone(),
            Some(json!({})),
        ),
        case(
            "arrays come back whole",
            path("$.traits.tags"),
            e.clone(),
            Some(json!({"v": ["a", "b"]})),
        ),
        case(
            "a directive can compute the path",
            json!({"v": {"@path": {"@path": "$.pointer"}}}),
            e.clone(),
            Some(json!({"v": "Ann"})),
        ),
        case(
            "a template can compute the path",
            json!({"v": {"@path": {"@template": "$.traits.{{properties.single.id}}"}}}),
            json!({"traits": {"s1": "found"}, "properties": {"single": {"id": "s1"}}}),
            Some(json!({"v": "found"})),
        ),
    ]);
}

#[test]
fn template_directive() {
    let e = event();
    let t = |s: &str| json!({"@template": s});
    run(vec![
        case(
            "basic",
            t("Hello, {{traits.name}}!"),
            e.clone(),
            Some(json!("Hello, Ann!")),
        ),
        case(
            "spaces inside braces",
            t("{{ traits.name }}"),
            e.clone(),
            Some(json!("Ann")),
        ),
        case(
            "numbers, booleans, null and undefined",
            t(
                "{{traits.age}}/{{traits.score}}/{{traits.vip}}/{{traits.churned}}/{{traits.nothing}}/{{traits.nope}}",
            ),
            e.clone(),
            Some(json!("41/1.5/true/false//")),
        ),
        case(
            "floats as JavaScript prints them",
            t("{{properties.products[1].price}} {{properties.big}} {{properties.tiny}}"),
            e.clone(),
            Some(json!("1e+21 1e+23 1e-7")),
        ),
        case(
            "whole floats lose their .0",
            t("{{traits.address.geo.lat}}"),
            e.clone(),
            Some(json!("1")),
        ),
        case(
            "arrays join with commas",
            t("{{traits.tags}}|{{traits.noTags}}"),
            e.clone(),
            Some(json!("a,b|")),
        ),
        case(
            "objects",
            t("{{traits.address}}"),
            e.clone(),
            Some(json!("[object Object]")),
        ),
        case(
            "no HTML escaping",
            t("{{traits.html}} {{{traits.html}}}"),
            e.clone(),
            Some(json!("<b>&</b> <b>&</b>")),
        ),
        case(
            "no $. handling in placeholders",
            t("{{$.userId}}"),
            e.clone(),
            Some(json!("")),
        ),
        case(
            "missing fields give empty text",
            t("{{oops.yo}}"),
            e.clone(),
            Some(json!("")),
        ),
        case(
            "plain text",
            t("just text"),
            e.clone(),
            Some(json!("just text")),
        ),
        case(
            "a directive can compute the template",
            json!({"@template": {"@path": "$.tpl"}}),
            json!({"tpl": "hi {{who}}", "who": "you"}),
            Some(json!("hi you")),
        ),
    ]);
}

#[test]
fn literal_directive() {
    let e = event();
    run(vec![
        case(
            "false",
            json!({"v": {"@literal": false}}),
            e.clone(),
            Some(json!({"v": false})),
        ),
        case(
            "empty string",
            json!({"v": {"@literal": ""}}),
            e.clone(),
            Some(json!({"v": ""})),
        ),
        case(
            "null",
            json!({"v": {"@literal": null}}),
            e.clone(),
            Some(json!({"v": null})),
        ),
        case(
            "directives inside still run",
            json!({"v": {"@literal": {"a": {"@path": "$.userId"}, "b": {"@path": "$.nope"}}}}),
            e.clone(),
            Some(json!({"v": {"a": "u-1"}})),
        ),
        case(
            "arrays inside",
            json!({"v": {"@literal": [1, {"@path": "$.userId"}]}}),
            e.clone(),
            Some(json!({"v": [1, "u-1"]})),
        ),
        case(
            "a directive as the value",
            json!({"v": {"@literal": {"@path": "$.traits.age"}}}),
            e.clone(),
            Some(json!({"v": 41})),
        ),
    ]);
}

#[test]
fn if_directive() {
    let e = event();
    let exists =
        |p: &str| json!({"v": {"@if": {"exists": {"@path": p}, "then": "T", "else": "E"}}});
    let blank = |p: &str| json!({"v": {"@if": {"blank": {"@path": p}, "then": "T", "else": "E"}}});
    let t = Some(json!({"v": "T"}));
    let f = Some(json!({"v": "E"}));
    run(vec![
        case(
            "exists: a value",
            exists("$.traits.name"),
            e.clone(),
            t.clone(),
        ),
        case(
            "exists: empty string exists",
            exists("$.traits.empty"),
            e.clone(),
            t.clone(),
        ),
        case(
            "exists: 0 exists",
            exists("$.traits.zero"),
            e.clone(),
            t.clone(),
        ),
        case(
            "exists: false exists",
            exists("$.traits.churned"),
            e.clone(),
            t.clone(),
        ),
        case(
            "exists: {} exists",
            json!({"v": {"@if": {"exists": {}, "then": "T", "else": "E"}}}),
            e.clone(),
            t.clone(),
        ),
        case(
            "exists: null does not",
            exists("$.traits.nothing"),
            e.clone(),
            f.clone(),
        ),
        case(
            "exists: missing does not",
            exists("$.nope"),
            e.clone(),
            f.clone(),
        ),
        case(
            "blank: a value is not blank",
            blank("$.traits.name"),
            e.clone(),
            t.clone(),
        ),
        case(
            "blank: empty string is blank",
            blank("$.traits.empty"),
            e.clone(),
            f.clone(),
        ),
        case(
            "blank: 0 is blank",
            blank("$.traits.zero"),
            e.clone(),
            f.clone(),
        ),
        case(
            "blank: false is blank",
            blank("$.traits.churned"),
            e.clone(),
            f.clone(),
        ),
        case(
            "blank: [] is blank",
            blank("$.traits.noTags"),
            e.clone(),
            f.clone(),
        ),
        case(
            "blank: null is blank",
            blank("$.traits.nothing"),
            e.clone(),
            f.clone(),
        ),
        case(
            "blank: an object is not blank",
            blank("$.traits.address"),
            e.clone(),
            t.clone(),
        ),
        case(
            "blank: true is not blank",
            blank("$.traits.vip"),
            e.clone(),
            t.clone(),
        ),
        case(
            "blank: \"0\" and \" \" are not blank",
            json!({"a": {"@if": {"blank": "0", "then": "T", "else": "E"}}, "b": {"@if": {"blank": " ", "then": "T", "else": "E"}}}),
            e.clone(),
            Some(json!({"a": "T", "b": "T"})),
        ),
        case(
            "no else and false: dropped",
            json!({"v": {"@if": {"exists": {"@path": "$.nope"}, "then": "T"}}}),
            e.clone(),
            Some(json!({})),
        ),
        case(
            "a falsy else is never resolved",
            json!({
                "a": {"@if": {"exists": {"@path": "$.nope"}, "then": "T", "else": false}},
                "b": {"@if": {"exists": {"@path": "$.nope"}, "then": "T", "else": 0}},
                "c": {"@if": {"exists": {"@path": "$.nope"}, "then": "T", "else": ""}},
                "d": {"@if": {"exists": {"@path": "$.nope"}, "then": "T", "else": null}}
            }),
            e.clone(),
            Some(json!({})),
        ),
        case(
            "no then and true: dropped",
            json!({"v": {"@if": {"exists": {"@path": "$.userId"}, "else": "E"}}}),
            e.clone(),
            Some(json!({})),
        ),
        case(
            "then: null gives null",
            json!({"v": {"@if": {"exists": {"@path": "$.userId"}, "then": null}}}),
            e.clone(),
            Some(json!({"v": null})),
        ),
        case(
            "then resolving to undefined drops the field",
            json!({"v": {"@if": {"exists": {"@path": "$.userId"}, "then": {"@path": "$.nope"}, "else": "E"}}}),
            e.clone(),
            Some(json!({})),
        ),
        case(
            "a present exists wins over blank, even when falsy",
            json!({"v": {"@if": {"exists": null, "blank": "x", "then": "T", "else": "E"}}}),
            e.clone(),
            f.clone(),
        ),
        case(
            "exists wins over blank",
            json!({"v": {"@if": {"exists": {"@path": "$.traits.empty"}, "blank": {"@path": "$.traits.empty"}, "then": "T", "else": "E"}}}),
            e.clone(),
            t.clone(),
        ),
        case(
            "raw exists value",
            json!({"v": {"@if": {"exists": "x", "then": {"@path": "$.userId"}}}}),
            e.clone(),
            Some(json!({"v": "u-1"})),
        ),
    ]);
}

#[test]
fn destination_default_mapping() {
    // The NEW "Iterable Lists (Actions)" defaults for syncAudience.
    let mapping = json!({
        "email": {"@if": {"exists": {"@path": "$.traits.email"}, "then": {"@path": "$.traits.email"}, "else": {"@path": "$.properties.email"}}},
        "userId": {"@path": "$.userId"},
        "traitsOrProperties": {"@if": {"exists": {"@path": "$.traits"}, "then": {"@path": "$.traits"}, "else": {"@path": "$.properties"}}},
        "segmentAudienceKey": {"@path": "$.context.personas.computation_key"},
        "segmentAudienceId": {"@path": "$.context.personas.external_audience_id"}
    });
    let identify = json!({
        "type": "identify", "userId": "u1",
        "traits": {"vip_users": true, "email": "a@b.co"},
        "context": {"personas": {"computation_key": "vip_users", "external_audience_id": "42"}}
    });
    let track = json!({
        "type": "track", "event": "Audience Exited",
        "properties": {"audience_key": "vip_users", "vip_users": false},
        "context": {"traits": {"email": "c@d.co"}, "personas": {"computation_key": "vip_users"}}
    });
    run(vec![
        case(
            "identify",
            mapping.clone(),
            identify,
            Some(json!({
                "email": "a@b.co",
                "userId": "u1",
                "traitsOrProperties": {"vip_users": true, "email": "a@b.co"},
                "segmentAudienceKey": "vip_users",
                "segmentAudienceId": "42"
            })),
        ),
        case(
            "track without properties.email or userId",
            mapping,
            track,
            Some(json!({
                "traitsOrProperties": {"audience_key": "vip_users", "vip_users": false},
                "segmentAudienceKey": "vip_users"
            })),
        ),
    ]);
}

#[test]
fn case_directive() {
    let e = event();
    let c = |op: &str, p: &str| json!({"v": {"@case": {"operator": op, "value": {"@path": p}}}});
    run(vec![
        case(
            "lower",
            c("lower", "$.traits.email"),
            e.clone(),
            Some(json!({"v": "ann@example.com"})),
        ),
        case(
            "upper",
            c("upper", "$.traits.email"),
            e.clone(),
            Some(json!({"v": "ANN@EXAMPLE.COM"})),
        ),
        case(
            "full Unicode case mapping",
            json!({"v": {"@case": {"operator": "upper", "value": "straße"}}}),
            e.clone(),
            Some(json!({"v": "STRASSE"})),
        ),
        case(
            "numbers pass through",
            c("lower", "$.traits.age"),
            e.clone(),
            Some(json!({"v": 41})),
        ),
        case(
            "null passes through",
            c("lower", "$.traits.nothing"),
            e.clone(),
            Some(json!({"v": null})),
        ),
        case(
            "objects pass through",
            c("upper", "$.traits.address.geo"),
            e.clone(),
            Some(json!({"v": {"lat": 1.0, "lng": null}})),
        ),
        case(
            "missing stays missing",
            c("lower", "$.nope"),
            e.clone(),
            Some(json!({})),
        ),
        case(
            "empty string",
            c("upper", "$.traits.empty"),
            e.clone(),
            Some(json!({"v": ""})),
        ),
        case(
            "no value key: undefined",
            json!({"v": {"@case": {"operator": "lower"}}}),
            e.clone(),
            Some(json!({})),
        ),
        case(
            "a falsy raw value is never resolved",
            json!({"v": {"@case": {"operator": "lower", "value": ""}}}),
            e.clone(),
            Some(json!({})),
        ),
    ]);
}

#[test]
fn replace_directive() {
    let e = event();
    let r = |opts: Value| json!({"v": {"@replace": opts}});
    run(vec![
        case(
            "global by default",
            r(json!({"pattern": "+", "replacement": "_", "value": {"@path": "$.properties.text"}})),
            e.clone(),
            Some(json!({"v": "a_b_c"})),
        ),
        case(
            "first only",
            r(
                json!({"pattern": "+", "replacement": "_", "global": false, "value": {"@path": "$.properties.text"}}),
            ),
            e.clone(),
            Some(json!({"v": "a_b+c"})),
        ),
        case(
            "no replacement deletes",
            r(json!({"pattern": "+", "value": {"@path": "$.properties.text"}})),
            e.clone(),
            Some(json!({"v": "abc"})),
        ),
        case(
            "case-sensitive by default",
            r(json!({"pattern": "ann", "replacement": "X", "value": {"@path": "$.traits.email"}})),
            e.clone(),
            Some(json!({"v": "Ann@Example.com"})),
        ),
        case(
            "ignorecase",
            r(
                json!({"pattern": "ann", "replacement": "X", "ignorecase": true, "value": {"@path": "$.traits.email"}}),
            ),
            e.clone(),
            Some(json!({"v": "X@Example.com"})),
        ),
        case(
            "second pattern",
            r(
                json!({"pattern": "-", "replacement": " ", "pattern2": "great", "replacement2": "awesome", "value": "something-great!"}),
            ),
            e.clone(),
            Some(json!({"v": "something awesome!"})),
        ),
        case(
            "empty pattern2 is ignored",
            r(
                json!({"pattern": "_", "replacement": "+", "pattern2": "", "replacement2": "", "value": "abc_def"}),
            ),
            e.clone(),
            Some(json!({"v": "abc+def"})),
        ),
        case(
            "booleans become text",
            r(
                json!({"pattern": "true", "replacement": "granted", "value": {"@path": "$.traits.vip"}}),
            ),
            e.clone(),
            Some(json!({"v": "granted"})),
        ),
        case(
            "numbers become JavaScript text",
            r(json!({"pattern": ".", "replacement": ",", "value": {"@path": "$.traits.score"}})),
            e.clone(),
            Some(json!({"v": "1,5"})),
        ),
        case(
            "large numbers in exponent form",
            r(
                json!({"pattern": "+", "replacement": "", "value": {"@path": "$.properties.products[1].price"}}),
            ),
            e.clone(),
            Some(json!({"v": "1e21"})),
        ),
        case(
            "null becomes empty text",
            r(json!({"pattern": "_", "value": {"@path": "$.traits.nothing"}})),
            e.clone(),
            Some(json!({"v": ""})),
        ),
        case(
            "missing becomes empty text",
            r(json!({"pattern": "_", "value": {"@path": "$.nope"}})),
            e.clone(),
            Some(json!({"v": ""})),
        ),
        case(
            "objects become empty text",
            r(json!({"pattern": "_", "value": {"@path": "$.traits.address"}})),
            e.clone(),
            Some(json!({"v": ""})),
        ),
        case(
            "regex characters are literal",
            r(
                json!({"pattern": "\"", "pattern2": "\\", "replacement": "", "replacement2": "", "value": "abc\"def\\gh"}),
            ),
            e.clone(),
            Some(json!({"v": "abcdefgh"})),
        ),
        case(
            "$& inserts the match",
            r(json!({"pattern": "b", "replacement": "[$&]", "value": "abc"})),
            e.clone(),
            Some(json!({"v": "a[b]c"})),
        ),
        case(
            "$$ inserts a dollar",
            r(json!({"pattern": "b", "replacement": "$$", "value": "abc"})),
            e.clone(),
            Some(json!({"v": "a$c"})),
        ),
        case(
            "a falsy raw value is never resolved",
            r(json!({"pattern": "a", "value": ""})),
            e.clone(),
            Some(json!({})),
        ),
        case(
            "in an unvalidated array a non-boolean flag yields empty text",
            json!({"v": [{"@replace": {"pattern": "a", "value": "banana", "global": "yes"}}]}),
            e.clone(),
            Some(json!({"v": [""]})),
        ),
    ]);
}

#[test]
fn array_path_directive() {
    let e = event();
    let shape = json!({"pid": {"@path": "$.id"}, "cost": {"@path": "$.price"}, "extra": {"@path": "$.extra"}});
    run(vec![
        case(
            "no shape",
            json!({"v": {"@arrayPath": ["$.properties.products"]}}),
            e.clone(),
            Some(json!({"v": e["properties"]["products"].clone()})),
        ),
        case(
            "shape per item, missing members dropped",
            json!({"v": {"@arrayPath": ["$.properties.products", shape.clone()]}}),
            e.clone(),
            Some(
                json!({"v": [{"pid": "p1", "cost": 0.5}, {"pid": "p2", "cost": 1e21, "extra": true}]}),
            ),
        ),
        case(
            "a single object becomes a one-item list",
            json!({"v": {"@arrayPath": ["$.properties.single", {"pid": {"@path": "$.id"}}]}}),
            e.clone(),
            Some(json!({"v": [{"pid": "s1"}]})),
        ),
        case(
            "a directive shape maps each item",
            json!({"v": {"@arrayPath": ["$.properties.products", {"@path": "$.id"}]}}),
            e.clone(),
            Some(json!({"v": ["p1", "p2"]})),
        ),
        case(
            "item shapes can use templates",
            json!({"v": {"@arrayPath": ["$.properties.products", {"label": {"@template": "{{id}}={{price}}"}}]}}),
            e.clone(),
            Some(json!({"v": [{"label": "p1=0.5"}, {"label": "p2=1e+21"}]})),
        ),
        case(
            "a missing root is dropped",
            json!({"v": {"@arrayPath": ["$.nope", shape.clone()]}}),
            e.clone(),
            Some(json!({})),
        ),
        case(
            "a scalar root is returned as is",
            json!({"v": {"@arrayPath": ["$.userId", shape.clone()]}}),
            e.clone(),
            Some(json!({"v": "u-1"})),
        ),
        case(
            "an empty shape leaves the root",
            json!({"v": {"@arrayPath": ["$.properties.single", {}]}}),
            e.clone(),
            Some(json!({"v": {"id": "s1"}})),
        ),
        case(
            "a directive root",
            json!({"v": {"@arrayPath": [
                {"@if": {"exists": {"@path": "$.properties.products"}, "then": {"@path": "$.properties.products"}, "else": []}},
                {"pid": {"@path": "$.id"}}
            ]}}),
            e.clone(),
            Some(json!({"v": [{"pid": "p1"}, {"pid": "p2"}]})),
        ),
        case(
            "string items are payloads too",
            json!({"v": {"@arrayPath": ["$.traits.tags", {"first": {"@path": "$.0"}, "len": {"@path": "$.length"}}]}}),
            e.clone(),
            Some(json!({"v": [{"first": "a", "len": 1}, {"first": "b", "len": 1}]})),
        ),
    ]);
}

#[test]
fn json_directive() {
    let e = event();
    let j = |mode: &str, p: &str| json!({"v": {"@json": {"mode": mode, "value": {"@path": p}}}});
    run(vec![
        case(
            "encode a string",
            j("encode", "$.userId"),
            e.clone(),
            Some(json!({"v": "\"u-1\""})),
        ),
        case(
            "encode an object",
            j("encode", "$.properties.single"),
            e.clone(),
            Some(json!({"v": "{\"id\":\"s1\"}"})),
        ),
        case(
            "encode an array",
            j("encode", "$.traits.tags"),
            e.clone(),
            Some(json!({"v": "[\"a\",\"b\"]"})),
        ),
        case(
            "encode numbers the JavaScript way",
            j("encode", "$.traits.address.geo"),
            e.clone(),
            Some(json!({"v": "{\"lat\":1,\"lng\":null}"})),
        ),
        case(
            "encode null",
            j("encode", "$.traits.nothing"),
            e.clone(),
            Some(json!({"v": "null"})),
        ),
        case(
            "encode missing: dropped",
            j("encode", "$.nope"),
            e.clone(),
            Some(json!({})),
        ),
        case(
            "encode skips undefined members and nulls undefined items",
            json!({"v": {"@json": {"mode": "encode", "value": {"a": {"@path": "$.nope"}, "b": [{"@path": "$.nope"}]}}}}),
            e.clone(),
            Some(json!({"v": "{\"b\":[null]}"})),
        ),
        case(
            "decode an object",
            j("decode", "$.properties.json"),
            e.clone(),
            Some(json!({"v": {"k": [1, 2]}})),
        ),
        case(
            "decode a quoted string",
            json!({"v": {"@json": {"mode": "decode", "value": "\"bar\""}}}),
            e.clone(),
            Some(json!({"v": "bar"})),
        ),
        case(
            "decode leaves invalid JSON as it is",
            j("decode", "$.properties.bad_json"),
            e.clone(),
            Some(json!({"v": "{nope"})),
        ),
        case(
            "decode passes non-strings through",
            j("decode", "$.traits.age"),
            e.clone(),
            Some(json!({"v": 41})),
        ),
        case(
            "a mode valid only case-insensitively resolves to nothing",
            j("Encode", "$.userId"),
            e.clone(),
            Some(json!({})),
        ),
    ]);
}

#[test]
fn flatten_directive() {
    let e = event();
    let f = |opts: Value| json!({"v": {"@flatten": opts}});
    run(vec![
        case(
            "dots",
            f(json!({"separator": ".", "value": {"@path": "$.traits.address"}})),
            e.clone(),
            Some(json!({"v": {"city": "Paris", "zip": null, "geo.lat": 1.0, "geo.lng": null}})),
        ),
        case(
            "custom separator and arrays by index",
            f(json!({"separator": "_", "value": {"@path": "$.properties.products"}})),
            e.clone(),
            Some(
                json!({"v": {"0_id": "p1", "0_price": 0.5, "1_id": "p2", "1_price": 1e21, "1_extra": true}}),
            ),
        ),
        case(
            "omitArrays keeps arrays",
            f(
                json!({"separator": ".", "omitArrays": true, "value": {"x": {"tags": {"@path": "$.traits.tags"}}}}),
            ),
            e.clone(),
            Some(json!({"v": {"x.tags": ["a", "b"]}})),
        ),
        case(
            "a missing value gives {}",
            f(json!({"separator": ",", "value": {"@path": "$.nope"}})),
            e.clone(),
            Some(json!({"v": {}})),
        ),
        case(
            "a scalar gives the empty key",
            f(json!({"separator": ".", "value": {"@path": "$.userId"}})),
            e.clone(),
            Some(json!({"v": {"": "u-1"}})),
        ),
        case(
            "empty containers vanish",
            f(json!({"separator": ".", "value": {"a": {}, "b": [], "c": 1}})),
            e.clone(),
            Some(json!({"v": {"c": 1}})),
        ),
    ]);
}

#[test]
fn merge_directive() {
    let e = event();
    let m = |direction: &str, objects: Value| json!({"v": {"@merge": {"direction": direction, "objects": objects}}});
    run(vec![
        case(
            "empty",
            m("left", json!([])),
            e.clone(),
            Some(json!({"v": {}})),
        ),
        case(
            "right: later wins",
            m("right", json!([{"cool": true}, {"cool": "you bet"}])),
            e.clone(),
            Some(json!({"v": {"cool": "you bet"}})),
        ),
        case(
            "left: earlier wins",
            m("left", json!([{"cool": true}, {"cool": "you bet"}])),
            e.clone(),
            Some(json!({"v": {"cool": true}})),
        ),
        case(
            "directives as objects",
            m(
                "right",
                json!([{"cool": true, "city": "X"}, {"@path": "$.traits.address.geo"}, {"@path": "$.nope"}, {"city": {"@path": "$.traits.address.city"}}]),
            ),
            e.clone(),
            Some(json!({"v": {"cool": true, "city": "Paris", "lat": 1.0, "lng": null}})),
        ),
        case(
            "an undefined member still overrides, then vanishes",
            m(
                "right",
                json!([{"a": 1, "b": 2}, {"a": {"@path": "$.nope"}}]),
            ),
            e.clone(),
            Some(json!({"v": {"b": 2}})),
        ),
        case(
            "\"LEFT\" passes validation but merges to the right",
            m("LEFT", json!([{"a": 1}, {"a": 2}])),
            e.clone(),
            Some(json!({"v": {"a": 2}})),
        ),
        case(
            "in an unvalidated array, strings spread into characters",
            json!({"v": [{"@merge": {"direction": "right", "objects": ["ab", 5, null, [true]]}}]}),
            e.clone(),
            Some(json!({"v": [{"0": true, "1": "b"}]})),
        ),
    ]);
}

#[test]
fn transform_directive() {
    let e = json!({
        "properties": {"test": "value", "another": "thing", "nested": {"a": "special", "b": 2}},
        "otherStuff": "foo"
    });
    let expected = Some(json!({
        "properties": {"test": "value", "another": "thing", "nested_a": "special", "nested_b": 2},
        "topLevel": "special"
    }));
    let apply =
        json!({"properties": {"@flatten": {"value": {"@path": "$.properties"}, "separator": "_"}}});
    run(vec![
        case(
            "simple",
            json!({"@transform": {"apply": {"foo": {"@path": "$.otherStuff"}}, "mapping": {"cool": {"@path": "$.foo"}}}}),
            e.clone(),
            Some(json!({"cool": "foo"})),
        ),
        case(
            "composed with @flatten",
            json!({"@transform": {"apply": apply.clone(), "mapping": {"properties": {"@path": "$.properties"}, "topLevel": {"@path": "$.properties.nested_a"}}}}),
            e.clone(),
            expected.clone(),
        ),
        case(
            "root directive",
            json!({
                "__segment_internal_directive": {"@transform": {"apply": apply}},
                "properties": {"@path": "$.properties"},
                "topLevel": {"@path": "$.properties.nested_a"}
            }),
            e.clone(),
            expected,
        ),
        case(
            "undefined is removed from the new payload",
            json!({"@transform": {"apply": {"a": {"@path": "$.nope"}, "b": 1}, "mapping": {"all": {"@path": ""}}}}),
            e.clone(),
            Some(json!({"all": {"b": 1}})),
        ),
    ]);
}

#[test]
fn exclude_when_null_directive() {
    let e = event();
    run(vec![
        case(
            "null removes the field",
            json!({"v": {"@excludeWhenNull": {"@path": "$.traits.nothing"}}, "w": {"@path": "$.traits.nothing"}}),
            e.clone(),
            Some(json!({"w": null})),
        ),
        case(
            "objects lose their null members, deeply",
            json!({"v": {"@excludeWhenNull": {"@path": "$.traits.address"}}}),
            e.clone(),
            Some(json!({"v": {"city": "Paris", "geo": {"lat": 1.0}}})),
        ),
        case(
            "arrays are left alone",
            json!({"v": {"@excludeWhenNull": [null, 1]}}),
            e.clone(),
            Some(json!({"v": [null, 1]})),
        ),
        case(
            "scalars pass through",
            json!({"v": {"@excludeWhenNull": {"@path": "$.traits.zero"}}}),
            e.clone(),
            Some(json!({"v": 0})),
        ),
        case(
            "missing stays missing",
            json!({"v": {"@excludeWhenNull": {"@path": "$.nope"}}}),
            e.clone(),
            Some(json!({})),
        ),
    ]);
}

#[test]
fn a_compiled_mapping_serves_many_events() {
    let mapping =
        Mapping::compile(&json!({"id": {"@path": "$.userId"}, "n": {"@template": "#{{n}}"}}));
    let Ok(mapping) = mapping else {
        panic!("mapping did not compile: {mapping:?}");
    };
    for n in 0..100 {
        let event = json!({"userId": format!("u{n}"), "n": n});
        let got = mapping.resolve_value(&event);
        assert_eq!(
            got,
            Ok(Some(json!({"id": format!("u{n}"), "n": format!("#{n}")}))),
            "event {n}"
        );
    }
}
