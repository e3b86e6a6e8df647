//! The 42 behaviour vectors of `segment-destination.md` section E, one test each.
//!
//! Where this destination keeps Segment's new ("Iterable Lists (Actions)") behaviour, the test
//! asserts Segment's exact request bodies (key order included) and error strings. Where it
//! deliberately differs (section F and issue 3), the test asserts our behaviour and a
//! `// Segment: ...` comment says what Segment does instead. We only plan in batch mode, so
//! where Segment distinguishes single and batch, the batch outcome is asserted as the event's
//! status and message. Vectors about the HTTP lifecycle (createAudience, getAudience,
//! testAuthentication, API errors) exercise the pure parts here; the client issue runs them
//! end to end.

use destination::{
    ActionMapping, AudienceSettings, EventStatus, Operation, Plan, Planner, ProjectType,
    RowOutcome, SentRow, Settings, classify,
};
use iterable_api::errors::{Envelope, ErrorClass, classify_status};
use iterable_api::lists::{GetListsResponse, choose_list, find_by_id};
use iterable_api::types::BulkUpdateResponse;
use serde_json::{Value, json};

const SUB: &str = "/api/lists/subscribe";
const UNSUB: &str = "/api/lists/unsubscribe";

const HYBRID_MSG: &str = "Either User ID or Email is required when Iterable Project Type = Hybrid";
const USER_ID_MSG: &str = "User ID is required when Iterable Project Type = User ID";
const LIST_ID_MSG: &str = "Invalid or missing Segment Audience ID";

/// Section E's `P`: the `context.personas` object of an audience event on list 12345.
fn p() -> Value {
    json!({
        "computation_class": "audience",
        "computation_key": "vip",
        "computation_id": "aud_1",
        "namespace": "spa_1",
        "space_id": "spa_1",
        "external_audience_id": "12345"
    })
}

/// `P+{…}`: `P` with keys added or replaced.
fn p_plus(extra: Value) -> Value {
    let mut p = p();
    if let (Value::Object(base), Value::Object(extra)) = (&mut p, extra) {
        base.extend(extra);
    }
    p
}

/// `P` without some keys.
fn p_without(keys: &[&str]) -> Value {
    let mut p = p();
    if let Value::Object(base) = &mut p {
        for k in keys {
            base.shift_remove(*k);
        }
    }
    p
}

/// An identify event: optional userId, traits, and `context.personas`.
fn identify(user_id: Option<&str>, traits: Value, personas: Value) -> Value {
    let mut e = json!({"type": "identify", "traits": traits, "context": {"personas": personas}});
    if let Some(u) = user_id {
        e["userId"] = json!(u);
    }
    e
}

/// V1's event with the membership flag `vip` set to `member` and audience settings `settings`
/// (omitted when `None`).
fn v1_event(member: Value, settings: Option<Value>) -> Value {
    let personas = match settings {
        Some(s) => p_plus(json!({"audience_settings": s})),
        None => p(),
    };
    identify(
        Some("u1"),
        json!({"vip": member, "email": "a@x.com"}),
        personas,
    )
}

/// Plans `events` with the default mapping laid under `overrides`.
fn plan_with(project: ProjectType, overrides: Option<Value>, events: Vec<Value>) -> Plan {
    let mapping = ActionMapping::new(overrides.as_ref()).expect("mapping compiles");
    Planner::new(project, mapping).plan(events)
}

fn plan_h(events: Vec<Value>) -> Plan {
    plan_with(ProjectType::Hybrid, None, events)
}

fn plan_u(events: Vec<Value>) -> Plan {
    plan_with(ProjectType::UserId, None, events)
}

/// The requests as (path, exact body text), in sending order.
fn sent(plan: &Plan) -> Vec<(String, String)> {
    plan.requests
        .iter()
        .map(|r| {
            (
                r.op.path().to_string(),
                String::from_utf8(r.body.clone()).expect("UTF-8 body"),
            )
        })
        .collect()
}

/// An expected request: the body's key order is the one written in `json!`.
fn req(path: &str, body: Value) -> (String, String) {
    (path.to_string(), body.to_string())
}

/// Every event's (status, message).
fn outcomes(plan: &Plan) -> Vec<(EventStatus, Option<String>)> {
    plan.events
        .iter()
        .enumerate()
        .map(|(i, o)| {
            assert_eq!(o.index, i, "outcomes are in input order");
            (o.status, o.message.clone())
        })
        .collect()
}

fn planned() -> (EventStatus, Option<String>) {
    (EventStatus::Planned, None)
}

fn rejected(msg: &str) -> (EventStatus, Option<String>) {
    (EventStatus::Rejected, Some(msg.to_string()))
}

/// Asserts event `i` has `status` and a message containing every one of `parts`.
fn assert_status_with(plan: &Plan, i: usize, status: EventStatus, parts: &[&str]) {
    let o = &plan.events[i];
    assert_eq!(o.status, status, "event {i}: {o:?}");
    let m = o.message.as_deref().unwrap_or_default();
    for part in parts {
        assert!(m.contains(part), "event {i}: message {m:?} lacks {part:?}");
    }
}

