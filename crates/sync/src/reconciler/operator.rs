//! What an operator does to a running reconciler: pause it (nothing new is sent while the
//! store holds an operator's pause of the destination, on every instance: each reads it at its
//! coordination tick, at most once a second; this instance at once), resume it, and check the
//! API key now (a destination paused by a refused key resumes when the check works).

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use iterable::client::IterableError;
use iterable::errors::ErrorClass;
use iterable::limiter::Endpoint;
use iterable::lists::ListDetails;

use super::Reconciler;
use super::shared::{Inner, lock};
use crate::DestinationState;
use crate::metrics::StatusClass;

/// How often an instance reads the operator's pause from the store, at most.
pub const FOLLOW_EVERY: Duration = Duration::from_secs(1);

impl Inner {
    /// Whether an operator's pause holds the destination (as last read or set).
    pub fn operator_paused(&self) -> bool {
        self.operator_paused.load(Ordering::SeqCst)
    }

    /// Sets the flag; logs and wakes the loop when it changed.
    pub fn set_operator_paused(&self, paused: bool) {
        if self.operator_paused.swap(paused, Ordering::SeqCst) != paused {
            tracing::info!(
                destination = %self.cfg.destination,
                paused,
                "{}",
                if paused {
                    "destination paused by an operator: nothing new is sent until resumed"
                } else {
                    "destination resumed by an operator"
                }
            );
            self.wake_loop.notify_one();
            if !paused {
                self.waker.notify_one();
            }
        }
    }

    /// Reads the operator's pause from the store (another instance may have set or ended it),
    /// at most once per [`FOLLOW_EVERY`] (the coordination may tick ten times a second); a
    /// failed read leaves the flag as it was.
    pub async fn follow_operator_pause(&self) {
        {
            let mut last = lock(&self.operator_checked);
            let now = Instant::now();
            if last.is_some_and(|t| now < t + FOLLOW_EVERY) {
                return;
            }
            *last = Some(now);
        }
        match self.store.operator_pause(&self.cfg.destination).await {
            Ok(p) => self.set_operator_paused(p.is_some()),
            Err(e) => tracing::warn!(
                destination = %self.cfg.destination,
                error = %e,
                "could not read the operator's pause of the destination; trying again at the next tick"
            ),
        }
    }

    /// Tries the key with `GET /api/lists`, as the probe of a paused destination does: when it
    /// works, Iterable answered and a pause by a refused key ends.
    pub async fn check_key(&self) -> Result<Vec<ListDetails>, IterableError> {
        match self.client.get_lists().await {
            Ok(lists) => {
                self.metrics
                    .request(Endpoint::GetLists, StatusClass::Success);
                self.note_answer();
                self.resume();
                Ok(lists)
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
                Err(e)
            }
        }
    }
}

impl Reconciler {
    /// Whether an operator's pause holds the destination (as this instance last saw it).
    pub fn operator_paused(&self) -> bool {
        self.inner.operator_paused()
    }

    /// Applies an operator's pause (or its end) stored just now, at once on this instance
    /// (others follow at their next coordination tick).
    pub fn set_operator_paused(&self, paused: bool) {
        self.inner.set_operator_paused(paused);
    }

    /// Checks the API key now (`GET /api/lists`): a pause by a refused key ends when it works
    /// (and the loop looks for work at once).
    pub async fn check_key(&self) -> Result<Vec<ListDetails>, IterableError> {
        let r = self.inner.check_key().await;
        if r.is_ok() {
            self.inner.wake_loop.notify_one();
            self.inner.waker.notify_one();
        }
        r
    }
}
