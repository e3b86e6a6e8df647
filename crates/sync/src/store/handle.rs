//! [`Store`]: the handle the service holds. It owns the engine and the ingestion queue.
//!
//! **The ingestion queue.** [`Store::accept`] hands a request's events to the engine, at most
//! [`MAX_ACCEPTS_IN_FLIGHT`] requests at once; the others wait their turn, first come first
//! served. The engine groups what it is handed: the SQLite engine runs concurrent writes in one
//! group transaction with one fsync (see `crate::sqlite`), and PostgreSQL flushes concurrent
//! commits together by itself. The bound keeps the engine's threads (or connections) for the
//! reconcilers too, however many requests arrive at once.
//!
//! There is one grouping, the engine's. Both were measured with the benchmark harness (3
//! interleaved runs each, on a loaded 2-core machine): a second grouping here, one task that
//! gathered every queued request into one engine call (as the server's writer thread did),
//! lowered ingestion (part b) by 27 to 35% and end to end (part c) by 6 to 19%, for its extra
//! hand-offs between tasks and threads; without the SQLite group commit (each write its own
//! transaction), end to end lost 16 to 37%, as delivery outcomes then wait for fsyncs of their
//! own.
//!
//! Every other operation goes straight to the engine (the handle dereferences to it).

use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use tokio::sync::Semaphore;

use super::engine::Engine;
use super::error::StoreError;
use super::rows::{NewEvent, Receipt};

/// Requests whose events are with the engine at once; more wait in the queue. Twice the
/// SQLite engine's largest group, so that a group always has writers to take in.
pub const MAX_ACCEPTS_IN_FLIGHT: usize = 64;

struct Shared {
    engine: Arc<dyn Engine>,
    /// The ingestion queue: one permit per request with the engine (a fair semaphore).
    queue: Semaphore,
    after_accept: OnceLock<Box<dyn Fn() + Send + Sync>>,
}

/// The store as the service uses it: an engine behind the ingestion queue. Cheap to clone;
/// every clone is the same store.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Deref for Store {
    type Target = dyn Engine;

    fn deref(&self) -> &Self::Target {
        &*self.shared.engine
    }
}

impl Store {
    /// A store over `engine`.
    pub fn new(engine: Arc<dyn Engine>) -> Self {
        Self {
            shared: Arc::new(Shared {
                engine,
                queue: Semaphore::new(MAX_ACCEPTS_IN_FLIGHT),
                after_accept: OnceLock::new(),
            }),
        }
    }

    /// Runs `f` after every ingestion transaction that stored something (the service wakes
    /// its reconcilers with it). Only the first call counts.
    pub fn after_accept(&self, f: impl Fn() + Send + Sync + 'static) {
        let _ = self.shared.after_accept.set(Box::new(f));
    }

    /// Stores `events` durably, in its turn, and returns one receipt per event, in order (see
    /// [`Engine::accept`]).
    pub async fn accept(&self, events: Vec<NewEvent>) -> Result<Vec<Receipt>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let _turn = self
            .shared
            .queue
            .acquire()
            .await
            .map_err(|e| StoreError::Task {
                op: "accept",
                message: e.to_string(),
            })?;
        let receipts = self.shared.engine.accept(events).await?;
        if let Some(f) = self.shared.after_accept.get() {
            f();
        }
        Ok(receipts)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;
    use crate::store::{
        DestinationState, EventContent, EventCounts, EventRecord, Identity, ListCounts, OutcomeRow,
        PendingRow, Recorded, Seq, StoreFuture,
    };

    /// An engine that only accepts, slowly, and remembers how many accepts it ran at once.
    #[derive(Default)]
    struct Slow {
        running: AtomicUsize,
        most: AtomicUsize,
        next_seq: Mutex<u64>,
    }

