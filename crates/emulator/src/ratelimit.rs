//! Per-project, per-endpoint leaky buckets (GCRA, the "leaky bucket as a meter").
//! A limit is N requests per second or minute with a bucket depth; excess requests get 429.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::endpoint::Endpoint;

/// A limit of `count` requests per `period`, admitting bursts of up to `burst` requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub count: u32,
    pub period: Duration,
    pub burst: u32,
}

impl RateLimit {
    /// `count` per second. The bucket holds a tenth of a second's worth (at least one), so the
    /// accepted rate over any window of a second or more stays within 10% of the limit.
    pub fn per_second(count: u32) -> Self {
        Self {
            count,
            period: Duration::from_secs(1),
            burst: count.div_ceil(10).max(1),
        }
    }

    /// `count` per minute. The bucket holds the whole minute's count, as recorded for Iterable's
    /// per-minute limits (the request after the count is the first to fail).
    pub fn per_minute(count: u32) -> Self {
        Self {
            count,
            period: Duration::from_secs(60),
            burst: count.max(1),
        }
    }

    /// Nanoseconds between two requests at the steady rate.
    fn interval_nanos(&self) -> u64 {
        (self.period.as_nanos() / u128::from(self.count.max(1))) as u64
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = if self.period == Duration::from_secs(60) {
            "min"
        } else {
            "s"
        };
        write!(f, "{}/{},burst={}", self.count, unit, self.burst)
    }
}

/// A rate-limit spec that could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "invalid rate limit {spec:?}: {reason} (expected e.g. \"20/s\", \"5/min\", \"20/s,burst=5\" or \"off\")"
)]
pub struct BadRateLimit {
    pub spec: String,
    pub reason: &'static str,
}

/// A configured limit: a rate, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitSetting(pub Option<RateLimit>);

impl FromStr for LimitSetting {
    type Err = BadRateLimit;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let bad = |reason| BadRateLimit {
            spec: spec.to_string(),
            reason,
        };
        let s = spec.trim();
        if s.eq_ignore_ascii_case("off") || s.eq_ignore_ascii_case("none") {
            return Ok(LimitSetting(None));
        }
        let (rate, burst) = match s.split_once(',') {
            Some((rate, opt)) => {
                let b = opt
                    .trim()
                    .strip_prefix("burst=")
                    .ok_or_else(|| bad("the only option is burst=N"))?;
                let b: u32 = b.parse().map_err(|_| bad("burst is not a whole number"))?;
                if b == 0 {
                    return Err(bad("burst must be at least 1"));
                }
                (rate.trim(), Some(b))
            }
            None => (s, None),
        };
        let (count, unit) = rate
            .split_once('/')
            .ok_or_else(|| bad("missing '/' between count and unit"))?;
        let count: u32 = count
            .trim()
            .parse()
            .map_err(|_| bad("count is not a whole number"))?;
        if count == 0 {
            return Err(bad("count must be at least 1 (use \"off\" for no limit)"));
        }
        let mut limit = match unit.trim() {
            "s" | "sec" | "second" => RateLimit::per_second(count),
            "m" | "min" | "minute" => RateLimit::per_minute(count),
            _ => return Err(bad("unit must be s or min")),
        };
        if let Some(b) = burst {
            limit.burst = b;
        }
        Ok(LimitSetting(Some(limit)))
    }
}

/// The outcome of asking the limiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Over the limit; the bucket has room again after this long.
    Deny {
        retry_after: Duration,
    },
}

/// The buckets of all projects and endpoints.
#[derive(Debug, Default)]
pub struct RateLimiter {
    limits: HashMap<Endpoint, RateLimit>,
    /// Theoretical arrival time per bucket, in clock nanoseconds.
    tat: HashMap<(u64, Endpoint), u64>,
}

impl RateLimiter {
    /// A limiter with the given limit per endpoint (endpoints absent from the map are unlimited).
    pub fn new(limits: HashMap<Endpoint, RateLimit>) -> Self {
        Self {
            limits,
            tat: HashMap::new(),
        }
    }

    pub fn limit(&self, endpoint: Endpoint) -> Option<RateLimit> {
        self.limits.get(&endpoint).copied()
    }

