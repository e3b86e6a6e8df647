//! The delivery loop of one destination: per audience, the keys whose desired membership is not
//! yet acknowledged become subscribe/unsubscribe requests, and every row's outcome is stored.
//!
//! How a pass goes, per audience with due rows:
//! 1. **Fetch** up to `concurrency × batch` due rows ([`Store::pending`], one query), skipping
//!    users that have a request in flight (so two versions of one user are never in flight at
//!    once and the latest always lands last).
//! 2. **Linger**: fewer rows than a full batch, the oldest younger than `linger`: wait (until
//!    it is `linger` old, on Tokio's clock) for more, unless draining. A lingering audience is
//!    read again every quarter of the linger, not at every new event (under load that re-read
//!    the same rows about every 20 ms).
//! 3. **Resolve** the list once per audience: rows naming a list id (the event's external
//!    audience id) use it; the others go through the single-flight [`ListResolver`] backed by
//!    the store's registry ([`StoreRegistry`]), cached in memory
//!    afterwards. The running loop resolves in a task of its own and goes on with the other
//!    audiences meanwhile (creating lists is rate-limited: twenty new audiences would
//!    otherwise hold every delivery for seconds); the audience's rows wait, pending.
//! 4. **Plan** with the destination's planner: [`collapse`] (losers are recorded as
//!    superseded) and [`build_requests`] (≤ `max_rows` and ≤ `max_bytes` per request).
//! 5. **Send** each request as its own task, at most `concurrency` in flight, through the
//!    [`Client`] (its rate limiter, timeouts and in-process retries), then classify each row of
//!    a 200 and record the whole request's outcomes in **one** [`Store::record_outcomes`]
//!    call. Fetching the next rows overlaps with requests in flight.
//!
//! While the client retries a call, each failed try is recorded for the rows that wait for it
//! (see `attempts`): their events show `pending` with the attempt count and the last error.
//! Iterable unreachable (connection errors, timeouts, 5xx) for longer than `degraded_after`
//! makes the destination `degraded` (see `reachability`) until it answers again. The state
//! (running, paused, degraded) is stored, so `iterable-lists status` shows it, and a restart
//! starts from it.
//!
//! Failures are decided by the retry policy (`retry::decide`, with its table): retryable ones
//! (429, 5xx, timeouts, resets, after the client's own retries) are stored as `Retry` with
//! exponential backoff and jitter, so they survive a restart; a 401 pauses the destination
//! without touching the rows (probed with `GET /api/lists` every `probe_interval`, resumed
//! when it works); `invalidListId` is retried soon for a list this process just created and
//! much later otherwise; a registered list that Iterable no longer lists is re-created, and the
//! audience's members sent to the new one (`recreate`; unless `on_list_deleted` is `Pause`);
//! other 4xx reject the rows with Iterable's
//! code and message; a `413` splits the request in halves. Every error path either records an
//! outcome or leaves the row pending: no row is ever lost.
//!
//! The parts: `dispatcher` (the round over audiences: fetch, linger, start), `plan` (the
//! list, the planner, one task per request), `job` (one request: send, decide, record),
//! `claims` (users with a request in flight), `guard` (the mass-removal guard), `pause` (paused, degraded, the probe; with
//! `reachability`), `recreate` (a list deleted in Iterable comes back), `notices` (what a failed request logs, and how often), `attempts` (failed tries while the client retries), `running` (the
//! loop), `registry` (the store as the resolver's registry), `shared` (what they share).

mod attempts;
mod claims;
mod coordinator;
mod dispatcher;
mod guard;
mod job;
mod notices;
mod operator;
mod pause;
mod plan;
mod reachability;
mod recreate;
mod registry;
mod running;
mod shared;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use destination::plan::Limits;
use destination::settings::ProjectType;
use iterable::client::Client;
use iterable::resolve::{ListResolver, RegistryError};
use tokio::sync::{Notify, Semaphore, watch};

use crate::metrics::{DestinationMetrics, RowResult};
pub use crate::store::DestinationState;
use crate::store::{Store, StoreError};
use claims::InFlightTable;
pub use coordinator::{new_instance_id, share_rate_budget};
use dispatcher::Dispatcher;
pub use guard::{RemovalGuard, hold_commands};
use reachability::Reachability;
pub use recreate::OnListDeleted;
pub use registry::StoreRegistry;
use running::Running;
use shared::{Inner, lock};

