//! The membership rules as a table, each row beside what Segment's NEW destination does with the
//! same value (V29, V30, V31), plus whole events run through the default mapping.

use proptest::prelude::*;
use segment::event::{ComputationClass, Event, EventType, JsonKind};
use segment::mapping::Mapping;
use segment::membership::{
    Membership, MembershipContext, MembershipError, RetlOperation, RetlSyncMode, resolve_membership,
};
use serde_json::{Value, json};

use Membership::{Add, Remove};

const AUDIENCE: Option<ComputationClass<'static>> = Some(ComputationClass::Audience);
const JOURNEY: Option<ComputationClass<'static>> = Some(ComputationClass::JourneyStep);
const TRAIT: Option<ComputationClass<'static>> = Some(ComputationClass::Trait);

struct Case {
    value: Option<Value>,
    class: Option<ComputationClass<'static>>,
    event_type: EventType,
    event_name: Option<&'static str>,
    mode: Option<RetlSyncMode>,
    expected: Result<Membership, MembershipError>,
}

/// An Engage audience identify event carrying `value` at the key.
fn identify(value: Value, expected: Result<Membership, MembershipError>) -> Case {
    Case {
        value: Some(value),
        class: AUDIENCE,
        event_type: EventType::Identify,
        event_name: None,
        mode: None,
        expected,
    }
}

/// A track event with `name`, class, sync mode, and no value at the key.
fn track(
    name: &'static str,
    class: Option<ComputationClass<'static>>,
    mode: Option<RetlSyncMode>,
    expected: Result<Membership, MembershipError>,
) -> Case {
    Case {
        value: None,
        class,
        event_type: EventType::Track,
        event_name: Some(name),
        mode,
        expected,
    }
}

fn not_a_flag(value: &str, found: JsonKind) -> Result<Membership, MembershipError> {
    Err(MembershipError::NotAFlag {
        value: value.to_owned(),
        found,
    })
}

fn missing(class: Option<&str>) -> Result<Membership, MembershipError> {
    Err(MembershipError::Missing {
        computation_class: class.map(str::to_owned),
    })
}

fn not_synced(mode: RetlSyncMode, operation: RetlOperation) -> Result<Membership, MembershipError> {
    Err(MembershipError::RetlNotSynced { mode, operation })
}

