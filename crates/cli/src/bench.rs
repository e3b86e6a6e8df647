//! `iterable-lists bench`: the whole-system benchmarks of BENCHMARKS.md and the side-by-side
//! comparison with Segment's own implementation, printed as a table and optionally as JSON.
//!
//! The service under test is this binary (`serve`) in a child process, so its CPU time and
//! peak memory are its own; the Iterable emulator and the load generator run in this process.
//! Measures: (a) parse, map and plan per core; (b) HTTP ingestion into durable SQLite; (c) end
//! to end; (d) a 1,000,000-member audience against the emulator's rate limit; (e) peak RSS
//! with 1,000,000 pending changes; and the comparison with `@segment/action-destinations`
//! (`bench/segment`, run with Node) on the same events and the same emulator.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use destination::{ActionMapping, Planner, ProjectType as PlanProjectType};
use iterable::client::{ApiKey, Client, ClientConfig};
use iterable_emulator::{Emulator, EmulatorConfig, ProjectConfig, ProjectType, RunningEmulator};
use serde_json::{Value, json};

const KEY: &str = "0123456789abcdef0123456789abcdef";
/// A key the emulator does not know: every call answers 401, so delivery pauses and every
/// accepted change stays pending.
const WRONG_KEY: &str = "ffffffffffffffffffffffffffffffff";
const WRITE_KEY: &str = "wk_bench";
const ADMIN: &str = "bench-admin-token";
/// Events per HTTP batch, and concurrent senders (Segment delivers with many workers).
const BATCH: usize = 500;
const SENDERS: usize = 8;
/// Audiences of the end-to-end and comparison runs.
const AUDIENCES: usize = 20;

/// What to run and how big.
#[derive(Debug, Clone)]
pub struct BenchArgs {
    pub only: Vec<String>,
    pub json: Option<PathBuf>,
    /// Events of (a) and (c).
    pub events: usize,
    /// Members of the big audience of (b), (d) and (e).
    pub members: usize,
    /// The emulator's subscribe limit in (d), requests per second.
    pub rate: u32,
    /// Events of the comparison.
    pub compare_events: usize,
    /// The Node side of the comparison.
    pub node_dir: PathBuf,
    /// Where databases and event files go (a new temporary directory by default).
    pub work_dir: Option<PathBuf>,
    /// Clients polling `/metrics` and `/v1/status` in a loop during (c).
    pub pollers: usize,
}

/// One row of the result table.
struct Row {
    id: &'static str,
    measure: String,
    value: f64,
    unit: &'static str,
    target: Option<String>,
    pass: Option<bool>,
}

struct Report {
    rows: Vec<Row>,
    details: serde_json::Map<String, Value>,
}

impl Report {
    fn row(
        &mut self,
        id: &'static str,
        measure: impl Into<String>,
        value: f64,
        unit: &'static str,
    ) {
        self.rows.push(Row {
            id,
            measure: measure.into(),
            value,
            unit,
            target: None,
            pass: None,
        });
    }

    fn target(&mut self, target: impl Into<String>, pass: bool) {
        if let Some(r) = self.rows.last_mut() {
            r.target = Some(target.into());
            r.pass = Some(pass);
        }
    }

    fn print(&self) {
        println!();
        println!(
            "{:<4} {:<58} {:>14} {:<12} target",
            "", "measure", "value", "unit"
        );
        for r in &self.rows {
            let value = if r.value >= 100.0 {
                format!("{:.0}", r.value)
            } else {
                format!("{:.3}", r.value)
            };
            let target = match (&r.target, r.pass) {
                (Some(t), Some(true)) => format!("{t}: PASS"),
                (Some(t), Some(false)) => format!("{t}: MISS"),
                _ => String::new(),
            };
            println!(
                "{:<4} {:<58} {:>14} {:<12} {}",
                r.id, r.measure, value, r.unit, target
            );
        }
    }

