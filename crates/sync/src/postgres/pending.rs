//! What the reconciler reads: the due keys of an audience, and the audiences with due keys.

use deadpool_postgres::GenericClient;
use serde_json::{Map, Value};

use super::{PostgresStore, identity_of, pg, to_i64, version};
use crate::store::{ChangeSettings, PendingRow, Seq, StoreError};

impl PostgresStore {
    /// The due rows of an audience, oldest first, leaving out those whose seq is in
    /// `in_flight` (ascending). The rows in flight are mostly the audience's oldest pending
    /// ones: the statement first walks the partial index for the lowest pending seq not in
    /// flight (the first `in_flight.len() + 1` distinct pending seqs, less the seqs in flight: a hashed
    /// set difference, not a search of the array per row), and reads from there. A row in
    /// flight past it is left out here, before it is decoded.
    pub async fn pending_except(
        &self,
        destination: &str,
        audience_key: &str,
        now_ms: i64,
        limit: usize,
        in_flight: &[Seq],
    ) -> Result<Vec<PendingRow>, StoreError> {
        const OP: &str = "pending";
        let read = to_i64(OP, limit.saturating_add(in_flight.len()) as u64)?;
        let walk = to_i64(OP, in_flight.len() as u64 + 1)?;
        let skip = in_flight
            .iter()
            .map(|&s| to_i64(OP, s))
            .collect::<Result<Vec<i64>, _>>()?;
        let client = self.client(OP).await?;
        let stmt = client
            .prepare_cached(
                "SELECT seq, list_id, email, user_id, member, data_fields,
                 update_existing_users_only, channel_unsubscribe, campaign_id, time_ms,
                 accepted_ms, attempts, reason, part
                 FROM desired
                 WHERE destination = $1 AND list_key = $2 AND state = 'pending'
                   AND next_attempt_ms <= $3
                   AND seq >= COALESCE((SELECT MIN(w.seq) FROM (
                       (SELECT DISTINCT seq FROM desired
                        WHERE destination = $1 AND list_key = $2 AND state = 'pending'
                        ORDER BY seq LIMIT $6)
                       EXCEPT SELECT UNNEST($5::int8[])) AS w(seq)),
                     9223372036854775807)
                 ORDER BY seq LIMIT $4",
            )
            .await
            .map_err(pg(OP))?;
        let rows = client
            .query(
                &stmt,
                &[&destination, &audience_key, &now_ms, &read, &skip, &walk],
            )
            .await
            .map_err(pg(OP))?;
        rows.iter()
            .filter(|r| {
                let seq: i64 = r.get(0);
                !u64::try_from(seq).is_ok_and(|s| in_flight.binary_search(&s).is_ok())
            })
            .take(limit)
            .map(|r| {
                let seq: i64 = r.get(0);
                let data: Option<String> = r.get(5);
                let data_fields = match data {
                    None => None,
                    Some(text) => Some(serde_json::from_str::<Map<String, Value>>(&text).map_err(
                        |e| StoreError::Corrupt {
                            op: OP,
                            message: format!("data fields of seq {seq}: {e}"),
                        },
                    )?),
                };
                let attempts: i64 = r.get(11);
                let part: i32 = r.get(13);
                Ok(PendingRow {
                    audience_key: audience_key.to_string(),
                    list_id: r.get(1),
                    identity: identity_of(r.get(2), r.get(3)),
                    member: r.get(4),
                    data_fields,
                    settings: ChangeSettings {
                        update_existing_users_only: r.get(6),
                        channel_unsubscribe: r.get(7),
                        campaign_id: r.get(8),
                    },
                    version: version(OP, r.get(9), seq)?,
                    part: u32::try_from(part).map_err(|_| StoreError::Corrupt {
                        op: OP,
                        message: format!("part {part} of seq {seq} out of range"),
                    })?,
                    row_id: None,
                    accepted_ms: r.get(10),
                    attempts: u32::try_from(attempts).map_err(|_| StoreError::Corrupt {
                        op: OP,
                        message: format!("attempts {attempts} out of range"),
                    })?,
                    last_error: r.get(12),
                })
            })
            .collect()
    }

    pub async fn pending_audiences(
        &self,
        destination: &str,
        now_ms: i64,
    ) -> Result<Vec<String>, StoreError> {
        const OP: &str = "pending_audiences";
        let client = self.client(OP).await?;
        // One seek per audience on the pending index (a skip scan), not a read of every
        // pending row: this runs several times a second, also under a large backlog.
        let stmt = client
            .prepare_cached(
                "WITH RECURSIVE k(key) AS (
                   SELECT (SELECT MIN(list_key) FROM desired
                           WHERE destination = $1 AND state = 'pending')
                   UNION ALL
                   SELECT (SELECT MIN(list_key) FROM desired
                           WHERE destination = $1 AND state = 'pending' AND list_key > k.key)
                   FROM k WHERE k.key IS NOT NULL
                 )
                 SELECT key FROM k WHERE key IS NOT NULL AND EXISTS (
                   SELECT 1 FROM desired
                   WHERE destination = $1 AND list_key = k.key AND state = 'pending'
                     AND next_attempt_ms <= $2)
                 ORDER BY key",
            )
            .await
            .map_err(pg(OP))?;
        let rows = client
            .query(&stmt, &[&destination, &now_ms])
            .await
            .map_err(pg(OP))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}
