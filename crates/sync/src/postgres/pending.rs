//! What the reconciler reads: the due keys of an audience, and the audiences with due keys.

use deadpool_postgres::GenericClient;
use serde_json::{Map, Value};

use super::{PostgresStore, identity_of, pg, to_i64, version};
use crate::store::{ChangeSettings, PendingRow, StoreError};

impl PostgresStore {
    pub async fn pending(
        &self,
        destination: &str,
        audience_key: &str,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<PendingRow>, StoreError> {
        const OP: &str = "pending";
        let limit = to_i64(OP, limit as u64)?;
        let client = self.client(OP).await?;
        let stmt = client
            .prepare_cached(
                "SELECT list_id, email, user_id, member, data_fields,
                 update_existing_users_only, channel_unsubscribe, campaign_id, time_ms, seq,
                 accepted_ms, attempts, reason
                 FROM desired
                 WHERE destination = $1 AND list_key = $2 AND state = 'pending'
                   AND next_attempt_ms <= $3
                 ORDER BY seq LIMIT $4",
            )
            .await
            .map_err(pg(OP))?;
        let rows = client
            .query(&stmt, &[&destination, &audience_key, &now_ms, &limit])
            .await
            .map_err(pg(OP))?;
        rows.iter()
            .map(|r| {
                let seq: i64 = r.get(9);
                let data: Option<String> = r.get(4);
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
                Ok(PendingRow {
                    audience_key: audience_key.to_string(),
                    list_id: r.get(0),
                    identity: identity_of(r.get(1), r.get(2)),
                    member: r.get(3),
                    data_fields,
                    settings: ChangeSettings {
                        update_existing_users_only: r.get(5),
                        channel_unsubscribe: r.get(6),
                        campaign_id: r.get(7),
                    },
                    version: version(OP, r.get(8), seq)?,
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