    fn to_json(&self) -> Value {
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|r| {
                json!({"id": r.id, "measure": r.measure, "value": r.value, "unit": r.unit,
                       "target": r.target, "pass": r.pass})
            })
            .collect();
        json!({"machine": machine(), "results": rows, "details": self.details})
    }
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0);
    json!({"cpu": cpu, "cores": cores, "memory_gib": (mem_kib as f64 / 1048576.0).round(),
           "os": std::env::consts::OS})
}

/// Runs the selected benchmarks; fails if one could not run (a missed target is reported,
/// not an error).
pub fn run(args: &BenchArgs) -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = match &args.work_dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("iterable-lists-bench-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut report = Report {
        rows: Vec::new(),
        details: serde_json::Map::new(),
    };
    let want = |id: &str| args.only.is_empty() || args.only.iter().any(|o| o == id);
    let started = Instant::now();
    if want("a") {
        eprintln!(
            "(a) parse, map and plan on one core, {} events ...",
            args.events
        );
        plan_throughput(args.events, &mut report)?;
    }
    if want("b") || want("e") {
        eprintln!(
            "(b, e) ingestion of {} changes into durable SQLite, delivery paused ...",
            args.members
        );
        rt.block_on(ingest_and_memory(&dir, args.members, &mut report))?;
    }
    if want("c") {
        eprintln!(
            "(c) end to end, {} events over {AUDIENCES} audiences, {} pollers ...",
            args.events, args.pollers
        );
        rt.block_on(end_to_end(&dir, args.events, args.pollers, &mut report))?;
    }
    if want("d") {
        eprintln!(
            "(d) a {}-member audience at {}/s subscribe requests ...",
            args.members, args.rate
        );
        rt.block_on(big_audience(&dir, args.members, args.rate, &mut report))?;
    }
    if want("compare") {
        eprintln!(
            "(compare) {} events through this code and through @segment/action-destinations ...",
            args.compare_events
        );
        rt.block_on(compare(&dir, args, &mut report))?;
    }
    report.print();
    println!("({:.0} s in all)", started.elapsed().as_secs_f64());
    if let Some(p) = &args.json {
        std::fs::write(p, serde_json::to_string_pretty(&report.to_json())?)
            .with_context(|| format!("writing {}", p.display()))?;
        println!("results written to {}", p.display());
    }
    if args.work_dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Events.

/// An Engage audience identify event: user `user` enters `audience`.
fn engage_event(i: usize, audience: &str, user: usize, list_id: Option<i64>) -> Value {
    let mut personas = json!({"computation_key": audience, "computation_class": "audience",
                              "computation_id": format!("aud_{audience}"), "namespace": "spa_bench",
                              "space_id": "spa_bench"});
    if let Some(id) = list_id {
        personas["external_audience_id"] = Value::String(id.to_string());
    }
    json!({
        "type": "identify", "messageId": format!("b{i}"), "userId": format!("u{user}"),
        "timestamp": "2026-11-29T10:00:00.000Z",
        "traits": {"email": format!("u{user}@example.com"), audience: true},
        "context": {"personas": personas,
                    "library": {"name": "analytics-python", "version": "2.3.3"}}
    })
}

/// `n` events over `audiences` audiences (event i: audience i mod n, user i / n), so each
/// (audience, user) pair is unique.
fn spread_events(n: usize, lists: &[(String, Option<i64>)]) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let (aud, id) = &lists[i % lists.len()];
            engage_event(i, aud, i / lists.len(), *id)
        })
        .collect()
}

fn audiences() -> Vec<(String, Option<i64>)> {
    (0..AUDIENCES)
        .map(|a| (format!("bench_{a:02}"), None))
        .collect()
}

/// Segment tracking API batch bodies of `BATCH` events.
fn bodies(events: &[Value]) -> Vec<String> {
    events
        .chunks(BATCH)
        .map(|c| json!({"batch": c}).to_string())
        .collect()
}

