//! Idle and slow connections against the real `iterable-lists serve` process under a 256-file
//! limit (soft and hard): 400 connections that send nothing, half a header, or one byte of a
//! body must not keep a legitimate request from being answered, and "too many open files" is
//! not logged in a loop.

#![cfg(unix)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use iterable_emulator::{Emulator, EmulatorConfig, ProjectConfig, ProjectType, RunningEmulator};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const KEY: &str = "0123456789abcdef0123456789abcdef";
const WRITE_KEY: &str = "wk_hostile";
const FILE_LIMIT: u32 = 256;
const HOSTILE: usize = 400;

/// The service process, killed when dropped.
struct Service {
    child: Child,
    url: String,
    stderr: PathBuf,
    dir: PathBuf,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Service {
    /// Starts `iterable-lists serve` with `ulimit -n 256` and `extra` top-level config text.
    fn start(tag: &str, emu: &RunningEmulator, extra: &str) -> Service {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!(
            "iterable-lists-hostile-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let config = dir.join("config.toml");
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:0\"\n{extra}\n[storage]\nurl = \"sqlite://{}\"\n\
                 [[destination]]\nname = \"prod\"\napi_key = \"{KEY}\"\nbase_url = \"{}\"\n\
                 write_keys = [\"{WRITE_KEY}\"]\n[destination.delivery]\nlinger_ms = 20\n",
                dir.join("db.sqlite").display(),
                emu.url()
            ),
        )
        .expect("config");
        let stderr = dir.join("stderr.log");
        let log = std::fs::File::create(&stderr).expect("log");
        // `ulimit -n N` sets the soft and the hard limit: the service cannot raise it.
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "ulimit -n {FILE_LIMIT} && exec \"$0\" serve --config \"$1\""
            ))
            .arg(env!("CARGO_BIN_EXE_iterable-lists"))
            .arg(&config)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn iterable-lists serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("first line");
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        Service {
            child,
            url,
            stderr,
            dir,
        }
    }

    fn addr(&self) -> String {
        self.url.trim_start_matches("http://").to_string()
    }

    /// The process's open-file limits, soft and hard, from /proc (Linux).
    fn file_limits(&self) -> Option<(u64, u64)> {
        let text = std::fs::read_to_string(format!("/proc/{}/limits", self.child.id())).ok()?;
        let line = text.lines().find(|l| l.starts_with("Max open files"))?;
        let mut n = line
            .split_whitespace()
            .filter_map(|w| w.parse::<u64>().ok());
        Some((n.next()?, n.next()?))
    }

    /// Descriptors the process holds now (Linux).
    fn open_files(&self) -> Option<usize> {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .ok()
            .map(|d| d.count())
    }

    fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

/// The three kinds of hostile connection, in turn (or only bodies).
async fn hostile(addr: &str, n: usize, only_bodies: bool) -> Vec<TcpStream> {
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        let Ok(mut s) = TcpStream::connect(addr).await else {
            continue;
        };
        let first: &[u8] = match if only_bodies { 2 } else { i % 3 } {
            0 => b"",
            1 => b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Le",
            _ => {
                b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                   Content-Length: 1000\r\n\r\n{"
            }
        };
        // A write may fail once the service has closed the connection: that is its right.
        let _ = s.write_all(first).await;
        conns.push(s);
    }
    conns
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Generous: this is not a timing test, only whether the request gets through.
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

/// A legitimate batch: answered 200, and the member reaches the emulator's list.
async fn legitimate(svc: &Service, http: &reqwest::Client, id: &str) -> Duration {
    let t0 = Instant::now();
    let body = json!({"batch": [{
        "type": "identify", "messageId": id, "userId": id,
        "traits": {"email": format!("{id}@example.com"), "vip": true},
        "context": {"personas": {"computation_key": "vip", "computation_class": "audience"}}
    }]});
    let r = http
        .post(format!("{}/v1/batch", svc.url))
        .basic_auth(WRITE_KEY, Some(""))
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{id}: the request failed: {e}\n{}", svc.stderr_text()));
    let status = r.status().as_u16();
    let text = r.text().await.unwrap_or_default();
    assert_eq!(status, 200, "{id}: {text}");
    t0.elapsed()
}

async fn wait_member(emu: &RunningEmulator, email: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found = emu.state(true).iter().flat_map(|p| &p.lists).any(|l| {
            l.members
                .iter()
                .flatten()
                .any(|m| m.email.as_deref() == Some(email))
        });
        if found {
            return;
        }
        assert!(Instant::now() < deadline, "{email} never reached the list");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn emulator() -> RunningEmulator {
    let mut c =
        EmulatorConfig::default().with_project(ProjectConfig::new(ProjectType::Hybrid, KEY));
    c.listen = "127.0.0.1:0".parse().expect("addr");
    Emulator::start(c).await.expect("emulator")
}

fn accept_failures(svc: &Service) -> usize {
    svc.stderr_text()
        .lines()
        .filter(|l| l.contains("accept failed"))
        .count()
}

fn check_limits(svc: &Service) {
    if Path::new("/proc/self/limits").exists() {
        assert_eq!(
            svc.file_limits(),
            Some((u64::from(FILE_LIMIT), u64::from(FILE_LIMIT))),
            "the service should run with a {FILE_LIMIT}-file limit"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slow_connections_do_not_lock_out_a_legitimate_request() {
    let emu = emulator().await;
    let svc = Service::start("default", &emu, "");
    check_limits(&svc);
    let http = client();

    let held = hostile(&svc.addr(), HOSTILE, false).await;
    let took = legitimate(&svc, &http, "legit1").await;
    eprintln!(
        "400 mixed hostile connections: answered in {took:?}; {} files open",
        svc.open_files().unwrap_or(0)
    );
    wait_member(&emu, "legit1@example.com").await;

    // The hardest kind alone: every connection inside a body.
    let held_bodies = hostile(&svc.addr(), HOSTILE, true).await;
    let took = legitimate(&svc, &http, "legit2").await;
    eprintln!("400 stalled bodies: answered in {took:?}");
    let r = http
        .get(format!("{}/healthz", svc.url))
        .send()
        .await
        .expect("healthz");
    assert_eq!(r.status().as_u16(), 200);
    wait_member(&emu, "legit2@example.com").await;
    drop((held, held_bodies));

    let log = svc.stderr_text();
    assert!(
        log.contains("accepting up to 160 connections"),
        "the cap derived from 256 files: {log}"
    );
    assert_eq!(accept_failures(&svc), 0, "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_files_frees_a_descriptor_backs_off_and_logs_once() {
    let emu = emulator().await;
    // A cap above what 256 files allow: accepts fail with EMFILE instead.
    let svc = Service::start("emfile", &emu, "[http]\nmax_connections = 5000");
    check_limits(&svc);
    let http = client();

    let held = hostile(&svc.addr(), HOSTILE, false).await;
    let took = legitimate(&svc, &http, "legit3").await;
    eprintln!("out of files: answered in {took:?}");
    wait_member(&emu, "legit3@example.com").await;
    drop(held);

    let log = svc.stderr_text();
    let failures = accept_failures(&svc);
    assert!(failures >= 1, "EMFILE was expected: {log}");
    // At most once per 10 s, with a count (the test takes far less than a minute).
    assert!(failures <= 6, "{failures} lines: {log}");
    assert!(log.contains("Too many open files"), "{log}");
}
