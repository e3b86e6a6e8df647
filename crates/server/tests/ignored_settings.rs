//! Audience settings never block an entry, end to end: an event whose audience settings hold
//! an unusable value (campaignId 1.5, -3, updateExistingUsersOnly "yes") is delivered, the
//! request that would carry the setting goes out without it, and the ignored setting shows in
//! `GET /v1/events/{id}`, in `events show`'s text and in the metrics.

mod support;

use iterable_emulator::LogQuery;
use serde_json::{Value, json};
use support::*;
use sync::SqliteStore;

/// `identify` with `context.personas.audience_settings` set.
fn with_settings(mut event: Value, settings: Value) -> Value {
    event["context"]["personas"]["audience_settings"] = settings;
    event
}

/// The bodies the emulator received on `path`, as JSON.
fn bodies(h: &Harness, path: &str) -> Vec<Value> {
    h.emu
        .requests(&LogQuery {
            path: Some(path.into()),
            ..LogQuery::default()
        })
        .into_iter()
        .map(|r| serde_json::from_str(&r.body).expect("JSON body"))
        .collect()
}

fn metric(text: &str, setting: &str) -> Option<f64> {
    let prefix = format!(
        "iterable_lists_audience_settings_ignored_total{{destination=\"prod\",setting=\"{setting}\"}} "
    );
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_with_a_bad_campaign_id_is_delivered_and_shows_the_ignored_setting() {
    let h = Harness::start("").await;
    let ann = with_settings(
        identify("s1", "ann", Some("ann@example.com"), "vip", true),
        json!({"campaignId": 1.5, "updateExistingUsersOnly": false}),
    );
    let bob = identify("s2", "bob", Some("bob@example.com"), "vip", true);
    let (s, body) = h.post("/v1/batch", &json!({"batch": [ann, bob]})).await;
    assert_eq!((s, body), (200, json!({"success": true})));
    h.wait_list("vip", &["ann@example.com", "bob@example.com"])
        .await;

    let ev = h.wait_final("s1").await;
    assert_eq!(ev["audiences"][0]["status"], "delivered", "{ev}");
    assert_eq!(
        ev["ignoredSettings"],
        json!([{
            "setting": "campaignId",
            "value": "1.5",
            "reason": "must be a whole positive number but it was a number"
        }]),
        "{ev}"
    );
    let clean = h.wait_final("s2").await;
    assert_eq!(clean["ignoredSettings"], json!([]), "{clean}");
    // The good setting beside the bad one still applied.
    let subs = bodies(&h, "/api/lists/subscribe");
    assert!(
        subs.iter()
            .any(|b| b["updateExistingUsersOnly"] == json!(false)
                && b["subscribers"][0]["email"] == "ann@example.com"),
        "{subs:?}"
    );

    // An exit whose unsubscribe would carry the bad values goes out without them.
    let exit = with_settings(
        identify("s3", "bob", Some("bob@example.com"), "vip", false),
        json!({"campaignId": -3, "globalUnsubscribe": "yes"}),
    );
    let (s, _) = h.post("/v1/identify", &exit).await;
    assert_eq!(s, 200);
    h.wait_list("vip", &["ann@example.com"]).await;
    let ev = h.wait_final("s3").await;
    assert_eq!(ev["audiences"][0]["status"], "delivered", "{ev}");
    let settings: Vec<&str> = ev["ignoredSettings"]
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|i| i["setting"].as_str())
        .collect();
    assert_eq!(settings, ["campaignId", "globalUnsubscribe"], "{ev}");
    let unsubs = bodies(&h, "/api/lists/unsubscribe");
    assert_eq!(unsubs.len(), 1, "{unsubs:?}");
    assert_eq!(
        unsubs[0]["subscribers"],
        json!([{"email": "bob@example.com", "userId": "bob"}])
    );
    assert!(
        unsubs[0].get("campaignId").is_none() && unsubs[0].get("channelUnsubscribe").is_none(),
        "{unsubs:?}"
    );

    // A repeat of an event is ignored, and its settings are not counted again.
    let (s, _) = h
        .post(
            "/v1/batch",
            &json!({"batch": [with_settings(
                identify("s1", "ann", Some("ann@example.com"), "vip", true),
                json!({"campaignId": 1.5}),
            )]}),
        )
        .await;
    assert_eq!(s, 200);
    let (_, text) = h.get("/metrics").await;
    assert_eq!(metric(&text, "campaignId"), Some(2.0), "{text}");
    assert_eq!(metric(&text, "globalUnsubscribe"), Some(1.0), "{text}");
    assert_eq!(
        metric(&text, "updateExistingUsersOnly"),
        Some(0.0),
        "{text}"
    );

    // `iterable-lists events show` prints it (read from the same store).
    let store = SqliteStore::open(h.dir.join("db.sqlite")).expect("store");
    let record = store
        .event_status("prod", "s1")
        .expect("read")
        .expect("logged");
    let text = server::status::event_text(&record, 0);
    assert!(
        text.contains("audience setting campaignId = 1.5 ignored: must be a whole positive number"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ignored_setting_falls_back_to_the_configured_one() {
    let h = Harness::start("[destination.audience_defaults]\ncampaign_id = 55").await;
    let (s, _) = h
        .post(
            "/v1/batch",
            &json!({"batch": [identify("f1", "ann", Some("ann@example.com"), "vip", true)]}),
        )
        .await;
    assert_eq!(s, 200);
    h.wait_list("vip", &["ann@example.com"]).await;
    let exit = with_settings(
        identify("f2", "ann", Some("ann@example.com"), "vip", false),
        json!({"campaignId": 1e21, "globalUnsubscribe": true}),
    );
    let (s, _) = h.post("/v1/identify", &exit).await;
    assert_eq!(s, 200);
    h.wait_list("vip", &[]).await;
    let ev = h.wait_final("f2").await;
    assert_eq!(ev["audiences"][0]["status"], "delivered", "{ev}");
    assert_eq!(ev["ignoredSettings"][0]["setting"], "campaignId", "{ev}");
    let unsubs = bodies(&h, "/api/lists/unsubscribe");
    assert_eq!(unsubs.len(), 1, "{unsubs:?}");
    assert_eq!(unsubs[0]["campaignId"], json!(55), "{unsubs:?}");
    assert_eq!(unsubs[0]["channelUnsubscribe"], json!(true), "{unsubs:?}");
}
