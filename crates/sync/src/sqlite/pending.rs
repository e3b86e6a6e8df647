//! What the reconciler reads: the due keys of an audience, with everything needed to plan
//! them, and the audiences that have due keys.

use rusqlite::params;
use serde_json::{Map, Value};

use super::{SqliteStore, engine, identity_of, to_i64, version};
use crate::store::{ChangeSettings, PendingRow, Seq, StoreError};

impl SqliteStore {
    pub fn pending(
        &self,
        destination: &str,
        audience_key: &str,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<PendingRow>, StoreError> {
        self.pending_except(destination, audience_key, now_ms, limit, &[])
    }

    /// The due rows of an audience, oldest first, leaving out those whose seq is in
    /// `in_flight` (ascending). The rows in flight are mostly the audience's oldest pending
    /// ones (rows are taken in seq order): a walk over the keys of the partial index (no table
    /// row read) finds the first pending seq not in flight, and the read starts there. A row
    /// in flight past it is checked before it is decoded.
    pub fn pending_except(
        &self,
        destination: &str,
        audience_key: &str,
        now_ms: i64,
        limit: usize,
        in_flight: &[Seq],
    ) -> Result<Vec<PendingRow>, StoreError> {
        const OP: &str = "pending";
        let read = to_i64(OP, limit.saturating_add(in_flight.len()) as u64)?;
        let conn = self.lock();
        let Some(start) = first_not_in_flight(&conn, destination, audience_key, in_flight)? else {
            return Ok(Vec::new());
        };
        let mut stmt = conn.prepare_cached(PENDING_ROWS).map_err(engine(OP))?;
        let mut out = Vec::with_capacity(limit.min(8192));
        let mut rows = stmt
            .query(params![destination, audience_key, now_ms, read, start])
            .map_err(engine(OP))?;
        while out.len() < limit
            && let Some(r) = rows.next().map_err(engine(OP))?
        {
            let seq: i64 = r.get(0).map_err(engine(OP))?;
            if u64::try_from(seq).is_ok_and(|s| in_flight.binary_search(&s).is_ok()) {
                continue;
            }
            let raw = RawPending {
                seq,
                list_id: r.get(1).map_err(engine(OP))?,
                email: r.get(2).map_err(engine(OP))?,
                user_id: r.get(3).map_err(engine(OP))?,
                member: r.get(4).map_err(engine(OP))?,
                data_fields: r.get(5).map_err(engine(OP))?,
                settings: ChangeSettings {
                    update_existing_users_only: r.get(6).map_err(engine(OP))?,
                    channel_unsubscribe: r.get(7).map_err(engine(OP))?,
                    campaign_id: r.get(8).map_err(engine(OP))?,
                },
                time_ms: r.get(9).map_err(engine(OP))?,
                accepted_ms: r.get(10).map_err(engine(OP))?,
                attempts: r.get(11).map_err(engine(OP))?,
                reason: r.get(12).map_err(engine(OP))?,
                part: r.get(13).map_err(engine(OP))?,
                row_id: r.get(14).map_err(engine(OP))?,
            };
            out.push(raw.into_row(audience_key)?);
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

/// The due rows of [`SqliteStore::pending_except`] from a seq on (`?5`), in arrival order (by
/// seq). Rows of one seq (the changes of one event, the keys of one snapshot) come in the
/// partial index's order, which ends with the rowid: the order in which their keys were first
/// written (a key keeps its rowid through its updates), or key order after the migration to
/// version 8 or a `store copy` (both write in key order). Before version 8 it was key order
/// always. Ordering them by part instead would need the index one column wider, paid by every
/// new key, for an order that decides nothing but which of two keys of one person, at the
/// same version, is sent.
pub(super) const PENDING_ROWS: &str = "SELECT seq, list_id, email, user_id, member, data_fields,
     update_existing_users_only, channel_unsubscribe, campaign_id, time_ms,
     accepted_ms, attempts, reason, part, rowid
     FROM desired
     WHERE destination = ?1 AND list_key = ?2 AND state = 'pending'
       AND next_attempt_ms <= ?3 AND seq >= ?5
     ORDER BY seq LIMIT ?4";

/// The key-only walk of [`SqliteStore::pending_except`]: the partial index read alone (it
/// holds the seq), without the table.
pub(super) const PENDING_SEQS: &str = "SELECT seq FROM desired INDEXED BY desired_pending
     WHERE destination = ?1 AND list_key = ?2 AND state = 'pending' ORDER BY seq";

/// The lowest seq of the audience's pending rows that is not in `in_flight` (every pending row
/// below it is in flight), or `None` when every pending row is in flight; `Some(i64::MIN)`
/// when nothing is in flight.
fn first_not_in_flight(
    conn: &rusqlite::Connection,
    destination: &str,
    audience_key: &str,
    in_flight: &[Seq],
) -> Result<Option<i64>, StoreError> {
    const OP: &str = "pending";
    if in_flight.is_empty() {
        return Ok(Some(i64::MIN));
    }
    let mut stmt = conn.prepare_cached(PENDING_SEQS).map_err(engine(OP))?;
    let mut seqs = stmt
        .query(params![destination, audience_key])
        .map_err(engine(OP))?;
    while let Some(r) = seqs.next().map_err(engine(OP))? {
        let seq: i64 = r.get(0).map_err(engine(OP))?;
        if !u64::try_from(seq).is_ok_and(|s| in_flight.binary_search(&s).is_ok()) {
            return Ok(Some(seq));
        }
    }
    Ok(None)
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
    part: i64,
    row_id: i64,
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
            part: u32::try_from(self.part).map_err(|_| StoreError::Corrupt {
                op: OP,
                message: format!("part {} of seq {} out of range", self.part, self.seq),
            })?,
            row_id: Some(self.row_id),
            accepted_ms: self.accepted_ms,
            attempts: u32::try_from(self.attempts).map_err(|_| StoreError::Corrupt {
                op: OP,
                message: format!("attempts {} out of range", self.attempts),
            })?,
            last_error: self.reason,
        })
    }
}
