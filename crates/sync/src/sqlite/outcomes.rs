//! Recording what Iterable answered: each planned row's outcome (delivered, rejected,
//! retried, superseded) settles its key and its event, or is dropped when a newer change
//! arrived meanwhile; and each failed try of a request the client still retries.

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use super::counts::{self, Delta};
use super::settle_direct::DirectSettle;
use super::{
    CURRENT, Current, SqliteStore, current, delivered, engine, key_part, status_of, to_i64, version,
};
use crate::store::{Identity, Outcome, OutcomeRow, Recorded, Seq, StatusKind, StoreError};

/// One more failed try for the keys of a JSON array `[[email, userId, seq], ...]` (`?4`) of one
/// audience whose desired version is still that seq and pending. Each key is one primary-key
/// search (see the test of the query plans).
pub(super) const MARK_TRIES: &str = "UPDATE desired SET tries = tries + 1, reason = ?3
     WHERE (destination, list_key, email, user_id, seq) IN
       (SELECT ?1, ?2, value ->> 0, value ->> 1, value ->> 2 FROM json_each(?4))
       AND state = 'pending'";

/// The events of those keys (`?6`) in status `?7`: `pending`, with the last error and the next
/// try.
pub(super) const MARK_TRIED_EVENTS: &str =
    "UPDATE event_audiences SET status = 'pending', reason = ?3,
     next_attempt_ms = ?4, updated_ms = ?5
     WHERE (seq, part) IN
       (SELECT d.seq, d.part FROM json_each(?6) AS k CROSS JOIN desired d
          ON d.destination = ?1 AND d.list_key = ?2 AND d.email = k.value ->> 0
         AND d.user_id = k.value ->> 1 AND d.seq = k.value ->> 2
        WHERE d.state = 'pending')
       AND status = ?7";

/// The planned event's row by the part the outcome gives (`?1` seq, `?2` part), if it is the
/// key's (`?3` audience, `?4` email, `?5` userId).
pub(super) const PLANNED_EXACT: &str = "SELECT part, member, time_ms, status FROM event_audiences
     WHERE seq = ?1 AND part = ?2 AND list_key = ?3 AND email = ?4 AND user_id = ?5";

/// An event's status in one audience (`?1` seq, `?2` part) set to `?3`, with its reason, next
/// attempt and time.
pub(super) const SET_STATUS: &str = "UPDATE event_audiences SET status = ?3, reason = ?4,
     next_attempt_ms = ?5, updated_ms = ?6 WHERE seq = ?1 AND part = ?2";

impl SqliteStore {
    pub fn record_outcomes(
        &self,
        destination: &str,
        audience_key: &str,
        now_ms: i64,
        outcomes: &[OutcomeRow],
    ) -> Result<Vec<Recorded>, StoreError> {
        const OP: &str = "record_outcomes";
        if outcomes.is_empty() {
            return Ok(Vec::new());
        }
        self.write(OP, |tx| {
            let mut st = OutcomeStatements::prepare(tx)?;
            let mut direct = DirectSettle::prepare(tx)?;
            let mut d = Delta::default();
            let at = Recording {
                destination,
                audience_key,
                now_ms,
            };
            let mut out = Vec::with_capacity(outcomes.len());
            for o in outcomes {
                if direct.settle(&mut d, destination, audience_key, now_ms, o)? {
                    out.push(Recorded::Applied);
                } else {
                    out.push(Self::record_one(&mut st, &mut d, &at, o)?);
                }
            }
            counts::apply(tx, OP, destination, audience_key, &d)?;
            Ok(out)
        })
    }

    pub fn record_attempt(
        &self,
        destination: &str,
        audience_key: &str,
        now_ms: i64,
        rows: &[(Identity, Seq)],
        reason: &str,
        next_attempt_ms: Option<i64>,
    ) -> Result<usize, StoreError> {
        const OP: &str = "record_attempt";
        if rows.is_empty() {
            return Ok(0);
        }
        let keys = Value::Array(
            rows.iter()
                .map(|(id, seq)| {
                    Value::Array(vec![
                        key_part(&id.email).into(),
                        key_part(&id.user_id).into(),
                        (*seq).into(),
                    ])
                })
                .collect(),
        )
        .to_string();
        self.write(OP, |tx| {
            // Whatever the number of rows, a few statements: the keys travel as one JSON array.
            let marked = tx
                .prepare_cached(MARK_TRIES)
                .map_err(engine(OP))?
                .execute(params![destination, audience_key, reason, keys])
                .map_err(engine(OP))?;
            if marked == 0 {
                return Ok(0);
            }
            let events = |from: StatusKind| {
                tx.prepare_cached(MARK_TRIED_EVENTS)
                    .map_err(engine(OP))?
                    .execute(params![
                        destination,
                        audience_key,
                        reason,
                        next_attempt_ms,
                        now_ms,
                        keys,
                        from.as_str()
                    ])
                    .map_err(engine(OP))
            };
            events(StatusKind::Pending)?;
            let flipped = events(StatusKind::Accepted)?;
            let mut d = Delta::default();
            d.event(StatusKind::Accepted, -(flipped as i64));
            d.event(StatusKind::Pending, flipped as i64);
            counts::apply(tx, OP, destination, audience_key, &d)?;
            Ok(marked)
        })
    }
}

