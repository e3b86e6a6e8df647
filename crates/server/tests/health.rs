//! What the service says while Iterable fails, tried as a user would: events show `pending`
//! with the attempt count and the last error while the client retries, `/v1/status` counts
//! them as retrying, gives the state as a word with its reason and since when (paused by a
//! refused key, degraded after a minute without Iterable), and `/metrics` has the gauges.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use iterable_emulator::Faults;
use serde_json::{Value, json};
use server::{Config, RunningService};
use support::*;

fn failing() -> Faults {
    Faults {
        error_500: 1.0,
        ..Faults::default()
    }
}

async fn get_json(h: &reqwest::Client, url: &str) -> Value {
    let r = h.get(url).send().await.expect("send");
    assert_eq!(r.status().as_u16(), 200, "{url}");
    let text = r.text().await.expect("body");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url}: {e}: {text}"))
}

/// Polls `url` (up to 30 s) until `done` holds for its JSON; returns that JSON.
async fn wait_json(
    h: &reqwest::Client,
    url: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = get_json(h, url).await;
        if done(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "never {what}: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn metric(text: &str, line_start: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_call_failing_events_show_pending_with_attempts_and_count_as_retrying() {
    let h = Harness::start_with(failing(), "").await;
    let (s, _) = h
        .post(
            "/v1/batch",
            &json!({"batch": [identify("m1", "ann", Some("ann@example.com"), "vip", true)]}),
        )
        .await;
    assert_eq!(s, 200);
    // The client retries (up to 10 tries, for about a minute): meanwhile the event says so.
    let ev = wait_json(
        &h.http,
        &h.url("/v1/events/m1"),
        "pending with an attempt",
        |v| {
            v["events"][0]["audiences"][0]["attempts"]
                .as_u64()
                .is_some_and(|a| a >= 1)
        },
    )
    .await;
    let a = &ev["events"][0]["audiences"][0];
    assert_eq!(a["status"], "pending", "{ev}");
    let reason = a["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("HTTP 500"), "{ev}");
    let status = wait_json(&h.http, &h.url("/v1/status"), "retrying", |v| {
        v["destinations"][0]["audiences"][0]["retrying"]
            .as_u64()
            .is_some_and(|n| n > 0)
    })
    .await;
    let d = &status["destinations"][0];
    assert_eq!(
        d["state"], "running",
        "failing for less than a minute: {status}"
    );
    assert_eq!(d["events"]["pending"], 1, "{status}");
    assert_eq!(d["audiences"][0]["pending"], 1, "{status}");
    let (_, metrics) = h.get("/metrics").await;
    assert_eq!(
        metric(
            &metrics,
            "iterable_lists_queue_retrying{destination=\"prod\",audience=\"vip\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            "iterable_lists_destination_degraded{destination=\"prod\"}"
        ),
        Some(0.0)
    );
}

/// Epoch milliseconds of the real clock plus an offset the test moves.
fn test_clock() -> (Arc<AtomicI64>, sync::EpochClock) {
    let offset = Arc::new(AtomicI64::new(0));
    let o = offset.clone();
    let clock: sync::EpochClock = Arc::new(move || {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        now + o.load(Ordering::SeqCst)
    });
    (offset, clock)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iterable_unreachable_for_a_minute_is_degraded_in_status_and_metrics_until_it_answers() {
    let emu = emulator(failing()).await;
    let dir = temp_dir("degraded");
    let text = config_text(&dir.join("db.sqlite"), &emu.url(), "");
    let (offset, clock) = test_clock();
    let cfg = Config::parse(&text, &|_| None).expect("config");
    let svc = RunningService::start_with_clock(cfg, clock)
        .await
        .expect("service");
    let http = http();
    let url = |p: &str| format!("{}{p}", svc.url());
    let r = http
        .post(url("/v1/batch"))
        .basic_auth(WRITE_KEY, Some(""))
        .body(
            json!({"batch": [identify("m1", "ann", Some("ann@example.com"), "vip", true)]})
                .to_string(),
        )
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 200);
    wait_json(&http, &url("/v1/events/m1"), "a failed try", |v| {
        v["events"][0]["audiences"][0]["attempts"]
            .as_u64()
            .is_some_and(|a| a >= 1)
    })
    .await;
    // A minute passes with Iterable still failing.
    offset.store(61_000, Ordering::SeqCst);
    let status = wait_json(&http, &url("/v1/status"), "degraded", |v| {
        v["destinations"][0]["state"] == "degraded"
    })
    .await;
    let d = &status["destinations"][0];
    assert!(
        d["reason"].as_str().is_some_and(|r| r.contains("HTTP 500")),
        "{status}"
    );
    let since = d["since"].as_str().unwrap_or_default();
    assert!(
        since.ends_with('Z') && since.contains('T'),
        "ISO 8601: {status}"
    );
    assert!(d["sinceMs"].as_i64().is_some(), "{status}");
    let metrics = http
        .get(url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert_eq!(
        metric(
            &metrics,
            "iterable_lists_destination_degraded{destination=\"prod\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
    // Iterable answers again: the next try of the client succeeds, and the state clears.
    emu.set_faults(Faults::default()).expect("faults");
    let status = wait_json(&http, &url("/v1/status"), "running again", |v| {
        v["destinations"][0]["state"] == "running"
    })
    .await;
    assert!(status["destinations"][0]["reason"].is_null(), "{status}");
    let ev = wait_json(&http, &url("/v1/events/m1"), "delivered", |v| {
        v["events"][0]["audiences"][0]["status"] == "delivered"
    })
    .await;
    assert!(ev["events"][0]["audiences"][0]["attempts"].as_u64() >= Some(1));
    svc.shutdown(Duration::from_secs(10)).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_key_shows_paused_with_the_reason_as_separate_fields() {
    let emu = emulator(Faults::default()).await;
    let dir = temp_dir("paused");
    let text = config_text(&dir.join("db.sqlite"), &emu.url(), "")
        .replace(KEY, "ffffffffffffffffffffffffffffffff");
    let cfg = Config::parse(&text, &|_| None).expect("config");
    let svc = RunningService::start(cfg).await.expect("service");
    let http = http();
    let url = |p: &str| format!("{}{p}", svc.url());
    let r = http
        .post(url("/v1/batch"))
        .basic_auth(WRITE_KEY, Some(""))
        .body(
            json!({"batch": [identify("m1", "ann", Some("ann@example.com"), "vip", true)]})
                .to_string(),
        )
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 200);
    let status = wait_json(&http, &url("/v1/status"), "paused", |v| {
        v["destinations"][0]["state"] == "paused"
    })
    .await;
    let d = &status["destinations"][0];
    let reason = d["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("BadApiKey"), "{status}");
    assert!(!reason.contains("ffffffff"), "no key: {status}");
    assert!(
        d["since"].as_str().is_some_and(|s| s.ends_with('Z')),
        "{status}"
    );
    assert_eq!(
        d["audiences"][0]["retrying"], 0,
        "a refused key burns no tries"
    );
    svc.shutdown(Duration::from_secs(10)).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_ready_while_the_store_writes() {
    let h = Harness::start("").await;
    let (s, body) = h.get("/readyz").await;
    assert_eq!((s, body.as_str()), (200, "ready\n"));
    let (_, metrics) = h.get("/metrics").await;
    assert_eq!(
        metric(&metrics, "iterable_lists_store_write_failing "),
        Some(0.0),
        "{metrics}"
    );
}
