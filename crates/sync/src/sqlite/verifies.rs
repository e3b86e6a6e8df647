//! The last `audience verify` of each audience in SQLite (see
//! [`crate::store::VerifyRecord`]): one row per audience, replaced by each verify (schema
//! version 6).

use rusqlite::{Row, params};

use super::{SqliteStore, engine, to_i64, to_u64};
use crate::store::{StoreError, VerifyRecord};

/// The table of schema version 6.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS last_verify (
    destination TEXT NOT NULL,
    list_key TEXT NOT NULL,
    ran_ms INTEGER NOT NULL,
    repair INTEGER NOT NULL,
    error TEXT,
    in_iterable INTEGER NOT NULL,
    acknowledged INTEGER NOT NULL,
    missing INTEGER NOT NULL,
    extra INTEGER NOT NULL,
    reopened INTEGER NOT NULL,
    unsubscribes INTEGER NOT NULL,
    PRIMARY KEY (destination, list_key)
) WITHOUT ROWID;
";

fn record_of(op: &'static str, r: &Row<'_>) -> Result<VerifyRecord, StoreError> {
    let n = |i: usize| -> Result<u64, StoreError> {
        to_u64(op, r.get::<_, i64>(i).map_err(engine(op))?)
    };
    Ok(VerifyRecord {
        audience_key: r.get(0).map_err(engine(op))?,
        ran_ms: r.get(1).map_err(engine(op))?,
        repair: r.get(2).map_err(engine(op))?,
        error: r.get(3).map_err(engine(op))?,
        in_iterable: n(4)?,
        acknowledged: n(5)?,
        missing: n(6)?,
        extra: n(7)?,
        reopened: n(8)?,
        unsubscribes: n(9)?,
    })
}

impl SqliteStore {
    pub fn record_verify(&self, destination: &str, r: &VerifyRecord) -> Result<(), StoreError> {
        const OP: &str = "record_verify";
        let n = |v: u64| to_i64(OP, v);
        let values = (
            n(r.in_iterable)?,
            n(r.acknowledged)?,
            n(r.missing)?,
            n(r.extra)?,
            n(r.reopened)?,
            n(r.unsubscribes)?,
        );
        self.write(OP, |tx| {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO last_verify (destination, list_key, ran_ms, repair, error,
                   in_iterable, acknowledged, missing, extra, reopened, unsubscribes)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )
            .map_err(engine(OP))?
            .execute(params![
                destination,
                r.audience_key,
                r.ran_ms,
                r.repair,
                r.error,
                values.0,
                values.1,
                values.2,
                values.3,
                values.4,
                values.5
            ])
            .map_err(engine(OP))?;
            Ok(())
        })
    }

    pub fn last_verifies(&self, destination: &str) -> Result<Vec<VerifyRecord>, StoreError> {
        const OP: &str = "last_verifies";
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT list_key, ran_ms, repair, error, in_iterable, acknowledged, missing,
                   extra, reopened, unsubscribes
                 FROM last_verify WHERE destination = ?1 ORDER BY list_key",
            )
            .map_err(engine(OP))?;
        let mut rows = stmt.query([destination]).map_err(engine(OP))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(engine(OP))? {
            out.push(record_of(OP, r)?);
        }
        Ok(out)
    }
}