/// The bodies of a one-audience load of `n` members (users `0..n`, messageIds from `offset`).
fn big_bodies(n: usize, offset: usize) -> Vec<String> {
    (0..n.div_ceil(BATCH))
        .map(|b| {
            let events: Vec<Value> = (b * BATCH..((b + 1) * BATCH).min(n))
                .map(|i| engage_event(i + offset, "bench_big", i, None))
                .collect();
            json!({"batch": events}).to_string()
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Processes and counters.

/// CPU seconds (user + system) of a process, or of the calling thread with `"thread-self"`.
fn cpu_seconds(proc_path: &str) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{proc_path}/stat"))
        .with_context(|| format!("reading /proc/{proc_path}/stat"))?;
    // Fields after the command name (which may hold spaces) start at the state, field 3.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("unreadable /proc/{proc_path}/stat"))?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Result<f64> {
        f.get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .ok_or_else(|| anyhow!("unreadable /proc/{proc_path}/stat"))
    };
    // utime and stime are fields 14 and 15, in clock ticks of 1/100 s on Linux.
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}

/// A field of /proc/PID/status in kB (VmHWM: peak resident set; VmRSS: current).
fn status_kib(pid: u32, field: &str) -> Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow!("no {field} in /proc/{pid}/status"))
}

/// The service under test: this binary's `serve`, in a child process.
struct Service {
    child: Child,
    url: String,
    db: PathBuf,
}

