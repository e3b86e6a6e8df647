//! Coordination of several instances on one PostgreSQL database: leases of audiences, live
//! instances per Iterable project, the latest rate cut and the shared send-time bucket per
//! project and endpoint (see `crate::store::coordination`). Each call is one transaction;
//! rows are locked (`FOR UPDATE`, in key order) before they are decided on, so concurrent
//! instances wait for each other instead of both winning.

use super::{PostgresStore, pg, write_tx};
use crate::store::{Lease, RateCut, StoreError, slots_after};

/// Schema version 2: the coordination tables.
pub(super) const V2: &str = r#"
CREATE TABLE leases (
    destination TEXT COLLATE "C" NOT NULL,
    audience_key TEXT COLLATE "C" NOT NULL,
    holder TEXT NOT NULL,
    expires_ms BIGINT NOT NULL,
    PRIMARY KEY (destination, audience_key)
);
CREATE TABLE instances (
    project TEXT COLLATE "C" NOT NULL,
    instance TEXT COLLATE "C" NOT NULL,
    expires_ms BIGINT NOT NULL,
    PRIMARY KEY (project, instance)
);
CREATE TABLE rate_cuts (
    project TEXT COLLATE "C" NOT NULL,
    endpoint TEXT COLLATE "C" NOT NULL,
    rate DOUBLE PRECISION NOT NULL,
    cut_ms BIGINT NOT NULL,
    instance TEXT NOT NULL,
    PRIMARY KEY (project, endpoint)
);
CREATE TABLE rate_slots (
    project TEXT COLLATE "C" NOT NULL,
    endpoint TEXT COLLATE "C" NOT NULL,
    tat_us BIGINT NOT NULL,
    PRIMARY KEY (project, endpoint)
);
"#;

