//! Benchmark of `POST /api/lists/subscribe` on the `iterable-emulator` binary.
//!
//! Measures, against the binary cargo built, run as a child process with `--threads 1`:
//! 1. throughput: subscriber rows per second (wall clock) and per CPU-second of the emulator,
//!    with 1,000-row calls of distinct users, without and with a small `dataFields` object;
//! 2. memory: the emulator's RSS at start and once it holds 1,000,000 list memberships.
//!
//! The emulator is pinned to one CPU and this load generator to another with `taskset` when it
//! exists. Request bodies are serialized before the clock starts.
//!
//! `cargo bench -p iterable-emulator --bench subscribe [-- --json PATH] [-- --strict]`
//! Without `--bench` in its arguments (`cargo test --benches`) it does a tiny run and exits 0.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use bytes::Bytes;
use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_iterable-emulator");
const KEY: &str = "0123456789abcdef0123456789abcdef";
const ROWS_PER_CALL: usize = 1_000;
const TARGET_ROWS_PER_SEC: f64 = 500_000.0;
const TARGET_RSS_MB: f64 = 300.0;
const MEMBERSHIPS: u64 = 1_000_000;
/// Megabytes (10^6 bytes) in a MiB.
const MIB_IN_MB: f64 = 1.048_576;

/// How big a run is: the full benchmark, or the quick proof that it works.
struct Plan {
    full: bool,
    connections: usize,
    warmup_calls: usize,
    measured_calls: usize,
    memory_calls: usize,
    memory_lists: usize,
    /// Measured runs per throughput scenario, each on a fresh emulator; the median is reported.
    repeats: usize,
    /// A measured run stops here even when calls remain (rows done so far are reported).
    deadline: Duration,
}

impl Plan {
    fn new(full: bool) -> Self {
        if full {
            Plan {
                full,
                connections: 4,
                warmup_calls: 20,
                measured_calls: 1_000,
                memory_calls: (MEMBERSHIPS as usize) / ROWS_PER_CALL,
                memory_lists: 10,
                repeats: 3,
                deadline: Duration::from_secs(30),
            }
        } else {
            Plan {
                full,
                connections: 2,
                warmup_calls: 1,
                measured_calls: 4,
                memory_calls: 5,
                memory_lists: 1,
                repeats: 1,
                deadline: Duration::from_secs(30),
            }
        }
    }
}

struct Args {
    full: bool,
    json: Option<String>,
    strict: bool,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        full: false,
        json: None,
        strict: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--bench" => args.full = true,
            "--strict" => args.strict = true,
            "--json" => args.json = Some(it.next().context("--json needs a PATH")?),
            _ => {
                if let Some(p) = a.strip_prefix("--json=") {
                    args.json = Some(p.to_string());
                }
                // Anything else (a cargo bench filter, --nocapture, ...) is ignored.
            }
        }
    }
    Ok(args)
}

// ---- CPU pinning ----------------------------------------------------------------------------

/// The CPUs this process may run on, from `Cpus_allowed_list` ("0-3,6").
fn allowed_cpus() -> Vec<usize> {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return Vec::new();
    };
    let Some(list) = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
    else {
        return Vec::new();
    };
    let mut cpus = Vec::new();
    for part in list.trim().split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(a), Ok(b)) = (a.trim().parse::<usize>(), b.trim().parse::<usize>()) {
            cpus.extend(a..=b.min(a + 4096));
        }
    }
    cpus
}

/// Where the emulator and the load generator run.
struct Pinning {
    emulator_cpu: Option<usize>,
    client_cpu: Option<usize>,
    note: String,
}

