//! The last hour of each destination and audience, once a minute, in this instance's memory
//! (not in the store: another instance keeps its own, and a restart starts afresh).
//!
//! Per destination: events ingested, rows delivered and rows rejected during each minute, from
//! this instance's counters ([`sync::DestinationMetrics`]). Per audience: its members, pending
//! and rejected keys at each minute, from the store's figures (the same for every instance).
//! Each series is a ring of [`POINTS`] points; [`run`] records one every [`EVERY`].

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sync::ListCounts;
use sync::metrics::{Ingested, RowResult};
use tokio::sync::watch;

use super::views::{AudiencePoint, Point};
use crate::app::AppState;

/// Points kept per series: an hour of minutes.
pub const POINTS: usize = 60;

/// How often a point is recorded.
pub const EVERY: Duration = Duration::from_secs(60);

/// At most so many audiences have a series (the first ones by destination and key); more
/// are not sampled, so that memory stays bounded whatever the number of audiences.
pub const MAX_AUDIENCES: usize = 10_000;

/// A destination's counters at one sample (totals since the instance started).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub ingested: u64,
    pub delivered: u64,
    pub rejected: u64,
}

impl Counters {
    /// The counters of `m` now.
    pub fn of(m: &sync::DestinationMetrics) -> Self {
        Self {
            ingested: m.ingested_count(Ingested::Accepted),
            delivered: m.rows_count(RowResult::Delivered),
            rejected: m.rows_count(RowResult::Rejected),
        }
    }
}

fn push<T>(ring: &mut VecDeque<T>, v: T) {
    if ring.len() == POINTS {
        ring.pop_front();
    }
    ring.push_back(v);
}

#[derive(Debug, Default)]
struct DestinationSeries {
    last: Counters,
    ingested: VecDeque<Point>,
    delivered: VecDeque<Point>,
    rejected: VecDeque<Point>,
}

/// A destination's three series, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DestinationHistory {
    pub ingested: Vec<Point>,
    pub delivered: Vec<Point>,
    pub rejected: Vec<Point>,
}

#[derive(Debug, Default)]
struct Inner {
    destinations: BTreeMap<String, DestinationSeries>,
    audiences: BTreeMap<(String, String), VecDeque<AudiencePoint>>,
}

/// The series of every destination and audience.
#[derive(Debug, Default)]
pub struct History {
    inner: Mutex<Inner>,
}

impl History {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Nothing here panics while holding the lock; a poisoned one holds whole points.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records the minute ending at `at_ms` of destination `name`: how much its counters grew
    /// since the last sample (since the start, for the first), and each audience's figures.
    /// Audiences no longer in `lists` lose their series; with no `lists` (the figures could
    /// not be read), the audiences keep theirs as they were.
    pub fn record(&self, at_ms: i64, name: &str, now: Counters, lists: Option<&[ListCounts]>) {
        let mut inner = self.lock();
        let d = inner.destinations.entry(name.to_string()).or_default();
        let grew = |now: u64, last: u64| now.saturating_sub(last);
        push(
            &mut d.ingested,
            Point {
                at_ms,
                value: grew(now.ingested, d.last.ingested),
            },
        );
        push(
            &mut d.delivered,
            Point {
                at_ms,
                value: grew(now.delivered, d.last.delivered),
            },
        );
        push(
            &mut d.rejected,
            Point {
                at_ms,
                value: grew(now.rejected, d.last.rejected),
            },
        );
        d.last = now;
        let Some(lists) = lists else { return };
        inner
            .audiences
            .retain(|(dest, aud), _| dest != name || lists.iter().any(|l| &l.audience_key == aud));
        for l in lists {
            let key = (name.to_string(), l.audience_key.clone());
            if !inner.audiences.contains_key(&key) && inner.audiences.len() >= MAX_AUDIENCES {
                continue;
            }
            push(
                inner.audiences.entry(key).or_default(),
                AudiencePoint {
                    at_ms,
                    members: l.members,
                    pending: l.pending,
                    rejected: l.rejected,
                },
            );
        }
    }