/// The current time in epoch milliseconds. Injectable so tests can drive it.
pub type EpochClock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// How one destination is delivered.
#[derive(Debug, Clone)]
pub struct ReconcilerConfig {
    /// The destination's name, as the store keys it.
    pub destination: String,
    /// How the Iterable project identifies users (decides who is one person when collapsing).
    pub project_type: ProjectType,
    /// Rows and bytes per request (`max_rows` is also the batch the linger waits for).
    pub limits: Limits,
    /// How long a partial batch may wait for more rows (default 500 ms).
    pub linger: Duration,
    /// Requests in flight at once (default 4).
    pub concurrency: usize,
    /// First stored-retry delay, doubled per failed attempt (default 5 s), with jitter.
    pub retry_base: Duration,
    /// Longest stored-retry delay (default 15 min).
    pub retry_max: Duration,
    /// Retry delay after `invalidListId` on a list created by this process moments ago
    /// (default 2 s).
    pub fresh_list_retry: Duration,
    /// Retry delay after `invalidListId` on any other list (default 1 h): the list was
    /// probably deleted in Iterable (re-created at once unless `on_list_deleted` is `Pause`;
    /// the rows are then due again at once).
    pub missing_list_retry: Duration,
    /// While paused by a 401, how often the key is tried again (default 60 s).
    pub probe_interval: Duration,
    /// How often the store is checked for retries that became due, when nothing else wakes
    /// the loop (default 1 s).
    pub poll_interval: Duration,
    /// How long Iterable must stay unreachable (connection errors, timeouts, 5xx) before the
    /// destination is `degraded` (default 60 s).
    pub degraded_after: Duration,
    /// This instance's id in leases and heartbeats: random per process start (default: a
    /// new one per configuration).
    pub instance: String,
    /// How long an audience's lease lasts unless renewed (default 30 s): a dead instance's
    /// audiences are taken over after it.
    pub lease: Duration,
    /// The Iterable project whose rate budget the instances share: a hash of the API key,
    /// never the key (default: the destination's name).
    pub project: String,
    /// What happens when an audience's list was deleted in Iterable (default: re-created).
    pub on_list_deleted: OnListDeleted,
    /// The mass-removal guard (see `guard`); `None` (the default here) sends every exit.
    /// The service turns it on from its configuration.
    pub removal_guard: Option<RemovalGuard>,
}

impl ReconcilerConfig {
    /// The defaults for one destination.
    pub fn new(destination: impl Into<String>, project_type: ProjectType) -> Self {
        let destination: String = destination.into();
        Self {
            project: format!("destination:{destination}"),
            destination,
            project_type,
            limits: Limits::default(),
            linger: Duration::from_millis(500),
            concurrency: 4,
            retry_base: Duration::from_secs(5),
            retry_max: Duration::from_secs(15 * 60),
            fresh_list_retry: Duration::from_secs(2),
            missing_list_retry: Duration::from_secs(60 * 60),
            probe_interval: Duration::from_secs(60),
            poll_interval: Duration::from_secs(1),
            degraded_after: Duration::from_secs(60),
            instance: new_instance_id(),
            lease: Duration::from_secs(30),
            on_list_deleted: OnListDeleted::default(),
            removal_guard: None,
        }
    }

    fn batch(&self) -> usize {
        self.limits.max_rows.max(1)
    }

    /// The stored-retry delays, for the retry policy.
    fn policy(&self) -> retry::Policy {
        retry::Policy {
            retry_base: self.retry_base,
            retry_max: self.retry_max,
            fresh_list_retry: self.fresh_list_retry,
            missing_list_retry: self.missing_list_retry,
        }
    }
}

/// What one pass ([`Reconciler::run_once`]) did, in rows and requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Audiences that had due rows.
    pub audiences: usize,
    /// Subscribe/unsubscribe requests that got a final answer (or final failure).
    pub requests: u64,
    /// Rows Iterable acknowledged (including unsubscribes of users it does not know).
    pub delivered: u64,
    /// Rows refused for good (Iterable's bucket or error), or too large for any request.
    pub rejected: u64,
    /// Rows rescheduled after a retryable failure.
    pub retried: u64,
    /// Rows not sent because another row of the same person won.
    pub superseded: u64,
}

impl PassReport {
    fn add(&mut self, o: &PassReport) {
        self.requests += o.requests;
        self.delivered += o.delivered;
        self.rejected += o.rejected;
        self.retried += o.retried;
        self.superseded += o.superseded;
    }

    fn count(&mut self, r: RowResult) {
        match r {
            RowResult::Delivered => self.delivered += 1,
            RowResult::Rejected => self.rejected += 1,
            RowResult::Retried => self.retried += 1,
            RowResult::Superseded => self.superseded += 1,
        }
    }
}

/// Why a pass stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The store failed; what was not recorded stays pending.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The list registry (the store behind it) failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A task of the loop (a request, a list resolution) panicked or was cancelled.
    #[error("a delivery task failed: {0}")]
    Task(String),
    /// Iterable refused the API key: the pass stopped, the rest stays pending.
    #[error("deliveries to this destination are paused: {reason}")]
    Paused {
        /// Iterable's answer (never the key).
        reason: String,
        /// What the pass did before it stopped.
        report: PassReport,
    },
}

