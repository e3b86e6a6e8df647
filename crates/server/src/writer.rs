//! Group commit: concurrent HTTP requests hand their events to one writer thread, which stores
//! everything queued so far in a single durable transaction and answers each request.

use std::sync::Arc;
use std::sync::mpsc;
use std::thread;

use sync::{NewEvent, Receipt, Store, StoreError};
use tokio::sync::oneshot;

/// What a request gets back: its own receipts, in order, or the store's error.
pub type WriteResult = Result<Vec<Receipt>, Arc<StoreError>>;

struct Job {
    events: Vec<NewEvent>,
    reply: oneshot::Sender<WriteResult>,
}

/// The handle requests use. Cloning is cheap; the thread ends when every handle is dropped.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
}

/// The writer thread could not take the batch (it has stopped).
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("the store writer has stopped")]
    Stopped,
    #[error(transparent)]
    Store(Arc<StoreError>),
}

/// Most events stored in one transaction; more wait for the next one.
const MAX_GROUP_EVENTS: usize = 20_000;

impl Writer {
    /// Starts the writer thread over `store`. `after_commit` runs after every transaction that
    /// stored something (the server uses it to wake reconcilers).
    pub fn spawn(
        store: Arc<dyn Store>,
        after_commit: impl Fn() + Send + 'static,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Job>();
        thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || run(store.as_ref(), rx, after_commit))?;
        Ok(Self { tx })
    }

    /// Stores `events` durably (grouped with whatever else is waiting) and returns one receipt
    /// per event, in order.
    pub async fn write(&self, events: Vec<NewEvent>) -> Result<Vec<Receipt>, WriteError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job { events, reply })
            .map_err(|_| WriteError::Stopped)?;
        match rx.await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(WriteError::Store(e)),
            Err(_) => Err(WriteError::Stopped),
        }
    }
}

fn run(store: &dyn Store, rx: mpsc::Receiver<Job>, after_commit: impl Fn()) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        let mut n = jobs[0].events.len();
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
        let mut sizes = Vec::with_capacity(jobs.len());
        let mut replies = Vec::with_capacity(jobs.len());
        for j in jobs {
            sizes.push(j.events.len());
            all.extend(j.events);
            replies.push(j.reply);
        }
        match store.accept(&all) {
            Ok(receipts) => {
                let mut it = receipts.into_iter();
                for (size, reply) in sizes.into_iter().zip(replies) {
                    let mine: Vec<Receipt> = it.by_ref().take(size).collect();
                    // A request that gave up (client gone) just drops its answer.
                    let _ = reply.send(Ok(mine));
                }
                after_commit();
            }
            Err(e) => {
                let e = Arc::new(e);
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}
