//! `iterable-lists audience sync` as a warehouse job runs it, beside a running service, against
//! the emulator: an initial snapshot fills a list; a second with 10% churn makes exactly those
//! adds and removes; a dry run writes nothing but its diff; a snapshot that would empty the
//! list is refused with the numbers, and applied with the override; a snapshot racing live
//! events ends with the latest change of each user.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use iterable_emulator::{Emulator, EmulatorConfig, ProjectConfig, ProjectType, RunningEmulator};
use serde_json::{Value, json};
use server::{Config, RunningService};

const BIN: &str = env!("CARGO_BIN_EXE_iterable-lists");
const KEY: &str = "0123456789abcdef0123456789abcdef";
const WRITE_KEY: &str = "wk_audience_sync";
const AUDIENCE: &str = "warehouse_vip";

struct Setup {
    emu: RunningEmulator,
    svc: RunningService,
    dir: PathBuf,
    config: PathBuf,
}

async fn setup(name: &str) -> Setup {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut c =
        EmulatorConfig::default().with_project(ProjectConfig::new(ProjectType::Hybrid, KEY));
    c.listen = "127.0.0.1:0".parse().expect("addr");
    let emu = Emulator::start(c).await.expect("emulator");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = std::env::temp_dir().join(format!(
        "il-audience-sync-{name}-{}-{nanos:x}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let text = format!(
        r#"listen = "127.0.0.1:0"
[storage]
url = "sqlite://{}"
[[destination]]
name = "prod"
api_key = "{KEY}"
base_url = "{}"
write_keys = ["{WRITE_KEY}"]
[destination.delivery]
linger_ms = 20
"#,
        dir.join("db.sqlite").display(),
        emu.url()
    );
    let config = dir.join("iterable-lists.toml");
    std::fs::write(&config, &text).expect("write config");
    let svc = RunningService::start(Config::parse(&text, &|_| None).expect("config"))
        .await
        .expect("service");
    Setup {
        emu,
        svc,
        dir,
        config,
    }
}

impl Setup {
    /// Runs `audience sync` with `args` on `csv` (written to a file).
    fn sync(&self, file: &str, csv: &str, args: &[&str]) -> Output {
        let path = self.dir.join(file);
        std::fs::write(&path, csv).expect("write snapshot");
        Command::new(BIN)
            .args(["audience", "sync", "--config"])
            .arg(&self.config)
            .args(["--audience", AUDIENCE, "--json"])
            .args(args)
            .arg(&path)
            .stdin(Stdio::null())
            .output()
            .expect("run audience sync")
    }

    fn report(&self, file: &str, csv: &str, args: &[&str]) -> Value {
        let out = self.sync(file, csv, args);
        assert!(
            out.status.success(),
            "audience sync failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("JSON report")
    }

    /// The emulator's members of the audience's list (`None`: no list yet).
    fn list(&self) -> Option<BTreeSet<String>> {
        let state = self.emu.state(true);
        let lists: Vec<_> = state
            .iter()
            .flat_map(|p| p.lists.iter())
            .filter(|l| l.name == AUDIENCE)
            .collect();
        assert!(lists.len() <= 1, "{} lists named {AUDIENCE}", lists.len());
        lists.first().map(|l| {
            l.members
                .iter()
                .flatten()
                .filter_map(|m| m.email.clone())
                .collect()
        })
    }

    /// Waits until the list holds exactly `want`.
    async fn converges(&self, want: &BTreeSet<String>) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let got = self.list().unwrap_or_default();
            if &got == want {
                return;
            }
            if Instant::now() > deadline {
                let missing: Vec<_> = want.difference(&got).take(5).collect();
                let extra: Vec<_> = got.difference(want).take(5).collect();
                panic!(
                    "the list never held the snapshot: {} want, {} got; missing {missing:?}, \
                     extra {extra:?}",
                    want.len(),
                    got.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn finish(self) {
        self.svc.shutdown(Duration::from_secs(10)).await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn email(u: usize) -> String {
    format!("user{u}@example.com")
}

fn csv_of(users: impl Iterator<Item = usize>) -> String {
    let mut s = String::from("email,plan\n");
    for u in users {
        s.push_str(&format!(
            "{},{}\n",
            email(u),
            if u % 2 == 0 { "gold" } else { "" }
        ));
    }
    s
}

fn set_of(users: impl Iterator<Item = usize>) -> BTreeSet<String> {
    users.map(email).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_fill_churn_and_guard_a_list() {
    let s = setup("churn").await;
    // An initial snapshot of 200 members fills the list.
    let first = s.report("first.csv", &csv_of(0..200), &[]);
    assert_eq!(
        (&first["adds"], &first["removes"], &first["applied"]),
        (&json!(200), &json!(0), &json!(true)),
        "{first}"
    );
    s.converges(&set_of(0..200)).await;
    // Data fields went with the subscribes.
    let subscribes = s.emu.requests(&iterable_emulator::reqlog::LogQuery {
        since: 0,
        path: Some("/api/lists/subscribe".into()),
        limit: None,
    });
    assert!(
        subscribes.iter().any(|r| r
            .body
            .contains(r#""email":"user0@example.com","dataFields":{"plan":"gold"}"#)
            || (r.body.contains("user0@example.com") && r.body.contains(r#""plan":"gold""#))),
        "no subscribe carried user0's plan"
    );

    // 10% churn: 20 leave (0..20), 20 enter (200..220).
    let second = s.report("second.csv", &csv_of(20..220), &[]);
    assert_eq!(
        (
            &second["adds"],
            &second["removes"],
            &second["unchanged"],
            &second["currentMembers"]
        ),
        (&json!(20), &json!(20), &json!(180), &json!(200)),
        "{second}"
    );
    s.converges(&set_of(20..220)).await;
    let msg = second["messageId"].as_str().expect("messageId").to_string();
    // The changes are logged as one event that `events show` explains.
    let shown = Command::new(BIN)
        .args(["events", "show", &msg, "--json", "--config"])
        .arg(&s.config)
        .output()
        .expect("events show");
    let shown: Value = serde_json::from_slice(&shown.stdout).expect("events show JSON");
    assert_eq!(
        shown["audiences"].as_array().map(Vec::len),
        Some(40),
        "{shown}"
    );

    // A dry run of an empty snapshot: the counts and the full diff, nothing written.
    let diff = s.dir.join("diff.ndjson");
    let dry = s.report(
        "empty.csv",
        "email\n",
        &[
            "--dry-run",
            "--allow-mass-removal",
            "--diff-out",
            diff.to_str().expect("path"),
        ],
    );
    assert_eq!(
        (&dry["removes"], &dry["applied"], &dry["dryRun"]),
        (&json!(200), &json!(false), &json!(true)),
        "{dry}"
    );
    let lines = std::fs::read_to_string(&diff).expect("diff");
    assert_eq!(
        lines
            .lines()
            .filter(|l| l.contains(r#""op":"remove""#))
            .count(),
        200
    );
    // The guard: emptying the list is refused with the numbers, nothing written.
    let refused = s.sync("empty.csv", "email\n", &[]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("would remove 200 of the audience's 200 current members (100.0%)")
            && stderr.contains("max_removal_ratio 0.25"),
        "{stderr}"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(s.list(), Some(set_of(20..220)));
    // With the override the list is emptied.
    let forced = s.report("empty.csv", "email\n", &["--allow-mass-removal"]);
    assert_eq!(forced["removes"], 200, "{forced}");
    s.converges(&BTreeSet::new()).await;
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rows_are_reported_by_line_and_stdin_and_gzip_are_read() {
    let s = setup("bad").await;
    // From standard input, gzipped, NDJSON, with one bad row among 200.
    let mut text = String::new();
    for u in 0..199 {
        text.push_str(&json!({"email": email(u)}).to_string());
        text.push('\n');
    }
    text.push_str("{\"email\": 42}\n");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(text.as_bytes()).expect("gzip");
    let gz = gz.finish().expect("gzip");
    let mut child = Command::new(BIN)
        .args(["audience", "sync", "--config"])
        .arg(&s.config)
        .args(["--audience", AUDIENCE, "--json", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&gz)
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        (&r["badRows"], &r["bad"][0]["line"], &r["adds"]),
        (&json!(1), &json!(200), &json!(199)),
        "{r}"
    );
    assert!(
        r["bad"][0]["reason"]
            .as_str()
            .is_some_and(|m| m.contains("email must be a string")),
        "{r}"
    );
    s.converges(&set_of(0..199)).await;
    // A header that names no identity column: an error naming it, exit code 2.
    let out = s.sync("bad.csv", "name,plan\nann,gold\n", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("names no email or userId column"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    s.finish().await;
}

/// Sends identify events for `(user, member, time)` to the service.
async fn send_events(url: &str, events: &[(usize, bool, String)]) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    for chunk in events.chunks(25) {
        let batch: Vec<Value> = chunk
            .iter()
            .map(|(u, member, ts)| {
                json!({"type": "identify", "messageId": format!("live-{u}-{ts}"),
                       "userId": format!("u{u}"), "timestamp": ts,
                       "traits": {"email": email(*u), AUDIENCE: member},
                       "context": {"personas": {"computation_class": "audience",
                                                "computation_key": AUDIENCE}}})
            })
            .collect();
        let r = http
            .post(format!("{url}/v1/batch"))
            .basic_auth(WRITE_KEY, Some(""))
            .header("Content-Type", "application/json")
            .body(json!({"batch": batch}).to_string())
            .send()
            .await
            .expect("post");
        assert_eq!(r.status().as_u16(), 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_racing_live_events_ends_with_the_latest_change_of_each_user() {
    let s = setup("race").await;
    // Live events name users by userId and email; the snapshot names them alike.
    let snapshot_csv = |users: std::ops::Range<usize>| {
        let mut t = String::from("email,userId\n");
        for u in users {
            t.push_str(&format!("{},u{u}\n", email(u)));
        }
        t
    };
    let t0 = "2026-01-01T00:00:00.000Z";
    let as_of = "2026-01-01T00:01:00.000Z";
    // Before: users 0..150 entered at t0 (older than the snapshot).
    let before: Vec<_> = (0..150).map(|u| (u, true, t0.to_string())).collect();
    send_events(&s.svc.url(), &before).await;
    // Racing the snapshot (users 50..250 at as_of): live changes of users 100..200 made
    // after it (entries of even users, exits of odd ones), sent while it runs.
    let racing: Vec<_> = (100..200)
        .map(|u| {
            (
                u,
                u % 2 == 0,
                format!("2026-01-01T00:02:{:02}.000Z", u % 60),
            )
        })
        .collect();
    let url = s.svc.url();
    let live = tokio::spawn(async move { send_events(&url, &racing).await });
    let path = s.dir.join("race.csv");
    std::fs::write(&path, snapshot_csv(50..250)).expect("write");
    let out = tokio::task::spawn_blocking({
        let config = s.config.clone();
        move || {
            Command::new(BIN)
                .args(["audience", "sync", "--config"])
                .arg(&config)
                .args([
                    "--audience",
                    AUDIENCE,
                    "--json",
                    "--allow-mass-removal",
                    "--as-of",
                    as_of,
                ])
                .arg(&path)
                .output()
                .expect("run")
        }
    })
    .await
    .expect("join");
    live.await.expect("live events");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Latest change wins per user: 0..50 left (the snapshot, newer than their entry), 50..100
    // stay, 100..200 follow their live change, 200..250 entered with the snapshot.
    let want: BTreeSet<String> = (50..250)
        .filter(|u| !(100..200).contains(u) || u % 2 == 0)
        .map(email)
        .collect();
    s.converges(&want).await;
    s.finish().await;
}
