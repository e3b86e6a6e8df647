//! Client-side rate limiting per Iterable project and endpoint: a leaky bucket (GCRA) that
//! every attempt waits on, fixed or adaptive (cut on 429, climb back slowly, AIMD).
//!
//! Several instances sending to one project share its budget: each sends its share (one
//! over the number of live instances, [`RateLimiter::set_share`]) of the project's rate, and
//! an adaptive cut after a 429 is handed to the others ([`RateLimiter::take_cut`] here,
//! [`RateLimiter::adopt_cut`] there), so that a 429 seen by one instance slows all of them.
//! The rates kept here are the project's whole rates; the share divides them when sending.
//!
//! With a [`SlotSource`] (the store shared by the instances), the send times themselves are
//! shared: an instance reserves the next slots of the project's one bucket (a tenth of a
//! second's worth at a time) and sends at those times, so the instances together keep to the
//! limit as one would, without sending in step. The share above is the fallback when the
//! source fails.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::time::Instant;

/// The endpoints this client calls, each with its own bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    GetLists,
    CreateList,
    DeleteList,
    ListSize,
    GetUsers,
    Subscribe,
    Unsubscribe,
    UserByEmail,
    UserById,
}

/// Every endpoint, in declaration order.
pub const ALL_ENDPOINTS: [Endpoint; 9] = [
    Endpoint::GetLists,
    Endpoint::CreateList,
    Endpoint::DeleteList,
    Endpoint::ListSize,
    Endpoint::GetUsers,
    Endpoint::Subscribe,
    Endpoint::Unsubscribe,
    Endpoint::UserByEmail,
    Endpoint::UserById,
];

impl Endpoint {
    /// Method and path, for messages.
    pub fn label(self) -> &'static str {
        match self {
            Endpoint::GetLists => "GET /api/lists",
            Endpoint::CreateList => "POST /api/lists",
            Endpoint::DeleteList => "DELETE /api/lists/{listId}",
            Endpoint::ListSize => "GET /api/lists/{listId}/size",
            Endpoint::GetUsers => "GET /api/lists/getUsers",
            Endpoint::Subscribe => "POST /api/lists/subscribe",
            Endpoint::Unsubscribe => "POST /api/lists/unsubscribe",
            Endpoint::UserByEmail => "GET /api/users/getByEmail",
            Endpoint::UserById => "GET /api/users/byUserId",
        }
    }

    /// The default limit. Published limits where Iterable has one. The list endpoints
    /// (subscribe, unsubscribe, create, delete) have none published, so they start at 20
    /// requests/s and adapt (see [`Limit::Adaptive`]); creating and deleting lists stays at
    /// most 100/s.
    pub fn default_limit(self) -> Limit {
        match self {
            Endpoint::GetLists | Endpoint::UserByEmail | Endpoint::UserById => Limit::fixed(100.0),
            Endpoint::ListSize | Endpoint::GetUsers => Limit::Fixed {
                per_second: 5.0 / 60.0,
                burst: 5,
            },
            Endpoint::CreateList | Endpoint::DeleteList => Limit::Adaptive {
                start: 20.0,
                min: 1.0,
                max: 100.0,
            },
            Endpoint::Subscribe | Endpoint::Unsubscribe => Limit::Adaptive {
                start: 20.0,
                min: 1.0,
                max: 1000.0,
            },
        }
    }
}

/// Where instances sharing a project reserve their send times: one bucket (GCRA) per
/// project and endpoint, kept where every instance sees it (the store).
pub trait SlotSource: Send + Sync + std::fmt::Debug {
    /// Reserves `count` consecutive send slots of `endpoint`, `interval` apart, the first
    /// at most `tolerance` ahead of the bucket's schedule (a burst) and not within
    /// `not_before` from now (a `Retry-After`); returns how long to wait
    /// for the first one, or `None` when the bucket could not be reached (the caller then
    /// limits on its own).
    fn reserve(
        &self,
        endpoint: Endpoint,
        count: u32,
        interval: Duration,
        tolerance: Duration,
        not_before: Duration,
    ) -> Pin<Box<dyn Future<Output = Option<Duration>> + Send + '_>>;
}

