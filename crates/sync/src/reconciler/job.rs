//! One planned request of one audience, sent by a task of its own: the request goes through
//! the client (its rate limiter, timeouts and own tries), the retry policy decides what each
//! row's answer means, and all the rows' outcomes are recorded in one store call.

use std::sync::Arc;

use bytes::Bytes;
use destination::classify::{RowOutcome, SentRow, classify};
use destination::plan::{Change, Limits, Operation, build_requests};
use iterable::client::{AttemptObserver, ErrorKind, IterableError};
use iterable::errors::ErrorClass;
use iterable::limiter::Endpoint;
use iterable::types::BulkUpdateResponse;
use retry::{Answer, Call, Origin, Verdict, decide, random_fraction};
use tokio::sync::OwnedSemaphorePermit;

use super::attempts::Tries;
use super::claims::Claim;
use super::shared::Inner;
use super::{PassReport, ReconcileError};
use crate::metrics::StatusClass;
use crate::store::{Identity, Outcome, OutcomeRow};

/// One row of a request: the store's key and version, and the change as planned.
#[derive(Debug)]
pub(super) struct JobRow {
    pub identity: Identity,
    pub seq: u64,
    /// The change's part in its event (see [`crate::PendingRow::part`]).
    pub part: u32,
    /// Where the store keeps the key's row (see [`crate::PendingRow::row_id`]).
    pub row_id: Option<i64>,
    pub accepted_ms: i64,
    pub attempts: u32,
    pub change: Change,
}

/// One planned request of one audience, sent by its own task.
pub(super) struct Job {
    pub audience: String,
    pub op: Operation,
    pub list_id: i64,
    /// The list came from the registry (not from the events' external id).
    pub from_registry: bool,
    pub body: Bytes,
    pub rows: Vec<JobRow>,
}

/// What a finished request task reports to the loop.
#[derive(Debug, Default)]
pub(super) struct JobDone {
    pub report: PassReport,
    pub unauthorized: Option<IterableError>,
    pub failure: Option<ReconcileError>,
}

/// The outcome to store for a verdict about one row; `None` for the verdicts about the whole
/// request (a pause, a split), which store nothing.
fn row_outcome(v: Verdict) -> Option<Outcome> {
    match v {
        Verdict::Delivered => Some(Outcome::Delivered),
        Verdict::Rejected { reason } => Some(Outcome::Rejected { reason }),
        Verdict::RetryAt { at_ms, reason } => Some(Outcome::Retry {
            next_attempt_ms: at_ms,
            reason,
        }),
        Verdict::Pause { .. } | Verdict::Split => None,
    }
}

fn endpoint(op: Operation) -> Endpoint {
    match op {
        Operation::Subscribe => Endpoint::Subscribe,
        Operation::Unsubscribe => Endpoint::Unsubscribe,
    }
}

/// A piece of the request still to send: a body and the rows (indices into `Job::rows`) it
/// holds. A request answered `413` is sent again in halves.
type Piece = (Bytes, Vec<usize>);

/// What the rows of a job came to so far: their outcomes, each with when its event arrived.
type Outcomes = Vec<(OutcomeRow, i64)>;

