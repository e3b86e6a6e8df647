//! Benchmark of the client's rate limiting against the emulator's subscribe limit.
//!
//! The bar: with the emulator limiting `POST /api/lists/subscribe` to R requests per
//! second (R = 20 and R = 200), a sustained load keeps 429 answers under 1% of requests and
//! achieves at least 95% of R, both with the limit configured in the client (`Limit::fixed(R)`)
//! and, within a minute, in adaptive mode with no limit configured (the default for subscribe).
//!
//! Each case starts an in-process emulator (real clock) with one hybrid project and the
//! subscribe limit set to R/s, creates a list through the client, and runs 8 tasks that each
//! loop `client.subscribe` with pre-serialized 10-row bodies. Fixed mode runs 20 s, all
//! measured; adaptive mode runs 90 s and measures the last 30 s. Every attempt the emulator saw
//! (the client's retries of 429s included) is counted from its request log.
//!
//! `cargo bench -p iterable --bench ratelimit [-- --json PATH] [-- --strict]`
//! (`--rates 20,200` and `--modes fixed,adaptive` pick cases). Without `--bench` in its
//! arguments (`cargo test --benches`) it makes a 2-second smoke run of one case and exits 0.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use bytes::Bytes;
use iterable::client::{ApiKey, Client, ClientConfig};
use iterable::limiter::{Endpoint, Limit};
use iterable_emulator::{
    Emulator, EmulatorConfig, Endpoint as EmuEndpoint, LogQuery, ProjectConfig, ProjectType,
    RateLimit,
};
use serde_json::{Value, json};

const KEY: &str = "0123456789abcdef0123456789abcdef";
const SUBSCRIBE_PATH: &str = "/api/lists/subscribe";
const TASKS: usize = 8;
const ROWS_PER_CALL: usize = 10;
/// Distinct bodies cycled through by the tasks (10 users each).
const BODIES: usize = 256;
const MIN_SHARE_OF_R: f64 = 0.95;
const MAX_429_SHARE: f64 = 0.01;
/// The load runs this much past the measured window, so the window is fully loaded.
const MARGIN: Duration = Duration::from_millis(500);
/// Timeline buckets, for seeing how adaptive mode converges.
const BUCKET_MS: u64 = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `Limit::fixed(R)` configured for subscribe.
    Fixed,
    /// Nothing configured: `Endpoint::Subscribe.default_limit()`, adaptive.
    Adaptive,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Fixed => "fixed",
            Mode::Adaptive => "adaptive",
        }
    }
}

struct Case {
    rate: u32,
    mode: Mode,
    /// Load before the measured window (not counted).
    skip: Duration,
    /// The measured window.
    measure: Duration,
}

struct Args {
    full: bool,
    json: Option<String>,
    strict: bool,
    rates: Vec<u32>,
    modes: Vec<Mode>,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        full: false,
        json: None,
        strict: false,
        rates: vec![20, 200],
        modes: vec![Mode::Fixed, Mode::Adaptive],
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        let mut value = |name: &str| -> Result<String> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => it.next().with_context(|| format!("{name} needs a value")),
            }
        };
        match flag.as_str() {
            "--bench" => args.full = true,
            "--strict" => args.strict = true,
            "--json" => args.json = Some(value("--json PATH")?),
            "--rates" => {
                args.rates = value("--rates R[,R...]")?
                    .split(',')
                    .map(|r| {
                        r.trim()
                            .parse::<u32>()
                            .ok()
                            .filter(|r| *r > 0)
                            .with_context(|| format!("--rates: {r:?} is not a positive number"))
                    })
                    .collect::<Result<_>>()?;
            }
            "--modes" => {
                args.modes = value("--modes fixed,adaptive")?
                    .split(',')
                    .map(|m| match m.trim() {
                        "fixed" => Ok(Mode::Fixed),
                        "adaptive" => Ok(Mode::Adaptive),
                        other => bail!("--modes: {other:?} is not fixed or adaptive"),
                    })
                    .collect::<Result<_>>()?;
            }
            // Anything else (a cargo bench filter, --nocapture, ...) is ignored.
            _ => {}
        }
    }
    Ok(args)
}

fn cases(args: &Args) -> Vec<Case> {
    if !args.full {
        return vec![Case {
            rate: 200,
            mode: Mode::Fixed,
            skip: Duration::ZERO,
            measure: Duration::from_secs(2),
        }];
    }
    let mut out = Vec::new();
    for &rate in &args.rates {
        for &mode in &args.modes {
            let (skip, measure) = match mode {
                Mode::Fixed => (Duration::ZERO, Duration::from_secs(20)),
                Mode::Adaptive => (Duration::from_secs(60), Duration::from_secs(30)),
            };
            out.push(Case {
                rate,
                mode,
                skip,
                measure,
            });
        }
    }
    out
}

