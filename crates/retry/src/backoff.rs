//! How retries are spaced: exponential backoff with a cap and **one jitter formula**
//! ([`jitter`]), and `Retry-After` honoured when Iterable sends it (it has not been seen to,
//! but a proxy may). The randomness is a `fraction` in [0, 1) that callers pass in
//! ([`random_fraction`] in production), so that every delay is a pure function of it.
//!
//! Two schedules use it, with different bases and how much of each delay is kept:
//! - the client's own tries of one call ([`Backoff`]: 200 ms doubling to 30 s, full jitter, so
//!   that the many callers a 429 storm sends back spread over the whole window);
//! - the stored retries of a row (the reconciler's `retry_base` doubling to `retry_max`, half
//!   of each delay kept, so that a row retried in minutes never comes back in seconds).

use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

/// The one jitter formula: a delay drawn uniformly from `[ceiling × kept, ceiling]` by
/// `fraction` in [0, 1). `kept` is the share of the ceiling that is never jittered away: 0
/// is "full jitter", 0.5 "equal jitter".
pub fn jitter(ceiling: Duration, kept: f64, fraction: f64) -> Duration {
    let fixed = ceiling.mul_f64(kept.clamp(0.0, 1.0));
    fixed + (ceiling - fixed).mul_f64(fraction.clamp(0.0, 1.0))
}

/// An exponential schedule: `base × 2^(failures − 1)`, capped, jittered with [`jitter`], and
/// never shorter than a `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    pub base: Duration,
    pub cap: Duration,
    /// The share of each delay kept whatever the jitter (see [`jitter`]).
    pub kept: f64,
}

impl Schedule {
    /// The delay after the `failures`th failure in a row (1 for the first).
    pub fn delay(&self, failures: u32, retry_after: Option<Duration>, fraction: f64) -> Duration {
        let exp = failures.saturating_sub(1).min(30);
        let ceiling = self.base.saturating_mul(1u32 << exp).min(self.cap);
        jitter(ceiling, self.kept, fraction).max(retry_after.unwrap_or_default())
    }
}

/// How the client spaces its own tries of one call, and when it stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay's upper bound.
    pub base: Duration,
    /// No delay is longer than this (except a longer `Retry-After`).
    pub cap: Duration,
    /// Attempts in all, the first included.
    pub max_attempts: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(200),
            cap: Duration::from_secs(30),
            max_attempts: 10,
        }
    }
}

/// A uniformly random fraction in [0, 1), from the standard library's random hasher keys.
pub fn random_fraction() -> f64 {
    let r = RandomState::new().hash_one(0u8);
    (r >> 11) as f64 / (1u64 << 53) as f64
}

impl Backoff {
    /// The schedule of these tries: full jitter.
    pub fn schedule(&self) -> Schedule {
        Schedule {
            base: self.base,
            cap: self.cap,
            kept: 0.0,
        }
    }

    /// The delay before retry number `retry` (1 for the first retry): full jitter over
    /// `min(cap, base * 2^(retry-1))`, scaled by `fraction` in [0, 1), and never shorter than
    /// a `retry_after` from the server.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>, fraction: f64) -> Duration {
        self.schedule().delay(retry, retry_after, fraction)
    }
}

/// Reads a `Retry-After` header: delta-seconds (HTTP dates are not used by Iterable's stack).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let secs: f64 = value.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(3600.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_exponentially_up_to_the_cap() {
        let b = Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(2),
            max_attempts: 10,
        };
        let top = |n| b.delay(n, None, 0.999_999);
        assert_eq!(top(1).as_millis(), 99);
        assert_eq!(top(2).as_millis(), 199);
        assert_eq!(top(3).as_millis(), 399);
        assert_eq!(top(6).as_millis(), 1999);
        assert_eq!(top(60).as_millis(), 1999, "capped, no overflow");
        assert_eq!(
            b.delay(3, None, 0.0),
            Duration::ZERO,
            "full jitter starts at zero"
        );
        assert_eq!(
            b.delay(3, Some(Duration::from_secs(60)), 0.5),
            Duration::from_secs(60)
        );
    }

    #[test]
    fn one_formula_full_or_equal_jitter() {
        let c = Duration::from_secs(10);
        let cases = [
            (0.0, 0.0, 0),
            (0.0, 0.5, 5_000),
            (0.5, 0.0, 5_000),
            (0.5, 0.5, 7_500),
            (0.5, 1.0, 10_000),
            (1.0, 0.3, 10_000),
            // Out-of-range inputs are clamped.
            (-1.0, 2.0, 10_000),
        ];
        for (kept, fraction, ms) in cases {
            assert_eq!(
                jitter(c, kept, fraction),
                Duration::from_millis(ms),
                "kept {kept}, fraction {fraction}"
            );
        }
        // A Retry-After longer than the schedule wins; a shorter one does not shorten it.
        let s = Schedule {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(60),
            kept: 0.5,
        };
        assert_eq!(s.delay(3, None, 0.0), Duration::from_secs(2));
        assert_eq!(
            s.delay(3, Some(Duration::from_secs(9)), 0.0),
            Duration::from_secs(9)
        );
        assert_eq!(
            s.delay(3, Some(Duration::from_secs(1)), 0.0),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn fractions_are_spread() {
        let v: Vec<f64> = (0..1000).map(|_| random_fraction()).collect();
        assert!(v.iter().all(|f| (0.0..1.0).contains(f)));
        let low = v.iter().filter(|f| **f < 0.5).count();
        assert!((350..650).contains(&low), "{low}");
    }

    #[test]
    fn retry_after_values() {
        assert_eq!(parse_retry_after("1"), Some(Duration::from_secs(1)));
        assert_eq!(
            parse_retry_after(" 2.5 "),
            Some(Duration::from_millis(2500))
        );
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }
}
