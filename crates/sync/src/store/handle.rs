//! [`Store`]: the handle the service holds. It owns the engine and the ingestion queue.
//!
//! **The ingestion queue.** Concurrent HTTP requests hand their events to [`Store::accept`].
//! The first request to find the queue idle starts one drain task; the task stores everything
//! queued (from every request, up to [`MAX_GROUP_EVENTS`]) in **one** [`Engine::accept`] call,
//! answers each request with its own receipts, and goes on while more is queued. So each
//! engine sees one ingestion transaction at a time, whatever the number of requests: the
//! SQLite engine uses one blocking thread for ingestion, and a PostgreSQL engine one
//! connection and one multi-row insert. The task is spawned, so a request that gives up
//! (its client gone) cancels nothing of the others'. A failed transaction fails every request
//! in it ([`StoreError::Group`]); nothing of them was stored.
//!
//! Every other operation goes straight to the engine (the handle dereferences to it).

use std::collections::VecDeque;
use std::ops::Deref;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use tokio::sync::oneshot;

use super::engine::Engine;
use super::error::StoreError;
use super::rows::{NewEvent, Receipt};

/// Most events stored in one ingestion transaction; more wait for the next one.
pub const MAX_GROUP_EVENTS: usize = 20_000;

/// What a request gets back.
type Reply = Result<Vec<Receipt>, Arc<StoreError>>;

/// One request's events and where its answer goes.
struct Job {
    events: Vec<NewEvent>,
    reply: oneshot::Sender<Reply>,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// A drain task is running (it takes every job queued before it stops).
    draining: bool,
}

struct Shared {
    engine: Arc<dyn Engine>,
    queue: Mutex<Queue>,
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
                queue: Mutex::new(Queue::default()),
                after_accept: OnceLock::new(),
            }),
        }
    }

    /// Runs `f` after every ingestion transaction that stored something (the service wakes
    /// its reconcilers with it). Only the first call counts.
    pub fn after_accept(&self, f: impl Fn() + Send + Sync + 'static) {
        let _ = self.shared.after_accept.set(Box::new(f));
    }

    /// Stores `events` durably, grouped with whatever else is queued, and returns one receipt
    /// per event, in order (see [`Engine::accept`]). Must be called within a Tokio runtime.
    pub async fn accept(&self, events: Vec<NewEvent>) -> Result<Vec<Receipt>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = oneshot::channel();
        let start = {
            let mut q = lock(&self.shared.queue);
            q.jobs.push_back(Job { events, reply });
            !std::mem::replace(&mut q.draining, true)
        };
        if start {
            tokio::spawn(drain(self.shared.clone()));
        }
        match answer.await {
            Ok(Ok(receipts)) => Ok(receipts),
            Ok(Err(e)) => Err(StoreError::Group(e)),
            Err(_) => Err(StoreError::Task {
                op: "accept",
                message: "the ingestion task stopped".into(),
            }),
        }
    }
}

fn lock(m: &Mutex<Queue>) -> MutexGuard<'_, Queue> {
    // The queue is consistent whenever the lock is free: no code panics while holding it.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Marks the queue idle if the drain task is cancelled (its runtime shut down) before it
/// finished: the requests still queued then get an error instead of waiting forever.
struct Draining<'a> {
    queue: &'a Mutex<Queue>,
    finished: bool,
}

impl Drop for Draining<'_> {
    fn drop(&mut self) {
        if !self.finished {
            let mut q = lock(self.queue);
            q.draining = false;
            q.jobs.clear();
        }
    }
}

/// Takes the jobs for the next transaction: the first queued, then more while the group holds
/// fewer than [`MAX_GROUP_EVENTS`] events. Marks the queue idle when it is empty.
fn next_group(queue: &Mutex<Queue>) -> Vec<Job> {
    let mut q = lock(queue);
    let mut jobs = Vec::new();
    let mut n = 0;
    while n < MAX_GROUP_EVENTS
        && let Some(j) = q.jobs.pop_front()
    {
        n += j.events.len();
        jobs.push(j);
    }
    if jobs.is_empty() {
        q.draining = false;
    }
    jobs
}

async fn drain(shared: Arc<Shared>) {
    let mut guard = Draining {
        queue: &shared.queue,
        finished: false,
    };
    loop {
        let jobs = next_group(&shared.queue);
        if jobs.is_empty() {
            // `next_group` marked the queue idle: a new request starts a new task.
            guard.finished = true;
            return;
        }
        let n = jobs.iter().map(|j| j.events.len()).sum();
        let mut all = Vec::with_capacity(n);
        let mut replies = Vec::with_capacity(jobs.len());
        for j in jobs {
            replies.push((j.events.len(), j.reply));
            all.extend(j.events);
        }
        match shared.engine.accept(all).await {
            Ok(receipts) => {
                let mut it = receipts.into_iter();
                for (size, reply) in replies {
                    // A request that gave up (client gone) just drops its answer.
                    let _ = reply.send(Ok(it.by_ref().take(size).collect()));
                }
                if let Some(f) = shared.after_accept.get() {
                    f();
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
