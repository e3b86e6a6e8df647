//! `iterable-lists plan` and `iterable-lists serve` agree: the same random events (fixed seed)
//! go through the `plan` command and through the service (HTTP in, the emulator out), and the
//! rows plan prints are exactly the rows the emulator received.
//!
//! The events are many `/v1/batch` requests with repeated messageIds (within and across
//! requests, as strings and as numbers), repeated users, out-of-order and missing timestamps,
//! several audiences (with and without an external list id, identify and track shapes), good
//! and bad audience settings, dataFields, and invalid events (no identity, unreadable
//! timestamps, a `messageId` of the wrong type or empty, not an audience event, over 32 KB).
//!
//! **What is compared, and why.** Each subscribe/unsubscribe row, as (endpoint, list, the
//! subscriber object with its dataFields, the request's options), as a multiset: how rows are
//! cut into requests depends on when the reconciler runs, so request boundaries and order are
//! not compared, but every row and how often it was sent is. Plan's `"audience:<key>"` lists are
//! compared as the list the service created with that name.
//!
//! **The same events.** The service stores every request first (destination disabled: it
//! ingests and logs but does not deliver), then restarts with delivery on, so the reconciler
//! sees all the events, as plan does. (A service that delivers while events still arrive may
//! rightly send an older state first and the newer one later, which plan, seeing them all at
//! once, never sends.) Two conditions keep "the same events" meaningful: each audience always
//! names the same list (Engage stamps one external id per audience), and an event without a
//! messageId is never repeated word for word in another request (the service would recognise
//! the copy as a duplicate; plan reads its input as one request, where copies are distinct).
//!
//! Two runs: (1) default limits, users appearing with both ids, or only one; (2) tiny request
//! limits (7 rows, 1.5 KB), so every audience takes several fetches and requests, with each
//! user always carrying the same ids.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use iterable_emulator::{
    Emulator, EmulatorConfig, LogQuery, ProjectConfig, ProjectType, RunningEmulator,
};
use serde_json::{Value, json};
use server::{Config, RunningService};
use sync::SqliteStore;

const BIN: &str = env!("CARGO_BIN_EXE_iterable-lists");
const KEY: &str = "0123456789abcdef0123456789abcdef";
const WRITE_KEY: &str = "wk_plan_vs_serve";

/// The mapping both sides use: the defaults plus a dataField.
fn mapping() -> Value {
    json!({"dataFields": {"plan": {"@path": "$.traits.plan"}, "score": {"@path": "$.traits.score"}}})
}

/// A small deterministic generator (xorshift*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// One audience: its key, whether Engage sends identify (else track) events, and the
/// external list id it always carries (`None`: found or created by key).
struct Audience {
    key: &'static str,
    identify: bool,
    list_id: Option<Value>,
}

struct Generator {
    rng: Rng,
    audiences: Vec<Audience>,
    /// Each user always carries both ids (run 2), or a random choice per event (run 1).
    consistent_ids: bool,
    /// How many users there are.
    users: u64,
    /// messageIds handed out so far, for repeats.
    ids: Vec<Value>,
    n: u64,
}

impl Generator {
    fn settings(&mut self) -> Option<Value> {
        let choices = [
            json!({"updateExistingUsersOnly": false}),
            json!({"updateExistingUsersOnly": true}),
            json!({"globalUnsubscribe": true, "campaignId": 77}),
            json!({"globalUnsubscribe": "false", "campaignId": "78"}),
            json!({"campaignId": 1.5}),
            json!({"campaignId": -3, "updateExistingUsersOnly": "yes"}),
            json!("not an object"),
        ];
        if self.rng.chance(60) {
            return None;
        }
        Some(self.rng.pick(&choices).clone())
    }

    fn message_id(&mut self) -> Option<Value> {
        self.n += 1;
        let id = match self.rng.below(100) {
            // A repeat of an earlier messageId (this request or an earlier one).
            0..=11 if !self.ids.is_empty() => {
                let i = self.rng.below(self.ids.len() as u64) as usize;
                return Some(self.ids[i].clone());
            }
            // Numeric ids; "9xxx" strings repeat them.
            12..=16 => json!(9000 + self.rng.below(40)),
            17..=19 => json!(format!("{}", 9000 + self.rng.below(40))),
            // No messageId: the service synthesizes one from the content (unique here).
            20..=25 => return None,
            // Invalid ones: the service refuses the event, naming the field.
            26 => json!(true),
            27 => json!(""),
            _ => json!(format!("m{}", self.n)),
        };
        self.ids.push(id.clone());
        Some(id)
    }

