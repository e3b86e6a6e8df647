//! From an audience's due rows to requests in flight: its list (known, or resolved by a task
//! of its own while the loop goes on), the destination's planner (one change per person, then
//! requests within the limits), and one task per request. Rows the planner leaves out are
//! recorded at once (superseded, or too large for any request).

use std::sync::atomic::Ordering;

use bytes::Bytes;
use destination::plan::{Change, PlannedRequest, build_requests, collapse};
use iterable::errors::ErrorClass;
use iterable::resolve::ResolveError;
use iterable::types::ListRef;
use retry::{Answer, Call, Verdict, decide, random_fraction};

use super::ReconcileError;
use super::claims::Claim;
use super::dispatcher::Dispatcher;
use super::job::{Job, JobRow};
use super::shared::lock;
use crate::metrics::StatusClass;
use crate::store::{Identity, Outcome, OutcomeRow, PendingRow};

/// Outcomes recorded before any request: each row with when its event arrived.
type Early = Vec<(OutcomeRow, i64)>;

/// The audience's rows as planned: the changes with a list, the row each came from, and the
/// requests they make.
struct Planned {
    changes: Vec<Change>,
    /// For each change, its index in the rows.
    rows: Vec<usize>,
    requests: Vec<PlannedRequest>,
}

pub(super) fn early_row(r: &PendingRow, outcome: Outcome) -> (OutcomeRow, i64) {
    (
        OutcomeRow {
            identity: r.identity.clone(),
            seq: r.version.seq,
            part: Some(r.part),
            row_id: r.row_id,
            outcome,
        },
        r.accepted_ms,
    )
}

fn list_label(c: &Change) -> String {
    match &c.list {
        ListRef::Id(id) => id.to_string(),
        ListRef::Audience(a) => a.clone(),
    }
}

impl Dispatcher {
    /// A task of its own is resolving the audience's list and has no result yet.
    pub fn waits_for_list(&self, audience: &str) -> bool {
        self.resolving
            .get(audience)
            .is_some_and(|task| !task.is_finished())
            && !lock(&self.inner.resolved).contains_key(audience)
    }

    /// The audience's list: known, or resolved now (a drain pass waits for it). The running
    /// loop resolves in a task of its own and gets `None` until that task has a result.
    /// `waiting` gives the keys of the rows that wait for the list, if it is to be looked up.
    async fn list_for(
        &mut self,
        audience: &str,
        waiting: impl FnOnce() -> Vec<(Identity, u64)>,
    ) -> Result<Option<Result<i64, ResolveError>>, ReconcileError> {
        let known = lock(&self.inner.lists).get(audience).copied();
        if let Some(id) = known {
            if !self.resolving.is_empty() && self.resolving.remove(audience).is_some() {
                lock(&self.inner.resolved).remove(audience);
            }
            return Ok(Some(Ok(id)));
        }
        if self.drain {
            return Ok(Some(self.inner.list_for(audience, waiting()).await));
        }
        let result = lock(&self.inner.resolved).remove(audience);
        match (result, self.resolving.get(audience)) {
            (Some((resumes, r)), _) => {
                self.resolving.remove(audience);
                // A refused key from before the last resume is out of date: try again.
                let stale = matches!(&r, Err(ResolveError::Iterable(e))
                    if e.class == ErrorClass::Authentication)
                    && resumes != self.inner.resumes.load(Ordering::SeqCst);
                if !stale {
                    return Ok(Some(r));
                }
            }
            (None, Some(task)) if !task.is_finished() => return Ok(None),
            (None, Some(_)) => {
                // The task ended without a result: it panicked.
                self.resolving.remove(audience);
                return Err(ReconcileError::Task(format!(
                    "resolving the list of audience {audience:?} panicked"
                )));
            }
            (None, None) => {}
        }
        let (inner, aud, waiting) = (self.inner.clone(), audience.to_string(), waiting());
        let resumes = inner.resumes.load(Ordering::SeqCst);
        let task = tokio::spawn(async move {
            let r = inner.list_for(&aud, waiting).await;
            // The result is in place before the loop is woken.
            lock(&inner.resolved).insert(aud, (resumes, r));
            inner.wake_loop.notify_one();
        });
        self.resolving.insert(audience.to_string(), task);
        Ok(None)
    }

    /// The registry's list for the rows without a list id of their own, if it is known now;
    /// whether they wait for it; and, when it could not be had, their outcomes (or a pause).
    async fn registry_list(
        &mut self,
        audience: &str,
        rows: &[PendingRow],
        early: &mut Early,
    ) -> Result<(Option<i64>, bool), ReconcileError> {
        if rows.iter().all(|r| r.list_id.is_some()) {
            return Ok((None, false));
        }
        let keys = || {
            rows.iter()
                .filter(|r| r.list_id.is_none())
                .map(|r| (r.identity.clone(), r.version.seq))
                .collect()
        };
        let e = match self.list_for(audience, keys).await? {
            // Being resolved: the rows without a list id stay pending meanwhile.
            None => return Ok((None, true)),
            Some(Ok(id)) => return Ok((Some(id), false)),
            Some(Err(ResolveError::Registry(e))) => return Err(e.into()),
            Some(Err(ResolveError::Iterable(e))) => e,
        };
        let inner = &self.inner;
        inner.metrics.request(e.endpoint, StatusClass::of_error(&e));
        let (failure, now, fraction) = (e.failure(), inner.now(), random_fraction());
        for r in rows.iter().filter(|r| r.list_id.is_none()) {
            let call = Call::ListLookup { audience };
            let policy = inner.cfg.policy();
            match decide(
                &policy,
                Answer::Failed(&failure),
                call,
                r.attempts,
                now,
                fraction,
            ) {
                Verdict::RetryAt { at_ms, reason } => early.push(early_row(
                    r,
                    Outcome::Retry {
                        next_attempt_ms: at_ms,
                        reason,
                    },
                )),
                _ => {
                    // A refused key: nothing is recorded, the rows stay pending.
                    inner.pause(&e);
                    break;
                }
            }
        }
        Ok((None, false))
    }

