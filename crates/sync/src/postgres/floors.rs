//! The snapshot floors in PostgreSQL (see [`crate::snapshot::Floor`]): one row per audience
//! that had a snapshot applied (schema version 4), raised in the snapshot's transaction.
//!
//! **Read in every accept, not cached.** Several instances share the database, and a floor
//! raised by another instance's snapshot must hold for this one's next batch. So accept reads
//! the floors of its batch's audiences in its transaction: one statement (one primary-key
//! lookup per audience), sent together with the read of the batch's stored keys, so that it
//! adds no round trip. A cache kept per instance would need a read to be validated anyway.
//!
//! **No race with a snapshot.** The snapshot locks `events` (then the other tables it writes)
//! in `EXCLUSIVE` mode before it diffs; accept inserts its events (`ROW EXCLUSIVE` on
//! `events`) before it reads the floors. So either the batch's events are in first and the snapshot,
//! waiting for their commit, sees their changes and replaces them, or the batch waits for
//! the snapshot's commit and then reads its floor (each statement of a `READ COMMITTED`
//! transaction sees what was committed before it began).

use std::collections::HashMap;

use deadpool_postgres::{GenericClient, Transaction};

use super::pg;
use crate::snapshot::Floor;
use crate::store::StoreError;

/// Schema version 4: the snapshot floors.
pub(super) const V4: &str = r#"
CREATE TABLE snapshot_floors (
    destination TEXT COLLATE "C" NOT NULL,
    list_key TEXT COLLATE "C" NOT NULL,
    floor_ms BIGINT NOT NULL,
    message_id TEXT NOT NULL,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (destination, list_key)
);
"#;

/// A (destination, audience) pair.
pub(super) type Audience = (String, String);

/// The floors of `audiences` (sorted, distinct) that have one.
pub(super) async fn read(
    tx: &Transaction<'_>,
    op: &'static str,
    audiences: &[(&str, &str)],
) -> Result<HashMap<Audience, Floor>, StoreError> {
    if audiences.is_empty() {
        return Ok(HashMap::new());
    }
    let dest: Vec<&str> = audiences.iter().map(|a| a.0).collect();
    let key: Vec<&str> = audiences.iter().map(|a| a.1).collect();
    let stmt = tx
        .prepare_cached(
            "SELECT f.destination, f.list_key, f.floor_ms, f.message_id
             FROM snapshot_floors f
             JOIN UNNEST($1::text[], $2::text[]) AS u(de, lk)
               ON f.destination = u.de AND f.list_key = u.lk",
        )
        .await
        .map_err(pg(op))?;
    let rows = tx.query(&stmt, &[&dest, &key]).await.map_err(pg(op))?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                (r.get(0), r.get(1)),
                Floor {
                    time_ms: r.get(2),
                    message_id: r.get(3),
                },
            )
        })
        .collect())
}

/// Raises the floor of the snapshot's audience in its transaction (never lowers it).
pub(super) async fn raise(
    tx: &Transaction<'_>,
    op: &'static str,
    destination: &str,
    list_key: &str,
    time_ms: i64,
    message_id: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO snapshot_floors (destination, list_key, floor_ms, message_id, updated_ms)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (destination, list_key) DO UPDATE SET floor_ms = excluded.floor_ms,
           message_id = excluded.message_id, updated_ms = excluded.updated_ms
         WHERE snapshot_floors.floor_ms < excluded.floor_ms",
        &[&destination, &list_key, &time_ms, &message_id, &now_ms],
    )
    .await
    .map_err(pg(op))?;
    Ok(())
}
