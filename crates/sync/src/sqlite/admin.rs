//! What the admin API reads and changes beyond the figures (see `crate::store::admin`):
//! rejected keys by pages, a user's keys in every audience, rejected keys sent again, and the
//! operator's pause.

use rusqlite::{CachedStatement, Connection, OptionalExtension, Row, params};

use super::counts::{self, Delta};
use super::{SqliteStore, engine, identity_of, key_part, to_i64, to_u64};
use crate::store::{
    Identity, OperatorPause, RETRIED_REASON, RejectedKey, StatusKind, StoreError, UserKey,
    UserQuery, UserState, VersionEvent,
};

/// The indexes and table of the admin API (schema version 7; idempotent, run at each open). The
/// reads name their index (`INDEXED BY`): the planner would otherwise walk an audience's
/// primary key (the key's unique index), every key of it, to find the few rejected ones.
///
/// A user is found by userId through `desired_by_user_id`, and by email through the primary
/// key, one seek per audience ([`email_states_sql`]): an index on emails cost every new key a
/// B-tree insert (3.9% of the service's instructions per event), for a lookup the admin API
/// makes now and then. Version 7 drops it (`desired_by_email`, created by versions 5 and 6).
///
/// Since version 8 (`desired` a rowid table) `desired_by_user_id` holds the userId and the
/// rowid only, where the clustered table's index carried the whole key: a page of a user's
/// keys reads all of that user's keys and sorts them ([`user_id_states_sql`]), about a
/// millisecond for a user in 1,000 audiences. Naming the rest of the key in the index would
/// spare the sort but cost 2–3% more instructions per event (BENCHMARKS.md).
pub(super) const SCHEMA: &str = "
CREATE INDEX IF NOT EXISTS desired_rejected
    ON desired (destination, list_key, email, user_id) WHERE state = 'rejected';
CREATE INDEX IF NOT EXISTS desired_by_user_id ON desired (user_id) WHERE user_id <> '';
CREATE TABLE IF NOT EXISTS operator_pauses (
    destination TEXT PRIMARY KEY,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL,
    since_ms INTEGER NOT NULL
);
";

/// The migration to version 7: the index on emails goes (see [`SCHEMA`]).
pub(super) const V7_DROP: &str = "DROP INDEX IF EXISTS desired_by_email;";

/// The columns [`user_state`] reads, `d` being `desired`, `e` the desired version's event and
/// `a` the acknowledged version's.
const USER_COLUMNS: &str = "d.destination, d.list_key, d.list_id, d.email, d.user_id, d.member,
     d.seq, d.time_ms, e.message_id, e.received_ms, d.state, d.reason, d.attempts,
     d.next_attempt_ms, d.ack_member, d.ack_seq, d.ack_time_ms, a.message_id, a.received_ms,
     d.ack_ms";

/// A user's keys by email in one audience (`?2`, `?3`) that come after the key `(?4, ?5, ?6,
/// ?7)`, at most `?8`: one seek on the primary key's prefix (its unique index).
fn email_states_sql() -> String {
    format!(
        "SELECT {USER_COLUMNS} FROM desired d
         LEFT JOIN events e ON e.seq = d.seq
         LEFT JOIN events a ON a.seq = d.ack_seq
         WHERE d.destination = ?2 AND d.list_key = ?3 AND d.email = ?1
           AND (d.destination, d.list_key, d.email, d.user_id) > (?4, ?5, ?6, ?7)
         ORDER BY d.user_id LIMIT ?8"
    )
}

const AUDIENCE_FROM: &str =
    "SELECT MIN(list_key) FROM desired WHERE destination = ?1 AND list_key >= ?2";
const AUDIENCE_AFTER: &str =
    "SELECT MIN(list_key) FROM desired WHERE destination = ?1 AND list_key > ?2";
const DESTINATION_AFTER: &str = "SELECT MIN(destination) FROM desired WHERE destination > ?1";