/// How much of the rate one reservation of shared slots holds.
const GRANT: Duration = Duration::from_millis(100);

/// A limit on one endpoint of one project.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limit {
    /// Never more than `per_second` on average, bursts of `burst`.
    Fixed {
        per_second: f64,
        burst: u32,
    },
    /// Unknown server limit: start at `start`, double every second until the first 429
    /// (slow start, which then halves the rate), then cut by 10% on a 429 (at most once a
    /// second), climb back 5% a second up to just under the rate that last drew a 429, and
    /// 0.5% a second beyond it, staying within `min..=max`.
    Adaptive {
        start: f64,
        min: f64,
        max: f64,
    },
    Unlimited,
}

impl Limit {
    /// A fixed rate with a bucket of a tenth of a second's worth (at least one request).
    pub fn fixed(per_second: f64) -> Self {
        Limit::Fixed {
            per_second,
            burst: ((per_second / 10.0).ceil() as u32).max(1),
        }
    }
}

const DECREASE: f64 = 0.9;
/// An endpoint not asked for a slot for this long is idle: its rate does not grow.
const IDLE_AFTER: Duration = Duration::from_secs(1);
const INCREASE_PER_SEC: f64 = 0.005;
/// Climb below the rate of the last 429, which is known to be (nearly) sustainable.
const RECOVER_PER_SEC: f64 = 0.05;
/// Fast recovery stops this far below the rate that drew the 429 (which was already too
/// high), so the ceiling does not ratchet upwards.
const CEILING: f64 = 0.97;

#[derive(Debug)]
struct Bucket {
    limit: Limit,
    rate: f64,
    burst: u32,
    /// GCRA theoretical arrival time.
    tat: Instant,
    /// Adaptive state: still doubling; when the rate last grew; when it was last cut.
    slow_start: bool,
    last_change: Instant,
    /// When a request last asked for a slot: the rate grows only while it is used (an idle
    /// endpoint would otherwise come back at a rate nobody tried).
    last_used: Instant,
    last_cut: Option<Instant>,
    /// The rate when the last 429 arrived: recovery is fast below it, probing slow above it.
    ceiling: f64,
    /// Nothing may be sent before this (a `Retry-After`).
    paused_until: Option<Instant>,
    /// The rate after the last cut, until [`RateLimiter::take_cut`] hands it on.
    unshared_cut: Option<f64>,
}

impl Bucket {
    fn new(limit: Limit, now: Instant) -> Self {
        let (rate, burst) = match limit {
            Limit::Fixed { per_second, burst } => (per_second, burst.max(1)),
            Limit::Adaptive { start, .. } => (start, 1),
            Limit::Unlimited => (f64::INFINITY, 1),
        };
        Bucket {
            limit,
            rate,
            burst,
            tat: now,
            slow_start: true,
            last_change: now,
            last_used: now,
            last_cut: None,
            ceiling: 0.0,
            paused_until: None,
            unshared_cut: None,
        }
    }

    fn grow(&mut self, now: Instant) {
        let Limit::Adaptive { max, .. } = self.limit else {
            return;
        };
        let until = now.min(self.last_used + IDLE_AFTER);
        let secs = until
            .saturating_duration_since(self.last_change)
            .as_secs_f64();
        if secs <= 0.0 {
            self.last_change = self.last_change.max(until);
            return;
        }
        self.rate = if self.slow_start {
            self.rate * 2f64.powf(secs)
        } else if self.rate < self.ceiling {
            // Fast back up to the ceiling; the rest of the time probes slowly above it.
            let recovered = self.rate * (1.0 + RECOVER_PER_SEC * secs);
            if recovered <= self.ceiling {
                recovered
            } else {
                let spent = (self.ceiling / self.rate - 1.0) / RECOVER_PER_SEC;
                self.ceiling * (1.0 + INCREASE_PER_SEC * (secs - spent).max(0.0))
            }
        } else {
            self.rate * (1.0 + INCREASE_PER_SEC * secs)
        }
        .min(max);
        self.last_change = until;
    }

