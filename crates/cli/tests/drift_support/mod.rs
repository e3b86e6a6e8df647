//! What the drift tests share (`drift_repair.rs`, `deleted_list.rs`): an emulator, the
//! service's configuration, events of the audience `vip`, the emulator's lists, changes made
//! by hand in the emulated project, and `audience verify` as a command.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use iterable_emulator::{
    Emulator, EmulatorConfig, ProjectConfig, ProjectType, RunningEmulator, SeedList, SeedRequest,
};
use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_iterable-lists");
pub const KEY: &str = "0123456789abcdef0123456789abcd31";
pub const WRITE_KEY: &str = "wk_verify";

/// Kills the service when dropped.
pub struct Running(pub std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub async fn emulator() -> RunningEmulator {
    let mut c =
        EmulatorConfig::default().with_project(ProjectConfig::new(ProjectType::Hybrid, KEY));
    c.listen = "127.0.0.1:0".parse().expect("addr");
    Emulator::start(c).await.expect("emulator")
}

pub fn config(dir: &Path, base_url: &str) -> std::path::PathBuf {
    config_with(dir, base_url, "")
}

/// A configuration with `extra` lines in its destination table.
pub fn config_with(dir: &Path, base_url: &str, extra: &str) -> std::path::PathBuf {
    let storage = format!("sqlite://{}", dir.join("lists.db").display());
    config_on(dir, &storage, base_url, extra)
}

/// A configuration storing at `storage`.
pub fn config_on(dir: &Path, storage: &str, base_url: &str, extra: &str) -> std::path::PathBuf {
    let p = dir.join("iterable-lists.toml");
    std::fs::write(
        &p,
        format!(
            "listen = \"127.0.0.1:0\"\n[storage]\nurl = \"{storage}\"\n[[destination]]\n\
             name = \"prod\"\napi_key = \"{KEY}\"\nwrite_keys = [\"{WRITE_KEY}\"]\n\
             base_url = \"{base_url}\"\n{extra}[destination.delivery]\nlinger_ms = 20\n"
        ),
    )
    .expect("config");
    p
}

pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// Users entering (`true`) or leaving `vip`, one event each, in order.
pub async fn send(url: &str, users: &[(&str, bool)]) {
    send_from(url, users, 0).await
}

/// [`send`], the events numbered (messageId, second of the timestamp) from `first`.
pub async fn send_from(url: &str, users: &[(&str, bool)], first: usize) {
    let batch: Vec<Value> = users
        .iter()
        .enumerate()
        .map(|(i, (email, member))| {
            let i = i + first;
            json!({"type": "identify", "messageId": format!("m-{email}-{i}"),
                   "userId": email.split('@').next(),
                   "timestamp": format!("2026-12-01T00:00:{:02}.000Z", i),
                   "traits": {"email": email, "vip": member},
                   "context": {"personas": {"computation_key": "vip",
                                            "computation_class": "audience"}}})
        })
        .collect();
    let r = http()
        .post(format!("{url}/v1/batch"))
        .basic_auth(WRITE_KEY, Some(""))
        .header("Content-Type", "application/json")
        .body(json!({ "batch": batch }).to_string())
        .send()
        .await
        .expect("send");
    assert!(r.status().is_success(), "{:?}", r.text().await);
}

/// The emulator's lists named `name`: (id, member emails).
pub fn lists(emu: &RunningEmulator, name: &str) -> Vec<(i64, BTreeSet<String>)> {
    emu.state(true)
        .iter()
        .flat_map(|p| p.lists.iter())
        .filter(|l| l.name == name)
        .map(|l| {
            let members = l
                .members
                .iter()
                .flatten()
                .filter_map(|m| m.email.clone())
                .collect();
            (l.id, members)
        })
        .collect()
}

pub fn set(emails: &[&str]) -> BTreeSet<String> {
    emails.iter().map(|e| e.to_string()).collect()
}

/// Waits until the one list named `vip` holds exactly `want`; returns its id.
pub async fn until_list(emu: &RunningEmulator, want: &BTreeSet<String>) -> i64 {
    let mut last = Vec::new();
    for _ in 0..600 {
        last = lists(emu, "vip");
        if let [(id, members)] = last.as_slice()
            && members == want
        {
            return *id;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the list never held {want:?}; lists: {last:?}");
}

/// Subscribes or unsubscribes `emails` directly in the emulated project, as a person in
/// Iterable's UI would.
pub async fn by_hand(emu: &RunningEmulator, path: &str, list_id: i64, emails: &[&str]) {
    let subscribers: Vec<Value> = emails.iter().map(|e| json!({ "email": e })).collect();
    let r = http()
        .post(format!("{}/api/lists/{path}", emu.url()))
        .header("Api-Key", KEY)
        .header("Content-Type", "application/json")
        .body(json!({"listId": list_id, "subscribers": subscribers}).to_string())
        .send()
        .await
        .expect("by hand");
    assert!(r.status().is_success(), "{:?}", r.text().await);
}

pub fn verify(config: &Path, extra: &[&str]) -> Output {
    Command::new(BIN)
        .args(["audience", "verify", "--config"])
        .arg(config)
        .args(["--audience", "vip"])
        .args(extra)
        .output()
        .expect("run audience verify")
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Creates the list `vip` in Iterable before the service starts (the service finds it), and
/// returns its id: a list the service itself created in the last minute may still be unknown
/// to parts of Iterable, and an `invalidListId` about it is retried instead.
pub fn seed_vip(emu: &RunningEmulator) -> i64 {
    let seeded = emu
        .seed(&SeedRequest {
            lists: vec![SeedList {
                name: "vip".into(),
                ..SeedList::default()
            }],
            ..SeedRequest::default()
        })
        .expect("seed");
    seeded.lists[0].id
}

/// Deletes list `id` directly in the emulated project.
pub async fn delete_list(emu: &RunningEmulator, id: i64) {
    let r = http()
        .delete(format!("{}/api/lists/{id}", emu.url()))
        .header("Api-Key", KEY)
        .send()
        .await
        .expect("delete");
    assert!(r.status().is_success(), "{:?}", r.text().await);
    assert!(lists(emu, "vip").is_empty());
}