#[test]
fn v01_identify_enter_hybrid_with_settings() {
    let plan = plan_h(vec![v1_event(
        json!(true),
        Some(json!({"updateExistingUsersOnly": false, "globalUnsubscribe": false})),
    )]);
    assert_eq!(
        sent(&plan),
        vec![req(
            SUB,
            json!({"listId": 12345, "subscribers": [{"email": "a@x.com", "userId": "u1"}], "updateExistingUsersOnly": false})
        )]
    );
    assert_eq!(outcomes(&plan), vec![planned()]);
    // The printed plan carries the same body.
    assert_eq!(
        plan.to_json(),
        json!({
            "requests": [{"method": "POST", "path": SUB, "body": {"listId": 12345, "subscribers": [{"email": "a@x.com", "userId": "u1"}], "updateExistingUsersOnly": false}}],
            "events": [{"index": 0, "status": "planned"}]
        })
    );
}

#[test]
fn v02_identify_exit() {
    let plan = plan_h(vec![v1_event(
        json!(false),
        Some(json!({"updateExistingUsersOnly": false, "globalUnsubscribe": false})),
    )]);
    assert_eq!(
        sent(&plan),
        vec![req(
            UNSUB,
            json!({"listId": 12345, "subscribers": [{"email": "a@x.com", "userId": "u1"}], "channelUnsubscribe": false})
        )]
    );
    assert_eq!(outcomes(&plan), vec![planned()]);
}

#[test]
fn v03_exit_with_campaign_and_channel_unsubscribe() {
    let plan = plan_h(vec![v1_event(
        json!(false),
        Some(json!({"globalUnsubscribe": true, "campaignId": 987})),
    )]);
    assert_eq!(
        sent(&plan),
        vec![req(
            UNSUB,
            json!({"listId": 12345, "subscribers": [{"email": "a@x.com", "userId": "u1"}], "campaignId": 987, "channelUnsubscribe": true})
        )]
    );
    assert_eq!(outcomes(&plan), vec![planned()]);
}

#[test]
fn v04_wrongly_typed_audience_settings() {
    // The vector's settings: "yes" is not a boolean, so it is ignored (left unset) and
    // reported on both events; "987" and "true" are coerced. Both events are delivered.
    // Segment: drops every wrongly typed value silently (enter → SUB without
    // updateExistingUsersOnly; exit → UNSUB with listId and subscribers only).
    let bad =
        json!({"campaignId": "987", "updateExistingUsersOnly": "true", "globalUnsubscribe": "yes"});
    let plan = plan_h(vec![
        v1_event(json!(true), Some(bad.clone())),
        identify(
            Some("u2"),
            json!({"vip": false, "email": "b@x.com"}),
            p_plus(json!({"audience_settings": bad})),
        ),
    ]);
    assert_eq!(
        sent(&plan),
        vec![
            req(
                SUB,
                json!({"listId": 12345, "subscribers": [{"email": "a@x.com", "userId": "u1"}], "updateExistingUsersOnly": true})
            ),
            req(
                UNSUB,
                json!({"listId": 12345, "subscribers": [{"email": "b@x.com", "userId": "u2"}], "campaignId": 987})
            ),
        ]
    );
    assert_eq!(outcomes(&plan), vec![planned(), planned()]);
    for o in &plan.events {
        let ignored: Vec<String> = o.ignored_settings.iter().map(|i| i.to_string()).collect();
        assert_eq!(
            ignored,
            vec!["globalUnsubscribe \"yes\" ignored: must be a boolean but it was a string"]
        );
    }

    // Unambiguous strings are coerced: "987" → 987, "true"/"false" → booleans.
    // Segment: ignores all three (no updateExistingUsersOnly, campaignId or channelUnsubscribe).
    let ok = json!({"campaignId": "987", "updateExistingUsersOnly": "true", "globalUnsubscribe": "false"});
    let plan = plan_h(vec![
        v1_event(json!(true), Some(ok.clone())),
        identify(
            Some("u2"),
            json!({"vip": false, "email": "b@x.com"}),
            p_plus(json!({"audience_settings": ok})),
        ),
    ]);
    assert_eq!(
        sent(&plan),
        vec![
            req(
                SUB,
                json!({"listId": 12345, "subscribers": [{"email": "a@x.com", "userId": "u1"}], "updateExistingUsersOnly": true})
            ),
            req(
                UNSUB,
                json!({"listId": 12345, "subscribers": [{"email": "b@x.com", "userId": "u2"}], "campaignId": 987, "channelUnsubscribe": false})
            ),
        ]
    );
    assert_eq!(outcomes(&plan), vec![planned(), planned()]);

    // A campaign id that is not a whole number is ignored and reported, not sent.
    // Segment: drops it silently and unsubscribes without campaignId.
    let plan = plan_h(vec![v1_event(
        json!(false),
        Some(json!({"campaignId": "abc"})),
    )]);
    assert_eq!(
        sent(&plan),
        vec![req(
            UNSUB,
            json!({"listId": 12345, "subscribers": [{"email": "a@x.com", "userId": "u1"}]})
        )]
    );
    assert_eq!(outcomes(&plan), vec![planned()]);
    assert_eq!(
        plan.events[0].ignored_settings[0].to_string(),
        "campaignId \"abc\" ignored: must be a whole positive number but it was a string"
    );
}

#[test]
fn v05_no_audience_settings() {
    let plan = plan_h(vec![v1_event(json!(true), None)]);
    assert_eq!(
        sent(&plan),
        vec![req(
            SUB,
            json!({"listId": 12345, "subscribers": [{"email": "a@x.com", "userId": "u1"}]})
        )]
    );
    assert_eq!(outcomes(&plan), vec![planned()]);
}

