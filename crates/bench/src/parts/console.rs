//! (console) The operator console's pages with a big store: 1,000,000 events over 1,000
//! audiences (1,000 users each; every 50th user's email is one Iterable refuses, so each
//! audience has rejected users) are sent through the tracking API in batches of 500 and
//! delivered to the emulator; then each page is fetched `fetches` times, signed in, one at a
//! time. Measured per page: the time to the last byte (p50, p99) and its size. Targets: under
//! 200 ms and under 200 KB.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};

use crate::emulator::emulator;
use crate::harness::{ADMIN, BATCH, KEY};
use crate::load::send_all;
use crate::report::Report;
use crate::service::Service;

/// Every 50th user of an audience has an email Iterable refuses.
const REJECT_EVERY: usize = 50;

/// One event: user `user` enters `audience` (the `a`-th).
fn event(i: usize, a: usize, user: usize) -> Value {
    let audience = format!("console_{a:04}");
    let email = if user % REJECT_EVERY == 0 {
        format!("u{user}@example.c0m")
    } else {
        format!("u{user}@example.com")
    };
    json!({
        "type": "identify", "messageId": format!("c{i}"), "userId": format!("u{user}"),
        "timestamp": "2026-11-29T10:00:00.000Z",
        "traits": {"email": email, &audience: true},
        "context": {"personas": {"computation_key": &audience, "computation_class": "audience"}}
    })
}

/// `events` events over `audiences` audiences, in tracking API batch bodies.
fn bodies(events: usize, audiences: usize) -> Vec<String> {
    (0..events.div_ceil(BATCH))
        .map(|b| {
            let batch: Vec<Value> = (b * BATCH..((b + 1) * BATCH).min(events))
                .map(|i| event(i, i % audiences, i / audiences))
                .collect();
            json!({"batch": batch}).to_string()
        })
        .collect()
}

/// Waits until nothing is pending in the service (every change delivered or rejected).
async fn wait_settled(http: &reqwest::Client, url: &str, limit: Duration) -> Result<()> {
    let start = Instant::now();
    loop {
        let body = http
            .get(format!("{url}/v1/status"))
            .bearer_auth(ADMIN)
            .send()
            .await?
            .bytes()
            .await?;
        let v: Value = serde_json::from_slice(&body)?;
        let pending: Option<u64> = v["destinations"][0]["audiences"]
            .as_array()
            .map(|a| a.iter().filter_map(|x| x["pending"].as_u64()).sum());
        let audiences = v["destinations"][0]["audiences"]
            .as_array()
            .map_or(0, Vec::len);
        if pending == Some(0) && audiences > 0 {
            return Ok(());
        }
        if start.elapsed() > limit {
            bail!("still {pending:?} pending after {} s", limit.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Signs in to the console; the session cookie.
async fn sign_in(http: &reqwest::Client, url: &str) -> Result<String> {
    let r = http
        .post(format!("{url}/console/signin"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={ADMIN}"))
        .send()
        .await?;
    let cookie = r
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .ok_or_else(|| anyhow!("sign-in answered {} without a cookie", r.status()))?;
    Ok(cookie.to_string())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub async fn run(
    setup: &crate::harness::Setup,
    events: usize,
    audiences: usize,
    fetches: usize,
    report: &mut Report,
) -> Result<()> {
    let emu = emulator(None).await?;
    let svc = Service::start(setup, "console", &emu.url(), KEY, "linger_ms = 50")?;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()?;
    let loaded = Instant::now();
    send_all(&svc.url, Arc::new(bodies(events, audiences))).await?;
    wait_settled(&http, &svc.url, Duration::from_secs(3600)).await?;
    let load_s = loaded.elapsed().as_secs_f64();
    eprintln!("(console) {events} events stored and delivered in {load_s:.0} s");
    let cookie = sign_in(&http, &svc.url).await?;

    let mid = audiences / 2;
    let aud = format!("console_{mid:04}");
    // A user in every audience whose email Iterable took.
    let user = 501;
    let pages: Vec<(&str, String)> = vec![
        ("overview", "/console".into()),
        ("destination", "/console/destinations/bench".into()),
        (
            "destination, a later page",
            "/console/destinations/bench?after=console_0499".into(),
        ),
        (
            "audience",
            format!("/console/destinations/bench/audiences/{aud}"),
        ),
        (
            "audience, rejected filtered",
            format!("/console/destinations/bench/audiences/{aud}?filter=c0m"),
        ),
        (
            "lookup, user by email",
            format!("/console/lookup?email=u{user}@example.com"),
        ),
        (
            "lookup, user by userId",
            format!("/console/lookup?userId=u{user}"),
        ),
        (
            "lookup, event",
            format!("/console/lookup?messageId=c{}", user * audiences + mid),
        ),
    ];
    let mut details = serde_json::Map::new();
    for (name, path) in &pages {
        let mut times = Vec::with_capacity(fetches);
        let mut bytes = 0;
        for _ in 0..fetches {
            let start = Instant::now();
            let r = http
                .get(format!("{}{path}", svc.url))
                .header("cookie", &cookie)
                .send()
                .await?;
            let status = r.status();
            let body = r.bytes().await?;
            times.push(start.elapsed().as_secs_f64() * 1000.0);
            if status != 200 {
                bail!("{path}: HTTP {status}: {}", String::from_utf8_lossy(&body));
            }
            bytes = body.len();
        }
        times.sort_by(f64::total_cmp);
        let (p50, p99) = (percentile(&times, 0.5), percentile(&times, 0.99));
        let kb = bytes as f64 / 1000.0;
        report.row(
            "console",
            format!("{name}: p50 / p99 ms ({p50:.1} / {p99:.1}), {kb:.1} KB"),
            p99,
            "ms",
        );
        report.target("under 200 ms and 200 KB", p99 < 200.0 && bytes < 200_000);
        details.insert(
            (*name).into(),
            json!({"path": path, "p50_ms": p50, "p99_ms": p99, "bytes": bytes, "fetches": fetches}),
        );
    }
    report.details.insert(
        "console".into(),
        json!({"events": events, "audiences": audiences, "load_s": load_s, "pages": details}),
    );
    svc.stop().context("stopping the service")?;
    Ok(())
}