/// What one case measured.
struct Outcome {
    rate: u32,
    mode: Mode,
    skip: Duration,
    measure: Duration,
    /// Attempts the emulator saw in the window, and how they were answered.
    requests: u64,
    accepted: u64,
    throttled: u64,
    other: u64,
    /// Calls that failed after the client's retries, over the whole run.
    gave_up: u64,
    /// The client's subscribe rate at the end (adaptive: where it settled).
    client_rate: f64,
    /// Accepted per second, and 429 answers, in each 10-second bucket of the whole run.
    timeline: Vec<f64>,
    timeline_429: Vec<u64>,
    /// Whether the request log dropped entries (then the counts would be short).
    log_dropped: bool,
}

impl Outcome {
    fn accepted_per_sec(&self) -> f64 {
        self.accepted as f64 / self.measure.as_secs_f64()
    }
    fn share_of_r(&self) -> f64 {
        self.accepted_per_sec() / f64::from(self.rate)
    }
    fn share_429(&self) -> f64 {
        self.throttled as f64 / (self.requests.max(1)) as f64
    }
    fn pass(&self) -> bool {
        !self.log_dropped && self.share_of_r() >= MIN_SHARE_OF_R && self.share_429() < MAX_429_SHARE
    }
}

/// Pre-serialized subscribe bodies: `BODIES` calls of `ROWS_PER_CALL` distinct users.
fn bodies(list_id: i64) -> Vec<Bytes> {
    (0..BODIES)
        .map(|b| {
            let rows: Vec<Value> = (0..ROWS_PER_CALL)
                .map(|r| {
                    let i = b * ROWS_PER_CALL + r;
                    json!({"email": format!("user{i}@example.com"), "userId": format!("u{i}")})
                })
                .collect();
            Bytes::from(json!({"listId": list_id, "subscribers": rows}).to_string())
        })
        .collect()
}

