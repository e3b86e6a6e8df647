//! The round over audiences: which audiences have due rows (refreshed at most every
//! `refresh_gap`), and for each in turn: fetch its due rows (leaving out users with a request
//! in flight), let a partial batch linger, and start its requests while slots are free.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use super::claims::Claim;
use super::job::JobDone;
use super::shared::{Inner, RECORDING_PER_SLOT, lock};
use super::{PassReport, ReconcileError};
use crate::store::PendingRow;

/// What fetching one audience led to.
pub(super) enum Fetched {
    /// Nothing more is due now.
    Exhausted,
    /// There may be more (rows were sent, or are waiting for a request in flight).
    More,
    /// A partial batch is waiting for more rows until the deadline.
    Lingering,
}

/// When a lingering audience must be sent, and when it may be looked at again before that.
#[derive(Debug, Clone, Copy)]
pub(super) struct Linger {
    pub deadline: Instant,
    pub recheck: Instant,
}

/// The state of one run of the loop (or one pass).
pub(super) struct Dispatcher {
    pub inner: Arc<Inner>,
    pub jobs: JoinSet<JobDone>,
    /// Audiences that may have due rows, in round-robin order.
    pub active: VecDeque<String>,
    pub known: HashSet<String>,
    pub lingering: HashMap<String, Linger>,
    /// Audiences whose list is being resolved by a task of its own (running loop only); the
    /// task leaves its result in `Inner::resolved`.
    pub resolving: HashMap<String, JoinHandle<()>>,
    /// The due cutoff of a drain pass (fixed), or `None` (the clock's now).
    pub cutoff: Option<i64>,
    pub drain: bool,
    pub report: PassReport,
    pub seen: HashSet<String>,
    pub last_refresh: Option<Instant>,
    /// The least time between refreshes: ten times the last refresh's duration, within
    /// [`MIN_REFRESH_GAP`]..=[`MAX_REFRESH_GAP`], so that with a large backlog (the query
    /// reads every pending row) finding audiences takes at most about a tenth of the store.
    pub refresh_gap: Duration,
}

impl Drop for Dispatcher {
    /// List resolutions still running stop with the loop. One cut short after Iterable
    /// created the list is finished by the next resolution, which finds the list by name
    /// before creating one (as after a crash).
    fn drop(&mut self) {
        for task in self.resolving.values() {
            task.abort();
        }
    }
}

/// Refreshes of the due audiences are at least this far apart.
const MIN_REFRESH_GAP: Duration = Duration::from_millis(20);
/// The longest a wanted refresh waits, however slow the last one was.
const MAX_REFRESH_GAP: Duration = Duration::from_secs(5);

impl Dispatcher {
    pub fn new(inner: Arc<Inner>, drain: bool) -> Self {
        let cutoff = drain.then(|| inner.now());
        Self {
            inner,
            jobs: JoinSet::new(),
            active: VecDeque::new(),
            known: HashSet::new(),
            lingering: HashMap::new(),
            resolving: HashMap::new(),
            cutoff,
            drain,
            report: PassReport::default(),
            seen: HashSet::new(),
            last_refresh: None,
            refresh_gap: MIN_REFRESH_GAP,
        }
    }

    pub fn now(&self) -> i64 {
        self.cutoff.unwrap_or_else(|| self.inner.now())
    }

    /// Adds the audiences with due rows to the round.
    pub async fn refresh(&mut self) -> Result<(), ReconcileError> {
        let now = self.now();
        let started = Instant::now();
        let due = self
            .inner
            .store
            .pending_audiences(&self.inner.cfg.destination, now)
            .await?;
        // Only the audiences whose lease this instance holds (see `coordinator`).
        let busy = self.busy();
        let due = self.inner.claim(due, &busy).await?;
        let t = Instant::now();
        self.last_refresh = Some(t);
        self.refresh_gap = (t - started)
            .saturating_mul(10)
            .clamp(MIN_REFRESH_GAP, MAX_REFRESH_GAP);
        for a in due {
            if self.known.insert(a.clone()) {
                self.active.push_back(a.clone());
            }
            self.seen.insert(a);
        }
        self.report.audiences = self.seen.len();
        Ok(())
    }

