//! Pruning the event log: final rows (delivered, superseded, rejected, skipped) last changed
//! before a moment, a small batch per transaction, oldest events first; an event left without
//! rows goes too (with its ignored settings). Rows other writers hold are skipped (`SKIP
//! LOCKED`), so pruning never waits for ingestion or delivery, nor makes them wait long.
//! Desired and acknowledged state is never touched.

use std::collections::HashMap;

use super::{PostgresStore, counts, pg, status_of, to_i64, write_tx};
use crate::sqlite::counts::Deltas;
use crate::store::StoreError;

impl PostgresStore {
    pub async fn prune_events(&self, before_ms: i64, limit: usize) -> Result<usize, StoreError> {
        const OP: &str = "prune_events";
        let limit = to_i64(OP, limit as u64)?;
        if limit == 0 {
            return Ok(0);
        }
        write_tx!(self, OP, |tx| {
            // `events` before `event_audiences`, the order in which accept writes them and a
            // snapshot locks them (`ROW EXCLUSIVE` does not wait for accepts): deleting from
            // `event_audiences` first and then waiting for `events` behind a snapshot holding it
            // and waiting for `event_audiences` was a deadlock.
            tx.batch_execute("LOCK TABLE events IN ROW EXCLUSIVE MODE")
                .await
                .map_err(pg(OP))?;
            // Events arrive in seq order (about): the first one received at or after the
            // moment bounds the scan, found by walking the oldest events that are left.
            let bound: i64 = tx
                .query_one(
                    "SELECT COALESCE((SELECT seq FROM events WHERE received_ms >= $1
                       ORDER BY seq LIMIT 1), 9223372036854775807)",
                    &[&before_ms],
                )
                .await
                .map_err(pg(OP))?
                .get(0);
            let removed = tx
                .query(
                    "WITH c AS (SELECT seq, part FROM event_audiences
                       WHERE seq < $2 AND updated_ms < $1
                         AND status IN ('delivered', 'superseded', 'rejected', 'skipped')
                       ORDER BY seq, part LIMIT $3 FOR UPDATE SKIP LOCKED)
                     DELETE FROM event_audiences ea USING c
                     WHERE ea.seq = c.seq AND ea.part = c.part
                     RETURNING ea.seq, ea.list_key, ea.status",
                    &[&before_ms, &bound, &limit],
                )
                .await
                .map_err(pg(OP))?;
            if removed.is_empty() {
                0
            } else {
                let mut seqs: Vec<i64> = removed.iter().map(|r| r.get(0)).collect();
                seqs.sort_unstable();
                seqs.dedup();
                let dest: HashMap<i64, String> = tx
                    .query(
                        "SELECT seq, destination FROM events WHERE seq = ANY($1::int8[])",
                        &[&seqs],
                    )
                    .await
                    .map_err(pg(OP))?
                    .iter()
                    .map(|r| (r.get(0), r.get(1)))
                    .collect();
                let mut deltas = Deltas::default();
                for r in &removed {
                    let seq: i64 = r.get(0);
                    let status: String = r.get(2);
                    if let Some(d) = dest.get(&seq) {
                        deltas
                            .of(d, r.get::<_, &str>(1))
                            .event(status_of(OP, &status)?, -1);
                    }
                }
                let gone: Vec<i64> = tx
                    .query(
                        "DELETE FROM events e WHERE e.seq = ANY($1::int8[])
                           AND NOT EXISTS (SELECT 1 FROM event_audiences ea WHERE ea.seq = e.seq)
                         RETURNING e.seq",
                        &[&seqs],
                    )
                    .await
                    .map_err(pg(OP))?
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                if !gone.is_empty() {
                    tx.execute(
                        "DELETE FROM ignored_settings WHERE seq = ANY($1::int8[])",
                        &[&gone],
                    )
                    .await
                    .map_err(pg(OP))?;
                }
                counts::apply(&tx, OP, &deltas).await?;
                removed.len()
            }
        })
    }
}