/// The walk over the audiences that have keys, on `desired`'s primary key (its unique index):
/// each step is one or two seeks, whatever the number of keys.
struct Audiences<'c> {
    /// The first audience of a destination at or after a key (`?2`).
    from: CachedStatement<'c>,
    /// The next audience of a destination.
    next: CachedStatement<'c>,
    /// The next destination.
    next_destination: CachedStatement<'c>,
}

impl<'c> Audiences<'c> {
    fn prepare(conn: &'c Connection) -> rusqlite::Result<Self> {
        Ok(Self {
            from: conn.prepare_cached(AUDIENCE_FROM)?,
            next: conn.prepare_cached(AUDIENCE_AFTER)?,
            next_destination: conn.prepare_cached(DESTINATION_AFTER)?,
        })
    }

    /// The first audience with keys at or after `(destination, list_key)`.
    fn first(
        &mut self,
        destination: &str,
        list_key: &str,
    ) -> rusqlite::Result<Option<(String, String)>> {
        self.step(true, destination, list_key)
    }

    /// The audience with keys after `(destination, list_key)`.
    fn after(
        &mut self,
        destination: &str,
        list_key: &str,
    ) -> rusqlite::Result<Option<(String, String)>> {
        self.step(false, destination, list_key)
    }

    /// The next audience of `destination` from `list_key` (`at`: that one included), else the
    /// first of the next destination.
    fn step(
        &mut self,
        at: bool,
        destination: &str,
        list_key: &str,
    ) -> rusqlite::Result<Option<(String, String)>> {
        let stmt = if at { &mut self.from } else { &mut self.next };
        let l: Option<String> = stmt.query_row(params![destination, list_key], |r| r.get(0))?;
        match l {
            Some(l) => Ok(Some((destination.to_string(), l))),
            None => self.first_of_next_destination(destination),
        }
    }

    fn first_of_next_destination(
        &mut self,
        destination: &str,
    ) -> rusqlite::Result<Option<(String, String)>> {
        let d: Option<String> = self
            .next_destination
            .query_row(params![destination], |r| r.get(0))?;
        let Some(d) = d else { return Ok(None) };
        let l: Option<String> = self.from.query_row(params![d, ""], |r| r.get(0))?;
        Ok(l.map(|l| (d, l)))
    }
}

