//! Per-destination metrics: what the server ingested, what the reconciler did with each row and
//! request, and the end-to-end latency, rendered as Prometheus text (exposition format 0.0.4).
//!
//! Counters are plain atomics, updated without locks on the hot path. [`render`] (in `render`)
//! writes every metric family once (one `# HELP`/`# TYPE` pair), with one sample per
//! destination (and per audience for the store's gauges from [`ListCounts`]).

use std::sync::atomic::{AtomicU64, Ordering};

use destination::SettingName;
use iterable::client::{ErrorKind, IterableError};
use iterable::limiter::Endpoint;

use crate::store::ListCounts;

mod render;

pub use render::{render, render_holds, render_store};

/// What the last scheduled verify of one audience found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Drift {
    /// Acknowledged members missing from the list.
    pub missing: u64,
    /// Identifiers in the list against the store.
    pub extra: u64,
    /// When (epoch ms).
    pub verified_ms: i64,
}

/// Upper bounds (seconds) of the latency histogram's buckets; `+Inf` comes after them.
pub const LATENCY_BUCKETS: [f64; 15] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0,
];

/// What the store made of an incoming event (counted by the server).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingested {
    /// Stored, with at least its log entry.
    Accepted,
    /// A messageId seen before: nothing stored.
    Duplicate,
    /// Unusable (logged as rejected).
    Rejected,
    /// Not for this destination (logged as skipped).
    Skipped,
}

impl Ingested {
    const ALL: [Ingested; 4] = [
        Ingested::Accepted,
        Ingested::Duplicate,
        Ingested::Rejected,
        Ingested::Skipped,
    ];

    /// The `outcome` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Ingested::Accepted => "accepted",
            Ingested::Duplicate => "duplicate",
            Ingested::Rejected => "rejected",
            Ingested::Skipped => "skipped",
        }
    }
}

/// What the reconciler recorded for one row (one user in one audience).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowResult {
    /// Iterable acknowledged it.
    Delivered,
    /// Iterable refused it for good (its reason is in the event log).
    Rejected,
    /// A retryable failure: the row was rescheduled.
    Retried,
    /// Not sent: another row for the same person won.
    Superseded,
}

impl RowResult {
    const ALL: [RowResult; 4] = [
        RowResult::Delivered,
        RowResult::Rejected,
        RowResult::Retried,
        RowResult::Superseded,
    ];

    /// The `outcome` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RowResult::Delivered => "delivered",
            RowResult::Rejected => "rejected",
            RowResult::Retried => "retried",
            RowResult::Superseded => "superseded",
        }
    }
}

/// The status class of a finished request (after the client's own retries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    /// A 2xx answer.
    Success,
    /// 401: the API key was refused.
    Unauthorized,
    /// 429.
    RateLimited,
    /// Any other 4xx.
    ClientError,
    /// 5xx.
    ServerError,
    /// No usable answer: timeout, connection error, unreadable body.
    Transport,
}

impl StatusClass {
    const ALL: [StatusClass; 6] = [
        StatusClass::Success,
        StatusClass::Unauthorized,
        StatusClass::RateLimited,
        StatusClass::ClientError,
        StatusClass::ServerError,
        StatusClass::Transport,
    ];

    /// The `class` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusClass::Success => "2xx",
            StatusClass::Unauthorized => "401",
            StatusClass::RateLimited => "429",
            StatusClass::ClientError => "4xx",
            StatusClass::ServerError => "5xx",
            StatusClass::Transport => "transport",
        }
    }

    /// The class of a failed call.
    pub fn of_error(e: &IterableError) -> Self {
        match (e.kind.clone(), e.status) {
            (ErrorKind::Status, Some(401)) => StatusClass::Unauthorized,
            (ErrorKind::Status, Some(429)) => StatusClass::RateLimited,
            (ErrorKind::Status, Some(s)) if s >= 500 => StatusClass::ServerError,
            (ErrorKind::Status, Some(_)) => StatusClass::ClientError,
            _ => StatusClass::Transport,
        }
    }
}

