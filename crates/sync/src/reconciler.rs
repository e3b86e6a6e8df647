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
//!    the store's registry (as [`crate::store::StoreRegistry`] does), cached in memory
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
//! Failures: retryable ones (429, 5xx, timeouts, resets, after the client's own retries) are
//! stored as `Retry` with exponential backoff and jitter, so they survive a restart; a 401
//! pauses the destination without touching the rows (probed with `GET /api/lists` every
//! `probe_interval`, resumed when it works); `invalidListId` is retried soon for a list this
//! process just created and much later otherwise (never re-created here); other 4xx reject the
//! rows with Iterable's code and message; a `413` splits the request in halves. Every error
//! path either records an outcome or leaves the row pending: no row is ever lost.

mod attempts;
mod reachability;

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use destination::classify::{RowOutcome, SentRow, classify};
use destination::plan::{Change, Limits, Operation, build_requests, collapse};
use destination::settings::ProjectType;
use iterable::backoff::random_fraction;
use iterable::client::{Client, ErrorKind, IterableError};
use iterable::errors::ErrorClass;
use iterable::limiter::Endpoint;
use iterable::resolve::{ListRegistry, ListResolver, RegistryError, ResolveError};
use iterable::types::{BulkUpdateResponse, ListRef};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::metrics::{DestinationMetrics, RowResult, StatusClass};
pub use crate::store::DestinationState;
use crate::store::{Identity, Outcome, OutcomeRow, PendingRow, Recorded, Store, StoreError};
use attempts::Tries;
use reachability::Reachability;

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
    /// probably deleted in Iterable, which needs an operator.
    pub missing_list_retry: Duration,
    /// While paused by a 401, how often the key is tried again (default 60 s).
    pub probe_interval: Duration,
    /// How often the store is checked for retries that became due, when nothing else wakes
    /// the loop (default 1 s).
    pub poll_interval: Duration,
    /// How long Iterable must stay unreachable (connection errors, timeouts, 5xx) before the
    /// destination is `degraded` (default 60 s).
    pub degraded_after: Duration,
}

impl ReconcilerConfig {
    /// The defaults for one destination.
    pub fn new(destination: impl Into<String>, project_type: ProjectType) -> Self {
        Self {
            destination: destination.into(),
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
        }
    }

    fn batch(&self) -> usize {
        self.limits.max_rows.max(1)
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

    fn count(&mut self, o: &Outcome) {
        match o {
            Outcome::Delivered => self.delivered += 1,
            Outcome::Rejected { .. } => self.rejected += 1,
            Outcome::Retry { .. } => self.retried += 1,
            Outcome::Superseded { .. } => self.superseded += 1,
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
    /// A blocking store task panicked or was cancelled.
    #[error("a store task failed: {0}")]
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

/// Users (by email and by userId) of one audience with a request in flight. Hashes, not
/// strings: a collision only delays a row until the other request is done.
#[derive(Debug, Default)]
struct Keys {
    ids: HashMap<u64, u32>,
    rows: usize,
}

#[derive(Debug, Default)]
struct InFlightTable {
    hasher: RandomState,
    audiences: HashMap<String, Keys>,
    /// Per audience with a pending read under way ([`Claim::begin_read`]): users whose request
    /// finished meanwhile. The read may predate their outcome, so [`Claim::take`] leaves them
    /// for the next read instead of sending the same version twice.
    released: HashMap<String, HashSet<u64>>,
}

impl InFlightTable {
    fn hashes(&self, id: &Identity) -> [Option<u64>; 2] {
        [
            id.email.as_deref().map(|e| self.hasher.hash_one((0u8, e))),
            id.user_id
                .as_deref()
                .map(|u| self.hasher.hash_one((1u8, u))),
        ]
    }
}

type InFlight = Arc<Mutex<InFlightTable>>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Rows of one audience taken for sending; released (from the in-flight table) on drop, so
/// a panicking or cancelled task cannot strand them.
#[derive(Debug)]
struct Claim {
    table: InFlight,
    audience: String,
    hashes: Vec<Option<[Option<u64>; 2]>>,
}

impl Claim {
    /// Marks the start of a read of `audience`'s pending rows (before the store query).
    fn begin_read(table: &InFlight, audience: &str) {
        lock(table)
            .released
            .insert(audience.to_string(), HashSet::new());
    }

    /// Claims the rows of `rows` whose user has no request in flight and returns them, with
    /// the number of rows left out because their user is busy. Takes at most `max` rows.
    /// Rows of one person within `rows` are taken together, for the planner to collapse.
    fn take(
        table: &InFlight,
        audience: &str,
        rows: Vec<PendingRow>,
        max: usize,
    ) -> (Claim, Vec<PendingRow>, usize) {
        let mut t = lock(table);
        let mut taken = Vec::with_capacity(rows.len().min(max));
        let mut hashes = Vec::with_capacity(taken.capacity());
        let mut blocked = 0;
        let hs: Vec<[Option<u64>; 2]> = rows.iter().map(|r| t.hashes(&r.identity)).collect();
        let released = t.released.remove(audience).unwrap_or_default();
        let keys = t.audiences.entry(audience.to_string()).or_default();
        for (row, h) in rows.into_iter().zip(hs) {
            if taken.len() >= max {
                break;
            }
            if h.iter()
                .flatten()
                .any(|x| keys.ids.contains_key(x) || released.contains(x))
            {
                blocked += 1;
                continue;
            }
            hashes.push(Some(h));
            taken.push(row);
        }
        for h in hashes.iter().flatten() {
            for x in h.iter().flatten() {
                *keys.ids.entry(*x).or_default() += 1;
            }
            keys.rows += 1;
        }
        if keys.rows == 0 {
            t.audiences.remove(audience);
        }
        drop(t);
        (
            Claim {
                table: table.clone(),
                audience: audience.to_string(),
                hashes,
            },
            taken,
            blocked,
        )
    }

    /// Moves the claims of rows `idx` (indices into the rows returned by [`Claim::take`])
    /// into a new claim.
    fn split(&mut self, idx: impl IntoIterator<Item = usize>) -> Claim {
        let hashes = idx
            .into_iter()
            .map(|i| self.hashes.get_mut(i).and_then(Option::take))
            .collect();
        Claim {
            table: self.table.clone(),
            audience: self.audience.clone(),
            hashes,
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut t = lock(&self.table);
        if let Some(r) = t.released.get_mut(&self.audience) {
            r.extend(self.hashes.iter().flatten().flatten().flatten().copied());
        }
        let Some(keys) = t.audiences.get_mut(&self.audience) else {
            return;
        };
        for h in self.hashes.iter().flatten() {
            for x in h.iter().flatten() {
                if let Some(n) = keys.ids.get_mut(x) {
                    *n -= 1;
                    if *n == 0 {
                        keys.ids.remove(x);
                    }
                }
            }
            keys.rows = keys.rows.saturating_sub(1);
        }
        if keys.rows == 0 {
            t.audiences.remove(&self.audience);
        }
    }
}

/// The store as the resolver's registry. Like [`crate::store::StoreRegistry`], but its futures
/// are boxed: they own their arguments, so the reconciler's futures stay provably `Send`
/// (the compiler cannot see through `StoreRegistry<dyn Store>`'s borrowed futures).
struct Registry(Arc<dyn Store>);

type RegistryFuture<T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, RegistryError>> + Send>>;

impl Registry {
    fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    ) -> RegistryFuture<T> {
        let store = self.0.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || f(&*store))
                .await
                .map_err(|e| RegistryError(format!("the store task failed: {e}")))?
                .map_err(|e| RegistryError(e.to_string()))
        })
    }
}

impl ListRegistry for Registry {
    fn get(
        &self,
        destination: &str,
        audience: &str,
    ) -> impl std::future::Future<Output = Result<Option<i64>, RegistryError>> + Send {
        let (d, a) = (destination.to_string(), audience.to_string());
        self.call(move |s| s.list_id(&d, &a))
    }

