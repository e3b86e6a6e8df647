//! End-to-end throughput: Segment-shaped batches over HTTP into the service (durable SQLite),
//! delivered to an in-process Iterable emulator; events per second from the first request to
//! the last acknowledgement by the emulator, and the acceptance-to-acknowledgement latency.
//!
//! `cargo bench -p server --bench e2e [-- --events N] [-- --json PATH] [-- --strict]`
//! Under `cargo test --benches` (no `--bench` argument) it makes a 2,000-event smoke run.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use iterable_emulator::{Emulator, EmulatorConfig, ProjectConfig, ProjectType};
use serde_json::{Value, json};
use server::{Config, RunningService};

/// As in the `iterable-lists` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const KEY: &str = "0123456789abcdef0123456789abcdef";
const WRITE_KEY: &str = "wk_bench";
const AUDIENCES: usize = 20;
const BATCH: usize = 500;
const SENDERS: usize = 4;
const TARGET_EPS: f64 = 20_000.0;

struct Args {
    full: bool,
    events: usize,
    json: Option<String>,
    strict: bool,
}

fn args() -> Args {
    let mut a = Args {
        full: false,
        events: 200_000,
        json: None,
        strict: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        match x.as_str() {
            "--bench" => a.full = true,
            "--events" => a.events = it.next().and_then(|v| v.parse().ok()).unwrap_or(a.events),
            "--json" => a.json = it.next(),
            "--strict" => a.strict = true,
            _ => {}
        }
    }
    if !a.full {
        a.events = 2_000;
    }
    a
}

fn batches(n: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = Vec::with_capacity(BATCH);
    for i in 0..n {
        let aud = format!("bench_{:02}", i % AUDIENCES);
        let user = i / AUDIENCES;
        cur.push(json!({
            "type": "identify", "messageId": format!("b{i}"), "userId": format!("u{user}"),
            "timestamp": "2026-11-29T10:00:00.000Z",
            "traits": {"email": format!("u{user}@example.com"), aud.clone(): true},
            "context": {"personas": {"computation_key": aud, "computation_class": "audience"},
                        "library": {"name": "analytics-python", "version": "2.3.3"}}
        }));
        if cur.len() == BATCH || i + 1 == n {
            out.push(json!({"batch": std::mem::take(&mut cur)}).to_string());
        }
    }
    out
}

fn main() -> Result<(), String> {
    let a = args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let result = rt.block_on(run(a.events))?;
    let text = format!(
        "end to end, {} events ({} audiences, {}-event batches, {} senders){}\n\
         {:<28} {:>12}\n{:<28} {:>12.0}\n{:<28} {:>12.0}\n{:<28} {:>12.3}\n{:<28} {:>12.3}\n{:<28} {:>12}\n",
        a.events,
        AUDIENCES,
        BATCH,
        SENDERS,
        if a.full { "" } else { ", smoke run" },
        "measure",
        "value",
        "ingest events/s (acked)",
        result["ingest_events_per_sec"].as_f64().unwrap_or(0.0),
        "end-to-end events/s",
        result["e2e_events_per_sec"].as_f64().unwrap_or(0.0),
        "latency p50 (s)",
        result["latency_p50_s"].as_f64().unwrap_or(0.0),
        "latency p99 (s)",
        result["latency_p99_s"].as_f64().unwrap_or(0.0),
        "list members in the emulator",
        result["members"],
    );
    print!("{text}");
    if let Some(p) = &a.json {
        std::fs::write(p, result.to_string()).map_err(|e| format!("{p}: {e}"))?;
        println!("results written to {p}");
    }
    let pass = result["e2e_events_per_sec"].as_f64().unwrap_or(0.0) >= TARGET_EPS;
    println!(
        "target: at least {TARGET_EPS} events/s end to end: {}",
        if pass { "PASS" } else { "MISS" }
    );
    if a.full && a.strict && !pass {
        return Err("target missed".into());
    }
    Ok(())
}

