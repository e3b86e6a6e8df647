//! Table tests of invalid mappings (each rejected at compile time, naming field, directive and
//! reason, where mapping-kit's validator rejects them), of the directives mapping-kit's runtime
//! throws on (failing only the events that reach them, with mapping-kit's message), and of the
//! event-dependent errors that only resolution can find.

use segment::mapping::{EvalError, Expected, JsType, Mapping, MappingError, Reason, Segment};
use serde_json::{Value, json};

struct Bad {
    name: &'static str,
    mapping: Value,
    field: &'static str,
    directive: Option<&'static str>,
    reason: Reason,
}

fn bad(
    name: &'static str,
    mapping: Value,
    field: &'static str,
    directive: Option<&'static str>,
    reason: Reason,
) -> Bad {
    Bad {
        name,
        mapping,
        field,
        directive,
        reason,
    }
}

fn wrong(expected: Expected, found: JsType) -> Reason {
    Reason::WrongType { expected, found }
}

fn run(cases: Vec<Bad>) {
    let mut failures = Vec::new();
    for c in &cases {
        let error = match Mapping::compile(&c.mapping) {
            Ok(_) => {
                failures.push(format!("{}: compiled, but should not", c.name));
                continue;
            }
            Err(error) => error,
        };
        let got = (error.field(), error.directive(), error.reason());
        if got != (c.field.to_owned(), c.directive, &c.reason) {
            failures.push(format!(
                "{}:\n   expected field {:?}, directive {:?}, reason {:?}\n        got {error} ({:?})",
                c.name,
                c.field,
                c.directive,
                c.reason,
                error.reason()
            ));
        }
        let shown = error.to_string();
        if !shown.contains(&c.reason.to_string())
            || c.directive.is_some_and(|d| !shown.contains(d))
            || (!c.field.is_empty() && !shown.contains(c.field))
        {
            failures.push(format!(
                "{}: message {shown:?} does not say where and why",
                c.name
            ));
        }
        if Mapping::problems(&c.mapping).first() != Some(&error) {
            failures.push(format!(
                "{}: problems() does not start with the compile error",
                c.name
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

#[test]
fn directive_shape_errors() {
    run(vec![
        bad(
            "a directive mixed with other keys",
            json!({"dataFields": {"@path": "$.a", "x": 1}}),
            "dataFields",
            Some("@path"),
            Reason::MixedKeys { keys: 2 },
        ),
        bad(
            "two directives in one object",
            json!({"email": {"@path": "$.a", "@template": "b"}}),
            "email",
            Some("@path"),
            Reason::MixedKeys { keys: 2 },
        ),
        bad(
            "an unknown directive",
            json!({"email": {"@foo": 1}}),
            "email",
            Some("@foo"),
            Reason::UnknownDirective("@foo".into()),
        ),
        bad(
            "an unknown directive deep in a plain object",
            json!({"dataFields": {"plan": {"tier": {"@bogus": true}}}}),
            "dataFields.plan.tier",
            Some("@bogus"),
            Reason::UnknownDirective("@bogus".into()),
        ),
        bad(
            "an options object that is a directive",
            json!({"x": {"@if": {"@path": "$.a"}}}),
            "x",
            Some("@if"),
            wrong(Expected::Object, JsType::Directive),
        ),
    ]);
}

#[test]
fn if_errors() {
    run(vec![
        bad(
            "not an object",
            json!({"x": {"@if": "yes"}}),
            "x",
            Some("@if"),
            wrong(Expected::Object, JsType::String),
        ),
        bad(
            "a bad directive in then",
            json!({"x": {"@if": {"exists": {"@path": "$.a"}, "then": {"@path": 5}}}}),
            "x",
            Some("@path"),
            wrong(Expected::StringOrDirective, JsType::Number),
        ),
        bad(
            "raw objects in then are validated",
            json!({"x": {"@if": {"exists": 1, "then": {"a": {"@path": "$.b", "c": 1}}}}}),
            "x",
            Some("@path"),
            Reason::MixedKeys { keys: 2 },
        ),
    ]);
}

#[test]
fn path_and_template_errors() {
    run(vec![
        bad(
            "@path with a number",
            json!({"x": {"@path": 5}}),
            "x",
            Some("@path"),
            wrong(Expected::StringOrDirective, JsType::Number),
        ),
        bad(
            "@path with an object",
            json!({"x": {"@path": {}}}),
            "x",
            Some("@path"),
            wrong(Expected::StringOrDirective, JsType::Object),
        ),
        bad(
            "@template with false",
            json!({"x": {"@template": false}}),
            "x",
            Some("@template"),
            wrong(Expected::StringOrDirective, JsType::Boolean),
        ),
    ]);
}

#[test]
fn case_and_replace_errors() {
    run(vec![
        bad(
            "@case with a number operator",
            json!({"x": {"@case": {"operator": 1, "value": "A"}}}),
            "x",
            Some("@case"),
            wrong(Expected::String, JsType::Number),
        ),
        bad(
            "@case with a number value",
            json!({"x": {"@case": {"operator": "lower", "value": 5}}}),
            "x",
            Some("@case"),
            wrong(Expected::StringOrDirective, JsType::Number),
        ),
        bad(
            "@case not an object",
            json!({"x": {"@case": "lower"}}),
            "x",
            Some("@case"),
            wrong(Expected::Object, JsType::String),
        ),
        bad(
            "@replace without pattern",
            json!({"x": {"@replace": {"value": "a"}}}),
            "x",
            Some("@replace"),
            Reason::MissingField("pattern"),
        ),
        bad(
            "@replace without value",
            json!({"x": {"@replace": {"pattern": "a"}}}),
            "x",
            Some("@replace"),
            Reason::MissingField("value"),
        ),
        bad(
            "@replace with an empty pattern",
            json!({"x": {"@replace": {"pattern": "", "value": "a"}}}),
            "x",
            Some("@replace"),
            Reason::StringTooShort { min: 1 },
        ),
        bad(
            "@replace with a long pattern",
            json!({"x": {"@replace": {"pattern": "waaaaayyytoooooloooong", "value": "a"}}}),
            "x",
            Some("@replace"),
            Reason::StringTooLong { max: 10 },
        ),
        bad(
            "@replace with a long replacement",
            json!({"x": {"@replace": {"pattern": "a", "replacement": "waaaayyyytooolong", "value": "a"}}}),
            "x",
            Some("@replace"),
            Reason::StringTooLong { max: 10 },
        ),
        bad(
            "@replace with a string global",
            json!({"x": {"@replace": {"pattern": "+", "value": "a", "global": "abc"}}}),
            "x",
            Some("@replace"),
            wrong(Expected::Boolean, JsType::String),
        ),
        bad(
            "@replace with a string ignorecase",
            json!({"x": {"@replace": {"pattern": "+", "value": "a", "ignorecase": "abc"}}}),
            "x",
            Some("@replace"),
            wrong(Expected::Boolean, JsType::String),
        ),
    ]);
}

#[test]
fn array_path_json_flatten_errors() {
    run(vec![
        bad(
            "@arrayPath not an array",
            json!({"x": {"@arrayPath": "$.a"}}),
            "x",
            Some("@arrayPath"),
            wrong(Expected::Array, JsType::String),
        ),
        bad(
            "@arrayPath empty",
            json!({"x": {"@arrayPath": []}}),
            "x",
            Some("@arrayPath"),
            wrong(Expected::StringOrDirective, JsType::Undefined),
        ),
        bad(
            "@arrayPath with a number path",
            json!({"x": {"@arrayPath": [5]}}),
            "x",
            Some("@arrayPath"),
            wrong(Expected::StringOrDirective, JsType::Number),
        ),
        bad(
            "@arrayPath with a bad shape",
            json!({"x": {"@arrayPath": ["$.a", {"id": {"@nope": 1}}]}}),
            "x",
            Some("@nope"),
            Reason::UnknownDirective("@nope".into()),
        ),
        bad(
            "@json with an unknown mode",
            json!({"x": {"@json": {"mode": "oops", "value": {"@path": "$.a"}}}}),
            "x",
            Some("@json"),
            Reason::NotAllowed {
                allowed: &["encode", "decode"],
                found: "\"oops\"".into(),
            },
        ),
        bad(
            "@json without value",
            json!({"x": {"@json": {"mode": "encode"}}}),
            "x",
            Some("@json"),
            Reason::MissingField("value"),
        ),
        bad(
            "@json without mode",
            json!({"x": {"@json": {"value": 1}}}),
            "x",
            Some("@json"),
            Reason::MissingField("mode"),
        ),
        bad(
            "@json not an object",
            json!({"x": {"@json": "not an object"}}),
            "x",
            Some("@json"),
            wrong(Expected::Object, JsType::String),
        ),
        bad(
            "@flatten not an object",
            json!({"x": {"@flatten": "abcdefgh"}}),
            "x",
            Some("@flatten"),
            wrong(Expected::Object, JsType::String),
        ),
        bad(
            "@flatten with a directive separator",
            json!({"x": {"@flatten": {"value": {"@path": "$.a"}, "separator": {"@path": "$.b"}}}}),
            "x",
            Some("@flatten"),
            wrong(Expected::String, JsType::Directive),
        ),
        bad(
            "@flatten without value",
            json!({"x": {"@flatten": {"separator": ","}}}),
            "x",
            Some("@flatten"),
            Reason::MissingField("value"),
        ),
    ]);
}

#[test]
fn merge_and_transform_errors() {
    run(vec![
        bad(
            "@merge objects not an array",
            json!({"x": {"@merge": {"direction": "left", "objects": {"oops": true}}}}),
            "x",
            Some("@merge"),
            wrong(Expected::Array, JsType::Object),
        ),
        bad(
            "@merge with a number among objects",
            json!({"x": {"@merge": {"direction": "left", "objects": [{}, 1]}}}),
            "x",
            Some("@merge"),
            wrong(Expected::ObjectOrDirective, JsType::Number),
        ),
        bad(
            "@merge with an unknown direction",
            json!({"x": {"@merge": {"direction": "up", "objects": []}}}),
            "x",
            Some("@merge"),
            Reason::NotAllowed {
                allowed: &["left", "right"],
                found: "\"up\"".into(),
            },
        ),
        bad(
            "@merge without objects",
            json!({"x": {"@merge": {"direction": "left"}}}),
            "x",
            Some("@merge"),
            Reason::MissingField("objects"),
        ),
        bad(
            "@transform without apply",
            json!({"@transform": {"mapping": {"cool": {"@path": "$.foo"}}}}),
            "",
            Some("@transform"),
            Reason::MissingField("apply"),
        ),
        bad(
            "@transform with a string apply",
            json!({"@transform": {"apply": "string", "mapping": {}}}),
            "",
            Some("@transform"),
            wrong(Expected::ObjectOrDirective, JsType::String),
        ),
        bad(
            "@transform without mapping",
            json!({"@transform": {"apply": {"foo": {"@path": "$.foo"}}}}),
            "",
            Some("@transform"),
            Reason::MissingField("mapping"),
        ),
        bad(
            "@transform with a string mapping",
            json!({"@transform": {"apply": {}, "mapping": "string"}}),
            "",
            Some("@transform"),
            wrong(Expected::ObjectOrDirective, JsType::String),
        ),
        bad(
            "@transform not an object",
            json!({"@transform": "string"}),
            "",
            Some("@transform"),
            wrong(Expected::Object, JsType::String),
        ),
        bad(
            "root directive that is not @transform",
            json!({"__segment_internal_directive": {"@path": "$.properties"}, "a": 1}),
            "__segment_internal_directive",
            None,
            Reason::RootDirective("must be a single @transform directive whose value is an object"),
        ),
        bad(
            "a null mapping (mapping-kit's Object.keys(null) throws)",
            json!(null),
            "",
            None,
            Reason::NullMapping,
        ),
        bad(
            "root directive that is not a directive",
            json!({"__segment_internal_directive": "hello", "a": 1}),
            "__segment_internal_directive",
            None,
            Reason::RootDirective("must be an object holding a single @transform directive"),
        ),
        bad(
            "root directive fields are validated where they stand",
            json!({"__segment_internal_directive": {"@transform": {"apply": {}}}, "email": {"@foo": 1}}),
            "email",
            Some("@foo"),
            Reason::UnknownDirective("@foo".into()),
        ),
    ]);
}

#[test]
fn every_problem_is_listed_and_messages_follow_mapping_kit() {
    let mapping = json!({
        "a": {"@foo": 1},
        "b": {"@if": {"then": 1}},
        "c": {"@path": "$.ok"},
        "d": {"@replace": {"pattern": "a"}}
    });
    let problems = Mapping::problems(&mapping);
    let fields: Vec<String> = problems.iter().map(MappingError::field).collect();
    // An @if without condition passes validation; it fails the events that reach it.
    assert_eq!(fields, ["a", "d"], "{problems:?}");
    assert!(Mapping::problems(&json!({"c": {"@path": "$.ok"}})).is_empty());

    let messages = [
        (
            json!({"dataFields": {"@path": "$.a", "x": 1}}),
            "/dataFields should only have one @-prefixed key but it has 2 keys.",
        ),
        (
            json!({"email": {"@foo": 1}}),
            "/email has an invalid directive: @foo.",
        ),
        (
            json!({"email": {"@if": "x"}}),
            "/email/@if should be an object but it is a string.",
        ),
        (
            json!({"@merge": {"direction": "up", "objects": []}}),
            "/@merge/direction should be one of left, right but it is \"up\".",
        ),
        (
            json!({"@json": {"mode": "encode"}}),
            "/@json should have field \"value\" but it doesn't.",
        ),
    ];
    for (mapping, expected) in messages {
        match Mapping::compile(&mapping) {
            Ok(_) => panic!("{mapping} compiled"),
            Err(e) => assert_eq!(e.segment_message(), expected, "for {mapping}"),
        }
    }

    match Mapping::compile(&json!({"dataFields": {"plan": {"@if": {"exists": {"@path": 1}}}}})) {
        Ok(_) => panic!("compiled"),
        Err(e) => {
            assert_eq!(e.location().pointer(), "/dataFields/plan/@if/exists/@path");
            assert_eq!(
                e.location().segments().first(),
                Some(&Segment::Key("dataFields".into()))
            );
            assert_eq!(
                e.to_string(),
                "mapping field `dataFields.plan`, directive @path: should be a string or a mapping \
                 directive but it is a number (at /dataFields/plan/@if/exists/@path)"
            );
        }
    }
}

#[test]
fn event_dependent_errors_surface_when_resolving() {
    let cases: Vec<(&str, Value, Value, &str)> = vec![
        (
            "a dynamic path that is a number",
            json!({"x": {"@path": {"@path": "$.n"}}}),
            json!({"n": 5}),
            "/x/@path",
        ),
        (
            "a dynamic template that is missing",
            json!({"x": {"@template": {"@path": "$.nope"}}}),
            json!({}),
            "/x/@template",
        ),
        (
            "a dynamic separator that is not a string",
            json!({"x": [{"@flatten": {"separator": {"@path": "$.n"}, "value": {"a": {"b": 1}}}}]}),
            json!({"n": true}),
            "/x/0/@flatten",
        ),
        (
            "@transform on a string item",
            json!({"x": {"@arrayPath": ["$.tags", {"@transform": {"apply": {"a": 1}, "mapping": {"b": {"@path": "$.a"}}}}]}}),
            json!({"tags": ["t"]}),
            "/x/@arrayPath/1/@transform",
        ),
    ];
    for (name, mapping, event, at) in cases {
        let compiled = match Mapping::compile(&mapping) {
            Ok(m) => m,
            Err(e) => panic!("{name}: did not compile: {e}"),
        };
        match compiled.resolve(&event) {
            Ok(v) => panic!("{name}: resolved to {:?}", v.to_value()),
            Err(e) => assert_eq!(e.location().pointer(), at, "{name}"),
        }
    }

    let compiled = Mapping::compile(&json!({"x": {"@path": {"@path": "$.n"}}}));
    let Ok(compiled) = compiled else {
        panic!("did not compile: {compiled:?}");
    };
    assert!(matches!(
        compiled.resolve(&json!({"n": 5})),
        Err(EvalError::NotAString {
            directive: "@path",
            found: JsType::Number,
            ..
        })
    ));
    assert!(matches!(
        compiled.resolve(&json!(["not", "an", "object"])),
        Err(EvalError::PayloadNotObject {
            found: JsType::Array,
            ..
        })
    ));
}

enum Expect {
    /// mapping-kit throws this message.
    Fails(&'static str),
    /// mapping-kit resolves to this (the faulty directive is not reached).
    Gives(Value),
}

/// Mappings that pass validation but hold a directive mapping-kit's runtime throws on: they
/// compile, and fail exactly the events that reach that directive, with mapping-kit's message.
#[test]
fn runtime_throws_fail_only_the_events_that_reach_them() {
    use Expect::{Fails, Gives};
    let no_if = json!({"x": {"@if": {"exists": {"@path": "$.a"}, "then": 1, "else": {"@if": {"then": 2}}}}});
    let cases: Vec<(&str, Value, Value, Expect)> = vec![
        (
            "@if without condition, reached",
            no_if.clone(),
            json!({}),
            Fails("@if requires an \"exists\" key or a \"blank\" key"),
        ),
        (
            "@if without condition, in an else not taken",
            no_if,
            json!({"a": 1}),
            Gives(json!({"x": 1})),
        ),
        (
            "@if with falsy conditions",
            json!({"x": {"@if": {"exists": false, "blank": "", "then": 1}}}),
            json!({}),
            Fails("@if requires an \"exists\" key or a \"blank\" key"),
        ),
        (
            "@if without condition in a @literal raw object",
            json!({"x": {"@literal": {"y": {"@if": {"else": 1}}}}}),
            json!({}),
            Fails("@if requires an \"exists\" key or a \"blank\" key"),
        ),
        (
            "an unknown directive inside an array",
            json!({"tags": [1, {"@foo": 1}]}),
            json!({}),
            Fails("@foo is not a valid directive, got undefined"),
        ),
        (
            "several directives inside an array run the first",
            json!({"tags": [{"@path": "$.a", "@template": "b"}]}),
            json!({"a": "A"}),
            Gives(json!({"tags": ["A"]})),
        ),
        (
            "@path with a number inside an array",
            json!({"x": [{"@path": 5}]}),
            json!({}),
            Fails("@path: expected string, got number"),
        ),
        (
            "@path with a plain object inside an array",
            json!({"x": [{"@path": {"@path": "$.a", "y": 1}}]}),
            json!({}),
            Fails("@path: expected string, got object"),
        ),
        (
            "@case without operator",
            json!({"x": {"@case": {"value": "A"}}}),
            json!({}),
            Fails("@case requires a \"operator\" key"),
        ),
        (
            "@case with another operator on a string",
            json!({"x": {"@case": {"operator": "title", "value": {"@path": "$.a"}}}}),
            json!({"a": "abc"}),
            Fails("operator key should have a value of \"lower\" or \"upper\""),
        ),
        (
            "@case with another operator on a number",
            json!({"x": {"@case": {"operator": "title", "value": {"@path": "$.a"}}}}),
            json!({"a": 5}),
            Gives(json!({"x": 5})),
        ),
        (
            "@case with another operator on nothing",
            json!({"x": {"@case": {"operator": "title", "value": {"@path": "$.a"}}}}),
            json!({}),
            Gives(json!({})),
        ),
        (
            "@replace with a long pattern2",
            json!({"x": {"@replace": {"pattern": "_", "pattern2": "rrrrrrrrrrrrrrrrrrrr", "value": "a"}}}),
            json!({}),
            Fails("@replace requires a \"pattern\" less than 10 characters"),
        ),
        (
            "@replace with a long replacement2",
            json!({"x": {"@replace": {"pattern": "_", "pattern2": "+", "replacement2": "rrrrrrrrrrrrrrrrrrrr", "value": "a"}}}),
            json!({}),
            Fails("@replace requires a \"replacement\" less than 10 characters"),
        ),
        (
            "@replace with a long pattern inside an array, on a string",
            json!({"x": [{"@replace": {"pattern": "waaaaayyytoooooloooong", "value": {"@path": "$.a"}}}]}),
            json!({"a": "s"}),
            Fails("@replace requires a \"pattern\" less than 10 characters"),
        ),
        (
            "@replace with a long pattern inside an array, on an object",
            json!({"x": [{"@replace": {"pattern": "waaaaayyytoooooloooong", "value": {"@path": "$.a"}}}]}),
            json!({"a": {}}),
            Gives(json!({"x": [""]})),
        ),
        (
            "@json with a falsy value",
            json!({"x": {"@json": {"mode": "encode", "value": false}}}),
            json!({}),
            Fails("@json requires a \"value\" key"),
        ),
        (
            "@flatten without separator",
            json!({"x": {"@flatten": {"value": {"@path": "$.a"}}}}),
            json!({}),
            Fails("@flatten requires a \"separator\" key"),
        ),
        (
            "@flatten with a number separator inside an array",
            json!({"x": [{"@flatten": {"value": {"@path": "$.a"}, "separator": 5}}]}),
            json!({}),
            Fails("@flatten requires a string separator"),
        ),
        (
            "@merge without direction",
            json!({"x": {"@merge": {"objects": []}}}),
            json!({}),
            Fails("@merge requires a \"direction\" key"),
        ),
        (
            "@merge with a string of objects inside an array",
            json!({"x": [{"@merge": {"direction": "left", "objects": "ab"}}]}),
            json!({}),
            Fails("@merge: expected opts.array, got string"),
        ),
        (
            "@transform's apply is validated when it runs, inside an array",
            json!({"x": [{"@transform": {"apply": {"a": {"@path": "$.b", "c": 1}}, "mapping": {}}}]}),
            json!({}),
            Fails("/a should only have one @-prefixed key but it has 2 keys."),
        ),
        (
            "@transform without apply inside an array",
            json!({"x": [{"@transform": {"mapping": {"a": 1}}}]}),
            json!({}),
            Fails("@transform requires a \"apply\" key"),
        ),
        (
            "@arrayPath not an array inside an array",
            json!({"x": [{"@arrayPath": "$.a"}]}),
            json!({}),
            Fails("@arrayPath expected array, got string"),
        ),
        (
            "@liquid not a string inside an array",
            json!({"x": [{"@liquid": 5}]}),
            json!({}),
            Fails("liquid template value must be a string"),
        ),
        (
            "@liquid too long",
            json!({"x": {"@liquid": "x".repeat(1001)}}),
            json!({}),
            Fails("liquid template values are limited to 1000 characters"),
        ),
        (
            "@liquid at the limit",
            json!({"x": {"@liquid": "é".repeat(1000)}}),
            json!({}),
            Gives(json!({"x": "é".repeat(1000)})),
        ),
    ];
    let mut failures = Vec::new();
    for (name, mapping, event, expect) in cases {
        let compiled = match Mapping::compile(&mapping) {
            Ok(m) => m,
            Err(e) => {
                failures.push(format!("{name}: did not compile: {e}"));
                continue;
            }
        };
        let got = compiled.resolve_value(&event);
        match (&expect, got) {
            (Fails(message), Err(e)) if e.segment_message() == *message => {}
            (Gives(value), Ok(Some(v))) if v == *value => {}
            (_, got) => failures.push(format!(
                "{name}: expected {}, got {got:?}",
                match &expect {
                    Fails(m) => format!("failure {m:?}"),
                    Gives(v) => format!("value {v}"),
                }
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
