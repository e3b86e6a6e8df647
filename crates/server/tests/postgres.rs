//! The service on PostgreSQL, as a sender sees it: Segment-shaped HTTP in, Iterable lists (in
//! the emulator) out, every event's fate in the admin API, and a restart (a new instance on the
//! same database) resuming delivery, with Iterable failing now and then.

mod support;

use std::time::Duration;

use iterable_emulator::Faults;
use serde_json::{Value, json};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_fill_and_empty_lists_on_postgres() {
    let h = Harness::start_postgres(Faults::default(), "").await;
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
    h.wait_list("vip_users", &["ann@example.com", "bob@example.com"])
        .await;
    h.wait_list("churn_risk", &["cid@example.com"]).await;
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
    // A duplicate messageId is acknowledged and changes nothing.
    let (s, _) = h
        .post(
            "/v1/identify",
            &identify("m4", "bob", Some("bob@example.com"), "vip_users", true),
        )
        .await;
    assert_eq!(s, 200);
    let (s, text) = h.get("/v1/status").await;
    assert_eq!(s, 200, "{text}");
    let status: Value = serde_json::from_str(&text).expect("json");
    assert!(text.contains("vip_users"), "{status}");
    let (s, metrics) = h.get("/metrics").await;
    assert_eq!(s, 200);
    assert!(
        metrics.contains("iterable_lists_event_log_rows{destination=\"prod\"} 4"),
        "{metrics}"
    );
    assert_eq!(
        h.list("vip_users"),
        Some(["ann@example.com".to_string()].into())
    );
    assert_eq!(h.lists_named("vip_users"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_converge_and_a_new_instance_resumes_delivery_on_postgres() {
    let faults = Faults {
        error_500: 0.2,
        error_429: 0.1,
        ..Faults::default()
    };
    let mut h = Harness::start_postgres(faults, "").await;
    let batch: Vec<Value> = (0..200)
        .map(|i| {
            identify(
                &format!("f{i}"),
                &format!("u{i}"),
                Some(&format!("u{i}@example.com")),
                if i % 2 == 0 { "even" } else { "odd" },
                i % 7 != 0,
            )
        })
        .collect();
    let (s, _) = h.post("/v1/batch", &json!({ "batch": batch })).await;
    assert_eq!(s, 200);
    h.restart().await;
    let want = |parity: usize| -> Vec<String> {
        (0..200)
            .filter(|i| i % 2 == parity && i % 7 != 0)
            .map(|i| format!("u{i}@example.com"))
            .collect()
    };
    let (even, odd) = (want(0), want(1));
    h.wait_list("even", &even.iter().map(String::as_str).collect::<Vec<_>>())
        .await;
    h.wait_list("odd", &odd.iter().map(String::as_str).collect::<Vec<_>>())
        .await;
    assert_eq!(h.lists_named("even"), 1);
    assert_eq!(h.lists_named("odd"), 1);
    if let Some(s) = h.svc.take() {
        tokio::time::timeout(Duration::from_secs(20), s.shutdown(Duration::from_secs(10)))
            .await
            .expect("shutdown in time");
    }
}
