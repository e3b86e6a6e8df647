//! What drift repair reads and writes, as in the SQLite engine (`crate::sqlite::drift`): the
//! keys of an audience in key order, keys made pending again, and a list deleted in Iterable
//! replaced by a new one with the audience's whole membership pending again.

use deadpool_postgres::GenericClient;

use super::{PostgresStore, counts, identity_of, key_part, pg, to_i64, write_tx};
use crate::sqlite::counts::Deltas;
use crate::store::{AudienceKey, Identity, RECREATED, StoreError};

/// Forgets what Iterable acknowledged of one key; `ack_ms` (when Iterable last answered for
/// it) stays, as the audience's last delivery.
const FORGET_ACK: &str = "ack_member = NULL, ack_time_ms = NULL, ack_seq = NULL";

impl PostgresStore {
    pub async fn audience_keys(
        &self,
        destination: &str,
        audience_key: &str,
        after: Option<&Identity>,
        limit: usize,
    ) -> Result<Vec<AudienceKey>, StoreError> {
        const OP: &str = "audience_keys";
        let limit = to_i64(OP, limit as u64)?;
        let (email, user_id) =
            after.map_or(("", ""), |a| (key_part(&a.email), key_part(&a.user_id)));
        let client = self.client(OP).await?;
        let stmt = client
            .prepare_cached(
                "SELECT email, user_id, member, ack_member, state = 'pending', list_id
                 FROM desired
                 WHERE destination = $1 AND list_key = $2 AND (email, user_id) > ($3, $4)
                 ORDER BY email, user_id LIMIT $5",
            )
            .await
            .map_err(pg(OP))?;
        let rows = client
            .query(
                &stmt,
                &[&destination, &audience_key, &email, &user_id, &limit],
            )
            .await
            .map_err(pg(OP))?;
        Ok(rows
            .iter()
            .map(|r| AudienceKey {
                identity: identity_of(r.get(0), r.get(1)),
                member: r.get(2),
                ack_member: r.get(3),
                pending: r.get(4),
                list_id: r.get(5),
            })
            .collect())
    }

    pub async fn reopen_keys(
        &self,
        destination: &str,
        audience_key: &str,
        keys: &[Identity],
        reason: &str,
        now_ms: i64,
    ) -> Result<usize, StoreError> {
        const OP: &str = "reopen_keys";
        if keys.is_empty() {
            return Ok(0);
        }
        let mut sorted: Vec<(&str, &str)> = keys
            .iter()
            .map(|k| (key_part(&k.email), key_part(&k.user_id)))
            .collect();
        sorted.sort_unstable();
        sorted.dedup();
        let (emails, user_ids): (Vec<&str>, Vec<&str>) = sorted.into_iter().unzip();
        // The rows are locked in key order (as every writer of `desired` does), then changed in
        // one statement that returns what they were.
        let sql = format!(
            "WITH old AS (
               SELECT d.email, d.user_id, d.state, d.ack_member FROM desired d
               JOIN UNNEST($3::text[], $4::text[]) AS k(email, user_id)
                 ON d.email = k.email AND d.user_id = k.user_id
               WHERE d.destination = $1 AND d.list_key = $2 AND d.state <> 'pending'
               ORDER BY d.email, d.user_id
               FOR UPDATE OF d)
             UPDATE desired d SET state = 'pending', reason = $5, attempts = 0,
               next_attempt_ms = $6, {FORGET_ACK}
             FROM old
             WHERE d.destination = $1 AND d.list_key = $2 AND d.email = old.email
               AND d.user_id = old.user_id
             RETURNING old.state, old.ack_member"
        );
        write_tx!(self, OP, |tx| {
            let rows = tx
                .query(
                    &sql,
                    &[
                        &destination,
                        &audience_key,
                        &emails,
                        &user_ids,
                        &reason,
                        &now_ms,
                    ],
                )
                .await
                .map_err(pg(OP))?;
            let mut deltas = Deltas::default();
            let d = deltas.of(destination, audience_key);
            for r in &rows {
                let state: String = r.get(0);
                let ack: Option<bool> = r.get(1);
                d.state_moved(&state, "pending");
                d.members -= i64::from(ack == Some(true));
            }
            counts::apply(&tx, OP, &deltas).await?;
            rows.len()
        })
    }

    pub async fn replace_list(
        &self,
        destination: &str,
        audience_key: &str,
        old_list: i64,
        new_list: i64,
        now_ms: i64,
    ) -> Result<Option<usize>, StoreError> {
        const OP: &str = "replace_list";
        let scope = "destination = $1 AND list_key = $2 AND list_id IS NULL";
        write_tx!(self, OP, |tx| {
            let replaced = tx
                .execute(
                    "UPDATE lists SET list_id = $4
                     WHERE destination = $1 AND audience_key = $2 AND list_id = $3",
                    &[&destination, &audience_key, &old_list, &new_list],
                )
                .await
                .map_err(pg(OP))?;
            if replaced == 0 {
                None
            } else {
                // Every key of the audience, locked in key order, then counted and changed.
                let r = tx
                    .query_one(
                        &format!(
                            "WITH locked AS (SELECT ack_member, member, state FROM desired
                               WHERE {scope} ORDER BY email, user_id FOR UPDATE)
                             SELECT COUNT(*) FILTER (WHERE ack_member),
                               COUNT(*) FILTER (WHERE member AND state = 'delivered')
                             FROM locked"
                        ),
                        &[&destination, &audience_key],
                    )
                    .await
                    .map_err(pg(OP))?;
                let (members, reopen): (i64, i64) = (r.get(0), r.get(1));
                tx.execute(
                    &format!(
                        "UPDATE desired SET state = 'pending', reason = $3, attempts = 0,
                         next_attempt_ms = $4
                         WHERE {scope} AND member AND state = 'delivered'"
                    ),
                    &[&destination, &audience_key, &RECREATED, &now_ms],
                )
                .await
                .map_err(pg(OP))?;
                tx.execute(
                    &format!(
                        "UPDATE desired SET next_attempt_ms = $3
                         WHERE {scope} AND state = 'pending' AND next_attempt_ms > $3"
                    ),
                    &[&destination, &audience_key, &now_ms],
                )
                .await
                .map_err(pg(OP))?;
                tx.execute(
                    &format!(
                        "UPDATE desired SET {FORGET_ACK} WHERE {scope} AND ack_seq IS NOT NULL"
                    ),
                    &[&destination, &audience_key],
                )
                .await
                .map_err(pg(OP))?;
                let mut deltas = Deltas::default();
                let d = deltas.of(destination, audience_key);
                d.members -= members;
                d.pending += reopen;
                counts::apply(&tx, OP, &deltas).await?;
                Some(reopen as usize)
            }
        })
    }
}
