//! What the reconciler reads: the due keys of an audience, with everything needed to plan
//! them, and the audiences that have due keys.

use rusqlite::params;
use serde_json::{Map, Value};

use super::{SqliteStore, engine, identity_of, to_i64, version};
use crate::store::{ChangeSettings, PendingRow, StoreError};

impl SqliteStore {
    pub fn pending(
        &self,
        destination: &str,
        audience_key: &str,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<PendingRow>, StoreError> {
        const OP: &str = "pending";
        let limit = to_i64(OP, limit as u64)?;
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT list_id, email, user_id, member, data_fields,
                 update_existing_users_only, channel_unsubscribe, campaign_id, time_ms, seq,
                 accepted_ms, attempts, reason
                 FROM desired
                 WHERE destination = ?1 AND list_key = ?2 AND state = 'pending'
                   AND next_attempt_ms <= ?3
                 ORDER BY seq LIMIT ?4",
            )
            .map_err(engine(OP))?;
        let mut out = Vec::with_capacity(limit.clamp(0, 8192) as usize);
        let rows = stmt
            .query_map(params![destination, audience_key, now_ms, limit], |r| {
                Ok(RawPending {
                    list_id: r.get(0)?,
                    email: r.get(1)?,
                    user_id: r.get(2)?,
                    member: r.get(3)?,
                    data_fields: r.get(4)?,
                    settings: ChangeSettings {
                        update_existing_users_only: r.get(5)?,
                        channel_unsubscribe: r.get(6)?,
                        campaign_id: r.get(7)?,
                    },
                    time_ms: r.get(8)?,
                    seq: r.get(9)?,
                    accepted_ms: r.get(10)?,
                    attempts: r.get(11)?,
                    reason: r.get(12)?,
                })
            })
            .map_err(engine(OP))?;
        for r in rows {
            out.push(r.map_err(engine(OP))?.into_row(audience_key)?);
        }
        Ok(out)
    }

    pub fn pending_audiences(
        &self,
        destination: &str,
        now_ms: i64,
    ) -> Result<Vec<String>, StoreError> {
        const OP: &str = "pending_audiences";
        let conn = self.lock();
        let mut stmt = conn
            // One seek per audience on the partial index (the next audience with pending
            // rows, then whether one of them is due), instead of reading every pending row:
            // this runs several times a second, also under a backlog of millions.
            .prepare_cached(
                "WITH RECURSIVE k(key) AS (
                   SELECT (SELECT MIN(list_key) FROM desired INDEXED BY desired_pending
                           WHERE destination = ?1 AND state = 'pending')
                   UNION ALL
                   SELECT (SELECT MIN(list_key) FROM desired INDEXED BY desired_pending
                           WHERE destination = ?1 AND state = 'pending' AND list_key > k.key)
                   FROM k WHERE k.key IS NOT NULL
                 )
                 SELECT key FROM k WHERE key IS NOT NULL AND EXISTS (
                   SELECT 1 FROM desired INDEXED BY desired_pending
                   WHERE destination = ?1 AND list_key = k.key AND state = 'pending'
                     AND next_attempt_ms <= ?2)
                 ORDER BY key",
            )
            .map_err(engine(OP))?;
        stmt.query_map(params![destination, now_ms], |r| r.get(0))
            .map_err(engine(OP))?
            .collect::<Result<Vec<String>, _>>()
            .map_err(engine(OP))
    }
}

/// Columns of a pending row as stored.
struct RawPending {
    list_id: Option<i64>,
    email: String,
    user_id: String,
    member: bool,
    data_fields: Option<String>,
    settings: ChangeSettings,
    time_ms: Option<i64>,
    seq: i64,
    accepted_ms: i64,
    attempts: i64,
    reason: Option<String>,
}

impl RawPending {
    fn into_row(self, audience_key: &str) -> Result<PendingRow, StoreError> {
        const OP: &str = "pending";
        let data_fields =
            match self.data_fields {
                None => None,
                Some(text) => Some(serde_json::from_str::<Map<String, Value>>(&text).map_err(
                    |e| StoreError::Corrupt {
                        op: OP,
                        message: format!("data fields of seq {}: {e}", self.seq),
                    },
                )?),
            };
        Ok(PendingRow {
            audience_key: audience_key.to_string(),
            list_id: self.list_id,
            identity: identity_of(self.email, self.user_id),
            member: self.member,
            data_fields,
            settings: self.settings,
            version: version(OP, self.time_ms, self.seq)?,
            accepted_ms: self.accepted_ms,
            attempts: u32::try_from(self.attempts).map_err(|_| StoreError::Corrupt {
                op: OP,
                message: format!("attempts {} out of range", self.attempts),
            })?,
            last_error: self.reason,
        })
    }
}
