//! The schema: its tables (see the module doc of `crate::sqlite`), its version, and the
//! migrations from older versions, run in one transaction at open.

use rusqlite::{Connection, TransactionBehavior};

use super::integrity::open_error;
use super::{SqliteStore, admin, counts, engine, floors, holds, leases, seqs, verifies};
use crate::store::StoreError;

/// The schema version this code creates and reads. Version 9 changed what a row of
/// `event_audiences` means, not a table: a row still `accepted` or `pending` may have been
/// delivered (see `delivered`), which code of version 8 would misread, so it refuses the
/// database. A version 8 database has no such row, and needs nothing more. Version 10 gives
/// `events.seq` out without `AUTOINCREMENT` (see `seqs`). Version 11 keys the event log's
/// duplicate check by message id first (see `SqliteStore::migrate_to_11`).
pub const SCHEMA_VERSION: i64 = 11;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    destination TEXT NOT NULL,
    message_id TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    UNIQUE (message_id, destination)
);
CREATE TABLE IF NOT EXISTS event_audiences (
    seq INTEGER NOT NULL,
    part INTEGER NOT NULL,
    list_key TEXT NOT NULL,
    email TEXT NOT NULL,
    user_id TEXT NOT NULL,
    member INTEGER,
    time_ms INTEGER,
    status TEXT NOT NULL,
    reason TEXT,
    next_attempt_ms INTEGER,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (seq, part)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS desired (
    destination TEXT NOT NULL,
    list_key TEXT NOT NULL,
    email TEXT NOT NULL,
    user_id TEXT NOT NULL,
    list_id INTEGER,
    member INTEGER NOT NULL,
    time_ms INTEGER,
    seq INTEGER NOT NULL,
    part INTEGER NOT NULL,
    accepted_ms INTEGER NOT NULL,
    data_fields TEXT,
    update_existing_users_only INTEGER,
    channel_unsubscribe INTEGER,
    campaign_id INTEGER,
    state TEXT NOT NULL,
    reason TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL DEFAULT 0,
    ack_member INTEGER,
    ack_time_ms INTEGER,
    ack_seq INTEGER,
    ack_ms INTEGER,
    tries INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (destination, list_key, email, user_id)
);
CREATE INDEX IF NOT EXISTS desired_pending
    ON desired (destination, list_key, seq) WHERE state = 'pending';
CREATE TABLE IF NOT EXISTS lists (
    destination TEXT NOT NULL,
    audience_key TEXT NOT NULL,
    list_id INTEGER NOT NULL,
    PRIMARY KEY (destination, audience_key)
);
CREATE TABLE IF NOT EXISTS ignored_settings (
    seq INTEGER NOT NULL,
    setting TEXT NOT NULL,
    value TEXT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (seq, setting)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS write_probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS destination_state (
    destination TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    reason TEXT,
    since_ms INTEGER,
    updated_ms INTEGER NOT NULL
);
";

/// Creates what is missing of the schema.
fn create_tables(tx: &Connection) -> rusqlite::Result<()> {
    tx.execute_batch(SCHEMA)?;
    tx.execute_batch(counts::SCHEMA)?;
    // Version 4: several instances on one database (leases, instances, rate cuts); the
    // migration from 3 is creating these tables.
    tx.execute_batch(leases::SCHEMA)?;
    // Version 5: the mass-removal guard (holds and its window); the migration from 4 is
    // creating these tables.
    tx.execute_batch(holds::SCHEMA)?;
    // Version 6: the snapshot floors and the last verify of each audience; the migration
    // from 5 is creating these tables (empty: no snapshot applied before raised a floor, no
    // verify before was kept).
    tx.execute_batch(floors::SCHEMA)?;
    tx.execute_batch(verifies::SCHEMA)?;
    // Version 7: the admin API's indexes and the operator's pause (created at every open by
    // versions 5 and 6, unnumbered then); the migration from 6 also drops the index on
    // emails (see `admin::SCHEMA`).
    tx.execute_batch(admin::SCHEMA)?;
    // Version 10: the floor of the arrival sequence; the migration from 9 also rewrites
    // `events` without AUTOINCREMENT (see `SqliteStore::migrate_to_10`).
    tx.execute_batch(seqs::SCHEMA)
}

/// A write that changes a byte on disk, to find out whether the store can write: SQLite skips
/// writing a row that an update leaves as it was, so the row counts up.
pub(super) const PROBE: &str = "INSERT INTO write_probe (id, n) VALUES (1, 1)
     ON CONFLICT (id) DO UPDATE SET n = (n + 1) % 1000000";

/// The columns of `desired` in versions 1 and 2 (version 3 added `tries`).
const DESIRED_V2_COLUMNS: &str = "destination, list_key, email, user_id, list_id, member,
    time_ms, seq, part, accepted_ms, data_fields, update_existing_users_only,
    channel_unsubscribe, campaign_id, state, reason, attempts, next_attempt_ms, ack_member,
    ack_time_ms, ack_seq, ack_ms";

/// The columns of `desired` since version 3.
const DESIRED_V3_COLUMNS: &str = "destination, list_key, email, user_id, list_id, member,
    time_ms, seq, part, accepted_ms, data_fields, update_existing_users_only,
    channel_unsubscribe, campaign_id, state, reason, attempts, next_attempt_ms, ack_member,
    ack_time_ms, ack_seq, ack_ms, tries";

/// The columns of `events` since version 1.
const EVENTS_COLUMNS: &str = "seq, destination, message_id, received_ms";

/// Makes `table` anew in the current layout and copies `columns` of every row into it. The
/// old table's named indexes (`create_tables` may have just made later versions' ones on it)
/// are dropped first, so that their names are free for the new table's, which
/// `create_tables` then makes.
fn rebuild(tx: &Connection, table: &str, columns: &str) -> rusqlite::Result<()> {
    let old = format!("{table}_old");
    tx.execute_batch(&format!("ALTER TABLE {table} RENAME TO {old}"))?;
    let indexes: Vec<String> = tx
        .prepare(
            "SELECT name FROM sqlite_master
             WHERE type = 'index' AND tbl_name = ?1 AND sql IS NOT NULL",
        )?
        .query_map([&old], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for name in indexes {
        tx.execute_batch(&format!("DROP INDEX \"{}\"", name.replace('"', "\"\"")))?;
    }
    create_tables(tx)?;
    tx.execute_batch(&format!(
        "INSERT INTO {table} ({columns}) SELECT {columns} FROM {old};
         DROP TABLE {old};"
    ))
}

/// Runs `rewrite`, the migration to `version` that rewrites `table` (of `rows` rows) once,
/// logged when it starts and when it ends, with its time: it can take seconds at start.
fn logged_rewrite(
    location: &str,
    version: i64,
    table: &str,
    rows: i64,
    rewrite: impl FnOnce() -> rusqlite::Result<()>,
) -> rusqlite::Result<()> {
    tracing::info!(
        database = location,
        rows,
        "migrating the store to schema version {version}: {table} is rewritten once, in one transaction (stopping meanwhile undoes it)"
    );
    let started = std::time::Instant::now();
    rewrite()?;
    tracing::info!(
        database = location,
        rows,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "store migrated to schema version {version}"
    );
    Ok(())
}

impl SqliteStore {
    /// Creates the schema, or migrates an older one, and proves the database writable, in
    /// one transaction.
    pub(super) fn create_or_migrate(
        conn: &mut Connection,
        location: &str,
    ) -> Result<(), StoreError> {
        let err = |during: &'static str| move |e| open_error(location, during, e);
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err("begin"))?;
        create_tables(&tx).map_err(err("schema"))?;
        let found: Option<i64> = tx
            .query_row("SELECT MAX(version) FROM schema_version", [], |r| r.get(0))
            .map_err(err("schema version"))?;
        match found {
            None => {
                tx.execute(
                    "INSERT INTO schema_version (version) VALUES (?1)",
                    [SCHEMA_VERSION],
                )
                .map_err(err("schema version"))?;
            }
            Some(v) if v > SCHEMA_VERSION => {
                return Err(StoreError::SchemaTooNew {
                    found: v,
                    supported: SCHEMA_VERSION,
                });
            }
            Some(v) => {
                if v < 2 {
                    Self::migrate_to_2(&tx).map_err(err("migration to version 2"))?;
                }
                if v < 3 {
                    Self::migrate_to_3(&tx).map_err(|e| match e {
                        StoreError::Engine { source, .. } => StoreError::Open {
                            location: location.to_string(),
                            source: format!("migration to version 3: {source}").into(),
                        },
                        other => other,
                    })?;
                }
                if v < 7 {
                    tx.execute_batch(admin::V7_DROP)
                        .map_err(err("migration to version 7"))?;
                }
                // Version 1 was rebuilt in the current layout by the migration to 2.
                if (2..8).contains(&v) {
                    Self::migrate_to_8(&tx, location).map_err(err("migration to version 8"))?;
                }
                if v < 10 {
                    // Also gives `events` version 11's layout: it is made anew.
                    Self::migrate_to_10(&tx, location).map_err(err("migration to version 10"))?;
                } else if v < 11 {
                    Self::migrate_to_11(&tx, location).map_err(err("migration to version 11"))?;
                }
            }
        }
        tx.execute("UPDATE schema_version SET version = ?1", [SCHEMA_VERSION])
            .map_err(err("schema version"))?;
        // A real write, committed: a read-only file, directory or filesystem (or a full disk)
        // fails here, at start, not at the first event.
        tx.execute(PROBE, []).map_err(err("write test"))?;
        tx.commit().map_err(err("commit"))
    }

    /// Version 2 clustered `desired` by its key (WITHOUT ROWID): one B-tree instead of a
    /// table and its key index. Same columns, so the rows are copied as they are; version 8
    /// went back to a rowid table (see [`Self::migrate_to_8`]), which a version 1 database
    /// reaches here directly, as `create_tables` makes the current `desired`.
    pub(super) fn migrate_to_2(tx: &Connection) -> rusqlite::Result<()> {
        rebuild(tx, "desired", DESIRED_V2_COLUMNS)
    }

    /// Version 8 stores `desired` as a rowid table, its key (destination, audience, email,
    /// userId) a unique index, as version 1 did. Its partial indexes then point at a row by
    /// its integer rowid rather than by the four texts of the key, so that finding the row of
    /// a pending index entry, or the row again to write an update, is an integer search
    /// instead of a comparison of texts of which the first two are equal within an audience:
    /// 6.9% fewer instructions per event in the benchmark's part (c), 10–12% with the rowid
    /// carried from the pending read to the delivery (BENCHMARKS.md, the ninth session). Same
    /// columns, copied as they are.
    pub(super) fn migrate_to_8(tx: &Connection, location: &str) -> rusqlite::Result<()> {
        // The figures count the keys (filled by the migration to 3 where they were missing),
        // so the log line needs no pass over the table.
        let rows: i64 = tx.query_row(
            "SELECT COALESCE(SUM(keys), 0) FROM audience_counts",
            [],
            |r| r.get(0),
        )?;
        logged_rewrite(location, 8, "the desired state's table", rows, || {
            rebuild(tx, "desired", DESIRED_V3_COLUMNS)
        })
    }

    /// Version 10 gives `events.seq` out as a plain rowid (see `seqs`): the table is made
    /// anew without AUTOINCREMENT and its rows copied as they are, and the largest seq given
    /// out (which `sqlite_sequence` kept) or named by a desired row becomes the floor. Any
    /// version before 10 has the AUTOINCREMENT table.
    pub(super) fn migrate_to_10(tx: &Connection, location: &str) -> rusqlite::Result<()> {
        let rows: i64 = tx.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))?;
        logged_rewrite(location, 10, "the event log's table", rows, || {
            seqs::carry_over(tx)?;
            rebuild(tx, "events", EVENTS_COLUMNS)
        })
    }

    /// Version 11 keys the event log's duplicate check (a unique index) by (message id,
    /// destination) instead of (destination, message id). Every search of that index names
    /// both, and a service usually has one destination: with it first, each comparison on the
    /// way down went through two texts, of which the first was always equal. 1,900 fewer
    /// instructions per new event in part (c) (BENCHMARKS.md, "Issue 18's twelfth session").
    /// SQLite cannot change a table's `UNIQUE` constraint in place, so the table is made anew
    /// and its rows copied as they are.
    pub(super) fn migrate_to_11(tx: &Connection, location: &str) -> rusqlite::Result<()> {
        let rows: i64 = tx.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))?;
        logged_rewrite(location, 11, "the event log's table", rows, || {
            rebuild(tx, "events", EVENTS_COLUMNS)
        })
    }

    /// Version 3 counts failed tries per key (`tries`), keeps each destination's state, and
    /// maintains the figures per audience (`audience_counts`, filled here from every row).
    pub(super) fn migrate_to_3(tx: &Connection) -> Result<(), StoreError> {
        const OP: &str = "open";
        let has_tries: bool = tx
            .query_row(
                "SELECT COUNT(*) > 0 FROM pragma_table_info('desired') WHERE name = 'tries'",
                [],
                |r| r.get(0),
            )
            .map_err(engine(OP))?;
        if !has_tries {
            tx.execute_batch("ALTER TABLE desired ADD COLUMN tries INTEGER NOT NULL DEFAULT 0")
                .map_err(engine(OP))?;
        }
        // A stored retry counted one failed try at least. Also when the column is there
        // already: a version 1 database was just given it (all 0) by the migration to 2.
        tx.execute_batch("UPDATE desired SET tries = attempts WHERE attempts > tries")
            .map_err(engine(OP))?;
        tx.execute("DELETE FROM audience_counts", [])
            .map_err(engine(OP))?;
        counts::fill(tx)
    }
}

impl SqliteStore {
    /// The schema version stored in the database.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        let conn = self.lock();
        conn.query_row("SELECT MAX(version) FROM schema_version", [], |r| r.get(0))
            .map_err(engine("schema_version"))
    }
}
