//! The running service: opens the store, starts one reconciler per enabled destination and the
//! HTTP listener, and shuts all of it down in order (listener, in-flight requests, deliveries).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use destination::ActionMapping;
use destination::plan::{Limits, Planner};
use destination::settings::ProjectType;
use iterable::client::{Client, ClientConfig};
use listener::Connections;
use sync::metrics::DestinationMetrics;
use sync::postgres::Access;
use sync::reconciler::{EpochClock, Reconciler, ReconcilerConfig};
use sync::sqlite::{OpenOptions, QuickCheck};
use sync::{PostgresStore, SqliteStore, Store, StoreError};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::config::{Config, DestinationConfig, Secret, Storage};
use crate::figures::{self, Figures, Snapshot};
use crate::http;

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("destination {name:?}: {message}")]
    Destination { name: String, message: String },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// One configured destination, ready to take events.
pub struct DestinationRuntime {
    pub config: DestinationConfig,
    pub planner: Planner,
    pub metrics: Arc<DestinationMetrics>,
    /// `None` when the destination is disabled: events are stored, not delivered.
    pub reconciler: Option<Arc<Reconciler>>,
    pub waker: Arc<Notify>,
}

/// Everything the HTTP handlers share.
pub struct AppState {
    pub config: Config,
    /// The store (its engine groups concurrent requests' events into one batch).
    pub store: Store,
    pub destinations: Vec<DestinationRuntime>,
    pub by_name: HashMap<String, usize>,
    /// Every write key with its destination, compared in constant time.
    pub write_keys: Vec<(Secret, usize)>,
    pub shutting_down: AtomicBool,
    pub request_seq: AtomicU64,
    pub clock: EpochClock,
    /// The store's figures for `/metrics` and `/v1/status`, read at most once a second.
    pub figures: Snapshot<Vec<Figures>>,
    /// At most so many answers a second of `/metrics` and `/v1/status` together.
    pub pace: crate::http::Pace,
    /// Snapshots (`PUT /v1/audiences/.../members`) applied at once; more are answered 429.
    pub snapshots: tokio::sync::Semaphore,
    /// The last hour per minute of each destination and audience (this instance's memory).
    pub history: crate::admin::history::History,
    /// The last WARN and ERROR log events of this process.
    pub warnings: Arc<crate::admin::warnings::WarningLog>,
    /// Verifies of an audience against its live list run by an operator: one at a time.
    pub verifies: tokio::sync::Semaphore,
}

impl AppState {
    /// The destination a write key belongs to.
    pub fn destination_for_key(&self, key: &str) -> Option<&DestinationRuntime> {
        let mut found = None;
        // Look at every key, so the time taken does not tell which one matched.
        for (secret, i) in &self.write_keys {
            if secret.matches(key.as_bytes()) {
                found = Some(*i);
            }
        }
        found.map(|i| &self.destinations[i])
    }

    pub fn destination(&self, name: &str) -> Option<&DestinationRuntime> {
        self.by_name.get(name).map(|&i| &self.destinations[i])
    }

    pub fn now_ms(&self) -> i64 {
        (self.clock)()
    }
}

/// The wall clock in epoch milliseconds.
pub fn system_clock() -> EpochClock {
    Arc::new(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    })
}

/// Opens the configured store to read it only (`status`, `events show`): nothing is created
/// or changed (on PostgreSQL: no migration runs, and a missing schema is an error). An
/// in-memory store is refused: only the service holding it can read it.
pub async fn open_store_read_only(config: &Config) -> Result<Store, StoreError> {
    match &config.storage {
        Storage::Sqlite { path } => Ok(Store::sqlite(SqliteStore::open_read_only(path)?)),
        Storage::SqliteMemory => Err(StoreError::Invalid {
            op: "open",
            message: "an in-memory database (sqlite::memory:) exists only inside the running \
                      service; ask it instead: GET /v1/status, GET /v1/events/{messageId}"
                .into(),
        }),
        // Inspection needs a connection or two, not the service's pool.
        Storage::Postgres { url } => Ok(Store::postgres(
            PostgresStore::open(url.expose(), 2, Access::ReadOnly).await?,
        )),
    }
}