    /// Audiences with work under way here: requests in flight or a list being resolved.
    fn busy(&self) -> HashSet<String> {
        let mut busy: HashSet<String> = lock(&self.inner.in_flight)
            .audiences
            .iter()
            .filter(|(_, k)| k.rows > 0)
            .map(|(a, _)| a.clone())
            .collect();
        busy.extend(self.resolving.keys().cloned());
        busy
    }

    pub fn refresh_due(&self, now: Instant) -> bool {
        self.last_refresh
            .is_none_or(|t| now >= t + self.refresh_gap)
    }

    /// Starts as many requests as free slots allow, one audience after the other. Returns
    /// whether anything was started or recorded.
    pub async fn fill(&mut self) -> Result<bool, ReconcileError> {
        let mut progressed = false;
        let rounds = self.active.len();
        for _ in 0..rounds {
            if self.inner.is_paused() || !self.can_start() {
                break;
            }
            let Some(audience) = self.active.pop_front() else {
                break;
            };
            if !self.inner.holds(&audience) {
                // Its lease went to another instance (or is about to end): leave it.
                self.known.remove(&audience);
                self.lingering.remove(&audience);
                continue;
            }
            if self.waits_for_list(&audience) {
                // Its rows wait for the list; the task wakes the loop when it is known.
                self.active.push_back(audience);
                continue;
            }
            let t = Instant::now();
            if let Some(l) = self.lingering.get(&audience)
                && t < l.deadline
                && t < l.recheck
            {
                self.active.push_back(audience);
                continue;
            }
            match self.fetch(&audience).await {
                Ok((fetched, any)) => {
                    progressed |= any;
                    match fetched {
                        Fetched::Exhausted => {
                            self.known.remove(&audience);
                            self.lingering.remove(&audience);
                        }
                        Fetched::More | Fetched::Lingering => self.active.push_back(audience),
                    }
                }
                Err(e) => {
                    self.active.push_back(audience);
                    return Err(e);
                }
            }
        }
        Ok(progressed)
    }

    /// Fetches, plans and starts the due rows of one audience.
    pub async fn fetch(&mut self, audience: &str) -> Result<(Fetched, bool), ReconcileError> {
        let inner = self.inner.clone();
        let cfg = &inner.cfg;
        let batch = cfg.batch();
        let free = inner.slots.available_permits().max(1);
        let want = free * batch;
        // The rows in flight are left out of the read (they are still pending in the store
        // until their outcome is recorded): only new rows are read and decoded.
        let in_flight = lock(&inner.in_flight)
            .audiences
            .get(audience)
            .map_or_else(Vec::new, |k| k.seqs_in_flight());
        let busy = !in_flight.is_empty();
        let now = self.now();
        Claim::begin_read(&inner.in_flight, audience);
        let rows = inner
            .store
            .pending_except(&cfg.destination, audience, now, want, in_flight)
            .await;
        let rows = match rows {
            Ok(rows) => rows,
            Err(e) => {
                lock(&inner.in_flight).released.remove(audience);
                return Err(e.into());
            }
        };
        let fetched = rows.len();
        let (claim, rows, blocked) = Claim::take(&inner.in_flight, audience, rows, want);
        // While requests of the audience are in flight, more may come due (a retry), so it is
        // looked at again, as when their rows were read and skipped here.
        let exhausted = fetched < want && blocked == 0 && !busy;
        if rows.is_empty() {
            self.lingering.remove(audience);
            return Ok((
                if exhausted {
                    Fetched::Exhausted
                } else {
                    Fetched::More
                },
                false,
            ));
        }
        if !self.drain && rows.len() < batch && self.lingers(audience, &rows, now) {
            return Ok((Fetched::Lingering, false));
        }
        self.lingering.remove(audience);
        let rows_taken = rows.len();
        let waiting = self.start(audience, rows, claim).await?;
        let sent_all = exhausted && !waiting && rows_taken == fetched;
        Ok((
            if sent_all {
                Fetched::Exhausted
            } else {
                Fetched::More
            },
            true,
        ))
    }

