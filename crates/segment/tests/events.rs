//! Tables of Segment events and timestamps: what is read, what is kept, what is rejected and
//! why; plus property tests of the timestamp reader and writer.

use proptest::prelude::*;
use segment::event::{
    ComputationClass, Event, EventError, EventTime, EventType, JsonKind, TimeField, TimestampError,
    format_timestamp_ms, parse_timestamp_ms,
};
use serde_json::{Value, json};

/// Year 0000-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z: the range the parser accepts.
const MIN_MS: i64 = -62_167_219_200_000;
const MAX_MS: i64 = 253_402_300_799_999;

// ---------------------------------------------------------------------------------------------
// Timestamps
// ---------------------------------------------------------------------------------------------

#[test]
fn timestamps_accepted() {
    // Expected values computed independently (Python's datetime).
    let cases: &[(&str, i64)] = &[
        ("1970-01-01T00:00:00Z", 0),
        ("1970-01-01T00:00:00.000Z", 0),
        ("1969-12-31T23:59:59.999Z", -1),
        // JavaScript's toISOString, what every Segment SDK sends.
        ("2024-02-29T12:34:56.789Z", 1_709_210_096_789),
        // Leap days: divisible by 4, by 400; 1900 (by 100 only) has none, see the rejects.
        ("2024-02-29T00:00:00Z", 1_709_164_800_000),
        ("2000-02-29T23:59:59.999Z", 951_868_799_999),
        ("1600-02-29T00:00:00Z", -11_670_998_400_000),
        ("1900-03-01T00:00:00Z", -2_203_891_200_000),
        // Offsets, with and without a colon, hours only, negative, half hours.
        ("2024-03-01T00:30:00+05:30", 1_709_233_200_000),
        ("2024-03-01T00:30:00+0530", 1_709_233_200_000),
        ("2023-12-31T23:00:00-01:00", 1_704_067_200_000),
        ("2023-12-31T23:00:00-01", 1_704_067_200_000),
        ("2024-01-01T00:00:00-09:30", 1_704_101_400_000),
        ("2024-01-01T00:00:00+00:00", 1_704_067_200_000),
        ("2024-01-01T00:00:00-00:00", 1_704_067_200_000),
        // Fractions: 1–3 digits scale, more are truncated (not rounded), comma allowed.
        ("2021-06-15T10:20:30.1Z", 1_623_752_430_100),
        ("2021-06-15T10:20:30.12Z", 1_623_752_430_120),
        ("2021-06-15T10:20:30.120Z", 1_623_752_430_120),
        ("2021-06-15T10:20:30.120999Z", 1_623_752_430_120),
        ("2021-06-15T10:20:30.120999999999Z", 1_623_752_430_120),
        ("2021-06-15T10:20:30,12Z", 1_623_752_430_120),
        ("1969-12-31T23:59:59.9999Z", -1),
        // Lower-case separators, a space separator, no seconds, no offset (UTC).
        ("2021-06-15t10:20:30.12z", 1_623_752_430_120),
        ("2021-06-15 10:20:30.12Z", 1_623_752_430_120),
        ("2021-06-15T10:20Z", 1_623_752_400_000),
        ("2021-06-15T10:20", 1_623_752_400_000),
        ("2021-06-15T10:20:30.12", 1_623_752_430_120),
        // Date only: midnight UTC, as Segment's isodate reads it.
        ("2024-02-29", 1_709_164_800_000),
        ("1970-01-01", 0),
        // A leap second reads as the last millisecond of its minute.
        ("2016-12-31T23:59:60Z", 1_483_228_799_999),
        ("2016-12-31T23:59:60.5Z", 1_483_228_799_999),
        // The ends of the range.
        ("0000-01-01T00:00:00Z", MIN_MS),
        ("0001-01-01T00:00:00Z", -62_135_596_800_000),
        ("9999-12-31T23:59:59.999Z", MAX_MS),
        (
            "0000-01-01T00:00:00-23:59",
            MIN_MS + (23 * 60 + 59) * 60_000,
        ),
    ];
    for &(text, ms) in cases {
        assert_eq!(parse_timestamp_ms(text), Ok(ms), "{text}");
    }
}