    /// Counts one request of `project` to `endpoint` at `now` (nanoseconds).
    pub fn check(&mut self, project: u64, endpoint: Endpoint, now: u64) -> Decision {
        let Some(limit) = self.limits.get(&endpoint) else {
            return Decision::Allow;
        };
        let interval = limit.interval_nanos();
        let tolerance = interval * u64::from(limit.burst.saturating_sub(1));
        let tat = self.tat.entry((project, endpoint)).or_insert(0);
        let start = (*tat).max(now);
        if start - now > tolerance {
            Decision::Deny {
                retry_after: Duration::from_nanos(start - tolerance - now),
            }
        } else {
            *tat = start + interval;
            Decision::Allow
        }
    }

    /// Empties every bucket.
    pub fn reset(&mut self) {
        self.tat.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn parse_specs() {
        type CountSecsBurst = Option<(u32, u64, u32)>;
        let ok: &[(&str, CountSecsBurst)] = &[
            ("20/s", Some((20, 1, 2))),
            ("200/sec", Some((200, 1, 20))),
            ("5/min", Some((5, 60, 5))),
            ("1/s", Some((1, 1, 1))),
            ("20/s,burst=5", Some((20, 1, 5))),
            (" 5 / minute ", Some((5, 60, 5))),
            ("off", None),
        ];
        for (spec, want) in ok {
            let got = spec.parse::<LimitSetting>().unwrap().0;
            let got = got.map(|l| (l.count, l.period.as_secs(), l.burst));
            assert_eq!(got, *want, "{spec}");
        }
        for bad in ["", "20", "x/s", "0/s", "20/h", "20/s,b=1", "20/s,burst=0"] {
            let err = bad.parse::<LimitSetting>().unwrap_err();
            assert!(err.to_string().contains(bad), "{err}");
        }
    }

    fn limiter(e: Endpoint, l: RateLimit) -> RateLimiter {
        RateLimiter::new(HashMap::from([(e, l)]))
    }

    #[test]
    fn per_minute_allows_count_then_denies_until_drained() {
        let mut rl = limiter(Endpoint::GetUsers, RateLimit::per_minute(5));
        let t0 = 1_000 * SEC;
        for _ in 0..5 {
            assert_eq!(rl.check(1, Endpoint::GetUsers, t0), Decision::Allow);
        }
        let Decision::Deny { retry_after } = rl.check(1, Endpoint::GetUsers, t0) else {
            panic!("6th request in the same instant must be denied");
        };
        assert_eq!(retry_after, Duration::from_secs(12));
        assert!(matches!(
            rl.check(1, Endpoint::GetUsers, t0 + 11 * SEC),
            Decision::Deny { .. }
        ));
        assert_eq!(
            rl.check(1, Endpoint::GetUsers, t0 + 12 * SEC),
            Decision::Allow
        );
        // Other projects and endpoints have their own buckets.
        assert_eq!(rl.check(2, Endpoint::GetUsers, t0), Decision::Allow);
        assert_eq!(rl.check(1, Endpoint::Subscribe, t0), Decision::Allow);
    }

    #[test]
    fn sustained_overload_is_held_to_the_limit() {
        // 5x the limit for 10 s: accepted must stay within 10% of 20/s.
        let mut rl = limiter(Endpoint::Subscribe, RateLimit::per_second(20));
        let t0 = 50 * SEC;
        let step = SEC / 100;
        let accepted = (0..1000)
            .filter(|i| rl.check(7, Endpoint::Subscribe, t0 + i * step) == Decision::Allow)
            .count();
        assert!((200..=220).contains(&accepted), "accepted {accepted}");
    }

    #[test]
    fn reset_empties_buckets() {
        let mut rl = limiter(Endpoint::ListSize, RateLimit::per_minute(1));
        assert_eq!(rl.check(1, Endpoint::ListSize, SEC), Decision::Allow);
        assert!(matches!(
            rl.check(1, Endpoint::ListSize, SEC),
            Decision::Deny { .. }
        ));
        rl.reset();
        assert_eq!(rl.check(1, Endpoint::ListSize, SEC), Decision::Allow);
    }

    #[test]
    fn unlimited_endpoints_always_allow() {
        let mut rl = RateLimiter::default();
        assert!((0..10_000).all(|_| rl.check(1, Endpoint::Subscribe, 0) == Decision::Allow));
    }
}
