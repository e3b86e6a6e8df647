//! The running loop of [`super::Reconciler::run`]: each step looks for work (or probes the key
//! while paused, or waits after a store failure), then it sleeps until something happens: a
//! request finished, events were stored, a linger or a poll is due, or shutdown.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::dispatcher::Dispatcher;
use super::shared::Inner;

/// The state of a running loop.
pub(super) struct Running {
    inner: Arc<Inner>,
    d: Dispatcher,
    refresh_wanted: bool,
    next_probe: Option<Instant>,
    /// After a store failure: no new attempt before this.
    store_wait: Option<Instant>,
    poll: Duration,
    /// The state word last stored.
    stored: Option<&'static str>,
}

impl Running {
    /// Takes up the stored state: a pause holds, and the key is tried at once.
    pub async fn start(inner: Arc<Inner>) -> Self {
        let stored = inner.restore_state().await;
        inner.follow_operator_pause().await;
        // Counted among the project's instances before the first request.
        if let Err(e) = inner.coordinate(true).await {
            tracing::warn!(
                destination = %inner.cfg.destination,
                error = %e,
                "could not coordinate with other instances at start (leases, rate budget); trying again at the next tick"
            );
        }
        let next_probe = inner.is_paused().then(Instant::now);
        Self {
            d: Dispatcher::new(inner.clone(), false),
            poll: inner.cfg.poll_interval.max(Duration::from_millis(1)),
            inner,
            refresh_wanted: true,
            next_probe,
            store_wait: None,
            stored,
        }
    }

    fn log(&self, what: &str, e: &dyn std::fmt::Display) {
        tracing::error!(
            destination = %self.inner.cfg.destination,
            error = %e,
            "{what} failed; tried again shortly"
        );
    }

    /// One look for work: refresh the due audiences when wanted and start requests; while
    /// paused, probe the key when due (then look again at once).
    pub async fn step(&mut self) {
        loop {
            let inner = self.inner.clone();
            self.coordinate().await;
            inner.announce_degraded();
            inner.store_state(&mut self.stored).await;
            if inner.operator_paused() {
                // Nothing new while an operator's pause holds; requests in flight finish.
                return;
            }
            let t = Instant::now();
            if self.store_wait.is_some_and(|w| t < w) {
                // A store failure: wait a little before the next attempt.
                return;
            }
            if inner.is_paused() {
                if !self.d.jobs.is_empty() {
                    return;
                }
                let at = *self.next_probe.get_or_insert(t + inner.cfg.probe_interval);
                if t < at {
                    return;
                }
                self.next_probe = None;
                if inner.probe().await {
                    self.refresh_wanted = true;
                }
                continue;
            }
            self.next_probe = None;
            self.store_wait = None;
            if self.d.last_refresh.is_none_or(|l| t >= l + self.poll) {
                self.refresh_wanted = true;
            }
            if let Err(e) = self.look(t).await {
                self.log("delivery loop", &e);
                self.store_wait = Some(Instant::now() + self.poll);
            }
            return;
        }
    }

    /// A tick of the coordination with other instances, when due: heartbeat, leases, rate
    /// cuts, and a pause or resume stored by another instance.
    async fn coordinate(&mut self) {
        let inner = self.inner.clone();
        let before = inner.ticked();
        if let Err(e) = inner.coordinate(false).await {
            self.log("coordinating with other instances", &e);
        }
        if inner.ticked() != before {
            inner.follow_operator_pause().await;
            let was_paused = inner.is_paused();
            inner.follow_stored_state(&mut self.stored).await;
            if was_paused && !inner.is_paused() {
                self.next_probe = None;
                self.refresh_wanted = true;
            }
        }
    }

    async fn look(&mut self, t: Instant) -> Result<(), super::ReconcileError> {
        if self.refresh_wanted && self.d.refresh_due(t) {
            self.d.refresh().await?;
            self.refresh_wanted = false;
        }
        self.d.fill().await.map(|_| ())
    }

    /// Sleeps until there is something to do; `false` when the loop is to stop.
    pub async fn wait(&mut self, shutdown: &mut watch::Receiver<bool>) -> bool {
        let inner = self.inner.clone();
        let t = Instant::now();
        // While paused only the probe is due; after a store failure, only its wait.
        let wake = match (
            inner.is_paused() || inner.operator_paused(),
            self.store_wait,
        ) {
            (true, _) => *self.next_probe.get_or_insert(t + inner.cfg.probe_interval),
            (false, Some(w)) if w > Instant::now() => w,
            _ => self.d.next_wake(self.refresh_wanted, self.poll),
        };
        // The coordination's tick wakes the loop too (a pause stored by another instance,
        // leases to renew).
        let wake = wake.min(t + inner.tick());
        tokio::select! {
            changed = shutdown.changed() => return changed.is_ok(),
            Some(r) = self.d.jobs.join_next(), if !self.d.jobs.is_empty() => {
                if let Some(e) = self.d.finished(r) {
                    self.log("recording outcomes", &e);
                    self.store_wait = Some(Instant::now() + self.poll);
                }
            }
            _ = inner.waker.notified() => self.refresh_wanted = true,
            _ = inner.wake_loop.notified() => {}
            _ = tokio::time::sleep_until(wake) => {}
        }
        true
    }

    /// Starts nothing new, waits for the requests in flight and records their outcomes.
    pub async fn finish(mut self) {
        while let Some(r) = self.d.jobs.join_next().await {
            if let Some(e) = self.d.finished(r) {
                self.log("recording outcomes", &e);
            }
        }
        self.inner.store_state(&mut self.stored).await;
        self.inner.leave().await;
    }
}