#[test]
fn membership_rules() {
    use JsonKind::{Array, Number, Object, String};
    use RetlOperation::{Deleted, New, Updated};
    use RetlSyncMode as M;
    let cases = vec![
        // ---- Flags (rule 3). "Segment NEW" is the JS truthiness of the value (V29).
        identify(json!(true), Ok(Add)),       // Segment NEW: subscribe
        identify(json!(false), Ok(Remove)),   // Segment NEW: unsubscribe
        identify(json!("true"), Ok(Add)),     // Segment NEW: subscribe (LEGACY: unsubscribe)
        identify(json!("TRUE"), Ok(Add)),     // Segment NEW: subscribe
        identify(json!("True"), Ok(Add)),     // Segment NEW: subscribe
        identify(json!("false"), Ok(Remove)), // Segment NEW: SUBSCRIBE ("false" is truthy) — differs
        identify(json!("FALSE"), Ok(Remove)), // Segment NEW: SUBSCRIBE — differs
        identify(json!("False"), Ok(Remove)), // Segment NEW: SUBSCRIBE — differs
        // ---- Everything else is rejected (rule 5), never taken as an exit.
        identify(json!(1), not_a_flag("1", Number)), // Segment NEW: subscribe — differs
        identify(json!(0), not_a_flag("0", Number)), // Segment NEW: unsubscribe — differs
        identify(json!(-1.5), not_a_flag("-1.5", Number)), // Segment NEW: subscribe — differs
        identify(json!(""), not_a_flag("\"\"", String)), // Segment NEW: unsubscribe — differs
        identify(json!("yes"), not_a_flag("\"yes\"", String)), // Segment NEW: subscribe — differs
        identify(json!("no"), not_a_flag("\"no\"", String)), // Segment NEW: subscribe — differs
        identify(json!("1"), not_a_flag("\"1\"", String)), // Segment NEW: subscribe — differs
        identify(json!("0"), not_a_flag("\"0\"", String)), // Segment NEW: subscribe — differs
        identify(json!(" true"), not_a_flag("\" true\"", String)), // Segment NEW: subscribe — differs
        identify(json!("truee"), not_a_flag("\"truee\"", String)), // Segment NEW: subscribe — differs
        identify(json!({}), not_a_flag("{}", Object)), // Segment NEW: subscribe — differs
        identify(json!({"a": 1}), not_a_flag("{\"a\":1}", Object)), // Segment NEW: subscribe — differs
        identify(json!([]), not_a_flag("[]", Array)), // Segment NEW: subscribe — differs
        identify(json!([true]), not_a_flag("[true]", Array)), // Segment NEW: subscribe — differs
        identify(json!(null), Err(MembershipError::Null)), // Segment NEW: unsubscribe — differs
        Case {
            value: None,
            ..identify(json!(null), missing(Some("audience")))
        }, // Segment NEW: unsubscribe — differs
        // Track audience events read the same way (value taken from properties by the mapping).
        Case {
            value: Some(json!(true)),
            ..track("Audience Entered", AUDIENCE, None, Ok(Add))
        }, // Segment NEW: subscribe
        Case {
            value: Some(json!(false)),
            ..track("Audience Exited", AUDIENCE, None, Ok(Remove))
        }, // Segment NEW: unsubscribe
        // V31: a stray empty `traits` hides `properties`, so the key is missing: rejected.
        track(
            "Audience Entered",
            AUDIENCE,
            None,
            missing(Some("audience")),
        ), // Segment NEW: unsubscribe — differs
        // Flags count whatever the class, and with no class at all.
        Case {
            class: TRAIT,
            ..identify(json!(true), Ok(Add))
        }, // Segment NEW: subscribe
        Case {
            class: None,
            ..identify(json!("false"), Ok(Remove))
        }, // Segment NEW: SUBSCRIBE — differs
        Case {
            value: None,
            class: None,
            ..identify(json!(null), missing(None))
        }, // Segment NEW: unsubscribe — differs
        // ---- Journeys steps (rule 4, V30).
        track("Journey Step Entered", JOURNEY, None, Ok(Add)), // Segment NEW: UNSUBSCRIBE — differs
        Case {
            value: Some(json!(null)),
            ..track("Journey Step Entered", JOURNEY, None, Ok(Add))
        }, // Segment NEW: UNSUBSCRIBE — differs
        Case {
            value: None,
            class: JOURNEY,
            ..identify(json!(null), Ok(Add))
        }, // Segment NEW: UNSUBSCRIBE — differs
        Case {
            value: Some(json!("true")),
            ..track("Journey Step Entered", JOURNEY, None, Ok(Add))
        }, // Segment NEW: subscribe
        Case {
            value: Some(json!(true)),
            ..track("Journey Step Entered", JOURNEY, None, Ok(Add))
        }, // Segment NEW: subscribe
        Case {
            value: Some(json!(false)),
            ..track("Journey Step Entered", JOURNEY, None, Ok(Remove))
        }, // Segment NEW: unsubscribe
        Case {
            value: Some(json!("false")),
            ..track("Journey Step Entered", JOURNEY, None, Ok(Remove))
        }, // Segment NEW: SUBSCRIBE — differs
        Case {
            value: Some(json!(7)),
            ..track(
                "Journey Step Entered",
                JOURNEY,
                None,
                not_a_flag("7", Number),
            )
        }, // Segment NEW: subscribe — differs
        // ---- Reverse ETL (rule 2). Segment NEW has no sync mode: these rows carry no
        // computation_key, so its schema rejects them ("missing the required field
        // 'segmentAudienceKey'"); core's retlAudienceMembership gives the same table as here.
        track("new", None, Some(M::Add), Ok(Add)),
        track("updated", None, Some(M::Add), not_synced(M::Add, Updated)),
        track("deleted", None, Some(M::Add), not_synced(M::Add, Deleted)),
        track("new", None, Some(M::Update), not_synced(M::Update, New)),
        track("updated", None, Some(M::Update), Ok(Add)),
        track(
            "deleted",
            None,
            Some(M::Update),
            not_synced(M::Update, Deleted),
        ),
        track("new", None, Some(M::Upsert), Ok(Add)),
        track("updated", None, Some(M::Upsert), Ok(Add)),
        track(
            "deleted",
            None,
            Some(M::Upsert),
            not_synced(M::Upsert, Deleted),
        ),
        track("new", None, Some(M::Delete), not_synced(M::Delete, New)),
        track(
            "updated",
            None,
            Some(M::Delete),
            not_synced(M::Delete, Updated),
        ),
        track("deleted", None, Some(M::Delete), Ok(Remove)),
        track("new", None, Some(M::Mirror), Ok(Add)),
        track("updated", None, Some(M::Mirror), Ok(Add)),
        track("deleted", None, Some(M::Mirror), Ok(Remove)),
        // The sync mode decides even against a flag in the row, and for any non-Engage class.
        Case {
            value: Some(json!(true)),
            ..track("deleted", None, Some(M::Mirror), Ok(Remove))
        },
        Case {
            value: Some(json!("nonsense")),
            ..track("new", TRAIT, Some(M::Mirror), Ok(Add))
        },
        // Not reverse-ETL: no sync mode configured, an identify event, another event name, or
        // an Engage computation. The value rules apply.
        track("deleted", None, None, missing(None)),
        Case {
            event_type: EventType::Identify,
            ..track("deleted", None, Some(M::Mirror), missing(None))
        },
        track("Deleted", None, Some(M::Mirror), missing(None)),
        track("new", AUDIENCE, Some(M::Mirror), missing(Some("audience"))),
        Case {
            value: Some(json!(false)),
            ..track("new", AUDIENCE, Some(M::Mirror), Ok(Remove))
        },
        track("deleted", JOURNEY, Some(M::Mirror), Ok(Add)),
        // ---- Other event types (rule 1); Segment: not subscribed (V40).
        Case {
            event_type: EventType::Page,
            ..identify(
                json!(true),
                Err(MembershipError::NotHandled {
                    event_type: EventType::Page,
                }),
            )
        },
        Case {
            event_type: EventType::Other("delete".into()),
            ..identify(
                json!(false),
                Err(MembershipError::NotHandled {
                    event_type: EventType::Other("delete".into()),
                }),
            )
        },
    ];
    for (row, case) in cases.iter().enumerate() {
        let context = MembershipContext {
            computation_class: case.class,
            event_type: &case.event_type,
            event_name: case.event_name,
            retl_sync_mode: case.mode,
        };
        assert_eq!(
            resolve_membership(case.value.as_ref(), &context),
            case.expected,
            "row {row}: value {:?}, class {:?}, type {}, event {:?}, mode {:?}",
            case.value,
            case.class,
            case.event_type,
            case.event_name,
            case.mode
        );
    }
}

