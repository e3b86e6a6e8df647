//! The mass-removal guard as an operator meets it: a running service, real HTTP ingestion,
//! the emulator's lists. An "everyone exits" storm is held (the list keeps its members while
//! new users' entries still arrive; `/v1/status`, `/metrics`, `iterable-lists status` and
//! `audience hold show` say so), then released with `iterable-lists audience hold release`
//! (the members leave the list). A discard through the admin endpoint sends nothing: the
//! users stay on the list and in the store's desired state, each exit's event says the
//! operator discarded it, and later removals are ordinary again. Two instances on PostgreSQL
//! share one hold; the real `serve` process logs the hold and the decision.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use iterable_emulator::{Emulator, EmulatorConfig, ProjectConfig, ProjectType, RunningEmulator};
use serde_json::{Value, json};
use server::{Config, RunningService};

const BIN: &str = env!("CARGO_BIN_EXE_iterable-lists");
const KEY: &str = "0123456789abcdef0123456789abcdef";
const WRITE_KEY: &str = "wk_guard";
const TOKEN: &str = "guard-admin-token";
const AUDIENCE: &str = "vip";

struct Setup {
    emu: RunningEmulator,
    svc: RunningService,
    /// More instances on the same store (PostgreSQL).
    others: Vec<RunningService>,
    http: reqwest::Client,
    dir: PathBuf,
    config_file: PathBuf,
}

async fn setup(name: &str) -> Setup {
    setup_on(name, None, 1).await
}