/// The endpoints whose requests are counted, in rendering order.
const ENDPOINTS: [Endpoint; 4] = [
    Endpoint::Subscribe,
    Endpoint::Unsubscribe,
    Endpoint::GetLists,
    Endpoint::CreateList,
];

fn endpoint_index(e: Endpoint) -> Option<usize> {
    ENDPOINTS.iter().position(|x| *x == e)
}

fn endpoint_label(e: Endpoint) -> &'static str {
    match e {
        Endpoint::Subscribe => "subscribe",
        Endpoint::Unsubscribe => "unsubscribe",
        Endpoint::GetLists => "get_lists",
        Endpoint::CreateList => "create_list",
        _ => "other",
    }
}

/// A fixed-bucket histogram of seconds, lock-free.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Per bucket (not cumulative); the last one is `+Inf`.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Records one value in seconds (negative values, from clock steps, count as 0).
    pub fn observe(&self, seconds: f64) {
        let v = if seconds.is_finite() {
            seconds.max(0.0)
        } else {
            0.0
        };
        let i = LATENCY_BUCKETS
            .iter()
            .position(|le| v <= *le)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((v * 1e6).round() as u64, Ordering::Relaxed);
    }

    /// Values observed.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Sum of the values observed, in seconds.
    pub fn sum(&self) -> f64 {
        self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
    }

    /// Cumulative counts per bucket bound, `+Inf` last (as rendered).
    pub fn cumulative(&self) -> Vec<(f64, u64)> {
        let mut acc = 0;
        self.buckets
            .iter()
            .enumerate()
            .map(|(i, b)| {
                acc += b.load(Ordering::Relaxed);
                (
                    LATENCY_BUCKETS.get(i).copied().unwrap_or(f64::INFINITY),
                    acc,
                )
            })
            .collect()
    }

    /// The approximate `q` quantile (0..=1), interpolated linearly inside its bucket as
    /// Prometheus' `histogram_quantile` does; `None` before the first value. Values in the
    /// `+Inf` bucket report the largest finite bound.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let cum = self.cumulative();
        let total = cum.last().map_or(0, |c| c.1);
        if total == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total as f64;
        let mut below = 0u64;
        let mut lower = 0.0;
        for (le, c) in cum {
            if c as f64 >= rank && c > below {
                if le.is_infinite() {
                    return Some(lower);
                }
                let inside = (rank - below as f64) / (c - below) as f64;
                return Some(lower + (le - lower) * inside.clamp(0.0, 1.0));
            }
            below = c;
            if le.is_finite() {
                lower = le;
            }
        }
        Some(lower)
    }
}

/// The counters of one destination. Shared (`Arc`) by the server and the reconciler.
#[derive(Debug, Default)]
pub struct DestinationMetrics {
    ingested: [AtomicU64; 4],
    rows: [AtomicU64; 4],
    requests: [[AtomicU64; 6]; ENDPOINTS.len()],
    pauses: AtomicU64,
    lists_recreated: AtomicU64,
    /// By audience: the drift the last scheduled verify found (missing, extra) and when.
    drift: std::sync::Mutex<std::collections::BTreeMap<String, Drift>>,
    latency: Histogram,
    ignored_settings: [AtomicU64; SettingName::ALL.len()],
}