async fn run_case(case: &Case) -> Result<Outcome> {
    let mut config = EmulatorConfig::default()
        .with_project(ProjectConfig::new(ProjectType::Hybrid, KEY))
        .with_limit(
            EmuEndpoint::Subscribe,
            Some(RateLimit::per_second(case.rate)),
        );
    config.listen = "127.0.0.1:0".parse()?;
    config.seed = Some(7);
    // Room for every attempt of the run (a 10-row body is under 1 KB).
    config.request_log.capacity = 2_000_000;
    config.request_log.max_bytes = 2 << 30;
    let emu = Emulator::start(config)
        .await
        .context("cannot start the emulator")?;

    let mut cc = ClientConfig::new(emu.url(), ApiKey::new(KEY));
    if case.mode == Mode::Fixed {
        cc.limits = HashMap::from([(Endpoint::Subscribe, Limit::fixed(f64::from(case.rate)))]);
    }
    let client = Arc::new(Client::new(cc).context("cannot build the client")?);
    let list_id = client
        .create_list("ratelimit_bench")
        .await
        .context("cannot create the list")?;
    let bodies = Arc::new(bodies(list_id));

    let gave_up = Arc::new(AtomicU64::new(0));
    let next = Arc::new(AtomicU64::new(0));
    let run_for = case.skip + case.measure + MARGIN;
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(TASKS);
    for _ in 0..TASKS {
        let (client, bodies, gave_up, next) = (
            client.clone(),
            bodies.clone(),
            gave_up.clone(),
            next.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize % bodies.len();
                if client.subscribe(bodies[i].clone()).await.is_err() {
                    gave_up.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep_until((started + run_for).into()).await;
    for t in &tasks {
        t.abort();
    }
    for t in tasks {
        let _ = t.await;
    }
    let client_rate = client.limiter().rate(Endpoint::Subscribe);

    let log = emu.requests(&LogQuery {
        path: Some(SUBSCRIBE_PATH.into()),
        ..Default::default()
    });
    let all = emu.requests(&LogQuery {
        limit: Some(1),
        ..Default::default()
    });
    // The first entry ever logged is the list creation (seq 1): anything else means the log
    // dropped its oldest entries.
    let log_dropped = all.first().is_none_or(|r| r.seq != 1);
    // Entries are logged as answers complete, each stamped with its arrival: take the earliest.
    let t0 = log
        .iter()
        .map(|r| r.timestamp)
        .min()
        .context("the emulator logged no subscribe call")?;
    let from = t0 + case.skip.as_millis() as u64;
    let to = from + case.measure.as_millis() as u64;
    let (mut requests, mut accepted, mut throttled, mut other) = (0, 0, 0, 0);
    let n_buckets = (run_for.as_millis() as u64).div_ceil(BUCKET_MS) as usize + 1;
    let (mut buckets, mut buckets_429) = (vec![0u64; n_buckets], vec![0u64; n_buckets]);
    for r in &log {
        let b = (r.timestamp.saturating_sub(t0) / BUCKET_MS) as usize;
        let counter = match r.status {
            200 => buckets.get_mut(b),
            429 => buckets_429.get_mut(b),
            _ => None,
        };
        if let Some(n) = counter {
            *n += 1;
        }
        if !(from..to).contains(&r.timestamp) {
            continue;
        }
        requests += 1;
        match r.status {
            200 => accepted += 1,
            429 => throttled += 1,
            _ => other += 1,
        }
    }
    // Only whole buckets inside the run.
    let whole = (run_for.as_millis() as u64 / BUCKET_MS) as usize;
    buckets.truncate(whole.max(1));
    buckets_429.truncate(whole.max(1));
    let timeline = buckets
        .iter()
        .map(|n| *n as f64 / (BUCKET_MS as f64 / 1000.0))
        .collect();
    ensure!(requests > 0, "no subscribe call in the measured window");
    Ok(Outcome {
        rate: case.rate,
        mode: case.mode,
        skip: case.skip,
        measure: case.measure,
        requests,
        accepted,
        throttled,
        other,
        gave_up: gave_up.load(Ordering::Relaxed),
        client_rate,
        timeline,
        timeline_429: buckets_429,
        log_dropped,
    })
}

fn report(full: bool, outcomes: &[Outcome]) -> (String, Value) {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "client rate limiting vs the emulator's subscribe limit ({TASKS} tasks, {ROWS_PER_CALL}-row calls{})",
        if full { "" } else { ", smoke run" }
    );
    let _ = writeln!(
        t,
        "{:>5} {:<9} {:>11} {:>8} {:>8} {:>6} {:>5} {:>10} {:>7} {:>7} {:>9}  result",
        "R/s",
        "mode",
        "window",
        "requests",
        "accepted",
        "429",
        "other",
        "accepted/s",
        "% of R",
        "429 %",
        "client/s"
    );
    let mut rows = Vec::new();
    for o in outcomes {
        let window = format!("{}-{} s", o.skip.as_secs(), (o.skip + o.measure).as_secs());
        let verdict = if o.pass() { "PASS" } else { "FAIL" };
        let _ = writeln!(
            t,
            "{:>5} {:<9} {:>11} {:>8} {:>8} {:>6} {:>5} {:>10.1} {:>6.1}% {:>6.2}% {:>9.1}  {verdict}{}",
            o.rate,
            o.mode.name(),
            window,
            o.requests,
            o.accepted,
            o.throttled,
            o.other,
            o.accepted_per_sec(),
            100.0 * o.share_of_r(),
            100.0 * o.share_429(),
            o.client_rate,
            if o.log_dropped {
                " (request log dropped entries)"
            } else {
                ""
            }
        );
        rows.push(json!({
            "rate_limit_per_sec": o.rate,
            "mode": o.mode.name(),
            "window_start_secs": o.skip.as_secs_f64(),
            "window_secs": o.measure.as_secs_f64(),
            "requests": o.requests,
            "accepted": o.accepted,
            "throttled_429": o.throttled,
            "other_status": o.other,
            "calls_given_up": o.gave_up,
            "accepted_per_sec": o.accepted_per_sec(),
            "accepted_share_of_limit": o.share_of_r(),
            "share_429": o.share_429(),
            "client_rate_at_end": o.client_rate,
            "accepted_per_sec_by_10s": o.timeline,
            "throttled_429_by_10s": o.timeline_429,
            "log_dropped": o.log_dropped,
            "pass": o.pass(),
        }));
    }
    for o in outcomes.iter().filter(|o| o.timeline.len() > 1) {
        let line: Vec<String> = o
            .timeline
            .iter()
            .zip(&o.timeline_429)
            .map(|(r, n)| format!("{r:.0}({n})"))
            .collect();
        let _ = writeln!(
            t,
            "accepted/s (429s) per 10 s, R={} {}: {}",
            o.rate,
            o.mode.name(),
            line.join(" ")
        );
    }
    let gave_up: u64 = outcomes.iter().map(|o| o.gave_up).sum();
    if gave_up > 0 {
        let _ = writeln!(t, "calls that failed after all retries: {gave_up}");
    }
    let _ = write!(
        t,
        "bar: accepted >= {:.0}% of R and 429 < {:.0}% of requests",
        100.0 * MIN_SHARE_OF_R,
        100.0 * MAX_429_SHARE
    );
    let j = json!({
        "bench": "ratelimit",
        "full": full,
        "tasks": TASKS,
        "rows_per_call": ROWS_PER_CALL,
        "min_share_of_limit": MIN_SHARE_OF_R,
        "max_share_429": MAX_429_SHARE,
        "cases": rows,
    });
    (t, j)
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let cases = cases(&args);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let outcomes = rt.block_on(async {
        let mut out = Vec::new();
        for c in &cases {
            eprintln!(
                "R={}/s {}: {} s of load...",
                c.rate,
                c.mode.name(),
                (c.skip + c.measure + MARGIN).as_secs_f64()
            );
            out.push(
                run_case(c)
                    .await
                    .with_context(|| format!("case R={} {}", c.rate, c.mode.name()))?,
            );
        }
        Ok::<_, anyhow::Error>(out)
    })?;
    let (text, j) = report(args.full, &outcomes);
    println!("{text}");
    if let Some(path) = &args.json {
        let out = serde_json::to_string_pretty(&j).context("serializing the results")?;
        std::fs::write(path, out + "\n").with_context(|| format!("cannot write {path}"))?;
        println!("results written to {path}");
    }
    if args.full && args.strict && !outcomes.iter().all(Outcome::pass) {
        bail!("a case missed the bar (--strict)");
    }
    Ok(())
}