#[test]
fn long_values_are_cut_in_messages() {
    let context = MembershipContext {
        computation_class: AUDIENCE,
        event_type: &EventType::Identify,
        event_name: None,
        retl_sync_mode: None,
    };
    let long = json!("x".repeat(500));
    let message = resolve_membership(Some(&long), &context).map_err(|e| e.to_string());
    let expected = format!(
        "the membership value \"{}… (a string) is not a membership flag; expected true, false, \"true\" or \"false\"",
        "x".repeat(63)
    );
    assert_eq!(message, Err(expected));
}

// ---------------------------------------------------------------------------------------------
// Whole events through the default mapping (A.3): traitsOrProperties[computation_key]
// ---------------------------------------------------------------------------------------------

fn default_mapping() -> Mapping {
    let mapping = Mapping::compile(&json!({
        "traitsOrProperties": {"@if": {
            "exists": {"@path": "$.traits"},
            "then": {"@path": "$.traits"},
            "else": {"@path": "$.properties"}
        }},
        "segmentAudienceKey": {"@path": "$.context.personas.computation_key"}
    }));
    match mapping {
        Ok(mapping) => mapping,
        Err(error) => panic!("the default mapping compiles: {error}"),
    }
}

/// Parses, maps and resolves one event the way the product does.
fn resolve_event(raw: Value, mode: Option<RetlSyncMode>) -> Result<Membership, String> {
    let event = Event::from_value(raw).map_err(|e| e.to_string())?;
    let mapped = default_mapping()
        .resolve_value(event.as_value())
        .map_err(|e| e.to_string())?
        .unwrap_or(Value::Null);
    let value = mapped["segmentAudienceKey"]
        .as_str()
        .and_then(|key| mapped["traitsOrProperties"].get(key));
    resolve_membership(value, &MembershipContext::of_event(&event, mode)).map_err(|e| e.to_string())
}

