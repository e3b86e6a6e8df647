//! The common outcome, recorded without reading the key first: Iterable took (or refused) the
//! version that was planned, and that version is still the key's desired one and pending.
//!
//! `record_outcomes` used to read each key's desired row, decide, then update it: two searches
//! of `desired`'s primary key (four text columns) per outcome. Here the update itself checks
//! what the read was for (the planned seq, still pending), so a delivery or a rejection costs
//! one search. What the audience's figures need of the old row is how the acknowledged
//! membership moves (`members` counts acknowledged members): each delivery statement is one of
//! three, each matching only rows whose move is known ([`ACK_MOVES`]), tried in turn, the one
//! that matched last first (a request's rows tend to move alike). When none matches, nothing was
//! written and the caller records the outcome the general way (`record_one`).

use rusqlite::{CachedStatement, Connection, OptionalExtension, params};

use super::counts::Delta;
use super::{engine, key_part, status_of, to_i64};
use crate::store::{Outcome, OutcomeRow, StatusKind, StoreError};

const OP: &str = "record_outcomes";

/// The conditions on a delivered row, each with the move of the audience's `members` it
/// means: the three cover every row, and no row matches two.
const ACK_MOVES: [(&str, i64); 3] = [
    ("(member = 1) = (ack_member IS 1)", 0),
    ("member = 1 AND ack_member IS NOT 1", 1),
    ("member = 0 AND ack_member IS 1", -1),
];

/// The key (`?1`..`?4`) at the planned seq (`?5`), still pending.
const PLANNED_AND_PENDING: &str = "WHERE destination = ?1 AND list_key = ?2 AND email = ?3
     AND user_id = ?4 AND seq = ?5 AND state = 'pending'";

/// The statements of the direct settle, prepared once per `record_outcomes` call.
pub(super) struct DirectSettle<'c> {
    deliver: [CachedStatement<'c>; 3],
    /// Which of `deliver` matched last: tried first.
    last: usize,
    reject: CachedStatement<'c>,
    /// The planned event's status, moved from the one given (`?5`): the event is found by its
    /// seq and key (an event names a key once in an audience; a second naming is skipped and
    /// never accepted or pending).
    move_event: CachedStatement<'c>,
    /// The planned event's part and status (not accepted or pending: rare).
    event: CachedStatement<'c>,
    set_event: CachedStatement<'c>,
}

impl<'c> DirectSettle<'c> {
    pub(super) fn prepare(tx: &'c Connection) -> Result<Self, StoreError> {
        let p = |sql: &str| tx.prepare_cached(sql).map_err(engine(OP));
        let deliver = |cond: &str| {
            p(&format!(
                "UPDATE desired SET state = 'delivered', reason = NULL, next_attempt_ms = 0,
                 ack_member = member, ack_time_ms = time_ms, ack_seq = seq, ack_ms = ?6
                 {PLANNED_AND_PENDING} AND {cond}"
            ))
        };
        Ok(Self {
            deliver: [
                deliver(ACK_MOVES[0].0)?,
                deliver(ACK_MOVES[1].0)?,
                deliver(ACK_MOVES[2].0)?,
            ],
            last: 0,
            reject: p(&format!(
                "UPDATE desired SET state = 'rejected', reason = ?6, next_attempt_ms = 0
                 {PLANNED_AND_PENDING}"
            ))?,
            move_event: p(
                "UPDATE event_audiences SET status = ?6, reason = ?7, next_attempt_ms = NULL,
                 updated_ms = ?8
                 WHERE seq = ?1 AND list_key = ?2 AND email = ?3 AND user_id = ?4
                   AND status = ?5",
            )?,
            event: p("SELECT part, status FROM event_audiences
                 WHERE seq = ?1 AND list_key = ?2 AND email = ?3 AND user_id = ?4")?,
            set_event: p(
                "UPDATE event_audiences SET status = ?3, reason = ?4, next_attempt_ms = NULL,
                 updated_ms = ?5 WHERE seq = ?1 AND part = ?2",
            )?,
        })
    }

    /// Settles `o` if it is a delivery or a rejection of the key's desired, pending version;
    /// `false` (nothing written) otherwise.
    pub(super) fn settle(
        &mut self,
        d: &mut Delta,
        destination: &str,
        audience_key: &str,
        now_ms: i64,
        o: &OutcomeRow,
    ) -> Result<bool, StoreError> {
        let (email, user_id) = (key_part(&o.identity.email), key_part(&o.identity.user_id));
        let seq = to_i64(OP, o.seq)?;
        let key = (destination, audience_key, email, user_id, seq);
        let (kind, reason) = match &o.outcome {
            Outcome::Delivered => match self.deliver(key, now_ms)? {
                Some(members) => {
                    d.members += members;
                    d.delivered_at(now_ms);
                    (StatusKind::Delivered, None)
                }
                None => return Ok(false),
            },
            Outcome::Rejected { reason } => {
                let (de, lk, em, ui, se) = key;
                let n = self
                    .reject
                    .execute(params![de, lk, em, ui, se, reason])
                    .map_err(engine(OP))?;
                if n == 0 {
                    return Ok(false);
                }
                (StatusKind::Rejected, Some(reason.as_str()))
            }
            Outcome::Retry { .. } | Outcome::Superseded { .. } => return Ok(false),
        };
        d.state_moved("pending", kind.as_str());
        self.log_event(d, key, kind, reason, now_ms)?;
        Ok(true)
    }

    /// Delivers the key at its planned seq if still pending: the move of the audience's
    /// `members`, or `None` when no row matched.
    fn deliver(
        &mut self,
        (de, lk, em, ui, se): (&str, &str, &str, &str, i64),
        now_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        for i in 0..ACK_MOVES.len() {
            let which = (self.last + i) % ACK_MOVES.len();
            let n = self.deliver[which]
                .execute(params![de, lk, em, ui, se, now_ms])
                .map_err(engine(OP))?;
            if n == 1 {
                self.last = which;
                return Ok(Some(ACK_MOVES[which].1));
            }
        }
        Ok(None)
    }

    /// The planned event takes the outcome's status.
    fn log_event(
        &mut self,
        d: &mut Delta,
        (_, lk, em, ui, se): (&str, &str, &str, &str, i64),
        kind: StatusKind,
        reason: Option<&str>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        for from in [StatusKind::Accepted, StatusKind::Pending] {
            let moved = self
                .move_event
                .execute(params![
                    se,
                    lk,
                    em,
                    ui,
                    from.as_str(),
                    kind.as_str(),
                    reason,
                    now_ms
                ])
                .map_err(engine(OP))?;
            if moved > 0 {
                let moved = i64::try_from(moved).unwrap_or(i64::MAX);
                d.event(from, -moved);
                d.event(kind, moved);
                return Ok(());
            }
        }
        // The event had another status (not seen in practice): set it all the same.
        let was: Option<(i64, String)> = self
            .event
            .query_row(params![se, lk, em, ui], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .map_err(engine(OP))?;
        if let Some((part, was)) = was {
            d.event_moved(status_of(OP, &was)?, kind);
            self.set_event
                .execute(params![se, part, kind.as_str(), reason, now_ms])
                .map_err(engine(OP))?;
        }
        Ok(())
    }
}
