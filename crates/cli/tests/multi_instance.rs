//! Several instances, one database: three `iterable-lists serve` processes share one SQLite
//! file, or one PostgreSQL database (a fresh schema on the server of
//! `ITERABLE_LISTS_TEST_PG_URL`, default `postgres://postgres@127.0.0.1:5432/test`), while senders spread a load over all three (resending what was not acknowledged, to
//! another instance), and random instances are SIGKILLed and restarted. The emulator injects
//! 500s, 429s and connection resets. Afterwards every list equals the latest-event-wins
//! membership, there is exactly one list per audience, every event was logged once with a
//! final status, and every instance reports the same figures.
//!
//! The third test runs three instances on PostgreSQL against a project that admits 10
//! subscribe requests/s (the instances are told the limit, and share it through the
//! database), so that requests wait for the shared rate budget long enough for leases to
//! change hands meanwhile (this is what showed a withdrawn lease's request landing after the
//! new holder's): the same checks, and at most 1% of the requests, summed over the
//! instances, answered 429. The runs take turns: each starts three services.
//!
//! Sizes: `MULTI_EVENTS` (default 30000; the full run is 200000) and `MULTI_KILLS`
//! (default 6), `MULTI_LIMITED_EVENTS` (default 40000) for the rate-limited test. The
//! defaults keep both within about three minutes in a debug build on a 2-core machine.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use iterable_emulator::{
    Emulator, EmulatorConfig, Endpoint, Faults, LogQuery, ProjectConfig, ProjectType, RateLimit,
    RunningEmulator,
};
use serde_json::{Value, json};
use support::{Rng, assert_converged, env_usize, event, start, temp_dir};
use testkit::postgres::PgSchema;

/// The database the instances share.
#[derive(Debug, Clone, Copy)]
enum Engine {
    Sqlite,
    Postgres,
}

const KEY: &str = "0123456789abcdef0123456789abcdef";
const WRITE_KEY: &str = "wk_multi";
const BATCH: usize = 500;
const SENDERS: usize = 6;
const INSTANCES: usize = 3;

/// The instances: each one's process and URL, replaced when it is restarted.
struct Cluster {
    config: PathBuf,
    log: PathBuf,
    children: Vec<Mutex<Child>>,
    urls: Vec<Mutex<String>>,
}

impl Cluster {
    fn start(config: &Path, log: &Path) -> Arc<Self> {
        let (mut children, mut urls) = (Vec::new(), Vec::new());
        for _ in 0..INSTANCES {
            let (c, u) = start(config, log);
            children.push(Mutex::new(c));
            urls.push(Mutex::new(u));
        }
        Arc::new(Self {
            config: config.to_path_buf(),
            log: log.to_path_buf(),
            children,
            urls,
        })
    }

    fn url(&self, i: usize) -> String {
        self.urls[i % INSTANCES].lock().expect("url").clone()
    }

    /// SIGKILLs instance `i` and starts it again (a new process, a new instance id).
    fn kill_and_restart(&self, i: usize) {
        {
            let mut c = self.children[i].lock().expect("child");
            let _ = c.kill();
            let _ = c.wait();
        }
        let (c, u) = start(&self.config, &self.log);
        *self.children[i].lock().expect("child") = c;
        *self.urls[i].lock().expect("url") = u;
    }

