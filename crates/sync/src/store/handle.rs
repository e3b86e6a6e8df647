//! [`Store`]: the handle the service holds, engine-neutral: the engine, and what ingestion does
//! after a commit (wake the reconcilers). Every operation goes straight to the engine (the
//! handle dereferences to it); each engine groups concurrent writes its own way, as grouping
//! depends on how it commits. The SQLite engine queues concurrent requests' events into one
//! batch and group-commits it with the delivery writes (`crate::sqlite`, whose `ingest` has
//! the measurements); PostgreSQL flushes concurrent commits together by itself.

use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use super::engine::Engine;
use super::error::StoreError;
use super::rows::{NewEvent, Receipt};

struct Shared {
    engine: Arc<dyn Engine>,
    after_accept: OnceLock<Box<dyn Fn() + Send + Sync>>,
}

/// The store as the service uses it. Cheap to clone; every clone is the same store.
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
                after_accept: OnceLock::new(),
            }),
        }
    }

    /// Runs `f` after every accept that stored something (the service wakes its reconcilers
    /// with it). Only the first call counts.
    pub fn after_accept(&self, f: impl Fn() + Send + Sync + 'static) {
        let _ = self.shared.after_accept.set(Box::new(f));
    }

    /// Stores `events` durably and returns one receipt per event, in order (see
    /// [`Engine::accept`]).
    pub async fn accept(&self, events: Vec<NewEvent>) -> Result<Vec<Receipt>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let receipts = self.shared.engine.accept(events).await?;
        if let Some(f) = self.shared.after_accept.get() {
            f();
        }
        Ok(receipts)
    }
}
