//! Test harness: an in-process Iterable emulator and the service on ephemeral ports, with a
//! fresh SQLite file, plus an HTTP client that talks to them as a sender would.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use iterable_emulator::{
    Emulator, EmulatorConfig, Faults, ProjectConfig, ProjectType, RunningEmulator,
};
use serde_json::{Value, json};
use server::{Config, RunningService};

pub const KEY: &str = "0123456789abcdef0123456789abcdef";
pub const WRITE_KEY: &str = "wk_test_123";

/// A directory under the system temp dir, unique to this process and call.
pub fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    std::env::temp_dir().join(format!(
        "iterable-lists-{tag}-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client")
}

pub async fn emulator(faults: Faults) -> RunningEmulator {
    let mut c =
        EmulatorConfig::default().with_project(ProjectConfig::new(ProjectType::Hybrid, KEY));
    c.listen = "127.0.0.1:0".parse().expect("addr");
    c.faults = faults;
    c.seed = Some(11);
    Emulator::start(c).await.expect("emulator")
}

/// The config text of one destination "prod" pointed at `base_url`, plus `extra` lines
/// appended to the destination table.
pub fn config_text(db: &std::path::Path, base_url: &str, extra: &str) -> String {
    config_text_url(&format!("sqlite://{}", db.display()), base_url, extra)
}

/// [`config_text`] with any storage URL.
pub fn config_text_url(storage_url: &str, base_url: &str, extra: &str) -> String {
    format!(
        r#"listen = "127.0.0.1:0"
[storage]
url = "{storage_url}"
[[destination]]
name = "prod"
api_key = "{KEY}"
project_type = "hybrid"
base_url = "{base_url}"
write_keys = ["{WRITE_KEY}"]
{extra}
[destination.delivery]
linger_ms = 20
"#
    )
}

pub struct Harness {
    pub emu: RunningEmulator,
    pub svc: Option<RunningService>,
    pub dir: PathBuf,
    pub http: reqwest::Client,
    pub config: String,
    /// The PostgreSQL schema the service stores in, when it does (dropped last).
    pub pg: Option<testkit::postgres::PgSchema>,
}

impl Harness {
    pub async fn start(extra: &str) -> Harness {
        Self::start_with(Faults::default(), extra).await
    }

    pub async fn start_with(faults: Faults, extra: &str) -> Harness {
        Self::start_full(faults, "", extra).await
    }

    /// As [`Harness::start`], with `top` lines (top-level keys, such as `admin_token`) before
    /// the rest of the configuration.
    pub async fn start_top(top: &str, extra: &str) -> Harness {
        Self::start_full(Faults::default(), top, extra).await
    }

    /// As [`Harness::start_with`], storing in a fresh PostgreSQL schema.
    pub async fn start_postgres(faults: Faults, extra: &str) -> Harness {
        let pg = testkit::postgres::PgSchema::create("svc");
        let emu = emulator(faults).await;
        let dir = temp_dir("svc-pg");
        let config = config_text_url(&pg.url(), &emu.url(), extra);
        let cfg = Config::parse(&config, &|_| None).expect("config");
        let svc = RunningService::start(cfg).await.expect("service");
        Harness {
            emu,
            svc: Some(svc),
            dir,
            http: http(),
            config,
            pg: Some(pg),
        }
    }

    async fn start_full(faults: Faults, top: &str, extra: &str) -> Harness {
        let emu = emulator(faults).await;
        let dir = temp_dir("svc");
        let config = format!(
            "{top}\n{}",
            config_text(&dir.join("db.sqlite"), &emu.url(), extra)
        );
        let cfg = Config::parse(&config, &|_| None).expect("config");
        let svc = RunningService::start(cfg).await.expect("service");
        Harness {
            emu,
            svc: Some(svc),
            dir,
            http: http(),
            config,
            pg: None,
        }
    }

