//! Whether Iterable can be reached: a streak of connection errors, timeouts and 5xx answers
//! that lasts longer than a threshold makes the destination "degraded" (with the last failure
//! and since when); any answer that is not a 5xx ends the streak. While it lasts, it is
//! announced (logged) once per [`REPEAT_MS`]. Pure: the caller gives the time, so tests drive
//! it with any clock.

use iterable::client::{ErrorKind, IterableError};

/// How often a degraded state that lasts is announced again: once a minute.
pub const REPEAT_MS: i64 = 60_000;

/// Whether a failed call means Iterable could not be reached: no answer (connection error,
/// timeout, broken connection) or a 5xx. A 429 or another 4xx is an answer.
pub fn unreachable(e: &IterableError) -> bool {
    matches!(
        e.kind,
        ErrorKind::Timeout | ErrorKind::Connect | ErrorKind::Transport
    ) || e.status.is_some_and(|s| s >= 500)
}

/// The current streak of failures, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Streak {
    since_ms: i64,
    reason: String,
    /// When the degraded state was last announced (logged and stored), if it was.
    announced: Option<i64>,
}

/// A destination's reachability.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reachability {
    streak: Option<Streak>,
}

impl Reachability {
    /// A call failed at `now_ms` without reaching Iterable.
    pub fn failed(&mut self, now_ms: i64, reason: String) {
        match &mut self.streak {
            Some(s) => s.reason = reason,
            None => {
                self.streak = Some(Streak {
                    since_ms: now_ms,
                    reason,
                    announced: None,
                })
            }
        }
    }

    /// Iterable answered. Returns whether a degraded state had been announced (its end is to
    /// be announced too).
    pub fn answered(&mut self) -> bool {
        self.streak.take().is_some_and(|s| s.announced.is_some())
    }

    /// The last failure and the start of the streak, when it has lasted `after_ms` at
    /// `now_ms`.
    pub fn degraded(&self, now_ms: i64, after_ms: i64) -> Option<(&str, i64)> {
        self.streak
            .as_ref()
            .filter(|s| s.announced.is_some() || now_ms.saturating_sub(s.since_ms) >= after_ms)
            .map(|s| (s.reason.as_str(), s.since_ms))
    }

    /// Whether the degraded state is to be announced now: when the streak has lasted
    /// `after_ms`, then again every [`REPEAT_MS`] while it lasts.
    pub fn announce(&mut self, now_ms: i64, after_ms: i64) -> bool {
        let Some(s) = &mut self.streak else {
            return false;
        };
        let due = match s.announced {
            None => now_ms.saturating_sub(s.since_ms) >= after_ms,
            Some(at) => now_ms.saturating_sub(at) >= REPEAT_MS,
        };
        if due {
            s.announced = Some(now_ms);
        }
        due
    }

    /// Takes up, at `now_ms`, a streak that an earlier run stored (already announced: the next
    /// announcement is [`REPEAT_MS`] later).
    pub fn restore(&mut self, now_ms: i64, since_ms: i64, reason: String) {
        self.streak = Some(Streak {
            since_ms,
            reason,
            announced: Some(now_ms),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iterable::errors::ErrorClass;
    use iterable::limiter::Endpoint;

    fn error(kind: ErrorKind, status: Option<u16>) -> IterableError {
        IterableError {
            endpoint: Endpoint::Subscribe,
            kind,
            status,
            code: None,
            msg: None,
            class: ErrorClass::Retryable,
            retry_after: None,
            attempts: 1,
            detail: None,
        }
    }

    #[test]
    fn no_answer_and_5xx_are_unreachable_other_answers_are_not() {
        let cases = [
            (ErrorKind::Connect, None, true),
            (ErrorKind::Timeout, None, true),
            (ErrorKind::Transport, None, true),
            (ErrorKind::Status, Some(500), true),
            (ErrorKind::Status, Some(503), true),
            (ErrorKind::Status, Some(429), false),
            (ErrorKind::Status, Some(400), false),
            (ErrorKind::Status, Some(401), false),
            (ErrorKind::Decode, None, false),
        ];
        for (kind, status, want) in cases {
            assert_eq!(
                unreachable(&error(kind.clone(), status)),
                want,
                "{kind:?} {status:?}"
            );
        }
    }

    #[test]
    fn a_streak_longer_than_the_threshold_is_degraded_until_an_answer() {
        let mut r = Reachability::default();
        assert_eq!(r.degraded(0, 60_000), None);
        r.failed(1_000, "first".into());
        r.failed(30_000, "second".into());
        assert_eq!(r.degraded(60_999, 60_000), None, "59.999 s of failures");
        assert!(!r.announce(60_999, 60_000));
        assert_eq!(r.degraded(61_000, 60_000), Some(("second", 1_000)));
        assert!(
            r.announce(61_000, 60_000),
            "announced when it lasted long enough"
        );
        assert!(!r.announce(61_000, 60_000));
        assert!(!r.announce(90_000, 60_000));
        r.failed(95_000, "third".into());
        assert_eq!(r.degraded(95_000, 60_000), Some(("third", 1_000)));
        assert!(!r.announce(120_999, 60_000), "not twice within a minute");
        assert!(r.announce(121_000, 60_000), "again a minute later");
        assert!(!r.announce(150_000, 60_000));
        assert!(r.announce(181_000, 60_000), "once a minute while it lasts");
        assert!(r.answered(), "the end of an announced streak is announced");
        assert_eq!(r.degraded(200_000, 60_000), None);
        // A short streak ends unannounced.
        r.failed(300_000, "blip".into());
        assert!(!r.answered());
        assert_eq!(r.degraded(900_000, 60_000), None);
    }

    #[test]
    fn a_restored_streak_is_degraded_at_once() {
        let mut r = Reachability::default();
        r.restore(5_001, 5_000, "stored".into());
        assert_eq!(r.degraded(5_001, 60_000), Some(("stored", 5_000)));
        assert!(
            !r.announce(60_000, 60_000),
            "already announced by the earlier run"
        );
        assert!(r.announce(65_001, 60_000), "a minute after the restart");
        assert!(r.answered());
    }
}
