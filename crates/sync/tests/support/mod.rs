//! Shared set-up for the reconciler tests: an in-process emulator, a SQLite store in a fresh
//! temp directory, a quick-retrying client, a drivable clock, and event builders.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use destination::settings::ProjectType;
use iterable::backoff::Backoff;
use iterable::client::{ApiKey, Client, ClientConfig};
use iterable::limiter::{Endpoint, Limit};
use iterable_emulator::{
    Emulator, EmulatorConfig, Faults, ManualClock, ProjectConfig, RunningEmulator,
};
use serde_json::{Map, Value};
use sync::reconciler::{EpochClock, Reconciler, ReconcilerConfig};
use sync::{
    ChangeSettings, EventContent, Identity, MembershipChange, NewEvent, SqliteStore, StatusKind,
    Store,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The hybrid project's key.
pub const KEY: &str = "0123456789abcdef0123456789abcdef";
/// The userId-based project's key.
pub const UID_KEY: &str = "fedcba9876543210fedcba9876543210";
/// A well-formed key no project has.
pub const BAD_KEY: &str = "badbadbadbadbadbadbadbadbadbad00";
/// The destination most tests use.
pub const D: &str = "prod";

/// An emulator config with both projects, limits off, seeded faults.
pub fn emulator_config(faults: Faults) -> EmulatorConfig {
    let mut c = EmulatorConfig::default()
        .with_project(ProjectConfig::new(
            iterable_emulator::ProjectType::Hybrid,
            KEY,
        ))
        .with_project(ProjectConfig::new(
            iterable_emulator::ProjectType::UserId,
            UID_KEY,
        ));
    c.listen = "127.0.0.1:0".parse().expect("address");
    c.faults = faults;
    c.seed = Some(11);
    c.limits.insert(
        "all".into(),
        iterable_emulator::config::LimitValue("off".parse().expect("limit")),
    );
    c
}

/// An emulator on a manual clock: latency and list visibility cost no real time.
pub async fn emulator(faults: Faults) -> RunningEmulator {
    Emulator::start_with_clock(
        emulator_config(faults),
        Arc::new(ManualClock::new(1_700_000_000_000)),
    )
    .await
    .expect("emulator")
}

/// An emulator on the real clock (latency really passes).
pub async fn emulator_real_time(faults: Faults) -> RunningEmulator {
    Emulator::start(emulator_config(faults))
        .await
        .expect("emulator")
}

/// A client with quick retries (`attempts` in all) and no client-side rate limits.
pub fn client_with(url: &str, key: &str, attempts: u32) -> Arc<Client> {
    Arc::new(Client::new(client_config(url, key, attempts)).expect("client"))
}

/// [`client`] with one endpoint's rate limit set.
pub fn client_limiting(url: &str, key: &str, endpoint: Endpoint, limit: Limit) -> Arc<Client> {
    let mut cfg = client_config(url, key, 4);
    cfg.limits.insert(endpoint, limit);
    Arc::new(Client::new(cfg).expect("client"))
}

fn client_config(url: &str, key: &str, attempts: u32) -> ClientConfig {
    let mut cfg = ClientConfig::new(url, ApiKey::new(key));
    cfg.backoff = Backoff {
        base: Duration::from_millis(1),
        cap: Duration::from_millis(5),
        max_attempts: attempts,
    };
    cfg.timeout = Duration::from_secs(5);
    cfg.limits = [
        Endpoint::GetLists,
        Endpoint::CreateList,
        Endpoint::Subscribe,
        Endpoint::Unsubscribe,
    ]
    .into_iter()
    .map(|e| (e, Limit::Unlimited))
    .collect();
    cfg
}

pub fn client(url: &str, key: &str) -> Arc<Client> {
    client_with(url, key, 4)
}

/// Epoch milliseconds that follow the real clock, plus whatever the test adds.
#[derive(Debug)]
pub struct TestClock {
    start: std::time::Instant,
    base: i64,
    offset: AtomicI64,
}

impl TestClock {
    pub fn new() -> Arc<Self> {
        let base = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        Arc::new(Self {
            start: std::time::Instant::now(),
            base,
            offset: AtomicI64::new(0),
        })
    }

    pub fn now(&self) -> i64 {
        self.base + self.start.elapsed().as_millis() as i64 + self.offset.load(Ordering::SeqCst)
    }

    pub fn advance(&self, d: Duration) {
        self.offset
            .fetch_add(d.as_millis() as i64, Ordering::SeqCst);
    }

    pub fn epoch(self: &Arc<Self>) -> EpochClock {
        let c = self.clone();
        Arc::new(move || c.now())
    }
}

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Self(std::env::temp_dir().join(format!(
            "sync-reconciler-{prefix}-{}-{nanos}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        )))
    }

    pub fn db(&self) -> PathBuf {
        self.0.join("store.db")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The database, read directly by the tests' checks.
pub fn open_store(path: &std::path::Path) -> Arc<SqliteStore> {
    Arc::new(SqliteStore::open(path).expect("open the store"))
}

/// The same database through the seam the reconciler uses.
pub fn seam(store: &Arc<SqliteStore>) -> Store {
    Store::sqlite_shared(store.clone())
}

/// Test settings: no linger, quick stored retries, quick polling and probing.
pub fn config(destination: &str, project_type: ProjectType) -> ReconcilerConfig {
    let mut c = ReconcilerConfig::new(destination, project_type);
    c.linger = Duration::ZERO;
    c.retry_base = Duration::from_millis(1);
    c.retry_max = Duration::from_millis(10);
    c.fresh_list_retry = Duration::from_millis(2);
    c.probe_interval = Duration::from_millis(10);
    c.poll_interval = Duration::from_millis(5);
    c
}

/// An emulator, a store file and a clock, as one test's world.
pub struct World {
    pub emu: RunningEmulator,
    pub dir: TempDir,
    pub store: Arc<SqliteStore>,
    pub clock: Arc<TestClock>,
}

impl World {
    pub async fn new(faults: Faults) -> Self {
        Self::with(emulator(faults).await)
    }

    pub fn with(emu: RunningEmulator) -> Self {
        let dir = TempDir::new("world");
        let store = open_store(&dir.db());
        Self {
            emu,
            dir,
            store,
            clock: TestClock::new(),
        }
    }

    pub fn reconciler(&self, cfg: ReconcilerConfig, client: Arc<Client>) -> Arc<Reconciler> {
        Arc::new(Reconciler::new(
            cfg,
            seam(&self.store),
            client,
            Arc::default(),
            self.clock.epoch(),
        ))
    }

    /// A reconciler for destination [`D`] on the hybrid project.
    pub fn hybrid(&self) -> Arc<Reconciler> {
        self.reconciler(config(D, ProjectType::Hybrid), client(&self.emu.url(), KEY))
    }

    /// Accepts events received now.
    pub fn accept(&self, events: Vec<(String, Vec<MembershipChange>)>) {
        accept_into(&self.store, D, self.clock.now(), events);
    }

    pub fn list_id(&self, audience: &str) -> i64 {
        self.store
            .list_id(D, audience)
            .expect("registry")
            .unwrap_or_else(|| panic!("no list registered for {audience}"))
    }

    /// Statuses of one event, per audience, with reasons.
    pub fn status(&self, message_id: &str) -> Vec<(StatusKind, Option<String>)> {
        status_of(&self.store, D, message_id)
    }

    pub fn kind(&self, message_id: &str) -> StatusKind {
        let s = self.status(message_id);
        assert_eq!(s.len(), 1, "{message_id}: {s:?}");
        s[0].0
    }

    /// Emails (or `uid:<id>` for members without one) of a list in the emulator.
    pub fn members(&self, list_id: i64) -> BTreeSet<String> {
        members(&self.emu, list_id)
    }

    /// Events still waiting (accepted or pending) for destination [`D`].
    pub fn unsettled(&self) -> u64 {
        let c = self.store.event_counts(D).expect("counts");
        c.accepted + c.pending
    }
}

pub fn members(emu: &RunningEmulator, list_id: i64) -> BTreeSet<String> {
    emu.members(list_id)
        .unwrap_or_else(|| panic!("list {list_id} is not in the emulator"))
        .into_iter()
        .map(|m| match m.email {
            Some(e) => e,
            None => format!("uid:{}", m.user_id.unwrap_or_default()),
        })
        .collect()
}

pub fn status_of(
    store: &SqliteStore,
    destination: &str,
    message_id: &str,
) -> Vec<(StatusKind, Option<String>)> {
    store
        .event_status(destination, message_id)
        .expect("event_status")
        .unwrap_or_else(|| panic!("event {message_id} is unknown"))
        .audiences
        .into_iter()
        .map(|a| (a.status, a.reason))
        .collect()
}

pub fn accept_into(
    store: &SqliteStore,
    destination: &str,
    received_ms: i64,
    events: Vec<(String, Vec<MembershipChange>)>,
) {
    let batch: Vec<NewEvent> = events
        .into_iter()
        .map(|(message_id, changes)| NewEvent {
            destination: destination.into(),
            message_id,
            received_ms,
            content: EventContent::Changes(changes),
            ignored_settings: Vec::new(),
        })
        .collect();
    store.accept(&batch).expect("accept");
}

/// One membership change; `time` is the event time.
pub fn change(
    audience: &str,
    email: Option<&str>,
    user_id: Option<&str>,
    member: bool,
    time: Option<i64>,
) -> MembershipChange {
    MembershipChange {
        audience_key: audience.into(),
        list_id: None,
        identity: Identity::new(email, user_id),
        member,
        data_fields: None,
        settings: ChangeSettings::default(),
        time_ms: time,
    }
}

/// An event with one change.
pub fn ev(message_id: &str, c: MembershipChange) -> (String, Vec<MembershipChange>) {
    (message_id.to_string(), vec![c])
}

/// Data fields from pairs.
pub fn fields(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// `run` in a task, stoppable.
pub struct Running {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Running {
    pub fn start(r: Arc<Reconciler>) -> Self {
        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn(async move { r.run(rx).await });
        Self { stop, task }
    }

    /// Signals shutdown and waits for the loop to finish its in-flight requests.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the loop stops")
            .expect("the loop did not panic");
    }
}

/// Polls `done` every 2 ms for up to 8 s.
pub async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(8),
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
