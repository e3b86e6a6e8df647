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
            tracing::warn!(error = %e, "pruning the event log failed; trying again later");
        }
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(PRUNE_EVERY) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, Ordering};

    use super::*;
    use crate::sqlite::SqliteStore;
    use crate::store::{Identity, NewEvent, Outcome, OutcomeRow};

    const DAY_MS: i64 = 86_400_000;
    const T0: i64 = 1_700_000_000_000;

    fn event(id: &str, email: &str, received_ms: i64) -> NewEvent {
        NewEvent {
            received_ms,
            ..crate::store::joining_event("d", id, "vip", email)
        }
    }

    async fn rows(store: &Store) -> u64 {
        let c = store.event_counts("d").await.expect("counts");
        crate::StatusKind::ALL.iter().map(|k| c.get(*k)).sum()
    }

    /// 2,500 delivered events and one still pending: pruning on the injected clock removes
    /// the delivered ones once they are older than the period, in batches, and never the
    /// pending one nor the state.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn final_rows_older_than_the_period_go_in_batches() {
        let store = Store::sqlite(SqliteStore::open_in_memory().expect("open"));
        let n = 2 * PRUNE_BATCH + 500;
        let batch: Vec<NewEvent> = (0..n)
            .map(|i| event(&format!("m{i}"), &format!("u{i}@x.co"), T0))
            .collect();
        let receipts = store.accept(batch).await.expect("accept");
        let outcomes = receipts
            .iter()
            .enumerate()
            .map(|(i, r)| OutcomeRow {
                identity: Identity::new(Some(&format!("u{i}@x.co")), None),
                seq: r.seq(),
                part: None,
                row_id: None,
                outcome: Outcome::Delivered,
            })
            .collect();
        store
            .record_outcomes("d", "vip", T0 + 1_000, outcomes)
            .await
            .expect("record");
        store
            .accept(vec![event("late", "late@x.co", T0)])
            .await
            .expect("accept");
        let clock = Arc::new(AtomicI64::new(T0 + 29 * DAY_MS));
        let now = {
            let c = clock.clone();
            move || c.load(Ordering::SeqCst)
        };
        let period = DEFAULT_RETENTION;
        assert_eq!(prune_once(&store, now(), period).await.expect("prune"), 0);
        assert_eq!(rows(&store).await, n as u64 + 1);
        clock.store(T0 + 31 * DAY_MS, Ordering::SeqCst);
        assert_eq!(
            prune_once(&store, now(), period).await.expect("prune"),
            n as u64
        );
        assert_eq!(rows(&store).await, 1, "the pending event stays");
        let lists = store.list_counts("d").await.expect("lists");
        assert_eq!((lists[0].members, lists[0].pending), (n as u64, 1));
        assert!(
            store
                .event_status("d", "m0")
                .await
                .expect("status")
                .is_none()
        );
        assert!(
            store
                .event_status("d", "late")
                .await
                .expect("status")
                .is_some()
        );
    }
}