/// A user's keys by userId, after the key `(?2, ?3, ?4, ?5)`, at most `?6`.
fn user_id_states_sql() -> String {
    format!(
        "SELECT {USER_COLUMNS} FROM desired d INDEXED BY desired_by_user_id
         LEFT JOIN events e ON e.seq = d.seq
         LEFT JOIN events a ON a.seq = d.ack_seq
         WHERE d.user_id = ?1 AND d.user_id <> ''
           AND (d.destination, d.list_key, d.email, d.user_id) > (?2, ?3, ?4, ?5)
         ORDER BY d.destination, d.list_key, d.email, d.user_id LIMIT ?6"
    )
}

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
        let (email, value) = match query {
            UserQuery::Email(e) => (true, e),
            UserQuery::UserId(u) => (false, u),
        };
        if value.is_empty() {
            return Ok(Vec::new());
        }
        let (d, a, e, u) = after.map_or(("", "", "", ""), |k| {
            (
                k.destination.as_str(),
                k.audience_key.as_str(),
                key_part(&k.identity.email),
                key_part(&k.identity.user_id),
            )
        });
        let conn = self.lock();
        let mut raw = Vec::new();
        if email {
            let mut walk = Audiences::prepare(&conn).map_err(engine(OP))?;
            let mut keys = conn
                .prepare_cached(&email_states_sql())
                .map_err(engine(OP))?;
            let mut at = walk.first(d, a).map_err(engine(OP))?;
            while let Some((destination, list_key)) = at
                && raw.len() < limit as usize
            {
                let left = limit - raw.len() as i64;
                let rows = keys
                    .query_map(
                        params![value, destination, list_key, d, a, e, u, left],
                        user_state,
                    )
                    .map_err(engine(OP))?;
                for row in rows {
                    raw.push(row.map_err(engine(OP))?);
                }
                at = walk.after(&destination, &list_key).map_err(engine(OP))?;
            }
        } else {
            let mut stmt = conn
                .prepare_cached(&user_id_states_sql())
                .map_err(engine(OP))?;
            let rows = stmt
                .query_map(params![value, d, a, e, u, limit], user_state)
                .map_err(engine(OP))?;
            for row in rows {
                raw.push(row.map_err(engine(OP))?);
            }
        }
        let mut out = Vec::with_capacity(raw.len());
        for (mut u, seq, ack_seq) in raw {
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

#[cfg(test)]
mod tests {
    use super::super::query_plan;
    use super::*;

    /// The plans of a lookup by email: each step of the walk over the audiences is a seek on
    /// the key of `desired` (its unique index), and so are the email's keys in each; nothing is
    /// scanned or sorted.
    #[test]
    fn a_lookup_by_email_seeks_each_audience_on_the_key() {
        let s = SqliteStore::open(":memory:").expect("open");
        let conn = s.lock();
        for (sql, search) in [
            (
                email_states_sql(),
                "INDEX sqlite_autoindex_desired_1 (destination=? AND list_key=? AND email=?)",
            ),
            (
                AUDIENCE_FROM.to_string(),
                "INDEX sqlite_autoindex_desired_1 (destination=? AND list_key>?)",
            ),
            (
                AUDIENCE_AFTER.to_string(),
                "INDEX sqlite_autoindex_desired_1 (destination=? AND list_key>?)",
            ),
            (
                DESTINATION_AFTER.to_string(),
                "INDEX sqlite_autoindex_desired_1 (destination>?)",
            ),
        ] {
            let plan = query_plan(&conn, &sql);
            assert!(plan.contains(search), "{sql}\n{plan}");
            assert!(
                !plan.contains("SCAN") && !plan.contains("TEMP B-TREE"),
                "{sql}\n{plan}"
            );
        }
        // By userId: the user's keys alone are read (then sorted), nothing else of `desired`.
        let plan = query_plan(&conn, &user_id_states_sql());
        assert!(
            plan.contains("SEARCH d USING INDEX desired_by_user_id (user_id=?)"),
            "{plan}"
        );
        assert!(!plan.contains("SCAN"), "{plan}");
    }

    /// Each step of the walk over the audiences is a seek that reads one key, not a walk
    /// over the keys of the audiences it passes (the query plans read the same for both):
    /// counted in the VM's steps, against 300 keys per audience.
    #[test]
    fn each_step_of_the_walk_reads_one_key() {
        let s = SqliteStore::open(":memory:").expect("open");
        let mut n = 0;
        for destination in ["d1", "d2"] {
            for audience in ["a1", "a2", "a3"] {
                let batch: Vec<_> = (0..300)
                    .map(|i| {
                        n += 1;
                        let (id, email) = (format!("m{n}"), format!("u{i}@x.co"));
                        crate::store::joining_event(destination, &id, audience, &email)
                    })
                    .collect();
                s.accept(&batch).expect("accept");
            }
        }
        let conn = s.lock();
        for (sql, args, want) in [
            (AUDIENCE_FROM, vec!["d1", "a2"], Some("a2")),
            (AUDIENCE_AFTER, vec!["d1", "a1"], Some("a2")),
            (AUDIENCE_AFTER, vec!["d1", "a3"], None),
            (DESTINATION_AFTER, vec!["d1"], Some("d2")),
        ] {
            let mut st = conn.prepare(sql).expect("prepare");
            let got: Option<String> = st
                .query_row(rusqlite::params_from_iter(&args), |r| r.get(0))
                .expect("step");
            assert_eq!(got.as_deref(), want, "{sql} {args:?}");
            let steps = st.get_status(rusqlite::StatementStatus::VmStep);
            assert!(steps < 60, "{steps} VM steps: {sql} {args:?}");
        }
    }
}
