//! The decision: Iterable answered X, so this row is delivered, rejected, retried at T, or the
//! destination pauses. One function, [`decide`], for every row the reconciler sends or waits
//! for; and [`again`], the same policy for the client's own tries of one call. Pure: the
//! caller passes the time and the random fraction.
//!
//! | Iterable's answer | the row |
//! |---|---|
//! | 200, the row applied (or an unsubscribe of a user Iterable does not know) | delivered |
//! | 200, the row in a `failedUpdates` bucket (or forgotten) | rejected, with the bucket |
//! | 401 | the destination pauses; the row stays pending, its attempts untouched |
//! | 400 `invalidListId`, list created by this process moments ago | retried after `fresh_list_retry` |
//! | 400 `invalidListId`, any other list | retried after `missing_list_retry` |
//! | 413 for a request of more than one row | the request is split in halves |
//! | any other 4xx, 501 | rejected, with Iterable's code and message |
//! | 429, 5xx, 408, 423, timeouts, connection errors, an unreadable 2xx | retried after the stored schedule (`retry_base × 2^attempts`, capped at `retry_max`, half kept) |
//! | the list could not be found or created: 401 | the destination pauses |
//! | the list could not be found or created: anything else | retried after the stored schedule |
//!
//! Every delay is at least a `Retry-After` and at least 1 ms, so a retried row is never due
//! in the pass that retried it.

use std::time::Duration;

use crate::backoff::{Backoff, Schedule, jitter};
use crate::class::ErrorClass;

/// A failed call, as the policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub class: ErrorClass,
    pub status: Option<u16>,
    /// Iterable answered with a status: not a lost connection, a timeout or an unreadable body.
    pub answered: bool,
    pub retry_after: Option<Duration>,
    /// Iterable's own words: `code: msg (HTTP status)`.
    pub words: String,
    /// The whole failure, as the client tells it.
    pub text: String,
}

/// What Iterable answered, for one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer<'a> {
    /// HTTP 200: the row was applied (`refused: None`), or refused in that `failedUpdates`
    /// bucket (e.g. `invalidEmails`, `forgottenEmails`).
    Taken { refused: Option<&'a str> },
    /// The call failed, after the client's own tries.
    Failed(&'a Failure),
}

/// Where the list of a request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Created by this process moments ago: Iterable may not know it yet.
    Fresh,
    /// The registry's list of the audience.
    Registry,
    /// A registry list found deleted in Iterable and replaced by a new one (the rows go to
    /// the new one soon).
    Replaced,
    /// The events' external audience id.
    Explicit,
}

/// What the rows waited for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call<'a> {
    /// A subscribe or unsubscribe request of `rows` rows to `list_id`.
    Request {
        list_id: i64,
        audience: &'a str,
        origin: Origin,
        rows: usize,
    },
    /// Finding or creating the audience's list.
    ListLookup { audience: &'a str },
}

/// What becomes of a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    /// Refused for good; `reason` is Iterable's bucket or words.
    Rejected {
        reason: String,
    },
    /// Try again at `at_ms` (epoch ms).
    RetryAt {
        at_ms: i64,
        reason: String,
    },
    /// The key is refused: the destination pauses, the row stays as it was. Concerns the whole
    /// request.
    Pause {
        reason: String,
    },
    /// Too large for the server: send the request in halves. Concerns the whole request.
    Split,
}

/// The stored-retry side of the policy: the reconciler's delays.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// First stored-retry delay, doubled per failed attempt (half of it jittered).
    pub retry_base: Duration,
    /// Longest stored-retry delay.
    pub retry_max: Duration,
    /// After `invalidListId` on a list created moments ago.
    pub fresh_list_retry: Duration,
    /// After `invalidListId` on any other list (probably deleted: an operator's matter).
    pub missing_list_retry: Duration,
}

/// Share of a stored-retry delay that is never jittered away.
const STORED_KEPT: f64 = 0.5;

impl Policy {
    /// The delay after a row's next failure, when it failed `attempts` times before.
    pub fn retry_delay(
        &self,
        attempts: u32,
        retry_after: Option<Duration>,
        fraction: f64,
    ) -> Duration {
        let s = Schedule {
            base: self.retry_base,
            cap: self.retry_max,
            kept: STORED_KEPT,
        };
        s.delay(attempts.saturating_add(1), retry_after, fraction)
            .max(Duration::from_millis(1))
    }

    /// A fixed delay, jittered like the stored schedule.
    fn fixed_delay(&self, d: Duration, fraction: f64) -> Duration {
        jitter(d, STORED_KEPT, fraction).max(Duration::from_millis(1))
    }
}

