//! The store's figures as `/metrics` and `/v1/status` show them, read at most once per
//! `max_age` whatever the number of clients polling: a snapshot, refreshed by one caller while
//! the others wait for it (single flight). Reading them costs one row per audience (the store
//! maintains them), and with the snapshot the store is read at most once a second however
//! hard those endpoints are polled, so that polling never slows deliveries.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sync::{DestinationState, EventCounts, ListCounts, OperatorPause, RemovalHold, Store};
use tokio::sync::Mutex;
use tokio::time::Instant;

/// How old a snapshot may be.
pub const MAX_AGE: Duration = Duration::from_secs(1);

/// One destination's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    pub lists: Vec<ListCounts>,
    pub events: EventCounts,
    /// The destination's stored state (running, paused, degraded), as the last instance to
    /// change it stored it; `None` when none was ever stored.
    pub stored_state: Option<DestinationState>,
    /// Audiences whose removals the mass-removal guard holds.
    pub holds: Vec<RemovalHold>,
    /// The operator's pause, when one is in force (see `crate::admin::actions`).
    pub operator_pause: Option<OperatorPause>,
}

/// The last snapshot and when it was read.
type Slot<T> = Option<(Instant, Arc<Result<T, String>>)>;

/// A value read at most once per `max_age`.
#[derive(Debug)]
pub struct Snapshot<T> {
    max_age: Duration,
    slot: Mutex<Slot<T>>,
}

impl<T: Send + Sync + 'static> Snapshot<T> {
    pub fn new(max_age: Duration) -> Self {
        Self {
            max_age,
            slot: Mutex::new(None),
        }
    }

    /// The snapshot, read again with `read` if it is older than `max_age`. Concurrent callers
    /// share one read; a failed read is kept as long as a good one (the store is not asked
    /// again meanwhile).
    pub async fn get(
        &self,
        read: impl Future<Output = Result<T, String>>,
    ) -> Arc<Result<T, String>> {
        let mut slot = self.slot.lock().await;
        if let Some((at, value)) = &*slot
            && at.elapsed() < self.max_age
        {
            return value.clone();
        }
        let value = Arc::new(read.await);
        *slot = Some((Instant::now(), value.clone()));
        value
    }
}

/// The figures of every named destination, in order.
pub async fn read(store: &Store, names: Vec<String>) -> Result<Vec<Figures>, String> {
    let mut out = Vec::with_capacity(names.len());
    for n in &names {
        let lists = store.list_counts(n).await.map_err(|e| e.to_string())?;
        let events = store.event_counts(n).await.map_err(|e| e.to_string())?;
        let stored_state = store
            .destination_state(n)
            .await
            .map_err(|e| e.to_string())?;
        let holds = store.removal_holds(n).await.map_err(|e| e.to_string())?;
        let operator_pause = store.operator_pause(n).await.map_err(|e| e.to_string())?;
        out.push(Figures {
            lists,
            events,
            stored_state,
            holds,
            operator_pause,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    async fn counting(reads: &Arc<AtomicUsize>) -> Result<usize, String> {
        // Slow enough that the other callers arrive while it runs.
        tokio::time::sleep(Duration::from_millis(50)).await;
        Ok(reads.fetch_add(1, Ordering::SeqCst) + 1)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_callers_share_one_read_while_it_is_fresh() {
        let snap = Arc::new(Snapshot::new(Duration::from_secs(3600)));
        let reads = Arc::new(AtomicUsize::new(0));
        let callers: Vec<_> = (0..16)
            .map(|_| {
                let (snap, reads) = (snap.clone(), reads.clone());
                tokio::spawn(async move { snap.get(counting(&reads)).await })
            })
            .collect();
        for c in callers {
            assert_eq!(*c.await.expect("caller"), Ok(1));
        }
        assert_eq!(*snap.get(counting(&reads)).await, Ok(1));
        assert_eq!(reads.load(Ordering::SeqCst), 1, "one read for 17 callers");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_old_snapshot_is_read_again_and_failures_are_kept_too() {
        let snap = Snapshot::new(Duration::ZERO);
        let reads = Arc::new(AtomicUsize::new(0));
        assert_eq!(*snap.get(counting(&reads)).await, Ok(1));
        assert_eq!(*snap.get(counting(&reads)).await, Ok(2));
        let snap = Snapshot::<usize>::new(Duration::from_secs(3600));
        assert_eq!(
            *snap.get(async { Err("disk I/O error".into()) }).await,
            Err("disk I/O error".into())
        );
        assert_eq!(
            *snap.get(counting(&reads)).await,
            Err("disk I/O error".into()),
            "not asked again meanwhile"
        );
        assert_eq!(reads.load(Ordering::SeqCst), 2);
    }
}