#[test]
fn timestamps_rejected() {
    use TimestampError::{Empty, NoSuchDay, OutOfRange, Syntax, Trailing};
    let syntax = |at, expected| Syntax { at, expected };
    let cases: &[(&str, TimestampError)] = &[
        ("", Empty),
        (" 2024-01-01", syntax(0, "a four-digit year")),
        ("2024-01-01 ", syntax(11, "a two-digit hour")),
        ("2024-01-01T00:00:00Z ", Trailing { at: 20 }),
        ("2024", syntax(4, "'-' after the year")),
        ("2024-01", syntax(7, "'-' after the month")),
        ("20240101", syntax(4, "'-' after the year")),
        ("24-01-01", syntax(2, "a four-digit year")),
        ("+002024-01-01T00:00:00Z", syntax(0, "a four-digit year")),
        ("2024-1-01", syntax(6, "a two-digit month")),
        ("2024-01-1T00:00Z", syntax(9, "a two-digit day")),
        (
            "2024-01-01X00:00",
            syntax(10, "'T' or the end after the date"),
        ),
        ("2024-01-01T", syntax(11, "a two-digit hour")),
        ("2024-01-01T1:00", syntax(12, "a two-digit hour")),
        ("2024-01-01T10", syntax(13, "':' after the hour")),
        ("2024-01-01T1000Z", syntax(13, "':' after the hour")),
        ("2024-01-01T10:00:", syntax(17, "two-digit seconds")),
        (
            "2024-01-01T10:00:00.",
            syntax(20, "a digit of the fraction of a second"),
        ),
        (
            "2024-01-01T10:00:00.Z",
            syntax(20, "a digit of the fraction of a second"),
        ),
        (
            "2024-01-01T10:00.5Z",
            syntax(16, "'Z', '+hh:mm', '-hh:mm' or the end"),
        ),
        (
            "2024-01-01T10:00:00+",
            syntax(20, "a two-digit offset hour"),
        ),
        (
            "2024-01-01T10:00:00+1",
            syntax(21, "a two-digit offset hour"),
        ),
        (
            "2024-01-01T10:00:00+01:",
            syntax(23, "two-digit offset minutes"),
        ),
        (
            "2024-01-01T10:00:00+01:3",
            syntax(24, "two-digit offset minutes"),
        ),
        (
            "2024-01-01T10:00:00+013",
            syntax(23, "two-digit offset minutes"),
        ),
        ("2024-01-01T10:00:00+01:30:00", Trailing { at: 25 }),
        (
            "2024-01-01T10:00:00 UTC",
            syntax(19, "'Z', '+hh:mm', '-hh:mm' or the end"),
        ),
        ("2024-01-01T10:00:00ZZ", Trailing { at: 20 }),
        ("1700000000000", syntax(4, "'-' after the year")),
        ("２０２４-01-01", syntax(0, "a four-digit year")),
        (
            "2024-00-10",
            OutOfRange {
                part: "month",
                value: 0,
            },
        ),
        (
            "2024-13-10",
            OutOfRange {
                part: "month",
                value: 13,
            },
        ),
        (
            "2024-01-00",
            NoSuchDay {
                year: 2024,
                month: 1,
                day: 0,
            },
        ),
        (
            "2024-01-32",
            NoSuchDay {
                year: 2024,
                month: 1,
                day: 32,
            },
        ),
        (
            "2024-04-31",
            NoSuchDay {
                year: 2024,
                month: 4,
                day: 31,
            },
        ),
        (
            "2023-02-29",
            NoSuchDay {
                year: 2023,
                month: 2,
                day: 29,
            },
        ),
        (
            "1900-02-29T00:00:00Z",
            NoSuchDay {
                year: 1900,
                month: 2,
                day: 29,
            },
        ),
        (
            "2100-02-29",
            NoSuchDay {
                year: 2100,
                month: 2,
                day: 29,
            },
        ),
        (
            "2024-02-30",
            NoSuchDay {
                year: 2024,
                month: 2,
                day: 30,
            },
        ),
        (
            "2024-01-01T24:00:00Z",
            OutOfRange {
                part: "hour",
                value: 24,
            },
        ),
        (
            "2024-01-01T23:60:00Z",
            OutOfRange {
                part: "minute",
                value: 60,
            },
        ),
        (
            "2024-01-01T23:59:61Z",
            OutOfRange {
                part: "second",
                value: 61,
            },
        ),
        (
            "2024-01-01T00:00:00+24:00",
            OutOfRange {
                part: "offset hour",
                value: 24,
            },
        ),
        (
            "2024-01-01T00:00:00+01:60",
            OutOfRange {
                part: "offset minute",
                value: 60,
            },
        ),
    ];
    for (text, error) in cases {
        assert_eq!(parse_timestamp_ms(text).as_ref(), Err(error), "{text}");
    }
}