impl Job {
    /// Sends the request (split in halves on `413`), decides and records every row.
    pub async fn run(
        self,
        inner: Arc<Inner>,
        permit: OwnedSemaphorePermit,
        _claim: Claim,
    ) -> JobDone {
        let mut done = JobDone::default();
        let mut outcomes: Outcomes = Vec::with_capacity(self.rows.len());
        let mut pieces: Vec<Piece> = vec![(self.body.clone(), (0..self.rows.len()).collect())];
        // One draw per request: its rows are retried together.
        let fraction = random_fraction();
        while let Some((body, idx)) = pieces.pop() {
            let result = self.send(&inner, body, &idx).await;
            done.report.requests += 1;
            let now = inner.now();
            let e = match result {
                Ok(resp) => {
                    self.taken(&inner, &resp, &idx, now, &mut outcomes);
                    continue;
                }
                Err(e) if e.kind == ErrorKind::Withdrawn => {
                    // The lease ended while the request waited for the rate limiter: not
                    // sent, nothing recorded; the rows stay pending for the lease's holder,
                    // and so do the pieces not sent yet.
                    done.report.requests -= 1;
                    pieces.clear();
                    continue;
                }
                Err(e) => e,
            };
            let failure = e.failure();
            let mut call = self.call(&inner, idx.len());
            if failure.class == ErrorClass::InvalidList
                && matches!(
                    call,
                    Call::Request {
                        origin: Origin::Registry,
                        ..
                    }
                )
            {
                // The registry's list is gone: replace it first (see `recreate`), so that
                // these rows are tried again soon, on the new list, not in an hour.
                inner.list_deleted(&self.audience, self.list_id).await;
                call = self.call(&inner, idx.len());
            }
            let (mut retried, mut paused) = (0, false);
            for &i in &idx {
                let verdict = decide(
                    &inner.cfg.policy(),
                    Answer::Failed(&failure),
                    call,
                    self.rows[i].attempts,
                    now,
                    fraction,
                );
                match verdict {
                    Verdict::Pause { .. } => {
                        // Nothing is recorded: the rows stay pending, their attempts
                        // untouched, and so do the pieces not sent yet.
                        done.unauthorized = Some(e);
                        pieces.clear();
                        paused = true;
                        break;
                    }
                    Verdict::Split => {
                        pieces.extend(self.halves(&inner, &idx));
                        break;
                    }
                    v => {
                        retried += usize::from(matches!(v, Verdict::RetryAt { .. }));
                        outcomes.extend(row_outcome(v).map(|o| self.outcome(i, o)));
                    }
                }
            }
            if !paused {
                inner.notice_failed_request(call, &failure, retried);
            }
        }
        // Iterable has answered: the slot is free for the next request. The rows stay
        // claimed until their outcomes are stored.
        drop(permit);
        inner.wake_loop.notify_one();
        match inner.record(&self.audience, outcomes).await {
            Ok(r) => {
                let requests = done.report.requests;
                done.report = r;
                done.report.requests = requests;
            }
            Err(e) => done.failure = Some(e),
        }
        done
    }

    /// Sends one piece; each failed try of the client is recorded for its rows meanwhile.
    async fn send(
        &self,
        inner: &Arc<Inner>,
        body: Bytes,
        idx: &[usize],
    ) -> Result<BulkUpdateResponse, IterableError> {
        let tries = Tries::new(inner.clone(), &self.audience, || {
            idx.iter()
                .map(|&i| (self.rows[i].identity.clone(), self.rows[i].seq))
                .collect()
        });
        let observer: &dyn AttemptObserver = &tries;
        let result = inner
            .client
            .bulk_update(endpoint(self.op), body, Some(observer))
            .await;
        drop(tries);
        tracing::debug!(
            destination = %inner.cfg.destination,
            audience = %self.audience,
            list_id = self.list_id,
            endpoint = ?endpoint(self.op),
            rows = idx.len(),
            ok = result.is_ok(),
            "request to Iterable answered"
        );
        match &result {
            Ok(_) => inner.note_answer(),
            Err(e) => inner.note_failure(e),
        }
        if !matches!(&result, Err(e) if e.kind == ErrorKind::Withdrawn) {
            inner.metrics.request(
                endpoint(self.op),
                result
                    .as_ref()
                    .map_or_else(StatusClass::of_error, |_| StatusClass::Success),
            );
        }
        result
    }