impl PostgresStore {
    pub async fn acquire_leases(
        &self,
        destination: &str,
        instance: &str,
        candidates: &[String],
        max: usize,
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<Vec<String>, StoreError> {
        const OP: &str = "acquire_leases";
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        write_tx!(self, OP, |tx| {
            // Every candidate gets a row (an expired one if new), so that all can be locked.
            tx.execute(
                "INSERT INTO leases (destination, audience_key, holder, expires_ms)
                 SELECT $1, a, '', $2 FROM UNNEST($3::text[]) AS a
                 ON CONFLICT (destination, audience_key) DO NOTHING",
                &[&destination, &i64::MIN, &candidates],
            )
            .await
            .map_err(pg(OP))?;
            let rows = tx
                .query(
                    "SELECT audience_key, holder, expires_ms FROM leases
                     WHERE destination = $1 AND audience_key = ANY($2::text[])
                     ORDER BY audience_key FOR UPDATE",
                    &[&destination, &candidates],
                )
                .await
                .map_err(pg(OP))?;
            let current: std::collections::HashMap<String, (String, i64)> = rows
                .iter()
                .map(|r| (r.get(0), (r.get(1), r.get(2))))
                .collect();
            let mut held = vec![false; candidates.len()];
            let mut count = 0;
            for (i, a) in candidates.iter().enumerate() {
                if current.get(a).is_some_and(|(h, _)| h == instance) {
                    held[i] = true;
                    count += 1;
                }
            }
            for (i, a) in candidates.iter().enumerate() {
                if count >= max {
                    break;
                }
                let free = current.get(a).is_none_or(|(_, until)| *until <= now_ms);
                if !held[i] && free {
                    held[i] = true;
                    count += 1;
                }
            }
            let mine: Vec<String> = candidates
                .iter()
                .zip(&held)
                .filter(|(_, h)| **h)
                .map(|(a, _)| a.clone())
                .collect();
            tx.execute(
                "UPDATE leases SET holder = $2, expires_ms = $3
                 WHERE destination = $1 AND audience_key = ANY($4::text[])",
                &[&destination, &instance, &expires_ms, &mine],
            )
            .await
            .map_err(pg(OP))?;
            // Rows made only to be locked, and not taken, go again.
            tx.execute(
                "DELETE FROM leases WHERE destination = $1 AND holder = ''
                 AND audience_key = ANY($2::text[])",
                &[&destination, &candidates],
            )
            .await
            .map_err(pg(OP))?;
            mine
        })
    }

    pub async fn release_leases(
        &self,
        destination: &str,
        instance: &str,
        audiences: Option<&[String]>,
    ) -> Result<usize, StoreError> {
        const OP: &str = "release_leases";
        write_tx!(self, OP, |tx| {
            let n = match audiences {
                None => tx
                    .execute(
                        "DELETE FROM leases WHERE destination = $1 AND holder = $2",
                        &[&destination, &instance],
                    )
                    .await
                    .map_err(pg(OP))?,
                Some(list) => tx
                    .execute(
                        "DELETE FROM leases WHERE destination = $1 AND holder = $2
                         AND audience_key = ANY($3::text[])",
                        &[&destination, &instance, &list],
                    )
                    .await
                    .map_err(pg(OP))?,
            };
            usize::try_from(n).unwrap_or(usize::MAX)
        })
    }

    pub async fn leases(&self, destination: &str) -> Result<Vec<Lease>, StoreError> {
        const OP: &str = "leases";
        let client = self.client(OP).await?;
        let rows = client
            .query(
                "SELECT audience_key, holder, expires_ms FROM leases
                 WHERE destination = $1 ORDER BY audience_key",
                &[&destination],
            )
            .await
            .map_err(pg(OP))?;
        Ok(rows
            .iter()
            .map(|r| Lease {
                audience_key: r.get(0),
                holder: r.get(1),
                expires_ms: r.get(2),
            })
            .collect())
    }

    pub async fn heartbeat(
        &self,
        project: &str,
        instance: &str,
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<usize, StoreError> {
        const OP: &str = "heartbeat";
        write_tx!(self, OP, |tx| {
            tx.execute("DELETE FROM instances WHERE expires_ms <= $1", &[&now_ms])
                .await
                .map_err(pg(OP))?;
            tx.execute(
                "INSERT INTO instances (project, instance, expires_ms) VALUES ($1, $2, $3)
                 ON CONFLICT (project, instance) DO UPDATE SET expires_ms = EXCLUDED.expires_ms",
                &[&project, &instance, &expires_ms],
            )
            .await
            .map_err(pg(OP))?;
            let n: i64 = tx
                .query_one(
                    "SELECT COUNT(*) FROM instances WHERE project = $1",
                    &[&project],
                )
                .await
                .map_err(pg(OP))?
                .get(0);
            usize::try_from(n).unwrap_or(1).max(1)
        })
    }

    pub async fn leave(&self, project: &str, instance: &str) -> Result<(), StoreError> {
        const OP: &str = "leave";
        write_tx!(self, OP, |tx| {
            tx.execute(
                "DELETE FROM instances WHERE project = $1 AND instance = $2",
                &[&project, &instance],
            )
            .await
            .map_err(pg(OP))?;
        })
    }

    pub async fn share_rate_cut(
        &self,
        project: &str,
        endpoint: &str,
        cut: Option<&RateCut>,
    ) -> Result<Option<RateCut>, StoreError> {
        const OP: &str = "share_rate_cut";
        const READ: &str = "SELECT rate, cut_ms, instance FROM rate_cuts
                            WHERE project = $1 AND endpoint = $2";
        let to_cut = |r: tokio_postgres::Row| RateCut {
            rate: r.get(0),
            cut_ms: r.get(1),
            instance: r.get(2),
        };
        let Some(cut) = cut else {
            let client = self.client(OP).await?;
            return Ok(client
                .query_opt(READ, &[&project, &endpoint])
                .await
                .map_err(pg(OP))?
                .map(to_cut));
        };
        if !cut.rate.is_finite() || cut.rate <= 0.0 {
            return Err(StoreError::Invalid {
                op: OP,
                message: format!("a rate cut must be a positive rate, got {}", cut.rate),
            });
        }
        write_tx!(self, OP, |tx| {
            tx.execute(
                "INSERT INTO rate_cuts (project, endpoint, rate, cut_ms, instance)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (project, endpoint) DO UPDATE
                 SET rate = EXCLUDED.rate, cut_ms = EXCLUDED.cut_ms, instance = EXCLUDED.instance
                 WHERE EXCLUDED.cut_ms > rate_cuts.cut_ms",
                &[&project, &endpoint, &cut.rate, &cut.cut_ms, &cut.instance],
            )
            .await
            .map_err(pg(OP))?;
            tx.query_opt(READ, &[&project, &endpoint])
                .await
                .map_err(pg(OP))?
                .map(to_cut)
        })
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn reserve_slots(
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
        write_tx!(self, OP, |tx| {
            tx.execute(
                "INSERT INTO rate_slots (project, endpoint, tat_us) VALUES ($1, $2, $3)
                 ON CONFLICT (project, endpoint) DO NOTHING",
                &[&project, &endpoint, &now_us],
            )
            .await
            .map_err(pg(OP))?;
            let tat: i64 = tx
                .query_one(
                    "SELECT tat_us FROM rate_slots WHERE project = $1 AND endpoint = $2
                     FOR UPDATE",
                    &[&project, &endpoint],
                )
                .await
                .map_err(pg(OP))?
                .get(0);
            let (first, next) = slots_after(Some(tat), count, interval_us, tolerance_us, now_us);
            tx.execute(
                "UPDATE rate_slots SET tat_us = $3 WHERE project = $1 AND endpoint = $2",
                &[&project, &endpoint, &next],
            )
            .await
            .map_err(pg(OP))?;
            first
        })
    }
}