impl Service {
    /// Starts `serve` with one destination "bench" sending to `base_url` with `api_key`;
    /// `delivery` is the body of its `[destination.delivery]` table.
    fn start(
        dir: &Path,
        name: &str,
        base_url: &str,
        api_key: &str,
        delivery: &str,
    ) -> Result<Self> {
        let run = dir.join(name);
        let _ = std::fs::remove_dir_all(&run);
        std::fs::create_dir_all(&run)?;
        let db = run.join("db.sqlite");
        let config = run.join("iterable-lists.toml");
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:0\"\nadmin_token = \"{ADMIN}\"\n[storage]\nurl = \"sqlite://{}\"\n\
                 [[destination]]\nname = \"bench\"\napi_key = \"{api_key}\"\nproject_type = \"hybrid\"\n\
                 base_url = \"{base_url}\"\nwrite_keys = [\"{WRITE_KEY}\"]\n[destination.delivery]\n{delivery}\n",
                db.display()
            ),
        )?;
        let exe = std::env::current_exe().context("finding this program")?;
        let mut child = Command::new(exe)
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the service")?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("no stdout from the service"))?;
        let mut lines = BufReader::new(stdout).lines();
        let first = lines
            .next()
            .transpose()?
            .ok_or_else(|| anyhow!("the service exited before listening"))?;
        let url = first
            .strip_prefix("listening on ")
            .ok_or_else(|| anyhow!("unexpected first line from the service: {first}"))?
            .to_string();
        // Keep draining its stdout so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.by_ref() {});
        Ok(Self { child, url, db })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM (graceful shutdown), then waits for the exit.
    fn stop(mut self) -> Result<()> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.child.kill()?;
                self.child.wait()?;
                bail!("the service did not stop within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Posts every body to `/v1/batch` from `SENDERS` concurrent senders; the time it took.
async fn send_all(url: &str, bodies: Arc<Vec<String>>) -> Result<Duration> {
    let http = reqwest::Client::builder().build()?;
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..SENDERS {
        let (bodies, next, http, url) =
            (bodies.clone(), next.clone(), http.clone(), url.to_string());
        tasks.push(tokio::spawn(async move {
            loop {
                let b = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(b) else {
                    return Ok::<(), anyhow::Error>(());
                };
                let r = http
                    .post(format!("{url}/v1/batch"))
                    .basic_auth(WRITE_KEY, Some(""))
                    .header("Content-Type", "application/json")
                    .body(body.clone())
                    .send()
                    .await?;
                if !r.status().is_success() {
                    bail!(
                        "batch {b}: HTTP {}: {}",
                        r.status(),
                        r.text().await.unwrap_or_default()
                    );
                }
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(start.elapsed())
}

async fn emulator(subscribe_limit: Option<u32>) -> Result<RunningEmulator> {
    let mut ec =
        EmulatorConfig::default().with_project(ProjectConfig::new(ProjectType::Hybrid, KEY));
    ec.listen = "127.0.0.1:0".parse()?;
    // The same list ids in every run (the comparison gives all sides the same events).
    ec.seed = Some(1);
    let limit = |s: &str| -> Result<iterable_emulator::config::LimitValue> {
        Ok(iterable_emulator::config::LimitValue(
            s.parse().map_err(|e| anyhow!("{e:?}"))?,
        ))
    };
    ec.limits.insert("all".into(), limit("off")?);
    if let Some(r) = subscribe_limit {
        // A burst of 2: one request of tolerance, so that a request delayed on its way (by
        // scheduling on this shared 2-core machine) does not make the next one, sent on
        // time, look early. With a burst of 1, two schedules at the same rate collide on
        // every millisecond of jitter.
        ec.limits
            .insert("subscribe".into(), limit(&format!("{r}/s,burst=2"))?);
    }
    Emulator::start(ec).await.map_err(|e| anyhow!("{e}"))
}

fn client(base_url: &str) -> Result<Client> {
    Client::new(ClientConfig::new(base_url, ApiKey::new(KEY))).map_err(|e| anyhow!("{e}"))
}

/// A fresh emulator with the lists of the bench audiences already created, as Segment's
/// createAudience hook creates them before its destination sends (events then name their
/// list in `external_audience_id`). The ids are the same in every fresh emulator (seeded).
async fn emulator_with_lists() -> Result<(RunningEmulator, Vec<(String, Option<i64>)>)> {
    let emu = emulator(None).await?;
    let c = client(&emu.url())?;
    let mut lists = Vec::new();
    for (name, _) in audiences() {
        let id = c.create_list(&name).await.map_err(|e| anyhow!("{e}"))?;
        lists.push((name, Some(id)));
    }
    Ok((emu, lists))
}

/// Members of every list in the emulator.
fn members(emu: &RunningEmulator) -> usize {
    emu.state(false)
        .iter()
        .flat_map(|p| p.lists.iter())
        .map(|l| l.size)
        .sum()
}

/// Waits until the emulator's lists hold `n` members; the moment they did.
async fn wait_members(emu: &RunningEmulator, n: usize, limit: Duration) -> Result<Instant> {
    let start = Instant::now();
    loop {
        let m = members(emu);
        if m >= n {
            return Ok(Instant::now());
        }
        if start.elapsed() > limit {
            bail!(
                "the emulator holds {m} of {n} members after {} s",
                limit.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Seconds from acceptance to acknowledgement of every key, sorted, from the stopped
/// service's database.
fn latencies(db: &Path) -> Result<Vec<f64>> {
    let conn = rusqlite::Connection::open(db)?;
    let mut stmt =
        conn.prepare("SELECT ack_ms - accepted_ms FROM desired WHERE ack_ms IS NOT NULL")?;
    let mut v = stmt
        .query_map([], |r| r.get::<_, i64>(0))?
        .map(|r| r.map(|ms| ms as f64 / 1000.0))
        .collect::<Result<Vec<f64>, _>>()?;
    v.sort_by(f64::total_cmp);
    Ok(v)
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// The body of an admin endpoint of the service.
async fn admin_get(url: &str, path: &str) -> Result<Bytes> {
    Ok(reqwest::Client::new()
        .get(format!("{url}{path}"))
        .bearer_auth(ADMIN)
        .send()
        .await?
        .error_for_status()?
        .bytes()
        .await?)
}

/// The service's request and row counters (non-zero samples of `/metrics`).
async fn counters(url: &str) -> Result<Value> {
    let body = admin_get(url, "/metrics").await?;
    let mut out = serde_json::Map::new();
    for l in String::from_utf8_lossy(&body).lines() {
        if !(l.starts_with("iterable_lists_requests_total")
            || l.starts_with("iterable_lists_rows_total"))
        {
            continue;
        }
        if let Some((k, v)) = l.rsplit_once(' ')
            && let Ok(v) = v.parse::<f64>()
            && v > 0.0
        {
            out.insert(k.to_string(), json!(v));
        }
    }
    Ok(Value::Object(out))
}

/// The sum of `pending` over the destination's audiences, from `/v1/status`.
async fn pending_changes(url: &str) -> Result<u64> {
    let v: Value = serde_json::from_slice(&admin_get(url, "/v1/status").await?)?;
    let mut n = 0;
    for d in v["destinations"].as_array().into_iter().flatten() {
        for l in d["audiences"].as_array().into_iter().flatten() {
            n += l["pending"].as_u64().unwrap_or(0);
        }
    }
    Ok(n)
}

// ---------------------------------------------------------------------------------------
// The measures.

fn plan_throughput(n: usize, report: &mut Report) -> Result<()> {
    let lines: Vec<String> = spread_events(n, &audiences())
        .iter()
        .map(Value::to_string)
        .collect();
    let planner = Planner::new(PlanProjectType::Hybrid, ActionMapping::new(None)?);
    let (wall, cpu) = std::thread::scope(|s| {
        s.spawn(|| -> Result<(f64, f64)> {
            let (t, c) = (Instant::now(), cpu_seconds("thread-self")?);
            let mut requests = 0;
            for batch in lines.chunks(1000) {
                let parsed = batch
                    .iter()
                    .map(|l| serde_json::from_str::<Value>(l))
                    .collect::<Result<Vec<_>, _>>()?;
                requests += planner.plan(parsed).requests.len();
            }
            std::hint::black_box(requests);
            Ok((t.elapsed().as_secs_f64(), cpu_seconds("thread-self")? - c))
        })
        .join()
        .map_err(|_| anyhow!("the planning thread panicked"))?
    })?;
    let eps = n as f64 / wall;
    report.row(
        "a",
        "parse, map and plan (one thread), events/s",
        eps,
        "events/s",
    );
    report.details.insert(
        "a".into(),
        json!({"events": n, "wall_s": wall, "thread_cpu_s": cpu}),
    );
    Ok(())
}

async fn ingest_and_memory(dir: &Path, n: usize, report: &mut Report) -> Result<()> {
    let emu = emulator(None).await?;
    let bodies = Arc::new(big_bodies(n, 0));
    let svc = Service::start(dir, "ingest", &emu.url(), WRONG_KEY, "")?;
    let took = send_all(&svc.url, bodies).await?;
    let peak = status_kib(svc.pid(), "VmHWM:")?;
    let rss = status_kib(svc.pid(), "VmRSS:")?;
    let pending = pending_changes(&svc.url).await?;
    let peak_after = status_kib(svc.pid(), "VmHWM:")?;
    svc.stop()?;
    if pending != n as u64 {
        bail!("expected {n} pending changes after ingestion, the service reports {pending}");
    }
    let eps = n as f64 / took.as_secs_f64();
    report.row(
        "b",
        format!("HTTP ingestion into durable SQLite ({n} events), events/s"),
        eps,
        "events/s",
    );
    // The peak over ingestion and one status query.
    let mib = peak.max(peak_after) as f64 / 1024.0;
    report.row(
        "e",
        format!("peak RSS of the service with {pending} pending changes"),
        mib,
        "MiB",
    );
    report.target("under 150 MB", mib * 1.048_576 < 150.0);
    report.details.insert(
        "b_e".into(),
        json!({"events": n, "ingest_s": took.as_secs_f64(), "batch": BATCH, "senders": SENDERS,
               "peak_rss_kib": peak, "rss_after_ingest_kib": rss,
               "peak_rss_after_status_query_kib": peak_after, "pending": pending}),
    );
    Ok(())
}

/// `n` clients that each GET `/metrics` and `/v1/status` in turn, without pause, until
/// `stop` turns true (as scrapers and dashboards would, only harder). Returns the number of
/// answers they got.
fn start_pollers(
    url: &str,
    n: usize,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<Result<u64>>> {
    (0..n)
        .map(|i| {
            let (url, stop) = (url.to_string(), stop.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let mut done = 0u64;
                let paths = ["/metrics", "/v1/status"];
                while !*stop.borrow() {
                    let path = paths[(i + done as usize) % paths.len()];
                    http.get(format!("{url}{path}"))
                        .bearer_auth(ADMIN)
                        .send()
                        .await?
                        .error_for_status()?
                        .bytes()
                        .await?;
                    done += 1;
                }
                Ok(done)
            })
        })
        .collect()
}

async fn end_to_end(dir: &Path, n: usize, pollers: usize, report: &mut Report) -> Result<()> {
    let emu = emulator(None).await?;
    let bodies = Arc::new(bodies(&spread_events(n, &audiences())));
    let svc = Service::start(
        dir,
        "e2e",
        &emu.url(),
        KEY,
        "[destination.delivery.rate_limits]\nsubscribe = \"off\"\nunsubscribe = \"off\"",
    )?;
    let cpu0 = cpu_seconds(&svc.pid().to_string())?;
    let (stop_polling, stop) = tokio::sync::watch::channel(false);
    let polling = start_pollers(&svc.url, pollers, stop);
    let start = Instant::now();
    let ingest = send_all(&svc.url, bodies).await?;
    let done = wait_members(&emu, n, Duration::from_secs(600)).await?;
    let e2e = done - start;
    let cpu = cpu_seconds(&svc.pid().to_string())? - cpu0;
    let _ = stop_polling.send(true);
    let mut polls = 0;
    for p in polling {
        polls += p.await??;
    }
    // The last outcomes are recorded right after the emulator's answer.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let db = svc.db.clone();
    svc.stop()?;
    let lat = latencies(&db)?;
    if lat.len() != n {
        bail!(
            "{} of {n} keys are acknowledged in the service's store",
            lat.len()
        );
    }
    let eps = n as f64 / e2e.as_secs_f64();
    let polled = if pollers > 0 {
        format!(", {pollers} pollers")
    } else {
        String::new()
    };
    report.row(
        "c",
        format!("end to end ({n} events, {AUDIENCES} audiences{polled}), events/s"),
        eps,
        "events/s",
    );
    report.target("20,000 events/s", eps >= 20_000.0);
    report.row(
        "c",
        "latency acceptance to acknowledgement, p50",
        percentile(&lat, 0.5),
        "s",
    );
    report.row(
        "c",
        "latency acceptance to acknowledgement, p99",
        percentile(&lat, 0.99),
        "s",
    );
    report.row("c", "service CPU per event", cpu / n as f64 * 1e6, "µs");
    report.details.insert(
        "c".into(),
        json!({"events": n, "ingest_s": ingest.as_secs_f64(), "e2e_s": e2e.as_secs_f64(),
               "service_cpu_s": cpu, "p50_s": percentile(&lat, 0.5),
               "p90_s": percentile(&lat, 0.9), "p99_s": percentile(&lat, 0.99),
               "max_s": percentile(&lat, 1.0), "batch": BATCH, "senders": SENDERS,
               "pollers": pollers, "polls": polls}),
    );
    Ok(())
}

async fn big_audience(dir: &Path, n: usize, rate: u32, report: &mut Report) -> Result<()> {
    let emu = emulator(Some(rate)).await?;
    let bodies = Arc::new(big_bodies(n, 10_000_000));
    // The service is told the limit, as a user who knows their project's limit would.
    let configured = f64::from(rate);
    let svc = Service::start(
        dir,
        "big",
        &emu.url(),
        KEY,
        &format!("[destination.delivery.rate_limits]\nsubscribe = \"{rate}/s\""),
    )?;
    let start = Instant::now();
    let ingest = send_all(&svc.url, bodies).await?;
    let done = wait_members(&emu, n, Duration::from_secs(3600)).await?;
    let took = (done - start).as_secs_f64();
    let counted = counters(&svc.url).await?;
    svc.stop()?;
    let requests = n.div_ceil(1000);
    // The emulator admits 2 at once, then one every 1/rate s.
    let minimum = (requests.saturating_sub(2) as f64 / f64::from(rate)).max(0.0);
    let ratio = took / minimum;
    report.row(
        "d",
        format!("{n}-member audience pushed, {rate}/s subscribe limit"),
        took,
        "s",
    );
    report.row("d", "  time over the rate-limit minimum", ratio, "×");
    report.target("within 10% (≤ 1.10)", ratio <= 1.10);
    report.details.insert(
        "d".into(),
        json!({"members": n, "rate_per_s": rate, "service_limit_per_s": configured,
               "rows_per_request": 1000,
               "requests": requests, "minimum_s": minimum, "took_s": took,
               "ingest_s": ingest.as_secs_f64(), "ratio": ratio, "service_counters": counted}),
    );
    Ok(())
}

/// Our destination pipeline on one thread (its own Tokio runtime): map and plan each batch of
/// already-parsed events (as Segment's framework hands its actions parsed events), send
/// every request to the emulator and read the answers. CPU of that thread only.
fn our_pipeline(batches: Vec<Vec<Value>>, base_url: &str) -> Result<(f64, f64, usize)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let planner = Planner::new(PlanProjectType::Hybrid, ActionMapping::new(None)?);
    let client = client(base_url)?;
    let (t, c) = (Instant::now(), cpu_seconds("thread-self")?);
    let mut requests = 0;
    rt.block_on(async {
        for batch in batches {
            let plan = planner.plan(batch);
            for r in plan.requests {
                let body = Bytes::from(r.body);
                let resp = match r.op {
                    destination::plan::Operation::Subscribe => client.subscribe(body).await,
                    destination::plan::Operation::Unsubscribe => client.unsubscribe(body).await,
                }
                .map_err(|e| anyhow!("{e}"))?;
                std::hint::black_box(resp);
                requests += 1;
            }
        }
        Ok::<(), anyhow::Error>(())
    })?;
    Ok((
        t.elapsed().as_secs_f64(),
        cpu_seconds("thread-self")? - c,
        requests,
    ))
}

async fn compare(dir: &Path, args: &BenchArgs, report: &mut Report) -> Result<()> {
    let n = args.compare_events;
    let (emu_ours, lists) = emulator_with_lists().await?;
    let (emu_seg, lists_seg) = emulator_with_lists().await?;
    let (emu_svc, lists_svc) = emulator_with_lists().await?;
    // The same events for all three.
    if lists != lists_seg || lists != lists_svc {
        bail!("the emulators gave different list ids");
    }
    let events = spread_events(n, &lists);
    let file = dir.join("compare-events.json");
    std::fs::write(&file, serde_json::to_string(&events)?)?;

    // Ours, like for like: the destination logic and client on one thread, fed batches of
    // 1,000 parsed events of one audience each (as Segment batches per audience).
    let url_ours = emu_ours.url();
    let mut by_audience: Vec<Vec<Value>> = vec![Vec::new(); AUDIENCES];
    for (i, e) in events.iter().enumerate() {
        by_audience[i % AUDIENCES].push(e.clone());
    }
    let batches: Vec<Vec<Value>> = by_audience
        .into_iter()
        .flat_map(|a| a.chunks(1000).map(<[Value]>::to_vec).collect::<Vec<_>>())
        .collect();
    let (wall, cpu, requests) =
        tokio::task::spawn_blocking(move || our_pipeline(batches, &url_ours)).await??;
    let got = members(&emu_ours);
    if got != n {
        bail!("our pipeline left {got} of {n} members in the emulator");
    }
    let ours_eps_cpu = n as f64 / cpu.max(0.01);

    // Segment's, with Node.
    let seg = run_segment(&args.node_dir, &file, &emu_seg.url()).await?;
    let seg_members = members(&emu_seg);
    let seg_cpu = seg["cpu_s"].as_f64().unwrap_or(0.0);
    let seg_events = seg["events"].as_u64().unwrap_or(0) as f64;
    let seg_eps_cpu = seg["events_per_cpu_sec"].as_f64().unwrap_or(0.0);
    let ratio = ours_eps_cpu / seg_eps_cpu.max(1e-9);
    report.row(
        "cmp",
        "ours: events per CPU-second (destination logic + client)",
        ours_eps_cpu,
        "events/cpu-s",
    );
    report.row("cmp", "ours: CPU per event", cpu / n as f64 * 1e6, "µs");
    report.row("cmp", "ours: events/s", n as f64 / wall, "events/s");
    report.row(
        "cmp",
        "segment: events per CPU-second",
        seg_eps_cpu,
        "events/cpu-s",
    );
    report.row(
        "cmp",
        "segment: CPU per event",
        seg_cpu / seg_events.max(1.0) * 1e6,
        "µs",
    );
    report.row(
        "cmp",
        "segment: events/s",
        seg["events_per_sec"].as_f64().unwrap_or(0.0),
        "events/s",
    );
    report.row(
        "cmp",
        "ratio of events per CPU-second, ours / segment",
        ratio,
        "×",
    );
    report.target("at least 20×", ratio >= 20.0);

    // Ours, the whole service (HTTP ingestion, durable store, delivery) on the same events.
    let svc = Service::start(
        dir,
        "compare-service",
        &emu_svc.url(),
        KEY,
        "[destination.delivery.rate_limits]\nsubscribe = \"off\"\nunsubscribe = \"off\"",
    )?;
    let cpu0 = cpu_seconds(&svc.pid().to_string())?;
    let start = Instant::now();
    send_all(&svc.url, Arc::new(bodies(&events))).await?;
    let done = wait_members(&emu_svc, n, Duration::from_secs(600)).await?;
    let svc_cpu = cpu_seconds(&svc.pid().to_string())? - cpu0;
    let svc_wall = (done - start).as_secs_f64();
    svc.stop()?;
    let svc_eps_cpu = n as f64 / svc_cpu.max(0.01);
    report.row(
        "cmp",
        "ours, whole service: events per CPU-second",
        svc_eps_cpu,
        "events/cpu-s",
    );
    report.row(
        "cmp",
        "ours, whole service: events/s",
        n as f64 / svc_wall,
        "events/s",
    );
    report.row(
        "cmp",
        "ratio of events per CPU-second, whole service / segment",
        svc_eps_cpu / seg_eps_cpu.max(1e-9),
        "×",
    );
    report.details.insert(
        "compare".into(),
        json!({"events": n, "ours": {"wall_s": wall, "thread_cpu_s": cpu, "requests": requests,
                                      "members": got},
               "ours_service": {"wall_s": svc_wall, "process_cpu_s": svc_cpu},
               "segment": seg, "segment_members_in_emulator": seg_members}),
    );
    Ok(())
}

/// Runs `bench/segment/run.mjs` (installing its pinned packages first if needed) and returns
/// its JSON line.
async fn run_segment(node_dir: &Path, events: &Path, base_url: &str) -> Result<Value> {
    let script = node_dir.join("run.mjs");
    if !script.exists() {
        bail!(
            "{} not found: run from the repository root or pass --node-dir",
            script.display()
        );
    }
    if !node_dir.join("node_modules").exists() {
        eprintln!(
            "installing the Node side: npm ci --prefix {}",
            node_dir.display()
        );
        let ok = tokio::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--prefix"])
            .arg(node_dir)
            .status()
            .await
            .context("running npm (Node.js 20 and npm are needed for the comparison)")?;
        if !ok.success() {
            bail!("npm ci failed in {}", node_dir.display());
        }
    }
    let out = tokio::process::Command::new("node")
        .arg(&script)
        .arg("--events")
        .arg(events)
        .arg("--base-url")
        .arg(base_url)
        .arg("--api-key")
        .arg(KEY)
        .stderr(Stdio::inherit())
        .output()
        .await
        .context("running node")?;
    if !out.status.success() {
        bail!("the Segment side failed ({})", out.status);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .ok_or_else(|| anyhow!("no JSON result from the Segment side: {text}"))?;
    Ok(serde_json::from_str(line)?)
}
