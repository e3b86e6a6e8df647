//! Paused, degraded or running: a refused key pauses the destination until a probe (`GET
//! /api/lists`) works; Iterable unreachable for longer than `degraded_after` makes it degraded
//! (see `reachability`) until it answers again. The state is stored, so `iterable-lists
//! status` shows it and a restart starts from it. Pauses and resumes are logged at info; a
//! degraded state at warn, once a minute while it lasts.

use std::sync::atomic::Ordering;

use iterable::client::IterableError;

use super::DestinationState;
use super::reachability;
use super::shared::{Inner, lock};

impl Inner {
    /// Paused, else degraded, else running.
    pub fn state(&self) -> DestinationState {
        let s = lock(&self.state).clone();
        if s.is_paused() {
            return s;
        }
        let after = self.degraded_after_ms();
        match lock(&self.reach).degraded(self.now(), after) {
            Some((reason, since_ms)) => DestinationState::Degraded {
                reason: reason.to_string(),
                since_ms,
            },
            None => s,
        }
    }

    pub fn degraded_after_ms(&self) -> i64 {
        i64::try_from(self.cfg.degraded_after.as_millis()).unwrap_or(i64::MAX)
    }

    /// A call failed: a failure without an answer (or a 5xx) adds to the unreachable streak;
    /// any other answer ends it.
    pub fn note_failure(&self, e: &IterableError) {
        if e.kind == iterable::client::ErrorKind::Withdrawn {
            // Not sent: says nothing about Iterable.
            return;
        }
        if reachability::unreachable(e) {
            lock(&self.reach).failed(self.now(), e.to_string());
            self.announce_degraded();
        } else {
            self.note_answer();
        }
    }

    /// Iterable answered.
    pub fn note_answer(&self) {
        if lock(&self.reach).answered() {
            tracing::info!(
                destination = %self.cfg.destination,
                "Iterable answers again; no longer degraded"
            );
        }
    }

    /// Logs that Iterable has been unreachable for too long: once it lasted `degraded_after`,
    /// then once a minute while it lasts.
    pub fn announce_degraded(&self) {
        let (now, after) = (self.now(), self.degraded_after_ms());
        let mut r = lock(&self.reach);
        if r.announce(now, after)
            && let Some((reason, since)) = r.degraded(now, after)
        {
            let secs = (now - since) / 1000;
            tracing::warn!(
                destination = %self.cfg.destination,
                unreachable_s = secs,
                since_ms = since,
                last_failure = reason,
                "degraded: Iterable unreachable for {secs} s; deliveries go on being retried"
            );
        }
    }

    /// Stores the state when its word changed since `stored` (the last word stored).
    pub async fn store_state(&self, stored: &mut Option<&'static str>) {
        let state = self.state();
        // Nothing stored yet reads as running.
        if stored.unwrap_or("running") == state.word() {
            return;
        }
        let (now, word) = (self.now(), state.word());
        match self
            .store
            .set_destination_state(&self.cfg.destination, &state, now)
            .await
        {
            Ok(()) => *stored = Some(word),
            Err(e) => tracing::error!(
                destination = %self.cfg.destination,
                error = %e,
                "storing the destination's state failed"
            ),
        }
    }

    /// Takes up the state an earlier run stored: a pause holds (the key is probed at once), a
    /// degraded streak goes on. Returns the stored word.
    pub async fn restore_state(&self) -> Option<&'static str> {
        match self.store.destination_state(&self.cfg.destination).await {
            Ok(Some(DestinationState::Paused { reason, since_ms })) => {
                *lock(&self.state) = DestinationState::Paused { reason, since_ms };
                Some("paused")
            }
            Ok(Some(DestinationState::Degraded { reason, since_ms })) => {
                lock(&self.reach).restore(self.now(), since_ms, reason);
                Some("degraded")
            }
            Ok(Some(DestinationState::Running)) => Some("running"),
            Ok(None) => None,
            Err(e) => {
                tracing::error!(
                    destination = %self.cfg.destination,
                    error = %e,
                    "reading the destination's stored state failed"
                );
                None
            }
        }
    }

    pub fn is_paused(&self) -> bool {
        lock(&self.state).is_paused()
    }

    pub fn pause(&self, e: &IterableError) {
        let mut s = lock(&self.state);
        if !s.is_paused() {
            let reason = e.to_string();
            tracing::info!(
                destination = %self.cfg.destination,
                reason = %reason,
                "destination paused: Iterable refused the API key; deliveries wait until a \
                 probe finds it works"
            );
            *s = DestinationState::Paused {
                reason,
                since_ms: self.now(),
            };
            self.metrics.paused();
        }
    }

    /// Takes up a pause that another instance stored.
    pub fn adopt_pause(&self, reason: String, since_ms: i64) {
        let mut s = lock(&self.state);
        if !s.is_paused() {
            tracing::warn!(
                destination = %self.cfg.destination,
                reason = %reason,
                "destination paused by another instance"
            );
            *s = DestinationState::Paused { reason, since_ms };
        }
    }

    pub fn resume(&self) {
        let mut s = lock(&self.state);
        if s.is_paused() {
            tracing::info!(
                destination = %self.cfg.destination,
                reason = "the API key works again",
                "destination resumed"
            );
            *s = DestinationState::Running;
            self.resumes.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Tries the key with a cheap call; resumes when it works (see `operator::check_key`).
    pub async fn probe(&self) -> bool {
        self.check_key().await.is_ok()
    }
}
