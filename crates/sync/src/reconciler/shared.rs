//! What the loop and its request tasks share: the configuration, the store, the client, the
//! resolver and the live state, with the two things every part does: resolve an audience's
//! list, and record outcomes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, MutexGuard};

use iterable::client::Client;
use iterable::resolve::{ListResolver, ResolveError};
use tokio::sync::{Notify, Semaphore};

use super::attempts::Tries;
use super::claims::InFlight;
use super::coordinator::Coord;
use super::reachability::Reachability;
use super::registry::StoreRegistry;
use super::{DestinationState, EpochClock, PassReport, ReconcileError, ReconcilerConfig};
use crate::metrics::{DestinationMetrics, RowResult};
use crate::store::{Identity, Outcome, OutcomeRow, Recorded, Store};

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub(super) struct Inner {
    pub cfg: ReconcilerConfig,
    pub store: Store,
    pub client: Arc<Client>,
    pub metrics: Arc<DestinationMetrics>,
    pub clock: EpochClock,
    pub resolver: ListResolver<StoreRegistry>,
    /// Audience → list, once resolved (the registry changes an entry only when the list was
    /// deleted in Iterable and is replaced, see `recreate`).
    pub lists: Mutex<HashMap<String, i64>>,
    pub waker: Arc<Notify>,
    /// Running or paused (degraded is worked out from `reach`).
    pub state: Mutex<DestinationState>,
    pub reach: Mutex<Reachability>,
    pub in_flight: InFlight,
    /// The one limit of requests in flight (`concurrency`).
    pub slots: Arc<Semaphore>,
    /// Signalled when a request has its answer and gives its slot back (its outcomes may
    /// still be being recorded), and when a list resolution started by the loop ends.
    pub wake_loop: Notify,
    /// Results of list resolutions run in tasks of their own, until the loop takes them:
    /// the number of resumes when the task started (see `resumes`), and the result.
    pub resolved: Mutex<HashMap<String, Resolved>>,
    /// How many times the destination resumed after a refused key. A refused key reported by
    /// a resolution that started before the last resume is out of date.
    pub resumes: AtomicU64,
    /// What has been logged about failed requests (see `notices`).
    pub notices: super::notices::Notices,
    /// Leases held, instances counted, cuts seen (see `coordinator`).
    pub coord: Mutex<Coord>,
    /// Whether [`super::Reconciler::run`] is running (a pass then leaves the leases to it).
    pub looping: AtomicBool,
    /// Deleted lists being replaced (see `recreate`).
    pub replacing: super::recreate::Replacing,
    /// Holds of the mass-removal guard already logged by this process (audience, since).
    pub announced_holds: Mutex<std::collections::HashSet<(String, i64)>>,
    /// An operator's pause holds the destination (see `operator`).
    pub operator_paused: AtomicBool,
    /// When the operator's pause was last read from the store.
    pub operator_checked: Mutex<Option<tokio::time::Instant>>,
}

/// A list resolution's result: the resumes counted when it started, and the list or error.
pub(super) type Resolved = (u64, Result<i64, ResolveError>);

/// Requests whose answers are being recorded, per slot of `concurrency`, at most. The slot
/// of a request is freed when Iterable answers, so a slow store write does not hold back
/// the next requests; this bounds the work waiting for the store.
pub(super) const RECORDING_PER_SLOT: usize = 4;

/// How an outcome counts in the metrics.
fn row_result(o: &Outcome) -> RowResult {
    match o {
        Outcome::Delivered => RowResult::Delivered,
        Outcome::Rejected { .. } => RowResult::Rejected,
        Outcome::Retry { .. } => RowResult::Retried,
        Outcome::Superseded { .. } => RowResult::Superseded,
    }
}

impl Inner {
    pub fn now(&self) -> i64 {
        (self.clock)()
    }

    /// The audience's list, known or resolved; `waiting` are the rows that wait for it (their
    /// events show the failed tries of the lookup).
    pub async fn list_for(
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

    /// Records outcomes of one audience in one transaction and counts them; each row comes
    /// with the time its event was received.
    pub async fn record(
        &self,
        audience: &str,
        rows: Vec<(OutcomeRow, i64)>,
    ) -> Result<PassReport, ReconcileError> {
        let mut report = PassReport::default();
        if rows.is_empty() {
            return Ok(report);
        }
        let now = self.now();
        let (outcomes, accepted): (Vec<OutcomeRow>, Vec<i64>) = rows.into_iter().unzip();
        let results: Vec<RowResult> = outcomes.iter().map(|o| row_result(&o.outcome)).collect();
        let recorded = self
            .store
            .record_outcomes(&self.cfg.destination, audience, now, outcomes)
            .await?;
        for ((result, accepted_ms), r) in results.into_iter().zip(accepted).zip(recorded) {
            report.count(result);
            if result == RowResult::Delivered {
                self.metrics
                    .observe_latency((now - accepted_ms) as f64 / 1000.0);
            }
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