/// `instances` services on one store: the SQLite file of a temporary directory, or `url`.
async fn setup_on(name: &str, url: Option<String>, instances: usize) -> Setup {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut c =
        EmulatorConfig::default().with_project(ProjectConfig::new(ProjectType::Hybrid, KEY));
    c.listen = "127.0.0.1:0".parse().expect("addr");
    let emu = Emulator::start(c).await.expect("emulator");
    let dir = std::env::temp_dir().join(format!("il-guard-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let url = url.unwrap_or_else(|| format!("sqlite://{}", dir.join("db.sqlite").display()));
    let config = config_text(&url, &emu.url());
    let config_file = dir.join("iterable-lists.toml");
    std::fs::write(&config_file, &config).expect("write config");
    let mut all = Vec::new();
    for _ in 0..instances {
        let c = Config::parse(&config, &|_| None).expect("config");
        all.push(RunningService::start(c).await.expect("service"));
    }
    let svc = all.remove(0);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    Setup {
        emu,
        svc,
        others: all,
        http,
        dir,
        config_file,
    }
}

/// The service's configuration: the guard's defaults (max_removal_ratio 0.25 over "1h",
/// audiences of 100 or more).
fn config_text(storage_url: &str, emulator_url: &str) -> String {
    format!(
        r#"listen = "127.0.0.1:0"
admin_token = "{TOKEN}"
[storage]
url = "{storage_url}"
lease_seconds = 2
[[destination]]
name = "prod"
api_key = "{KEY}"
base_url = "{emulator_url}"
write_keys = ["{WRITE_KEY}"]
[destination.delivery]
linger_ms = 20
"#
    )
}

fn change(id: &str, member: bool, n: usize) -> Value {
    json!({
        "type": "identify",
        "messageId": format!("{id}-{member}-{n}"),
        "userId": id,
        "timestamp": format!("2026-12-01T00:00:{:02}.000Z", n),
        "traits": {AUDIENCE: member, "email": format!("{id}@example.com")},
        "context": {"personas": {"computation_class": "audience", "computation_key": AUDIENCE}}
    })
}

impl Setup {
    /// Instance `i` (0 is `svc`).
    fn instance(&self, i: usize) -> &RunningService {
        if i == 0 {
            &self.svc
        } else {
            &self.others[i - 1]
        }
    }

    /// Sends the users' changes as one `/v1/batch` request (stored in one transaction).
    async fn send(&self, users: &[String], member: bool, n: usize) {
        self.send_to(0, users, member, n).await
    }

    async fn send_to(&self, i: usize, users: &[String], member: bool, n: usize) {
        let batch: Vec<Value> = users.iter().map(|u| change(u, member, n)).collect();
        let r = self
            .http
            .post(format!("{}/v1/batch", self.instance(i).url()))
            .basic_auth(WRITE_KEY, Some(""))
            .header("Content-Type", "application/json")
            .body(json!({ "batch": batch }).to_string())
            .send()
            .await
            .expect("post");
        assert_eq!(r.status().as_u16(), 200);
    }

    /// The userIds on the audience's list in the emulator (empty before it exists).
    fn list(&self) -> BTreeSet<String> {
        let id = self
            .emu
            .state(false)
            .iter()
            .flat_map(|p| p.lists.iter())
            .find(|l| l.name == AUDIENCE)
            .map(|l| l.id);
        id.and_then(|id| self.emu.members(id))
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| m.user_id)
            .collect()
    }

    async fn wait_for(&self, what: &str, ok: impl Fn(&BTreeSet<String>) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let list = self.list();
            if ok(&list) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: the list has {} members",
                list.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn admin(&self, method: reqwest::Method, path: &str) -> (u16, String) {
        self.admin_of(0, method, path).await
    }

    async fn admin_of(&self, i: usize, method: reqwest::Method, path: &str) -> (u16, String) {
        let r = self
            .http
            .request(method, format!("{}{path}", self.instance(i).url()))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("admin call");
        let status = r.status().as_u16();
        (status, r.text().await.unwrap_or_default())
    }

    async fn status(&self) -> Value {
        self.status_of(0).await
    }

    async fn status_of(&self, i: usize) -> Value {
        let (code, body) = self.admin_of(i, reqwest::Method::GET, "/v1/status").await;
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).expect("status JSON")
    }

    /// The audience's entry of `/v1/status`, once `ok` holds (the figures are a second old at
    /// most).
    async fn audience_status(&self, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
        self.audience_status_of(0, what, ok).await
    }

    async fn audience_status_of(&self, i: usize, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let v = self.status_of(i).await;
            let a = v["destinations"][0]["audiences"]
                .as_array()
                .and_then(|all| all.iter().find(|a| a["audience"] == AUDIENCE).cloned())
                .unwrap_or(Value::Null);
            if ok(&a) {
                return a;
            }
            assert!(Instant::now() < deadline, "{what}: {v}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(BIN)
            .args(args)
            .arg("--config")
            .arg(&self.config_file)
            .output()
            .expect("run iterable-lists");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("UTF-8")
    }

    /// An audience of `n` members on the list, then every one of them exits at once.
    async fn storm(&self, n: usize) -> Vec<String> {
        let members: Vec<String> = (0..n).map(|i| format!("m{i}")).collect();
        self.send(&members, true, 1).await;
        self.wait_for("the members arrive", |l| l.len() == n).await;
        // And the store has recorded Iterable's answer.
        self.audience_status("the members are acknowledged", |a| a["members"] == n)
            .await;
        self.send(&members, false, 2).await;
        members
    }

    async fn finish(self) {
        for o in self.others {
            o.shutdown(Duration::from_secs(10)).await;
        }
        self.svc.shutdown(Duration::from_secs(10)).await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_everyone_exits_storm_is_held_until_released() {
    let s = setup("release").await;
    let members = s.storm(200).await;
    // Entries of new users still arrive while the removals are held.
    let newcomers: Vec<String> = (0..10).map(|i| format!("new{i}")).collect();
    s.send(&newcomers, true, 3).await;
    s.wait_for("the newcomers arrive", |l| {
        newcomers.iter().all(|u| l.contains(u))
    })
    .await;
    let a = s
        .audience_status("the hold shows", |a| !a["removalHold"].is_null())
        .await;
    let list = s.list();
    assert_eq!(list.len(), 210, "the list keeps its members");
    assert!(members.iter().all(|m| list.contains(m)));
    let hold = &a["removalHold"];
    assert_eq!(hold["held"], 200, "{a}");
    assert_eq!(
        (
            &hold["members"],
            &hold["pendingRemovals"],
            &hold["removedInWindow"]
        ),
        (&json!(200), &json!(200), &json!(0)),
        "{a}"
    );
    assert_eq!(hold["maxRemovalRatio"], 0.25);
    assert!(hold["sinceMs"].as_i64().is_some_and(|t| t > 0));
    assert_eq!(a["pending"], 200, "held removals stay pending: {a}");
    assert_eq!(
        s.status().await["destinations"][0]["heldAudiences"],
        json!([AUDIENCE])
    );
    let (code, metrics) = s.admin(reqwest::Method::GET, "/metrics").await;
    assert_eq!(code, 200);
    assert!(
        metrics.contains(r#"iterable_lists_removals_held{destination="prod",audience="vip"} 200"#),
        "{metrics}"
    );
    let shown = s.cli(&["events", "show", "m7-false-2"]);
    assert!(
        shown.contains("remove m7@example.com / m7: accepted (held by the mass-removal guard"),
        "{shown}"
    );
    let text = s.cli(&["status"]);
    assert!(text.contains("REMOVALS HELD for audience vip"), "{text}");
    assert!(text.contains("audience hold release"), "{text}");
    let shown: Value = serde_json::from_str(
        s.cli(&["audience", "hold", "show", "--audience", AUDIENCE, "--json"])
            .trim(),
    )
    .expect("JSON");
    assert_eq!(
        (&shown["held"], &shown["hold"]["held"]),
        (&json!(true), &json!(200))
    );

    // Released from the command line: the members leave the list.
    let out: Value = serde_json::from_str(
        s.cli(&[
            "audience",
            "hold",
            "release",
            "--destination",
            "prod",
            "--audience",
            AUDIENCE,
        ])
        .trim(),
    )
    .expect("JSON");
    assert_eq!(
        (&out["action"], &out["removals"]),
        (&json!("released"), &json!(200))
    );
    let want: BTreeSet<String> = newcomers.iter().cloned().collect();
    s.wait_for("the held removals are sent", |l| *l == want)
        .await;
    // A small audience loses its last members without a hold: the list ends empty.
    s.send(&newcomers, false, 4).await;
    s.wait_for("the list empties", BTreeSet::is_empty).await;
    let a = s
        .audience_status("nothing pending", |a| a["pending"] == 0)
        .await;
    assert!(a["removalHold"].is_null(), "{a}");
    assert_eq!(a["members"], 0);
    let shown = s.cli(&["audience", "hold", "show", "--audience", AUDIENCE]);
    assert!(shown.contains("are not held"), "{shown}");
    assert!(
        shown.contains("last decision: released 200 removal(s): the command line (user "),
        "{shown}"
    );
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discarded_storm_is_never_sent_and_the_store_says_why() {
    let s = setup("discard").await;
    let members = s.storm(150).await;
    s.audience_status("the hold shows", |a| a["removalHold"]["held"] == 150)
        .await;
    let path = format!("/v1/holds/discard?destination=prod&audience={AUDIENCE}");
    // Admin only.
    let r = s
        .http
        .post(format!("{}{path}", s.svc.url()))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 401);
    let (code, body) = s
        .admin(reqwest::Method::POST, "/v1/holds/release?destination=prod")
        .await;
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("audience"), "{body}");
    let (code, body) = s
        .admin(
            reqwest::Method::POST,
            &format!("/v1/holds/discard?destination=nope&audience={AUDIENCE}"),
        )
        .await;
    assert_eq!(code, 404, "{body}");
    let (code, body) = s.admin(reqwest::Method::POST, &path).await;
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(
        (&v["action"], &v["removals"]),
        (&json!("discarded"), &json!(150))
    );
    // Once only.
    let (code, body) = s.admin(reqwest::Method::POST, &path).await;
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("not held"), "{body}");

    // The reconciler goes on (a newcomer arrives), and the members are still there.
    s.send(&["late".to_string()], true, 3).await;
    s.wait_for("the newcomer arrives", |l| l.contains("late"))
        .await;
    let list = s.list();
    assert_eq!(list.len(), 151);
    assert!(members.iter().all(|m| list.contains(m)));
    let a = s
        .audience_status("the discard shows", |a| {
            a["pending"] == 0 && a["members"] == 151
        })
        .await;
    assert!(a["removalHold"].is_null(), "{a}");
    // Each exit's event says the operator discarded it.
    let shown = s.cli(&["events", "show", "m7-false-2"]);
    assert!(shown.contains("superseded"), "{shown}");
    assert!(
        shown.contains("removal discarded by the operator (the admin API (client 127.0.0.1:"),
        "{shown}"
    );
    let ev = &s.status().await["destinations"][0]["events"];
    assert_eq!(ev["superseded"], 150, "{ev}");
    // Later, one member leaving is an ordinary removal.
    s.send(&["m3".to_string()], false, 5).await;
    s.wait_for("m3 leaves", |l| !l.contains("m3")).await;
    assert_eq!(s.list().len(), 150);
    s.finish().await;
}

/// Two instances on one PostgreSQL database, each seeing part of the events: the storm sent to
/// one is held for both (the decision and the hold are the store's), both report it, and a
/// release through the other one's admin endpoint sends the removals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_on_postgres_share_one_hold() {
    let pg = testkit::postgres::PgSchema::create("removal_guard_multi");
    let s = setup_on("multi", Some(pg.url()), 2).await;
    let members: Vec<String> = (0..200).map(|i| format!("m{i}")).collect();
    let (first, second) = members.split_at(100);
    s.send_to(0, first, true, 1).await;
    s.send_to(1, second, true, 1).await;
    s.wait_for("the members arrive", |l| l.len() == 200).await;
    s.audience_status_of(1, "the members are acknowledged", |a| a["members"] == 200)
        .await;
    // Each instance sees half of the exits.
    s.send_to(0, first, false, 2).await;
    s.send_to(1, second, false, 2).await;
    s.send_to(1, &["late".to_string()], true, 3).await;
    s.wait_for("the newcomer arrives", |l| l.contains("late"))
        .await;
    for i in 0..2 {
        let a = s
            .audience_status_of(i, "the hold shows", |a| !a["removalHold"].is_null())
            .await;
        assert_eq!(a["removalHold"]["held"], 200, "instance {i}: {a}");
    }
    assert_eq!(s.list().len(), 201, "the list keeps its members");
    let (code, body) = s
        .admin_of(
            1,
            reqwest::Method::POST,
            &format!("/v1/holds/release?destination=prod&audience={AUDIENCE}"),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    let want: BTreeSet<String> = ["late".to_string()].into();
    s.wait_for("the held removals are sent", |l| *l == want)
        .await;
    s.finish().await;
}

/// The real `serve` process logs the hold at warn, with what tripped it and the commands that
/// end it, and logs the operator's decision with who made it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hold_and_the_decision_are_logged() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut c =
        EmulatorConfig::default().with_project(ProjectConfig::new(ProjectType::Hybrid, KEY));
    c.listen = "127.0.0.1:0".parse().expect("addr");
    let emu = Emulator::start(c).await.expect("emulator");
    let dir = std::env::temp_dir().join(format!("il-guard-logs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let config_file = dir.join("iterable-lists.toml");
    let db = format!("sqlite://{}", dir.join("db.sqlite").display());
    std::fs::write(&config_file, config_text(&db, &emu.url())).expect("config");
    let log = dir.join("stderr.log");
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config_file)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("spawn serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("first line");
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    let http = reqwest::Client::new();
    let send = |users: Vec<String>, member: bool, n: usize| {
        let batch: Vec<Value> = users.iter().map(|u| change(u, member, n)).collect();
        http.post(format!("{url}/v1/batch"))
            .basic_auth(WRITE_KEY, Some(""))
            .body(json!({ "batch": batch }).to_string())
            .send()
    };
    let members: Vec<String> = (0..120).map(|i| format!("m{i}")).collect();
    assert!(
        send(members.clone(), true, 1)
            .await
            .expect("post")
            .status()
            .is_success()
    );
    let status = || async {
        let v: Value = http
            .get(format!("{url}/v1/status"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("status")
            .text()
            .await
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null);
        v["destinations"][0]["audiences"][0].clone()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while status().await["members"] != 120 {
        assert!(Instant::now() < deadline, "the members never arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        send(members, false, 2)
            .await
            .expect("post")
            .status()
            .is_success()
    );
    while status().await["removalHold"].is_null() {
        assert!(Instant::now() < deadline, "never held");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = http
        .post(format!(
            "{url}/v1/holds/release?destination=prod&audience={AUDIENCE}"
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("release");
    assert_eq!(r.status().as_u16(), 200);
    while status().await["members"] != 0 {
        assert!(Instant::now() < deadline, "the removals were never sent");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).expect("log");
    let held: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("mass-removal guard: removals of audience \"vip\" are held"))
        .collect();
    assert_eq!(held.len(), 1, "logged once: {text}");
    for words in [
        "WARN",
        "120 removals (120 pending, 0 sent within the window) of 120 members exceed max_removal_ratio 0.25",
        "entries still flow",
        "iterable-lists audience hold release --destination prod --audience vip",
    ] {
        assert!(held[0].contains(words), "{words:?} in {}", held[0]);
    }
    assert!(
        text.contains(
            "120 held removal(s) of audience \"vip\" released by the admin API (client 127.0.0.1:"
        ),
        "{text}"
    );
    assert!(!text.contains(TOKEN), "no secret in the logs");
    let _ = std::fs::remove_dir_all(&dir);
}