    fn event(&mut self) -> Value {
        let a = self.rng.below(self.audiences.len() as u64) as usize;
        let user = self.rng.below(self.users);
        let (with_email, with_uid) = if self.consistent_ids || user < 5 {
            (true, true)
        } else {
            match self.rng.below(3) {
                0 => (true, false),
                1 => (false, true),
                _ => (true, true),
            }
        };
        // Mixed case: the service keys (and sends) emails lowercased.
        let email = if user % 4 == 0 {
            format!("User{user}@Example.com")
        } else {
            format!("user{user}@example.com")
        };
        let member: Value = match self.rng.below(20) {
            0 => json!("true"),
            1 => json!("FALSE"),
            2 => json!("yes"), // not a flag: rejected
            n => json!(n % 2 == 0),
        };
        let key = self.audiences[a].key;
        let mut personas = json!({"computation_class": "audience", "computation_key": key});
        if let Some(id) = &self.audiences[a].list_id {
            personas["external_audience_id"] = id.clone();
        }
        if let Some(s) = self.settings() {
            personas["audience_settings"] = s;
        }
        let mut e = if self.audiences[a].identify {
            let mut traits = json!({ key: member });
            if with_email {
                traits["email"] = json!(email);
            }
            match self.rng.below(4) {
                0 => traits["plan"] = json!(self.rng.pick(&["gold", "silver"])),
                1 => traits["score"] = json!(95.849_632_623_049_87),
                _ => {}
            }
            json!({"type": "identify", "traits": traits, "context": {"personas": personas}})
        } else {
            let mut context = json!({"personas": personas});
            if with_email {
                context["traits"] = json!({"email": email});
            }
            json!({
                "type": "track",
                "event": "Audience Entered",
                "properties": {"audience_key": key, key: member},
                "context": context
            })
        };
        if with_uid {
            e["userId"] = json!(format!("u{user}"));
        }
        // Out of order, sometimes missing, rarely unreadable.
        match self.rng.below(30) {
            0..=2 => {}
            3 => e["timestamp"] = json!("yesterday"),
            4 => e["timestamp"] = json!(1_700_000_000),
            _ => {
                e["timestamp"] = json!(format!("2026-01-01T00:00:{:02}Z", self.rng.below(60)));
            }
        }
        // Unique content, so that an event without a messageId is never repeated verbatim.
        e["context"]["n"] = json!(self.n);
        match self.rng.below(60) {
            0 => e["type"] = json!("page"),
            1 => {
                e.as_object_mut().map(|o| o.shift_remove("userId"));
                e["traits"].as_object_mut().map(|o| o.shift_remove("email"));
                e["context"]
                    .as_object_mut()
                    .map(|o| o.shift_remove("traits"));
            }
            2 => e["context"]["blob"] = json!("x".repeat(33 * 1024)),
            _ => {}
        }
        if let Some(id) = self.message_id() {
            e["messageId"] = id;
        }
        e
    }
}

/// A row as compared: endpoint, list id, the subscriber object, the request's options.
fn rows_of(path: &str, body: &Value, list: i64) -> Vec<String> {
    let mut options = body.clone();
    if let Some(o) = options.as_object_mut() {
        o.shift_remove("listId");
        o.shift_remove("subscribers");
    }
    body["subscribers"]
        .as_array()
        .map(|subs| {
            subs.iter()
                .map(|s| {
                    json!({"path": path, "list": list, "row": s, "options": options}).to_string()
                })
                .collect()
        })
        .unwrap_or_default()
}

