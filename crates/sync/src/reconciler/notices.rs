//! What failed requests tell the logs, and how often, so that a storm of failures is a few
//! lines, not one per request: a list gone from Iterable is named once (per list, per process;
//! when it is re-created, `recreate` tells);
//! rows whose tries ran out (the client's own retries exhausted, the rows stored for a later
//! retry) and `429` answers are each reported at most once a minute per destination, with the
//! counts since the last line. Everything else about one request or try is a debug line.

use std::collections::HashSet;
use std::sync::Mutex;

use iterable::errors::ErrorClass;
use retry::{Call, Failure, Origin};

use super::shared::{Inner, lock};

/// How often a kind of failure is reported: at most once a minute.
pub const EVERY_MS: i64 = 60_000;

/// Occurrences of one kind of failure since its last line: how many, and how many items
/// (rows) they concerned.
#[derive(Debug, Default)]
struct Tally {
    /// When the last line was written.
    last_ms: Option<i64>,
    items: u64,
    times: u64,
}

impl Tally {
    /// One more occurrence, of `items`, at `now_ms`. When a line is due (the first, then at
    /// most one per [`EVERY_MS`]), the items and occurrences since the last line.
    fn record(&mut self, now_ms: i64, items: u64) -> Option<(u64, u64)> {
        self.items += items;
        self.times += 1;
        let due = self
            .last_ms
            .is_none_or(|last| now_ms.saturating_sub(last) >= EVERY_MS);
        if !due {
            return None;
        }
        let counts = (self.items, self.times);
        *self = Tally {
            last_ms: Some(now_ms),
            items: 0,
            times: 0,
        };
        Some(counts)
    }
}

/// The state behind the notices of one destination.
#[derive(Debug, Default)]
pub(super) struct Notices {
    /// Lists already named as missing.
    missing: Mutex<HashSet<i64>>,
    /// Rows whose tries ran out, by request.
    exhausted: Mutex<Tally>,
    /// `429` answers.
    rate_limited: Mutex<Tally>,
}

impl Notices {
    /// Whether list `id` is to be named as missing now: the first time only.
    pub fn list_missing(&self, id: i64) -> bool {
        lock(&self.missing).insert(id)
    }

    /// `rows` of one request ran out of tries at `now_ms`; when a line is due, the rows and
    /// requests since the last one.
    pub fn exhausted(&self, now_ms: i64, rows: u64) -> Option<(u64, u64)> {
        lock(&self.exhausted).record(now_ms, rows)
    }

    /// Iterable answered `429` at `now_ms`; when a line is due, the answers since the last one.
    pub fn rate_limited(&self, now_ms: i64) -> Option<u64> {
        lock(&self.rate_limited).record(now_ms, 1).map(|(n, _)| n)
    }
}

impl Inner {
    /// A try was answered `429` (the client tries again after a backoff).
    pub fn notice_rate_limited(&self) {
        if let Some(answers) = self.notices.rate_limited(self.now()) {
            tracing::warn!(
                destination = %self.cfg.destination,
                answers,
                "Iterable is rate limiting: {answers} answer(s) 429 since the last report; \
                 requests are tried again with backoff"
            );
        }
    }

    /// A request of `call` failed with `failure` (after the client's own tries); `retried` of
    /// its rows are stored for a later retry. A pause is logged by [`Inner::pause`], not here.
    pub fn notice_failed_request(&self, call: Call<'_>, failure: &Failure, retried: usize) {
        let destination = &self.cfg.destination;
        let Call::Request {
            list_id,
            audience,
            origin,
            rows,
        } = call
        else {
            return;
        };
        if failure.class == ErrorClass::InvalidList {
            match origin {
                Origin::Fresh | Origin::Replaced => {}
                Origin::Registry
                    if self.cfg.on_list_deleted == super::OnListDeleted::Pause
                        && self.notices.list_missing(list_id) =>
                {
                    tracing::info!(
                        destination = %destination,
                        audience,
                        list_id,
                        answer = %failure.words,
                        "list no longer exists in Iterable (deleted?); it is not re-created \
                         (on_list_deleted = \"pause\"): its rows wait (retried hourly) until an \
                         operator acts"
                    )
                }
                Origin::Explicit if self.notices.list_missing(list_id) => tracing::warn!(
                    destination = %destination,
                    audience,
                    list_id,
                    answer = %failure.words,
                    "the list named by the events' external audience id does not exist in Iterable"
                ),
                _ => {}
            }
            tracing::debug!(destination = %destination, audience, list_id, rows, "invalidListId");
            return;
        }
        if retried > 0
            && let Some((rows, requests)) = self.notices.exhausted(self.now(), retried as u64)
        {
            tracing::warn!(
                destination = %destination,
                rows,
                requests,
                reason = %failure.text,
                "retries exhausted for {rows} row(s) of {requests} request(s) since the last \
                 report; they are stored and retried later"
            );
            return;
        }
        tracing::debug!(
            destination = %destination,
            audience,
            list_id,
            rows,
            retried,
            reason = %failure.text,
            "a request failed"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_list_is_named_once() {
        let n = Notices::default();
        assert!(n.list_missing(7));
        assert!(!n.list_missing(7));
        assert!(n.list_missing(8));
    }

    #[test]
    fn exhausted_rows_are_reported_at_most_once_a_minute_with_the_counts() {
        let n = Notices::default();
        assert_eq!(n.exhausted(1_000, 5), Some((5, 1)), "the first at once");
        assert_eq!(n.exhausted(2_000, 3), None);
        assert_eq!(n.exhausted(60_999, 4), None);
        assert_eq!(
            n.exhausted(61_000, 1),
            Some((8, 3)),
            "the counts since the last line"
        );
        assert_eq!(n.exhausted(61_001, 2), None);
        assert_eq!(n.exhausted(200_000, 2), Some((4, 2)));
        // 429 answers are counted apart.
        assert_eq!(n.rate_limited(200_000), Some(1));
        assert_eq!(n.rate_limited(200_001), None);
        assert_eq!(n.rate_limited(259_999), None);
        assert_eq!(n.rate_limited(260_000), Some(3));
    }
}