#[test]
fn v06_userid_project_userid_only() {
    let enter = plan_u(vec![identify(Some("u1"), json!({"vip": true}), p())]);
    assert_eq!(
        sent(&enter),
        vec![req(
            SUB,
            json!({"listId": 12345, "subscribers": [{"userId": "u1", "preferUserId": true}]})
        )]
    );
    assert_eq!(outcomes(&enter), vec![planned()]);
    let exit = plan_u(vec![identify(Some("u1"), json!({"vip": false}), p())]);
    assert_eq!(
        sent(&exit),
        vec![req(
            UNSUB,
            json!({"listId": 12345, "subscribers": [{"userId": "u1"}]})
        )]
    );
    assert_eq!(outcomes(&exit), vec![planned()]);
}

#[test]
fn v07_userid_project_both_ids() {
    let plan = plan_u(vec![v1_event(
        json!(true),
        Some(json!({"updateExistingUsersOnly": false, "globalUnsubscribe": false})),
    )]);
    assert_eq!(
        sent(&plan),
        vec![req(
            SUB,
            json!({"listId": 12345, "subscribers": [{"email": "a@x.com", "userId": "u1", "preferUserId": true}], "updateExistingUsersOnly": false})
        )]
    );
    assert_eq!(outcomes(&plan), vec![planned()]);
}

#[test]
fn v08_userid_project_without_userid() {
    let anon = |member: bool| json!({"type": "identify", "anonymousId": "an1", "traits": {"vip": member, "email": "a@x.com"}, "context": {"personas": p()}});
    let plan = plan_u(vec![anon(true), anon(false)]);
    assert_eq!(sent(&plan), vec![]);
    assert_eq!(
        outcomes(&plan),
        vec![rejected(USER_ID_MSG), rejected(USER_ID_MSG)]
    );
}

#[test]
fn v09_hybrid_without_any_id() {
    let anon = |member: bool| json!({"type": "identify", "anonymousId": "an1", "traits": {"vip": member}, "context": {"personas": p()}});
    let plan = plan_h(vec![anon(true), anon(false)]);
    assert_eq!(sent(&plan), vec![]);
    assert_eq!(
        outcomes(&plan),
        vec![rejected(HYBRID_MSG), rejected(HYBRID_MSG)]
    );
}

#[test]
fn v10_track_enter_email_only_in_context_traits() {
    let plan = plan_h(vec![json!({
        "type": "track", "event": "Audience Entered", "anonymousId": "an1",
        "properties": {"audience_key": "vip", "vip": true},
        "context": {"traits": {"email": "a@x.com"}, "personas": p()}
    })]);
    // Segment: email resolves to properties.email (absent) → rejected with the V9 message.
    assert_eq!(
        sent(&plan),
        vec![req(
            SUB,
            json!({"listId": 12345, "subscribers": [{"email": "a@x.com"}]})
        )]
    );
    assert_eq!(outcomes(&plan), vec![planned()]);
}

#[test]
fn v11_track_enter_userid_and_context_traits_email() {
    let plan = plan_h(vec![json!({
        "type": "track", "event": "Audience Entered", "anonymousId": "an1", "userId": "u1",
        "properties": {"audience_key": "vip", "vip": true},
        "context": {"traits": {"email": "a@x.com"}, "personas": p()}
    })]);
    // Segment: SUB [{"userId":"u1"}] (the email is lost).
    assert_eq!(
        sent(&plan),
        vec![req(
            SUB,
            json!({"listId": 12345, "subscribers": [{"email": "a@x.com", "userId": "u1"}]})
        )]
    );
    assert_eq!(outcomes(&plan), vec![planned()]);
}

fn v12_event(member: bool, name: &str) -> Value {
    json!({
        "type": "track", "event": name, "anonymousId": "an1",
        "properties": {"audience_key": "vip", "vip": member, "email": "a@x.com"},
        "context": {"personas": p()}
    })
}

#[test]
fn v12_track_enter_email_in_properties() {
    let plan = plan_h(vec![v12_event(true, "Audience Entered")]);
    assert_eq!(
        sent(&plan),
        vec![req(
            SUB,
            json!({"listId": 12345, "subscribers": [{"email": "a@x.com"}]})
        )]
    );
    assert_eq!(outcomes(&plan), vec![planned()]);
}

#[test]
fn v13_track_exit() {
    let plan = plan_h(vec![v12_event(false, "Audience Exited")]);
    assert_eq!(
        sent(&plan),
        vec![req(
            UNSUB,
            json!({"listId": 12345, "subscribers": [{"email": "a@x.com"}]})
        )]
    );
    assert_eq!(outcomes(&plan), vec![planned()]);
}

#[test]
fn v14_non_numeric_external_audience_id() {
    let plan = plan_h(vec![identify(
        Some("u1"),
        json!({"vip": true, "email": "a@x.com"}),
        p_plus(json!({"external_audience_id": "abc"})),
    )]);
    assert_eq!(sent(&plan), vec![]);
    assert_eq!(outcomes(&plan), vec![rejected(LIST_ID_MSG)]);
}