/// Pins this process (still single-threaded: call before starting the runtime) to the second
/// allowed CPU and picks the first for the emulator. Falls back to no pinning without taskset.
fn pin() -> Pinning {
    let cpus = allowed_cpus();
    let Some(&first) = cpus.first() else {
        return Pinning {
            emulator_cpu: None,
            client_cpu: None,
            note: "not pinned (cannot read the allowed CPUs)".into(),
        };
    };
    let taskset_works = Command::new("taskset")
        .args(["-p", &std::process::id().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !taskset_works {
        return Pinning {
            emulator_cpu: None,
            client_cpu: None,
            note: "not pinned (no usable taskset); emulator still runs one worker thread".into(),
        };
    }
    let Some(&second) = cpus.get(1) else {
        return Pinning {
            emulator_cpu: Some(first),
            client_cpu: None,
            note: format!("emulator on CPU {first}; only one CPU, load generator shares it"),
        };
    };
    let pinned_self = Command::new("taskset")
        .args([
            "-a",
            "-p",
            "-c",
            &second.to_string(),
            &std::process::id().to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    Pinning {
        emulator_cpu: Some(first),
        client_cpu: pinned_self.then_some(second),
        note: if pinned_self {
            format!("emulator on CPU {first}, load generator on CPU {second}")
        } else {
            format!("emulator on CPU {first}, load generator not pinned")
        },
    }
}

// ---- /proc ------------------------------------------------------------------------------------

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// utime + stime of a process (all its threads), in seconds.
fn cpu_seconds(pid: &str, ticks: f64) -> Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    // The command name may hold spaces and parentheses: fields are counted after the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .with_context(|| format!("unexpected {path}: {stat:?}"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')' comes field 3 (state); utime and stime are fields 14 and 15.
    let field = |i: usize| -> Result<f64> {
        fields
            .get(i - 3)
            .and_then(|v| v.parse::<f64>().ok())
            .with_context(|| format!("no field {i} in {path}"))
    };
    Ok((field(14)? + field(15)?) / ticks)
}

/// A `kB` line of `/proc/<pid>/status` (`VmRSS`, `VmHWM`), in MiB.
fn status_mib(pid: u32, key: &str) -> Result<f64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {key} in {path}"))?;
    Ok(kib / 1024.0)
}

// ---- the emulator process ---------------------------------------------------------------------

/// A running emulator child. Dropping it kills the process, on every path out.
struct EmulatorProcess {
    child: Child,
    url: String,
    stderr: Arc<Mutex<String>>,
}

impl Drop for EmulatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl EmulatorProcess {
    fn start(cpu: Option<usize>, extra: &[&str]) -> Result<Self> {
        let project = format!("hybrid:{KEY}");
        let mut args: Vec<&str> = vec![
            "--listen",
            "127.0.0.1:0",
            "--project",
            &project,
            "--threads",
            "1",
            "--limit",
            "all=off",
        ];
        args.extend_from_slice(extra);
        let cpu_s = cpu.map(|c| c.to_string());
        let mut cmd = match &cpu_s {
            // taskset execs the emulator: the child's pid is the emulator's.
            Some(c) => {
                let mut cmd = Command::new("taskset");
                cmd.args(["-c", c, BIN]);
                cmd
            }
            None => Command::new(BIN),
        };
        let mut child = cmd
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {BIN}"))?;
        let stdout = child.stdout.take().context("no stdout pipe")?;
        let stderr_pipe = child.stderr.take().context("no stderr pipe")?;
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut proc = EmulatorProcess {
            child,
            url: String::new(),
            stderr: stderr.clone(),
        };
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let mut pipe = stderr_pipe;
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if let Ok(mut s) = stderr.lock()
                    && s.len() < 16 * 1024
                {
                    s.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            }
        });
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next());
            // Keep draining so that later output never blocks the emulator.
            for _ in lines {}
        });
        let first = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Some(Ok(line))) => line,
            Ok(_) | Err(_) => {
                std::thread::sleep(Duration::from_millis(100));
                bail!(
                    "the emulator did not print its address; stderr: {}",
                    proc.stderr_text()
                );
            }
        };
        proc.url = first
            .trim()
            .strip_prefix("listening on ")
            .with_context(|| format!("unexpected first line from the emulator: {first:?}"))?
            .to_string();
        Ok(proc)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stderr_text(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn cpu_seconds(&self, ticks: f64) -> Result<f64> {
        cpu_seconds(&self.pid().to_string(), ticks)
    }
}

// ---- requests -----------------------------------------------------------------------------------

/// One pre-serialized subscribe body and the number of rows in it.
struct Call {
    body: Bytes,
    rows: u64,
}

