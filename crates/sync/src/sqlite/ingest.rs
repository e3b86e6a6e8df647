//! The SQLite engine's ingestion queue: concurrent requests hand their events to one thread,
//! which stores everything queued so far (up to [`MAX_GROUP_EVENTS`]) with **one**
//! [`SqliteStore::accept`], and answers each request with its own receipts. That one accept is
//! one operation of the group commit (`group`), so it shares its transaction and fsync with
//! the delivery writes of the moment.
//!
//! Why both, measured with the benchmark harness (interleaved runs of each variant, 3 or more,
//! on this 2-core machine shared with other work):
//! - without the group commit (each write its own transaction, this queue as it is), end to
//!   end (part c) lost 4 to 23%: delivery outcomes waited for fsyncs of their own;
//! - without this queue (each request's accept its own operation of the group), ingestion
//!   alone (part b) ran 13 to 53% faster, but the service spent 6% more CPU per event end to
//!   end (median of 8 pairs; likely because each accept then ran in a savepoint of its own
//!   and wrote its audiences' figures once per request rather than once per batch);
//! - the same queue in front of the engine, in the engine-neutral handle (a task gathering the
//!   requests for one async engine call), added two hand-offs per group and ingested 0 to 22%
//!   slower than this thread.
//!
//! So the queue is a thread of the engine, as the checkpointer is.

use std::future::Future;
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};

use tokio::sync::oneshot;

use super::SqliteStore;
use crate::store::{NewEvent, Receipt, StoreError};

/// Most events stored in one accept; more wait for the next one.
pub const MAX_GROUP_EVENTS: usize = 20_000;

/// What a request gets back: its own receipts, in order, or the group's error.
type Reply = Result<Vec<Receipt>, Arc<StoreError>>;

struct Job {
    events: Vec<NewEvent>,
    reply: oneshot::Sender<Reply>,
}

/// The queue; its thread starts with the first batch and ends when the queue is dropped.
#[derive(Debug, Default)]
pub(super) struct Ingest {
    queue: OnceLock<Result<mpsc::Sender<Job>, String>>,
}

fn stopped(message: String) -> StoreError {
    StoreError::Task {
        op: "accept",
        message,
    }
}

impl Ingest {
    /// Queues `events` for `db` and returns their receipts once they are committed.
    pub fn accept(
        &self,
        db: &Arc<SqliteStore>,
        events: Vec<NewEvent>,
    ) -> impl Future<Output = Result<Vec<Receipt>, StoreError>> + Send + 'static {
        let (reply, answer) = oneshot::channel();
        let queued = match self.queue.get_or_init(|| start(db.clone())) {
            Ok(tx) => tx
                .send(Job { events, reply })
                .map_err(|_| stopped("the ingestion thread has stopped".into())),
            Err(e) => Err(stopped(e.clone())),
        };
        async move {
            queued?;
            match answer.await {
                Ok(Ok(receipts)) => Ok(receipts),
                Ok(Err(e)) => Err(StoreError::Group(e)),
                Err(_) => Err(stopped("the ingestion thread has stopped".into())),
            }
        }
    }
}

fn start(db: Arc<SqliteStore>) -> Result<mpsc::Sender<Job>, String> {
    let (tx, rx) = mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("sqlite-ingest".into())
        .spawn(move || run(&db, &rx))
        .map_err(|e| format!("cannot start the ingestion thread: {e}"))?;
    Ok(tx)
}

fn run(db: &SqliteStore, rx: &mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut n = first.events.len();
        let mut jobs = vec![first];
        while n < MAX_GROUP_EVENTS {
            match rx.try_recv() {
                Ok(j) => {
                    n += j.events.len();
                    jobs.push(j);
                }
                Err(_) => break,
            }
        }
        let mut all = Vec::with_capacity(n);
        let mut replies = Vec::with_capacity(jobs.len());
        for j in jobs {
            replies.push((j.events.len(), j.reply));
            all.extend(j.events);
        }
        // A panic fails this group's requests, not the thread.
        let stored = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| db.accept(&all)))
            .unwrap_or_else(|_| Err(stopped("storing the events panicked".into())));
        match stored {
            Ok(receipts) => {
                let mut it = receipts.into_iter();
                for (size, reply) in replies {
                    // A request that gave up (client gone) just drops its answer.
                    let _ = reply.send(Ok(it.by_ref().take(size).collect()));
                }
            }
            Err(e) => {
                let e = Arc::new(e);
                for (_, reply) in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::sqlite::SqliteStore;
    use crate::store::{EventContent, NewEvent, Receipt, Store};

    fn batch(request: usize, n: usize) -> Vec<NewEvent> {
        (0..n)
            .map(|i| NewEvent {
                destination: "d".into(),
                message_id: format!("r{request}-{i}"),
                received_ms: 0,
                content: EventContent::Skipped("test".into()),
                ignored_settings: Vec::new(),
            })
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_each_get_their_own_receipts_in_order() {
        let store = Store::sqlite(SqliteStore::open_in_memory().expect("open"));
        let tasks: Vec<_> = (0..40)
            .map(|r| {
                let store = store.clone();
                tokio::spawn(async move { (r, store.accept(batch(r, 1 + r % 5)).await) })
            })
            .collect();
        for t in tasks {
            let (r, receipts) = t.await.expect("task");
            let receipts = receipts.expect("accept");
            assert_eq!(receipts.len(), 1 + r % 5, "request {r}");
            for (i, receipt) in receipts.iter().enumerate() {
                let Receipt::Accepted { seq, .. } = receipt else {
                    panic!("request {r}: a new event reads as a duplicate");
                };
                let logged = store
                    .event_status("d", &format!("r{r}-{i}"))
                    .await
                    .expect("status")
                    .expect("logged");
                assert_eq!(logged.seq, *seq, "request {r}, event {i}: its own seq");
            }
        }
        // The same messageIds again, in one request: duplicates of the first ones.
        let again = store.accept(batch(3, 4)).await.expect("accept");
        assert!(again.iter().all(|r| matches!(r, Receipt::Duplicate { .. })));
    }
}