#[test]
fn v15_missing_external_audience_id() {
    // Without an external id the list is named by the audience key, resolved later.
    // Segment: `The root value is missing the required field 'segmentAudienceId'.` (400).
    let plan = plan_h(vec![identify(
        Some("u1"),
        json!({"vip": true, "email": "a@x.com"}),
        p_without(&["external_audience_id"]),
    )]);
    assert_eq!(
        sent(&plan),
        vec![req(
            SUB,
            json!({"listId": "audience:vip", "subscribers": [{"email": "a@x.com", "userId": "u1"}]})
        )]
    );
    assert_eq!(outcomes(&plan), vec![planned()]);

    // Missing computation_key too: only the key is required.
    // Segment: the segmentAudienceKey sentence, a space, then the segmentAudienceId sentence.
    let plan = plan_h(vec![identify(
        Some("u1"),
        json!({"vip": true, "email": "a@x.com"}),
        p_without(&["external_audience_id", "computation_key"]),
    )]);
    assert_eq!(sent(&plan), vec![]);
    assert_eq!(
        outcomes(&plan),
        vec![rejected(
            "The root value is missing the required field 'segmentAudienceKey'."
        )]
    );
}

#[test]
fn v16_numeric_ids() {
    let mut event = identify(
        None,
        json!({"vip": true, "email": "a@x.com"}),
        p_plus(json!({"external_audience_id": 12345})),
    );
    event["userId"] = json!(42);
    let plan = plan_h(vec![event]);
    assert_eq!(
        sent(&plan),
        vec![req(
            SUB,
            json!({"listId": 12345, "subscribers": [{"email": "a@x.com", "userId": "42"}]})
        )]
    );
    assert_eq!(outcomes(&plan), vec![planned()]);
}

#[test]
fn v17_empty_and_odd_list_id_strings() {
    let with_id = |uid: &str, id: &str| {
        identify(
            Some(uid),
            json!({"vip": true}),
            p_plus(json!({"external_audience_id": id})),
        )
    };
    // "" means "no id": resolve by audience key.
    // Segment: single mode → the V15 message; batch mode → Number("") = 0 → SUB {"listId":0,…}.
    let plan = plan_h(vec![with_id("u1", "")]);
    assert_eq!(
        sent(&plan),
        vec![req(
            SUB,
            json!({"listId": "audience:vip", "subscribers": [{"userId": "u1"}]})
        )]
    );
    assert_eq!(outcomes(&plan), vec![planned()]);

    // Surrounding spaces are allowed, as in Segment.
    let plan = plan_h(vec![with_id("u1", " 77 ")]);
    assert_eq!(
        sent(&plan),
        vec![req(
            SUB,
            json!({"listId": 77, "subscribers": [{"userId": "u1"}]})
        )]
    );
    assert_eq!(outcomes(&plan), vec![planned()]);

    // Only decimal digits: "0x10" (and "1e3") are rejected.
    // Segment: JS Number() → "0x10" = list 16, "1e3" = list 1000.
    let plan = plan_h(vec![with_id("u1", "0x10"), with_id("u2", "1e3")]);
    assert_eq!(sent(&plan), vec![]);
    assert_eq!(
        outcomes(&plan),
        vec![rejected(LIST_ID_MSG), rejected(LIST_ID_MSG)]
    );
}

#[test]
fn v18_data_fields_empty_object() {
    let plan = plan_with(
        ProjectType::Hybrid,
        Some(json!({"dataFields": {}})),
        vec![v1_event(json!(true), None)],
    );
    assert_eq!(
        sent(&plan),
        vec![req(
            SUB,
            json!({"listId": 12345, "subscribers": [{"email": "a@x.com", "userId": "u1"}]})
        )]
    );
    assert_eq!(outcomes(&plan), vec![planned()]);
}

fn v19_mapping() -> Value {
    json!({"dataFields": {
        "first": {"@path": "$.traits.first_name"},
        "plan": "gold",
        "gone": {"@path": "$.traits.nope"},
        "n": {"@path": "$.traits.nul"}
    }})
}

fn v19_event(member: bool) -> Value {
    identify(
        Some("u1"),
        json!({"vip": member, "email": "a@x.com", "first_name": "Ann", "nul": null}),
        p(),
    )
}

#[test]
fn v19_data_fields_with_paths() {
    let plan = plan_with(
        ProjectType::Hybrid,
        Some(v19_mapping()),
        vec![v19_event(true)],
    );
    assert_eq!(
        sent(&plan),
        vec![req(
            SUB,
            json!({"listId": 12345, "subscribers": [{"email": "a@x.com", "userId": "u1", "dataFields": {"first": "Ann", "plan": "gold", "n": null}}]})
        )]
    );
    assert_eq!(outcomes(&plan), vec![planned()]);
}

#[test]
fn v20_data_fields_on_exit() {
    let plan = plan_with(
        ProjectType::Hybrid,
        Some(v19_mapping()),
        vec![v19_event(false)],
    );
    assert_eq!(
        sent(&plan),
        vec![req(
            UNSUB,
            json!({"listId": 12345, "subscribers": [{"email": "a@x.com", "userId": "u1"}]})
        )]
    );
    assert_eq!(outcomes(&plan), vec![planned()]);
}

#[test]
fn v21_data_fields_scalar() {
    let plan = plan_with(
        ProjectType::Hybrid,
        Some(json!({"dataFields": {"@path": "$.traits.first_name"}})),
        vec![v19_event(true)],
    );
    assert_eq!(sent(&plan), vec![]);
    assert_eq!(
        outcomes(&plan),
        vec![rejected(
            "Additional traits or identifiers must be an object but it was a string."
        )]
    );
}