/// `calls` bodies of `rows` rows each, users numbered from `first_user` on, lists taken in turn.
fn subscribe_bodies(
    lists: &[i64],
    calls: usize,
    rows: usize,
    first_user: u64,
    data_fields: bool,
) -> Vec<Call> {
    (0..calls)
        .map(|c| {
            let list = lists[c % lists.len()];
            let mut s = String::with_capacity(64 + rows * if data_fields { 120 } else { 70 });
            let _ = write!(s, "{{\"listId\":{list},\"subscribers\":[");
            for r in 0..rows {
                let n = first_user + (c * rows + r) as u64;
                if r > 0 {
                    s.push(',');
                }
                let _ = write!(
                    s,
                    "{{\"email\":\"user{n:08}@bench.example.com\",\"userId\":\"uid-{n:08}\""
                );
                if data_fields {
                    let _ = write!(
                        s,
                        ",\"dataFields\":{{\"plan\":\"pro\",\"score\":{},\"active\":true}}",
                        n % 100
                    );
                }
                s.push('}');
            }
            s.push_str("]}");
            Call {
                body: Bytes::from(s),
                rows: rows as u64,
            }
        })
        .collect()
}

fn client() -> Result<reqwest::Client> {
    // In a workspace build reqwest carries rustls without a default provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(64)
        .timeout(Duration::from_secs(60))
        .build()
        .context("cannot build the HTTP client")
}

async fn create_list(http: &reqwest::Client, base: &str, name: &str) -> Result<i64> {
    let r = http
        .post(format!("{base}/api/lists"))
        .header("Api-Key", KEY)
        .header(CONTENT_TYPE, "application/json")
        .body(json!({ "name": name }).to_string())
        .send()
        .await
        .with_context(|| format!("POST {base}/api/lists"))?;
    let status = r.status();
    let body = r.bytes().await.context("reading the create-list answer")?;
    ensure!(
        status == 200,
        "create list: HTTP {status}: {}",
        String::from_utf8_lossy(&body)
    );
    let v: Value = serde_json::from_slice(&body).context("create-list answer is not JSON")?;
    v["listId"]
        .as_i64()
        .with_context(|| format!("no listId in {v}"))
}

/// users and memberships of the (only) project, from `GET /_emulator/stats`.
async fn stats(http: &reqwest::Client, base: &str) -> Result<(u64, u64)> {
    let r = http
        .get(format!("{base}/_emulator/stats"))
        .send()
        .await
        .with_context(|| format!("GET {base}/_emulator/stats"))?;
    let status = r.status();
    let body = r.bytes().await.context("reading /_emulator/stats")?;
    ensure!(
        status == 200,
        "stats: HTTP {status}: {}",
        String::from_utf8_lossy(&body)
    );
    let v: Value = serde_json::from_slice(&body).context("stats answer is not JSON")?;
    let p = &v["projects"][0];
    match (p["users"].as_u64(), p["memberships"].as_u64()) {
        (Some(u), Some(m)) => Ok((u, m)),
        _ => bail!("unexpected stats answer: {v}"),
    }
}

/// Sends every call over `connections` concurrent keep-alive connections; each answer must be
/// 200 with every row a success. Returns calls and rows done (fewer when the deadline struck).
async fn drive(
    http: &reqwest::Client,
    base: &str,
    calls: Arc<Vec<Call>>,
    connections: usize,
    deadline: Duration,
) -> Result<(usize, u64)> {
    let url = format!("{base}/api/lists/subscribe");
    let next = Arc::new(AtomicUsize::new(0));
    let stop_at = Instant::now() + deadline;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections.max(1) {
        let (http, url, calls, next) = (http.clone(), url.clone(), calls.clone(), next.clone());
        tasks.spawn(async move {
            let (mut done, mut rows) = (0usize, 0u64);
            while Instant::now() < stop_at {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(call) = calls.get(i) else { break };
                let r = http
                    .post(&url)
                    .header("Api-Key", KEY)
                    .header(CONTENT_TYPE, "application/json")
                    .body(call.body.clone())
                    .send()
                    .await
                    .with_context(|| format!("subscribe call {i}: POST {url}"))?;
                let status = r.status();
                let body = r
                    .bytes()
                    .await
                    .with_context(|| format!("subscribe call {i}: reading the answer"))?;
                ensure!(
                    status == 200,
                    "subscribe call {i}: HTTP {status}: {}",
                    String::from_utf8_lossy(&body[..body.len().min(512)])
                );
                let v: Value = serde_json::from_slice(&body)
                    .with_context(|| format!("subscribe call {i}: answer is not JSON"))?;
                let ok = v["successCount"].as_u64().unwrap_or(0);
                ensure!(
                    ok == call.rows,
                    "subscribe call {i}: {ok} of {} rows succeeded: {v}",
                    call.rows
                );
                done += 1;
                rows += ok;
            }
            Ok::<_, anyhow::Error>((done, rows))
        });
    }
    let (mut done, mut rows) = (0, 0);
    while let Some(joined) = tasks.join_next().await {
        let (d, r) = joined.context("a load-generator task failed")??;
        done += d;
        rows += r;
    }
    Ok((done, rows))
}