/// Opens the service's store. SQLite: a damaged or unwritable file stops the start (the error
/// names it); an integrity check that did not finish in `[storage] quick_check_ms` is logged
/// loudly. PostgreSQL: the schema is created or migrated, and the database proven writable.
pub async fn open_service_store(config: &Config) -> Result<Store, StoreError> {
    let path = match &config.storage {
        Storage::Sqlite { path } => path,
        Storage::SqliteMemory => return Ok(Store::sqlite(SqliteStore::open_in_memory()?)),
        Storage::Postgres { url } => {
            let db = PostgresStore::open(url.expose(), config.storage_pool_size, Access::ReadWrite)
                .await?;
            return Ok(Store::postgres(db));
        }
    };
    let options = OpenOptions {
        quick_check: config.storage_quick_check,
    };
    let store = SqliteStore::open_with_options(path, &options)?;
    if let QuickCheck::Unfinished { budget } = store.quick_check() {
        tracing::warn!(
            path = %path.display(),
            budget_ms = budget.as_millis() as u64,
            "the integrity check of {} did not finish within {} ms; the rest of the file is \
             unchecked. Raise [storage] quick_check_ms, or check it while the service is \
             stopped: sqlite3 {} 'PRAGMA integrity_check'",
            path.display(),
            budget.as_millis(),
            path.display()
        );
    }
    Ok(Store::sqlite(store))
}

/// How often a store that cannot write is tried again.
const STORE_PROBE_EVERY: Duration = Duration::from_secs(1);

/// While the store cannot write (`/readyz` answers 503), tries a write every
/// [`STORE_PROBE_EVERY`], so that readiness comes back once the store can write, even when
/// nothing else writes (no events arrive while the service is not ready). Logs each change.
async fn watch_store(store: Store, mut shutdown: watch::Receiver<bool>) {
    let mut failing = false;
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(STORE_PROBE_EVERY) => {}
        }
        let failure = store.write_failure();
        match (&failure, failing) {
            (Some(why), false) => tracing::error!(
                reason = %why,
                "the store cannot write; /readyz answers 503 until it can"
            ),
            (None, true) => tracing::info!("the store writes again; ready"),
            _ => {}
        }
        failing = failure.is_some();
        if failing {
            let _ = store.probe_write().await;
            if store.write_failure().is_none() {
                tracing::info!("the store writes again; ready");
                failing = false;
            }
        }
    }
}

/// The Iterable project of an API key as instances name it to share its rate budget: the
/// first 16 bytes of the key's SHA-256, in hex (never the key).
pub fn project_of(key: &iterable::client::ApiKey) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, key.expose().as_bytes());
    d.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn build_destination(
    d: &DestinationConfig,
    store: &Store,
    clock: &EpochClock,
    (instance, lease): (&str, Duration),
) -> Result<DestinationRuntime, StartError> {
    let err = |message: String| StartError::Destination {
        name: d.name.clone(),
        message,
    };
    let mapping = ActionMapping::new(d.mapping.as_ref()).map_err(|e| err(e.to_string()))?;
    let mut planner = Planner::new(d.project_type, mapping);
    planner.limits = Limits {
        max_rows: d.delivery.batch_size,
        max_bytes: d.delivery.max_request_bytes,
    };
    planner.retl = d.retl_sync_mode;
    let metrics = Arc::new(DestinationMetrics::default());
    let reconciler = if d.enabled {
        let mut cc = ClientConfig::new(d.base_url.clone(), d.api_key.clone());
        cc.timeout = d.delivery.timeout;
        cc.limits = d.delivery.rate_limits.clone();
        let client = Client::new(cc).map_err(|e| err(e.to_string()))?;
        let rc = ReconcilerConfig {
            limits: planner.limits,
            linger: d.delivery.linger,
            concurrency: d.delivery.concurrency,
            instance: instance.to_string(),
            lease,
            project: project_of(&d.api_key),
            on_list_deleted: d.on_list_deleted,
            removal_guard: Some(d.removal_guard.clone()),
            ..ReconcilerConfig::new(d.name.clone(), d.project_type)
        };
        Some(Arc::new(Reconciler::new(
            rc,
            store.clone(),
            Arc::new(client),
            metrics.clone(),
            clock.clone(),
        )))
    } else {
        None
    };
    let waker = reconciler
        .as_ref()
        .map_or_else(|| Arc::new(Notify::new()), |r| r.waker());
    Ok(DestinationRuntime {
        config: d.clone(),
        planner,
        metrics,
        reconciler,
        waker,
    })
}

