//! The last `audience verify` of each audience in PostgreSQL (see
//! [`crate::store::VerifyRecord`]): one row per audience, replaced by each verify (schema
//! version 4).

use super::{PostgresStore, pg, to_i64, to_u64, write_tx};
use crate::store::{StoreError, VerifyRecord};

/// Schema version 4 (with the snapshot floors): the last verify of each audience.
pub(super) const V4: &str = r#"
CREATE TABLE last_verify (
    destination TEXT COLLATE "C" NOT NULL,
    list_key TEXT COLLATE "C" NOT NULL,
    ran_ms BIGINT NOT NULL,
    repair BOOLEAN NOT NULL,
    error TEXT,
    in_iterable BIGINT NOT NULL,
    acknowledged BIGINT NOT NULL,
    missing BIGINT NOT NULL,
    extra BIGINT NOT NULL,
    reopened BIGINT NOT NULL,
    unsubscribes BIGINT NOT NULL,
    PRIMARY KEY (destination, list_key)
);
"#;

impl PostgresStore {
    pub async fn record_verify(
        &self,
        destination: &str,
        r: &VerifyRecord,
    ) -> Result<(), StoreError> {
        const OP: &str = "record_verify";
        let n = |v: u64| to_i64(OP, v);
        let v = [
            n(r.in_iterable)?,
            n(r.acknowledged)?,
            n(r.missing)?,
            n(r.extra)?,
            n(r.reopened)?,
            n(r.unsubscribes)?,
        ];
        write_tx!(self, OP, |tx| {
            tx.execute(
                "INSERT INTO last_verify (destination, list_key, ran_ms, repair, error,
                   in_iterable, acknowledged, missing, extra, reopened, unsubscribes)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                 ON CONFLICT (destination, list_key) DO UPDATE SET ran_ms = excluded.ran_ms,
                   repair = excluded.repair, error = excluded.error,
                   in_iterable = excluded.in_iterable, acknowledged = excluded.acknowledged,
                   missing = excluded.missing, extra = excluded.extra,
                   reopened = excluded.reopened, unsubscribes = excluded.unsubscribes",
                &[
                    &destination,
                    &r.audience_key,
                    &r.ran_ms,
                    &r.repair,
                    &r.error,
                    &v[0],
                    &v[1],
                    &v[2],
                    &v[3],
                    &v[4],
                    &v[5],
                ],
            )
            .await
            .map_err(pg(OP))?;
        })
    }

    pub async fn last_verifies(&self, destination: &str) -> Result<Vec<VerifyRecord>, StoreError> {
        const OP: &str = "last_verifies";
        let client = self.client(OP).await?;
        let rows = client
            .query(
                "SELECT list_key, ran_ms, repair, error, in_iterable, acknowledged, missing,
                   extra, reopened, unsubscribes
                 FROM last_verify WHERE destination = $1 ORDER BY list_key",
                &[&destination],
            )
            .await
            .map_err(pg(OP))?;
        rows.iter()
            .map(|r| {
                Ok(VerifyRecord {
                    audience_key: r.get(0),
                    ran_ms: r.get(1),
                    repair: r.get(2),
                    error: r.get(3),
                    in_iterable: to_u64(OP, r.get(4))?,
                    acknowledged: to_u64(OP, r.get(5))?,
                    missing: to_u64(OP, r.get(6))?,
                    extra: to_u64(OP, r.get(7))?,
                    reopened: to_u64(OP, r.get(8))?,
                    unsubscribes: to_u64(OP, r.get(9))?,
                })
            })
            .collect()
    }
}