// ---- the scenarios ------------------------------------------------------------------------------

/// One measured run on a fresh emulator.
struct Run {
    calls: usize,
    rows: u64,
    wall_s: f64,
    emulator_cpu_s: f64,
    client_cpu_s: f64,
}

impl Run {
    fn rows_per_s(&self) -> f64 {
        self.rows as f64 / self.wall_s.max(1e-9)
    }
    fn rows_per_cpu_s(&self) -> f64 {
        self.rows as f64 / self.emulator_cpu_s.max(1e-9)
    }
}

/// A throughput scenario: its median run (by rows/s wall) and every run's rate.
struct Throughput {
    name: &'static str,
    median: Run,
    rates: Vec<f64>,
    body_bytes: usize,
}

/// Bodies made for one list id, kept across runs (fresh emulators hand out the same first id).
struct Bodies {
    list: i64,
    warmup: Arc<Vec<Call>>,
    measured: Arc<Vec<Call>>,
}

async fn throughput_run(
    plan: &Plan,
    pinning: &Pinning,
    ticks: f64,
    name: &str,
    data_fields: bool,
    bodies: &mut Option<Bodies>,
) -> Result<Run> {
    let emu = EmulatorProcess::start(pinning.emulator_cpu, &[])?;
    let http = client()?;
    let list = create_list(&http, &emu.url, "bench").await?;
    if bodies.as_ref().is_none_or(|b| b.list != list) {
        let warmup = subscribe_bodies(&[list], plan.warmup_calls, ROWS_PER_CALL, 0, data_fields);
        let measured = subscribe_bodies(
            &[list],
            plan.measured_calls,
            ROWS_PER_CALL,
            (plan.warmup_calls * ROWS_PER_CALL) as u64,
            data_fields,
        );
        *bodies = Some(Bodies {
            list,
            warmup: Arc::new(warmup),
            measured: Arc::new(measured),
        });
    }
    let b = bodies.as_ref().context("no bodies")?;
    // Warm-up: opens the connections and grows the emulator's first buffers.
    drive(
        &http,
        &emu.url,
        b.warmup.clone(),
        plan.connections,
        plan.deadline,
    )
    .await
    .context("warm-up")?;
    let me = std::process::id().to_string();
    let (emu0, me0) = (emu.cpu_seconds(ticks)?, cpu_seconds(&me, ticks)?);
    let t0 = Instant::now();
    let (calls, rows) = drive(
        &http,
        &emu.url,
        b.measured.clone(),
        plan.connections,
        plan.deadline,
    )
    .await?;
    let wall_s = t0.elapsed().as_secs_f64();
    let (emu1, me1) = (emu.cpu_seconds(ticks)?, cpu_seconds(&me, ticks)?);
    let (users, memberships) = stats(&http, &emu.url).await?;
    let expected = ((plan.warmup_calls + calls) * ROWS_PER_CALL) as u64;
    ensure!(
        users == expected && memberships == expected,
        "{name}: the emulator holds {users} users and {memberships} memberships, expected {expected}"
    );
    Ok(Run {
        calls,
        rows,
        wall_s,
        emulator_cpu_s: emu1 - emu0,
        client_cpu_s: me1 - me0,
    })
}

async fn throughput(
    plan: &Plan,
    pinning: &Pinning,
    ticks: f64,
    name: &'static str,
    data_fields: bool,
) -> Result<Throughput> {
    let mut bodies = None;
    let mut runs = Vec::new();
    for i in 0..plan.repeats.max(1) {
        let run = throughput_run(plan, pinning, ticks, name, data_fields, &mut bodies)
            .await
            .with_context(|| format!("{name}, run {}", i + 1))?;
        runs.push(run);
    }
    let body_bytes = bodies
        .as_ref()
        .and_then(|b| b.measured.first())
        .map_or(0, |c| c.body.len());
    runs.sort_by(|a, b| a.rows_per_s().total_cmp(&b.rows_per_s()));
    let rates = runs.iter().map(Run::rows_per_s).collect();
    let median = runs.swap_remove(runs.len() / 2);
    Ok(Throughput {
        name,
        median,
        rates,
        body_bytes,
    })
}