impl SqliteStore {
    /// Records one outcome of [`Store::record_outcomes`] that [`DirectSettle`] did not: a retry,
    /// a supersession, an outcome for a version that is no longer the key's desired one or no
    /// longer pending, or one that does not give the part the key points at (none, or
    /// another). The key's desired row is read first: it decides, and tells what changes in
    /// the audience's figures (`d`).
    fn record_one(
        st: &mut OutcomeStatements<'_>,
        d: &mut Delta,
        at: &Recording<'_>,
        o: &OutcomeRow,
    ) -> Result<Recorded, StoreError> {
        const OP: &str = "record_outcomes";
        let Recording {
            destination,
            audience_key,
            ..
        } = *at;
        let id = &o.identity;
        let (email, user_id) = (key_part(&id.email), key_part(&id.user_id));
        let seq = to_i64(OP, o.seq)?;
        let Some(row) = current(&mut st.get, OP, destination, audience_key, id)? else {
            return Ok(Recorded::Unknown);
        };
        let unchanged = row.seq == seq;
        let read = |r: &rusqlite::Row<'_>| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?));
        // The planned event's row: by its part when the key still points at it, or when the
        // outcome gives it (one search, whatever the number of rows under that seq: a
        // snapshot writes all its keys under one; the row must be this key's), else by its
        // key among the rows of its seq.
        let event: Option<(i64, Option<bool>, Option<i64>, String)> = if unchanged {
            st.planned_part.query_row(params![seq, row.part], read)
        } else if let Some(part) = o.part {
            st.planned_exact
                .query_row(params![seq, part, audience_key, email, user_id], read)
        } else {
            st.planned
                .query_row(params![seq, audience_key, email, user_id], read)
        }
        .optional()
        .map_err(engine(OP))?;
        let Some((part, member, time_ms, was)) = event else {
            return Ok(Recorded::Unknown);
        };
        let mut was = status_of(OP, &was)?;
        if unchanged
            && row.state == "delivered"
            && matches!(was, StatusKind::Accepted | StatusKind::Pending)
        {
            // Delivered without its row written (see `delivered`).
            was = StatusKind::Delivered;
        }
        if unchanged && row.state != "pending" && o.outcome != Outcome::Delivered {
            // Already settled (e.g. an outcome reported twice): keep the first.
            return Ok(Recorded::Applied);
        }
        let event = PlannedEvent {
            seq,
            part,
            member,
            time_ms,
            was,
        };
        let settle = Self::log_outcome(st, d, at, o, &row, &event, unchanged)?;
        if let Some((state, reason, attempts, next)) = settle {
            st.settle
                .execute(params![
                    destination,
                    audience_key,
                    email,
                    user_id,
                    state,
                    reason,
                    attempts,
                    next
                ])
                .map_err(engine(OP))?;
            d.state_moved(&row.state, state);
        }
        Ok(if unchanged {
            Recorded::Applied
        } else {
            Recorded::ChangedMeanwhile
        })
    }