/// The delivery loop of one destination. Share it behind an `Arc`: [`Reconciler::run`] and
/// [`Reconciler::run_once`] take `&self`, and never send one user twice at once even when
/// both run.
pub struct Reconciler {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Reconciler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconciler")
            .field("config", &self.inner.cfg)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

impl Reconciler {
    /// A reconciler for `cfg.destination`, sending through `client` and storing in `store`.
    /// Lists are resolved with a single-flight resolver over the store's registry.
    pub fn new(
        cfg: ReconcilerConfig,
        store: Store,
        client: Arc<Client>,
        metrics: Arc<DestinationMetrics>,
        clock: EpochClock,
    ) -> Self {
        let resolver = ListResolver::new(
            client.clone(),
            StoreRegistry(store.clone()),
            cfg.destination.clone(),
        );
        share_rate_budget(&client, store.clone(), cfg.project.clone(), clock.clone());
        let slots = Arc::new(Semaphore::new(cfg.concurrency.max(1)));
        Self {
            inner: Arc::new(Inner {
                cfg,
                store,
                client,
                metrics,
                clock,
                resolver,
                lists: Mutex::new(HashMap::new()),
                waker: Arc::new(Notify::new()),
                state: Mutex::new(DestinationState::Running),
                reach: Mutex::new(Reachability::default()),
                in_flight: Arc::new(Mutex::new(InFlightTable::default())),
                slots,
                wake_loop: Notify::new(),
                resolved: Mutex::new(HashMap::new()),
                resumes: AtomicU64::new(0),
                notices: notices::Notices::default(),
                coord: Mutex::new(Default::default()),
                looping: AtomicBool::new(false),
                replacing: Default::default(),
                announced_holds: Mutex::new(Default::default()),
                operator_paused: AtomicBool::new(false),
                operator_checked: Mutex::new(None),
            }),
        }
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &ReconcilerConfig {
        &self.inner.cfg
    }

    /// Its metrics.
    pub fn metrics(&self) -> &Arc<DestinationMetrics> {
        &self.inner.metrics
    }

    /// The store it delivers from.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The client it sends through (its rate limiter shared with the other instances).
    pub fn client(&self) -> &Arc<Client> {
        &self.inner.client
    }

    /// Now, by its clock (epoch ms).
    pub fn now_ms(&self) -> i64 {
        self.inner.now()
    }

    /// Call `notify_one()` on it after storing events: the loop looks for new work at once.
    pub fn waker(&self) -> Arc<Notify> {
        self.inner.waker.clone()
    }

    /// Running, or paused by a refused API key.
    pub fn state(&self) -> DestinationState {
        self.inner.state()
    }

    /// Rows taken for requests that have not been recorded yet.
    pub fn in_flight_rows(&self) -> usize {
        lock(&self.inner.in_flight)
            .audiences
            .values()
            .map(|k| k.rows)
            .sum()
    }

    /// Requests to Iterable started and not answered yet (each holds one of `concurrency`'s
    /// slots from the moment its task is spawned; on shutdown, the loop waits for them).
    pub fn requests_in_flight(&self) -> usize {
        self.inner
            .cfg
            .concurrency
            .max(1)
            .saturating_sub(self.inner.slots.available_permits())
    }

    /// Delivers until `shutdown` turns true (or its sender is dropped). Then it starts
    /// nothing new (lingering rows stay pending in the store), waits for the requests in
    /// flight, records their outcomes, and returns. Store failures are reported on stderr and
    /// retried after `poll_interval`.
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) {
        self.inner.looping.store(true, Ordering::SeqCst);
        let mut r = Running::start(self.inner.clone()).await;
        while !*shutdown.borrow() {
            r.step().await;
            if !r.wait(&mut shutdown).await {
                break;
            }
        }
        r.finish().await;
        self.inner.looping.store(false, Ordering::SeqCst);
    }

    /// One pass over the work due now, without lingering: every audience with due rows is
    /// sent (at most `concurrency` requests at a time) until nothing due is left, and all
    /// outcomes are recorded. Rows rescheduled during the pass are not retried in it. When
    /// paused, it probes the key once first. A 401 during the pass stops it with
    /// [`ReconcileError::Paused`] (the rows stay pending).
    pub async fn run_once(&self) -> Result<PassReport, ReconcileError> {
        let inner = self.inner.clone();
        let mut stored = inner.restore_state().await;
        inner.coordinate(true).await?;
        let result = self.pass().await;
        inner.announce_degraded();
        inner.store_state(&mut stored).await;
        if !inner.looping.load(Ordering::SeqCst) {
            inner.leave().await;
        }
        result
    }

    async fn pass(&self) -> Result<PassReport, ReconcileError> {
        let inner = self.inner.clone();
        if inner.is_paused()
            && !inner.probe().await
            && let DestinationState::Paused { reason, .. } = inner.state()
        {
            return Err(ReconcileError::Paused {
                reason,
                report: PassReport::default(),
            });
        }
        let mut d = Dispatcher::new(inner.clone(), true);
        let failure = d.drain().await.err();
        if let Some(e) = failure {
            return Err(e);
        }
        if let DestinationState::Paused { reason, .. } = inner.state() {
            return Err(ReconcileError::Paused {
                reason,
                report: d.report,
            });
        }
        Ok(d.report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The server spawns these futures: they must be `Send`.
    #[allow(dead_code)]
    fn futures_are_send(r: &Reconciler, rx: watch::Receiver<bool>) {
        fn is_send<T: Send>(_: T) {}
        is_send(r.run(rx));
        is_send(r.run_once());
    }
}
