//! The snapshot floors in SQLite (see [`crate::snapshot::Floor`]): one row per audience that
//! had a snapshot applied (schema version 6), written in the snapshot's transaction, and a
//! cache of them in the writer (`Writer::floors`) for the accept path.
//!
//! **The cache.** Accept runs holding the writer; it asks the cache for the floor of each
//! audience it touches. The cache is loaded at open, and a snapshot applied through this
//! store updates it after its commit, still holding the writer. Another process on the same
//! file (several instances) can apply a snapshot too: `PRAGMA data_version` of the writer's
//! connection changes whenever another connection commits, so accept reads it once per batch
//! (no table read) and, when it changed, empties the cache; an audience missing from it is
//! then looked up once (one primary-key lookup) and kept, also when it has no floor. With one
//! process, a batch costs one pragma and hash lookups.

use hashbrown::HashMap;
use hashbrown::hash_map::EntryRef;
use rusqlite::{Connection, OptionalExtension, params};

use super::engine;
use crate::snapshot::Floor;
use crate::store::StoreError;

/// The table of schema version 6.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS snapshot_floors (
    destination TEXT NOT NULL,
    list_key TEXT NOT NULL,
    floor_ms INTEGER NOT NULL,
    message_id TEXT NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (destination, list_key)
) WITHOUT ROWID;
";

/// The floors known to the writer, valid while the database's `data_version` (as the writer's
/// connection sees it) is `version`.
#[derive(Debug, Default)]
pub(super) struct FloorCache {
    version: Option<i64>,
    /// Per destination and audience: its floor, or `None` when it has none (nested, so that
    /// a lookup borrows the names rather than allocating a key; foldhash, as in `Deltas`).
    floors: HashMap<String, HashMap<String, Option<Floor>>>,
}

fn data_version(conn: &Connection, op: &'static str) -> Result<i64, StoreError> {
    conn.prepare_cached("PRAGMA data_version")
        .map_err(engine(op))?
        .query_row([], |r| r.get(0))
        .map_err(engine(op))
}

fn read(
    conn: &Connection,
    op: &'static str,
    destination: &str,
    list_key: &str,
) -> Result<Option<Floor>, StoreError> {
    conn.prepare_cached(
        "SELECT floor_ms, message_id FROM snapshot_floors
         WHERE destination = ?1 AND list_key = ?2",
    )
    .map_err(engine(op))?
    .query_row(params![destination, list_key], |r| {
        Ok(Floor {
            time_ms: r.get(0)?,
            message_id: r.get(1)?,
        })
    })
    .optional()
    .map_err(engine(op))
}

impl FloorCache {
    /// Every floor stored, read at open.
    pub(super) fn load(conn: &Connection) -> Result<Self, StoreError> {
        const OP: &str = "open";
        let version = data_version(conn, OP)?;
        let mut stmt = conn
            .prepare("SELECT destination, list_key, floor_ms, message_id FROM snapshot_floors")
            .map_err(engine(OP))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    Floor {
                        time_ms: r.get(2)?,
                        message_id: r.get(3)?,
                    },
                ))
            })
            .map_err(engine(OP))?;
        let mut cache = Self {
            version: Some(version),
            floors: HashMap::new(),
        };
        for row in rows {
            let (destination, list_key, floor) = row.map_err(engine(OP))?;
            cache.set(&destination, &list_key, floor);
        }
        Ok(cache)
    }

    /// Called once per accepted batch, in its transaction: forgets what another process may
    /// have changed since the cache was filled.
    pub(super) fn check(&mut self, conn: &Connection, op: &'static str) -> Result<(), StoreError> {
        let now = data_version(conn, op)?;
        if self.version != Some(now) {
            self.floors.clear();
            self.version = Some(now);
        }
        Ok(())
    }

    /// The floor of an audience (after [`FloorCache::check`] in the same transaction).
    pub(super) fn get(
        &mut self,
        conn: &Connection,
        op: &'static str,
        destination: &str,
        list_key: &str,
    ) -> Result<Option<&Floor>, StoreError> {
        let per = self.floors.entry_ref(destination).or_default();
        let floor = match per.entry_ref(list_key) {
            EntryRef::Occupied(e) => e.into_mut(),
            EntryRef::Vacant(e) => e.insert(read(conn, op, destination, list_key)?),
        };
        Ok(floor.as_ref())
    }

    /// A snapshot committed by this store raised an audience's floor to `floor`.
    pub(super) fn set(&mut self, destination: &str, list_key: &str, floor: Floor) {
        self.floors
            .entry_ref(destination)
            .or_default()
            .insert(list_key.to_string(), Some(floor));
    }
}

/// Raises the floor of the snapshot's audience in its transaction; returns the floor now
/// stored (for the cache, once committed).
pub(super) fn raise(
    tx: &Connection,
    op: &'static str,
    destination: &str,
    list_key: &str,
    time_ms: i64,
    message_id: &str,
    now_ms: i64,
) -> Result<Floor, StoreError> {
    let old = read(tx, op, destination, list_key)?;
    let floor = Floor::raised(old, time_ms, message_id);
    tx.execute(
        "INSERT INTO main.snapshot_floors (destination, list_key, floor_ms, message_id, updated_ms)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (destination, list_key) DO UPDATE SET floor_ms = excluded.floor_ms,
           message_id = excluded.message_id, updated_ms = excluded.updated_ms",
        params![
            destination,
            list_key,
            floor.time_ms,
            floor.message_id,
            now_ms
        ],
    )
    .map_err(engine(op))?;
    Ok(floor)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_floor(conn: &Connection, list_key: &str, time_ms: i64) {
        conn.execute(
            "INSERT INTO snapshot_floors (destination, list_key, floor_ms, message_id, updated_ms)
             VALUES ('d', ?1, ?2, 'm', 0)",
            params![list_key, time_ms],
        )
        .expect("floor stored");
    }

    /// An audience is read once, also when it has no floor; a failed read caches nothing, so
    /// the next lookup reads again; a floor set by this process is returned without a read.
    #[test]
    fn each_audience_is_read_once_and_a_failed_read_is_not_cached() {
        let conn = Connection::open_in_memory().expect("open");
        conn.execute_batch(SCHEMA).expect("schema");
        store_floor(&conn, "a", 5);
        let mut cache = FloorCache::load(&conn).expect("load");
        cache.check(&conn, "test").expect("check");
        let a = Floor {
            time_ms: 5,
            message_id: "m".into(),
        };
        assert_eq!(cache.get(&conn, "test", "d", "a").expect("a"), Some(&a));

        assert_eq!(cache.get(&conn, "test", "d", "b").expect("b"), None);
        // Written behind the cache's back by the same connection (`data_version` does not
        // move): the cached "no floor" stands.
        store_floor(&conn, "b", 7);
        assert_eq!(cache.get(&conn, "test", "d", "b").expect("b again"), None);

        conn.execute_batch("ALTER TABLE snapshot_floors RENAME TO gone")
            .expect("rename");
        assert!(cache.get(&conn, "test", "d", "c").is_err());
        conn.execute_batch("ALTER TABLE gone RENAME TO snapshot_floors")
            .expect("rename back");
        store_floor(&conn, "c", 9);
        let c = cache
            .get(&conn, "test", "d", "c")
            .expect("c after a failed read");
        assert_eq!(c.map(|f| f.time_ms), Some(9));

        let raised = Floor {
            time_ms: 11,
            message_id: "n".into(),
        };
        cache.set("d", "b", raised.clone());
        assert_eq!(
            cache.get(&conn, "test", "d", "b").expect("b set"),
            Some(&raised)
        );
    }
}