    fn unused<'a, T: Send + 'a>() -> StoreFuture<'a, T> {
        Box::pin(async {
            Err(StoreError::Invalid {
                op: "test",
                message: "not used".into(),
            })
        })
    }

    impl Engine for Slow {
        fn accept(&self, batch: Vec<NewEvent>) -> StoreFuture<'_, Vec<Receipt>> {
            Box::pin(async move {
                let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
                self.most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
                self.running.fetch_sub(1, Ordering::SeqCst);
                let mut seq = self.next_seq.lock().unwrap_or_else(|p| p.into_inner());
                Ok(batch
                    .iter()
                    .map(|_| {
                        *seq += 1;
                        Receipt::Accepted {
                            seq: *seq,
                            changes: Vec::new(),
                        }
                    })
                    .collect())
            })
        }
        fn pending<'a>(
            &'a self,
            _: &'a str,
            _: &'a str,
            _: i64,
            _: usize,
        ) -> StoreFuture<'a, Vec<PendingRow>> {
            unused()
        }
        fn pending_audiences<'a>(&'a self, _: &'a str, _: i64) -> StoreFuture<'a, Vec<String>> {
            unused()
        }
        fn record_outcomes<'a>(
            &'a self,
            _: &'a str,
            _: &'a str,
            _: i64,
            _: Vec<OutcomeRow>,
        ) -> StoreFuture<'a, Vec<Recorded>> {
            unused()
        }
        fn record_attempt<'a>(
            &'a self,
            _: &'a str,
            _: &'a str,
            _: i64,
            _: &'a [(Identity, Seq)],
            _: &'a str,
            _: Option<i64>,
        ) -> StoreFuture<'a, usize> {
            unused()
        }
        fn list_id<'a>(&'a self, _: &'a str, _: &'a str) -> StoreFuture<'a, Option<i64>> {
            unused()
        }
        fn put_list_id<'a>(&'a self, _: &'a str, _: &'a str, _: i64) -> StoreFuture<'a, i64> {
            unused()
        }
        fn event_status<'a>(
            &'a self,
            _: &'a str,
            _: &'a str,
        ) -> StoreFuture<'a, Option<EventRecord>> {
            unused()
        }
        fn list_counts<'a>(&'a self, _: &'a str) -> StoreFuture<'a, Vec<ListCounts>> {
            unused()
        }
        fn event_counts<'a>(&'a self, _: &'a str) -> StoreFuture<'a, EventCounts> {
            unused()
        }
        fn recount<'a>(&'a self, _: &'a str) -> StoreFuture<'a, (Vec<ListCounts>, EventCounts)> {
            unused()
        }
        fn destination_state<'a>(
            &'a self,
            _: &'a str,
        ) -> StoreFuture<'a, Option<DestinationState>> {
            unused()
        }
        fn set_destination_state<'a>(
            &'a self,
            _: &'a str,
            _: &'a DestinationState,
            _: i64,
        ) -> StoreFuture<'a, ()> {
            unused()
        }
        fn write_failure(&self) -> Option<String> {
            None
        }
        fn probe_write(&self) -> StoreFuture<'_, ()> {
            unused()
        }
    }

    fn events(n: usize) -> Vec<NewEvent> {
        (0..n)
            .map(|i| NewEvent {
                destination: "d".into(),
                message_id: format!("m{i}"),
                received_ms: 0,
                content: EventContent::Skipped("test".into()),
                ignored_settings: Vec::new(),
            })
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn at_most_the_bound_of_requests_is_with_the_engine_and_each_gets_its_receipts() {
        let engine = Arc::new(Slow::default());
        let store = Store::new(engine.clone());
        let woken = Arc::new(AtomicUsize::new(0));
        let w = woken.clone();
        store.after_accept(move || {
            w.fetch_add(1, Ordering::SeqCst);
        });
        let requests = 3 * MAX_ACCEPTS_IN_FLIGHT;
        let tasks: Vec<_> = (0..requests)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move { store.accept(events(1 + i % 3)).await })
            })
            .collect();
        for (i, t) in tasks.into_iter().enumerate() {
            let receipts = t.await.expect("task").expect("accept");
            assert_eq!(receipts.len(), 1 + i % 3, "request {i}: its own receipts");
        }
        assert_eq!(engine.most.load(Ordering::SeqCst), MAX_ACCEPTS_IN_FLIGHT);
        assert_eq!(woken.load(Ordering::SeqCst), requests);
        assert!(store.accept(Vec::new()).await.expect("nothing").is_empty());
        assert_eq!(
            woken.load(Ordering::SeqCst),
            requests,
            "nothing stored, nobody woken"
        );
    }
}