#[test]
fn v22_mixed_batch() {
    let ev = |n: u8, member: bool| {
        identify(
            Some(&format!("u{n}")),
            json!({"vip": member, "email": format!("a{n}@x.com")}),
            p(),
        )
    };
    let plan = plan_h(vec![ev(1, true), ev(2, false), ev(3, true)]);
    assert_eq!(
        sent(&plan),
        vec![
            req(
                SUB,
                json!({"listId": 12345, "subscribers": [{"email": "a1@x.com", "userId": "u1"}, {"email": "a3@x.com", "userId": "u3"}]})
            ),
            req(
                UNSUB,
                json!({"listId": 12345, "subscribers": [{"email": "a2@x.com", "userId": "u2"}]})
            ),
        ]
    );
    assert_eq!(outcomes(&plan), vec![planned(), planned(), planned()]);
    let sources: Vec<Vec<usize>> = plan
        .requests
        .iter()
        .map(|r| r.rows.iter().map(|row| row.source).collect())
        .collect();
    assert_eq!(sources, vec![vec![0, 2], vec![1]]);
}

#[test]
fn v23_enter_and_exit_of_the_same_user() {
    let ev = |member: bool, ts: Option<&str>| {
        let mut e = identify(Some("u1"), json!({"vip": member, "email": "a@x.com"}), p());
        if let Some(ts) = ts {
            e["timestamp"] = json!(ts);
        }
        e
    };
    let sub_u1 = req(
        SUB,
        json!({"listId": 12345, "subscribers": [{"email": "a@x.com", "userId": "u1"}]}),
    );
    let unsub_u1 = req(
        UNSUB,
        json!({"listId": 12345, "subscribers": [{"email": "a@x.com", "userId": "u1"}]}),
    );

    // Latest event wins; the earlier one is superseded.
    // Segment: SUB [u1] then UNSUB [u1], both entries 200 (right only by coincidence).
    let plan = plan_h(vec![ev(true, None), ev(false, None)]);
    assert_eq!(sent(&plan), vec![unsub_u1.clone()]);
    assert_status_with(&plan, 0, EventStatus::Superseded, &["superseded"]);
    assert_eq!(outcomes(&plan)[1], planned());

    // Segment: the same SUB then UNSUB, so u1 ends off the list although the latest event
    // says member.
    let plan = plan_h(vec![ev(false, None), ev(true, None)]);
    assert_eq!(sent(&plan), vec![sub_u1.clone()]);
    assert_status_with(&plan, 0, EventStatus::Superseded, &["superseded"]);
    assert_eq!(outcomes(&plan)[1], planned());

    // Ordered by timestamp first: an exit that arrives later but happened earlier loses.
    // Segment: ignores timestamps (SUB then UNSUB).
    let plan = plan_h(vec![
        ev(true, Some("2026-01-01T10:00:02Z")),
        ev(false, Some("2026-01-01T10:00:01Z")),
    ]);
    assert_eq!(sent(&plan), vec![sub_u1]);
    assert_eq!(outcomes(&plan)[0], planned());
    assert_status_with(&plan, 1, EventStatus::Superseded, &["superseded"]);

    // Equal timestamps: arrival order decides.
    let plan = plan_h(vec![
        ev(true, Some("2026-01-01T10:00:00Z")),
        ev(false, Some("2026-01-01T10:00:00Z")),
    ]);
    assert_eq!(sent(&plan), vec![unsub_u1]);
    assert_status_with(&plan, 0, EventStatus::Superseded, &["superseded"]);
    assert_eq!(outcomes(&plan)[1], planned());
}

#[test]
fn v24_batch_with_id_less_event() {
    let plan = plan_h(vec![
        identify(Some("u1"), json!({"vip": true, "email": "a1@x.com"}), p()),
        json!({"type": "identify", "anonymousId": "an2", "traits": {"vip": true}, "context": {"personas": p()}}),
        identify(Some("u3"), json!({"vip": false, "email": "a3@x.com"}), p()),
    ]);
    assert_eq!(
        sent(&plan),
        vec![
            req(
                SUB,
                json!({"listId": 12345, "subscribers": [{"email": "a1@x.com", "userId": "u1"}]})
            ),
            req(
                UNSUB,
                json!({"listId": 12345, "subscribers": [{"email": "a3@x.com", "userId": "u3"}]})
            ),
        ]
    );
    assert_eq!(
        outcomes(&plan),
        vec![planned(), rejected(HYBRID_MSG), planned()]
    );
}

#[test]
fn v25_first_payload_bad_list_id() {
    let plan = plan_h(vec![
        identify(
            Some("u1"),
            json!({"vip": true}),
            p_plus(json!({"external_audience_id": "abc"})),
        ),
        identify(Some("u2"), json!({"vip": true}), p()),
    ]);
    // Only the event with the bad id is rejected; the other goes to its own list.
    // Segment: every event of the batch gets 400 `Invalid or missing Segment Audience ID`, no HTTP.
    assert_eq!(
        sent(&plan),
        vec![req(
            SUB,
            json!({"listId": 12345, "subscribers": [{"userId": "u2"}]})
        )]
    );
    assert_eq!(outcomes(&plan), vec![rejected(LIST_ID_MSG), planned()]);
}

