//! Pruning the event log (see [`crate::store::Engine::prune_events`]): final rows last changed
//! before a moment, a small batch per write, oldest events first, and the events left without
//! rows. The scan is bounded by the first event received at or after the moment (found by
//! walking the oldest events left, which pruning keeps few), so no index is needed. A
//! delivery kept with its key's desired row (see `delivered`) is final too, which takes two
//! searches per row still `accepted` or `pending` to tell; each batch of a round starts after
//! the previous batch's last row, so the rows still to send are walked once per round (a row
//! behind that point that becomes final meanwhile goes in the next round). That walk holds the
//! writer: about 0.5 s per 200,000 old rows still to send (a destination paused for longer
//! than the retention period), once per round.

use std::collections::HashSet;
use std::sync::PoisonError;

use rusqlite::params;

use super::counts::Deltas;
use super::delivered::{ROW_DESTINATION, unwritten_delivery};
use super::{SqliteStore, engine, seqs, status_of, to_i64};
use crate::store::StoreError;

impl SqliteStore {
    pub fn prune_events(&self, before_ms: i64, limit: usize) -> Result<usize, StoreError> {
        const OP: &str = "prune_events";
        let limit = to_i64(OP, limit as u64)?;
        if limit == 0 {
            return Ok(0);
        }
        let (from_seq, from_part) = self.prune_resume(before_ms);
        let (removed, last) = self.write(OP, |tx| {
            let bound: i64 = tx
                .query_row(
                    "SELECT COALESCE((SELECT seq FROM events WHERE received_ms >= ?1
                       ORDER BY seq LIMIT 1), 9223372036854775807)",
                    [before_ms],
                    |r| r.get(0),
                )
                .map_err(engine(OP))?;
            // Final rows, and deliveries not written to their row (see `delivered`), whose
            // time is that of the delivery: the only rows still `accepted` or `pending` that
            // are taken, so they go as delivered. Telling those from the rows still to send
            // takes two searches per row (its event, its key's desired row), so a batch
            // starts after the last row the previous batch of the same round took (`?4`,
            // `?5`): the rows still to send before it are walked once per round, not once
            // per batch.
            let removed: Vec<(i64, i64, String, String, String)> = tx
                .prepare_cached(&format!(
                    "DELETE FROM event_audiences WHERE (seq, part) IN (
                       SELECT seq, part FROM event_audiences AS ea
                       WHERE seq < ?2 AND (seq, part) > (?4, ?5)
                         AND (status IN ('delivered', 'superseded', 'rejected', 'skipped')
                                AND updated_ms < ?1
                              OR status IN ('accepted', 'pending') AND {} < ?1)
                       ORDER BY seq, part LIMIT ?3)
                     RETURNING seq, part, list_key,
                       CASE WHEN status IN ('accepted', 'pending') THEN 'delivered'
                         ELSE status END,
                       (SELECT destination FROM events e WHERE e.seq = event_audiences.seq)",
                    unwritten_delivery(ROW_DESTINATION)
                ))
                .map_err(engine(OP))?
                .query_map(params![before_ms, bound, limit, from_seq, from_part], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get::<_, Option<String>>(4)?.unwrap_or_default(),
                    ))
                })
                .map_err(engine(OP))?
                .collect::<Result<_, _>>()
                .map_err(engine(OP))?;
            let mut deltas = Deltas::default();
            let mut touched: HashSet<i64> = HashSet::new();
            for (seq, _, list_key, status, destination) in &removed {
                touched.insert(*seq);
                deltas
                    .of(destination, list_key)
                    .event(status_of(OP, status)?, -1);
            }
            if !touched.is_empty() {
                // The newest event may be among those deleted: its seq stays given out.
                seqs::keep_newest(tx).map_err(engine(OP))?;
            }
            let mut gone = tx
                .prepare_cached(
                    "DELETE FROM events WHERE seq = ?1
                       AND NOT EXISTS (SELECT 1 FROM event_audiences WHERE seq = ?1)",
                )
                .map_err(engine(OP))?;
            let mut ignored = tx
                .prepare_cached("DELETE FROM ignored_settings WHERE seq = ?1")
                .map_err(engine(OP))?;
            for seq in &touched {
                if gone.execute([seq]).map_err(engine(OP))? == 1 {
                    ignored.execute([seq]).map_err(engine(OP))?;
                }
            }
            deltas.apply(tx, OP)?;
            let last = removed.iter().map(|(seq, part, ..)| (*seq, *part)).max();
            Ok((removed.len(), last))
        })?;
        // A full batch: the round goes on after its last row; else the round is over.
        let next = match last {
            Some((seq, part)) if removed as i64 == limit => Some((before_ms, seq, part)),
            _ => None,
        };
        *self
            .prune_from
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = next;
        Ok(removed)
    }

    /// Where a batch of pruning at `before_ms` starts: after the last row of the previous
    /// batch of the same round, else at the start (`(seq, part) > (0, -1)`).
    fn prune_resume(&self, before_ms: i64) -> (i64, i64) {
        match *self
            .prune_from
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
        {
            Some((at, seq, part)) if at == before_ms => (seq, part),
            _ => (0, -1),
        }
    }
}