    /// A request asks for a slot: after an idle spell, growth starts again from now.
    fn used(&mut self, now: Instant) {
        if now.saturating_duration_since(self.last_used) > IDLE_AFTER {
            self.last_change = self.last_change.max(now);
        }
        self.last_used = now;
    }

    /// Reserves a slot for an instance sending `1/share` of the rate; returns how long to
    /// wait before sending.
    fn reserve(&mut self, now: Instant, share: u32) -> Duration {
        if !self.rate.is_finite() {
            return Duration::ZERO;
        }
        self.grow(now);
        self.used(now);
        let share = share.max(1);
        let rate = self.rate / f64::from(share);
        let interval = Duration::from_secs_f64(1.0 / rate.max(1e-6));
        let burst = self.burst.div_ceil(share).max(1);
        let tolerance = interval.saturating_mul(burst - 1);
        let start = self.tat.max(now);
        let mut send_at = start.checked_sub(tolerance).unwrap_or(now).max(now);
        if let Some(p) = self.paused_until
            && p > send_at
        {
            send_at = p;
        }
        self.tat = start.max(send_at) + interval;
        send_at - now
    }

    fn throttled(&mut self, now: Instant, retry_after: Option<Duration>) {
        if let Some(ra) = retry_after {
            let until = now + ra;
            self.paused_until = Some(self.paused_until.map_or(until, |p| p.max(until)));
        }
        let Limit::Adaptive { min, .. } = self.limit else {
            return;
        };
        self.grow(now);
        if self.slow_start {
            // The first 429 ends the doubling: the limit lies between half the rate and it.
            self.ceiling = self.rate * CEILING;
            self.rate = (self.rate * 0.5).max(min);
            self.slow_start = false;
        } else if self
            .last_cut
            .is_none_or(|c| now.saturating_duration_since(c) >= Duration::from_secs(1))
        {
            // Several in-flight requests see one overload: cut at most once a second.
            self.ceiling = self.rate * CEILING;
            self.rate = (self.rate * DECREASE).max(min);
        } else {
            return;
        }
        self.last_cut = Some(now);
        self.unshared_cut = Some(self.rate);
        self.hold_back(now);
    }

    /// Requests already reserved keep their slots; the next one waits at least a full
    /// interval at the new rate, so a cut takes effect without a burst.
    fn hold_back(&mut self, now: Instant) {
        self.tat = self
            .tat
            .max(now + Duration::from_secs_f64(1.0 / self.rate.max(1e-6)));
    }

    /// Takes up another instance's cut to `rate` (the project's whole rate): a bucket still
    /// in its slow start starts from it; otherwise it goes down to it, never up.
    fn adopt_cut(&mut self, now: Instant, rate: f64) {
        let Limit::Adaptive { min, max, .. } = self.limit else {
            return;
        };
        if !rate.is_finite() || rate <= 0.0 {
            return;
        }
        self.grow(now);
        let rate = rate.clamp(min, max);
        if !self.slow_start && rate >= self.rate {
            return;
        }
        // The cut rate is already below the one that drew the 429: climb back slowly.
        self.ceiling = rate;
        self.rate = rate;
        self.slow_start = false;
        self.last_cut = Some(now);
        self.last_change = now;
        self.hold_back(now);
    }
}

/// The buckets of one Iterable project (one API key).
#[derive(Debug)]
pub struct RateLimiter {
    limits: HashMap<Endpoint, Limit>,
    buckets: Mutex<HashMap<Endpoint, Bucket>>,
    /// How many instances share the project's budget (this one included).
    share: AtomicU32,
    /// The shared bucket, when instances share the project's send times.
    slots: OnceLock<Arc<dyn SlotSource>>,
    /// Send times reserved from the shared bucket and not used yet, per endpoint.
    granted: Mutex<HashMap<Endpoint, VecDeque<Instant>>>,
    /// One reservation at a time.
    refill: tokio::sync::Mutex<()>,
}

