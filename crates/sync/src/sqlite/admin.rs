//! What the admin API reads and changes beyond the figures (see `crate::store::admin`):
//! rejected keys by pages, a user's keys in every audience, rejected keys sent again, and the
//! operator's pause.

use rusqlite::{OptionalExtension, Row, params};

use super::counts::{self, Delta};
use super::{SqliteStore, engine, identity_of, key_part, to_i64, to_u64};
use crate::store::{
    Identity, OperatorPause, RETRIED_REASON, RejectedKey, StatusKind, StoreError, UserKey,
    UserQuery, UserState, VersionEvent,
};

/// The indexes and table of the admin API. Every statement is idempotent and runs at each
/// open (schema version 5 and later): a separate step, so that it can be given a version
/// number of its own when the schema versions are next renumbered. The reads name their index
/// (`INDEXED BY`): the planner would otherwise walk an audience's primary key, every key of
/// it, to find the few rejected ones.
pub(super) const SCHEMA: &str = "
CREATE INDEX IF NOT EXISTS desired_rejected
    ON desired (destination, list_key, email, user_id) WHERE state = 'rejected';
CREATE INDEX IF NOT EXISTS desired_by_email ON desired (email) WHERE email <> '';
CREATE INDEX IF NOT EXISTS desired_by_user_id ON desired (user_id) WHERE user_id <> '';
CREATE TABLE IF NOT EXISTS operator_pauses (
    destination TEXT PRIMARY KEY,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL,
    since_ms INTEGER NOT NULL
);
";

/// The columns [`user_state`] reads, `d` being `desired`, `e` the desired version's event and
/// `a` the acknowledged version's.
const USER_COLUMNS: &str = "d.destination, d.list_key, d.list_id, d.email, d.user_id, d.member,
     d.seq, d.time_ms, e.message_id, e.received_ms, d.state, d.reason, d.attempts,
     d.next_attempt_ms, d.ack_member, d.ack_seq, d.ack_time_ms, a.message_id, a.received_ms,
     d.ack_ms";

/// A row of [`USER_COLUMNS`], with the desired and acknowledged seqs as stored.
fn user_state(r: &Row<'_>) -> rusqlite::Result<(UserState, i64, Option<i64>)> {
    let state: String = r.get(10)?;
    let attempts: i64 = r.get(12)?;
    let next: i64 = r.get(13)?;
    let ack_seq: Option<i64> = r.get(15)?;
    let acknowledged = match ack_seq {
        Some(_) => Some(VersionEvent {
            seq: 0,
            time_ms: r.get(16)?,
            message_id: r.get(17)?,
            received_ms: r.get(18)?,
        }),
        None => None,
    };
    let u = UserState {
        destination: r.get(0)?,
        audience_key: r.get(1)?,
        list_id: r.get(2)?,
        identity: identity_of(r.get(3)?, r.get(4)?),
        member: r.get(5)?,
        desired: VersionEvent {
            seq: 0,
            time_ms: r.get(7)?,
            message_id: r.get(8)?,
            received_ms: r.get(9)?,
        },
        next_attempt_ms: (state == "pending").then_some(next),
        state,
        reason: r.get(11)?,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        ack_member: r.get(14)?,
        acknowledged,
        ack_ms: r.get(19)?,
    };
    Ok((u, r.get(6)?, ack_seq))
}

