//! What the rows of a request show while the client retries it: each retryable failure is
//! recorded for the rows that wait for the call (one store write per failed try, whatever the
//! number of rows), so their events read `pending` with the attempt count and the last error,
//! and the destination's reachability learns of it.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use iterable::client::{AttemptObserver, IterableError};

use super::shared::Inner;
use crate::store::{Identity, Seq};

/// The rows a call is made for: their keys are gathered on the first failure only.
pub(super) struct Tries<F> {
    inner: Arc<Inner>,
    audience: String,
    keys: F,
    gathered: OnceLock<Arc<Vec<(Identity, Seq)>>>,
}

impl<F: Fn() -> Vec<(Identity, Seq)> + Send + Sync> Tries<F> {
    pub fn new(inner: Arc<Inner>, audience: &str, keys: F) -> Self {
        Self {
            inner,
            audience: audience.to_string(),
            keys,
            gathered: OnceLock::new(),
        }
    }
}

impl<F: Fn() -> Vec<(Identity, Seq)> + Send + Sync> AttemptObserver for Tries<F> {
    /// Only while this instance holds the audience's lease (see `coordinator`): a request
    /// that waited for the rate limiter past it is withdrawn, its rows left pending for the
    /// new holder, so an older state never lands after a newer one sent by another instance.
    fn may_send(&self) -> bool {
        self.inner.holds(&self.audience)
    }

    fn failed<'a>(
        &'a self,
        error: &'a IterableError,
        retry_in: Option<Duration>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            tracing::debug!(
                destination = %self.inner.cfg.destination,
                audience = %self.audience,
                error = %error,
                retry_in_ms = retry_in.map(|d| d.as_millis() as u64),
                "a try failed"
            );
            self.inner.note_failure(error);
            if error.status == Some(429) {
                self.inner.notice_rate_limited();
            }
            let rows = self
                .gathered
                .get_or_init(|| Arc::new((self.keys)()))
                .clone();
            if rows.is_empty() {
                return;
            }
            let now = self.inner.now();
            let next = retry_in.map(|d| now.saturating_add(d.as_millis() as i64));
            let reason = error.to_string();
            let recorded = self
                .inner
                .store
                .record_attempt(
                    &self.inner.cfg.destination,
                    &self.audience,
                    now,
                    &rows,
                    &reason,
                    next,
                )
                .await;
            if let Err(e) = recorded {
                // The rows stay as they were; the request goes on.
                tracing::error!(
                    destination = %self.inner.cfg.destination,
                    error = %e,
                    "recording a failed try failed"
                );
            }
        })
    }
}
