//! (admin) The admin API's views on a big store: `events` events over 1,000 audiences go in
//! through the tracking API (delivered to the emulator meanwhile), then each view of
//! `/v1/admin/...` is asked 20 times in a row with the admin token. Measured: the slowest and
//! the median answer of each, and its size. Target: every view under 200 ms.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde_json::{Value, json};

use crate::emulator::emulator;
use crate::events::{Audience, bodies, spread_events};
use crate::harness::{ADMIN, KEY, Setup};
use crate::load::send_all;
use crate::report::Report;
use crate::service::Service;

/// Audiences of the load.
pub const ADMIN_AUDIENCES: usize = 1000;

/// Asks of each view.
const ASKS: usize = 20;

async fn get(http: &reqwest::Client, url: &str) -> Result<(u16, usize, Duration)> {
    let t = Instant::now();
    let r = http.get(url).bearer_auth(ADMIN).send().await?;
    let status = r.status().as_u16();
    let body = r.bytes().await?;
    Ok((status, body.len(), t.elapsed()))
}

/// Events stored so far (every status but skipped ones counted once), from the overview.
async fn stored(http: &reqwest::Client, base: &str) -> Result<u64> {
    let r = http
        .get(format!("{base}/v1/status"))
        .bearer_auth(ADMIN)
        .send()
        .await?;
    let v: Value = serde_json::from_slice(&r.bytes().await?)?;
    let e = &v["destinations"][0]["events"];
    Ok([
        "accepted",
        "pending",
        "delivered",
        "superseded",
        "rejected",
        "skipped",
    ]
    .iter()
    .map(|k| e[*k].as_u64().unwrap_or(0))
    .sum())
}

pub async fn run(setup: &Setup, events: usize, report: &mut Report) -> Result<()> {
    let emu = emulator(None).await?;
    let lists: Vec<Audience> = (0..ADMIN_AUDIENCES)
        .map(|a| (format!("adm_{a:04}"), None))
        .collect();
    let load = Arc::new(bodies(&spread_events(events, &lists)));
    let svc = Service::start(setup, "admin", &emu.url(), KEY, "")?;
    let sent = send_all(&svc.url, load).await?;
    let http = reqwest::Client::builder().build()?;
    let deadline = Instant::now() + Duration::from_secs(600);
    while stored(&http, &svc.url).await? < events as u64 {
        if Instant::now() > deadline {
            bail!("the events were not all stored within 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let views = [
        ("overview", "/v1/admin/overview".to_string()),
        ("destination", "/v1/admin/destinations/bench".to_string()),
        (
            "destination, 500 rows",
            "/v1/admin/destinations/bench?limit=500&after=adm_0400".to_string(),
        ),
        (
            "audience",
            "/v1/admin/destinations/bench/audiences/adm_0500".to_string(),
        ),
        (
            "rejected",
            "/v1/admin/destinations/bench/audiences/adm_0500/rejected?filter=u7".to_string(),
        ),
        ("user", "/v1/admin/users?email=u500@example.com".to_string()),
        ("event", "/v1/admin/events/b500500".to_string()),
    ];
    let mut details = serde_json::Map::new();
    for (name, path) in views {
        let url = format!("{}{path}", svc.url);
        let mut times = Vec::with_capacity(ASKS);
        let mut size = 0;
        for _ in 0..ASKS {
            let (status, bytes, took) = get(&http, &url).await?;
            if status != 200 {
                bail!("GET {path}: HTTP {status}");
            }
            size = bytes;
            times.push(took);
        }
        times.sort();
        let (median, worst) = (times[ASKS / 2], times[ASKS - 1]);
        report.row(
            "admin",
            format!("admin view {name}: slowest of {ASKS} ({size} bytes)"),
            worst.as_secs_f64() * 1000.0,
            "ms",
        );
        report.target("< 200 ms", worst < Duration::from_millis(200));
        details.insert(
            name.to_string(),
            json!({"path": path, "medianMs": median.as_secs_f64() * 1000.0,
                   "slowestMs": worst.as_secs_f64() * 1000.0, "bytes": size}),
        );
    }
    details.insert("events".into(), json!(events));
    details.insert("audiences".into(), json!(ADMIN_AUDIENCES));
    details.insert("sendSeconds".into(), json!(sent.as_secs_f64()));
    report
        .details
        .insert("admin".into(), Value::Object(details));
    svc.stop()?;
    Ok(())
}