struct Memory {
    name: &'static str,
    start_mib: f64,
    end_mib: f64,
    peak_mib: f64,
    users: u64,
    memberships: u64,
    lists: usize,
}

async fn memory(
    plan: &Plan,
    pinning: &Pinning,
    name: &'static str,
    extra: &[&str],
) -> Result<Memory> {
    let emu = EmulatorProcess::start(pinning.emulator_cpu, extra)?;
    let pid = emu.pid();
    let http = client()?;
    // Let the runtime settle before the first reading.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let start_mib = status_mib(pid, "VmRSS")?;
    let mut lists = Vec::new();
    for i in 0..plan.memory_lists {
        lists.push(create_list(&http, &emu.url, &format!("memory_{i}")).await?);
    }
    let calls = Arc::new(subscribe_bodies(
        &lists,
        plan.memory_calls,
        ROWS_PER_CALL,
        0,
        false,
    ));
    let (done, _) = drive(&http, &emu.url, calls, plan.connections, plan.deadline * 3)
        .await
        .with_context(|| format!("{name}: filling the lists"))?;
    ensure!(
        done == plan.memory_calls,
        "{name}: only {done} of {} calls finished in time",
        plan.memory_calls
    );
    let (users, memberships) = stats(&http, &emu.url).await?;
    let expected = (plan.memory_calls * ROWS_PER_CALL) as u64;
    ensure!(
        memberships == expected,
        "{name}: the emulator holds {memberships} memberships, expected {expected}"
    );
    Ok(Memory {
        name,
        start_mib,
        end_mib: status_mib(pid, "VmRSS")?,
        peak_mib: status_mib(pid, "VmHWM")?,
        users,
        memberships,
        lists: lists.len(),
    })
}

// ---- report -------------------------------------------------------------------------------------

