//! The service fails fast or says so, tried on real files: a database on a read-only
//! filesystem, in a directory the service may not write, or in a file it may not write stops
//! `serve` at start with a message naming the path; a damaged database too; a full disk makes
//! `/readyz` answer 503 with the reason until the store can write again; and `status` shows a
//! destination paused by a refused key, with the reason.
//!
//! Tests run as root, which writes any file whatever its mode. So the read-only filesystem is
//! a read-only bind mount and the full disk a small tmpfs, each in a mount namespace of the
//! service's own (`unshare -m`, which needs CAP_SYS_ADMIN, as root has); the read-only
//! directory and file are tried as user `nobody` (`setpriv`).

use std::io::{BufRead, BufReader, Seek, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_iterable-lists");
const KEY: &str = "0123456789abcdef0123456789abcdef";
const WRITE_KEY: &str = "wk_health";

/// A fresh directory every user may enter, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let d =
            std::env::temp_dir().join(format!("il-health-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(d.join("data")).expect("temp dir");
        chmod(&d, 0o755);
        Self(d)
    }

    fn data(&self) -> PathBuf {
        self.0.join("data")
    }

    fn db(&self) -> PathBuf {
        self.data().join("db.sqlite")
    }

    /// A config with one destination sending to `base_url`; readable by everyone.
    fn config(&self, base_url: &str) -> PathBuf {
        self.config_with(base_url, "")
    }

    /// [`Dir::config`] with `extra` lines in the destination.
    fn config_with(&self, base_url: &str, extra: &str) -> PathBuf {
        let p = self.0.join("iterable-lists.toml");
        std::fs::write(
            &p,
            format!(
                "listen = \"127.0.0.1:0\"\n[storage]\nurl = \"sqlite://{}\"\n[[destination]]\n\
                 name = \"prod\"\napi_key = \"{KEY}\"\nbase_url = \"{base_url}\"\n\
                 write_keys = [\"{WRITE_KEY}\"]\n{extra}\n[destination.delivery]\nlinger_ms = 10\n",
                self.db().display()
            ),
        )
        .expect("config");
        chmod(&p, 0o644);
        p
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        chmod(&self.data(), 0o755);
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn chmod(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Nothing listens there: deliveries fail, which these tests do not need.
const NOWHERE: &str = "http://127.0.0.1:9";

/// A running `serve` (or a command that execs it), its URL, and its stderr file.
struct Served {
    child: Child,
    url: String,
}

impl Served {
    /// Starts `command` and waits for its `listening on` line; panics with its stderr if it
    /// exits first.
    fn start(mut command: Command, stderr: &Path) -> Self {
        let err = std::fs::File::create(stderr).expect("stderr file");
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .expect("start the service");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let first = lines.next().and_then(Result::ok).unwrap_or_default();
        let Some(url) = first.strip_prefix("listening on ") else {
            let _ = child.wait();
            panic!(
                "the service did not start: {first}\n{}",
                std::fs::read_to_string(stderr).unwrap_or_default()
            );
        };
        std::thread::spawn(move || for _ in lines.by_ref() {});
        Self {
            url: url.to_string(),
            child,
        }
    }

    /// SIGTERM, then the exit.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().ok().flatten().is_none() {
            assert!(Instant::now() < deadline, "the service did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn serve(config: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.arg("serve").arg("--config").arg(config);
    c
}

/// `serve` in a mount namespace of its own, after `setup` (shell commands) ran in it.
fn serve_in_namespace(config: &Path, setup: &str) -> Command {
    let mut c = Command::new("unshare");
    c.args(["-m", "--propagation", "private", "sh", "-c"])
        .arg(format!(
            "set -e; {setup}; exec \"$BIN\" serve --config \"$CONFIG\""
        ))
        .env("BIN", BIN)
        .env("CONFIG", config);
    c
}

/// Runs a `serve` command that must fail at start: if it starts listening instead, it is
/// stopped and the test fails. Its stderr.
fn fails(mut command: Command) -> String {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run");
    let first = BufReader::new(child.stdout.take().expect("stdout"))
        .lines()
        .next()
        .and_then(Result::ok);
    if let Some(line) = first.filter(|l| l.starts_with("listening on")) {
        let _ = child.kill();
        let _ = child.wait();
        panic!("it started: {line}");
    }
    let out = child.wait_with_output().expect("wait");
    assert!(!out.status.success(), "it exited with success");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Creates the database by running the service once.
fn create_database(dir: &Dir) -> PathBuf {
    let config = dir.config(NOWHERE);
    Served::start(serve(&config), &dir.0.join("first.log")).stop();
    assert!(dir.db().exists());
    config
}

fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client")
}

/// (status, body) of a GET.
async fn get(http: &reqwest::Client, url: &str) -> (u16, String) {
    let r = http.get(url).send().await.expect("send");
    (r.status().as_u16(), r.text().await.expect("body"))
}

/// One batch of `n` Engage entries of audience "vip", messageIds from `first`.
fn batch(first: usize, n: usize) -> String {
    let events: Vec<Value> = (first..first + n)
        .map(|i| {
            json!({
                "type": "identify", "messageId": format!("m{i}"), "userId": format!("u{i}"),
                "traits": {"email": format!("u{i}@example.com"), "vip": true,
                           "note": "x".repeat(200)},
                "context": {"personas": {"computation_key": "vip", "computation_class": "audience"}}
            })
        })
        .collect();
    json!({ "batch": events }).to_string()
}

async fn post_batch(http: &reqwest::Client, url: &str, body: String) -> (u16, String) {
    let r = http
        .post(format!("{url}/v1/batch"))
        .basic_auth(WRITE_KEY, Some(""))
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .expect("send");
    (r.status().as_u16(), r.text().await.expect("body"))
}

#[test]
fn a_database_on_a_read_only_filesystem_stops_the_start_naming_the_path() {
    let dir = Dir::new("rofs");
    let config = create_database(&dir);
    let data = dir.data().display().to_string();
    let err = fails(serve_in_namespace(
        &config,
        &format!("mount --bind {data} {data}; mount -o remount,bind,ro {data}"),
    ));
    assert!(err.contains(&dir.db().display().to_string()), "{err}");
    assert!(err.contains("cannot write the database"), "{err}");
    assert!(err.contains("Read-only file system"), "{err}");
    // The same database where it may be written starts.
    Served::start(serve(&config), &dir.0.join("again.log")).stop();
}

#[test]
fn a_read_only_directory_or_file_stops_the_start_naming_the_path() {
    let dir = Dir::new("perms");
    let config = create_database(&dir);
    let as_nobody = || {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            BIN,
            "serve",
            "--config",
        ])
        .arg(&config);
        c
    };
    for f in std::fs::read_dir(dir.data()).expect("list") {
        chmod(&f.expect("entry").path(), 0o666);
    }
    // A directory it may not write: no -wal or -shm files can be created.
    chmod(&dir.data(), 0o555);
    let _ = std::fs::remove_file(dir.data().join("db.sqlite-wal"));
    let _ = std::fs::remove_file(dir.data().join("db.sqlite-shm"));
    let err = fails(as_nobody());
    assert!(err.contains(&dir.db().display().to_string()), "{err}");
    assert!(err.contains("cannot create files in"), "{err}");
    assert!(err.contains("Permission denied"), "{err}");
    // A file it may not write, in a directory it may.
    chmod(&dir.data(), 0o777);
    chmod(&dir.db(), 0o444);
    let err = fails(as_nobody());
    assert!(err.contains(&dir.db().display().to_string()), "{err}");
    assert!(err.contains("cannot be opened for writing"), "{err}");
}

#[test]
fn a_damaged_database_stops_the_start_and_says_how_to_recover() {
    let dir = Dir::new("damaged");
    let config = create_database(&dir);
    // Everything into the database file (no WAL left to mask the damage), then every page
    // after the first two overwritten.
    let c = rusqlite::Connection::open(dir.db()).expect("open");
    let mode: String = c
        .query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))
        .expect("fold the WAL in");
    assert_eq!(mode, "delete");
    drop(c);
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.db())
        .expect("open the file");
    let size = f.metadata().expect("size").len();
    assert!(size >= 4 * 4096, "{size} bytes");
    let junk: Vec<u8> = (0..size - 2 * 4096).map(|i| (i % 251) as u8 | 1).collect();
    f.seek(std::io::SeekFrom::Start(2 * 4096)).expect("seek");
    f.write_all(&junk).expect("damage");
    f.sync_all().expect("sync");
    drop(f);
    let err = fails(serve(&config));
    assert!(err.contains(&dir.db().display().to_string()), "{err}");
    assert!(err.contains("is damaged"), "{err}");
    assert!(err.contains("refusing to start"), "{err}");
    assert!(err.contains(".recover"), "{err}");
}