async fn run(n: usize) -> Result<Value, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut ec =
        EmulatorConfig::default().with_project(ProjectConfig::new(ProjectType::Hybrid, KEY));
    ec.listen = "127.0.0.1:0".parse().map_err(|e| format!("{e}"))?;
    ec.limits.insert(
        "all".into(),
        iterable_emulator::config::LimitValue("off".parse().map_err(|e| format!("{e:?}"))?),
    );
    let emu = Emulator::start(ec).await.map_err(|e| e.to_string())?;
    let dir = std::env::temp_dir().join(format!("iterable-lists-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let text = format!(
        "listen = \"127.0.0.1:0\"\n[storage]\nurl = \"sqlite://{}\"\n[[destination]]\n\
         name = \"bench\"\napi_key = \"{KEY}\"\nproject_type = \"hybrid\"\nbase_url = \"{}\"\n\
         write_keys = [\"{WRITE_KEY}\"]\n[destination.delivery]\nlinger_ms = 100\nconcurrency = 8\n\
         [destination.delivery.rate_limits]\nsubscribe = \"off\"\nunsubscribe = \"off\"\n",
        dir.join("db.sqlite").display(),
        emu.url()
    );
    let cfg = Config::parse(&text, &|_| None).map_err(|e| e.to_string())?;
    let svc = RunningService::start(cfg)
        .await
        .map_err(|e| e.to_string())?;
    let url = svc.url();
    let bodies = Arc::new(batches(n));
    let http = reqwest::Client::builder()
        .build()
        .map_err(|e| e.to_string())?;
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut senders = Vec::new();
    for _ in 0..SENDERS {
        let (bodies, next, http, url) = (bodies.clone(), next.clone(), http.clone(), url.clone());
        senders.push(tokio::spawn(async move {
            loop {
                let b = next.fetch_add(1, Ordering::Relaxed);
                if b >= bodies.len() {
                    return Ok::<(), String>(());
                }
                let r = http
                    .post(format!("{url}/v1/batch"))
                    .basic_auth(WRITE_KEY, Some(""))
                    .header("Content-Type", "application/json")
                    .body(bodies[b].clone())
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                if !r.status().is_success() {
                    return Err(format!("batch {b}: HTTP {}", r.status()));
                }
            }
        }));
    }
    for s in senders {
        s.await.map_err(|e| e.to_string())??;
    }
    let ingest = start.elapsed();
    // Done when every event has its final status.
    let store = svc.state().store.clone();
    loop {
        let s = store.clone();
        let c = tokio::task::spawn_blocking(move || s.event_counts("bench"))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        if c.accepted + c.pending == 0
            && c.delivered + c.superseded + c.rejected + c.skipped >= n as u64
        {
            if c.rejected + c.skipped > 0 {
                return Err(format!("unexpected rejections: {c:?}"));
            }
            break;
        }
        if start.elapsed() > Duration::from_secs(600) {
            return Err(format!("not delivered after 600 s: {c:?}"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let e2e = start.elapsed();
    let metrics = &svc.state().destinations[0].metrics;
    let (p50, p99) = metrics.latency_p50_p99().unwrap_or((0.0, 0.0));
    let members: usize = emu
        .state(false)
        .iter()
        .flat_map(|p| p.lists.iter())
        .map(|l| l.size)
        .sum();
    if members != n {
        return Err(format!(
            "the emulator's lists hold {members} members, expected {n}"
        ));
    }
    svc.shutdown(Duration::from_secs(10)).await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(json!({
        "bench": "e2e",
        "events": n,
        "ingest_seconds": ingest.as_secs_f64(),
        "ingest_events_per_sec": n as f64 / ingest.as_secs_f64(),
        "e2e_seconds": e2e.as_secs_f64(),
        "e2e_events_per_sec": n as f64 / e2e.as_secs_f64(),
        "latency_p50_s": p50,
        "latency_p99_s": p99,
        "members": members,
    }))
}
