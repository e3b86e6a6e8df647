//! Retention of the event log: final rows older than the configured period are removed in the
//! background, a small batch per transaction ([`Engine::prune_events`](crate::Engine)), so
//! ingestion and delivery go on meanwhile. Desired and acknowledged state is never removed.
//! Time comes from the service's injectable clock, so tests drive it without waiting.

use std::time::Duration;

use tokio::sync::watch;

use crate::reconciler::EpochClock;
use crate::store::{Store, StoreError};

/// The period when the configuration does not say: 30 days.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// Rows removed per transaction.
pub const PRUNE_BATCH: usize = 1_000;

/// How often the log is pruned.
pub const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Removes every final row older than `retention` at `now_ms`, [`PRUNE_BATCH`] rows per
/// transaction, yielding between batches; returns how many it removed.
pub async fn prune_once(
    store: &Store,
    now_ms: i64,
    retention: Duration,
) -> Result<u64, StoreError> {
    let before = now_ms.saturating_sub(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX));
    let mut total = 0u64;
    loop {
        let n = store.prune_events(before, PRUNE_BATCH).await?;
        total += n as u64;
        if n < PRUNE_BATCH {
            return Ok(total);
        }
        tokio::task::yield_now().await;
    }
}

/// Prunes every [`PRUNE_EVERY`] until `shutdown` says so; a failure is logged and tried again
/// at the next round.
pub async fn run(
    store: Store,
    clock: EpochClock,
    retention: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        if let Err(e) = prune_once(&store, clock(), retention).await {
            eprintln!("iterable-lists: pruning the event log failed: {e}; trying again later");
        }
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(PRUNE_EVERY) => {}
        }
    }
}