#[test]
fn timestamps_formatted_like_javascript() {
    let cases: &[(i64, &str)] = &[
        (0, "1970-01-01T00:00:00.000Z"),
        (-1, "1969-12-31T23:59:59.999Z"),
        (1_709_210_096_789, "2024-02-29T12:34:56.789Z"),
        (951_868_799_999, "2000-02-29T23:59:59.999Z"),
        (MIN_MS, "0000-01-01T00:00:00.000Z"),
        (MAX_MS, "9999-12-31T23:59:59.999Z"),
        (MAX_MS + 1, "+010000-01-01T00:00:00.000Z"),
        (MIN_MS - 1, "-000001-12-31T23:59:59.999Z"),
    ];
    for &(ms, text) in cases {
        assert_eq!(format_timestamp_ms(ms), text, "{ms}");
    }
}

proptest! {
    #[test]
    fn formatting_then_parsing_round_trips(ms in MIN_MS..=MAX_MS) {
        prop_assert_eq!(parse_timestamp_ms(&format_timestamp_ms(ms)), Ok(ms));
    }

    /// The same instant written in any offset reads back the same.
    #[test]
    fn offsets_name_the_same_instant(
        ms in (MIN_MS + 86_400_000)..=(MAX_MS - 86_400_000),
        offset_minutes in -(23 * 60 + 59)..=(23 * 60 + 59_i64),
        colon in any::<bool>(),
    ) {
        let local = format_timestamp_ms(ms + offset_minutes * 60_000);
        let sign = if offset_minutes < 0 { '-' } else { '+' };
        let (hours, minutes) = (offset_minutes.abs() / 60, offset_minutes.abs() % 60);
        let separator = if colon { ":" } else { "" };
        let text = format!(
            "{}{sign}{hours:02}{separator}{minutes:02}",
            local.trim_end_matches('Z')
        );
        prop_assert_eq!(parse_timestamp_ms(&text), Ok(ms), "{}", text);
    }

    /// Digits after the milliseconds never change the result.
    #[test]
    fn extra_fraction_digits_are_truncated(ms in MIN_MS..=MAX_MS, extra in "[0-9]{1,12}") {
        let text = format_timestamp_ms(ms).replace('Z', &format!("{extra}Z"));
        prop_assert_eq!(parse_timestamp_ms(&text), Ok(ms), "{}", text);
    }

    /// Any text either parses into the supported range or is rejected; it never panics.
    #[test]
    fn arbitrary_text_never_panics(text in "[0-9T:Zz+.,\\- ]{0,32}|\\PC{0,32}") {
        if let Ok(ms) = parse_timestamp_ms(&text) {
            prop_assert!((MIN_MS - 86_400_000..=MAX_MS + 86_400_000).contains(&ms), "{}", text);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

/// An Engage audience identify event with every common field and some unknown ones.
fn full_identify() -> Value {
    json!({
        "type": "identify",
        "userId": "u1",
        "anonymousId": "an1",
        "messageId": "m-1",
        "timestamp": "2024-02-29T12:34:56.789Z",
        "originalTimestamp": "2024-02-29T12:34:50.000Z",
        "sentAt": "2024-02-29T12:34:57.000Z",
        "receivedAt": "2024-02-29T12:35:00.000Z",
        "traits": {"vip": true, "email": "a@x.com"},
        "context": {
            "traits": {"email": "ctx@x.com"},
            "personas": {
                "computation_class": "audience",
                "computation_id": "aud_1",
                "computation_key": "vip",
                "namespace": "spa_1",
                "space_id": "spa_1",
                "external_audience_id": "12345",
                "audience_settings": {"updateExistingUsersOnly": true, "campaignId": 987},
                "event_emitter_id": "emitter"
            },
            "library": {"name": "analytics-node", "version": "1.0"}
        },
        "integrations": {"All": false},
        "version": 2,
        "channel": "server"
    })
}

#[test]
fn identify_event_exposes_every_common_field() -> Result<(), EventError> {
    let event = Event::from_value(full_identify())?;
    assert_eq!(event.event_type(), &EventType::Identify);
    assert_eq!(event.user_id(), Some("u1"));
    assert_eq!(event.anonymous_id(), Some("an1"));
    assert_eq!(event.message_id(), Some("m-1"));
    assert_eq!(event.event_name(), None);
    assert_eq!(
        event.traits(),
        json!({"vip": true, "email": "a@x.com"}).as_object()
    );
    assert_eq!(event.properties(), None);
    assert_eq!(
        event.context_traits(),
        json!({"email": "ctx@x.com"}).as_object()
    );
    assert_eq!(event.computation_class(), Some(ComputationClass::Audience));
    let personas = event
        .personas()
        .ok_or(EventError::Missing { field: "personas" })?;
    assert_eq!(
        personas.computation_class(),
        Some(ComputationClass::Audience)
    );
    assert_eq!(personas.computation_id(), Some("aud_1"));
    assert_eq!(personas.computation_key(), Some("vip"));
    assert_eq!(personas.namespace(), Some("spa_1"));
    assert_eq!(personas.space_id(), Some("spa_1"));
    assert_eq!(personas.external_audience_id(), Some("12345"));
    assert_eq!(
        personas.audience_settings(),
        json!({"updateExistingUsersOnly": true, "campaignId": 987}).as_object()
    );
    assert_eq!(
        personas.as_map().get("event_emitter_id"),
        Some(&json!("emitter"))
    );
    assert_eq!(
        event.event_time()?,
        Some(EventTime {
            ms: 1_709_210_096_789,
            field: TimeField::Timestamp
        })
    );
    assert_eq!(
        event.time_field(TimeField::SentAt),
        Some(&json!("2024-02-29T12:34:57.000Z"))
    );
    assert_eq!(event.ensure_handled(), Ok(()));
    // Nothing was dropped or changed: unknown fields are kept for the mapping-kit.
    assert_eq!(event.as_value(), &full_identify());
    assert_eq!(event.get("channel"), Some(&json!("server")));
    assert_eq!(event.into_value(), full_identify());
    Ok(())
}

#[test]
fn track_event_exposes_name_and_properties() -> Result<(), EventError> {
    let event = Event::from_value(json!({
        "type": "track",
        "event": "Audience Entered",
        "anonymousId": "an1",
        "properties": {"audience_key": "vip", "vip": true},
        "context": {"traits": {"email": "a@x.com"}, "personas": {"computation_class": "journey_step"}}
    }))?;
    assert_eq!(event.event_type(), &EventType::Track);
    assert_eq!(event.event_name(), Some("Audience Entered"));
    assert_eq!(
        event.properties(),
        json!({"audience_key": "vip", "vip": true}).as_object()
    );
    assert_eq!(event.traits(), None);
    assert_eq!(event.user_id(), None);
    assert_eq!(
        event.context_traits(),
        json!({"email": "a@x.com"}).as_object()
    );
    assert_eq!(
        event.computation_class(),
        Some(ComputationClass::JourneyStep)
    );
    assert_eq!(event.event_time_ms()?, None);
    Ok(())
}

#[test]
fn event_types() {
    let cases: &[(&str, EventType, bool)] = &[
        ("identify", EventType::Identify, true),
        ("track", EventType::Track, true),
        ("page", EventType::Page, false),
        ("screen", EventType::Screen, false),
        ("group", EventType::Group, false),
        ("alias", EventType::Alias, false),
        ("Identify", EventType::Other("Identify".into()), false),
        ("delete", EventType::Other("delete".into()), false),
    ];
    for (name, kind, handled) in cases {
        let event = Event::from_value(json!({"type": name, "userId": "u1"}));
        let event = event.as_ref().map(Event::event_type);
        assert_eq!(event, Ok(kind), "{name}");
        assert_eq!(kind.is_handled(), *handled, "{name}");
        assert_eq!(kind.as_str(), *name);
        let verdict = Event::from_value(json!({"type": name})).and_then(|e| e.ensure_handled());
        let expected = if *handled {
            Ok(())
        } else {
            Err(EventError::NotHandled {
                event_type: kind.clone(),
            })
        };
        assert_eq!(verdict, expected, "{name}");
    }
}

#[test]
fn computation_classes() {
    for (name, class) in [
        ("audience", ComputationClass::Audience),
        ("journey_step", ComputationClass::JourneyStep),
        ("trait", ComputationClass::Trait),
        ("Audience", ComputationClass::Other("Audience")),
        ("", ComputationClass::Other("")),
    ] {
        assert_eq!(ComputationClass::parse(name), class);
        assert_eq!(class.as_str(), name);
    }
}

/// Numeric ids become strings, in the stored event too, as Segment coerces them (V16).
#[test]
fn numeric_ids_are_coerced_to_strings() -> Result<(), EventError> {
    let event = Event::from_value(json!({
        "type": "identify",
        "userId": 42,
        "anonymousId": 1.5,
        "messageId": 18_446_744_073_709_551_615_u64,
        "context": {"personas": {"external_audience_id": 12345, "computation_id": -3}}
    }))?;
    assert_eq!(event.user_id(), Some("42"));
    assert_eq!(event.anonymous_id(), Some("1.5"));
    assert_eq!(event.message_id(), Some("18446744073709551615"));
    let personas = event
        .personas()
        .ok_or(EventError::Missing { field: "personas" })?;
    assert_eq!(personas.external_audience_id(), Some("12345"));
    assert_eq!(personas.computation_id(), Some("-3"));
    assert_eq!(event.as_value()["userId"], json!("42"));
    assert_eq!(
        event.as_value()["context"]["personas"]["external_audience_id"],
        json!("12345")
    );
    Ok(())
}

/// `null` means absent for every known field, and is kept in the stored event.
#[test]
fn nulls_count_as_absent() -> Result<(), EventError> {
    let raw = json!({
        "type": "track", "userId": null, "anonymousId": null, "messageId": null, "event": null,
        "traits": null, "properties": null, "timestamp": null, "originalTimestamp": null,
        "sentAt": "2024-02-29T00:00:00Z",
        "context": {"traits": null, "personas": {
            "computation_class": null, "computation_key": null, "external_audience_id": null,
            "audience_settings": null
        }}
    });
    let event = Event::from_value(raw.clone())?;
    assert_eq!(event.user_id(), None);
    assert_eq!(event.anonymous_id(), None);
    assert_eq!(event.message_id(), None);
    assert_eq!(event.event_name(), None);
    assert_eq!(event.traits(), None);
    assert_eq!(event.properties(), None);
    assert_eq!(event.context_traits(), None);
    assert_eq!(event.computation_class(), None);
    let personas = event
        .personas()
        .ok_or(EventError::Missing { field: "personas" })?;
    assert_eq!(personas.computation_key(), None);
    assert_eq!(personas.external_audience_id(), None);
    assert_eq!(personas.audience_settings(), None);
    assert_eq!(event.get("userId"), None);
    assert_eq!(
        event.event_time()?,
        Some(EventTime {
            ms: 1_709_164_800_000,
            field: TimeField::SentAt
        })
    );
    assert_eq!(event.as_value(), &raw);
    Ok(())
}

#[test]
fn malformed_events_are_rejected_naming_the_field() {
    use JsonKind::{Array, Boolean, Number, Object, String};
    let wrong = |field, expected, found| EventError::WrongType {
        field,
        expected,
        found,
    };
    let id = "a string or a number";
    let cases: Vec<(Value, EventError)> = vec![
        (
            json!([{"type": "track"}]),
            EventError::NotAnObject { found: Array },
        ),
        (json!("identify"), EventError::NotAnObject { found: String }),
        (
            json!(null),
            EventError::NotAnObject {
                found: JsonKind::Null,
            },
        ),
        (
            json!({"userId": "u1"}),
            EventError::Missing { field: "type" },
        ),
        (json!({"type": null}), EventError::Missing { field: "type" }),
        (json!({"type": ""}), EventError::Empty { field: "type" }),
        (json!({"type": 1}), wrong("type", "a string", Number)),
        (json!({"type": ["track"]}), wrong("type", "a string", Array)),
        (
            json!({"type": "track", "userId": true}),
            wrong("userId", id, Boolean),
        ),
        (
            json!({"type": "track", "userId": {"id": 1}}),
            wrong("userId", id, Object),
        ),
        (
            json!({"type": "track", "anonymousId": []}),
            wrong("anonymousId", id, Array),
        ),
        (
            json!({"type": "track", "messageId": false}),
            wrong("messageId", id, Boolean),
        ),
        (
            json!({"type": "track", "event": 5}),
            wrong("event", "a string", Number),
        ),
        (
            json!({"type": "identify", "traits": []}),
            wrong("traits", "an object", Array),
        ),
        (
            json!({"type": "identify", "traits": "vip"}),
            wrong("traits", "an object", String),
        ),
        (
            json!({"type": "track", "properties": 1}),
            wrong("properties", "an object", Number),
        ),
        (
            json!({"type": "track", "context": "c"}),
            wrong("context", "an object", String),
        ),
        (
            json!({"type": "track", "context": {"traits": [1]}}),
            wrong("context.traits", "an object", Array),
        ),
        (
            json!({"type": "track", "context": {"personas": true}}),
            wrong("context.personas", "an object", Boolean),
        ),
        (
            json!({"type": "track", "context": {"personas": {"computation_class": 1}}}),
            wrong("context.personas.computation_class", "a string", Number),
        ),
        (
            json!({"type": "track", "context": {"personas": {"computation_key": ["vip"]}}}),
            wrong("context.personas.computation_key", "a string", Array),
        ),
        (
            json!({"type": "track", "context": {"personas": {"computation_id": {}}}}),
            wrong("context.personas.computation_id", id, Object),
        ),
        (
            json!({"type": "track", "context": {"personas": {"namespace": 3}}}),
            wrong("context.personas.namespace", "a string", Number),
        ),
        (
            json!({"type": "track", "context": {"personas": {"space_id": false}}}),
            wrong("context.personas.space_id", "a string", Boolean),
        ),
        (
            json!({"type": "track", "context": {"personas": {"external_audience_id": true}}}),
            wrong("context.personas.external_audience_id", id, Boolean),
        ),
    ];
    for (raw, error) in cases {
        assert_eq!(Event::from_value(raw.clone()), Err(error), "{raw}");
    }
}

/// Audience settings of the wrong type never make the event unreadable: the destination
/// ignores them and reports them on the event (an audience setting never blocks an entry).
#[test]
fn audience_settings_of_any_type_are_kept_for_the_destination() {
    for settings in [json!("x"), json!([1]), json!(5), json!(true)] {
        let raw =
            json!({"type": "track", "context": {"personas": {"audience_settings": settings}}});
        let event = Event::from_value(raw.clone()).expect("readable");
        let personas = event.personas().expect("personas");
        assert_eq!(personas.audience_settings(), None, "{raw}");
        assert_eq!(personas.as_map().get("audience_settings"), Some(&settings));
    }
}

#[test]
fn error_messages_read_well() {
    let cases: Vec<(Value, &str)> = vec![
        (
            json!([]),
            "the event must be a JSON object but it was an array",
        ),
        (json!({}), "the event has no `type`"),
        (json!({"type": ""}), "`type` is empty"),
        (
            json!({"type": "identify", "userId": [1]}),
            "`userId` must be a string or a number but it was an array",
        ),
        (
            json!({"type": "track", "context": {"personas": {"computation_key": 7}}}),
            "`context.personas.computation_key` must be a string but it was a number",
        ),
    ];
    for (raw, message) in cases {
        let error = Event::from_value(raw).err().map(|e| e.to_string());
        assert_eq!(error.as_deref(), Some(message));
    }
    let page = Event::from_value(json!({"type": "page"})).and_then(|e| e.ensure_handled());
    assert_eq!(
        page.map_err(|e| e.to_string()),
        Err("`type` is `page`, which this destination does not handle (only identify and track events carry audience membership)".to_owned())
    );
}

#[test]
fn event_time_prefers_timestamp_then_original_then_sent_then_received() {
    let t = "2024-01-01T00:00:01Z";
    let o = "2024-01-01T00:00:02Z";
    let s = "2024-01-01T00:00:03Z";
    let r = "2024-01-01T00:00:04Z";
    let base: i64 = 1_704_067_200_000;
    let at = |field, seconds: i64| {
        Ok(Some(EventTime {
            ms: base + seconds * 1000,
            field,
        }))
    };
    let cases: Vec<(Value, Result<Option<EventTime>, EventError>)> = vec![
        (
            json!({"timestamp": t, "originalTimestamp": o, "sentAt": s, "receivedAt": r}),
            at(TimeField::Timestamp, 1),
        ),
        (
            json!({"originalTimestamp": o, "sentAt": s, "receivedAt": r}),
            at(TimeField::OriginalTimestamp, 2),
        ),
        (
            json!({"timestamp": null, "sentAt": s, "receivedAt": r}),
            at(TimeField::SentAt, 3),
        ),
        (json!({"receivedAt": r}), at(TimeField::ReceivedAt, 4)),
        (json!({}), Ok(None)),
        // A bad field in use is an error naming it; the next field is not used instead.
        (
            json!({"timestamp": "2024-02-30T00:00:00Z", "receivedAt": r}),
            Err(EventError::BadTimestamp {
                field: TimeField::Timestamp,
                value: "\"2024-02-30T00:00:00Z\"".into(),
                reason: TimestampError::NoSuchDay {
                    year: 2024,
                    month: 2,
                    day: 30,
                },
            }),
        ),
        (
            json!({"originalTimestamp": 1_704_067_200_000_i64, "receivedAt": r}),
            Err(EventError::TimestampNotString {
                field: TimeField::OriginalTimestamp,
                found: JsonKind::Number,
            }),
        ),
        (
            json!({"sentAt": "", "receivedAt": r}),
            Err(EventError::BadTimestamp {
                field: TimeField::SentAt,
                value: "\"\"".into(),
                reason: TimestampError::Empty,
            }),
        ),
        // A bad field that is not used does not matter.
        (
            json!({"timestamp": t, "sentAt": "yesterday", "receivedAt": {}}),
            at(TimeField::Timestamp, 1),
        ),
    ];
    for (mut fields, expected) in cases {
        if let Some(map) = fields.as_object_mut() {
            map.insert("type".into(), json!("track"));
        }
        let time = Event::from_value(fields.clone()).and_then(|event| event.event_time());
        assert_eq!(time, expected, "{fields}");
    }
}

#[test]
fn bad_timestamp_message_names_field_value_and_reason() {
    let event = Event::from_value(json!({"type": "track", "timestamp": "2024-13-01T00:00:00Z"}));
    let message = event
        .and_then(|e| e.event_time_ms())
        .map_err(|e| e.to_string());
    assert_eq!(
        message,
        Err("`timestamp` is not a valid timestamp (\"2024-13-01T00:00:00Z\"): month 13 is out of range".to_owned())
    );
}

/// Any JSON value: scalars, and nested arrays/objects with keys Segment uses.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "[a-z0-9 ]{0,6}".prop_map(Value::String),
        Just(json!("identify")),
        Just(json!("track")),
    ];
    let key = prop_oneof![
        Just("type".to_owned()),
        Just("userId".to_owned()),
        Just("event".to_owned()),
        Just("traits".to_owned()),
        Just("context".to_owned()),
        Just("personas".to_owned()),
        Just("external_audience_id".to_owned()),
        Just("timestamp".to_owned()),
        "[a-z]{1,4}",
    ];
    leaf.prop_recursive(4, 40, 5, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    /// Reading never panics; what it accepts is kept, apart from ids turned into strings.
    #[test]
    fn reading_any_json_keeps_it(raw in any_json()) {
        if let Ok(event) = Event::from_value(raw.clone()) {
            let _ = event.event_time();
            let _ = event.personas().map(|p| (p.computation_class(), p.audience_settings()));
            let kept = event.into_value();
            let (Value::Object(before), Value::Object(after)) = (&raw, &kept) else {
                return Err(TestCaseError::fail("an accepted event is an object"));
            };
            prop_assert_eq!(before.len(), after.len());
            for (key, value) in before {
                let coerced = matches!(key.as_str(), "userId" | "anonymousId" | "messageId" | "context")
                    && value != &after[key];
                prop_assert!(coerced || value == &after[key], "{} changed", key);
            }
        }
    }
}