/// Runs `script` (Python) in the mount namespace of process `pid`.
fn python_in(pid: u32, script: &str) -> String {
    let out = Command::new("nsenter")
        .args(["-t", &pid.to_string(), "-m", "python3", "-c", script])
        .output()
        .expect("nsenter python3");
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_makes_readyz_answer_503_with_the_reason_until_the_store_writes_again() {
    let dir = Dir::new("full");
    // Delivery off: only ingestion and the store's own probe write.
    let config = dir.config_with(NOWHERE, "enabled = false");
    let data = dir.data().display().to_string();
    let cmd = serve_in_namespace(&config, &format!("mount -t tmpfs -o size=1m tmpfs {data}"));
    let log = dir.0.join("serve.log");
    let served = tokio::task::spawn_blocking(move || Served::start(cmd, &log))
        .await
        .expect("start");
    let http = http();
    let url = served.url.clone();
    assert_eq!(
        get(&http, &format!("{url}/readyz")).await,
        (200, "ready\n".into())
    );
    assert_eq!(post_batch(&http, &url, batch(0, 10)).await.0, 200);
    // The disk fills up: first the WAL is emptied (so that no write fits in space it already
    // has), then a file takes every free byte.
    let db = dir.db().display().to_string();
    let filled = python_in(
        served.child.id(),
        &format!(
            r#"
import os, sqlite3, time
c = sqlite3.connect("{db}", timeout=10)
for _ in range(200):
    busy, _, _ = c.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    if busy == 0 and os.path.getsize("{db}-wal") == 0:
        break
    time.sleep(0.05)
else:
    raise SystemExit("the WAL could not be emptied")
c.close()
try:
    with open("{data}/filler", "wb") as f:
        while True:
            f.write(b"\0" * 4096)
            f.flush()
except OSError as e:
    print("full:", e)
"#
        ),
    );
    assert!(filled.contains("No space left"), "{filled}");
    let (status, body) = post_batch(&http, &url, batch(10, 10)).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("disk is full") && body.contains("nothing was kept"),
        "{body}"
    );
    let (status, text) = get(&http, &format!("{url}/readyz")).await;
    assert_eq!(status, 503, "{text}");
    assert!(
        text.contains("the store cannot write") && text.contains("full"),
        "{text}"
    );
    // The store's own probe (every second) fails too while the disk is full.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(get(&http, &format!("{url}/readyz")).await.0, 503);
    let (_, metrics) = get(&http, &format!("{url}/metrics")).await;
    assert!(
        metrics.contains("iterable_lists_store_write_failing 1"),
        "{metrics}"
    );
    // Room again: ready within a few seconds, with nothing else written meanwhile.
    python_in(
        served.child.id(),
        &format!(r#"import os; os.remove("{data}/filler")"#),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, text) = get(&http, &format!("{url}/readyz")).await;
        if status == 200 {
            assert_eq!(text, "ready\n");
            break;
        }
        assert!(Instant::now() < deadline, "never ready again: {text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(post_batch(&http, &url, batch(10, 10)).await.0, 200);
    tokio::task::spawn_blocking(move || served.stop())
        .await
        .expect("stop");
}

/// An Iterable stand-in that refuses every key, as Iterable answers a wrong one.
fn refusing_iterable() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                // Read the request head (and ignore the body), then refuse.
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match std::io::Read::read(&mut conn, &mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let body = r#"{"msg":"Invalid API key","code":"BadApiKey","params":null}"#;
                let _ = write!(
                    conn,
                    "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_a_destination_paused_by_a_refused_key_with_the_reason() {
    let dir = Dir::new("paused");
    let config = dir.config(&refusing_iterable());
    let log = dir.0.join("serve.log");
    let cmd = serve(&config);
    let served = tokio::task::spawn_blocking(move || Served::start(cmd, &log))
        .await
        .expect("start");
    let http = http();
    let url = served.url.clone();
    assert_eq!(post_batch(&http, &url, batch(0, 1)).await.0, 200);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, text) = get(&http, &format!("{url}/v1/status")).await;
        let v: Value = serde_json::from_str(&text).expect("json");
        if v["destinations"][0]["state"] == "paused" {
            assert!(
                v["destinations"][0]["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("BadApiKey")),
                "{v}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "never paused: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::task::spawn_blocking(move || served.stop())
        .await
        .expect("stop");
    // The service is gone; the store says why nothing is delivered.
    let out = Command::new(BIN)
        .arg("status")
        .arg("--config")
        .arg(&config)
        .output()
        .expect("status");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("destination prod (paused since "), "{text}");
    assert!(text.contains("BadApiKey"), "{text}");
    let out = Command::new(BIN)
        .arg("status")
        .arg("--json")
        .arg("--config")
        .arg(&config)
        .output()
        .expect("status --json");
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    let d = &v["destinations"][0];
    assert_eq!(d["state"], "paused", "{v}");
    assert!(
        d["reason"]
            .as_str()
            .is_some_and(|r| r.contains("BadApiKey")),
        "{v}"
    );
    assert!(d["since"].as_str().is_some_and(|s| s.ends_with('Z')), "{v}");
}
