//! The compiled default mapping against the general evaluator: on random events, of Engage's
//! shapes and of shapes that need coercions or give errors, both paths plan the same
//! requests, byte for byte, and the same outcome for every event, with the same messages.

use destination::{ActionMapping, Limits, Plan, Planner, ProjectType};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// A value of one of the kinds a field can be sent with, weighted towards strings.
fn field_value(strings: &'static [&'static str]) -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        6 => proptest::sample::select(strings).prop_map(|s| Some(json!(s))),
        2 => Just(None),
        1 => Just(Some(Value::Null)),
        1 => Just(Some(json!(""))),
        1 => (0i64..100).prop_map(|n| Some(json!(n))),
        1 => Just(Some(json!(1.5))),
        1 => any::<bool>().prop_map(|b| Some(json!(b))),
        1 => proptest::sample::select(strings).prop_map(|s| Some(json!([s]))),
        1 => Just(Some(json!(["a@x.com", "b@x.com"]))),
        1 => Just(Some(json!({"a": 1}))),
    ]
}

const EMAILS: &[&str] = &[
    "ann@x.com",
    "BOB@X.COM",
    "cy@x.com",
    " ann@x.com",
    "é@x.com",
];
const USER_IDS: &[&str] = &["u1", "u2", "u3", "42"];
const KEYS: &[&str] = &["vip", "churn_risk", "a.b", "vip "];
const AUDIENCE_IDS: &[&str] = &["101", "202", " 303 ", "0x10", "abc", "   "];
const FLAGS: &[&str] = &["true", "false", "yes"];

/// A membership flag: mostly booleans, sometimes strings or other kinds.
fn flag() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        6 => any::<bool>().prop_map(|b| Some(json!(b))),
        2 => field_value(FLAGS),
    ]
}

/// An object of traits or properties, or something else in its place.
fn members() -> impl Strategy<Value = Option<Value>> {
    let object = (
        field_value(EMAILS),
        proptest::sample::select(KEYS),
        flag(),
        proptest::option::of("[a-z]{0,6}"),
    )
        .prop_map(|(email, key, flag, extra)| {
            let mut m = Map::new();
            if let Some(e) = email {
                m.insert("email".into(), e);
            }
            if let Some(f) = flag {
                m.insert(key.to_string(), f);
            }
            if let Some(x) = extra {
                m.insert("plan".into(), json!(x));
            }
            Some(Value::Object(m))
        });
    prop_oneof![
        6 => object,
        2 => Just(None),
        1 => Just(Some(Value::Null)),
        1 => Just(Some(json!({}))),
        1 => Just(Some(json!("traits"))),
    ]
}

fn personas() -> impl Strategy<Value = Option<Value>> {
    let object = (
        field_value(KEYS),
        field_value(AUDIENCE_IDS),
        proptest::option::of(proptest::sample::select(
            &["audience", "computed_trait"][..],
        )),
        proptest::option::weighted(
            0.2,
            prop_oneof![
                Just(json!({"updateExistingUsersOnly": true})),
                Just(json!({"campaignId": 77, "channelUnsubscribe": "yes"})),
                Just(json!("settings")),
            ],
        ),
    )
        .prop_map(|(key, id, class, settings)| {
            let mut m = Map::new();
            for (name, v) in [
                ("computation_key", key),
                ("external_audience_id", id),
                ("computation_class", class.map(|c| json!(c))),
                ("audience_settings", settings),
            ] {
                if let Some(v) = v {
                    m.insert(name.into(), v);
                }
            }
            Some(Value::Object(m))
        });
    prop_oneof![8 => object, 1 => Just(None), 1 => Just(Some(json!([1])))]
}

fn event() -> impl Strategy<Value = Value> {
    (
        (
            proptest::sample::select(&["identify", "track", "track", "page", ""][..]),
            field_value(USER_IDS),
            members(),
            members(),
        ),
        (
            field_value(EMAILS),
            personas(),
            proptest::option::weighted(0.7, 0u8..10),
            proptest::option::weighted(0.3, proptest::sample::select(&["m1", "m2", "m3"][..])),
            proptest::option::weighted(
                0.2,
                proptest::sample::select(&["Audience Entered", "new"][..]),
            ),
        ),
    )
        .prop_map(
            |((ty, user_id, traits, properties), (ctx_email, personas, second, id, name))| {
                let mut e = Map::new();
                e.insert("type".into(), json!(ty));
                let fields = [
                    ("userId", user_id),
                    ("traits", traits),
                    ("properties", properties),
                    ("messageId", id.map(|i| json!(i))),
                    ("event", name.map(|n| json!(n))),
                    (
                        "timestamp",
                        second.map(|s| json!(format!("2026-01-01T00:00:0{s}Z"))),
                    ),
                ];
                for (name, v) in fields {
                    if let Some(v) = v {
                        e.insert(name.into(), v);
                    }
                }
                let mut context = Map::new();
                if let Some(email) = ctx_email {
                    context.insert("traits".into(), json!({ "email": email }));
                }
                if let Some(p) = personas {
                    context.insert("personas".into(), p);
                }
                e.insert("context".into(), Value::Object(context));
                Value::Object(e)
            },
        )
}