#[test]
fn v26_batch_spanning_two_lists() {
    let plan = plan_h(vec![
        identify(
            Some("u1"),
            json!({"vip": true}),
            p_plus(json!({"external_audience_id": "111"})),
        ),
        identify(
            Some("u2"),
            json!({"vip": true}),
            p_plus(json!({"external_audience_id": "222"})),
        ),
    ]);
    // Segment: one SUB {"listId":111,"subscribers":[u1,u2]} (list of the first payload).
    assert_eq!(
        sent(&plan),
        vec![
            req(
                SUB,
                json!({"listId": 111, "subscribers": [{"userId": "u1"}]})
            ),
            req(
                SUB,
                json!({"listId": 222, "subscribers": [{"userId": "u2"}]})
            ),
        ]
    );
    assert_eq!(outcomes(&plan), vec![planned(), planned()]);
}

#[test]
fn v27_subscribe_gets_429() {
    // Pure part: the two changes go in separate requests, so a 429 on the subscribe concerns
    // only event 0, and 429 is retryable. Sending, Retry-After and backoff are exercised end
    // to end by the client issue.
    let plan = plan_h(vec![
        identify(Some("u1"), json!({"vip": true, "email": "a1@x.com"}), p()),
        identify(Some("u2"), json!({"vip": false, "email": "a2@x.com"}), p()),
    ]);
    let ops: Vec<(Operation, Vec<usize>)> = plan
        .requests
        .iter()
        .map(|r| (r.op, r.rows.iter().map(|row| row.source).collect()))
        .collect();
    assert_eq!(
        ops,
        vec![
            (Operation::Subscribe, vec![0]),
            (Operation::Unsubscribe, vec![1])
        ]
    );
    let envelope = Envelope::parse(
        br#"{"msg":"Exceeded rate limit for endpoint: /api/lists/subscribe, project: 1 ","code":"RateLimitExceeded","params":{}}"#,
    );
    assert_eq!(classify_status(429, &envelope), ErrorClass::Retryable);
    assert_eq!(
        classify_status(429, &Envelope::parse(b"")),
        ErrorClass::Retryable
    );
}

