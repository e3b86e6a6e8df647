//! The mass-removal guard on PostgreSQL, as on SQLite (`crate::sqlite::holds` says what each
//! table holds): the check before exits are sent, the held audiences, and an operator's
//! release or discard. The audience's guard row is locked first (`FOR UPDATE`), so that two
//! instances deciding on one audience (a lease changing hands) take turns.

use deadpool_postgres::GenericClient;

use super::{PostgresStore, counts, key_part, pg, status_of, to_i64, to_u64, write_tx};
use crate::sqlite::counts::Deltas;
use crate::store::{
    GuardVerdict, HELD_MS, HELD_REASON, HoldAction, Identity, RemovalFigures, RemovalHold,
    RemovalPolicy, Seq, StatusKind, StoreError,
};

/// Schema version 3: the mass-removal guard.
pub(super) const V3: &str = r#"
CREATE TABLE removal_guard (
    destination TEXT COLLATE "C" NOT NULL,
    list_key TEXT COLLATE "C" NOT NULL,
    held_since_ms BIGINT,
    members BIGINT NOT NULL DEFAULT 0,
    pending_removals BIGINT NOT NULL DEFAULT 0,
    removed_in_window BIGINT NOT NULL DEFAULT 0,
    max_ratio DOUBLE PRECISION NOT NULL DEFAULT 0,
    counted_seq BIGINT NOT NULL DEFAULT 0,
    last_action TEXT,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (destination, list_key)
);
CREATE TABLE removal_window (
    destination TEXT COLLATE "C" NOT NULL,
    list_key TEXT COLLATE "C" NOT NULL,
    bucket_ms BIGINT NOT NULL,
    removals BIGINT NOT NULL,
    PRIMARY KEY (destination, list_key, bucket_ms)
);
CREATE INDEX desired_pending_exits
    ON desired (destination, list_key, seq) WHERE state = 'pending' AND NOT member;
"#;

struct GuardRow {
    held_since_ms: Option<i64>,
    tripped: RemovalFigures,
    max_ratio: f64,
    counted_seq: i64,
}

fn figures(op: &'static str, m: i64, p: i64, s: i64) -> Result<RemovalFigures, StoreError> {
    Ok(RemovalFigures {
        members: to_u64(op, m.max(0))?,
        pending_removals: to_u64(op, p.max(0))?,
        removed_in_window: to_u64(op, s.max(0))?,
    })
}

/// The audience's guard row, locked (created first if missing, so that it can be).
/// Moves the audience's mark (the highest seq whose exits the guard counted or that were
/// approved) up to `seq`: exits at or below it are not judged again.
pub(super) async fn advance_mark(
    tx: &impl GenericClient,
    op: &'static str,
    destination: &str,
    audience_key: &str,
    seq: i64,
    now_ms: i64,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO removal_guard (destination, list_key, counted_seq, updated_ms)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (destination, list_key) DO UPDATE SET
         counted_seq = GREATEST(removal_guard.counted_seq, excluded.counted_seq),
         updated_ms = excluded.updated_ms",
        &[&destination, &audience_key, &seq, &now_ms],
    )
    .await
    .map_err(pg(op))?;
    Ok(())
}

async fn lock_guard_row(
    tx: &impl GenericClient,
    op: &'static str,
    destination: &str,
    audience_key: &str,
    now_ms: i64,
) -> Result<GuardRow, StoreError> {
    tx.execute(
        "INSERT INTO removal_guard (destination, list_key, updated_ms) VALUES ($1, $2, $3)
         ON CONFLICT (destination, list_key) DO NOTHING",
        &[&destination, &audience_key, &now_ms],
    )
    .await
    .map_err(pg(op))?;
    let r = tx
        .query_one(
            "SELECT held_since_ms, members, pending_removals, removed_in_window, max_ratio,
             counted_seq FROM removal_guard WHERE destination = $1 AND list_key = $2
             FOR UPDATE",
            &[&destination, &audience_key],
        )
        .await
        .map_err(pg(op))?;
    Ok(GuardRow {
        held_since_ms: r.get(0),
        tripped: figures(op, r.get(1), r.get(2), r.get(3))?,
        max_ratio: r.get(4),
        counted_seq: r.get(5),
    })
}