    pub fn svc(&self) -> &RunningService {
        self.svc.as_ref().expect("running")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.svc().url())
    }

    /// Stops the service gracefully and starts it again on the same store.
    pub async fn restart(&mut self) {
        if let Some(s) = self.svc.take() {
            s.shutdown(Duration::from_secs(10)).await;
        }
        let cfg = Config::parse(&self.config, &|_| None).expect("config");
        self.svc = Some(RunningService::start(cfg).await.expect("service"));
    }

    /// POSTs `body` to `path` with the write key as Basic auth; returns status and body.
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .http
            .post(self.url(path))
            .basic_auth(WRITE_KEY, Some(""))
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("send");
        let status = r.status().as_u16();
        let text = r.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let r = self.http.get(self.url(path)).send().await.expect("send");
        let status = r.status().as_u16();
        (status, r.text().await.expect("body"))
    }

    /// The members of the emulator list named `name` (emails, else userIds), if it exists.
    pub fn list(&self, name: &str) -> Option<BTreeSet<String>> {
        let mut found = None;
        for p in self.emu.state(true) {
            for l in p.lists {
                if l.name == name {
                    assert!(found.is_none(), "two lists named {name}");
                    found = Some(
                        l.members
                            .unwrap_or_default()
                            .into_iter()
                            .map(|m| m.email.or(m.user_id).unwrap_or_default())
                            .collect(),
                    );
                }
            }
        }
        found
    }

    /// Number of lists with that name.
    pub fn lists_named(&self, name: &str) -> usize {
        self.emu
            .state(false)
            .into_iter()
            .flat_map(|p| p.lists)
            .filter(|l| l.name == name)
            .count()
    }

    /// Waits (polling, up to 30 s) until the list holds exactly `want`.
    pub async fn wait_list(&self, name: &str, want: &[&str]) {
        let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = self.list(name);
            if got.as_ref() == Some(&want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "list {name}: got {got:?}, want {want:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The event's status JSON from the admin endpoint.
    pub async fn event(&self, message_id: &str) -> (u16, Value) {
        self.event_as(None, message_id).await
    }

    /// [`Harness::event`] with the admin token, when the service has one.
    pub async fn event_as(&self, token: Option<&str>, message_id: &str) -> (u16, Value) {
        let mut req = self.http.get(self.url(&format!("/v1/events/{message_id}")));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.expect("send");
        let s = r.status().as_u16();
        let t = r.text().await.expect("body");
        (s, serde_json::from_str(&t).unwrap_or(Value::String(t)))
    }

    /// Waits until the event has a final status in every audience; returns its JSON.
    pub async fn wait_final(&self, message_id: &str) -> Value {
        self.wait_final_as(None, message_id).await
    }

    /// [`Harness::wait_final`] with the admin token, when the service has one.
    pub async fn wait_final_as(&self, token: Option<&str>, message_id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (s, v) = self.event_as(token, message_id).await;
            let done = s == 200
                && v["events"][0]["audiences"].as_array().is_some_and(|a| {
                    a.iter()
                        .all(|x| !matches!(x["status"].as_str(), Some("accepted" | "pending")))
                });
            if done {
                return v["events"][0].clone();
            }
            assert!(
                Instant::now() < deadline,
                "event {message_id} never final: {s} {v}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An Engage identify event entering (`member`) or leaving audience `key`.
pub fn identify(id: &str, user: &str, email: Option<&str>, key: &str, member: bool) -> Value {
    let mut traits = json!({ key: member });
    if let Some(e) = email {
        traits["email"] = json!(e);
    }
    json!({
        "type": "identify",
        "messageId": id,
        "userId": user,
        "traits": traits,
        "timestamp": "2026-11-29T10:00:00.000Z",
        "context": {"personas": {"computation_key": key, "computation_class": "audience"}}
    })
}

/// An Engage track event ("Audience Entered"/"Audience Exited").
pub fn track(id: &str, user: &str, email: &str, key: &str, member: bool, ts: &str) -> Value {
    json!({
        "type": "track",
        "messageId": id,
        "userId": user,
        "event": if member { "Audience Entered" } else { "Audience Exited" },
        "properties": { key: member, "audience_key": key },
        "timestamp": ts,
        "context": {"traits": {"email": email}, "personas": {"computation_key": key, "computation_class": "audience"}}
    })
}