    fn put(
        &self,
        destination: &str,
        audience: &str,
        list_id: i64,
    ) -> impl std::future::Future<Output = Result<(), RegistryError>> + Send {
        let (d, a) = (destination.to_string(), audience.to_string());
        self.call(move |s| s.put_list_id(&d, &a, list_id).map(|_| ()))
    }
}

struct Inner {
    cfg: ReconcilerConfig,
    store: Arc<dyn Store>,
    client: Arc<Client>,
    metrics: Arc<DestinationMetrics>,
    clock: EpochClock,
    resolver: ListResolver<Registry>,
    /// Audience → list, once resolved (the registry never changes an entry).
    lists: Mutex<HashMap<String, i64>>,
    waker: Arc<Notify>,
    /// Running or paused (degraded is worked out from `reach`).
    state: Mutex<DestinationState>,
    reach: Mutex<Reachability>,
    in_flight: InFlight,
    slots: Arc<Semaphore>,
    /// Signalled when a request has its answer and gives its slot back (its outcomes may
    /// still be being recorded), and when a list resolution started by the loop ends.
    wake_loop: Notify,
    /// Results of list resolutions run in tasks of their own, until the loop takes them:
    /// the number of resumes when the task started (see `resumes`), and the result.
    resolved: Mutex<HashMap<String, Resolved>>,
    /// How many times the destination resumed after a refused key. A refused key reported by
    /// a resolution that started before the last resume is out of date.
    resumes: AtomicU64,
}

/// A list resolution's result: the resumes counted when it started, and the list or error.
type Resolved = (u64, Result<i64, ResolveError>);

/// Requests whose answers are being recorded, per slot of `concurrency`, at most. The slot
/// of a request is freed when Iterable answers, so a slow store write does not hold back
/// the next requests; this bounds the work waiting for the store.
const RECORDING_PER_SLOT: usize = 4;

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

async fn blocking<T: Send + 'static>(
    store: &Arc<dyn Store>,
    f: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ReconcileError> {
    let s = store.clone();
    tokio::task::spawn_blocking(move || f(&*s))
        .await
        .map_err(|e| ReconcileError::Task(e.to_string()))?
        .map_err(ReconcileError::from)
}

/// Iterable's words for a refused request: `code: msg`, with the status.
fn iterable_reason(e: &IterableError) -> String {
    let status = e.status.map(|s| format!("HTTP {s}")).unwrap_or_default();
    match (
        e.code.as_deref(),
        e.msg.as_deref().filter(|m| !m.is_empty()),
    ) {
        (Some(c), Some(m)) => format!("{c}: {m} ({status})"),
        (Some(c), None) => format!("{c} ({status})"),
        (None, Some(m)) => format!("{m} ({status})"),
        (None, None) => e.to_string(),
    }
}

impl Inner {
    fn now(&self) -> i64 {
        (self.clock)()
    }

    /// Paused, else degraded, else running.
    fn state(&self) -> DestinationState {
        let s = lock(&self.state).clone();
        if s.is_paused() {
            return s;
        }
        let after = self.degraded_after_ms();
        match lock(&self.reach).degraded(self.now(), after) {
            Some((reason, since_ms)) => DestinationState::Degraded {
                reason: reason.to_string(),
                since_ms,
            },
            None => s,
        }
    }

    fn degraded_after_ms(&self) -> i64 {
        i64::try_from(self.cfg.degraded_after.as_millis()).unwrap_or(i64::MAX)
    }

    /// A call failed: a failure without an answer (or a 5xx) adds to the unreachable streak;
    /// any other answer ends it.
    fn note_failure(&self, e: &IterableError) {
        if reachability::unreachable(e) {
            lock(&self.reach).failed(self.now(), e.to_string());
            self.announce_degraded();
        } else {
            self.note_answer();
        }
    }

    /// Iterable answered.
    fn note_answer(&self) {
        if lock(&self.reach).answered() {
            eprintln!(
                "iterable-lists: destination {:?}: Iterable answers again; no longer degraded",
                self.cfg.destination
            );
        }
    }

    /// Logs, once per streak, that Iterable has been unreachable for too long.
    fn announce_degraded(&self) {
        let (now, after) = (self.now(), self.degraded_after_ms());
        let mut r = lock(&self.reach);
        if r.announce(now, after)
            && let Some((reason, since)) = r.degraded(now, after)
        {
            eprintln!(
                "iterable-lists: destination {:?} DEGRADED: Iterable unreachable for {} s \
                 (since epoch ms {since}); deliveries go on being retried; last failure: {reason}",
                self.cfg.destination,
                (now - since) / 1000
            );
        }
    }