    /// What the request was, for the retry policy.
    fn call<'a>(&'a self, inner: &Inner, rows: usize) -> Call<'a> {
        let origin = match self.from_registry {
            true if inner.resolver.is_fresh(self.list_id) => Origin::Fresh,
            // Deleted in Iterable and replaced (see `recreate`): tried again soon, on the new
            // list, not in an hour.
            true if inner.is_replaced(self.list_id) => Origin::Replaced,
            true => Origin::Registry,
            false => Origin::Explicit,
        };
        Call::Request {
            list_id: self.list_id,
            audience: &self.audience,
            origin,
            rows,
        }
    }

    /// Iterable answered 200: each row is delivered or rejected with its bucket.
    fn taken(
        &self,
        inner: &Inner,
        resp: &BulkUpdateResponse,
        idx: &[usize],
        now: i64,
        outcomes: &mut Outcomes,
    ) {
        let sent: Vec<SentRow<'_>> = idx
            .iter()
            .map(|&i| SentRow {
                email: self.rows[i].change.email.as_deref(),
                user_id: self.rows[i].change.user_id.as_deref(),
            })
            .collect();
        let c = classify(self.op, &sent, resp);
        let call = self.call(inner, idx.len());
        for (&i, row) in idx.iter().zip(c.rows) {
            let refused = match row {
                RowOutcome::Done | RowOutcome::DoneNotFound => None,
                RowOutcome::Forgotten { bucket } | RowOutcome::Rejected { bucket } => Some(bucket),
            };
            let answer = Answer::Taken { refused };
            let v = decide(
                &inner.cfg.policy(),
                answer,
                call,
                self.rows[i].attempts,
                now,
                0.0,
            );
            outcomes.extend(row_outcome(v).map(|o| self.outcome(i, o)));
        }
    }

    /// Row `i` with its outcome.
    fn outcome(&self, i: usize, outcome: Outcome) -> (OutcomeRow, i64) {
        let r = &self.rows[i];
        (
            OutcomeRow {
                identity: r.identity.clone(),
                seq: r.seq,
                part: Some(r.part),
                row_id: r.row_id,
                outcome,
            },
            r.accepted_ms,
        )
    }

    /// The rows `idx` in two requests of half the rows each, last piece first.
    fn halves(&self, inner: &Inner, idx: &[usize]) -> Vec<Piece> {
        let changes: Vec<(usize, &Change)> =
            idx.iter().map(|&i| (i, &self.rows[i].change)).collect();
        let limits = Limits {
            max_rows: idx.len().div_ceil(2),
            max_bytes: inner.cfg.limits.max_bytes,
        };
        let (reqs, _) = build_requests(&changes, inner.cfg.project_type, limits);
        reqs.into_iter()
            .rev()
            .map(|r| {
                let rows = r.rows.iter().map(|p| p.source).collect();
                (Bytes::from(r.body), rows)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{PendingRow, Version};

    /// What the store needs to find a row again travels from the pending row to its outcome:
    /// the version, the part and the row's place (`row_id`: a delivery is then found by it).
    #[test]
    fn an_outcome_names_the_row_as_the_pending_read_gave_it() {
        let pending = PendingRow {
            audience_key: "vip".into(),
            list_id: Some(7),
            identity: Identity::new(Some("a@x.co"), None),
            member: true,
            data_fields: None,
            settings: Default::default(),
            version: Version {
                time_ms: Some(5),
                seq: 42,
            },
            part: 3,
            row_id: Some(1_234),
            accepted_ms: 9,
            attempts: 0,
            last_error: None,
        };
        let job = Job {
            audience: "vip".into(),
            op: Operation::Subscribe,
            list_id: 7,
            from_registry: false,
            body: Bytes::new(),
            rows: vec![JobRow {
                identity: pending.identity.clone(),
                seq: pending.version.seq,
                part: pending.part,
                row_id: pending.row_id,
                accepted_ms: pending.accepted_ms,
                attempts: pending.attempts,
                change: pending.to_change(),
            }],
        };
        let (row, accepted_ms) = job.outcome(0, Outcome::Delivered);
        assert_eq!(
            (row.seq, row.part, row.row_id, accepted_ms),
            (42, Some(3), Some(1_234), 9)
        );
        let (early, _) =
            super::super::plan::early_row(&pending, Outcome::Superseded { reason: "r".into() });
        assert_eq!((early.part, early.row_id), (Some(3), Some(1_234)));
    }
}