fn temp_dir(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let d = std::env::temp_dir().join(format!(
        "il-plan-vs-serve-{tag}-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn config(db: &Path, emu: &RunningEmulator, enabled: bool, delivery: &str) -> Config {
    let text = format!(
        r#"listen = "127.0.0.1:0"
[storage]
url = "sqlite://{}"
[[destination]]
name = "prod"
enabled = {enabled}
api_key = "{KEY}"
project_type = "hybrid"
base_url = "{}"
write_keys = ["{WRITE_KEY}"]
mapping = '{}'
[destination.delivery]
linger_ms = 20
{delivery}
"#,
        db.display(),
        emu.url(),
        mapping()
    );
    Config::parse(&text, &|_| None).expect("config")
}

struct Run {
    seed: u64,
    consistent_ids: bool,
    users: u64,
    /// `[destination.delivery]` lines and the matching `plan` flags.
    delivery: &'static str,
    plan_flags: &'static [&'static str],
}

async fn compare(run: Run) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut c =
        EmulatorConfig::default().with_project(ProjectConfig::new(ProjectType::Hybrid, KEY));
    c.listen = "127.0.0.1:0".parse().expect("addr");
    c.seed = Some(run.seed);
    let emu = Emulator::start(c).await.expect("emulator");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    // Lists the external-id audiences name, as Engage created them beforehand.
    let mut ext = Vec::new();
    for name in ["ext_a", "ext_b"] {
        let r: Value = http
            .post(format!("{}/api/lists", emu.url()))
            .header("Api-Key", KEY)
            .body(json!({"name": name}).to_string())
            .send()
            .await
            .expect("create list")
            .text()
            .await
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .expect("list id");
        ext.push(r["listId"].as_i64().expect("listId"));
    }
    let mut g = Generator {
        rng: Rng(run.seed),
        audiences: vec![
            Audience {
                key: "vip",
                identify: true,
                list_id: None,
            },
            Audience {
                key: "churn",
                identify: false,
                list_id: None,
            },
            Audience {
                key: "ext_a",
                identify: true,
                list_id: Some(json!(ext[0].to_string())),
            },
            Audience {
                key: "ext_b",
                identify: false,
                list_id: Some(json!(ext[1])),
            },
        ],
        consistent_ids: run.consistent_ids,
        users: run.users,
        ids: Vec::new(),
        n: 0,
    };
    let batches: Vec<Vec<Value>> = (0..40)
        .map(|_| {
            let n = 1 + g.rng.below(50);
            (0..n).map(|_| g.event()).collect()
        })
        .collect();

    // plan, as a user runs it.
    let dir = temp_dir(if run.consistent_ids {
        "small"
    } else {
        "default"
    });
    let ndjson: String = batches.iter().flatten().map(|e| format!("{e}\n")).collect();
    std::fs::write(dir.join("events.ndjson"), ndjson).expect("write events");
    std::fs::write(dir.join("mapping.json"), mapping().to_string()).expect("write mapping");
    std::fs::write(
        dir.join("settings.json"),
        json!({"apiKey": KEY, "iterableProjectType": "hybrid"}).to_string(),
    )
    .expect("write settings");
    let out = Command::new(BIN)
        .arg("plan")
        .arg("--settings")
        .arg(dir.join("settings.json"))
        .arg("--mapping")
        .arg(dir.join("mapping.json"))
        .args(run.plan_flags)
        .arg(dir.join("events.ndjson"))
        .output()
        .expect("run plan");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: Value = serde_json::from_slice(&out.stdout).expect("plan prints JSON");

    // serve: every request stored first, then delivered.
    let db = dir.join("db.sqlite");
    let svc = RunningService::start(config(&db, &emu, false, run.delivery))
        .await
        .expect("service");
    for batch in &batches {
        let r = http
            .post(format!("{}/v1/batch", svc.url()))
            .basic_auth(WRITE_KEY, Some(""))
            .header("Content-Type", "application/json")
            .body(json!({"batch": batch}).to_string())
            .send()
            .await
            .expect("post");
        assert_eq!(
            r.status().as_u16(),
            200,
            "{}",
            r.text().await.unwrap_or_default()
        );
    }
    svc.shutdown(Duration::from_secs(10)).await;
    let svc = RunningService::start(config(&db, &emu, true, run.delivery))
        .await
        .expect("service");
    let store = SqliteStore::open(&db).expect("store");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let counts = store.event_counts("prod").expect("counts");
        if counts.accepted + counts.pending == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "never settled: {counts:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    svc.shutdown(Duration::from_secs(10)).await;

    // The lists plan names by audience key are the ones the service created.
    let by_name: BTreeMap<String, i64> = emu
        .state(false)
        .into_iter()
        .flat_map(|p| p.lists)
        .map(|l| (l.name, l.id))
        .collect();
    let mut planned: Vec<String> = Vec::new();
    for r in plan["requests"].as_array().expect("requests") {
        let body = &r["body"];
        let list = match &body["listId"] {
            Value::String(s) => {
                let key = s.strip_prefix("audience:").expect("audience placeholder");
                *by_name.get(key).unwrap_or_else(|| panic!("no list {key}"))
            }
            v => v.as_i64().expect("list id"),
        };
        planned.extend(rows_of(r["path"].as_str().expect("path"), body, list));
    }
    let mut delivered: Vec<String> = Vec::new();
    for path in ["/api/lists/subscribe", "/api/lists/unsubscribe"] {
        let log = emu.requests(&LogQuery {
            path: Some(path.into()),
            ..LogQuery::default()
        });
        for r in log {
            let body: Value = serde_json::from_str(&r.body).expect("JSON body");
            let list = body["listId"].as_i64().expect("list id");
            delivered.extend(rows_of(path, &body, list));
        }
    }
    planned.sort();
    delivered.sort();
    if planned != delivered {
        let only_plan: Vec<&String> = planned.iter().filter(|r| !delivered.contains(r)).collect();
        let only_serve: Vec<&String> = delivered.iter().filter(|r| !planned.contains(r)).collect();
        panic!(
            "plan and serve differ: {} planned rows, {} delivered\nonly in plan: {only_plan:#?}\nonly delivered: {only_serve:#?}",
            planned.len(),
            delivered.len()
        );
    }
    // The run must be rich enough to mean something.
    let statuses: Vec<&str> = plan["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["status"].as_str())
        .collect();
    for s in ["planned", "superseded", "rejected", "skipped", "duplicate"] {
        assert!(
            statuses.contains(&s),
            "no {s} event in the run: {statuses:?}"
        );
    }
    assert!(planned.len() > 100, "only {} rows", planned.len());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_prints_the_rows_serve_delivers() {
    compare(Run {
        seed: 0x5eed_0001,
        consistent_ids: false,
        users: 25,
        delivery: "batch_size = 1000\nmax_request_bytes = 4000000",
        plan_flags: &["--max-rows", "1000", "--max-bytes", "4000000"],
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_prints_the_rows_serve_delivers_with_tiny_requests() {
    compare(Run {
        seed: 0x5eed_0002,
        consistent_ids: true,
        users: 80,
        delivery: "batch_size = 7\nmax_request_bytes = 1536",
        plan_flags: &["--max-rows", "7", "--max-bytes", "1536"],
    })
    .await;
}