/// Every rejected key of one audience pending again, in two statements (nothing of them is
/// held in memory): their events' rows first, while the keys still say which they are.
fn retry_all(
    tx: &rusqlite::Connection,
    destination: &str,
    audience_key: &str,
    now_ms: i64,
) -> Result<usize, StoreError> {
    const OP: &str = "retry_rejected";
    let logged = tx
        .execute(
            "UPDATE event_audiences SET status = 'pending', reason = ?3, next_attempt_ms = ?4,
               updated_ms = ?4
             WHERE status = 'rejected' AND (seq, part) IN (
               SELECT seq, part FROM desired INDEXED BY desired_rejected
               WHERE destination = ?1 AND list_key = ?2 AND state = 'rejected')",
            params![destination, audience_key, RETRIED_REASON, now_ms],
        )
        .map_err(engine(OP))?;
    let retried = tx
        .execute(
            "UPDATE desired SET state = 'pending', reason = ?3, attempts = 0,
               next_attempt_ms = ?4
             WHERE destination = ?1 AND list_key = ?2 AND state = 'rejected'",
            params![destination, audience_key, RETRIED_REASON, now_ms],
        )
        .map_err(engine(OP))?;
    let (n, events) = (retried as i64, logged as i64);
    let mut d = Delta {
        rejected: -n,
        pending: n,
        ..Delta::default()
    };
    d.event(StatusKind::Rejected, -events);
    d.event(StatusKind::Pending, events);
    counts::apply(tx, OP, destination, audience_key, &d)?;
    Ok(retried)
}

impl SqliteStore {
    pub fn rejected_keys(
        &self,
        destination: &str,
        audience_key: &str,
        after: Option<&Identity>,
        filter: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RejectedKey>, StoreError> {
        const OP: &str = "rejected_keys";
        let limit = to_i64(OP, limit as u64)?;
        let (email, user_id) =
            after.map_or(("", ""), |a| (key_part(&a.email), key_part(&a.user_id)));
        let filter = filter.unwrap_or("").to_ascii_lowercase();
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT d.email, d.user_id, d.member, d.reason, d.seq, d.accepted_ms, e.updated_ms
                 FROM desired d INDEXED BY desired_rejected
                 LEFT JOIN event_audiences e ON e.seq = d.seq AND e.part = d.part
                 WHERE d.destination = ?1 AND d.list_key = ?2 AND d.state = 'rejected'
                   AND (d.email, d.user_id) > (?3, ?4)
                   AND (?5 = '' OR instr(lower(d.email), ?5) > 0
                        OR instr(lower(d.user_id), ?5) > 0)
                 ORDER BY d.email, d.user_id LIMIT ?6",
            )
            .map_err(engine(OP))?;
        let rows = stmt
            .query_map(
                params![destination, audience_key, email, user_id, filter, limit],
                |r| {
                    Ok((
                        identity_of(r.get(0)?, r.get(1)?),
                        r.get::<_, bool>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, i64>(5)?,
                        r.get::<_, Option<i64>>(6)?,
                    ))
                },
            )
            .map_err(engine(OP))?;
        let mut out = Vec::new();
        for row in rows {
            let (identity, member, reason, seq, accepted_ms, rejected_ms) =
                row.map_err(engine(OP))?;
            out.push(RejectedKey {
                identity,
                member,
                reason,
                seq: to_u64(OP, seq)?,
                accepted_ms,
                rejected_ms,
            });
        }
        Ok(out)
    }

