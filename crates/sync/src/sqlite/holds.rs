//! The mass-removal guard on SQLite (see `crate::store::holds`): its tables, the check before
//! exits are sent, the held audiences, and an operator's release or discard.
//!
//! `removal_guard` has a row per audience the guard has counted: whether it is held (since
//! when, with the figures that tripped it), and `counted_seq`, the mark below which exits were
//! counted in the window or approved by an operator (they are not counted or parked again).
//! `removal_window` counts the exits let through per time bucket (a sixtieth of the window,
//! at least a second). A held removal stays `pending` with `next_attempt_ms` = [`HELD_MS`],
//! so it is never due and never read by the reconciler until released.
//!
//! `desired_pending_exits`, a partial index on pending exits, keeps the guard's reads to the
//! exits of one audience: a backlog of pending entries (an initial load) costs it nothing.

use rusqlite::{Connection, OptionalExtension, params};

use super::counts::{self, Delta};
use super::{SqliteStore, engine, key_part, status_of, to_i64, to_u64};
use crate::store::{
    GuardVerdict, HELD_MS, HELD_REASON, HoldAction, Identity, RemovalFigures, RemovalHold,
    RemovalPolicy, Seq, StatusKind, StoreError,
};

/// The tables of schema version 5.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS removal_guard (
    destination TEXT NOT NULL,
    list_key TEXT NOT NULL,
    held_since_ms INTEGER,
    members INTEGER NOT NULL DEFAULT 0,
    pending_removals INTEGER NOT NULL DEFAULT 0,
    removed_in_window INTEGER NOT NULL DEFAULT 0,
    max_ratio REAL NOT NULL DEFAULT 0,
    counted_seq INTEGER NOT NULL DEFAULT 0,
    last_action TEXT,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (destination, list_key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS removal_window (
    destination TEXT NOT NULL,
    list_key TEXT NOT NULL,
    bucket_ms INTEGER NOT NULL,
    removals INTEGER NOT NULL,
    PRIMARY KEY (destination, list_key, bucket_ms)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS desired_pending_exits
    ON desired (destination, list_key, seq) WHERE state = 'pending' AND member = 0;
";

/// An audience's guard row.
struct GuardRow {
    held_since_ms: Option<i64>,
    tripped: RemovalFigures,
    max_ratio: f64,
    counted_seq: i64,
}

/// Moves the audience's mark (the highest seq whose exits the guard counted or that were
/// approved) up to `seq`: exits at or below it are not judged again.
pub(super) fn advance_mark(
    tx: &Connection,
    op: &'static str,
    destination: &str,
    audience_key: &str,
    seq: i64,
    now_ms: i64,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO main.removal_guard (destination, list_key, counted_seq, updated_ms)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (destination, list_key) DO UPDATE SET
         counted_seq = MAX(counted_seq, excluded.counted_seq),
         updated_ms = excluded.updated_ms",
    )
    .map_err(engine(op))?
    .execute(params![destination, audience_key, seq, now_ms])
    .map_err(engine(op))?;
    Ok(())
}

fn guard_row(
    tx: &Connection,
    op: &'static str,
    destination: &str,
    audience_key: &str,
) -> Result<Option<GuardRow>, StoreError> {
    tx.prepare_cached(
        "SELECT held_since_ms, members, pending_removals, removed_in_window, max_ratio,
         counted_seq FROM removal_guard WHERE destination = ?1 AND list_key = ?2",
    )
    .map_err(engine(op))?
    .query_row(params![destination, audience_key], |r| {
        Ok((
            r.get::<_, Option<i64>>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, f64>(4)?,
            r.get::<_, i64>(5)?,
        ))
    })
    .optional()
    .map_err(engine(op))?
    .map(|(held, m, p, s, ratio, counted)| {
        Ok(GuardRow {
            held_since_ms: held,
            tripped: RemovalFigures {
                members: to_u64(op, m)?,
                pending_removals: to_u64(op, p)?,
                removed_in_window: to_u64(op, s)?,
            },
            max_ratio: ratio,
            counted_seq: counted,
        })
    })
    .transpose()
}

/// Removals of the audience parked now.
fn parked(
    tx: &Connection,
    op: &'static str,
    destination: &str,
    audience_key: &str,
) -> Result<u64, StoreError> {
    let n: i64 = tx
        .prepare_cached(
            "SELECT COUNT(*) FROM desired INDEXED BY desired_pending_exits
             WHERE destination = ?1 AND list_key = ?2 AND state = 'pending'
               AND member = 0 AND next_attempt_ms = ?3",
        )
        .map_err(engine(op))?
        .query_row(params![destination, audience_key, HELD_MS], |r| r.get(0))
        .map_err(engine(op))?;
    to_u64(op, n)
}

/// Sets the reason of the parked removals' events, or clears it where it says they are
/// held.
fn explain_parked(
    tx: &Connection,
    op: &'static str,
    destination: &str,
    audience_key: &str,
    reason: Option<&str>,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "UPDATE event_audiences SET reason = ?4
         WHERE (seq, part) IN (SELECT seq, part FROM desired INDEXED BY desired_pending_exits
             WHERE destination = ?1 AND list_key = ?2 AND state = 'pending'
               AND member = 0 AND next_attempt_ms = ?3)
           AND status IN ('accepted', 'pending') AND (?4 IS NOT NULL OR reason = ?5)",
    )
    .map_err(engine(op))?
    .execute(params![
        destination,
        audience_key,
        HELD_MS,
        reason,
        HELD_REASON
    ])
    .map(|_| ())
    .map_err(engine(op))
}