#[test]
fn v28_partial_failure_in_200() {
    let plan = plan_h(vec![
        identify(Some("u1"), json!({"vip": true, "email": "a@x.com"}), p()),
        json!({"type": "identify", "anonymousId": "an2", "traits": {"vip": true, "email": "bad@"}, "context": {"personas": p()}}),
    ]);
    assert_eq!(
        sent(&plan),
        vec![req(
            SUB,
            json!({"listId": 12345, "subscribers": [{"email": "a@x.com", "userId": "u1"}, {"email": "bad@"}]})
        )]
    );
    let rows: Vec<SentRow<'_>> = plan.requests[0]
        .rows
        .iter()
        .map(|r| SentRow {
            email: r.email.as_deref(),
            user_id: r.user_id.as_deref(),
        })
        .collect();
    let resp: BulkUpdateResponse =
        serde_json::from_str(r#"{"successCount":1,"failCount":1,"invalidEmails":["bad@"]}"#)
            .expect("response parses");
    let c = classify(Operation::Subscribe, &rows, &resp);
    // Segment: never reads the reply; both entries are reported {status:200}.
    assert_eq!(
        c.rows,
        vec![
            RowOutcome::Done,
            RowOutcome::Rejected {
                bucket: "invalidEmails"
            }
        ]
    );
    assert_eq!(c.unmatched_failures, 0);
}

#[test]
fn v29_membership_value_table() {
    // (value or None for a missing key, our outcome). Segment NEW uses JS truthiness; its
    // outcome is in each row's comment.
    enum Want {
        Sub,
        Unsub,
        Reject(&'static str),
    }
    use Want::{Reject, Sub, Unsub};
    let cases: Vec<(Option<Value>, Want)> = vec![
        // Segment: sub.
        (Some(json!(true)), Sub),
        // Segment: sub.
        (Some(json!("true")), Sub),
        // Segment: sub ("false" is a non-empty string, so truthy).
        (Some(json!("false")), Unsub),
        // Segment: unsub.
        (Some(json!(false)), Unsub),
        // Segment: sub.
        (Some(json!(1)), Reject("not a membership flag")),
        // Segment: unsub.
        (Some(json!(0)), Reject("not a membership flag")),
        // Segment: unsub.
        (Some(json!("")), Reject("not a membership flag")),
        // Segment: unsub.
        (Some(Value::Null), Reject("null")),
        // Segment: unsub.
        (None, Reject("no membership value")),
        // Segment: sub.
        (Some(json!({})), Reject("not a membership flag")),
        // Segment: sub.
        (Some(json!([])), Reject("not a membership flag")),
    ];
    for (value, want) in cases {
        let mut traits = json!({"email": "a@x.com"});
        if let Some(v) = &value {
            traits["vip"] = v.clone();
        }
        let plan = plan_h(vec![identify(Some("u1"), traits, p())]);
        let row = json!({"listId": 12345, "subscribers": [{"email": "a@x.com", "userId": "u1"}]});
        match want {
            Sub => {
                assert_eq!(sent(&plan), vec![req(SUB, row)], "{value:?}");
                assert_eq!(outcomes(&plan), vec![planned()], "{value:?}");
            }
            Unsub => {
                assert_eq!(sent(&plan), vec![req(UNSUB, row)], "{value:?}");
                assert_eq!(outcomes(&plan), vec![planned()], "{value:?}");
            }
            Reject(part) => {
                assert_eq!(sent(&plan), vec![], "{value:?}");
                assert_status_with(&plan, 0, EventStatus::Rejected, &["vip", part]);
            }
        }
    }
}

#[test]
fn v30_journeys_step_without_value() {
    let plan = plan_h(vec![json!({
        "type": "track", "event": "Journey Step Entered", "userId": "u1",
        "properties": {"journey_context": {"step": "s1"}, "journey_metadata": {"journey_id": "j1"}},
        "context": {"personas": {"computation_class": "journey_step", "computation_key": "j_step_1", "external_audience_id": "12345"}}
    })]);
    // Segment: UNSUB [{"userId":"u1"}]: the user is removed although they entered the step.
    assert_eq!(
        sent(&plan),
        vec![req(
            SUB,
            json!({"listId": 12345, "subscribers": [{"userId": "u1"}]})
        )]
    );
    assert_eq!(outcomes(&plan), vec![planned()]);
}

#[test]
fn v31_track_with_stray_empty_traits() {
    let plan = plan_h(vec![json!({
        "type": "track", "userId": "u1", "traits": {}, "properties": {"vip": true},
        "context": {"personas": p()}
    })]);
    // Segment: traitsOrProperties = {} (traits "exists") → UNSUB [{"userId":"u1"}].
    assert_eq!(
        sent(&plan),
        vec![req(
            SUB,
            json!({"listId": 12345, "subscribers": [{"userId": "u1"}]})
        )]
    );
    assert_eq!(outcomes(&plan), vec![planned()]);
}

#[test]
fn v32_empty_email_blocks_fallback() {
    let ev = |uid: Option<&str>| {
        let mut e = identify(uid, json!({"vip": true, "email": ""}), p());
        e["properties"] = json!({"email": "b@x.com"});
        if uid.is_none() {
            e["anonymousId"] = json!("an1");
        }
        e
    };
    // An identify event reads its membership from traits, even when it also has properties.
    let plan = plan_h(vec![ev(Some("u1"))]);
    assert_eq!(
        sent(&plan),
        vec![req(
            SUB,
            json!({"listId": 12345, "subscribers": [{"userId": "u1"}]})
        )]
    );
    assert_eq!(outcomes(&plan), vec![planned()]);

    let plan = plan_h(vec![ev(None)]);
    assert_eq!(sent(&plan), vec![]);
    assert_eq!(outcomes(&plan), vec![rejected(HYBRID_MSG)]);
}

#[test]
fn v33_email_mapped_to_arrays() {
    let mapping = || Some(json!({"email": {"@path": "$.traits.emails"}}));
    let plan = plan_with(
        ProjectType::Hybrid,
        mapping(),
        vec![identify(
            Some("u1"),
            json!({"vip": true, "emails": ["a@x.com"]}),
            p(),
        )],
    );
    assert_eq!(
        sent(&plan),
        vec![req(
            SUB,
            json!({"listId": 12345, "subscribers": [{"email": "a@x.com", "userId": "u1"}]})
        )]
    );
    assert_eq!(outcomes(&plan), vec![planned()]);

    let plan = plan_with(
        ProjectType::Hybrid,
        mapping(),
        vec![identify(
            Some("u1"),
            json!({"vip": true, "emails": ["a@x.com", "b@x.com"]}),
            p(),
        )],
    );
    assert_eq!(sent(&plan), vec![]);
    assert_eq!(
        outcomes(&plan),
        vec![rejected("Email must be a string but it was an array.")]
    );
}

fn lists(text: &str) -> GetListsResponse {
    serde_json::from_str(text).expect("GET /api/lists body parses")
}

#[test]
fn v34_create_audience_list_exists() {
    // Pure part: choosing the list among GET /api/lists; the GET itself and the registry are
    // exercised end to end by the client issue.
    let l =
        lists(r#"{"lists":[{"id":5,"name":"VIP"},{"id":6,"name":"vip"},{"id":7,"name":"vip"}]}"#);
    assert_eq!(choose_list(&l.lists, "vip").map(|x| x.id), Some(6));

    // Only Standard lists count, and among duplicates the oldest (lowest id), whatever the
    // order. Segment: takes the first list named "vip" of any type (here the Dynamic list 4).
    let l = lists(
        r#"{"lists":[{"id":4,"name":"vip","listType":"Dynamic"},{"id":8,"name":"vip","listType":"Standard"},
           {"id":2,"name":"vip","listType":"Suppression"},{"id":6,"name":"vip","listType":"Standard"}]}"#,
    );
    assert_eq!(choose_list(&l.lists, "vip").map(|x| x.id), Some(6));
}

#[test]
fn v35_create_audience_new_list() {
    // Pure part: no list named after the key → one must be created. The POST {"name":"vip"}
    // and the list id it answers (Segment hands it back as the number 777, not a string) are
    // exercised end to end by the client issue.
    let l = lists(r#"{"lists":[]}"#);
    assert_eq!(choose_list(&l.lists, "vip"), None);
    let l =
        lists(r#"{"lists":[{"id":5,"name":"VIP"},{"id":9,"name":"vip","listType":"Dynamic"}]}"#);
    // Segment: reuses the Dynamic list 9.
    assert_eq!(choose_list(&l.lists, "vip"), None);
}

#[test]
fn v36_create_audience_bad_input() {
    // Pure part: the audience settings check. `Missing computation parameters: Key` (no
    // personas or no computation_key) is exercised end to end by the client issue; for an
    // event, a missing key is the schema message below.
    // Segment: `Campaign ID must be a number but it was a string.`
    let err = AudienceSettings::from_json(Some(&json!({"campaignId": "abc"}))).unwrap_err();
    assert!(
        err.contains("Campaign ID") && err.contains("\"abc\""),
        "{err}"
    );
    let ok = AudienceSettings::from_json(Some(&json!({"campaignId": 987}))).expect("valid");
    assert_eq!(ok.campaign_id, Some(987));

    let plan = plan_h(vec![
        json!({"type": "identify", "userId": "u1", "traits": {"vip": true}}),
    ]);
    assert_eq!(sent(&plan), vec![]);
    assert_eq!(
        outcomes(&plan),
        vec![rejected(
            "The root value is missing the required field 'segmentAudienceKey'."
        )]
    );
}

#[test]
fn v37_get_audience() {
    // Pure part: whether the external id names a listed list. The GET and the
    // `Audience with ID 999 not found in Iterable` error are exercised by the client issue.
    let l = lists(r#"{"lists":[{"id":5,"name":"VIP"},{"id":6,"name":"vip"}]}"#);
    assert!(find_by_id(&l.lists, 999).is_none());
    let l = lists(r#"{"lists":[{"id":5,"name":"VIP"},{"id":999,"name":"vip"}]}"#);
    assert_eq!(find_by_id(&l.lists, 999).map(|x| x.id), Some(999));
}

#[test]
fn v38_test_authentication() {
    // Pure part: settings validation before any HTTP, and 401 meaning bad credentials. The
    // `Credentials are invalid: 401 Unauthorized` message is exercised by the client issue.
    let err =
        Settings::from_json(&json!({"apiKey": "K", "iterableProjectType": "email"})).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Iterable Project Type must be one of: \"hybrid\" or \"userId\"."
    );
    let err = Settings::from_json(&json!({"iterableProjectType": "hybrid"})).unwrap_err();
    assert_eq!(
        err.to_string(),
        "The root value is missing the required field 'apiKey'."
    );
    for (settings, want) in [
        (
            json!({"apiKey": "K", "iterableProjectType": "hybrid"}),
            ProjectType::Hybrid,
        ),
        (
            json!({"apiKey": "K", "iterableProjectType": "userId"}),
            ProjectType::UserId,
        ),
        (json!({"apiKey": "K"}), ProjectType::Hybrid),
    ] {
        let s = Settings::from_json(&settings).expect("valid settings");
        assert_eq!(s.project_type, want, "{settings}");
    }
    assert_eq!(
        classify_status(
            401,
            &Envelope::parse(br#"{"msg":"Invalid API key","code":"BadApiKey"}"#)
        ),
        ErrorClass::Authentication
    );
}

#[test]
fn v39_single_event_api_errors() {
    // Pure part: which statuses are retried. Segment retries 500 and drops 400 and 401, as
    // here. The request, its error message and the event's final status are exercised end to
    // end by the client issue.
    let empty = Envelope::parse(b"");
    assert_eq!(classify_status(500, &empty), ErrorClass::Retryable);
    assert_eq!(
        classify_status(
            400,
            &Envelope::parse(br#"{"msg":"bad","code":"BadParams"}"#)
        ),
        ErrorClass::Permanent
    );
    assert_eq!(classify_status(401, &empty), ErrorClass::Authentication);
}

#[test]
fn v40_event_outside_the_subscription() {
    let plan = plan_h(vec![
        json!({"type": "page", "userId": "u1", "properties": {"vip": true}, "context": {"personas": p()}}),
    ]);
    assert_eq!(sent(&plan), vec![]);
    // Segment: batch entry 400 PAYLOAD_VALIDATION_FAILED `Payload is either invalid or does
    // not match the subscription` (single mode: "not subscribed", no error).
    assert_status_with(&plan, 0, EventStatus::Skipped, &["page"]);
}

#[test]
fn v41_whole_traits_as_data_fields() {
    let plan = plan_with(
        ProjectType::Hybrid,
        Some(json!({"dataFields": {"@path": "$.traits"}})),
        vec![v1_event(
            json!(true),
            Some(json!({"updateExistingUsersOnly": false, "globalUnsubscribe": false})),
        )],
    );
    assert_eq!(
        sent(&plan),
        vec![req(
            SUB,
            json!({"listId": 12345, "subscribers": [{"email": "a@x.com", "userId": "u1", "dataFields": {"vip": true, "email": "a@x.com"}}], "updateExistingUsersOnly": false})
        )]
    );
    assert_eq!(outcomes(&plan), vec![planned()]);
}

#[test]
fn v42_audience_settings_only_on_later_event() {
    let plan = plan_h(vec![
        identify(Some("u1"), json!({"vip": true}), p()),
        identify(
            Some("u2"),
            json!({"vip": true}),
            p_plus(json!({"audience_settings": {"updateExistingUsersOnly": true}})),
        ),
    ]);
    // Each event's own settings: one request per option set.
    // Segment: one SUB with both users and no updateExistingUsersOnly (events[0]'s settings).
    assert_eq!(
        sent(&plan),
        vec![
            req(
                SUB,
                json!({"listId": 12345, "subscribers": [{"userId": "u1"}]})
            ),
            req(
                SUB,
                json!({"listId": 12345, "subscribers": [{"userId": "u2"}], "updateExistingUsersOnly": true})
            ),
        ]
    );
    assert_eq!(outcomes(&plan), vec![planned(), planned()]);
}