/// Name, event, sync mode, expected outcome (errors as their messages).
type EventCase = (
    &'static str,
    Value,
    Option<RetlSyncMode>,
    Result<Membership, String>,
);

#[test]
fn whole_events() {
    let personas = json!({"computation_class": "audience", "computation_key": "vip", "external_audience_id": "12345"});
    let journey = json!({"computation_class": "journey_step", "computation_key": "j_step_1", "external_audience_id": "12345"});
    let cases: Vec<EventCase> = vec![
        (
            "V1 identify enter",
            json!({"type": "identify", "userId": "u1", "traits": {"vip": true}, "context": {"personas": personas}}),
            None,
            Ok(Add),
        ),
        (
            "V2 identify exit",
            json!({"type": "identify", "userId": "u1", "traits": {"vip": false}, "context": {"personas": personas}}),
            None,
            Ok(Remove),
        ),
        (
            "V13 track exit",
            json!({"type": "track", "event": "Audience Exited", "properties": {"audience_key": "vip", "vip": false}, "context": {"personas": personas}}),
            None,
            Ok(Remove),
        ),
        (
            "V29 the string \"false\" (Segment NEW subscribes)",
            json!({"type": "identify", "userId": "u1", "traits": {"vip": "false"}, "context": {"personas": personas}}),
            None,
            Ok(Remove),
        ),
        (
            "V30 Journeys step without a flag (Segment unsubscribes)",
            json!({"type": "track", "event": "Journey Step Entered", "userId": "u1",
                   "properties": {"journey_context": {}, "journey_metadata": {}}, "context": {"personas": journey}}),
            None,
            Ok(Add),
        ),
        (
            "V31 stray empty traits on a track entry (Segment unsubscribes)",
            json!({"type": "track", "userId": "u1", "traits": {}, "properties": {"vip": true}, "context": {"personas": personas}}),
            None,
            Err("no membership value at the audience key (computation class `audience`); expected true or false".to_owned()),
        ),
        (
            "reverse-ETL row deleted, mirror mode",
            json!({"type": "track", "event": "deleted", "userId": "u1", "properties": {"email": "a@x.com"}}),
            Some(RetlSyncMode::Mirror),
            Ok(Remove),
        ),
        (
            "reverse-ETL row updated, add mode",
            json!({"type": "track", "event": "updated", "userId": "u1", "properties": {}}),
            Some(RetlSyncMode::Add),
            Err("reverse-ETL sync mode `add` does not sync `updated` rows (it syncs only `new` rows)".to_owned()),
        ),
        (
            "a page event",
            json!({"type": "page", "userId": "u1", "properties": {"vip": true}, "context": {"personas": personas}}),
            None,
            Err("a `page` event carries no audience membership (only identify and track events do)".to_owned()),
        ),
        (
            "a number at the key",
            json!({"type": "identify", "userId": "u1", "traits": {"vip": 1}, "context": {"personas": personas}}),
            None,
            Err("the membership value 1 (a number) is not a membership flag; expected true, false, \"true\" or \"false\"".to_owned()),
        ),
    ];
    for (name, raw, mode, expected) in cases {
        assert_eq!(resolve_event(raw, mode), expected, "{name}");
    }
}