async fn parked(
    c: &impl GenericClient,
    op: &'static str,
    destination: &str,
    audience_key: &str,
) -> Result<u64, StoreError> {
    let n: i64 = c
        .query_one(
            "SELECT COUNT(*) FROM desired
             WHERE destination = $1 AND list_key = $2 AND state = 'pending'
               AND NOT member AND next_attempt_ms = $3",
            &[&destination, &audience_key, &HELD_MS],
        )
        .await
        .map_err(pg(op))?
        .get(0);
    to_u64(op, n)
}

/// Sets the reason of the parked removals' events, or clears it where it says they are
/// held.
async fn explain_parked(
    tx: &impl GenericClient,
    op: &'static str,
    destination: &str,
    audience_key: &str,
    reason: Option<&str>,
) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE event_audiences e SET reason = $4 FROM desired d
         WHERE d.destination = $1 AND d.list_key = $2 AND d.state = 'pending'
           AND NOT d.member AND d.next_attempt_ms = $3 AND e.seq = d.seq AND e.part = d.part
           AND e.status IN ('accepted', 'pending')
           AND ($4::text IS NOT NULL OR e.reason = $5)",
        &[&destination, &audience_key, &HELD_MS, &reason, &HELD_REASON],
    )
    .await
    .map(|_| ())
    .map_err(pg(op))
}