impl DestinationMetrics {
    /// Counts `n` ingested events of one kind.
    pub fn ingested(&self, kind: Ingested, n: u64) {
        self.ingested[kind as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// One event stored.
    pub fn ingested_accepted(&self) {
        self.ingested(Ingested::Accepted, 1);
    }

    /// One event whose messageId was seen before.
    pub fn ingested_duplicate(&self) {
        self.ingested(Ingested::Duplicate, 1);
    }

    /// One unusable event.
    pub fn ingested_rejected(&self) {
        self.ingested(Ingested::Rejected, 1);
    }

    /// One event not meant for this destination.
    pub fn ingested_skipped(&self) {
        self.ingested(Ingested::Skipped, 1);
    }

    /// Ingested events of one kind so far.
    pub fn ingested_count(&self, kind: Ingested) -> u64 {
        self.ingested[kind as usize].load(Ordering::Relaxed)
    }

    /// Counts `n` rows with one result.
    pub fn rows(&self, result: RowResult, n: u64) {
        self.rows[result as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// Rows with one result so far.
    pub fn rows_count(&self, result: RowResult) -> u64 {
        self.rows[result as usize].load(Ordering::Relaxed)
    }

    /// Counts one finished request (endpoints other than subscribe, unsubscribe, get_lists
    /// and create_list are not counted).
    pub fn request(&self, endpoint: Endpoint, class: StatusClass) {
        if let Some(i) = endpoint_index(endpoint) {
            self.requests[i][class as usize].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Finished requests of one endpoint and class so far.
    pub fn requests_count(&self, endpoint: Endpoint, class: StatusClass) -> u64 {
        endpoint_index(endpoint).map_or(0, |i| {
            self.requests[i][class as usize].load(Ordering::Relaxed)
        })
    }

    /// Counts one pause (a 401 that stopped deliveries).
    pub fn paused(&self) {
        self.pauses.fetch_add(1, Ordering::Relaxed);
    }

    /// Pauses so far.
    pub fn pauses_count(&self) -> u64 {
        self.pauses.load(Ordering::Relaxed)
    }

    /// A list deleted in Iterable was replaced by a new one.
    pub fn list_recreated(&self) {
        self.lists_recreated.fetch_add(1, Ordering::Relaxed);
    }

    pub fn lists_recreated_count(&self) -> u64 {
        self.lists_recreated.load(Ordering::Relaxed)
    }

    /// A scheduled verify of `audience` found `missing` and `extra` members at `at_ms`.
    pub fn drift_verified(&self, audience: &str, missing: u64, extra: u64, at_ms: i64) {
        let mut d = self.drift.lock().unwrap_or_else(|p| p.into_inner());
        d.insert(
            audience.to_string(),
            Drift {
                missing,
                extra,
                verified_ms: at_ms,
            },
        );
    }

    /// What the last scheduled verify of each audience found, by audience key.
    pub fn drift(&self) -> Vec<(String, Drift)> {
        let d = self.drift.lock().unwrap_or_else(|p| p.into_inner());
        d.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    /// Counts one audience setting an accepted event carried but that could not be used.
    pub fn setting_ignored(&self, setting: SettingName) {
        self.ignored_settings[setting as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Ignored values of one audience setting so far.
    pub fn ignored_settings_count(&self, setting: SettingName) -> u64 {
        self.ignored_settings[setting as usize].load(Ordering::Relaxed)
    }

    /// Records one row's time from acceptance to Iterable's acknowledgement.
    pub fn observe_latency(&self, seconds: f64) {
        self.latency.observe(seconds);
    }

    /// The end-to-end latency histogram.
    pub fn latency(&self) -> &Histogram {
        &self.latency
    }

    /// Approximate (p50, p99) end-to-end latency in seconds, for benchmarks; `None` before
    /// the first delivery.
    pub fn latency_p50_p99(&self) -> Option<(f64, f64)> {
        Some((self.latency.quantile(0.5)?, self.latency.quantile(0.99)?))
    }
}

/// What [`render`] shows of one destination.
#[derive(Debug, Clone, Copy)]
pub struct DestinationSnapshot<'a> {
    /// The destination's name (the `destination` label).
    pub name: &'a str,
    /// Its counters.
    pub metrics: &'a DestinationMetrics,
    /// Whether deliveries are paused (a refused API key).
    pub paused: bool,
    /// Whether Iterable has been unreachable for a while.
    pub degraded: bool,
    /// The store's gauges per audience.
    pub lists: &'a [ListCounts],
    /// Now, in epoch ms: queue ages are measured from it.
    pub now_ms: i64,
    /// Rows of the event log (one per event and audience), when the store could be read.
    pub event_log_rows: Option<u64>,
}

#[cfg(test)]
mod tests;