// ---------------------------------------------------------------------------------------------
// Invariants
// ---------------------------------------------------------------------------------------------

fn any_value() -> impl Strategy<Value = Option<Value>> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(|n| json!(n)),
        prop_oneof![
            Just("true"),
            Just("false"),
            Just("TRUE"),
            Just("fAlSe"),
            Just(""),
            Just("yes"),
            Just("0")
        ]
        .prop_map(|s| json!(s)),
        "\\PC{0,8}".prop_map(Value::String),
    ];
    let value = leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,3}", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    prop::option::of(value)
}

fn any_class() -> impl Strategy<Value = Option<ComputationClass<'static>>> {
    prop_oneof![
        Just(None),
        Just(AUDIENCE),
        Just(JOURNEY),
        Just(TRAIT),
        Just(Some(ComputationClass::Other("computed")))
    ]
}

fn is_flag(value: Option<&Value>, flag: &str) -> bool {
    match value {
        Some(Value::Bool(b)) => flag == if *b { "true" } else { "false" },
        Some(Value::String(s)) => s.eq_ignore_ascii_case(flag),
        _ => false,
    }
}

proptest! {
    /// Without a reverse-ETL sync mode, only `false`/"false" ever removes, and only
    /// `true`/"true" or a flag-less Journeys step ever adds; everything else is an error.
    #[test]
    fn no_value_is_silently_an_exit(
        value in any_value(),
        class in any_class(),
        identify in any::<bool>(),
        name in prop_oneof![Just("new"), Just("deleted"), Just("Audience Entered")],
    ) {
        let event_type = if identify { EventType::Identify } else { EventType::Track };
        let context = MembershipContext {
            computation_class: class,
            event_type: &event_type,
            event_name: Some(name),
            retl_sync_mode: None,
        };
        match resolve_membership(value.as_ref(), &context) {
            Ok(Remove) => prop_assert!(is_flag(value.as_ref(), "false"), "{:?}", value),
            Ok(Add) => prop_assert!(
                is_flag(value.as_ref(), "true")
                    || (class == JOURNEY && matches!(value, None | Some(Value::Null))),
                "{:?}", value
            ),
            Err(_) => prop_assert!(
                !is_flag(value.as_ref(), "true") && !is_flag(value.as_ref(), "false")
            ),
        }
    }

    /// With a sync mode, a non-Engage track row named new/updated/deleted follows the mode
    /// table whatever its value.
    #[test]
    fn retl_rows_follow_the_mode(
        value in any_value(),
        mode in prop::sample::select(RetlSyncMode::ALL.to_vec()),
        operation in prop::sample::select(vec![RetlOperation::New, RetlOperation::Updated, RetlOperation::Deleted]),
        class in prop_oneof![Just(None), Just(TRAIT)],
    ) {
        let context = MembershipContext {
            computation_class: class,
            event_type: &EventType::Track,
            event_name: Some(operation.as_str()),
            retl_sync_mode: Some(mode),
        };
        let expected = mode
            .membership(operation)
            .ok_or(MembershipError::RetlNotSynced { mode, operation });
        prop_assert_eq!(resolve_membership(value.as_ref(), &context), expected);
    }
}
