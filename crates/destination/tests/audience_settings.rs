//! Audience settings never block an event: for each setting and each kind of bad value, an
//! entry and an exit of the same audience are both planned; the bad setting is left out of
//! the one request that would carry it (the other request is as with no setting at all), and
//! it is reported on each event with its value and reason.

use destination::{ActionMapping, EventStatus, Plan, Planner, ProjectType, SettingName};
use serde_json::{Value, json};

const SUB: &str = "/api/lists/subscribe";
const UNSUB: &str = "/api/lists/unsubscribe";

fn event(user: &str, member: bool, settings: &Value) -> Value {
    json!({
        "type": "identify",
        "userId": user,
        "traits": {"vip": member},
        "context": {"personas": {
            "computation_class": "audience",
            "computation_key": "vip",
            "external_audience_id": "12345",
            "audience_settings": settings
        }}
    })
}

/// An entry of u1 and an exit of u2, both with `settings`.
fn plan(settings: &Value) -> Plan {
    let planner = Planner::new(
        ProjectType::Hybrid,
        ActionMapping::new(None).expect("mapping"),
    );
    planner.plan(vec![
        event("u1", true, settings),
        event("u2", false, settings),
    ])
}

fn bodies(plan: &Plan) -> Vec<(&'static str, Value)> {
    plan.requests
        .iter()
        .map(|r| {
            let body = serde_json::from_slice(&r.body).expect("JSON body");
            (r.op.path(), body)
        })
        .collect()
}

#[test]
fn a_bad_setting_only_leaves_its_own_request_without_it() {
    let sub = json!({"listId": 12345, "subscribers": [{"userId": "u1"}]});
    let unsub = json!({"listId": 12345, "subscribers": [{"userId": "u2"}]});
    let number = "must be a whole positive number but it was";
    let flag = "must be a boolean but it was";
    let big: Value = serde_json::from_str("1e21").expect("number");
    // (settings, the setting at fault, its value as reported, the reason)
    let cases: Vec<(Value, SettingName, String, String)> = vec![
        // campaignId is only used by unsubscribe: the entry is as without it.
        (
            json!({"campaignId": 0}),
            SettingName::CampaignId,
            "0".into(),
            format!("{number} a number"),
        ),
        (
            json!({"campaignId": -3}),
            SettingName::CampaignId,
            "-3".into(),
            format!("{number} a number"),
        ),
        (
            json!({"campaignId": 1.5}),
            SettingName::CampaignId,
            "1.5".into(),
            format!("{number} a number"),
        ),
        (
            json!({"campaignId": big}),
            SettingName::CampaignId,
            big.to_string(),
            format!("{number} a number"),
        ),
        (
            json!({"campaignId": "abc"}),
            SettingName::CampaignId,
            "\"abc\"".into(),
            format!("{number} a string"),
        ),
        (
            json!({"campaignId": "-3"}),
            SettingName::CampaignId,
            "\"-3\"".into(),
            format!("{number} a string"),
        ),
        (
            json!({"campaignId": true}),
            SettingName::CampaignId,
            "true".into(),
            format!("{number} a boolean"),
        ),
        (
            json!({"campaignId": [1]}),
            SettingName::CampaignId,
            "[1]".into(),
            format!("{number} an array"),
        ),
        // updateExistingUsersOnly is only used by subscribe.
        (
            json!({"updateExistingUsersOnly": "yes"}),
            SettingName::UpdateExistingUsersOnly,
            "\"yes\"".into(),
            format!("{flag} a string"),
        ),
        (
            json!({"updateExistingUsersOnly": 1}),
            SettingName::UpdateExistingUsersOnly,
            "1".into(),
            format!("{flag} a number"),
        ),
        (
            json!({"updateExistingUsersOnly": {}}),
            SettingName::UpdateExistingUsersOnly,
            "{}".into(),
            format!("{flag} an object"),
        ),
        // globalUnsubscribe (channelUnsubscribe) is only used by unsubscribe.
        (
            json!({"globalUnsubscribe": "yes"}),
            SettingName::GlobalUnsubscribe,
            "\"yes\"".into(),
            format!("{flag} a string"),
        ),
        (
            json!({"globalUnsubscribe": 0}),
            SettingName::GlobalUnsubscribe,
            "0".into(),
            format!("{flag} a number"),
        ),
        // Settings that are not an object at all.
        (
            json!("x"),
            SettingName::SettingsObject,
            "\"x\"".into(),
            "must be an object but it was a string".into(),
        ),
        (
            json!([true]),
            SettingName::SettingsObject,
            "[true]".into(),
            "must be an object but it was an array".into(),
        ),
    ];
    for (settings, setting, value, reason) in cases {
        let p = plan(&settings);
        assert_eq!(
            bodies(&p),
            vec![(SUB, sub.clone()), (UNSUB, unsub.clone())],
            "{settings}"
        );
        for o in &p.events {
            assert_eq!(o.status, EventStatus::Planned, "{settings}");
            assert_eq!(o.ignored_settings.len(), 1, "{settings}");
            let ig = &o.ignored_settings[0];
            assert_eq!(
                (ig.setting, ig.value.as_str(), ig.reason.as_str()),
                (setting, value.as_str(), reason.as_str()),
                "{settings}"
            );
        }
    }
}

#[test]
fn good_settings_beside_a_bad_one_still_apply() {
    let p = plan(
        &json!({"updateExistingUsersOnly": true, "globalUnsubscribe": true, "campaignId": 1.5}),
    );
    assert_eq!(
        bodies(&p),
        vec![
            (
                SUB,
                json!({"listId": 12345, "subscribers": [{"userId": "u1"}], "updateExistingUsersOnly": true})
            ),
            (
                UNSUB,
                json!({"listId": 12345, "subscribers": [{"userId": "u2"}], "channelUnsubscribe": true})
            ),
        ]
    );
    let p = plan(
        &json!({"updateExistingUsersOnly": "yes", "globalUnsubscribe": false, "campaignId": 987}),
    );
    assert_eq!(
        bodies(&p),
        vec![
            (
                SUB,
                json!({"listId": 12345, "subscribers": [{"userId": "u1"}]})
            ),
            (
                UNSUB,
                json!({"listId": 12345, "subscribers": [{"userId": "u2"}], "campaignId": 987, "channelUnsubscribe": false})
            ),
        ]
    );
    // The plan's JSON shows what was ignored, and only where something was.
    let out = p.to_json();
    assert_eq!(
        out["events"][0]["ignored_settings"],
        json!([{"setting": "updateExistingUsersOnly", "value": "\"yes\"", "reason": "must be a boolean but it was a string"}])
    );
    let clean = plan(&json!({"campaignId": 987})).to_json();
    assert!(
        clean["events"][0].get("ignored_settings").is_none(),
        "{clean}"
    );
}