impl Default for RateLimiter {
    fn default() -> Self {
        Self::new(HashMap::new())
    }
}

impl RateLimiter {
    /// A limiter with `overrides` over the default limits.
    pub fn new(overrides: HashMap<Endpoint, Limit>) -> Self {
        Self {
            limits: overrides,
            buckets: Mutex::new(HashMap::new()),
            share: AtomicU32::new(1),
            slots: OnceLock::new(),
            granted: Mutex::new(HashMap::new()),
            refill: tokio::sync::Mutex::new(()),
        }
    }

    /// Shares the send times with other instances through `source` (see the module doc).
    /// Only the first call counts.
    pub fn share_slots(&self, source: Arc<dyn SlotSource>) {
        let _ = self.slots.set(source);
    }

    /// A reserved send time of `e`, if one is left.
    fn take_granted(&self, e: Endpoint) -> Option<Duration> {
        let at = self
            .granted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(&e)?
            .pop_front()?;
        Some(at.saturating_duration_since(Instant::now()))
    }

    /// The wait for a send time from the shared bucket; `None` when it could not be reached.
    async fn acquire_shared(&self, src: &Arc<dyn SlotSource>, e: Endpoint) -> Option<Duration> {
        loop {
            if let Some(wait) = self.take_granted(e) {
                return Some(wait);
            }
            let _one = self.refill.lock().await;
            if let Some(wait) = self.take_granted(e) {
                return Some(wait);
            }
            let (rate, burst, paused) = self.with_bucket(e, |b, now| {
                b.grow(now);
                b.used(now);
                let paused = b.paused_until.map(|p| p.saturating_duration_since(now));
                (b.rate, b.burst, paused.unwrap_or_default())
            });
            if !rate.is_finite() {
                return Some(Duration::ZERO);
            }
            let interval = Duration::from_secs_f64(1.0 / rate.max(1e-6));
            let count = ((rate * GRANT.as_secs_f64()).floor() as u32).clamp(1, 1000);
            let tolerance = interval.saturating_mul(burst.max(1) - 1);
            // After a `Retry-After`, the slots start when it ends, one interval apart.
            let wait = src.reserve(e, count, interval, tolerance, paused).await?;
            let first = Instant::now() + wait;
            let mut g = self.granted.lock().unwrap_or_else(|p| p.into_inner());
            let q = g.entry(e).or_default();
            q.extend((0..count).map(|i| first + interval.saturating_mul(i)));
        }
    }

    /// How many instances send to this project now, this one included: each sends that
    /// share of every limit (at least one).
    pub fn set_share(&self, instances: usize) {
        let n = u32::try_from(instances).unwrap_or(u32::MAX).max(1);
        self.share.store(n, Ordering::Relaxed);
    }

    /// The number of instances sharing the budget (see [`RateLimiter::set_share`]).
    pub fn share(&self) -> u32 {
        self.share.load(Ordering::Relaxed)
    }

    /// The endpoints with an adaptive limit, whose cuts are shared.
    pub fn adaptive_endpoints(&self) -> Vec<Endpoint> {
        ALL_ENDPOINTS
            .into_iter()
            .filter(|e| matches!(self.limit_of(*e), Limit::Adaptive { .. }))
            .collect()
    }

    fn limit_of(&self, e: Endpoint) -> Limit {
        self.limits
            .get(&e)
            .copied()
            .unwrap_or_else(|| e.default_limit())
    }

    /// The rate after this instance's last cut of `e` (the project's whole rate), once: to be
    /// handed to the other instances.
    pub fn take_cut(&self, e: Endpoint) -> Option<f64> {
        self.with_bucket(e, |b, _| b.unshared_cut.take())
    }

    /// Takes up another instance's cut of `e` to `rate` (the project's whole rate).
    pub fn adopt_cut(&self, e: Endpoint, rate: f64) {
        self.with_bucket(e, |b, now| b.adopt_cut(now, rate));
    }