fn at(now_ms: i64, d: Duration) -> i64 {
    now_ms.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// What becomes of a row that failed `attempts` times before, now that Iterable answered.
/// `fraction` in [0, 1) is the jitter's randomness; pass one per request, so that the rows of
/// a request stay together.
pub fn decide(
    policy: &Policy,
    answer: Answer<'_>,
    call: Call<'_>,
    attempts: u32,
    now_ms: i64,
    fraction: f64,
) -> Verdict {
    let f = match answer {
        Answer::Taken { refused: None } => return Verdict::Delivered,
        Answer::Taken {
            refused: Some(bucket),
        } => {
            return Verdict::Rejected {
                reason: bucket.to_string(),
            };
        }
        Answer::Failed(f) => f,
    };
    if f.class == ErrorClass::Authentication {
        return Verdict::Pause {
            reason: f.text.clone(),
        };
    }
    let retry = |delay: Duration, reason: String| Verdict::RetryAt {
        at_ms: at(now_ms, delay),
        reason,
    };
    let stored = || policy.retry_delay(attempts, f.retry_after, fraction);
    let (list_id, audience, origin, rows) = match call {
        Call::ListLookup { audience } => {
            return retry(
                stored(),
                format!(
                    "cannot find or create the list of audience {audience:?}: {}",
                    f.text
                ),
            );
        }
        Call::Request {
            list_id,
            audience,
            origin,
            rows,
        } => (list_id, audience, origin, rows),
    };
    match f.class {
        ErrorClass::InvalidList => {
            let words = &f.words;
            let (delay, reason) = match origin {
                Origin::Fresh => (
                    policy.fresh_list_retry,
                    format!(
                        "list {list_id} was created moments ago and Iterable does not know it yet ({words})"
                    ),
                ),
                Origin::Replaced => (
                    policy.fresh_list_retry,
                    format!(
                        "list {list_id} of audience {audience:?} was deleted in Iterable and is replaced by a new list; tried again on it ({words})"
                    ),
                ),
                Origin::Registry => (
                    policy.missing_list_retry,
                    format!(
                        "list {list_id} of audience {audience:?} no longer exists in Iterable (deleted?); it is not re-created automatically ({words})"
                    ),
                ),
                Origin::Explicit => (
                    policy.missing_list_retry,
                    format!(
                        "list {list_id}, named by the events' external audience id, does not exist in Iterable ({words})"
                    ),
                ),
            };
            retry(policy.fixed_delay(delay, fraction), reason)
        }
        ErrorClass::Permanent if f.status == Some(413) && rows > 1 => Verdict::Split,
        ErrorClass::Permanent if f.answered => Verdict::Rejected {
            reason: f.words.clone(),
        },
        // Retryable, or a 2xx whose body could not be read (it may have worked).
        _ => retry(stored(), f.text.clone()),
    }
}

/// The client's own tries of one call: after failed try number `tries` (1 for the first),
/// how long to wait before the next one, or `None` to give up and report the failure. Only
/// retryable failures are tried again, and only calls that may be (`retry`).
pub fn again(
    backoff: &Backoff,
    class: ErrorClass,
    retry_after: Option<Duration>,
    tries: u32,
    retry: bool,
    fraction: f64,
) -> Option<Duration> {
    (retry && class == ErrorClass::Retryable && tries < backoff.max_attempts)
        .then(|| backoff.delay(tries, retry_after, fraction))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000_000;

    fn policy() -> Policy {
        Policy {
            retry_base: Duration::from_secs(5),
            retry_max: Duration::from_secs(900),
            fresh_list_retry: Duration::from_secs(2),
            missing_list_retry: Duration::from_secs(3600),
        }
    }

    fn failure(class: ErrorClass, status: Option<u16>, answered: bool) -> Failure {
        Failure {
            class,
            status,
            answered,
            retry_after: None,
            words: "W".into(),
            text: "T".into(),
        }
    }

    fn request(origin: Origin, rows: usize) -> Call<'static> {
        Call::Request {
            list_id: 7,
            audience: "vip",
            origin,
            rows,
        }
    }

    fn retry_at(ms: i64, reason: &str) -> Verdict {
        Verdict::RetryAt {
            at_ms: NOW + ms,
            reason: reason.into(),
        }
    }

    /// An answer of the table (it owns its failure).
    enum Given {
        Taken(Option<&'static str>),
        Failed(Failure),
    }

    #[test]
    fn every_answer_has_one_verdict() {
        use ErrorClass::*;
        let sent = request(Origin::Registry, 10);
        let cases: Vec<(Given, Call<'_>, u32, Verdict)> = vec![
            (Given::Taken(None), sent, 0, Verdict::Delivered),
            (
                Given::Taken(Some("invalidEmails")),
                sent,
                3,
                Verdict::Rejected {
                    reason: "invalidEmails".into(),
                },
            ),
            (
                Given::Failed(failure(Authentication, Some(401), true)),
                sent,
                0,
                Verdict::Pause { reason: "T".into() },
            ),
            (
                Given::Failed(failure(Authentication, Some(401), true)),
                Call::ListLookup { audience: "vip" },
                0,
                Verdict::Pause { reason: "T".into() },
            ),
            // Stored schedule: 5 s × 2^attempts, half kept; fraction 0.5 gives 3/4 of it.
            (
                Given::Failed(failure(Retryable, Some(429), true)),
                sent,
                0,
                retry_at(3_750, "T"),
            ),
            (
                Given::Failed(failure(Retryable, None, false)),
                sent,
                2,
                retry_at(15_000, "T"),
            ),
            (
                Given::Failed(failure(Retryable, Some(503), true)),
                sent,
                20,
                retry_at(675_000, "T"),
            ),
            (
                Given::Failed(failure(Permanent, None, false)),
                sent,
                0,
                retry_at(3_750, "T"),
            ),
            (
                Given::Failed(failure(Permanent, Some(400), true)),
                sent,
                0,
                Verdict::Rejected { reason: "W".into() },
            ),
            (
                Given::Failed(failure(Permanent, Some(413), true)),
                sent,
                0,
                Verdict::Split,
            ),
            (
                Given::Failed(failure(Permanent, Some(413), true)),
                request(Origin::Registry, 1),
                0,
                Verdict::Rejected { reason: "W".into() },
            ),
            (
                Given::Failed(failure(InvalidList, Some(400), true)),
                request(Origin::Fresh, 1),
                0,
                retry_at(
                    1_500,
                    "list 7 was created moments ago and Iterable does not know it yet (W)",
                ),
            ),
            (
                Given::Failed(failure(InvalidList, Some(400), true)),
                sent,
                0,
                retry_at(
                    2_700_000,
                    "list 7 of audience \"vip\" no longer exists in Iterable (deleted?); it is \
                     not re-created automatically (W)",
                ),
            ),
            (
                Given::Failed(failure(InvalidList, Some(400), true)),
                request(Origin::Replaced, 1),
                0,
                retry_at(
                    1_500,
                    "list 7 of audience \"vip\" was deleted in Iterable and is replaced by a \
                     new list; tried again on it (W)",
                ),
            ),
            (
                Given::Failed(failure(InvalidList, Some(400), true)),
                request(Origin::Explicit, 1),
                0,
                retry_at(
                    2_700_000,
                    "list 7, named by the events' external audience id, does not exist in \
                     Iterable (W)",
                ),
            ),
            (
                Given::Failed(failure(Retryable, Some(500), true)),
                Call::ListLookup { audience: "vip" },
                1,
                retry_at(
                    7_500,
                    "cannot find or create the list of audience \"vip\": T",
                ),
            ),
        ];
        for (i, (given, call, attempts, want)) in cases.into_iter().enumerate() {
            let answer = match &given {
                Given::Taken(refused) => Answer::Taken { refused: *refused },
                Given::Failed(f) => Answer::Failed(f),
            };
            assert_eq!(
                decide(&policy(), answer, call, attempts, NOW, 0.5),
                want,
                "case {i}: {answer:?} {call:?}"
            );
        }
    }

    #[test]
    fn retries_wait_for_retry_after_and_at_least_a_millisecond() {
        let mut f = failure(ErrorClass::Retryable, Some(429), true);
        f.retry_after = Some(Duration::from_secs(60));
        let sent = request(Origin::Registry, 2);
        assert_eq!(
            decide(&policy(), Answer::Failed(&f), sent, 0, NOW, 0.0),
            retry_at(60_000, "T")
        );
        let zero = Policy {
            retry_base: Duration::ZERO,
            fresh_list_retry: Duration::ZERO,
            ..policy()
        };
        f.retry_after = None;
        assert_eq!(
            decide(&zero, Answer::Failed(&f), sent, 5, NOW, 0.0),
            retry_at(1, "T")
        );
        // The jitter's range: half the delay is kept, the rest drawn.
        let p = policy();
        assert_eq!(p.retry_delay(1, None, 0.0), Duration::from_secs(5));
        assert_eq!(p.retry_delay(1, None, 0.999_999).as_millis(), 9_999);
        assert_eq!(
            p.retry_delay(40, None, 0.0),
            Duration::from_secs(450),
            "capped"
        );
    }

    #[test]
    fn the_client_tries_again_only_what_is_retryable_until_its_last_try() {
        let b = Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(2),
            max_attempts: 3,
        };
        let cases = [
            (ErrorClass::Retryable, 1, true, Some(50)),
            (ErrorClass::Retryable, 2, true, Some(100)),
            (ErrorClass::Retryable, 3, true, None),
            (ErrorClass::Retryable, 1, false, None),
            (ErrorClass::Authentication, 1, true, None),
            (ErrorClass::InvalidList, 1, true, None),
            (ErrorClass::Permanent, 1, true, None),
        ];
        for (class, tries, retry, want) in cases {
            assert_eq!(
                again(&b, class, None, tries, retry, 0.5),
                want.map(Duration::from_millis),
                "{class:?} after try {tries}, retry {retry}"
            );
        }
    }
}
