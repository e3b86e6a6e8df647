//! Retry delays: exponential backoff with full jitter and a cap, and `Retry-After` honoured
//! when Iterable sends it (it has not been seen to, but a proxy may).

use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

/// How retries are spaced and when they stop.
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
    /// The delay before retry number `retry` (1 for the first retry): full jitter over
    /// `min(cap, base * 2^(retry-1))`, scaled by `fraction` in [0, 1). A `retry_after` from the
    /// server wins when given.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>, fraction: f64) -> Duration {
        if let Some(ra) = retry_after {
            return ra;
        }
        let exp = retry.saturating_sub(1).min(30);
        let ceiling = self.base.saturating_mul(1u32 << exp).min(self.cap);
        ceiling.mul_f64(fraction.clamp(0.0, 1.0))
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