    /// Plans the rows that have a list (their own, or the registry's): one change per person
    /// (the others are superseded) in requests within the limits (a change too large for any
    /// request is rejected).
    /// Exits past `held_after` (an audience whose removals the guard holds) are left out:
    /// the store parked them.
    fn plan(
        &self,
        rows: &[PendingRow],
        registry_list: Option<i64>,
        held_after: Option<u64>,
        early: &mut Early,
    ) -> Planned {
        let cfg = &self.inner.cfg;
        let mut changes: Vec<Change> = Vec::with_capacity(rows.len());
        let mut planned: Vec<usize> = Vec::with_capacity(rows.len());
        for (i, r) in rows.iter().enumerate() {
            if !r.member && held_after.is_some_and(|s| r.version.seq > s) {
                continue;
            }
            let Some(list) = r.list_id.or(registry_list) else {
                continue;
            };
            let mut c = r.to_change();
            c.list = ListRef::Id(list);
            changes.push(c);
            planned.push(i);
        }
        let winners = collapse(&changes, cfg.project_type);
        let mut survivors: Vec<(usize, &Change)> = Vec::with_capacity(changes.len());
        for (ci, &w) in winners.iter().enumerate() {
            if w == ci {
                survivors.push((ci, &changes[ci]));
                continue;
            }
            let reason = format!(
                "superseded by a newer change for the same user in list {}",
                list_label(&changes[w])
            );
            early.push(early_row(
                &rows[planned[ci]],
                Outcome::Superseded { reason },
            ));
        }
        let (requests, oversized) = build_requests(&survivors, cfg.project_type, cfg.limits);
        for o in oversized {
            let reason = o.message;
            early.push(early_row(
                &rows[planned[o.source]],
                Outcome::Rejected { reason },
            ));
        }
        drop(survivors);
        Planned {
            changes,
            rows: planned,
            requests,
        }
    }

    /// Resolves the list, plans, records superseded and unplaceable rows, and spawns one task
    /// per request. Returns whether rows were left pending because their list is still being
    /// resolved.
    pub async fn start(
        &mut self,
        audience: &str,
        rows: Vec<PendingRow>,
        claim: Claim,
    ) -> Result<bool, ReconcileError> {
        let mut early: Early = Vec::new();
        let (registry_list, waiting) = self.registry_list(audience, &rows, &mut early).await?;
        let held_after = self.guard_exits(audience, &rows).await?;
        let planned = self.plan(&rows, registry_list, held_after, &mut early);
        if !early.is_empty() {
            let r = self.inner.record(audience, early).await?;
            self.report.add(&r);
        }
        self.spawn_jobs(audience, rows, planned, registry_list, claim)
            .await?;
        Ok(waiting)
    }

    /// Moves each planned change into its request's rows and spawns one task per request,
    /// each with a slot of `concurrency` and the claims of its rows.
    async fn spawn_jobs(
        &mut self,
        audience: &str,
        rows: Vec<PendingRow>,
        planned: Planned,
        registry_list: Option<i64>,
        mut claim: Claim,
    ) -> Result<(), ReconcileError> {
        let inner = self.inner.clone();
        let mut changes: Vec<Option<Change>> = planned.changes.into_iter().map(Some).collect();
        let mut rows: Vec<Option<PendingRow>> = rows.into_iter().map(Some).collect();
        for req in planned.requests {
            let list_id = match req.list {
                ListRef::Id(id) => id,
                ListRef::Audience(_) => continue,
            };
            let mut job_rows = Vec::with_capacity(req.rows.len());
            let mut idx = Vec::with_capacity(req.rows.len());
            for p in &req.rows {
                let ri = planned.rows[p.source];
                let (Some(change), Some(row)) = (changes[p.source].take(), rows[ri].take()) else {
                    continue;
                };
                idx.push(ri);
                job_rows.push(JobRow {
                    identity: row.identity,
                    seq: row.version.seq,
                    part: row.part,
                    row_id: row.row_id,
                    accepted_ms: row.accepted_ms,
                    attempts: row.attempts,
                    change,
                });
            }
            let job = Job {
                audience: audience.to_string(),
                op: req.op,
                list_id,
                from_registry: Some(list_id) == registry_list,
                body: Bytes::from(req.body),
                rows: job_rows,
            };
            let part = claim.split(idx);
            let permit = match inner.slots.clone().try_acquire_owned() {
                Ok(p) => p,
                Err(_) => inner
                    .slots
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|e| ReconcileError::Task(e.to_string()))?,
            };
            self.jobs.spawn(job.run(inner.clone(), permit, part));
        }
        // The rest of the claim (recorded or left pending) is released here.
        drop(claim);
        Ok(())
    }
}