    /// Logs an outcome on its planned event (a delivery also moves the acknowledged state when
    /// it is newer). Returns how the key settles: (state, reason, attempts to add, next
    /// attempt), when the planned version is still the desired one.
    fn log_outcome<'o>(
        st: &mut OutcomeStatements<'_>,
        d: &mut Delta,
        at: &Recording<'_>,
        o: &'o OutcomeRow,
        row: &Current,
        ev: &PlannedEvent,
        unchanged: bool,
    ) -> Result<Option<Settle<'o>>, StoreError> {
        const OP: &str = "record_outcomes";
        let PlannedEvent { seq, part, was, .. } = *ev;
        let now_ms = at.now_ms;
        let mut status = |d: &mut Delta, k: StatusKind, reason: Option<&str>, next: Option<i64>| {
            d.event_moved(was, k);
            st.set_status
                .execute(params![seq, part, k.as_str(), reason, next, now_ms])
                .map(|_| ())
                .map_err(engine(OP))
        };
        Ok(match &o.outcome {
            Outcome::Delivered => {
                status(d, StatusKind::Delivered, None, None)?;
                Self::acknowledge(st, d, at, &o.identity, row, ev)?;
                unchanged.then_some(("delivered", None, 0, 0))
            }
            Outcome::Rejected { reason } => {
                status(d, StatusKind::Rejected, Some(reason), None)?;
                unchanged.then_some(("rejected", Some(reason.as_str()), 0, 0))
            }
            Outcome::Retry {
                next_attempt_ms,
                reason,
            } => {
                if unchanged {
                    status(d, StatusKind::Pending, Some(reason), Some(*next_attempt_ms))?;
                }
                unchanged.then_some(("pending", Some(reason.as_str()), 1, *next_attempt_ms))
            }
            Outcome::Superseded { reason } => {
                if unchanged {
                    status(d, StatusKind::Superseded, Some(reason), None)?;
                }
                unchanged.then_some(("superseded", Some(reason.as_str()), 0, 0))
            }
        })
    }

    /// A delivered version newer than the acknowledged one becomes the acknowledged state.
    fn acknowledge(
        st: &mut OutcomeStatements<'_>,
        d: &mut Delta,
        at: &Recording<'_>,
        id: &Identity,
        row: &Current,
        ev: &PlannedEvent,
    ) -> Result<(), StoreError> {
        const OP: &str = "record_outcomes";
        let newer_than_ack = match row.ack_seq {
            None => true,
            Some(a) => version(OP, ev.time_ms, ev.seq)? > version(OP, row.ack_time_ms, a)?,
        };
        if newer_than_ack {
            if row.state == "delivered" {
                // The delivery the acknowledgement is replacing, if kept with the desired row
                // alone, is written to its event's row first (see `delivered`).
                st.write_delivered
                    .execute(params![row.seq, row.part, row.ack_ms])
                    .map_err(engine(OP))?;
            }
            st.ack
                .execute(params![
                    at.destination,
                    at.audience_key,
                    key_part(&id.email),
                    key_part(&id.user_id),
                    ev.member,
                    ev.time_ms,
                    ev.seq,
                    at.now_ms
                ])
                .map_err(engine(OP))?;
            d.ack_moved(row.ack_member, ev.member == Some(true));
            d.delivered_at(at.now_ms);
        }
        Ok(())
    }
}

/// How a key settles: its new state, the reason, attempts to add and the next attempt.
type Settle<'o> = (&'static str, Option<&'o str>, i64, i64);

/// The event an outcome is about, as planned: its seq and part, the membership and time it
/// asked for, and its status before the outcome.
#[derive(Clone, Copy)]
struct PlannedEvent {
    seq: i64,
    part: i64,
    member: Option<bool>,
    time_ms: Option<i64>,
    was: StatusKind,
}

/// Where and when outcomes are recorded: one audience, one moment.
#[derive(Clone, Copy)]
struct Recording<'a> {
    destination: &'a str,
    audience_key: &'a str,
    now_ms: i64,
}

/// The statements of [`Store::record_outcomes`], prepared once per call.
struct OutcomeStatements<'c> {
    get: rusqlite::CachedStatement<'c>,
    planned: rusqlite::CachedStatement<'c>,
    planned_exact: rusqlite::CachedStatement<'c>,
    planned_part: rusqlite::CachedStatement<'c>,
    set_status: rusqlite::CachedStatement<'c>,
    write_delivered: rusqlite::CachedStatement<'c>,
    ack: rusqlite::CachedStatement<'c>,
    settle: rusqlite::CachedStatement<'c>,
}

impl<'c> OutcomeStatements<'c> {
    fn prepare(tx: &'c Connection) -> Result<Self, StoreError> {
        let p = |sql: &str| tx.prepare_cached(sql).map_err(engine("record_outcomes"));
        Ok(Self {
            get: p(CURRENT)?,
            // The naming that counted when the event names the key more than once: the
            // others were skipped.
            planned: p("SELECT part, member, time_ms, status FROM event_audiences
                 WHERE seq = ?1 AND list_key = ?2 AND email = ?3 AND user_id = ?4
                 ORDER BY status = 'skipped', part LIMIT 1")?,
            planned_part: p("SELECT part, member, time_ms, status FROM event_audiences
                 WHERE seq = ?1 AND part = ?2")?,
            planned_exact: p(PLANNED_EXACT)?,
            set_status: p(SET_STATUS)?,
            write_delivered: p(delivered::WRITE_AT)?,
            ack: p(
                "UPDATE desired SET ack_member = ?5, ack_time_ms = ?6, ack_seq = ?7,
                 ack_ms = ?8
                 WHERE destination = ?1 AND list_key = ?2 AND email = ?3 AND user_id = ?4",
            )?,
            settle: p("UPDATE desired SET state = ?5, reason = ?6,
                 attempts = attempts + ?7, tries = MAX(tries, attempts + ?7),
                 next_attempt_ms = ?8
                 WHERE destination = ?1 AND list_key = ?2 AND email = ?3 AND user_id = ?4")?,
        })
    }
}
