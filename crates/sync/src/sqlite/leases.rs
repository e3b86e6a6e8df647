//! Coordination of several instances on one database file: leases of audiences, live
//! instances per Iterable project, and the latest rate cut per project and endpoint (see
//! `crate::store::coordination`). Each call is one write transaction of the group commit
//! (`BEGIN IMMEDIATE`, so concurrent processes queue on SQLite's lock within the busy
//! timeout instead of failing).

use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, engine};
use crate::store::{Lease, RateCut, StoreError, slots_after};

/// The tables of schema version 4.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS leases (
    destination TEXT NOT NULL,
    audience_key TEXT NOT NULL,
    holder TEXT NOT NULL,
    expires_ms INTEGER NOT NULL,
    PRIMARY KEY (destination, audience_key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS instances (
    project TEXT NOT NULL,
    instance TEXT NOT NULL,
    expires_ms INTEGER NOT NULL,
    PRIMARY KEY (project, instance)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rate_cuts (
    project TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    rate REAL NOT NULL,
    cut_ms INTEGER NOT NULL,
    instance TEXT NOT NULL,
    PRIMARY KEY (project, endpoint)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rate_slots (
    project TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    tat_us INTEGER NOT NULL,
    PRIMARY KEY (project, endpoint)
) WITHOUT ROWID;
";

impl SqliteStore {
    pub fn acquire_leases(
        &self,
        destination: &str,
        instance: &str,
        candidates: &[String],
        max: usize,
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<Vec<String>, StoreError> {
        const OP: &str = "acquire_leases";
        self.write(OP, |tx| {
            let mut holder_of = tx
                .prepare_cached(
                    "SELECT holder, expires_ms FROM leases
                     WHERE destination = ?1 AND audience_key = ?2",
                )
                .map_err(engine(OP))?;
            let mut put = tx
                .prepare_cached(
                    "INSERT INTO leases (destination, audience_key, holder, expires_ms)
                     VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (destination, audience_key) DO UPDATE
                     SET holder = excluded.holder, expires_ms = excluded.expires_ms",
                )
                .map_err(engine(OP))?;
            let mut current = Vec::with_capacity(candidates.len());
            for a in candidates {
                let row: Option<(String, i64)> = holder_of
                    .query_row(params![destination, a], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
                    .map_err(engine(OP))?;
                current.push(row);
            }
            let mut held = vec![false; candidates.len()];
            let mut count = 0;
            // Renew what this instance holds, then take what is free, in order.
            for (i, row) in current.iter().enumerate() {
                if row.as_ref().is_some_and(|(h, _)| h == instance) {
                    put.execute(params![destination, candidates[i], instance, expires_ms])
                        .map_err(engine(OP))?;
                    held[i] = true;
                    count += 1;
                }
            }
            for (i, row) in current.iter().enumerate() {
                if count >= max {
                    break;
                }
                let free = row.as_ref().is_none_or(|(_, until)| *until <= now_ms);
                if !held[i] && free {
                    put.execute(params![destination, candidates[i], instance, expires_ms])
                        .map_err(engine(OP))?;
                    held[i] = true;
                    count += 1;
                }
            }
            Ok(candidates
                .iter()
                .zip(held)
                .filter(|(_, h)| *h)
                .map(|(a, _)| a.clone())
                .collect())
        })
    }

    pub fn release_leases(
        &self,
        destination: &str,
        instance: &str,
        audiences: Option<&[String]>,
    ) -> Result<usize, StoreError> {
        const OP: &str = "release_leases";
        self.write(OP, |tx| match audiences {
            None => tx
                .execute(
                    "DELETE FROM leases WHERE destination = ?1 AND holder = ?2",
                    params![destination, instance],
                )
                .map_err(engine(OP)),
            Some(list) => {
                let mut del = tx
                    .prepare_cached(
                        "DELETE FROM leases
                         WHERE destination = ?1 AND audience_key = ?2 AND holder = ?3",
                    )
                    .map_err(engine(OP))?;
                let mut n = 0;
                for a in list {
                    n += del
                        .execute(params![destination, a, instance])
                        .map_err(engine(OP))?;
                }
                Ok(n)
            }
        })
    }

    pub fn leases(&self, destination: &str) -> Result<Vec<Lease>, StoreError> {
        const OP: &str = "leases";
        let conn = self.lock();
        let mut st = conn
            .prepare_cached(
                "SELECT audience_key, holder, expires_ms FROM leases
                 WHERE destination = ?1 ORDER BY audience_key",
            )
            .map_err(engine(OP))?;
        let rows = st
            .query_map([destination], |r| {
                Ok(Lease {
                    audience_key: r.get(0)?,
                    holder: r.get(1)?,
                    expires_ms: r.get(2)?,
                })
            })
            .map_err(engine(OP))?;
        rows.collect::<Result<_, _>>().map_err(engine(OP))
    }

    pub fn heartbeat(
        &self,
        project: &str,
        instance: &str,
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<usize, StoreError> {
        const OP: &str = "heartbeat";
        self.write(OP, |tx| {
            tx.prepare_cached("DELETE FROM instances WHERE expires_ms <= ?1")
                .and_then(|mut s| s.execute([now_ms]))
                .map_err(engine(OP))?;
            tx.prepare_cached(
                "INSERT INTO instances (project, instance, expires_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (project, instance) DO UPDATE SET expires_ms = excluded.expires_ms",
            )
            .and_then(|mut s| s.execute(params![project, instance, expires_ms]))
            .map_err(engine(OP))?;
            let n: i64 = tx
                .prepare_cached("SELECT COUNT(*) FROM instances WHERE project = ?1")
                .and_then(|mut s| s.query_row([project], |r| r.get(0)))
                .map_err(engine(OP))?;
            Ok(usize::try_from(n).unwrap_or(1).max(1))
        })
    }

    pub fn leave(&self, project: &str, instance: &str) -> Result<(), StoreError> {
        const OP: &str = "leave";
        self.write(OP, |tx| {
            tx.execute(
                "DELETE FROM instances WHERE project = ?1 AND instance = ?2",
                params![project, instance],
            )
            .map(|_| ())
            .map_err(engine(OP))
        })
    }

    pub fn share_rate_cut(
        &self,
        project: &str,
        endpoint: &str,
        cut: Option<&RateCut>,
    ) -> Result<Option<RateCut>, StoreError> {
        const OP: &str = "share_rate_cut";
        let read = |tx: &rusqlite::Connection| {
            tx.prepare_cached(
                "SELECT rate, cut_ms, instance FROM rate_cuts
                 WHERE project = ?1 AND endpoint = ?2",
            )
            .and_then(|mut s| {
                s.query_row(params![project, endpoint], |r| {
                    Ok(RateCut {
                        rate: r.get(0)?,
                        cut_ms: r.get(1)?,
                        instance: r.get(2)?,
                    })
                })
                .optional()
            })
            .map_err(engine(OP))
        };
        let Some(cut) = cut else {
            return read(&self.lock());
        };
        if !cut.rate.is_finite() || cut.rate <= 0.0 {
            return Err(StoreError::Invalid {
                op: OP,
                message: format!("a rate cut must be a positive rate, got {}", cut.rate),
            });
        }
        self.write(OP, |tx| {
            tx.prepare_cached(
                "INSERT INTO rate_cuts (project, endpoint, rate, cut_ms, instance)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (project, endpoint) DO UPDATE
                 SET rate = excluded.rate, cut_ms = excluded.cut_ms, instance = excluded.instance
                 WHERE excluded.cut_ms > rate_cuts.cut_ms",
            )
            .and_then(|mut s| {
                s.execute(params![
                    project,
                    endpoint,
                    cut.rate,
                    cut.cut_ms,
                    cut.instance
                ])
            })
            .map_err(engine(OP))?;
            read(tx)
        })
    }
    pub fn reserve_slots(
        &self,
        project: &str,
        endpoint: &str,
        count: u32,
        interval_us: i64,
        tolerance_us: i64,
        now_us: i64,
    ) -> Result<i64, StoreError> {
        const OP: &str = "reserve_slots";
        if interval_us < 0 || tolerance_us < 0 {
            return Err(StoreError::Invalid {
                op: OP,
                message: format!(
                    "interval and tolerance must not be negative, got {interval_us} and \
                     {tolerance_us}"
                ),
            });
        }
        self.write(OP, |tx| {
            let tat: Option<i64> = tx
                .prepare_cached(
                    "SELECT tat_us FROM rate_slots WHERE project = ?1 AND endpoint = ?2",
                )
                .and_then(|mut s| {
                    s.query_row(params![project, endpoint], |r| r.get(0))
                        .optional()
                })
                .map_err(engine(OP))?;
            let (first, next) = slots_after(tat, count, interval_us, tolerance_us, now_us);
            tx.prepare_cached(
                "INSERT INTO rate_slots (project, endpoint, tat_us) VALUES (?1, ?2, ?3)
                 ON CONFLICT (project, endpoint) DO UPDATE SET tat_us = excluded.tat_us",
            )
            .and_then(|mut s| s.execute(params![project, endpoint, next]))
            .map_err(engine(OP))?;
            Ok(first)
        })
    }
}