    /// Stores the state when its word changed since `stored` (the last word stored).
    async fn store_state(&self, stored: &mut Option<&'static str>) {
        let state = self.state();
        // Nothing stored yet reads as running.
        if stored.unwrap_or("running") == state.word() {
            return;
        }
        let (dest, now, word) = (self.cfg.destination.clone(), self.now(), state.word());
        match blocking(&self.store, move |s| {
            s.set_destination_state(&dest, &state, now)
        })
        .await
        {
            Ok(()) => *stored = Some(word),
            Err(e) => eprintln!(
                "iterable-lists: destination {:?}: storing its state: {e}",
                self.cfg.destination
            ),
        }
    }

    /// Takes up the state an earlier run stored: a pause holds (the key is probed at once), a
    /// degraded streak goes on. Returns the stored word.
    async fn restore_state(&self) -> Option<&'static str> {
        let dest = self.cfg.destination.clone();
        match blocking(&self.store, move |s| s.destination_state(&dest)).await {
            Ok(Some(DestinationState::Paused { reason, since_ms })) => {
                *lock(&self.state) = DestinationState::Paused { reason, since_ms };
                Some("paused")
            }
            Ok(Some(DestinationState::Degraded { reason, since_ms })) => {
                lock(&self.reach).restore(since_ms, reason);
                Some("degraded")
            }
            Ok(Some(DestinationState::Running)) => Some("running"),
            Ok(None) => None,
            Err(e) => {
                eprintln!(
                    "iterable-lists: destination {:?}: reading its stored state: {e}",
                    self.cfg.destination
                );
                None
            }
        }
    }

    fn is_paused(&self) -> bool {
        lock(&self.state).is_paused()
    }

    fn pause(&self, e: &IterableError) {
        let mut s = lock(&self.state);
        if !s.is_paused() {
            let reason = e.to_string();
            eprintln!(
                "iterable-lists: destination {:?} paused, Iterable refused the API key: {reason}",
                self.cfg.destination
            );
            *s = DestinationState::Paused {
                reason,
                since_ms: self.now(),
            };
            self.metrics.paused();
        }
    }

