//! The list registry (first writer wins), each destination's stored state, and whether the
//! store can write.

use rusqlite::{OptionalExtension, params};

use super::schema::PROBE;
use super::{SqliteStore, engine};
use crate::store::{DestinationState, StoreError};

impl SqliteStore {
    pub fn list_id(
        &self,
        destination: &str,
        audience_key: &str,
    ) -> Result<Option<i64>, StoreError> {
        let conn = self.lock();
        conn.query_row(
            "SELECT list_id FROM lists WHERE destination = ?1 AND audience_key = ?2",
            params![destination, audience_key],
            |r| r.get(0),
        )
        .optional()
        .map_err(engine("list_id"))
    }

    pub fn put_list_id(
        &self,
        destination: &str,
        audience_key: &str,
        list_id: i64,
    ) -> Result<i64, StoreError> {
        const OP: &str = "put_list_id";
        self.write(OP, |tx| {
            tx.execute(
                "INSERT INTO lists (destination, audience_key, list_id) VALUES (?1, ?2, ?3)
                 ON CONFLICT (destination, audience_key) DO NOTHING",
                params![destination, audience_key, list_id],
            )
            .map_err(engine(OP))?;
            tx.query_row(
                "SELECT list_id FROM lists WHERE destination = ?1 AND audience_key = ?2",
                params![destination, audience_key],
                |r| r.get(0),
            )
            .map_err(engine(OP))
        })
    }

    pub fn destination_state(
        &self,
        destination: &str,
    ) -> Result<Option<DestinationState>, StoreError> {
        const OP: &str = "destination_state";
        let conn = self.lock();
        let row: Option<(String, Option<String>, Option<i64>)> = conn
            .query_row(
                "SELECT state, reason, since_ms FROM destination_state WHERE destination = ?1",
                [destination],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(engine(OP))?;
        let Some((state, reason, since)) = row else {
            return Ok(None);
        };
        let (reason, since_ms) = (reason.unwrap_or_default(), since.unwrap_or_default());
        Ok(Some(match state.as_str() {
            "running" => DestinationState::Running,
            "paused" => DestinationState::Paused { reason, since_ms },
            "degraded" => DestinationState::Degraded { reason, since_ms },
            other => {
                return Err(StoreError::Corrupt {
                    op: OP,
                    message: format!("unknown destination state {other:?}"),
                });
            }
        }))
    }

    pub fn set_destination_state(
        &self,
        destination: &str,
        state: &DestinationState,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        const OP: &str = "set_destination_state";
        self.write(OP, |tx| {
            tx.prepare_cached(
                "INSERT INTO destination_state (destination, state, reason, since_ms, updated_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (destination) DO UPDATE SET state = excluded.state,
                 reason = excluded.reason, since_ms = excluded.since_ms,
                 updated_ms = excluded.updated_ms",
            )
            .map_err(engine(OP))?
            .execute(params![
                destination,
                state.word(),
                state.reason(),
                state.since_ms(),
                now_ms
            ])
            .map(|_| ())
            .map_err(engine(OP))
        })
    }

    pub fn write_failure(&self) -> Option<String> {
        self.health.failure()
    }

    pub fn probe_write(&self) -> Result<(), StoreError> {
        const OP: &str = "probe_write";
        self.write(OP, |tx| {
            tx.execute(PROBE, []).map(|_| ()).map_err(engine(OP))
        })
    }
}
