//! The list registry (first writer wins, across instances), each destination's stored state,
//! and whether the store can write.

use deadpool_postgres::GenericClient;

use super::schema::PROBE;
use super::{PostgresStore, pg, write_tx};
use crate::store::{DestinationState, StoreError};

impl PostgresStore {
    pub async fn list_id(
        &self,
        destination: &str,
        audience_key: &str,
    ) -> Result<Option<i64>, StoreError> {
        const OP: &str = "list_id";
        let client = self.client(OP).await?;
        let stmt = client
            .prepare_cached(
                "SELECT list_id FROM lists WHERE destination = $1 AND audience_key = $2",
            )
            .await
            .map_err(pg(OP))?;
        Ok(client
            .query_opt(&stmt, &[&destination, &audience_key])
            .await
            .map_err(pg(OP))?
            .map(|r| r.get(0)))
    }

    pub async fn put_list_id(
        &self,
        destination: &str,
        audience_key: &str,
        list_id: i64,
    ) -> Result<i64, StoreError> {
        const OP: &str = "put_list_id";
        write_tx!(self, OP, |tx| {
            // A concurrent insert of the same audience makes this one wait, then do nothing;
            // the read after it (a new snapshot) sees the winner.
            tx.execute(
                "INSERT INTO lists (destination, audience_key, list_id) VALUES ($1, $2, $3)
                 ON CONFLICT (destination, audience_key) DO NOTHING",
                &[&destination, &audience_key, &list_id],
            )
            .await
            .map_err(pg(OP))?;
            tx.query_one(
                "SELECT list_id FROM lists WHERE destination = $1 AND audience_key = $2",
                &[&destination, &audience_key],
            )
            .await
            .map_err(pg(OP))?
            .get::<_, i64>(0)
        })
    }

    pub async fn destination_state(
        &self,
        destination: &str,
    ) -> Result<Option<DestinationState>, StoreError> {
        const OP: &str = "destination_state";
        let client = self.client(OP).await?;
        let row = client
            .query_opt(
                "SELECT state, reason, since_ms FROM destination_state WHERE destination = $1",
                &[&destination],
            )
            .await
            .map_err(pg(OP))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let state: String = row.get(0);
        let reason: Option<String> = row.get(1);
        let since: Option<i64> = row.get(2);
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

    pub async fn set_destination_state(
        &self,
        destination: &str,
        state: &DestinationState,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        const OP: &str = "set_destination_state";
        write_tx!(self, OP, |tx| {
            tx.execute(
                "INSERT INTO destination_state (destination, state, reason, since_ms, updated_ms)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (destination) DO UPDATE SET state = excluded.state,
                 reason = excluded.reason, since_ms = excluded.since_ms,
                 updated_ms = excluded.updated_ms",
                &[
                    &destination,
                    &state.word(),
                    &state.reason(),
                    &state.since_ms(),
                    &now_ms,
                ],
            )
            .await
            .map_err(pg(OP))?;
        })
    }

    pub fn write_failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub async fn probe_write(&self) -> Result<(), StoreError> {
        const OP: &str = "probe_write";
        write_tx!(self, OP, |tx| {
            tx.execute(PROBE, &[]).await.map_err(pg(OP))?;
        })
    }
}