impl PostgresStore {
    pub async fn guard_removals(
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
        write_tx!(self, OP, |tx| {
            let row = lock_guard_row(&tx, OP, destination, audience_key, now_ms).await?;
            let counted = row.counted_seq;
            let (mut emails, mut users, mut seqs) = (Vec::new(), Vec::new(), Vec::new());
            for (id, seq) in exits {
                let seq = to_i64(OP, *seq)?;
                if seq > counted {
                    emails.push(key_part(&id.email));
                    users.push(key_part(&id.user_id));
                    seqs.push(seq);
                }
            }
            if let Some(since) = row.held_since_ms {
                tx.execute(
                    "WITH parked AS (
                       UPDATE desired d SET next_attempt_ms = $6
                       FROM UNNEST($3::text[], $4::text[], $5::bigint[])
                         AS k(email, user_id, seq)
                       WHERE d.destination = $1 AND d.list_key = $2 AND d.email = k.email
                         AND d.user_id = k.user_id AND d.seq = k.seq AND d.state = 'pending'
                         AND NOT d.member
                       RETURNING d.seq, d.part)
                     UPDATE event_audiences e SET reason = $7 FROM parked p
                     WHERE e.seq = p.seq AND e.part = p.part
                       AND e.status IN ('accepted', 'pending')",
                    &[
                        &destination,
                        &audience_key,
                        &emails,
                        &users,
                        &seqs,
                        &HELD_MS,
                        &HELD_REASON,
                    ],
                )
                .await
                .map_err(pg(OP))?;
                let held = parked(&tx, OP, destination, audience_key).await?;
                GuardVerdict::Held {
                    hold: RemovalHold {
                        audience_key: audience_key.to_string(),
                        since_ms: since,
                        tripped: row.tripped,
                        max_ratio: row.max_ratio,
                        held,
                    },
                    tripped_now: false,
                    approved_seq: to_u64(OP, counted)?,
                }
            } else if seqs.is_empty() {
                GuardVerdict::Allowed
            } else {
                let f =
                    Self::removal_figures(&tx, destination, audience_key, counted, &policy, now_ms)
                        .await?;
                if f.trips(&policy) {
                    tx.execute(
                        "UPDATE removal_guard SET held_since_ms = $3, members = $4,
                         pending_removals = $5, removed_in_window = $6, max_ratio = $7,
                         updated_ms = $3
                         WHERE destination = $1 AND list_key = $2",
                        &[
                            &destination,
                            &audience_key,
                            &now_ms,
                            &to_i64(OP, f.members)?,
                            &to_i64(OP, f.pending_removals)?,
                            &to_i64(OP, f.removed_in_window)?,
                            &policy.max_ratio,
                        ],
                    )
                    .await
                    .map_err(pg(OP))?;
                    tx.execute(
                        "UPDATE desired SET next_attempt_ms = $4
                         WHERE destination = $1 AND list_key = $2 AND state = 'pending'
                           AND NOT member AND seq > $3",
                        &[&destination, &audience_key, &counted, &HELD_MS],
                    )
                    .await
                    .map_err(pg(OP))?;
                    explain_parked(&tx, OP, destination, audience_key, Some(HELD_REASON)).await?;
                    let held = parked(&tx, OP, destination, audience_key).await?;
                    GuardVerdict::Held {
                        hold: RemovalHold {
                            audience_key: audience_key.to_string(),
                            since_ms: now_ms,
                            tripped: f,
                            max_ratio: policy.max_ratio,
                            held,
                        },
                        tripped_now: true,
                        approved_seq: to_u64(OP, counted)?,
                    }
                } else {
                    let bucket = policy.bucket_of(now_ms);
                    let n = seqs.len() as i64;
                    tx.execute(
                        "INSERT INTO removal_window (destination, list_key, bucket_ms, removals)
                         VALUES ($1, $2, $3, $4)
                         ON CONFLICT (destination, list_key, bucket_ms) DO UPDATE
                         SET removals = removal_window.removals + EXCLUDED.removals",
                        &[&destination, &audience_key, &bucket, &n],
                    )
                    .await
                    .map_err(pg(OP))?;
                    let top = seqs.iter().copied().max().unwrap_or(counted);
                    advance_mark(&tx, OP, destination, audience_key, top, now_ms).await?;
                    GuardVerdict::Allowed
                }
            }
        })
    }

    /// The figures the guard decides on (and forgets window buckets that ended).
    async fn removal_figures(
        tx: &impl GenericClient,
        destination: &str,
        audience_key: &str,
        counted: i64,
        policy: &RemovalPolicy,
        now_ms: i64,
    ) -> Result<RemovalFigures, StoreError> {
        const OP: &str = "guard_removals";
        let oldest = policy.expired_before(now_ms);
        tx.execute(
            "DELETE FROM removal_window
             WHERE destination = $1 AND list_key = $2 AND bucket_ms <= $3",
            &[&destination, &audience_key, &oldest],
        )
        .await
        .map_err(pg(OP))?;
        let r = tx
            .query_one(
                "SELECT
                   (SELECT COALESCE(SUM(removals), 0)::BIGINT FROM removal_window
                     WHERE destination = $1 AND list_key = $2),
                   (SELECT COALESCE(MAX(members), 0)::BIGINT FROM audience_counts
                     WHERE destination = $1 AND list_key = $2),
                   (SELECT COUNT(*) FROM desired
                     WHERE destination = $1 AND list_key = $2 AND state = 'pending'
                       AND NOT member AND ack_member AND seq > $3)",
                &[&destination, &audience_key, &counted],
            )
            .await
            .map_err(pg(OP))?;
        figures(OP, r.get(1), r.get(2), r.get(0))
    }

    pub async fn removal_holds(&self, destination: &str) -> Result<Vec<RemovalHold>, StoreError> {
        const OP: &str = "removal_holds";
        let c = self.client(OP).await?;
        let rows = c
            .query(
                "SELECT list_key, held_since_ms, members, pending_removals, removed_in_window,
                 max_ratio FROM removal_guard
                 WHERE destination = $1 AND held_since_ms IS NOT NULL ORDER BY list_key",
                &[&destination],
            )
            .await
            .map_err(pg(OP))?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let key: String = r.get(0);
            let held = parked(&c, OP, destination, &key).await?;
            out.push(RemovalHold {
                since_ms: r.get(1),
                tripped: figures(OP, r.get(2), r.get(3), r.get(4))?,
                max_ratio: r.get(5),
                held,
                audience_key: key,
            });
        }
        Ok(out)
    }

    pub async fn last_hold_decision(
        &self,
        destination: &str,
        audience_key: &str,
    ) -> Result<Option<(String, i64)>, StoreError> {
        const OP: &str = "last_hold_decision";
        let c = self.client(OP).await?;
        Ok(c.query_opt(
            "SELECT last_action, updated_ms FROM removal_guard
             WHERE destination = $1 AND list_key = $2 AND last_action IS NOT NULL",
            &[&destination, &audience_key],
        )
        .await
        .map_err(pg(OP))?
        .map(|r| (r.get(0), r.get(1))))
    }

    pub async fn resolve_hold(
        &self,
        destination: &str,
        audience_key: &str,
        action: HoldAction,
        actor: &str,
        now_ms: i64,
    ) -> Result<Option<u64>, StoreError> {
        const OP: &str = "resolve_hold";
        write_tx!(self, OP, |tx| {
            let row = lock_guard_row(&tx, OP, destination, audience_key, now_ms).await?;
            if row.held_since_ms.is_none() {
                None
            } else {
                let n = match action {
                    HoldAction::Release => {
                        explain_parked(&tx, OP, destination, audience_key, None).await?;
                        tx.execute(
                            "UPDATE desired SET next_attempt_ms = $4
                             WHERE destination = $1 AND list_key = $2 AND state = 'pending'
                               AND NOT member AND next_attempt_ms = $3",
                            &[&destination, &audience_key, &HELD_MS, &now_ms],
                        )
                        .await
                        .map_err(pg(OP))?
                    }
                    HoldAction::Discard => {
                        Self::discard(&tx, destination, audience_key, actor, now_ms).await?
                    }
                };
                let note = format!("{} {n} removal(s): {actor}", action.past());
                tx.execute(
                    "UPDATE removal_guard SET held_since_ms = NULL, last_action = $3,
                     updated_ms = $4,
                     counted_seq = GREATEST(counted_seq, COALESCE((SELECT MAX(seq) FROM events), 0))
                     WHERE destination = $1 AND list_key = $2",
                    &[&destination, &audience_key, &note, &now_ms],
                )
                .await
                .map_err(pg(OP))?;
                tx.execute(
                    "DELETE FROM removal_window WHERE destination = $1 AND list_key = $2",
                    &[&destination, &audience_key],
                )
                .await
                .map_err(pg(OP))?;
                Some(n)
            }
        })
    }

    /// Settles every parked removal of the audience as superseded by the operator (see the
    /// SQLite engine).
    async fn discard(
        tx: &impl GenericClient,
        destination: &str,
        audience_key: &str,
        actor: &str,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        const OP: &str = "resolve_hold";
        let reason = HoldAction::discard_reason(actor);
        let mut deltas = Deltas::default();
        // The events first (they are found through the parked keys), then the keys.
        let moved = tx
            .query(
                "WITH parked AS (
                   SELECT seq, part FROM desired
                   WHERE destination = $1 AND list_key = $2 AND state = 'pending'
                     AND NOT member AND next_attempt_ms = $3),
                 was AS (
                   SELECT e.seq, e.part, e.status FROM event_audiences e
                   JOIN parked p ON e.seq = p.seq AND e.part = p.part
                   WHERE e.status IN ('accepted', 'pending') FOR UPDATE OF e),
                 upd AS (
                   UPDATE event_audiences e SET status = 'superseded', reason = $4,
                     next_attempt_ms = NULL, updated_ms = $5
                   FROM was WHERE e.seq = was.seq AND e.part = was.part
                   RETURNING was.status)
                 SELECT status, COUNT(*) FROM upd GROUP BY status",
                &[&destination, &audience_key, &HELD_MS, &reason, &now_ms],
            )
            .await
            .map_err(pg(OP))?;
        let d = deltas.of(destination, audience_key);
        for r in moved {
            let from = status_of(OP, r.get::<_, &str>(0))?;
            let n: i64 = r.get(1);
            d.event(from, -n);
            d.event(StatusKind::Superseded, n);
        }
        let n = tx
            .execute(
                "UPDATE desired SET state = 'superseded', reason = $4, next_attempt_ms = 0,
                 member = COALESCE(ack_member, member)
                 WHERE destination = $1 AND list_key = $2 AND state = 'pending'
                   AND NOT member AND next_attempt_ms = $3",
                &[&destination, &audience_key, &HELD_MS, &reason],
            )
            .await
            .map_err(pg(OP))?;
        deltas.of(destination, audience_key).pending -= n as i64;
        counts::apply(tx, OP, &deltas).await?;
        Ok(n)
    }
}