impl SqliteStore {
    pub fn guard_removals(
        &self,
        destination: &str,
        audience_key: &str,
        exits: &[(Identity, Seq)],
        policy: RemovalPolicy,
        now_ms: i64,
    ) -> Result<GuardVerdict, StoreError> {
        const OP: &str = "guard_removals";
        if exits.is_empty() {
            return Ok(GuardVerdict::Allowed);
        }
        self.write(OP, |tx| {
            let row = guard_row(tx, OP, destination, audience_key)?;
            let counted = row.as_ref().map_or(0, |r| r.counted_seq);
            let mut fresh = Vec::with_capacity(exits.len());
            for (id, seq) in exits {
                let seq = to_i64(OP, *seq)?;
                if seq > counted {
                    fresh.push((id, seq));
                }
            }
            if let Some(r) = &row
                && let Some(since) = r.held_since_ms
            {
                let mut park = tx
                    .prepare_cached(
                        "UPDATE desired SET next_attempt_ms = ?6
                         WHERE destination = ?1 AND list_key = ?2 AND email = ?3
                           AND user_id = ?4 AND seq = ?5 AND state = 'pending' AND member = 0",
                    )
                    .map_err(engine(OP))?;
                let mut explain = tx
                    .prepare_cached(
                        "UPDATE event_audiences SET reason = ?6
                         WHERE seq = ?5 AND status IN ('accepted', 'pending') AND part IN
                           (SELECT part FROM desired WHERE destination = ?1 AND list_key = ?2
                              AND email = ?3 AND user_id = ?4 AND seq = ?5
                              AND next_attempt_ms = ?7)",
                    )
                    .map_err(engine(OP))?;
                for (id, seq) in &fresh {
                    let (email, user_id) = (key_part(&id.email), key_part(&id.user_id));
                    let parked = park
                        .execute(params![
                            destination,
                            audience_key,
                            email,
                            user_id,
                            seq,
                            HELD_MS
                        ])
                        .map_err(engine(OP))?;
                    if parked > 0 {
                        explain
                            .execute(params![
                                destination,
                                audience_key,
                                email,
                                user_id,
                                seq,
                                HELD_REASON,
                                HELD_MS
                            ])
                            .map_err(engine(OP))?;
                    }
                }
                let held = parked(tx, OP, destination, audience_key)?;
                return Ok(GuardVerdict::Held {
                    hold: RemovalHold {
                        audience_key: audience_key.to_string(),
                        since_ms: since,
                        tripped: r.tripped,
                        max_ratio: r.max_ratio,
                        held,
                    },
                    tripped_now: false,
                    approved_seq: to_u64(OP, counted)?,
                });
            }
            if fresh.is_empty() {
                return Ok(GuardVerdict::Allowed);
            }
            let figures =
                Self::removal_figures(tx, destination, audience_key, counted, &policy, now_ms)?;
            if figures.trips(&policy) {
                tx.prepare_cached(
                    "INSERT INTO removal_guard (destination, list_key, held_since_ms, members,
                     pending_removals, removed_in_window, max_ratio, counted_seq, updated_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?3)
                     ON CONFLICT (destination, list_key) DO UPDATE SET
                     held_since_ms = excluded.held_since_ms, members = excluded.members,
                     pending_removals = excluded.pending_removals,
                     removed_in_window = excluded.removed_in_window,
                     max_ratio = excluded.max_ratio, updated_ms = excluded.updated_ms",
                )
                .map_err(engine(OP))?
                .execute(params![
                    destination,
                    audience_key,
                    now_ms,
                    to_i64(OP, figures.members)?,
                    to_i64(OP, figures.pending_removals)?,
                    to_i64(OP, figures.removed_in_window)?,
                    policy.max_ratio,
                    counted
                ])
                .map_err(engine(OP))?;
                tx.prepare_cached(
                    "UPDATE desired SET next_attempt_ms = ?4
                     WHERE destination = ?1 AND list_key = ?2 AND state = 'pending'
                       AND member = 0 AND seq > ?3",
                )
                .map_err(engine(OP))?
                .execute(params![destination, audience_key, counted, HELD_MS])
                .map_err(engine(OP))?;
                explain_parked(tx, OP, destination, audience_key, Some(HELD_REASON))?;
                let held = parked(tx, OP, destination, audience_key)?;
                return Ok(GuardVerdict::Held {
                    hold: RemovalHold {
                        audience_key: audience_key.to_string(),
                        since_ms: now_ms,
                        tripped: figures,
                        max_ratio: policy.max_ratio,
                        held,
                    },
                    tripped_now: true,
                    approved_seq: to_u64(OP, counted)?,
                });
            }
            let bucket = policy.bucket_of(now_ms);
            let n = i64::try_from(fresh.len()).unwrap_or(i64::MAX);
            tx.prepare_cached(
                "INSERT INTO removal_window (destination, list_key, bucket_ms, removals)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (destination, list_key, bucket_ms) DO UPDATE
                 SET removals = removals + excluded.removals",
            )
            .map_err(engine(OP))?
            .execute(params![destination, audience_key, bucket, n])
            .map_err(engine(OP))?;
            let top = fresh.iter().map(|(_, s)| *s).max().unwrap_or(counted);
            advance_mark(tx, OP, destination, audience_key, top, now_ms)?;
            Ok(GuardVerdict::Allowed)
        })
    }

    /// The figures the guard decides on (and forgets window buckets that ended).
    fn removal_figures(
        tx: &Connection,
        destination: &str,
        audience_key: &str,
        counted: i64,
        policy: &RemovalPolicy,
        now_ms: i64,
    ) -> Result<RemovalFigures, StoreError> {
        const OP: &str = "guard_removals";
        let oldest = policy.expired_before(now_ms);
        tx.prepare_cached(
            "DELETE FROM removal_window
             WHERE destination = ?1 AND list_key = ?2 AND bucket_ms <= ?3",
        )
        .map_err(engine(OP))?
        .execute(params![destination, audience_key, oldest])
        .map_err(engine(OP))?;
        let removed: i64 = tx
            .prepare_cached(
                "SELECT COALESCE(SUM(removals), 0) FROM removal_window
                 WHERE destination = ?1 AND list_key = ?2",
            )
            .map_err(engine(OP))?
            .query_row(params![destination, audience_key], |r| r.get(0))
            .map_err(engine(OP))?;
        let members: Option<i64> = tx
            .prepare_cached(
                "SELECT members FROM audience_counts WHERE destination = ?1 AND list_key = ?2",
            )
            .map_err(engine(OP))?
            .query_row(params![destination, audience_key], |r| r.get(0))
            .optional()
            .map_err(engine(OP))?;
        let pending: i64 = tx
            .prepare_cached(
                "SELECT COUNT(*) FROM desired INDEXED BY desired_pending_exits
                 WHERE destination = ?1 AND list_key = ?2 AND state = 'pending'
                   AND member = 0 AND ack_member = 1 AND seq > ?3",
            )
            .map_err(engine(OP))?
            .query_row(params![destination, audience_key, counted], |r| r.get(0))
            .map_err(engine(OP))?;
        Ok(RemovalFigures {
            members: to_u64(OP, members.unwrap_or(0).max(0))?,
            pending_removals: to_u64(OP, pending)?,
            removed_in_window: to_u64(OP, removed.max(0))?,
        })
    }

    pub fn removal_holds(&self, destination: &str) -> Result<Vec<RemovalHold>, StoreError> {
        const OP: &str = "removal_holds";
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT list_key, held_since_ms, members, pending_removals, removed_in_window,
                 max_ratio FROM removal_guard
                 WHERE destination = ?1 AND held_since_ms IS NOT NULL ORDER BY list_key",
            )
            .map_err(engine(OP))?;
        let rows = stmt
            .query_map([destination], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, f64>(5)?,
                ))
            })
            .map_err(engine(OP))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(engine(OP))?;
        let mut out = Vec::with_capacity(rows.len());
        for (key, since, m, p, s, ratio) in rows {
            let held = parked(&conn, OP, destination, &key)?;
            out.push(RemovalHold {
                audience_key: key,
                since_ms: since,
                tripped: RemovalFigures {
                    members: to_u64(OP, m)?,
                    pending_removals: to_u64(OP, p)?,
                    removed_in_window: to_u64(OP, s)?,
                },
                max_ratio: ratio,
                held,
            });
        }
        Ok(out)
    }

    pub fn last_hold_decision(
        &self,
        destination: &str,
        audience_key: &str,
    ) -> Result<Option<(String, i64)>, StoreError> {
        const OP: &str = "last_hold_decision";
        let conn = self.lock();
        conn.prepare_cached(
            "SELECT last_action, updated_ms FROM removal_guard
             WHERE destination = ?1 AND list_key = ?2 AND last_action IS NOT NULL",
        )
        .map_err(engine(OP))?
        .query_row(params![destination, audience_key], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()
        .map_err(engine(OP))
    }

    pub fn resolve_hold(
        &self,
        destination: &str,
        audience_key: &str,
        action: HoldAction,
        actor: &str,
        now_ms: i64,
    ) -> Result<Option<u64>, StoreError> {
        const OP: &str = "resolve_hold";
        self.write(OP, |tx| {
            let held = guard_row(tx, OP, destination, audience_key)?
                .is_some_and(|r| r.held_since_ms.is_some());
            if !held {
                return Ok(None);
            }
            let n = match action {
                HoldAction::Release => {
                    explain_parked(tx, OP, destination, audience_key, None)?;
                    tx.prepare_cached(
                        "UPDATE desired SET next_attempt_ms = ?4
                         WHERE destination = ?1 AND list_key = ?2 AND state = 'pending'
                           AND member = 0 AND next_attempt_ms = ?3",
                    )
                    .map_err(engine(OP))?
                    .execute(params![destination, audience_key, HELD_MS, now_ms])
                    .map_err(engine(OP))?
                }
                HoldAction::Discard => Self::discard(tx, destination, audience_key, actor, now_ms)?,
            };
            let note = format!("{} {n} removal(s): {actor}", action.past());
            // Everything accepted so far counts as approved (released or discarded); the
            // window starts afresh.
            tx.prepare_cached(
                "UPDATE removal_guard SET held_since_ms = NULL, last_action = ?3,
                 updated_ms = ?4,
                 counted_seq = MAX(counted_seq, COALESCE((SELECT MAX(seq) FROM events), 0))
                 WHERE destination = ?1 AND list_key = ?2",
            )
            .map_err(engine(OP))?
            .execute(params![destination, audience_key, note, now_ms])
            .map_err(engine(OP))?;
            tx.prepare_cached(
                "DELETE FROM removal_window WHERE destination = ?1 AND list_key = ?2",
            )
            .map_err(engine(OP))?
            .execute(params![destination, audience_key])
            .map_err(engine(OP))?;
            Ok(Some(n as u64))
        })
    }

    /// Settles every parked removal of the audience as superseded by the operator: the event
    /// says so, and the key's desired membership becomes the acknowledged one.
    fn discard(
        tx: &Connection,
        destination: &str,
        audience_key: &str,
        actor: &str,
        now_ms: i64,
    ) -> Result<usize, StoreError> {
        const OP: &str = "resolve_hold";
        let reason = HoldAction::discard_reason(actor);
        let mut d = Delta::default();
        let statuses: Vec<(String, i64)> = tx
            .prepare(
                "SELECT e.status, COUNT(*) FROM desired d INDEXED BY desired_pending_exits
                 JOIN event_audiences e ON e.seq = d.seq AND e.part = d.part
                 WHERE d.destination = ?1 AND d.list_key = ?2 AND d.state = 'pending'
                   AND d.member = 0 AND d.next_attempt_ms = ?3
                 GROUP BY e.status",
            )
            .map_err(engine(OP))?
            .query_map(params![destination, audience_key, HELD_MS], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map_err(engine(OP))?
            .collect::<Result<_, _>>()
            .map_err(engine(OP))?;
        for (status, n) in statuses {
            let from = status_of(OP, &status)?;
            if !from.is_final() {
                d.event(from, -n);
                d.event(StatusKind::Superseded, n);
            }
        }
        tx.execute(
            "UPDATE event_audiences SET status = 'superseded', reason = ?4,
             next_attempt_ms = NULL, updated_ms = ?5
             WHERE (seq, part) IN (SELECT seq, part FROM desired INDEXED BY desired_pending_exits
                 WHERE destination = ?1 AND list_key = ?2 AND state = 'pending'
                   AND member = 0 AND next_attempt_ms = ?3)
               AND status IN ('accepted', 'pending')",
            params![destination, audience_key, HELD_MS, reason, now_ms],
        )
        .map_err(engine(OP))?;
        let n = tx
            .execute(
                "UPDATE desired SET state = 'superseded', reason = ?4, next_attempt_ms = 0,
                 member = COALESCE(ack_member, member)
                 WHERE destination = ?1 AND list_key = ?2 AND state = 'pending'
                   AND member = 0 AND next_attempt_ms = ?3",
                params![destination, audience_key, HELD_MS, reason],
            )
            .map_err(engine(OP))?;
        d.pending -= n as i64;
        counts::apply(tx, OP, destination, audience_key, &d)?;
        Ok(n)
    }
}