    /// Whether a partial batch of `audience` (its due `rows`) waits for more: until its oldest
    /// row is `linger` old, looked at again every quarter of the linger meanwhile.
    pub fn lingers(&mut self, audience: &str, rows: &[PendingRow], now: i64) -> bool {
        let linger = self.inner.cfg.linger;
        if linger.is_zero() {
            return false;
        }
        let t = Instant::now();
        let recheck = t + (linger / 4).max(Duration::from_millis(5));
        match self.lingering.get_mut(audience) {
            Some(l) if t >= l.deadline => false,
            Some(l) => {
                l.recheck = recheck;
                true
            }
            None => {
                let oldest = rows.iter().map(|r| r.accepted_ms).min().unwrap_or(now);
                let age = Duration::from_millis(now.saturating_sub(oldest).max(0) as u64);
                if age >= linger {
                    return false;
                }
                let deadline = t + (linger - age);
                self.lingering
                    .insert(audience.to_string(), Linger { deadline, recheck });
                true
            }
        }
    }

    /// A pass: sends everything due at its start until nothing is left, without lingering,
    /// and waits for every request's outcome to be recorded. The first failure stops it.
    pub async fn drain(&mut self) -> Result<(), ReconcileError> {
        let mut failure: Option<ReconcileError> = None;
        match self.refresh().await {
            Ok(()) => loop {
                match self.fill().await {
                    Ok(progressed) => {
                        if self.jobs.is_empty() && (!progressed || self.active.is_empty()) {
                            break;
                        }
                    }
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
                if self.inner.is_paused() {
                    break;
                }
                if let Some(r) = self.jobs.join_next().await
                    && let Some(e) = self.finished(r)
                {
                    failure = Some(e);
                    break;
                }
            },
            Err(e) => failure = Some(e),
        }
        while let Some(r) = self.jobs.join_next().await {
            if let Some(e) = self.finished(r) {
                failure.get_or_insert(e);
            }
        }
        failure.map_or(Ok(()), Err)
    }

    /// Takes in a finished task's report.
    pub fn finished(
        &mut self,
        r: Result<JobDone, tokio::task::JoinError>,
    ) -> Option<ReconcileError> {
        match r {
            Ok(done) => {
                self.report.add(&done.report);
                if let Some(e) = &done.unauthorized {
                    self.inner.pause(e);
                }
                done.failure
            }
            Err(e) => Some(ReconcileError::Task(e.to_string())),
        }
    }

    /// A slot is free and not too many answers wait to be recorded.
    pub fn can_start(&self) -> bool {
        self.inner.slots.available_permits() > 0
            && self.jobs.len() < self.inner.cfg.concurrency.max(1) * (RECORDING_PER_SLOT + 1)
    }

    /// The next moment a running loop must look again by itself: the next poll or wanted
    /// refresh, or the end of a linger (only while a slot is free to send it; otherwise a
    /// finishing request wakes the loop).
    pub fn next_wake(&self, refresh_wanted: bool, poll: Duration) -> Instant {
        let now = Instant::now();
        let last = self.last_refresh.unwrap_or(now);
        let mut at = last + poll.max(self.refresh_gap);
        if refresh_wanted {
            at = at.min(last + self.refresh_gap);
        }
        if self.can_start() {
            for l in self.lingering.values() {
                at = at.min(l.deadline);
            }
        }
        at.max(now + Duration::from_millis(1))
    }
}
