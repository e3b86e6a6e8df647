//! What the admin API reads and changes beyond the figures, as in the SQLite engine
//! (`crate::sqlite::admin`): rejected keys by pages, a user's keys in every audience, rejected
//! keys sent again, and the operator's pause.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::{PostgresStore, counts, identity_of, key_part, pg, to_i64, to_u64, write_tx};
use crate::sqlite::counts::Deltas;
use crate::store::{
    Identity, OperatorPause, RETRIED_REASON, RejectedKey, StatusKind, StoreError, UserKey,
    UserQuery, UserState, VersionEvent,
};

/// Schema version 5: the indexes and table of the admin API (created after the numbered steps
/// at every open by versions 3 and 4, unnumbered then; idempotent, so that such a database
/// keeps what it has). A user is found by userId through `desired_by_user_id`, and by email
/// through the primary key, one seek per audience ([`email_states_sql`]): the index on emails
/// that those versions created cost every new key one more index insert, for a lookup the
/// admin API makes now and then, and goes: from this schema only (`current_schema()`), never
/// from another deployment's further down the `search_path`.
pub(super) const V5: &str = r#"
CREATE INDEX IF NOT EXISTS desired_rejected
    ON desired (destination, list_key, email, user_id) WHERE state = 'rejected';
CREATE INDEX IF NOT EXISTS desired_by_user_id ON desired (user_id) WHERE user_id <> '';
CREATE TABLE IF NOT EXISTS operator_pauses (
    destination TEXT COLLATE "C" PRIMARY KEY,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL,
    since_ms BIGINT NOT NULL
);
DO $$ BEGIN
  IF to_regclass(format('%I.desired_by_email', current_schema())) IS NOT NULL THEN
    EXECUTE format('DROP INDEX %I.desired_by_email', current_schema());
  END IF;
END $$;
"#;

const USER_COLUMNS: &str = "d.destination, d.list_key, d.list_id, d.email, d.user_id, d.member,
     d.seq, d.time_ms, e.message_id, e.received_ms, d.state, d.reason, d.attempts,
     d.next_attempt_ms, d.ack_member, d.ack_seq, d.ack_time_ms, a.message_id, a.received_ms,
     d.ack_ms";

/// A user's keys by email (`$1`) after the key `($2, $3, $4, $5)`, at most `$6`: the audiences
/// with keys are walked on the primary key (`aud`: one seek each, the next after the last,
/// counting the user's keys met so far, until they fill the page), and in each, the email's
/// keys are one seek on the key's prefix (`LATERAL`: joined plainly, the planner may read the
/// keys from the after-key on and filter the email, every key). The cost grows with the
/// number of audiences, not of keys.
fn email_states_sql() -> String {
    format!(
        "WITH RECURSIVE aud AS (
       SELECT f.destination, f.list_key,
         (SELECT count(*) FROM desired k
          WHERE k.destination = f.destination AND k.list_key = f.list_key AND k.email = $1
            AND (k.destination, k.list_key, k.email, k.user_id) > ($2, $3, $4, $5)) AS found
       FROM (SELECT destination, list_key FROM desired
             WHERE (destination, list_key) >= ($2, $3)
             ORDER BY destination, list_key LIMIT 1) f
       UNION ALL
       SELECT n.destination, n.list_key,
         aud.found + (SELECT count(*) FROM desired k
                      WHERE k.destination = n.destination AND k.list_key = n.list_key
                        AND k.email = $1)
       FROM aud CROSS JOIN LATERAL (
         SELECT destination, list_key FROM desired
         WHERE (destination, list_key) > (aud.destination, aud.list_key)
         ORDER BY destination, list_key LIMIT 1) n
       WHERE aud.found < $6
     )
     SELECT {USER_COLUMNS} FROM aud
     CROSS JOIN LATERAL (
       SELECT * FROM desired k
       WHERE k.destination = aud.destination AND k.list_key = aud.list_key AND k.email = $1
         AND (k.destination, k.list_key, k.email, k.user_id) > ($2, $3, $4, $5)
       ORDER BY k.user_id LIMIT $6) d
     LEFT JOIN events e ON e.seq = d.seq
     LEFT JOIN events a ON a.seq = d.ack_seq
     ORDER BY d.destination, d.list_key, d.email, d.user_id LIMIT $6"
    )
}

