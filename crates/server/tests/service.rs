//! The service as a sender sees it: Segment-shaped HTTP in, Iterable lists (in the emulator)
//! out, with every event's fate visible in the admin API, status and metrics.

mod support;

use std::io::Write as _;
use std::time::Duration;

use iterable_emulator::Faults;
use serde_json::{Value, json};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_identify_and_track_fill_and_empty_lists() {
    let h = Harness::start("").await;
    let (s, body) = h
        .post(
            "/v1/batch",
            &json!({"batch": [
                identify("m1", "ann", Some("Ann@Example.com"), "vip_users", true),
                identify("m2", "bob", Some("bob@example.com"), "vip_users", true),
                track("m3", "cid", "cid@example.com", "churn_risk", true, "2026-11-29T10:00:00Z"),
            ]}),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body, json!({"success": true}));
    h.wait_list("vip_users", &["ann@example.com", "bob@example.com"])
        .await;
    h.wait_list("churn_risk", &["cid@example.com"]).await;

    // Single-event endpoints; bob leaves.
    let (s, _) = h
        .post(
            "/v1/identify",
            &identify("m4", "bob", Some("bob@example.com"), "vip_users", false),
        )
        .await;
    assert_eq!(s, 200);
    h.wait_list("vip_users", &["ann@example.com"]).await;
    let ev = h.wait_final("m4").await;
    assert_eq!(ev["audiences"][0]["status"], "delivered", "{ev}");
    assert_eq!(h.lists_named("vip_users"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_then_enter_in_one_batch_leaves_the_user_on_the_list() {
    let h = Harness::start("").await;
    let (s, _) = h
        .post(
            "/v1/batch",
            &json!({"batch": [
                track("e2", "dan", "dan@example.com", "vip", true, "2026-11-29T10:00:02Z"),
                track("e1", "dan", "dan@example.com", "vip", false, "2026-11-29T10:00:01Z"),
            ]}),
        )
        .await;
    assert_eq!(s, 200);
    h.wait_list("vip", &["dan@example.com"]).await;
    let older = h.wait_final("e1").await;
    assert!(
        matches!(
            older["audiences"][0]["status"].as_str(),
            Some("skipped" | "superseded")
        ),
        "{older}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_4xx_and_store_nothing() {
    let h = Harness::start("webhook_secret = \"s3cret\"").await;
    let url = h.url("/v1/batch");
    let good = json!({"batch": [identify("x1", "u", None, "vip", true)]}).to_string();
    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
        (
            "malformed JSON",
            h.http
                .post(&url)
                .basic_auth(WRITE_KEY, Some(""))
                .body("{\"batch\": ["),
            400,
            "JSON",
        ),
        (
            "wrong shape",
            h.http
                .post(&url)
                .basic_auth(WRITE_KEY, Some(""))
                .body(json!({"batch": {"type": "identify"}}).to_string()),
            400,
            "batch",
        ),
        (
            "oversize",
            h.http
                .post(&url)
                .basic_auth(WRITE_KEY, Some(""))
                .body(format!(
                    "{{\"batch\":[],\"pad\":\"{}\"}}",
                    "x".repeat(600 * 1024)
                )),
            400,
            "limit",
        ),
        (
            "missing write key",
            h.http.post(&url).body(good.clone()),
            401,
            "write key",
        ),
        (
            "wrong write key",
            h.http
                .post(&url)
                .basic_auth("wk_nope", Some(""))
                .body(good.clone()),
            401,
            "write key",
        ),
        (
            "unknown destination",
            h.http
                .post(h.url("/v1/webhook/nope"))
                .body(json!(identify("x2", "u", None, "vip", true)).to_string()),
            401,
            "not accepted",
        ),
        (
            "bad signature",
            h.http
                .post(h.url("/v1/webhook/prod"))
                .header("X-Signature", "00ff")
                .body(json!(identify("x3", "u", None, "vip", true)).to_string()),
            401,
            "X-Signature",
        ),
    ];
    for (what, req, status, needle) in cases {
        let r = req.send().await.expect(what);
        let got = r.status().as_u16();
        let text = r.text().await.expect("body");
        assert_eq!(got, status, "{what}: {text}");
        assert!(text.contains(needle), "{what}: {text:?} lacks {needle:?}");
        assert!(
            !text.contains("wk_nope") && !text.contains(WRITE_KEY),
            "{what}: {text}"
        );
    }
    // Nothing stored, and the server is still up.
    let (s, status) = h.get("/v1/status").await;
    assert_eq!(s, 200);
    let status: Value = serde_json::from_str(&status).expect("json");
    let events = &status["destinations"][0]["events"];
    let total: u64 = events
        .as_object()
        .expect("counts")
        .values()
        .filter_map(Value::as_u64)
        .sum();
    assert_eq!(total, 0, "{status}");
    assert_eq!(h.get("/healthz").await.0, 200);

    // A body left unread (refused by its declared size, or sent where none is read) ends the
    // connection, and the reply says so: a client must not send its next request on it.
    let unread = [
        (
            h.http
                .post(&url)
                .basic_auth(WRITE_KEY, Some(""))
                .body("x".repeat(600 * 1024)),
            400,
        ),
        (h.http.post(h.url("/nowhere")).body(good.clone()), 404),
        (h.http.put(&url).body(good.clone()), 405),
    ];
    for (req, status) in unread {
        let r = req.send().await.expect("answered");
        assert_eq!(r.status().as_u16(), status);
        assert_eq!(
            r.headers().get("connection").and_then(|v| v.to_str().ok()),
            Some("close"),
            "{status}"
        );
    }
    // A body read to the end keeps the connection.
    let r = h
        .http
        .post(&url)
        .basic_auth(WRITE_KEY, Some(""))
        .body("{\"batch\": [")
        .send()
        .await
        .expect("answered");
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(r.headers().get("connection"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_events_do_not_fail_the_batch() {
    let h = Harness::start("").await;
    let (s, body) = h
        .post(
            "/v1/batch",
            &json!({"batch": [
                identify("g1", "ann", Some("ann@example.com"), "vip", true),
                // no identity at all
                {"type": "identify", "messageId": "b1", "anonymousId": "a", "traits": {"vip": true},
                 "context": {"personas": {"computation_key": "vip"}}},
                // not an audience event
                {"type": "page", "messageId": "b2", "userId": "ann"},
                // not an object
                "oops",
                // membership of the wrong type
                {"type": "identify", "messageId": "b3", "userId": "zed", "traits": {"vip": 7},
                 "context": {"personas": {"computation_key": "vip"}}},
            ]}),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    h.wait_list("vip", &["ann@example.com"]).await;
    for (id, status, needle) in [
        ("b1", "rejected", "User ID or Email"),
        ("b2", "skipped", "page"),
        ("b3", "rejected", "vip"),
    ] {
        let (s, v) = h.event(id).await;
        assert_eq!(s, 200, "{id}: {v}");
        let a = &v["events"][0]["audiences"][0];
        assert_eq!(a["status"], status, "{id}: {v}");
        assert!(
            a["reason"].as_str().is_some_and(|r| r.contains(needle)),
            "{id}: {v}"
        );
    }
    let (_, metrics) = h.get("/metrics").await;
    assert!(metrics.contains("prod"), "{metrics}");
}

/// What the SDKs send that serde_json alone refuses or loses: a lone surrogate (a name cut
/// inside an emoji) and numeric messageIds past 2^64, which used to collapse into one `1e+30`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lone_surrogates_and_long_numeric_ids_keep_every_event() {
    let h =
        Harness::start(r#"mapping = '{"dataFields": {"name": {"@path": "$.traits.name"}}}'"#).await;
    let mut ann = identify("", "ann", Some("ann@example.com"), "vip", true);
    ann["traits"]["name"] = json!("Ann NAME");
    let mut bob = identify("", "bob", Some("bob@example.com"), "vip", true);
    bob["traits"]["name"] = json!("Bob NAME");
    let body = json!({"batch": [ann, bob]})
        .to_string()
        .replacen(
            r#""messageId":"""#,
            r#""messageId":1000000000000000000000000000001"#,
            1,
        )
        .replacen(
            r#""messageId":"""#,
            r#""messageId":1000000000000000000000000000002"#,
            1,
        )
        .replacen("Ann NAME", r"Ann \ud83d", 1)
        .replacen("Bob NAME", r"Bob \\ud83d \ud83d\ude00", 1);
    let r = h
        .http
        .post(h.url("/v1/batch"))
        .basic_auth(WRITE_KEY, Some(""))
        .header("Content-Type", "application/json")
        .body(body.clone())
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 200, "{body}");
    h.wait_list("vip", &["ann@example.com", "bob@example.com"])
        .await;
    for id in [
        "1000000000000000000000000000001",
        "1000000000000000000000000000002",
    ] {
        let ev = h.wait_final(id).await;
        assert_eq!(ev["audiences"][0]["status"], "delivered", "{id}: {ev}");
    }
    for (user, name) in [("ann", "Ann \u{fffd}"), ("bob", "Bob \\ud83d \u{1f600}")] {
        let url = format!("{}/api/users/byUserId?userId={user}", h.emu.url());
        let r = h.http.get(url).header("Api-Key", KEY).send().await;
        let text = r.expect("emulator").text().await.expect("body");
        let v: Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(v["user"]["dataFields"]["name"], name, "{v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_gzip_and_body_write_key() {
    let h = Harness::start("").await;
    let batch = json!({"writeKey": WRITE_KEY, "batch": [identify("d1", "ann", Some("ann@example.com"), "vip", true)]});
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(batch.to_string().as_bytes()).expect("gzip");
    let body = gz.finish().expect("gzip");
    for _ in 0..2 {
        let r = h
            .http
            .post(h.url("/v1/batch"))
            .header("Content-Encoding", "gzip")
            .header("Content-Type", "application/json")
            .body(body.clone())
            .send()
            .await
            .expect("send");
        assert_eq!(
            r.status().as_u16(),
            200,
            "{}",
            r.text().await.unwrap_or_default()
        );
    }
    h.wait_list("vip", &["ann@example.com"]).await;
    let (_, v) = h.event("d1").await;
    assert_eq!(v["events"].as_array().map(Vec::len), Some(1), "{v}");
    let (_, metrics) = h.get("/metrics").await;
    assert!(metrics.contains("duplicate"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_with_a_valid_signature_is_accepted() {
    let h = Harness::start("webhook_secret = \"s3cret\"").await;
    let body = json!([
        identify("w1", "ann", Some("ann@example.com"), "vip", true),
        identify("w2", "bob", Some("bob@example.com"), "vip", true),
    ])
    .to_string();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, b"s3cret");
    let sig: String = ring::hmac::sign(&key, body.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let r = h
        .http
        .post(h.url("/v1/webhook/prod"))
        .header("X-Signature", sig)
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 200);
    h.wait_list("vip", &["ann@example.com", "bob@example.com"])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iterable_rejections_are_reported_with_iterables_reason() {
    let h = Harness::start("").await;
    let (s, _) = h
        .post(
            "/v1/batch",
            &json!({"batch": [
                identify("r1", "ann", Some("ann@example.com"), "vip", true),
                // Iterable refuses this address (invalidEmails); the userId is valid, so the
                // planner sends both and Iterable decides.
                identify("r2", "bad", Some("bad@"), "vip", true),
            ]}),
        )
        .await;
    assert_eq!(s, 200);
    let ok = h.wait_final("r1").await;
    assert_eq!(ok["audiences"][0]["status"], "delivered", "{ok}");
    let bad = h.wait_final("r2").await;
    assert_eq!(bad["audiences"][0]["status"], "rejected", "{bad}");
    assert!(
        bad["audiences"][0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("invalidEmails")),
        "{bad}"
    );
    let (_, metrics) = h.get("/metrics").await;
    assert!(metrics.contains("rejected"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_converge_and_a_restart_resumes_delivery() {
    let faults = Faults {
        error_500: 0.2,
        error_429: 0.1,
        ..Faults::default()
    };
    let mut h = Harness::start_with(faults, "").await;
    let batch: Vec<Value> = (0..200)
        .map(|i| {
            identify(
                &format!("f{i}"),
                &format!("u{i}"),
                Some(&format!("u{i}@example.com")),
                if i % 2 == 0 { "even" } else { "odd" },
                true,
            )
        })
        .collect();
    let (s, _) = h.post("/v1/batch", &json!({ "batch": batch })).await;
    assert_eq!(s, 200);
    h.restart().await;
    let even: Vec<String> = (0..200)
        .step_by(2)
        .map(|i| format!("u{i}@example.com"))
        .collect();
    let even: Vec<&str> = even.iter().map(String::as_str).collect();
    let odd: Vec<String> = (1..200)
        .step_by(2)
        .map(|i| format!("u{i}@example.com"))
        .collect();
    let odd: Vec<&str> = odd.iter().map(String::as_str).collect();
    h.wait_list("even", &even).await;
    h.wait_list("odd", &odd).await;
    assert_eq!(h.lists_named("even"), 1);
    assert_eq!(h.lists_named("odd"), 1);
    // Graceful shutdown returns.
    if let Some(s) = h.svc.take() {
        tokio::time::timeout(Duration::from_secs(20), s.shutdown(Duration::from_secs(10)))
            .await
            .expect("shutdown in time");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_without_an_id_or_a_time_are_each_a_change() {
    // A hand-written sender: no messageId, no timestamp. Add, remove, add again, each in its
    // own request: the third is a new change, not a repeat of the first.
    let h = Harness::start("").await;
    for member in [true, false, true] {
        let mut event = identify("unused", "eve", Some("eve@example.com"), "vip", member);
        let map = event.as_object_mut().expect("an object");
        map.remove("messageId");
        map.remove("timestamp");
        let (s, body) = h.post("/v1/identify", &event).await;
        assert_eq!(s, 200, "{body}");
        let expected: &[&str] = if member { &["eve@example.com"] } else { &[] };
        h.wait_list("vip", expected).await;
    }
    assert_eq!(h.lists_named("vip"), 1);
}