    pub fn retry_rejected(
        &self,
        destination: &str,
        audience_key: &str,
        keys: Option<&[Identity]>,
        now_ms: i64,
    ) -> Result<usize, StoreError> {
        const OP: &str = "retry_rejected";
        self.write(OP, |tx| {
            let Some(keys) = keys else {
                return retry_all(tx, destination, audience_key, now_ms);
            };
            let mut one = tx
                .prepare_cached(
                    "SELECT seq, part FROM desired
                     WHERE destination = ?1 AND list_key = ?2 AND email = ?3
                       AND user_id = ?4 AND state = 'rejected'",
                )
                .map_err(engine(OP))?;
            let mut key = tx
                .prepare_cached(
                    "UPDATE desired SET state = 'pending', reason = ?5, attempts = 0,
                     next_attempt_ms = ?6
                     WHERE destination = ?1 AND list_key = ?2 AND email = ?3 AND user_id = ?4
                       AND state = 'rejected'",
                )
                .map_err(engine(OP))?;
            let mut log = tx
                .prepare_cached(
                    "UPDATE event_audiences SET status = 'pending', reason = ?3,
                     next_attempt_ms = ?4, updated_ms = ?4
                     WHERE seq = ?1 AND part = ?2 AND status = 'rejected'",
                )
                .map_err(engine(OP))?;
            let mut d = Delta::default();
            let mut retried = 0;
            for k in keys {
                let (email, user_id) = (key_part(&k.email), key_part(&k.user_id));
                let row: Option<(i64, i64)> = one
                    .query_row(params![destination, audience_key, email, user_id], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })
                    .optional()
                    .map_err(engine(OP))?;
                // A key given twice is rejected no more the second time.
                let Some((seq, part)) = row else { continue };
                key.execute(params![
                    destination,
                    audience_key,
                    email,
                    user_id,
                    RETRIED_REASON,
                    now_ms
                ])
                .map_err(engine(OP))?;
                d.state_moved("rejected", "pending");
                retried += 1;
                let logged = log
                    .execute(params![seq, part, RETRIED_REASON, now_ms])
                    .map_err(engine(OP))?;
                if logged > 0 {
                    d.event_moved(StatusKind::Rejected, StatusKind::Pending);
                }
            }
            counts::apply(tx, OP, destination, audience_key, &d)?;
            Ok(retried)
        })
    }

    pub fn user_states(
        &self,
        query: &UserQuery,
        after: Option<&UserKey>,
        limit: usize,
    ) -> Result<Vec<UserState>, StoreError> {
        const OP: &str = "user_states";
        let limit = to_i64(OP, limit as u64)?;
        let (column, index, value) = match query {
            UserQuery::Email(e) => ("email", "desired_by_email", e),
            UserQuery::UserId(u) => ("user_id", "desired_by_user_id", u),
        };
        if value.is_empty() {
            return Ok(Vec::new());
        }
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT {USER_COLUMNS} FROM desired d INDEXED BY {index}
                 LEFT JOIN events e ON e.seq = d.seq
                 LEFT JOIN events a ON a.seq = d.ack_seq
                 WHERE d.{column} = ?1 AND d.{column} <> ''
                   AND (d.destination, d.list_key, d.email, d.user_id) > (?2, ?3, ?4, ?5)
                 ORDER BY d.destination, d.list_key, d.email, d.user_id LIMIT ?6"
            ))
            .map_err(engine(OP))?;
        let (d, a, e, u) = after.map_or(("", "", "", ""), |k| {
            (
                k.destination.as_str(),
                k.audience_key.as_str(),
                key_part(&k.identity.email),
                key_part(&k.identity.user_id),
            )
        });
        let rows = stmt
            .query_map(params![value, d, a, e, u, limit], user_state)
            .map_err(engine(OP))?;
        let mut out = Vec::new();
        for row in rows {
            let (mut u, seq, ack_seq) = row.map_err(engine(OP))?;
            u.desired.seq = to_u64(OP, seq)?;
            if let (Some(a), Some(s)) = (&mut u.acknowledged, ack_seq) {
                a.seq = to_u64(OP, s)?;
            }
            out.push(u);
        }
        Ok(out)
    }

    pub fn operator_pause(&self, destination: &str) -> Result<Option<OperatorPause>, StoreError> {
        const OP: &str = "operator_pause";
        let conn = self.lock();
        conn.query_row(
            "SELECT actor, reason, since_ms FROM operator_pauses WHERE destination = ?1",
            params![destination],
            |r| {
                Ok(OperatorPause {
                    actor: r.get(0)?,
                    reason: r.get(1)?,
                    since_ms: r.get(2)?,
                })
            },
        )
        .optional()
        .map_err(engine(OP))
    }

    pub fn set_operator_pause(
        &self,
        destination: &str,
        pause: Option<&OperatorPause>,
    ) -> Result<bool, StoreError> {
        const OP: &str = "set_operator_pause";
        self.write(OP, |tx| {
            let n = match pause {
                Some(p) => tx.execute(
                    "INSERT INTO operator_pauses (destination, actor, reason, since_ms)
                     VALUES (?1, ?2, ?3, ?4) ON CONFLICT (destination) DO NOTHING",
                    params![destination, p.actor, p.reason, p.since_ms],
                ),
                None => tx.execute(
                    "DELETE FROM operator_pauses WHERE destination = ?1",
                    params![destination],
                ),
            }
            .map_err(engine(OP))?;
            Ok(n > 0)
        })
    }
}