async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), StartError> {
    let bind_err = |source| StartError::Bind { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(bind_err)?;
    let local = listener.local_addr().map_err(bind_err)?;
    Ok((listener, local))
}

/// What the service runs with, logged at start: never a secret (API keys, write keys, webhook
/// secrets and the admin token are left out; a URL loses any password).
fn log_start(config: &Config, addr: SocketAddr, metrics: Option<SocketAddr>) {
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        listen = %addr,
        metrics_listen = metrics.map(tracing::field::display),
        storage = %crate::logs::redact_url(&config.storage.describe()),
        destinations = config.destinations.len(),
        admin_token = config.admin_token.is_some(),
        "iterable-lists starting"
    );
    for d in &config.destinations {
        tracing::info!(
            destination = %d.name,
            base_url = %crate::logs::redact_url(&d.base_url),
            project_type = match d.project_type {
                ProjectType::Hybrid => "hybrid",
                ProjectType::UserId => "userId",
            },
            enabled = d.enabled,
            write_keys = d.write_keys.len(),
            webhook_secret = d.webhook_secret.is_some(),
            "destination configured"
        );
    }
}

/// Waits for every task.
async fn join_all(tasks: impl Iterator<Item = JoinHandle<()>>) {
    for t in tasks {
        let _ = t.await;
    }
}

/// A started service. Dropping it without [`RunningService::shutdown`] aborts its tasks.
pub struct RunningService {
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    connections: Arc<Connections>,
    state: Arc<AppState>,
    shutdown: watch::Sender<bool>,
    /// The main listener, then the metrics one.
    listeners: Vec<JoinHandle<()>>,
    reconcilers: Vec<JoinHandle<()>>,
    store_watch: JoinHandle<()>,
    /// Prunes the event log (`[storage] retention`), when it is not kept forever.
    retention: Option<JoinHandle<()>>,
}

impl RunningService {
    /// Opens the store, starts the reconcilers and listens. Must run inside a Tokio runtime.
    pub async fn start(config: Config) -> Result<Self, StartError> {
        Self::start_with_clock(config, system_clock()).await
    }