    fn kill_all(&self) {
        for c in &self.children {
            let mut c = c.lock().expect("child");
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The load as request bodies, and the membership it should leave behind.
fn load(n: usize) -> (Vec<String>, BTreeMap<(String, u64), bool>) {
    let mut rng = Rng(0x5851_f42d_4c95_7f2d);
    let mut expected = BTreeMap::new();
    let mut batches = Vec::new();
    let mut current = Vec::with_capacity(BATCH);
    for i in 0..n {
        let (aud, user, member, ev) = event(i, &mut rng);
        expected.insert((aud, user), member);
        current.push(ev);
        if current.len() == BATCH || i + 1 == n {
            batches.push(json!({ "batch": std::mem::take(&mut current) }).to_string());
        }
    }
    (batches, expected)
}

async fn status_of(http: &reqwest::Client, url: &str) -> Value {
    match http.get(format!("{url}/v1/status")).send().await {
        Ok(r) => serde_json::from_str(&r.text().await.unwrap_or_default()).unwrap_or(Value::Null),
        Err(_) => Value::Null,
    }
}

/// Events not yet final in a `/v1/status` answer (`None` when it is not one).
fn open_events(s: &Value) -> Option<u64> {
    let e = &s["destinations"][0]["events"];
    Some(e["accepted"].as_u64()? + e["pending"].as_u64()?)
}

/// What one run did.
struct Run {
    emu: RunningEmulator,
    kills_during_load: usize,
    kills: usize,
    resends: u64,
    secs: f64,
}

/// Starts the emulator and three instances, sends `n` events spread over them while killing
/// and restarting instances `kills` times, and waits until every event is final. Checks
/// what every test checks; returns the emulator for more.
async fn run(
    n: usize,
    kills: usize,
    emu_config: EmulatorConfig,
    engine: Engine,
    delivery: &str,
) -> Run {
    // One run at a time: each starts three services, and the rate-limited run measures how
    // evenly requests leave them, which three runs at once on two cores would blur.
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _turn = ONE_AT_A_TIME.lock().await;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let emu = Emulator::start(emu_config).await.expect("emulator");
    let dir = temp_dir();
    std::fs::create_dir_all(&dir).expect("dir");
    let config = dir.join("config.toml");
    // A fresh schema per run on PostgreSQL, dropped at the end.
    let pg = matches!(engine, Engine::Postgres).then(|| PgSchema::create("multi"));
    let url = match &pg {
        Some(pg) => pg.url(),
        None => format!("sqlite://{}", dir.join("db.sqlite").display()),
    };
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\n[storage]\nurl = \"{url}\"\nlease_seconds = 2\n\
             [[destination]]\nname = \"prod\"\napi_key = \"{KEY}\"\nproject_type = \"hybrid\"\n\
             base_url = \"{}\"\nwrite_keys = [\"{WRITE_KEY}\"]\n\
             # A third of this load's events are exits: the mass-removal guard would hold\n\
             # them (it has its own tests).\n\
             max_removal_ratio = 1\n[destination.delivery]\n\
             linger_ms = 200\n{delivery}",
            emu.url()
        ),
    )
    .expect("config");
    let log = dir.join("service.log");
    let (batches, expected) = load(n);
    let batches = Arc::new(batches);
    let started = Instant::now();
    let cluster = Cluster::start(&config, &log);
    let next = Arc::new(AtomicUsize::new(0));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http");

    let mut senders = Vec::new();
    for _ in 0..SENDERS {
        let (batches, cluster, next, http) =
            (batches.clone(), cluster.clone(), next.clone(), http.clone());
        senders.push(tokio::spawn(async move {
            let mut resends = 0u64;
            loop {
                let b = next.fetch_add(1, Ordering::SeqCst);
                if b >= batches.len() {
                    return resends;
                }
                // Spread over the instances; resend to the next one until acknowledged.
                for attempt in 0.. {
                    let u = cluster.url(b + attempt);
                    let r = http
                        .post(format!("{u}/v1/batch"))
                        .basic_auth(WRITE_KEY, Some(""))
                        .header("Content-Type", "application/json")
                        .body(batches[b].clone())
                        .send()
                        .await;
                    match r {
                        Ok(r) if r.status().is_success() => break,
                        Ok(r) if r.status().is_client_error() => {
                            panic!("batch {b} refused: {} {:?}", r.status(), r.text().await)
                        }
                        _ => {
                            resends += 1;
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            }
        }));
    }

    // Kill and restart random instances at seeded random moments: during the load, and
    // during the delivery after it if the load ended first.
    let mut krng = Rng(7);
    let (mut killed, mut during_load) = (0, 0);
    while killed < kills {
        tokio::time::sleep(Duration::from_millis(300 + krng.below(1200))).await;
        let loading = next.load(Ordering::SeqCst) < batches.len();
        cluster.kill_and_restart(krng.below(INSTANCES as u64) as usize);
        killed += 1;
        during_load += usize::from(loading);
    }
    let mut resends = 0;
    for s in senders {
        resends += s.await.expect("sender");
    }

    // Wait until nothing is left to deliver, then until every instance says so.
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut last = Value::Null;
    for i in 0..INSTANCES {
        loop {
            let s = status_of(&http, &cluster.url(i)).await;
            if open_events(&s) == Some(0) {
                last = s;
                break;
            }
            assert!(Instant::now() < deadline, "never converged: {s}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    // The same answer from every instance (the figures snapshot is at most a second old,
    // and nothing changes any more).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let answers: Vec<Value> = {
        let mut v = Vec::new();
        for i in 0..INSTANCES {
            v.push(status_of(&http, &cluster.url(i)).await);
        }
        v
    };
    for (i, a) in answers.iter().enumerate() {
        assert_eq!(a, &answers[0], "instance {i} answers differently");
    }
    cluster.kill_all();

    assert_converged(&last["destinations"][0]["events"], n, &emu, &expected);
    let _ = std::fs::remove_dir_all(&dir);
    drop(pg);
    Run {
        emu,
        kills_during_load: during_load,
        kills: killed,
        resends,
        secs,
    }
}

fn emulator_config(faults: Faults) -> EmulatorConfig {
    let mut ec =
        EmulatorConfig::default().with_project(ProjectConfig::new(ProjectType::Hybrid, KEY));
    ec.listen = "127.0.0.1:0".parse().expect("addr");
    ec.seed = Some(15);
    ec.faults = faults;
    // Keep every request's entry, to count the answers.
    ec.request_log.capacity = 1_000_000;
    ec.request_log.max_bytes = 1 << 30;
    ec
}

/// The faults of the crash tests: 500s, 429s and connection resets.
fn crash_faults() -> Faults {
    Faults {
        error_500: 0.02,
        error_429: 0.02,
        reset_connection: 0.01,
        ..Faults::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_on_postgresql_share_delivery_through_kills_and_faults() {
    let n = env_usize("MULTI_EVENTS", 30_000);
    let kills = env_usize("MULTI_KILLS", 6);
    let r = run(
        n,
        kills,
        emulator_config(crash_faults()),
        Engine::Postgres,
        "",
    )
    .await;
    eprintln!(
        "multi-instance test on PostgreSQL: {n} events, {} kills ({} during the load), {} \
         resends, converged in {:.1} s",
        r.kills, r.kills_during_load, r.resends, r.secs
    );
    assert!(r.kills >= kills);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_share_delivery_through_kills_and_faults() {
    let n = env_usize("MULTI_EVENTS", 30_000);
    let kills = env_usize("MULTI_KILLS", 6);
    let r = run(
        n,
        kills,
        emulator_config(crash_faults()),
        Engine::Sqlite,
        "",
    )
    .await;
    eprintln!(
        "multi-instance test: {n} events, {} kills ({} during the load), {} resends, \
         converged in {:.1} s",
        r.kills, r.kills_during_load, r.resends, r.secs
    );
    assert!(r.kills >= kills);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_on_postgresql_under_one_rate_limit_stay_under_it() {
    let n = env_usize("MULTI_LIMITED_EVENTS", 40_000);
    let kills = env_usize("MULTI_KILLS", 6);
    let faults = Faults {
        error_500: 0.01,
        reset_connection: 0.005,
        ..Faults::default()
    };
    // The project admits 10 subscribe requests/s with one request of tolerance (a burst of
    // 2, as in the benchmark's part d: with a burst of 1, a request delayed on its way by a
    // millisecond makes the next one, sent on time, look early). The instances are told the
    // limit, as an operator who knows the project's limit would, and share it: 10/s without
    // a burst of their own (the service's default burst for "10/s" is a second's worth, 10,
    // which this project would refuse after an idle moment).
    let limit = RateLimit {
        burst: 2,
        ..RateLimit::per_second(10)
    };
    let ec = emulator_config(faults).with_limit(Endpoint::Subscribe, Some(limit));
    let delivery = "[destination.delivery.rate_limits]\nsubscribe = \"10/s,burst=1\"\n";
    let r = run(n, kills, ec, Engine::Postgres, delivery).await;
    let all = r.emu.requests(&LogQuery::default());
    let seqs = all.iter().map(|q| q.seq).max().unwrap_or(0);
    assert_eq!(all.len() as u64, seqs, "the request log dropped entries");
    let api: Vec<_> = all.iter().filter(|q| q.path.starts_with("/api/")).collect();
    let throttled = api.iter().filter(|q| q.status == 429).count();
    let subscribes: Vec<_> = api
        .iter()
        .filter(|q| q.path == "/api/lists/subscribe")
        .collect();
    let sub_throttled = subscribes.iter().filter(|q| q.status == 429).count();
    let share = throttled as f64 / api.len().max(1) as f64;
    eprintln!(
        "rate-limited multi-instance test on PostgreSQL: {n} events, {} kills, {} requests, \
         {throttled} answered 429 ({:.2}%); subscribe {} requests, {sub_throttled} 429; \
         converged in {:.1} s",
        r.kills,
        api.len(),
        share * 100.0,
        subscribes.len(),
        r.secs
    );
    assert!(r.kills >= kills);
    assert!(
        share <= 0.01,
        "{throttled} of {} requests answered 429 ({:.2}%), over 1%",
        api.len(),
        share * 100.0
    );
}
