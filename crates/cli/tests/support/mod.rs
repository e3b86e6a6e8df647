//! What the crash tests share: the seeded load (events of users entering and leaving
//! audiences), a temp directory, and starting `iterable-lists serve` as a child process.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use iterable_emulator::RunningEmulator;
use serde_json::{Value, json};

pub const AUDIENCES: usize = 20;
pub const USERS: u64 = 5_000;

/// A small deterministic generator (xorshift*), so every run sends the same load.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Event `i`: a user entering or leaving an audience, at base time + i ms.
pub fn event(i: usize, rng: &mut Rng) -> (String, u64, bool, Value) {
    let user = rng.below(USERS);
    let audience = format!("aud_{:02}", rng.below(AUDIENCES as u64));
    let member = rng.below(3) != 0;
    let ms = i as u64;
    let ts = format!(
        "2026-11-29T{:02}:{:02}:{:02}.{:03}Z",
        ms / 3_600_000,
        (ms / 60_000) % 60,
        (ms / 1000) % 60,
        ms % 1000
    );
    let email = format!("u{user}@example.com");
    let personas = json!({"computation_key": audience, "computation_class": "audience"});
    let ev = if i % 2 == 0 {
        json!({"type": "identify", "messageId": format!("c{i}"), "userId": format!("u{user}"),
               "timestamp": ts, "traits": {"email": email, audience.clone(): member},
               "context": {"personas": personas}})
    } else {
        json!({"type": "track", "messageId": format!("c{i}"), "userId": format!("u{user}"),
               "event": if member { "Audience Entered" } else { "Audience Exited" },
               "timestamp": ts, "properties": {audience.clone(): member},
               "context": {"traits": {"email": email}, "personas": personas}})
    };
    (audience, user, member, ev)
}

static NEXT_DIR: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub fn temp_dir() -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    std::env::temp_dir().join(format!(
        "iterable-lists-crash-{}-{nanos:x}-{:x}",
        std::process::id(),
        NEXT_DIR.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ))
}

/// Starts the service; returns the child and its URL (from the first stdout line).
pub fn start(config: &Path, log: &Path) -> (Child, String) {
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_iterable-lists"))
        .arg("serve")
        .arg("--config")
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(stderr)
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
    (child, url)
}

/// The checks the crash tests end with: every event logged once, with a final status (`counts`:
/// a destination's `events` from `/v1/status`, `n` events sent), and each list of the emulator
/// equal to the latest-event-wins membership (`expected`: by audience and user), once per
/// audience.
pub fn assert_converged(
    counts: &Value,
    n: usize,
    emu: &RunningEmulator,
    expected: &BTreeMap<(String, u64), bool>,
) {
    let total: u64 = counts
        .as_object()
        .expect("counts")
        .values()
        .filter_map(Value::as_u64)
        .sum();
    assert_eq!(total, n as u64, "events logged: {counts}");

    let state = emu.state(true);
    for a in 0..AUDIENCES {
        let name = format!("aud_{a:02}");
        let lists: Vec<_> = state
            .iter()
            .flat_map(|p| p.lists.iter())
            .filter(|l| l.name == name)
            .collect();
        let want: BTreeSet<String> = expected
            .iter()
            .filter(|((aud, _), m)| *aud == name && **m)
            .map(|((_, u), _)| format!("u{u}@example.com"))
            .collect();
        if want.is_empty() && lists.is_empty() {
            continue;
        }
        assert_eq!(lists.len(), 1, "{name}: {} lists", lists.len());
        let got: BTreeSet<String> = lists[0]
            .members
            .iter()
            .flatten()
            .filter_map(|m| m.email.clone())
            .collect();
        let missing: Vec<_> = want.difference(&got).take(5).collect();
        let extra: Vec<_> = got.difference(&want).take(5).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{name}: {} want, {} got; missing {missing:?}, extra {extra:?}",
            want.len(),
            got.len()
        );
    }
}