    /// A destination's series (empty before the first sample).
    pub fn destination(&self, name: &str) -> DestinationHistory {
        let inner = self.lock();
        inner
            .destinations
            .get(name)
            .map(|d| DestinationHistory {
                ingested: d.ingested.iter().copied().collect(),
                delivered: d.delivered.iter().copied().collect(),
                rejected: d.rejected.iter().copied().collect(),
            })
            .unwrap_or_default()
    }

    /// An audience's series (empty before the first sample).
    pub fn audience(&self, destination: &str, audience: &str) -> Vec<AudiencePoint> {
        let inner = self.lock();
        inner
            .audiences
            .get(&(destination.to_string(), audience.to_string()))
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }
}

/// Records one sample of every destination, with the store's figures of the snapshot (at most
/// a second old); when the figures cannot be read, the audiences keep their series as they
/// were.
pub async fn sample(state: &AppState) {
    let figures = crate::status::figures(state).await;
    let at_ms = state.now_ms();
    for (i, d) in state.destinations.iter().enumerate() {
        let lists = match &*figures {
            Ok(f) => f.get(i).map(|f| &f.lists[..]),
            Err(_) => None,
        };
        state
            .history
            .record(at_ms, &d.config.name, Counters::of(&d.metrics), lists);
    }
}

/// Records a sample every [`EVERY`] until `shutdown` (the first a minute after the start).
pub async fn run(state: Arc<AppState>, mut shutdown: watch::Receiver<bool>) {
    let start = tokio::time::Instant::now() + EVERY;
    let mut tick = tokio::time::interval_at(start, EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tick.tick() => sample(&state).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(key: &str, members: u64) -> ListCounts {
        ListCounts {
            audience_key: key.into(),
            list_id: Some(1),
            members,
            pending: 2,
            retrying: 0,
            rejected: 1,
            oldest_pending_ms: None,
            last_delivery_ms: None,
        }
    }

    fn values(points: &[Point]) -> Vec<u64> {
        points.iter().map(|p| p.value).collect()
    }

    #[test]
    fn a_minute_holds_what_the_counters_grew_and_an_hour_is_kept() {
        let h = History::default();
        let c = |n: u64| Counters {
            ingested: n * 10,
            delivered: n * 5,
            rejected: n,
        };
        h.record(
            60_000,
            "prod",
            c(1),
            Some(&[list("vip", 3), list("beta", 1)]),
        );
        h.record(120_000, "prod", c(3), Some(&[list("vip", 4)]));
        let d = h.destination("prod");
        assert_eq!(values(&d.ingested), [10, 20]);
        assert_eq!(values(&d.delivered), [5, 10]);
        assert_eq!(values(&d.rejected), [1, 2]);
        assert_eq!(d.ingested[1].at_ms, 120_000);
        let vip = h.audience("prod", "vip");
        assert_eq!(
            vip.iter().map(|p| (p.at_ms, p.members)).collect::<Vec<_>>(),
            [(60_000, 3), (120_000, 4)]
        );
        assert!(
            h.audience("prod", "beta").is_empty(),
            "gone with its audience"
        );
        // Unreadable figures: the counters go on, the audiences keep their series.
        h.record(180_000, "prod", c(3), None);
        assert_eq!(values(&h.destination("prod").ingested), [10, 20, 0]);
        assert_eq!(h.audience("prod", "vip").len(), 2);

        for minute in 4..(4 + POINTS as i64) {
            h.record(minute * 60_000, "prod", c(3), Some(&[list("vip", 4)]));
        }
        let d = h.destination("prod");
        assert_eq!(d.ingested.len(), POINTS);
        assert_eq!(d.ingested[0].at_ms, 4 * 60_000, "the oldest points went");
        assert_eq!(h.audience("prod", "vip").len(), POINTS);
        assert_eq!(h.destination("other"), DestinationHistory::default());
    }
}
