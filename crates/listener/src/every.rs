//! Logging that cannot flood: an event that may repeat thousands of times a second (an accept
//! failing for want of descriptors, connections refused at the cap) is reported at most once
//! per interval, with how many times it happened (pure).

use std::time::Duration;

use tokio::time::Instant;

/// How often a repeating condition is logged at most.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Counts occurrences of one event and says when to report them.
#[derive(Debug)]
pub(crate) struct Every {
    interval: Duration,
    last: Option<Instant>,
    count: u64,
}

impl Every {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            last: None,
            count: 0,
        }
    }

    /// Records one occurrence at `now`. Returns how many occurred since the last report (this
    /// one included) when it is time to report again: at the first, then once per interval.
    pub fn record(&mut self, now: Instant) -> Option<u64> {
        self.count += 1;
        let due = self
            .last
            .is_none_or(|last| now.saturating_duration_since(last) >= self.interval);
        if !due {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_the_first_then_once_per_interval_with_a_count() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut e = Every::new(ms(1000));
        let got: Vec<Option<u64>> = [0, 1, 2, 500, 999, 1000, 1001, 5000, 5001]
            .into_iter()
            .map(|t| e.record(t0 + ms(t)))
            .collect();
        assert_eq!(
            got,
            [
                Some(1),
                None,
                None,
                None,
                None,
                Some(5),
                None,
                Some(2),
                None
            ]
        );
    }

    #[test]
    fn a_million_failures_make_few_lines() {
        let t0 = Instant::now();
        let mut e = Every::new(LOG_INTERVAL);
        let lines = (0..1_000_000u64)
            .filter_map(|i| e.record(t0 + Duration::from_micros(i * 50)))
            .count();
        // 50 s of failures every 50 µs: the first line, then one per 10 s.
        assert_eq!(lines, 5);
    }
}