fn thousands(v: f64) -> String {
    let n = v.round().max(0.0) as u64;
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn report(
    plan: &Plan,
    pinning: &Pinning,
    tp: &[Throughput],
    mem: &[Memory],
) -> (String, Value, bool) {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\niterable-emulator subscribe bench{} ({}; emulator --threads 1, {} keep-alive connections, {} rows/call, {} measured calls per run after {} warm-up calls, {} runs per scenario)\n",
        if plan.full { "" } else { " [quick mode]" },
        pinning.note,
        plan.connections,
        ROWS_PER_CALL,
        plan.measured_calls,
        plan.warmup_calls,
        plan.repeats,
    );
    let _ = writeln!(
        s,
        "{:<26} {:>6} {:>10} {:>8} {:>12} {:>10} {:>12} {:>10} {:>9}   rows/s of every run",
        "throughput (median run)",
        "calls",
        "rows",
        "wall s",
        "rows/s wall",
        "emu CPU s",
        "rows/CPU-s",
        "client CPU",
        "body KiB",
    );
    for t in tp {
        let m = &t.median;
        let _ = writeln!(
            s,
            "{:<26} {:>6} {:>10} {:>8.3} {:>12} {:>10.2} {:>12} {:>10.2} {:>9.1}   {}",
            t.name,
            m.calls,
            thousands(m.rows as f64),
            m.wall_s,
            thousands(m.rows_per_s()),
            m.emulator_cpu_s,
            thousands(m.rows_per_cpu_s()),
            m.client_cpu_s,
            t.body_bytes as f64 / 1024.0,
            t.rates
                .iter()
                .map(|r| thousands(*r))
                .collect::<Vec<_>>()
                .join(" "),
        );
    }
    let _ = writeln!(
        s,
        "\n{:<26} {:>6} {:>10} {:>12} {:>14} {:>14} {:>14}",
        "memory", "lists", "users", "memberships", "RSS start MiB", "RSS end MiB", "peak RSS MiB"
    );
    for m in mem {
        let _ = writeln!(
            s,
            "{:<26} {:>6} {:>10} {:>12} {:>14.1} {:>14.1} {:>14.1}",
            m.name,
            m.lists,
            thousands(m.users as f64),
            thousands(m.memberships as f64),
            m.start_mib,
            m.end_mib,
            m.peak_mib,
        );
    }
    let rate = tp.first().map_or(0.0, |t| t.median.rows_per_s());
    // The target is in decimal megabytes: 300 MB is 286.1 MiB.
    let rss = mem.first().map_or(f64::INFINITY, |m| m.end_mib * MIB_IN_MB);
    let rate_ok = rate >= TARGET_ROWS_PER_SEC;
    let rss_ok = rss < TARGET_RSS_MB;
    if plan.full {
        let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
        let _ = writeln!(
            s,
            "\ntarget >= {} rows/s on one core: {} ({} rows/s wall, {} rows per CPU-second)",
            thousands(TARGET_ROWS_PER_SEC),
            verdict(rate_ok),
            thousands(rate),
            thousands(tp.first().map_or(0.0, |t| t.median.rows_per_cpu_s())),
        );
        let _ = writeln!(
            s,
            "target < {TARGET_RSS_MB} MB RSS at {} memberships: {} ({rss:.1} MB = {:.1} MiB)",
            thousands(MEMBERSHIPS as f64),
            verdict(rss_ok),
            rss / MIB_IN_MB,
        );
    } else {
        let _ = writeln!(
            s,
            "\nquick mode (no --bench argument): sizes are tiny, figures mean nothing; run `cargo bench -p iterable-emulator --bench subscribe`"
        );
    }
    let j = json!({
        "mode": if plan.full { "full" } else { "quick" },
        "pinning": pinning.note,
        "emulator_cpu": pinning.emulator_cpu,
        "client_cpu": pinning.client_cpu,
        "connections": plan.connections,
        "runs_per_throughput_scenario": plan.repeats,
        "rows_per_call": ROWS_PER_CALL,
        "throughput": tp.iter().map(|t| json!({
            "scenario": t.name,
            "runs": t.rates.len(),
            "calls": t.median.calls,
            "rows": t.median.rows,
            "wall_seconds": t.median.wall_s,
            "rows_per_second": t.median.rows_per_s(),
            "emulator_cpu_seconds": t.median.emulator_cpu_s,
            "rows_per_cpu_second": t.median.rows_per_cpu_s(),
            "client_cpu_seconds": t.median.client_cpu_s,
            "rows_per_second_every_run": t.rates,
            "body_bytes": t.body_bytes,
        })).collect::<Vec<_>>(),
        "memory": mem.iter().map(|m| json!({
            "scenario": m.name,
            "lists": m.lists,
            "users": m.users,
            "memberships": m.memberships,
            "rss_start_mib": m.start_mib,
            "rss_end_mib": m.end_mib,
            "rss_peak_mib": m.peak_mib,
        })).collect::<Vec<_>>(),
        "targets": {
            "rows_per_second": TARGET_ROWS_PER_SEC,
            "rows_per_second_met": rate_ok,
            "rss_mb": TARGET_RSS_MB,
            "rss_met": rss_ok,
        },
    });
    (s, j, rate_ok && rss_ok)
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let plan = Plan::new(args.full);
    // Pin before the runtime starts any thread, so that every thread inherits the CPU.
    let pinning = pin();
    let ticks = clock_ticks_per_second();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let (tp, mem) = rt.block_on(async {
        let tp = vec![
            throughput(&plan, &pinning, ticks, "subscribe, no dataFields", false)
                .await
                .context("throughput without dataFields")?,
            throughput(&plan, &pinning, ticks, "subscribe, 3 dataFields", true)
                .await
                .context("throughput with dataFields")?,
        ];
        let mut mem = vec![
            memory(&plan, &pinning, "default config", &[])
                .await
                .context("memory")?,
        ];
        if plan.full {
            mem.push(
                memory(
                    &plan,
                    &pinning,
                    "--request-log-capacity 1",
                    &["--request-log-capacity", "1"],
                )
                .await
                .context("memory with the request log off")?,
            );
        }
        Ok::<_, anyhow::Error>((tp, mem))
    })?;
    let (text, j, met) = report(&plan, &pinning, &tp, &mem);
    println!("{text}");
    if let Some(path) = &args.json {
        let out = serde_json::to_string_pretty(&j).context("serializing the results")?;
        std::fs::write(path, out + "\n").with_context(|| format!("cannot write {path}"))?;
        println!("results written to {path}");
    }
    if plan.full && args.strict && !met {
        bail!("a target was missed (--strict)");
    }
    Ok(())
}