    /// As [`RunningService::start`], with an injected epoch clock (tests).
    pub async fn start_with_clock(config: Config, clock: EpochClock) -> Result<Self, StartError> {
        let store = open_service_store(&config).await?;
        let mut destinations = Vec::new();
        // One id per process start, in every destination's leases and heartbeats.
        let instance = sync::reconciler::new_instance_id();
        for d in &config.destinations {
            destinations.push(build_destination(
                d,
                &store,
                &clock,
                (&instance, config.storage_lease),
            )?);
        }
        let wakers: Vec<Arc<Notify>> = destinations.iter().map(|d| d.waker.clone()).collect();
        store.after_accept(move || {
            for w in &wakers {
                w.notify_one();
            }
        });
        let mut by_name = HashMap::new();
        let mut write_keys = Vec::new();
        for (i, d) in destinations.iter().enumerate() {
            by_name.insert(d.config.name.clone(), i);
            for k in &d.config.write_keys {
                write_keys.push((k.clone(), i));
            }
        }
        let (listener, addr) = bind(config.listen).await?;
        let metrics = match config.metrics_listen {
            Some(a) => Some(bind(a).await?),
            None => None,
        };
        log_start(&config, addr, metrics.as_ref().map(|(_, a)| *a));
        let conns = Connections::new("iterable-lists", config.http);
        let state = Arc::new(AppState {
            config,
            store,
            destinations,
            by_name,
            write_keys,
            shutting_down: AtomicBool::new(false),
            request_seq: AtomicU64::new(0),
            clock,
            figures: Snapshot::new(figures::MAX_AGE),
            pace: crate::http::Pace::default(),
            snapshots: tokio::sync::Semaphore::new(crate::http::MAX_SNAPSHOTS),
            history: crate::admin::history::History::default(),
            warnings: crate::admin::warnings::global(),
            verifies: tokio::sync::Semaphore::new(1),
        });
        let (tx, rx) = watch::channel(false);
        let mut reconcilers = Vec::new();
        for d in &state.destinations {
            if let Some(r) = &d.reconciler {
                let r = r.clone();
                let rx = rx.clone();
                reconcilers.push(tokio::spawn(async move { r.run(rx).await }));
            }
        }
        // `verify_every`: the live lists compared with the store in the background.
        for d in &state.destinations {
            let schedule = sync::drift::schedule::VerifySchedule {
                every: d.config.verify_every,
                by_audience: d.config.verify_every_by_audience.clone(),
                repair: d.config.verify_repair,
            };
            if let Some(r) = &d.reconciler
                && schedule.is_active()
            {
                reconcilers.push(tokio::spawn(sync::drift::schedule::run(
                    r.clone(),
                    schedule,
                    rx.clone(),
                )));
            }
        }
        let store_watch = tokio::spawn(watch_store(state.store.clone(), rx.clone()));
        // The admin views' per-minute series (this instance's memory).
        reconcilers.push(tokio::spawn(crate::admin::history::run(
            state.clone(),
            rx.clone(),
        )));
        let retention = state.config.storage_retention.map(|period| {
            tokio::spawn(sync::retention::run(
                state.store.clone(),
                state.clock.clone(),
                period,
                rx.clone(),
            ))
        });
        let mut listeners = vec![tokio::spawn(http::serve(
            listener,
            conns.clone(),
            state.clone(),
            rx.clone(),
        ))];
        let metrics_addr = metrics.map(|(l, a)| {
            listeners.push(tokio::spawn(http::serve_metrics(
                l,
                conns.clone(),
                state.clone(),
                rx,
            )));
            a
        });
        Ok(Self {
            addr,
            metrics_addr,
            connections: conns,
            state,
            shutdown: tx,
            listeners,
            reconcilers,
            store_watch,
            retention,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address of the metrics-only listener, when `metrics_listen` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The connections of both listeners, under one cap.
    pub fn connections(&self) -> &Arc<Connections> {
        &self.connections
    }

    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Stops accepting, lets in-flight requests finish (at most `grace`), then lets the
    /// reconcilers finish their in-flight deliveries and record them.
    pub async fn shutdown(mut self, grace: Duration) {
        self.state.shutting_down.store(true, Ordering::SeqCst);
        let _ = self.shutdown.send(true);
        let listeners = join_all(self.listeners.drain(..));
        let _ = tokio::time::timeout(grace, listeners).await;
        for h in self.reconcilers.drain(..) {
            let _ = tokio::time::timeout(grace, h).await;
        }
    }
}

impl Drop for RunningService {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        for h in &self.listeners {
            h.abort();
        }
        for h in &self.reconcilers {
            h.abort();
        }
        self.store_watch.abort();
        if let Some(h) = &self.retention {
            h.abort();
        }
    }
}