fn planners(project_type: ProjectType) -> (Planner, Planner) {
    let fast = ActionMapping::new(None).expect("the default mapping compiles");
    let general = fast.clone().general();
    let mut a = Planner::new(project_type, fast);
    let mut b = Planner::new(project_type, general);
    // Small requests, so that packing and splitting are exercised too.
    let limits = Limits {
        max_rows: 3,
        max_bytes: 400,
    };
    a.limits = limits;
    b.limits = limits;
    (a, b)
}

/// The same outcomes, and the same requests byte for byte (bodies shown as text on failure).
fn same_plans(a: Plan, b: Plan) -> Result<(), TestCaseError> {
    prop_assert_eq!(a.events, b.events);
    prop_assert_eq!(a.requests.len(), b.requests.len());
    for (x, y) in a.requests.iter().zip(&b.requests) {
        prop_assert_eq!(
            String::from_utf8_lossy(&x.body),
            String::from_utf8_lossy(&y.body)
        );
        prop_assert_eq!(x, y);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn fast_and_general_paths_plan_the_same_bytes(
        events in proptest::collection::vec(event(), 1..40),
        user_id_project in any::<bool>(),
    ) {
        let project_type = if user_id_project { ProjectType::UserId } else { ProjectType::Hybrid };
        let (fast, general) = planners(project_type);
        let a = fast.plan(events.clone());
        let b = general.plan(events);
        same_plans(a, b)?;
    }
}

/// An event's text, as a client might write it: compact, with escapes, or with a member
/// written twice (the last one counts).
fn text_of(event: &Value, form: u8) -> String {
    let text = event.to_string();
    match form {
        0 => text.replace('@', "\\u0040").replace("u1", "\\u0075\\u0031"),
        1 => text.replacen('{', r#"{"traits": 5, "#, 1),
        2 => format!(
            r#"{},"userId":"late","type":"track"}}"#,
            &text[..text.len() - 1]
        ),
        3 => text.replacen('{', r#"{"context": ["x"], "#, 1),
        4 => text.replace(':', " : "),
        5 => text.replace(
            r#""traits":{""#,
            r#""traits":{"email":"dup@x.com","vip":"no",""#,
        ),
        // A `context` that the event's own (when it has one) replaces whole, not member by
        // member.
        6 => text.replacen(
            '{',
            r#"{"context": {"personas": {"computation_key": "vip", "external_audience_id": "101"}, "traits": {"email": "early@x.com"}}, "#,
            1,
        ),
        _ => text,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn texts_plan_as_parsed_events_do(
        mut events in proptest::collection::vec(
            (event(), 0u8..10, proptest::option::of(0usize..4)),
            1..40,
        ),
        user_id_project in any::<bool>(),
    ) {
        let project_type = if user_id_project { ProjectType::UserId } else { ProjectType::Hybrid };
        let (fast, general) = planners(project_type);
        // Half the events carry the context of one of the four events before them, as the
        // events of a few audiences in a batch do (the planner remembers the contexts it read).
        for i in 1..events.len() {
            if let Some(back) = events[i].2.filter(|back| *back < i) {
                let previous = events[i - 1 - back].0.get("context").cloned();
                if let (Some(ctx), Some(e)) = (previous, events[i].0.as_object_mut()) {
                    e.insert("context".into(), ctx);
                }
            }
        }
        let texts: Vec<String> = events.iter().map(|(e, form, _)| text_of(e, *form)).collect();
        let parsed: Vec<Value> = texts
            .iter()
            .map(|t| serde_json::from_str(t).expect("the texts are JSON"))
            .collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let a = fast.plan_texts(&refs);
        let b = general.plan(parsed);
        same_plans(a, b)?;
    }
}

/// Events whose `context` text is the same as the previous one's take the view read for it;
/// any other context is read. Contexts that share a long start, a context written twice in one
/// event (the last counts), a `null` one and one the view refuses, between equal ones.
#[test]
fn a_batchs_repeated_contexts_plan_as_parsed_events_do() {
    let ctx = |id: &str| {
        format!(
            r#"{{"personas":{{"computation_key":"vip","computation_class":"audience","external_audience_id":"{id}"}},"traits":{{"email":"c@x.co"}}}}"#
        )
    };
    let (a, b) = (ctx("101"), ctx("102"));
    let event = |n: u32, context: &str| {
        format!(
            r#"{{"type":"identify","messageId":"m{n}","userId":"u{n}","traits":{{"vip":true}},"context":{context}}}"#
        )
    };
    let texts = [
        event(1, &a),
        event(2, &a),
        event(3, &b),
        event(4, &a),
        event(5, &format!(r#"{a},"context":{b}"#)),
        event(6, &format!(r#"{b},"context":{a}"#)),
        event(7, "null"),
        event(8, &a),
        event(9, r#"{"personas":[1]}"#),
        event(10, &a),
        event(11, &format!("{a} ")),
        event(12, &format!("{a}x")),
    ];
    for project_type in [ProjectType::Hybrid, ProjectType::UserId] {
        let (fast, general) = planners(project_type);
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let plan = fast.plan_texts(&refs);
        let lists: Vec<String> = plan
            .requests
            .iter()
            .map(|r| format!("{:?}", r.list))
            .collect();
        assert!(lists.iter().any(|l| l.contains("101")), "{lists:?}");
        assert!(lists.iter().any(|l| l.contains("102")), "{lists:?}");
        // The general planner reads every text as a JSON tree.
        same_plans(plan, general.plan_texts(&refs)).expect("the same plans");
    }
}

/// Members the fast path skips unread are still checked as a JSON tree checks them: a number
/// out of f64's range, nesting past serde_json's limit or a lone surrogate makes the text
/// malformed on both paths.
#[test]
fn texts_a_json_tree_refuses_are_refused() {
    let (fast, _) = planners(ProjectType::Hybrid);
    let base = r#"{"type":"identify","userId":"u","messageId":"m","traits":{"vip":true},"context":{"personas":{"computation_key":"vip"}},"x":X}"#;
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    for (x, why) in [
        ("1e400", "number out of range"),
        (deep.as_str(), "recursion limit exceeded"),
        (r#""\ud800""#, "a lone surrogate"),
    ] {
        let text = base.replace('X', x);
        let tree = serde_json::from_str::<Value>(&text).expect_err(why);
        let message = fast.prepare_text(&text, 0).expect_err(why);
        assert_eq!(message, format!("malformed JSON: {tree}"), "{why}");
        let plan = fast.plan_texts(&[&text]);
        assert_eq!(
            plan.events[0].status,
            destination::EventStatus::Rejected,
            "{why}"
        );
    }
    // Written plainly, the same members are read on the fast path.
    for x in [
        "1.5e3",
        "12345678901234567890123",
        r#""\u00e9 \ud83d\ude00""#,
        "[[1]]",
    ] {
        let text = base.replace('X', x);
        let prepared = fast.prepare_text(&text, 0).expect("JSON");
        assert!(
            matches!(prepared, destination::Prepared::Change { .. }),
            "{x}: {prepared:?}"
        );
    }
}

#[test]
fn a_text_that_is_not_json_is_rejected_with_the_parsers_message() {
    let (fast, _) = planners(ProjectType::Hybrid);
    let plan = fast.plan_texts(&[r#"{"type": "identify""#]);
    assert_eq!(plan.events[0].status, destination::EventStatus::Rejected);
    let message = plan.events[0].message.as_deref().unwrap_or_default();
    assert!(
        message.starts_with("malformed JSON: EOF while parsing"),
        "{message}"
    );
    assert!(plan.requests.is_empty());
}

/// The fast path is the one taken for Engage's own shapes: its planner gives the same plan as
/// the general one, and the mapping reports it reads them without the evaluator.
#[test]
fn engage_events_take_the_fast_path() {
    let mapping = ActionMapping::new(None).expect("the default mapping compiles");
    let events = [
        json!({"type": "identify", "userId": "u1", "traits": {"vip": true, "email": "a@x.com"},
               "context": {"personas": {"computation_key": "vip", "external_audience_id": "12"}}}),
        json!({"type": "track", "userId": "u1", "event": "Audience Entered",
               "properties": {"audience_key": "vip", "vip": true},
               "context": {"traits": {"email": "a@x.com"},
                           "personas": {"computation_key": "vip"}}}),
    ];
    for e in &events {
        assert!(mapping.reads_directly(e), "{e}");
    }
    for e in [
        json!({"type": "identify", "userId": 42, "traits": {"vip": true},
               "context": {"personas": {"computation_key": "vip"}}}),
        json!({"type": "identify", "traits": {"vip": true, "email": ["a@x.com"]},
               "context": {"personas": {"computation_key": "vip"}}}),
        json!({"type": "identify", "traits": {"vip": true},
               "context": {"personas": {"computation_key": ""}}}),
    ] {
        assert!(!mapping.reads_directly(&e), "{e}");
    }
    assert!(!mapping.clone().general().reads_directly(&events[0]));
    let custom = ActionMapping::new(Some(
        &json!({"dataFields": {"plan": {"@path": "$.traits.plan"}}}),
    ))
    .expect("compiles");
    assert!(!custom.reads_directly(&events[0]));
}