fn user_state(op: &'static str, r: &Row) -> Result<UserState, StoreError> {
    let state: String = r.get(10);
    let attempts: i64 = r.get(12);
    let next: i64 = r.get(13);
    let ack_seq: Option<i64> = r.get(15);
    let acknowledged = match ack_seq {
        Some(s) => Some(VersionEvent {
            seq: to_u64(op, s)?,
            time_ms: r.get(16),
            message_id: r.get(17),
            received_ms: r.get(18),
        }),
        None => None,
    };
    Ok(UserState {
        destination: r.get(0),
        audience_key: r.get(1),
        list_id: r.get(2),
        identity: identity_of(r.get(3), r.get(4)),
        member: r.get(5),
        desired: VersionEvent {
            seq: to_u64(op, r.get(6))?,
            time_ms: r.get(7),
            message_id: r.get(8),
            received_ms: r.get(9),
        },
        next_attempt_ms: (state == "pending").then_some(next),
        state,
        reason: r.get(11),
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        ack_member: r.get(14),
        acknowledged,
        ack_ms: r.get(19),
    })
}

impl PostgresStore {
    pub async fn rejected_keys(
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
        let client = self.client(OP).await?;
        // `lower` of PostgreSQL also folds non-ASCII letters, SQLite's does not: the filter
        // is documented for ASCII letters.
        let stmt = client
            .prepare_cached(
                "SELECT d.email, d.user_id, d.member, d.reason, d.seq, d.accepted_ms, e.updated_ms
                 FROM desired d
                 LEFT JOIN event_audiences e ON e.seq = d.seq AND e.part = d.part
                 WHERE d.destination = $1 AND d.list_key = $2 AND d.state = 'rejected'
                   AND (d.email, d.user_id) > ($3, $4)
                   AND ($5 = '' OR strpos(lower(d.email), $5) > 0
                        OR strpos(lower(d.user_id), $5) > 0)
                 ORDER BY d.email, d.user_id LIMIT $6",
            )
            .await
            .map_err(pg(OP))?;
        let rows = client
            .query(
                &stmt,
                &[
                    &destination,
                    &audience_key,
                    &email,
                    &user_id,
                    &filter,
                    &limit,
                ],
            )
            .await
            .map_err(pg(OP))?;
        rows.iter()
            .map(|r| {
                Ok(RejectedKey {
                    identity: identity_of(r.get(0), r.get(1)),
                    member: r.get(2),
                    reason: r.get(3),
                    seq: to_u64(OP, r.get(4))?,
                    accepted_ms: r.get(5),
                    rejected_ms: r.get(6),
                })
            })
            .collect()
    }