    fn resume(&self) {
        let mut s = lock(&self.state);
        if s.is_paused() {
            eprintln!(
                "iterable-lists: destination {:?} resumed, the API key works again",
                self.cfg.destination
            );
            *s = DestinationState::Running;
            self.resumes.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Tries the key with a cheap call; resumes when it works.
    async fn probe(&self) -> bool {
        match self.client.get_lists().await {
            Ok(_) => {
                self.metrics
                    .request(Endpoint::GetLists, StatusClass::Success);
                self.note_answer();
                self.resume();
                true
            }
            Err(e) => {
                self.metrics
                    .request(Endpoint::GetLists, StatusClass::of_error(&e));
                self.note_failure(&e);
                if e.class == ErrorClass::Authentication {
                    let mut s = lock(&self.state);
                    if let DestinationState::Paused { reason, .. } = &mut *s {
                        *reason = e.to_string();
                    }
                }
                false
            }
        }
    }

    /// The delay before the next stored attempt of a row that failed `attempts` times
    /// before: `retry_base × 2^attempts` capped at `retry_max`, half of it jittered, never
    /// shorter than a `Retry-After` or 1 ms.
    fn retry_delay(&self, attempts: u32, retry_after: Option<Duration>, fraction: f64) -> Duration {
        let exp = attempts.min(30);
        let ceiling = self
            .cfg
            .retry_base
            .saturating_mul(1u32 << exp)
            .min(self.cfg.retry_max);
        let d = ceiling / 2 + (ceiling / 2).mul_f64(fraction.clamp(0.0, 1.0));
        d.max(retry_after.unwrap_or_default())
            .max(Duration::from_millis(1))
    }

    fn jittered(d: Duration, fraction: f64) -> Duration {
        (d / 2 + (d / 2).mul_f64(fraction.clamp(0.0, 1.0))).max(Duration::from_millis(1))
    }

    /// The audience's list, known or resolved; `waiting` are the rows that wait for it (their
    /// events show the failed tries of the lookup).
    async fn list_for(
        self: &Arc<Self>,
        audience: &str,
        waiting: Vec<(Identity, u64)>,
    ) -> Result<i64, ResolveError> {
        if let Some(id) = lock(&self.lists).get(audience) {
            return Ok(*id);
        }
        let tries = Tries::new(self.clone(), audience, move || waiting.clone());
        let id = self
            .resolver
            .resolve_observed(audience, None, Some(&tries))
            .await;
        if let Err(ResolveError::Iterable(e)) = &id {
            self.note_failure(e);
        }
        let id = id?;
        lock(&self.lists).insert(audience.to_string(), id);
        Ok(id)
    }

    /// Records outcomes of one audience in one transaction and counts them.
    async fn record(
        &self,
        audience: &str,
        rows: Vec<(OutcomeRow, i64)>,
    ) -> Result<PassReport, ReconcileError> {
        let mut report = PassReport::default();
        if rows.is_empty() {
            return Ok(report);
        }
        let now = self.now();
        let (dest, aud) = (self.cfg.destination.clone(), audience.to_string());
        let (outcomes, accepted): (Vec<OutcomeRow>, Vec<i64>) = rows.into_iter().unzip();
        let (outcomes, recorded) = blocking(&self.store, move |s| {
            let r = s.record_outcomes(&dest, &aud, now, &outcomes)?;
            Ok((outcomes, r))
        })
        .await?;
        for ((o, accepted_ms), r) in outcomes.iter().zip(accepted).zip(recorded) {
            report.count(&o.outcome);
            let result = match &o.outcome {
                Outcome::Delivered => {
                    self.metrics
                        .observe_latency((now - accepted_ms) as f64 / 1000.0);
                    RowResult::Delivered
                }
                Outcome::Rejected { .. } => RowResult::Rejected,
                Outcome::Retry { .. } => RowResult::Retried,
                Outcome::Superseded { .. } => RowResult::Superseded,
            };
            // A retry or supersession of a row that changed meanwhile was dropped by the
            // store: nothing happened to it.
            if r == Recorded::Applied
                || matches!(result, RowResult::Delivered | RowResult::Rejected)
            {
                self.metrics.rows(result, 1);
            }
        }
        Ok(report)
    }
}

/// One row of a request: the store's key and version, and the change as planned.
#[derive(Debug)]
struct JobRow {
    identity: Identity,
    seq: u64,
    accepted_ms: i64,
    attempts: u32,
    change: Change,
}

/// One planned request of one audience, sent by its own task.
struct Job {
    audience: String,
    op: Operation,
    list_id: i64,
    /// The list came from the registry (not from the events' external id).
    from_registry: bool,
    body: Bytes,
    rows: Vec<JobRow>,
}

/// What a finished request task reports to the loop.
#[derive(Debug, Default)]
struct JobDone {
    report: PassReport,
    unauthorized: Option<IterableError>,
    failure: Option<ReconcileError>,
}

fn endpoint(op: Operation) -> Endpoint {
    match op {
        Operation::Subscribe => Endpoint::Subscribe,
        Operation::Unsubscribe => Endpoint::Unsubscribe,
    }
}

async fn send(
    client: &Client,
    op: Operation,
    body: Bytes,
    tries: &dyn iterable::client::AttemptObserver,
) -> Result<BulkUpdateResponse, IterableError> {
    client.bulk_update(endpoint(op), body, Some(tries)).await
}

impl Job {
    /// Sends the request (split in halves on `413`), classifies and records every row.
    async fn run(self, inner: Arc<Inner>, permit: OwnedSemaphorePermit, _claim: Claim) -> JobDone {
        let mut done = JobDone::default();
        let mut outcomes: Vec<(OutcomeRow, i64)> = Vec::with_capacity(self.rows.len());
        // Pieces still to send: a body and the rows (indices into self.rows) it holds.
        let mut pieces: Vec<(Bytes, Vec<usize>)> =
            vec![(self.body.clone(), (0..self.rows.len()).collect())];
        let fraction = random_fraction();
        while let Some((body, idx)) = pieces.pop() {
            let tries = Tries::new(inner.clone(), &self.audience, || {
                idx.iter()
                    .map(|&i| (self.rows[i].identity.clone(), self.rows[i].seq))
                    .collect()
            });
            let result = send(&inner.client, self.op, body, &tries).await;
            drop(tries);
            match &result {
                Ok(_) => inner.note_answer(),
                Err(e) => inner.note_failure(e),
            }
            done.report.requests += 1;
            inner.metrics.request(
                endpoint(self.op),
                result
                    .as_ref()
                    .map_or_else(StatusClass::of_error, |_| StatusClass::Success),
            );
            let now = inner.now();
            let out = |i: usize, outcome: Outcome| {
                let r = &self.rows[i];
                (
                    OutcomeRow {
                        identity: r.identity.clone(),
                        seq: r.seq,
                        outcome,
                    },
                    r.accepted_ms,
                )
            };
            let e = match result {
                Ok(resp) => {
                    let sent: Vec<SentRow<'_>> = idx
                        .iter()
                        .map(|&i| SentRow {
                            email: self.rows[i].change.email.as_deref(),
                            user_id: self.rows[i].change.user_id.as_deref(),
                        })
                        .collect();
                    let c = classify(self.op, &sent, &resp);
                    for (&i, row) in idx.iter().zip(c.rows) {
                        let o = match row {
                            RowOutcome::Done | RowOutcome::DoneNotFound => Outcome::Delivered,
                            RowOutcome::Forgotten { bucket } | RowOutcome::Rejected { bucket } => {
                                Outcome::Rejected {
                                    reason: bucket.to_string(),
                                }
                            }
                        };
                        outcomes.push(out(i, o));
                    }
                    continue;
                }
                Err(e) => e,
            };
            match e.class {
                ErrorClass::Authentication => {
                    // Nothing is recorded: the rows stay pending, their attempts untouched.
                    done.unauthorized = Some(e);
                    // Pieces not sent yet stay pending too.
                    pieces.clear();
                }
                ErrorClass::InvalidList => {
                    let (delay, reason) = if self.from_registry
                        && inner.resolver.is_fresh(self.list_id)
                    {
                        (
                            Inner::jittered(inner.cfg.fresh_list_retry, fraction),
                            format!(
                                "list {} was created moments ago and Iterable does not know it yet ({})",
                                self.list_id,
                                iterable_reason(&e)
                            ),
                        )
                    } else if self.from_registry {
                        (
                            Inner::jittered(inner.cfg.missing_list_retry, fraction),
                            format!(
                                "list {} of audience {:?} no longer exists in Iterable (deleted?); it is not re-created automatically ({})",
                                self.list_id,
                                self.audience,
                                iterable_reason(&e)
                            ),
                        )
                    } else {
                        (
                            Inner::jittered(inner.cfg.missing_list_retry, fraction),
                            format!(
                                "list {}, named by the events' external audience id, does not exist in Iterable ({})",
                                self.list_id,
                                iterable_reason(&e)
                            ),
                        )
                    };
                    let next_attempt_ms = now + delay.as_millis() as i64;
                    for i in idx {
                        outcomes.push(out(
                            i,
                            Outcome::Retry {
                                next_attempt_ms,
                                reason: reason.clone(),
                            },
                        ));
                    }
                }
                ErrorClass::Permanent if e.status == Some(413) && idx.len() > 1 => {
                    // Too large for this server: send it in halves.
                    let half = idx.len().div_ceil(2);
                    let changes: Vec<(usize, &Change)> =
                        idx.iter().map(|&i| (i, &self.rows[i].change)).collect();
                    let limits = Limits {
                        max_rows: half,
                        max_bytes: inner.cfg.limits.max_bytes,
                    };
                    let (reqs, _) = build_requests(&changes, inner.cfg.project_type, limits);
                    for r in reqs.into_iter().rev() {
                        let rows = r.rows.iter().map(|p| p.source).collect();
                        pieces.push((Bytes::from(r.body), rows));
                    }
                }
                ErrorClass::Permanent if e.kind == ErrorKind::Status => {
                    let reason = iterable_reason(&e);
                    for i in idx {
                        outcomes.push(out(
                            i,
                            Outcome::Rejected {
                                reason: reason.clone(),
                            },
                        ));
                    }
                }
                // Retryable, or a 2xx whose body could not be read (it may have worked).
                _ => {
                    let reason = e.to_string();
                    for i in idx {
                        let delay =
                            inner.retry_delay(self.rows[i].attempts, e.retry_after, fraction);
                        outcomes.push(out(
                            i,
                            Outcome::Retry {
                                next_attempt_ms: now + delay.as_millis() as i64,
                                reason: reason.clone(),
                            },
                        ));
                    }
                }
            }
        }
        // Iterable has answered: the slot is free for the next request. The rows stay
        // claimed until their outcomes are stored.
        drop(permit);
        inner.wake_loop.notify_one();
        match inner.record(&self.audience, outcomes).await {
            Ok(r) => {
                let requests = done.report.requests;
                done.report = r;
                done.report.requests = requests;
            }
            Err(e) => done.failure = Some(e),
        }
        done
    }
}

/// What fetching one audience led to.
enum Fetched {
    /// Nothing more is due now.
    Exhausted,
    /// There may be more (rows were sent, or are waiting for a request in flight).
    More,
    /// A partial batch is waiting for more rows until the deadline.
    Lingering,
}

/// When a lingering audience must be sent, and when it may be looked at again before that.
#[derive(Debug, Clone, Copy)]
struct Linger {
    deadline: Instant,
    recheck: Instant,
}

/// The state of one run of the loop (or one pass).
struct Dispatcher {
    inner: Arc<Inner>,
    jobs: JoinSet<JobDone>,
    /// Audiences that may have due rows, in round-robin order.
    active: VecDeque<String>,
    known: HashSet<String>,
    lingering: HashMap<String, Linger>,
    /// Audiences whose list is being resolved by a task of its own (running loop only); the
    /// task leaves its result in `Inner::resolved`.
    resolving: HashMap<String, JoinHandle<()>>,
    /// The due cutoff of a drain pass (fixed), or `None` (the clock's now).
    cutoff: Option<i64>,
    drain: bool,
    report: PassReport,
    seen: HashSet<String>,
    last_refresh: Option<Instant>,
    /// The least time between refreshes: ten times the last refresh's duration, within
    /// [`MIN_REFRESH_GAP`]..=[`MAX_REFRESH_GAP`], so that with a large backlog (the query
    /// reads every pending row) finding audiences takes at most about a tenth of the store.
    refresh_gap: Duration,
}

impl Drop for Dispatcher {
    /// List resolutions still running stop with the loop. One cut short after Iterable
    /// created the list is finished by the next resolution, which finds the list by name
    /// before creating one (as after a crash).
    fn drop(&mut self) {
        for task in self.resolving.values() {
            task.abort();
        }
    }
}

/// Refreshes of the due audiences are at least this far apart.
const MIN_REFRESH_GAP: Duration = Duration::from_millis(20);
/// The longest a wanted refresh waits, however slow the last one was.
const MAX_REFRESH_GAP: Duration = Duration::from_secs(5);

impl Dispatcher {
    fn new(inner: Arc<Inner>, drain: bool) -> Self {
        let cutoff = drain.then(|| inner.now());
        Self {
            inner,
            jobs: JoinSet::new(),
            active: VecDeque::new(),
            known: HashSet::new(),
            lingering: HashMap::new(),
            resolving: HashMap::new(),
            cutoff,
            drain,
            report: PassReport::default(),
            seen: HashSet::new(),
            last_refresh: None,
            refresh_gap: MIN_REFRESH_GAP,
        }
    }

    fn now(&self) -> i64 {
        self.cutoff.unwrap_or_else(|| self.inner.now())
    }

    /// Adds the audiences with due rows to the round.
    async fn refresh(&mut self) -> Result<(), ReconcileError> {
        let now = self.now();
        let dest = self.inner.cfg.destination.clone();
        let started = Instant::now();
        let due = blocking(&self.inner.store, move |s| s.pending_audiences(&dest, now)).await?;
        let t = Instant::now();
        self.last_refresh = Some(t);
        self.refresh_gap = (t - started)
            .saturating_mul(10)
            .clamp(MIN_REFRESH_GAP, MAX_REFRESH_GAP);
        for a in due {
            if self.known.insert(a.clone()) {
                self.active.push_back(a.clone());
            }
            self.seen.insert(a);
        }
        self.report.audiences = self.seen.len();
        Ok(())
    }

    fn refresh_due(&self, now: Instant) -> bool {
        self.last_refresh
            .is_none_or(|t| now >= t + self.refresh_gap)
    }

    /// Starts as many requests as free slots allow, one audience after the other. Returns
    /// whether anything was started or recorded.
    async fn fill(&mut self) -> Result<bool, ReconcileError> {
        let mut progressed = false;
        let rounds = self.active.len();
        for _ in 0..rounds {
            if self.inner.is_paused() || !self.can_start() {
                break;
            }
            let Some(audience) = self.active.pop_front() else {
                break;
            };
            if self.waits_for_list(&audience) {
                // Its rows wait for the list; the task wakes the loop when it is known.
                self.active.push_back(audience);
                continue;
            }
            let t = Instant::now();
            if let Some(l) = self.lingering.get(&audience)
                && t < l.deadline
                && t < l.recheck
            {
                self.active.push_back(audience);
                continue;
            }
            match self.fetch(&audience).await {
                Ok((fetched, any)) => {
                    progressed |= any;
                    match fetched {
                        Fetched::Exhausted => {
                            self.known.remove(&audience);
                            self.lingering.remove(&audience);
                        }
                        Fetched::More | Fetched::Lingering => self.active.push_back(audience),
                    }
                }
                Err(e) => {
                    self.active.push_back(audience);
                    return Err(e);
                }
            }
        }
        Ok(progressed)
    }

    /// Fetches, plans and starts the due rows of one audience.
    async fn fetch(&mut self, audience: &str) -> Result<(Fetched, bool), ReconcileError> {
        let inner = self.inner.clone();
        let cfg = &inner.cfg;
        let batch = cfg.batch();
        let free = inner.slots.available_permits().max(1);
        let want = free * batch;
        let busy = lock(&inner.in_flight)
            .audiences
            .get(audience)
            .map_or(0, |k| k.rows);
        let limit = want + busy;
        let now = self.now();
        let (dest, aud) = (cfg.destination.clone(), audience.to_string());
        Claim::begin_read(&inner.in_flight, audience);
        let rows = blocking(&inner.store, move |s| s.pending(&dest, &aud, now, limit)).await;
        let rows = match rows {
            Ok(rows) => rows,
            Err(e) => {
                lock(&inner.in_flight).released.remove(audience);
                return Err(e);
            }
        };
        let fetched = rows.len();
        let (claim, rows, blocked) = Claim::take(&inner.in_flight, audience, rows, want);
        let exhausted = fetched < limit && blocked == 0;
        if rows.is_empty() {
            self.lingering.remove(audience);
            return Ok((
                if exhausted {
                    Fetched::Exhausted
                } else {
                    Fetched::More
                },
                false,
            ));
        }
        if !self.drain && rows.len() < batch && !cfg.linger.is_zero() {
            let t = Instant::now();
            let recheck = t + (cfg.linger / 4).max(Duration::from_millis(5));
            match self.lingering.get_mut(audience) {
                Some(l) if t >= l.deadline => {}
                Some(l) => {
                    l.recheck = recheck;
                    return Ok((Fetched::Lingering, false));
                }
                None => {
                    let oldest = rows.iter().map(|r| r.accepted_ms).min().unwrap_or(now);
                    let age = Duration::from_millis(now.saturating_sub(oldest).max(0) as u64);
                    if age < cfg.linger {
                        let deadline = t + (cfg.linger - age);
                        self.lingering
                            .insert(audience.to_string(), Linger { deadline, recheck });
                        return Ok((Fetched::Lingering, false));
                    }
                }
            }
        }
        self.lingering.remove(audience);
        let rows_taken = rows.len();
        let waiting = self.start(audience, rows, claim).await?;
        let sent_all = exhausted && !waiting && rows_taken == fetched;
        Ok((
            if sent_all {
                Fetched::Exhausted
            } else {
                Fetched::More
            },
            true,
        ))
    }

    /// A task of its own is resolving the audience's list and has no result yet.
    fn waits_for_list(&self, audience: &str) -> bool {
        self.resolving
            .get(audience)
            .is_some_and(|task| !task.is_finished())
            && !lock(&self.inner.resolved).contains_key(audience)
    }

    /// The audience's list: known, or resolved now (a drain pass waits for it). The running
    /// loop resolves in a task of its own and gets `None` until that task has a result.
    /// `waiting` gives the keys of the rows that wait for the list, if it is to be looked up.
    async fn list_for(
        &mut self,
        audience: &str,
        waiting: impl FnOnce() -> Vec<(Identity, u64)>,
    ) -> Result<Option<Result<i64, ResolveError>>, ReconcileError> {
        let known = lock(&self.inner.lists).get(audience).copied();
        if let Some(id) = known {
            if !self.resolving.is_empty() && self.resolving.remove(audience).is_some() {
                lock(&self.inner.resolved).remove(audience);
            }
            return Ok(Some(Ok(id)));
        }
        if self.drain {
            return Ok(Some(self.inner.list_for(audience, waiting()).await));
        }
        let result = lock(&self.inner.resolved).remove(audience);
        match (result, self.resolving.get(audience)) {
            (Some((resumes, r)), _) => {
                self.resolving.remove(audience);
                // A refused key from before the last resume is out of date: try again.
                let stale = matches!(&r, Err(ResolveError::Iterable(e))
                    if e.class == ErrorClass::Authentication)
                    && resumes != self.inner.resumes.load(Ordering::SeqCst);
                if !stale {
                    return Ok(Some(r));
                }
            }
            (None, Some(task)) if !task.is_finished() => return Ok(None),
            (None, Some(_)) => {
                // The task ended without a result: it panicked.
                self.resolving.remove(audience);
                return Err(ReconcileError::Task(format!(
                    "resolving the list of audience {audience:?} panicked"
                )));
            }
            (None, None) => {}
        }
        let (inner, aud, waiting) = (self.inner.clone(), audience.to_string(), waiting());
        let resumes = inner.resumes.load(Ordering::SeqCst);
        let task = tokio::spawn(async move {
            let r = inner.list_for(&aud, waiting).await;
            // The result is in place before the loop is woken.
            lock(&inner.resolved).insert(aud, (resumes, r));
            inner.wake_loop.notify_one();
        });
        self.resolving.insert(audience.to_string(), task);
        Ok(None)
    }

    /// Resolves the list, plans, records superseded and unplaceable rows, and spawns one task
    /// per request. Returns whether rows were left pending because their list is still being
    /// resolved.
    async fn start(
        &mut self,
        audience: &str,
        rows: Vec<PendingRow>,
        mut claim: Claim,
    ) -> Result<bool, ReconcileError> {
        let inner = self.inner.clone();
        let cfg = &inner.cfg;
        let now = inner.now();
        let fraction = random_fraction();
        let mut early: Vec<(OutcomeRow, i64)> = Vec::new();
        let mut waiting = false;
        let registry_list = if rows.iter().any(|r| r.list_id.is_none()) {
            let keys = || {
                rows.iter()
                    .filter(|r| r.list_id.is_none())
                    .map(|r| (r.identity.clone(), r.version.seq))
                    .collect()
            };
            match self.list_for(audience, keys).await? {
                // Being resolved: the rows without a list id stay pending meanwhile.
                None => {
                    waiting = true;
                    None
                }
                Some(Ok(id)) => Some(id),
                Some(Err(ResolveError::Registry(e))) => return Err(e.into()),
                Some(Err(ResolveError::Iterable(e))) => {
                    inner.metrics.request(e.endpoint, StatusClass::of_error(&e));
                    if e.class == ErrorClass::Authentication {
                        inner.pause(&e);
                    } else {
                        let reason =
                            format!("cannot find or create the list of audience {audience:?}: {e}");
                        for r in rows.iter().filter(|r| r.list_id.is_none()) {
                            let delay = inner.retry_delay(r.attempts, e.retry_after, fraction);
                            early.push((
                                OutcomeRow {
                                    identity: r.identity.clone(),
                                    seq: r.version.seq,
                                    outcome: Outcome::Retry {
                                        next_attempt_ms: now + delay.as_millis() as i64,
                                        reason: reason.clone(),
                                    },
                                },
                                r.accepted_ms,
                            ));
                        }
                    }
                    None
                }
            }
        } else {
            None
        };
        // Rows that can be planned: an explicit list, or the resolved one.
        let mut changes: Vec<Change> = Vec::with_capacity(rows.len());
        let mut planned: Vec<usize> = Vec::with_capacity(rows.len());
        for (i, r) in rows.iter().enumerate() {
            let Some(list) = r.list_id.or(registry_list) else {
                continue;
            };
            let mut c = r.to_change();
            c.list = ListRef::Id(list);
            changes.push(c);
            planned.push(i);
        }
        let winners = collapse(&changes, cfg.project_type);
        let mut survivors: Vec<(usize, &Change)> = Vec::with_capacity(changes.len());
        for (ci, &w) in winners.iter().enumerate() {
            if w == ci {
                survivors.push((ci, &changes[ci]));
            } else {
                let r = &rows[planned[ci]];
                early.push((
                    OutcomeRow {
                        identity: r.identity.clone(),
                        seq: r.version.seq,
                        outcome: Outcome::Superseded {
                            reason: format!(
                                "superseded by a newer change for the same user in list {}",
                                list_label(&changes[w])
                            ),
                        },
                    },
                    r.accepted_ms,
                ));
            }
        }
        let (requests, oversized) = build_requests(&survivors, cfg.project_type, cfg.limits);
        for o in oversized {
            let r = &rows[planned[o.source]];
            early.push((
                OutcomeRow {
                    identity: r.identity.clone(),
                    seq: r.version.seq,
                    outcome: Outcome::Rejected { reason: o.message },
                },
                r.accepted_ms,
            ));
        }
        drop(survivors);
        if !early.is_empty() {
            let r = inner.record(audience, early).await?;
            self.report.add(&r);
        }
        // Move each planned change into its request's rows.
        let mut changes: Vec<Option<Change>> = changes.into_iter().map(Some).collect();
        let mut rows: Vec<Option<PendingRow>> = rows.into_iter().map(Some).collect();
        for req in requests {
            let list_id = match req.list {
                ListRef::Id(id) => id,
                ListRef::Audience(_) => continue,
            };
            let mut job_rows = Vec::with_capacity(req.rows.len());
            let mut idx = Vec::with_capacity(req.rows.len());
            for p in &req.rows {
                let ri = planned[p.source];
                let (Some(change), Some(row)) = (changes[p.source].take(), rows[ri].take()) else {
                    continue;
                };
                idx.push(ri);
                job_rows.push(JobRow {
                    identity: row.identity,
                    seq: row.version.seq,
                    accepted_ms: row.accepted_ms,
                    attempts: row.attempts,
                    change,
                });
            }
            let job = Job {
                audience: audience.to_string(),
                op: req.op,
                list_id,
                from_registry: Some(list_id) == registry_list,
                body: Bytes::from(req.body),
                rows: job_rows,
            };
            let part = claim.split(idx);
            let permit = match inner.slots.clone().try_acquire_owned() {
                Ok(p) => p,
                Err(_) => inner
                    .slots
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|e| ReconcileError::Task(e.to_string()))?,
            };
            let task_inner = inner.clone();
            self.jobs.spawn(job.run(task_inner, permit, part));
        }
        // The rest of the claim (recorded or left pending) is released here.
        drop(claim);
        Ok(waiting)
    }

    /// Takes in a finished task's report.
    fn finished(&mut self, r: Result<JobDone, tokio::task::JoinError>) -> Option<ReconcileError> {
        match r {
            Ok(done) => {
                self.report.add(&done.report);
                if let Some(e) = &done.unauthorized {
                    self.inner.pause(e);
                }
                done.failure
            }
            Err(e) => Some(ReconcileError::Task(e.to_string())),
        }
    }

    /// A slot is free and not too many answers wait to be recorded.
    fn can_start(&self) -> bool {
        self.inner.slots.available_permits() > 0
            && self.jobs.len() < self.inner.cfg.concurrency.max(1) * (RECORDING_PER_SLOT + 1)
    }

    /// The next moment a running loop must look again by itself: the next poll or wanted
    /// refresh, or the end of a linger (only while a slot is free to send it; otherwise a
    /// finishing request wakes the loop).
    fn next_wake(&self, refresh_wanted: bool, poll: Duration) -> Instant {
        let now = Instant::now();
        let last = self.last_refresh.unwrap_or(now);
        let mut at = last + poll.max(self.refresh_gap);
        if refresh_wanted {
            at = at.min(last + self.refresh_gap);
        }
        if self.can_start() {
            for l in self.lingering.values() {
                at = at.min(l.deadline);
            }
        }
        at.max(now + Duration::from_millis(1))
    }
}

fn list_label(c: &Change) -> String {
    match &c.list {
        ListRef::Id(id) => id.to_string(),
        ListRef::Audience(a) => a.clone(),
    }
}

impl Reconciler {
    /// A reconciler for `cfg.destination`, sending through `client` and storing in `store`.
    /// Lists are resolved with a single-flight resolver over the store's registry.
    pub fn new(
        cfg: ReconcilerConfig,
        store: Arc<dyn Store>,
        client: Arc<Client>,
        metrics: Arc<DestinationMetrics>,
        clock: EpochClock,
    ) -> Self {
        let resolver = ListResolver::new(
            client.clone(),
            Registry(store.clone()),
            cfg.destination.clone(),
        );
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

    /// Delivers until `shutdown` turns true (or its sender is dropped). Then it starts
    /// nothing new (lingering rows stay pending in the store), waits for the requests in
    /// flight, records their outcomes, and returns. Store failures are reported on stderr and
    /// retried after `poll_interval`.
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) {
        let inner = self.inner.clone();
        let mut d = Dispatcher::new(inner.clone(), false);
        let mut refresh_wanted = true;
        let mut next_probe: Option<Instant> = None;
        let mut store_wait: Option<Instant> = None;
        let poll = inner.cfg.poll_interval.max(Duration::from_millis(1));
        let mut stored = inner.restore_state().await;
        if inner.is_paused() {
            // Paused by an earlier run: try the key at once.
            next_probe = Some(Instant::now());
        }
        loop {
            if *shutdown.borrow() {
                break;
            }
            inner.announce_degraded();
            inner.store_state(&mut stored).await;
            let t = Instant::now();
            if store_wait.is_some_and(|w| t < w) {
                // A store failure: wait a little before the next attempt.
            } else if inner.is_paused() {
                if d.jobs.is_empty() {
                    let at = *next_probe.get_or_insert(t + inner.cfg.probe_interval);
                    if t >= at {
                        next_probe = None;
                        if inner.probe().await {
                            refresh_wanted = true;
                        }
                        continue;
                    }
                }
            } else {
                next_probe = None;
                store_wait = None;
                if d.last_refresh.is_none_or(|l| t >= l + poll) {
                    refresh_wanted = true;
                }
                let step = async {
                    if refresh_wanted && d.refresh_due(t) {
                        d.refresh().await?;
                        refresh_wanted = false;
                    }
                    d.fill().await
                };
                if let Err(e) = step.await {
                    eprintln!(
                        "iterable-lists: destination {:?}: delivery loop: {e}",
                        inner.cfg.destination
                    );
                    store_wait = Some(Instant::now() + poll);
                }
            }
            // While paused only the probe is due; after a store failure, only its wait.
            let wake = match (inner.is_paused(), store_wait) {
                (true, _) => *next_probe.get_or_insert(t + inner.cfg.probe_interval),
                (false, Some(w)) if w > Instant::now() => w,
                _ => d.next_wake(refresh_wanted, poll),
            };
            tokio::select! {
                changed = shutdown.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
                Some(r) = d.jobs.join_next(), if !d.jobs.is_empty() => {
                    if let Some(e) = d.finished(r) {
                        eprintln!(
                            "iterable-lists: destination {:?}: recording outcomes: {e}",
                            inner.cfg.destination
                        );
                        store_wait = Some(Instant::now() + poll);
                    }
                }
                _ = inner.waker.notified() => refresh_wanted = true,
                _ = inner.wake_loop.notified() => {}
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
        while let Some(r) = d.jobs.join_next().await {
            if let Some(e) = d.finished(r) {
                eprintln!(
                    "iterable-lists: destination {:?}: recording outcomes: {e}",
                    inner.cfg.destination
                );
            }
        }
        inner.store_state(&mut stored).await;
    }

    /// One pass over the work due now, without lingering: every audience with due rows is
    /// sent (at most `concurrency` requests at a time) until nothing due is left, and all
    /// outcomes are recorded. Rows rescheduled during the pass are not retried in it. When
    /// paused, it probes the key once first. A 401 during the pass stops it with
    /// [`ReconcileError::Paused`] (the rows stay pending).
    pub async fn run_once(&self) -> Result<PassReport, ReconcileError> {
        let inner = self.inner.clone();
        let mut stored = inner.restore_state().await;
        let result = self.pass().await;
        inner.announce_degraded();
        inner.store_state(&mut stored).await;
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
        let mut failure: Option<ReconcileError> = None;
        match d.refresh().await {
            Ok(()) => loop {
                match d.fill().await {
                    Ok(progressed) => {
                        if d.jobs.is_empty() && (!progressed || d.active.is_empty()) {
                            break;
                        }
                    }
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
                if inner.is_paused() {
                    break;
                }
                if let Some(r) = d.jobs.join_next().await
                    && let Some(e) = d.finished(r)
                {
                    failure = Some(e);
                    break;
                }
            },
            Err(e) => failure = Some(e),
        }
        while let Some(r) = d.jobs.join_next().await {
            if let Some(e) = d.finished(r) {
                failure.get_or_insert(e);
            }
        }
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

    fn row(email: &str, uid: Option<&str>) -> PendingRow {
        PendingRow {
            audience_key: "a".into(),
            list_id: None,
            identity: Identity::new(Some(email), uid),
            member: true,
            data_fields: None,
            settings: Default::default(),
            version: crate::store::Version {
                time_ms: None,
                seq: 1,
            },
            accepted_ms: 0,
            attempts: 0,
            last_error: None,
        }
    }

    /// The server spawns these futures: they must be `Send`.
    #[allow(dead_code)]
    fn futures_are_send(r: &Reconciler, rx: watch::Receiver<bool>) {
        fn is_send<T: Send>(_: T) {}
        is_send(r.run(rx));
        is_send(r.run_once());
    }

    #[test]
    fn a_user_released_during_a_read_waits_for_the_next_read() {
        let table: InFlight = Arc::default();
        let (c1, got, _) = Claim::take(&table, "a", vec![row("a@x.co", None)], 10);
        assert_eq!(got.len(), 1);
        // A read starts; the request in flight finishes (its outcome stored) before the read
        // is claimed: the read may still show the row as pending, so it is left out.
        Claim::begin_read(&table, "a");
        drop(c1);
        let (_c, got, blocked) = Claim::take(
            &table,
            "a",
            vec![row("a@x.co", None), row("b@x.co", None)],
            10,
        );
        assert_eq!((got.len(), blocked), (1, 1));
        assert_eq!(got[0].identity.email.as_deref(), Some("b@x.co"));
        // The next read (begun after the release) takes it.
        Claim::begin_read(&table, "a");
        let (_c, got, blocked) = Claim::take(&table, "a", vec![row("a@x.co", None)], 10);
        assert_eq!((got.len(), blocked), (1, 0));
        assert!(lock(&table).released.is_empty());
    }

    #[test]
    fn claims_block_the_same_user_until_released() {
        let table: InFlight = Arc::default();
        let (mut c1, got, blocked) = Claim::take(
            &table,
            "a",
            vec![row("a@x.co", Some("1")), row("b@x.co", None)],
            10,
        );
        assert_eq!((got.len(), blocked), (2, 0));
        // One person twice in one fetch: both taken, for the planner to collapse.
        let (_c0, got, blocked) = Claim::take(
            &table,
            "n",
            vec![row("s@x.co", None), row("s@x.co", Some("9"))],
            10,
        );
        assert_eq!((got.len(), blocked), (2, 0));
        // Same email, or same userId, is busy; another audience is not.
        let (_c2, got, blocked) = Claim::take(
            &table,
            "a",
            vec![
                row("a@x.co", None),
                row("z@x.co", Some("1")),
                row("c@x.co", None),
            ],
            10,
        );
        assert_eq!((got.len(), blocked), (1, 2));
        let (_c3, got, _) = Claim::take(&table, "other", vec![row("a@x.co", None)], 10);
        assert_eq!(got.len(), 1);
        // Releasing the first row only (split off and dropped) frees a@x.co / 1.
        drop(c1.split([0]));
        let (_c4, got, blocked) = Claim::take(
            &table,
            "a",
            vec![row("a@x.co", Some("1")), row("b@x.co", None)],
            10,
        );
        assert_eq!((got.len(), blocked), (1, 1));
        drop(c1);
        drop(_c4);
        drop(_c2);
        assert!(!lock(&table).audiences.contains_key("a"), "all released");
        // `max` caps what is taken.
        let (_c, got, _) = Claim::take(
            &table,
            "m",
            vec![row("p@x.co", None), row("q@x.co", None)],
            1,
        );
        assert_eq!(got.len(), 1);
    }
}