    fn with_bucket<T>(&self, e: Endpoint, f: impl FnOnce(&mut Bucket, Instant) -> T) -> T {
        let now = Instant::now();
        let limit = self.limit_of(e);
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let b = buckets.entry(e).or_insert_with(|| Bucket::new(limit, now));
        f(b, now)
    }

    /// Waits until one more request to `e` is allowed, and counts it.
    pub async fn acquire(&self, e: Endpoint) {
        if let Some(src) = self.slots.get()
            && let Some(wait) = self.acquire_shared(src, e).await
        {
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            return;
        }
        let share = self.share();
        let wait = self.with_bucket(e, |b, now| b.reserve(now, share));
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Feedback: a request to `e` got a 429 (with the server's `Retry-After`, if any).
    pub fn throttled(&self, e: Endpoint, retry_after: Option<Duration>) {
        if retry_after.is_some() {
            // Slots reserved before the answer would all fall due when the pause ends, at
            // once: give them up, the next ones are reserved after the pause.
            if let Some(q) = self
                .granted
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_mut(&e)
            {
                q.clear();
            }
        }
        self.with_bucket(e, |b, now| b.throttled(now, retry_after));
    }

    /// The current rate of `e` in requests per second (infinite when unlimited).
    pub fn rate(&self, e: Endpoint) -> f64 {
        self.with_bucket(e, |b, now| {
            b.grow(now);
            b.rate
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends `n` requests as fast as the limiter allows; returns the virtual seconds taken.
    async fn drain(l: &RateLimiter, e: Endpoint, n: usize) -> f64 {
        let start = Instant::now();
        for _ in 0..n {
            l.acquire(e).await;
        }
        start.elapsed().as_secs_f64()
    }

    #[tokio::test(start_paused = true)]
    async fn fixed_limits_space_requests() {
        let l = RateLimiter::new(HashMap::from([(Endpoint::Subscribe, Limit::fixed(20.0))]));
        // 201 requests at 20/s with a bucket of 2: about 10 s.
        let secs = drain(&l, Endpoint::Subscribe, 201).await;
        assert!((9.8..=10.1).contains(&secs), "{secs}");
        // Published per-minute limits: 5 at once, then one every 12 s.
        let secs = drain(&l, Endpoint::GetUsers, 6).await;
        assert!((11.9..=12.1).contains(&secs), "{secs}");
        assert!(l.rate(Endpoint::Unsubscribe) > 0.0);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_pauses_the_bucket() {
        let l = RateLimiter::new(HashMap::from([(Endpoint::CreateList, Limit::Unlimited)]));
        l.acquire(Endpoint::GetLists).await;
        l.throttled(Endpoint::GetLists, Some(Duration::from_secs(3)));
        let secs = drain(&l, Endpoint::GetLists, 1).await;
        assert!((2.9..=3.1).contains(&secs), "{secs}");
        assert_eq!(
            drain(&l, Endpoint::CreateList, 1000).await,
            0.0,
            "unlimited never waits"
        );
    }

    /// Runs the adaptive limiter for two minutes against a simulated server that accepts
    /// `server_rate` per second (GCRA, tenth-second bucket) and 429s the rest; returns the
    /// accepted rate and the 429 share from the 30th second on.
    async fn against_server(server_rate: u32) -> (f64, f64) {
        let l = RateLimiter::new(HashMap::from([(
            Endpoint::Subscribe,
            Limit::Adaptive {
                start: 20.0,
                min: 1.0,
                max: 1000.0,
            },
        )]));
        let interval = Duration::from_secs(1) / server_rate;
        let tolerance = interval * (server_rate.div_ceil(10).max(1) - 1);
        let mut server_tat = Instant::now();
        let (mut late_ok, mut late_429) = (0u32, 0u32);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(120) {
            l.acquire(Endpoint::Subscribe).await;
            let now = Instant::now();
            let t = server_tat.max(now);
            let accepted = t.saturating_duration_since(now) <= tolerance;
            let late = start.elapsed() >= Duration::from_secs(30);
            if accepted {
                server_tat = t + interval;
                late_ok += u32::from(late);
            } else {
                late_429 += u32::from(late);
                l.throttled(Endpoint::Subscribe, None);
            }
        }
        (
            f64::from(late_ok) / 90.0,
            f64::from(late_429) / f64::from((late_ok + late_429).max(1)),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn adaptive_finds_the_limit_and_stays_near_it() {
        for server_rate in [20, 200] {
            let (rate, share) = against_server(server_rate).await;
            // After half a minute: at least 95% of the server's rate, under 1% throttled.
            assert!(
                rate >= 0.95 * f64::from(server_rate),
                "{server_rate}/s: accepted {rate:.1}/s"
            );
            assert!(share < 0.01, "{server_rate}/s: 429 share {share:.4}");
        }
    }
    #[tokio::test(start_paused = true)]
    async fn a_share_sends_its_part_of_the_budget() {
        let l = RateLimiter::new(HashMap::from([(Endpoint::Subscribe, Limit::fixed(30.0))]));
        l.set_share(3);
        assert_eq!(l.share(), 3);
        // One of three instances sharing 30/s: 10/s, so 101 requests take about 10 s.
        let secs = drain(&l, Endpoint::Subscribe, 101).await;
        assert!((9.8..=10.1).contains(&secs), "{secs}");
        l.set_share(0);
        assert_eq!(l.share(), 1, "at least this instance");
    }

    #[tokio::test(start_paused = true)]
    async fn a_cut_seen_by_one_instance_is_taken_up_by_another() {
        let adaptive = || {
            RateLimiter::new(HashMap::from([(
                Endpoint::Subscribe,
                Limit::Adaptive {
                    start: 20.0,
                    min: 1.0,
                    max: 1000.0,
                },
            )]))
        };
        let (a, b) = (adaptive(), adaptive());
        assert!(a.adaptive_endpoints().contains(&Endpoint::Subscribe));
        assert!(!a.adaptive_endpoints().contains(&Endpoint::GetLists));
        assert_eq!(a.take_cut(Endpoint::Subscribe), None, "no cut yet");
        a.throttled(Endpoint::Subscribe, None);
        let cut = a.take_cut(Endpoint::Subscribe).expect("a cut");
        assert_eq!(cut, 10.0, "the first 429 halves the slow start");
        assert_eq!(a.take_cut(Endpoint::Subscribe), None, "handed on once");
        b.adopt_cut(Endpoint::Subscribe, cut);
        assert_eq!(b.rate(Endpoint::Subscribe), 10.0);
        // A higher cut never raises a rate that is no longer in its slow start.
        b.adopt_cut(Endpoint::Subscribe, 50.0);
        assert_eq!(b.rate(Endpoint::Subscribe), 10.0);
        b.adopt_cut(Endpoint::Subscribe, 8.0);
        assert_eq!(b.rate(Endpoint::Subscribe), 8.0);
        // A fixed limit ignores cuts.
        b.adopt_cut(Endpoint::GetLists, 1.0);
        assert_eq!(b.rate(Endpoint::GetLists), 100.0);
    }
    #[tokio::test(start_paused = true)]
    async fn an_idle_adaptive_rate_does_not_grow() {
        let l = RateLimiter::new(HashMap::from([(
            Endpoint::Subscribe,
            Limit::Adaptive {
                start: 20.0,
                min: 1.0,
                max: 1000.0,
            },
        )]));
        l.acquire(Endpoint::Subscribe).await;
        tokio::time::sleep(Duration::from_secs(60)).await;
        // At most the second after the last request counted: one doubling.
        let rate = l.rate(Endpoint::Subscribe);
        assert!((39.0..=41.0).contains(&rate), "{rate}");
        l.acquire(Endpoint::Subscribe).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rate = l.rate(Endpoint::Subscribe);
        assert!(
            rate < 60.0,
            "growth starts again from the next request: {rate}"
        );
    }
}