    pub async fn retry_rejected(
        &self,
        destination: &str,
        audience_key: &str,
        keys: Option<&[Identity]>,
        now_ms: i64,
    ) -> Result<usize, StoreError> {
        const OP: &str = "retry_rejected";
        let (all, emails, user_ids) = match keys {
            None => (true, Vec::new(), Vec::new()),
            Some(keys) => {
                let mut sorted: Vec<(&str, &str)> = keys
                    .iter()
                    .map(|k| (key_part(&k.email), key_part(&k.user_id)))
                    .collect();
                sorted.sort_unstable();
                sorted.dedup();
                let (e, u): (Vec<&str>, Vec<&str>) = sorted.into_iter().unzip();
                (false, e, u)
            }
        };
        // The rows are locked in key order (as every writer of `desired` does), then changed
        // in one statement; their events' rows in a second.
        let sql = "WITH old AS (
               SELECT d.email, d.user_id FROM desired d
               WHERE d.destination = $1 AND d.list_key = $2 AND d.state = 'rejected'
                 AND ($3 OR (d.email, d.user_id) IN
                      (SELECT * FROM UNNEST($4::text[], $5::text[])))
               ORDER BY d.email, d.user_id
               FOR UPDATE OF d)
             UPDATE desired d SET state = 'pending', reason = $6, attempts = 0,
               next_attempt_ms = $7
             FROM old
             WHERE d.destination = $1 AND d.list_key = $2 AND d.email = old.email
               AND d.user_id = old.user_id
             RETURNING d.seq, d.part";
        write_tx!(self, OP, |tx| {
            let rows = tx
                .query(
                    sql,
                    &[
                        &destination,
                        &audience_key,
                        &all,
                        &emails,
                        &user_ids,
                        &RETRIED_REASON,
                        &now_ms,
                    ],
                )
                .await
                .map_err(pg(OP))?;
            let (seqs, parts): (Vec<i64>, Vec<i32>) = rows
                .iter()
                .map(|r| (r.get::<_, i64>(0), r.get::<_, i32>(1)))
                .unzip();
            let logged = tx
                .execute(
                    "UPDATE event_audiences e SET status = 'pending', reason = $3,
                       next_attempt_ms = $4, updated_ms = $4
                     FROM UNNEST($1::bigint[], $2::int[]) AS k(seq, part)
                     WHERE e.seq = k.seq AND e.part = k.part AND e.status = 'rejected'",
                    &[&seqs, &parts, &RETRIED_REASON, &now_ms],
                )
                .await
                .map_err(pg(OP))?;
            let mut deltas = Deltas::default();
            let d = deltas.of(destination, audience_key);
            for _ in &rows {
                d.state_moved("rejected", "pending");
            }
            for _ in 0..logged {
                d.event_moved(StatusKind::Rejected, StatusKind::Pending);
            }
            counts::apply(&tx, OP, &deltas).await?;
            rows.len()
        })
    }

    pub async fn user_states(
        &self,
        query: &UserQuery,
        after: Option<&UserKey>,
        limit: usize,
    ) -> Result<Vec<UserState>, StoreError> {
        const OP: &str = "user_states";
        let limit = to_i64(OP, limit as u64)?;
        let (sql, value) = match query {
            UserQuery::Email(e) => (email_states_sql(), e),
            UserQuery::UserId(u) => (
                format!(
                    "SELECT {USER_COLUMNS} FROM desired d
                     LEFT JOIN events e ON e.seq = d.seq
                     LEFT JOIN events a ON a.seq = d.ack_seq
                     WHERE d.user_id = $1 AND d.user_id <> ''
                       AND (d.destination, d.list_key, d.email, d.user_id) > ($2, $3, $4, $5)
                     ORDER BY d.destination, d.list_key, d.email, d.user_id LIMIT $6"
                ),
                u,
            ),
        };
        if value.is_empty() {
            return Ok(Vec::new());
        }
        let client = self.client(OP).await?;
        let stmt = client.prepare_cached(&sql).await.map_err(pg(OP))?;
        let (d, a, e, u) = after.map_or(("", "", "", ""), |k| {
            (
                k.destination.as_str(),
                k.audience_key.as_str(),
                key_part(&k.identity.email),
                key_part(&k.identity.user_id),
            )
        });
        let rows = client
            .query(&stmt, &[value, &d, &a, &e, &u, &limit])
            .await
            .map_err(pg(OP))?;
        rows.iter().map(|r| user_state(OP, r)).collect()
    }

    pub async fn operator_pause(
        &self,
        destination: &str,
    ) -> Result<Option<OperatorPause>, StoreError> {
        const OP: &str = "operator_pause";
        let client = self.client(OP).await?;
        let row = client
            .query_opt(
                "SELECT actor, reason, since_ms FROM operator_pauses WHERE destination = $1",
                &[&destination],
            )
            .await
            .map_err(pg(OP))?;
        Ok(row.map(|r| OperatorPause {
            actor: r.get(0),
            reason: r.get(1),
            since_ms: r.get(2),
        }))
    }

    pub async fn set_operator_pause(
        &self,
        destination: &str,
        pause: Option<&OperatorPause>,
    ) -> Result<bool, StoreError> {
        const OP: &str = "set_operator_pause";
        write_tx!(self, OP, |tx| {
            let n = match pause {
                Some(p) => {
                    tx.execute(
                        "INSERT INTO operator_pauses (destination, actor, reason, since_ms)
                         VALUES ($1, $2, $3, $4) ON CONFLICT (destination) DO NOTHING",
                        &[&destination, &p.actor, &p.reason, &p.since_ms],
                    )
                    .await
                }
                None => {
                    tx.execute(
                        "DELETE FROM operator_pauses WHERE destination = $1",
                        &[&destination],
                    )
                    .await
                }
            }
            .map_err(pg(OP))?;
            n > 0
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::Access;
    use testkit::postgres::PgSchema;

    /// The plan's lines of `explain` (`EXPLAIN`, or `EXPLAIN ANALYZE` to run it) of the lookup
    /// of `email`'s keys, a first page of `limit`.
    async fn email_lookup_plan(
        client: &deadpool_postgres::Object,
        explain: &str,
        email: &str,
        limit: i64,
    ) -> Vec<String> {
        let rows = client
            .query(
                &format!("{explain} {}", email_states_sql()),
                &[&email, &"", &"", &"", &"", &limit],
            )
            .await
            .expect("explain");
        rows.iter().map(|r| r.get(0)).collect()
    }

    /// The plan of a lookup by email, with sequential scans priced out (so that any left
    /// would have no other way): every read of `desired` is an index scan on its key, the
    /// walk's steps by the row value of (destination, audience), the email's keys by the
    /// key's prefix. (Joined without `LATERAL`, the planner read every key after the
    /// after-key and filtered the email: this test failed on it.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lookup_by_email_reads_desired_by_its_key_only() {
        let schema = PgSchema::create("admin_email_plan");
        let store = PostgresStore::open(&schema.url(), 2, Access::ReadWrite)
            .await
            .expect("open");
        let client = store.client("test").await.expect("client");
        client
            .batch_execute("SET enable_seqscan = off")
            .await
            .expect("set");
        let plan = email_lookup_plan(&client, "EXPLAIN", "a@x.co", 10)
            .await
            .join("\n");
        assert!(!plan.contains("Seq Scan"), "{plan}");
        assert!(
            plan.contains(
                "(destination = aud.destination) AND (list_key = aud.list_key) AND (email = "
            ),
            "the email's keys sought in each audience: {plan}"
        );
        assert!(
            plan.contains("Index Cond: (ROW(destination, list_key) > ROW(aud_1.destination"),
            "the next audience sought after the last: {plan}"
        );
    }

    /// The walk over the audiences stops once the user's keys fill the page: a page of 2 of a
    /// user in 50 audiences walks 2 of them (the recursion's rows, read from `EXPLAIN
    /// ANALYZE`), not all 50 for a sort that keeps 2.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lookup_by_email_walks_only_the_audiences_its_page_needs() {
        let schema = PgSchema::create("admin_email_walk");
        let store = PostgresStore::open(&schema.url(), 2, Access::ReadWrite)
            .await
            .expect("open");
        let events = (0..50)
            .map(|a| {
                let (id, audience) = (format!("m{a}"), format!("a{a:02}"));
                crate::store::joining_event("d", &id, &audience, "jane@x.co")
            })
            .collect();
        store.accept(events).await.expect("accept");
        let client = store.client("test").await.expect("client");
        let plan = email_lookup_plan(&client, "EXPLAIN ANALYZE", "jane@x.co", 2).await;
        let walked = plan
            .iter()
            .find(|l| l.contains("Recursive Union"))
            .and_then(|l| l.split("rows=").nth(2))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse::<u32>().ok());
        assert_eq!(walked, Some(2), "{}", plan.join("\n"));
    }
}
