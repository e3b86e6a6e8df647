//! The command on PostgreSQL, as an operator runs it: `serve` with the database URL in
//! `ITERABLE_LISTS_STORAGE_URL` (the password out of the file), events in, the emulator's list
//! filled; `status` and `events show` read the same database; the password never appears in
//! anything printed; and inspection of a database the service never ran on fails clearly
//! without creating anything.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use iterable_emulator::{Emulator, EmulatorConfig, ProjectConfig, ProjectType};
use serde_json::Value;
use testkit::postgres::PgSchema;

const BIN: &str = env!("CARGO_BIN_EXE_iterable-lists");
const KEY: &str = "0123456789abcdef0123456789abcd21";
const WRITE_KEY: &str = "wk_pg_cli";
const STORAGE_ENV: &str = "ITERABLE_LISTS_STORAGE_URL";
/// The test server trusts local connections, so any password works: this one must never be
/// printed.
const PASSWORD: &str = "pw_must_not_leak_42";

/// A fresh directory, removed at the end.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let p = std::env::temp_dir().join(format!("il-pg-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("temp dir");
        Dir(p)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process, killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The schema's URL with a password added (`postgres://user@` becomes
/// `postgres://user:PASSWORD@`).
fn with_password(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    match rest.split_once('@') {
        Some((user, host)) => format!("{scheme}://{user}:{PASSWORD}@{host}"),
        None => format!("{scheme}://postgres:{PASSWORD}@{rest}"),
    }
}

/// The config: storage comes from the environment, so the file says SQLite (overridden).
fn write_config(dir: &Path, base_url: &str) -> PathBuf {
    let p = dir.join("iterable-lists.toml");
    std::fs::write(
        &p,
        format!(
            "listen = \"127.0.0.1:0\"\n[storage]\nurl = \"sqlite://never-created.db\"\n\
             pool_size = 4\n[[destination]]\nname = \"prod\"\napi_key = \"{KEY}\"\n\
             write_keys = [\"{WRITE_KEY}\"]\nbase_url = \"{base_url}\"\n\
             [destination.delivery]\nlinger_ms = 20\n"
        ),
    )
    .expect("write config");
    p
}

fn run(config: &Path, url: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(config)
        .env(STORAGE_ENV, url)
        .env_remove("ITERABLE_LISTS_LISTEN")
        .output()
        .expect("run iterable-lists")
}

fn texts(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_status_and_events_show_on_postgres() {
    let schema = PgSchema::create("cli");
    let url = with_password(&schema.url());
    let mut c =
        EmulatorConfig::default().with_project(ProjectConfig::new(ProjectType::Hybrid, KEY));
    c.listen = "127.0.0.1:0".parse().expect("addr");
    let emu = Emulator::start(c).await.expect("emulator");
    let dir = Dir::new("serve");
    let config = write_config(&dir.0, &emu.url());

    // Before the service ever ran: inspection fails clearly and creates nothing.
    let o = run(&config, &url, &["status"]);
    assert!(!o.status.success());
    let out = texts(&o);
    assert!(out.contains("no iterable-lists schema"), "{out}");
    assert!(
        out.contains(":***@"),
        "the URL is named without its password: {out}"
    );
    assert!(!out.contains(PASSWORD), "{out}");

    let mut child = Command::new(BIN)
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .env(STORAGE_ENV, &url)
        .env_remove("ITERABLE_LISTS_LISTEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let (tx, lines) = mpsc::channel();
    for stream in [
        Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().expect("stderr")),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
    }
    let svc = Running(child);
    let mut printed = Vec::new();
    let base = loop {
        let line = lines
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|e| panic!("serve printed no address ({e}): {printed:?}"));
        if let Some(u) = line.strip_prefix("listening on ") {
            break u.to_string();
        }
        printed.push(line);
    };
    assert!(
        !dir.0.join("never-created.db").exists(),
        "the file's URL was used"
    );

    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let body = r#"{"batch":[
        {"type":"identify","messageId":"pg-1","userId":"ann","traits":{"email":"ann@example.com","vip":true},"context":{"personas":{"computation_key":"vip","computation_class":"audience"}}},
        {"type":"identify","messageId":"pg-2","userId":"bob","traits":{"email":"bob@example.com","vip":true},"context":{"personas":{"computation_key":"vip","computation_class":"audience"}}}
    ]}"#;
    let r = http
        .post(format!("{base}/v1/batch"))
        .basic_auth(WRITE_KEY, Some(""))
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .expect("send");
    assert!(r.status().is_success(), "{:?}", r.text().await);

    // The emulator's list fills.
    let want: std::collections::BTreeSet<String> = ["ann@example.com", "bob@example.com"]
        .map(String::from)
        .into();
    let mut members = None;
    for _ in 0..600 {
        members = emu
            .state(true)
            .into_iter()
            .flat_map(|p| p.lists)
            .find(|l| l.name == "vip")
            .map(|l| {
                l.members
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|m| m.email)
                    .collect::<std::collections::BTreeSet<String>>()
            });
        if members.as_ref() == Some(&want) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(members, Some(want));

    // `events show` and `status` read the same database while the service runs.
    let mut delivered = false;
    for _ in 0..600 {
        let o = run(&config, &url, &["events", "show", "pg-1", "--json"]);
        assert!(o.status.success(), "{}", texts(&o));
        let v: Value = serde_json::from_slice(&o.stdout).expect("json");
        if v["audiences"][0]["status"] == "delivered" {
            delivered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(delivered, "pg-1 never delivered");
    let o = run(&config, &url, &["status"]);
    let out = texts(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("destination prod (running)"), "{out}");
    assert!(
        out.lines().any(|l| l.trim_start().starts_with("vip ")),
        "{out}"
    );
    assert!(!out.contains(PASSWORD), "{out}");

    drop(svc);
    // Everything the service printed, too.
    while let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) {
        printed.push(line);
    }
    let all = printed.join("\n");
    assert!(!all.contains(PASSWORD), "{all}");
}
