//! The embedded SQLite engine of [`Store`]: one file (or `:memory:`), WAL mode with
//! `synchronous=FULL`, the schema created and versioned on open.
//!
//! **Blocking by design.** Every method runs SQLite on the caller's thread and returns when the
//! transaction is committed (for [`Store::accept`]: fsynced). Async callers wrap calls in
//! `tokio::task::spawn_blocking` (as [`crate::store::StoreRegistry`] does). Why not an async trait
//! with a dedicated thread here: SQLite is an in-process blocking library, so an async surface
//! would only hide the same thread hop; a synchronous trait stays object safe (`dyn Store`,
//! needed by the server and the shared conformance suite), testable without a runtime, and
//! still fits PostgreSQL through a blocking client.
//!
//! **Connections.** Writes share one connection and are group-committed: concurrent writers
//! (ingestion batches, delivery outcomes) share one transaction and one fsync (see
//! [`SqliteStore`]). Reads have their own connection, so they never wait for a commit. A
//! third connection checkpoints the WAL in the background, off the commit path.
//!
//! **Checks at open.** A file database is checked with `PRAGMA quick_check` within a time
//! budget (a damaged file refuses to open; an unfinished check is reported), and proven
//! writable by a real write transaction, so that a read-only file, directory or filesystem
//! fails at start rather than at the first event. Afterwards, a write that fails because the
//! store cannot write sets a flag ([`Store::write_failure`]) that the next committed write
//! clears.
//!
//! Schema (version 3; older databases are migrated on open):
//! - `events`: the append-only log, one row per new event; `seq` (AUTOINCREMENT, never reused)
//!   is the arrival sequence; `UNIQUE (destination, message_id)` catches duplicates.
//! - `event_audiences`: the status of an event in each audience it named (`part` = index of
//!   the change in the event; one row with an empty audience for unusable events).
//! - `desired` (clustered by its key, WITHOUT ROWID): per (destination, audience, email,
//!   userId) the desired version and its data,
//!   the acknowledged version (`ack_*`), and `state` (pending | delivered | rejected |
//!   superseded) with attempts, next attempt and reason. Absent identity parts are stored as
//!   `''` so the primary key covers them (NULLs are distinct in SQLite keys).
//! - `lists`: the list registry, primary key (destination, audience_key).
//! - `ignored_settings` (since version 3): per event (`seq`), the audience settings it carried
//!   that could not be used, with the value (JSON, cut) and the reason. Rare, so a table of its
//!   own rather than columns of every event.
//! - `desired_pending`: a partial index on pending rows, in arrival order per audience.
//! - `audience_counts`: the figures per audience, maintained by every write (see `counts`).
//! - `destination_state`: whether each destination is running, paused or degraded.
//! - `write_probe`: one row that the checks of writability change.

mod counts;
mod integrity;

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use destination::{AudienceSettings, IgnoredSetting, SettingName};
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use serde_json::{Map, Value};

pub use integrity::QuickCheck;

use crate::store::{
    Applied, AudienceStatus, DestinationState, EventContent, EventCounts, EventRecord, Identity,
    ListCounts, NewEvent, Outcome, OutcomeRow, PendingRow, Receipt, Recorded, Seq, StatusKind,
    Store, StoreError, Version,
};
use counts::{Delta, Deltas};
use integrity::{WriteHealth, open_error};

/// The schema version this code creates and reads.
pub const SCHEMA_VERSION: i64 = 3;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    destination TEXT NOT NULL,
    message_id TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    UNIQUE (destination, message_id)
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
) WITHOUT ROWID;
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
    tx.execute_batch(counts::SCHEMA)
}

/// One more failed try for the keys of a JSON array `[[email, userId, seq], ...]` (`?4`) of one
/// audience whose desired version is still that seq and pending. Each key is one primary-key
/// search (see the test of the query plans).
const MARK_TRIES: &str = "UPDATE desired SET tries = tries + 1, reason = ?3
     WHERE (destination, list_key, email, user_id, seq) IN
       (SELECT ?1, ?2, value ->> 0, value ->> 1, value ->> 2 FROM json_each(?4))
       AND state = 'pending'";

/// The events of those keys (`?6`) in status `?7`: `pending`, with the last error and the next
/// try.
const MARK_TRIED_EVENTS: &str = "UPDATE event_audiences SET status = 'pending', reason = ?3,
     next_attempt_ms = ?4, updated_ms = ?5
     WHERE (seq, part) IN
       (SELECT d.seq, d.part FROM json_each(?6) AS k CROSS JOIN desired d
          ON d.destination = ?1 AND d.list_key = ?2 AND d.email = k.value ->> 0
         AND d.user_id = k.value ->> 1 AND d.seq = k.value ->> 2
        WHERE d.state = 'pending')
       AND status = ?7";

/// A write that changes a byte on disk, to find out whether the store can write: SQLite skips
/// writing a row that an update leaves as it was, so the row counts up.
const PROBE: &str = "INSERT INTO write_probe (id, n) VALUES (1, 1)
     ON CONFLICT (id) DO UPDATE SET n = (n + 1) % 1000000";

/// The columns of `desired` in versions 1 and 2 (version 3 added `tries`).
const DESIRED_V2_COLUMNS: &str = "destination, list_key, email, user_id, list_id, member,
    time_ms, seq, part, accepted_ms, data_fields, update_existing_users_only,
    channel_unsubscribe, campaign_id, state, reason, attempts, next_attempt_ms, ack_member,
    ack_time_ms, ack_seq, ack_ms";

/// How long the check at open may take by default (see [`OpenOptions`]).
pub const DEFAULT_QUICK_CHECK: Duration = Duration::from_secs(10);

/// How a file database is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenOptions {
    /// The time budget of `PRAGMA quick_check` at open; `None` skips it. A damaged file is
    /// refused; a check that runs out of time is reported as [`QuickCheck::Unfinished`].
    pub quick_check: Option<Duration>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            quick_check: Some(DEFAULT_QUICK_CHECK),
        }
    }
}

/// The write side: the one writing connection and the open group transaction's bookkeeping.
#[derive(Debug)]
struct Writer {
    conn: Connection,
    /// A group transaction is open: `BEGIN IMMEDIATE` ran and nobody has committed it yet.
    open: bool,
    /// Operations run in the open group transaction.
    ops: usize,
    /// The number of the open (or next) group transaction; it grows by one at each commit.
    epoch: u64,
    /// Recent group transactions whose commit failed, with the error.
    failed: VecDeque<(u64, String)>,
}

/// The SQLite store. Cheap to share behind an `Arc`.
///
/// **Group commit.** Every write runs in a shared transaction on the one writing connection,
/// each after the first in a savepoint of its own (a failing first write rolls back the
/// transaction, which holds nothing else). A writer that finishes while others are queued
/// leaves the transaction open for them and waits; the last one (or the [`MAX_GROUP_OPS`]th) commits, so writes that
/// arrive during one fsync share the next (ingestion batches and delivery outcomes alike).
/// Nobody returns before the transaction holding its changes is committed; a failed commit
/// fails every write in it. Reads use their own connection (WAL readers never wait for the
/// writer and only see committed data); an in-memory database has one connection, and reads
/// wait until no group is open.
#[derive(Debug)]
pub struct SqliteStore {
    writer: Mutex<Writer>,
    /// Signalled at each commit (and rollback) of a group transaction.
    committed: Condvar,
    /// Writers that announced themselves and have not yet run their operation.
    queued: AtomicUsize,
    reader: Option<Mutex<Connection>>,
    /// Copies the WAL into the database file off the commit path (file databases).
    checkpointer: Option<Checkpointer>,
    /// Whether the last write failed because the store cannot write.
    health: WriteHealth,
    /// What the check at open found.
    checked: QuickCheck,
}

/// A thread with its own connection that checkpoints the WAL after commits. The writer's
/// automatic checkpoint is off: it ran inside the commit, holding the write lock while it
/// wrote pages into the database file and fsynced it. A passive checkpoint from another
/// connection runs beside the writer and never blocks it.
#[derive(Debug)]
struct Checkpointer {
    shared: Arc<CheckpointState>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// The WAL file, and the size past which the writer restarts it without waiting for
    /// this thread to notice.
    wal: std::path::PathBuf,
    wal_limit: u64,
}

#[derive(Debug, Default)]
struct CheckpointState {
    /// (a commit since the last checkpoint, stop): the thread ends when `stop` is set.
    state: Mutex<(bool, bool)>,
    wake: Condvar,
    /// The WAL holds more than the restart threshold.
    wal_full: std::sync::atomic::AtomicBool,
}

/// How often the checkpointer looks for new commits at most.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(50);

/// WAL frames (pages) beyond which the WAL is started over. Passive checkpoints never block
/// the writer, but under a steady stream of commits the WAL is never found fully copied and
/// idle, so it would only grow. Past this size the writer, right after a commit and still
/// holding the write lock, runs a TRUNCATE checkpoint: it copies the few frames the passive
/// ones left and empties the WAL. 16,384 pages of 4 KiB: 64 MiB. Should the checkpointer fall
/// behind (its thread starved of CPU), the writer restarts the WAL by itself once the file is
/// twice that size, so the WAL stays bounded however the threads are scheduled.
pub const WAL_RESTART_FRAMES: i64 = 16_384;

/// How long a connection waits for a lock another connection holds.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the writer's WAL restart waits for readers and for a passive checkpoint to let
/// go, while every writer waits behind it.
const RESTART_WAIT: Duration = Duration::from_millis(100);

/// Bytes of one WAL frame: a 4 KiB page and its 24-byte header.
const WAL_FRAME_BYTES: u64 = 4096 + 24;

impl Checkpointer {
    fn start(path: &Path, restart_frames: i64) -> Result<Self, StoreError> {
        let conn = Connection::open(path).map_err(|e| StoreError::Open {
            location: path.display().to_string(),
            source: e.into(),
        })?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(engine("open"))?;
        let shared = Arc::new(CheckpointState::default());
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || Self::run(&conn, &s, restart_frames))
            .map_err(|e| StoreError::Open {
                location: path.display().to_string(),
                source: e.into(),
            })?;
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        Ok(Self {
            shared,
            thread: Some(thread),
            wal: wal.into(),
            wal_limit: 2 * restart_frames.max(1) as u64 * WAL_FRAME_BYTES,
        })
    }

    /// The WAL must be restarted now: the checkpointer found it full, or it has grown past
    /// twice the limit before the checkpointer looked.
    fn restart_due(&self) -> bool {
        self.shared.wal_full.swap(false, Ordering::Relaxed)
            || std::fs::metadata(&self.wal).is_ok_and(|m| m.len() > self.wal_limit)
    }

    fn run(conn: &Connection, s: &CheckpointState, restart_frames: i64) {
        loop {
            {
                let mut st = s.state.lock().unwrap_or_else(|p| p.into_inner());
                while !st.0 && !st.1 {
                    st = s.wake.wait(st).unwrap_or_else(|p| p.into_inner());
                }
                if st.1 {
                    return;
                }
                st.0 = false;
            }
            // A failed or partial checkpoint is retried after the next commit; the WAL
            // stays valid meanwhile.
            // (busy, frames in the WAL, frames copied)
            let frames = conn
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(1))
                .unwrap_or(0);
            if frames > restart_frames {
                // The writer restarts the WAL after its next commit.
                s.wal_full.store(true, Ordering::Relaxed);
            }
            std::thread::sleep(CHECKPOINT_EVERY);
        }
    }

    fn committed(&self) {
        let mut st = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
        st.0 = true;
        self.shared.wake.notify_one();
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        {
            let mut st = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
            st.1 = true;
            self.shared.wake.notify_one();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A group transaction commits after this many operations even if more are queued, so the
/// first writers' wait stays bounded under a steady stream.
pub const MAX_GROUP_OPS: usize = 32;

/// Failed commits remembered for writers that have not woken up yet.
const FAILED_KEPT: usize = 64;

/// SQLite's page cache per connection, in KiB (negative `cache_size`). Enough for the hot
/// B-tree pages of a large backlog; the default 2 MiB made every commit re-read pages.
const WRITER_CACHE_KIB: i64 = 32 * 1024;
const READER_CACHE_KIB: i64 = 16 * 1024;

/// A locked connection to read from.
enum ReadGuard<'a> {
    Reader(MutexGuard<'a, Connection>),
    Writer(MutexGuard<'a, Writer>),
}

impl std::ops::Deref for ReadGuard<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        match self {
            ReadGuard::Reader(c) => c,
            ReadGuard::Writer(w) => &w.conn,
        }
    }
}

fn engine(op: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |e| StoreError::engine(op, e)
}

fn to_i64(op: &'static str, v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Invalid {
        op,
        message: format!("{v} is out of range"),
    })
}

fn to_u64(op: &'static str, v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt {
        op,
        message: format!("negative count or sequence {v}"),
    })
}

fn key_part(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("")
}

fn from_key_part(v: String) -> Option<String> {
    (!v.is_empty()).then_some(v)
}

fn identity_of(email: String, user_id: String) -> Identity {
    Identity {
        email: from_key_part(email),
        user_id: from_key_part(user_id),
    }
}

fn status_of(op: &'static str, s: &str) -> Result<StatusKind, StoreError> {
    StatusKind::parse(s).ok_or_else(|| StoreError::Corrupt {
        op,
        message: format!("unknown status {s:?}"),
    })
}

/// The insert of a new desired row (pending), up to the conflict action: `NOTHING` for a key
/// seen for the first time, `UPDATE SET ...` to replace the row of a known key.
macro_rules! insert_desired {
    () => {
        "INSERT INTO desired (destination, list_key, email, user_id, list_id, member, time_ms,
         seq, part, accepted_ms, data_fields, update_existing_users_only, channel_unsubscribe,
         campaign_id, state, reason, attempts, next_attempt_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, 'pending', NULL, 0, 0)
         ON CONFLICT (destination, list_key, email, user_id) DO "
    };
}

/// The desired row of a key, as accept and record_outcomes need it.
struct Current {
    seq: i64,
    part: i64,
    time_ms: Option<i64>,
    state: String,
    ack_time_ms: Option<i64>,
    ack_seq: Option<i64>,
    member: bool,
    ack_member: Option<bool>,
}

const CURRENT: &str = "SELECT seq, part, time_ms, state, ack_time_ms, ack_seq, member,
     ack_member FROM desired
     WHERE destination = ?1 AND list_key = ?2 AND email = ?3 AND user_id = ?4";

fn current(
    stmt: &mut rusqlite::Statement<'_>,
    op: &'static str,
    destination: &str,
    list_key: &str,
    id: &Identity,
) -> Result<Option<Current>, StoreError> {
    stmt.query_row(
        params![
            destination,
            list_key,
            key_part(&id.email),
            key_part(&id.user_id)
        ],
        |r| {
            Ok(Current {
                seq: r.get(0)?,
                part: r.get(1)?,
                time_ms: r.get(2)?,
                state: r.get(3)?,
                ack_time_ms: r.get(4)?,
                ack_seq: r.get(5)?,
                member: r.get(6)?,
                ack_member: r.get(7)?,
            })
        },
    )
    .optional()
    .map_err(engine(op))
}

fn version(op: &'static str, time_ms: Option<i64>, seq: i64) -> Result<Version, StoreError> {
    Ok(Version {
        time_ms,
        seq: to_u64(op, seq)?,
    })
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`; `":memory:"` is a private in-memory
    /// database. Parent directories are created. Sets WAL and `synchronous=FULL`, checks the
    /// file (see [`OpenOptions`], with the defaults), creates or migrates the schema, and
    /// proves the file writable.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with_options(path, &OpenOptions::default())
    }

    /// [`SqliteStore::open`] with options.
    pub fn open_with_options(
        path: impl AsRef<Path>,
        options: &OpenOptions,
    ) -> Result<Self, StoreError> {
        Self::open_with(path.as_ref(), WAL_RESTART_FRAMES, options)
    }

    /// [`SqliteStore::open_with_options`] with another WAL restart threshold (tests).
    fn open_with(
        path: &Path,
        wal_restart_frames: i64,
        options: &OpenOptions,
    ) -> Result<Self, StoreError> {
        let location = path.display().to_string();
        let open_err = |source: Box<dyn std::error::Error + Send + Sync>| StoreError::Open {
            location: location.clone(),
            source,
        };
        if path == Path::new(":memory:") {
            let conn = Connection::open_in_memory().map_err(|e| open_err(e.into()))?;
            return Self::init(conn, None, WAL_RESTART_FRAMES, options);
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| open_err(e.into()))?;
        }
        let conn = Connection::open(path)
            .map_err(|e| open_error(&location, "open", e))
            .map_err(|e| integrity::explain_open_failure(path, e))?;
        Self::init(conn, Some(path), wal_restart_frames, options)
            .map_err(|e| integrity::explain_open_failure(path, e))
    }

    /// Opens an existing database to read it only, for inspection commands: a missing file is
    /// an error (nothing is created), the schema is neither created nor migrated, no pragma is
    /// changed, and every write fails. A file without this schema, or with a newer version of
    /// it, is refused.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let open_err = |source: Box<dyn std::error::Error + Send + Sync>| StoreError::Open {
            location: path.display().to_string(),
            source,
        };
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| open_err(e.into()))?;
        Self::tune(&conn, READER_CACHE_KIB, &path.display().to_string())?;
        let found: Option<i64> = conn
            .query_row("SELECT MAX(version) FROM schema_version", [], |r| r.get(0))
            .map_err(|e| open_err(format!("not an iterable-lists database ({e})").into()))?;
        match found {
            None => {
                return Err(open_err(
                    "not an iterable-lists database (no version)".into(),
                ));
            }
            Some(v) if v > SCHEMA_VERSION => {
                return Err(StoreError::SchemaTooNew {
                    found: v,
                    supported: SCHEMA_VERSION,
                });
            }
            // Reading needs the current schema, and reading never migrates.
            Some(v) if v < SCHEMA_VERSION => {
                return Err(open_err(
                    format!(
                        "the database has schema version {v}, older than this program's \
                         {SCHEMA_VERSION}; start `iterable-lists serve` on it once to upgrade it"
                    )
                    .into(),
                ));
            }
            Some(_) => {}
        }
        // The one connection serves reads as an in-memory database's writer does.
        Ok(Self {
            writer: Mutex::new(Writer {
                conn,
                open: false,
                ops: 0,
                epoch: 0,
                failed: VecDeque::new(),
            }),
            committed: Condvar::new(),
            queued: AtomicUsize::new(0),
            reader: None,
            checkpointer: None,
            health: WriteHealth::default(),
            checked: QuickCheck::Skipped,
        })
    }

    /// A private in-memory database (tests, demos): nothing survives the process.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        Self::open(":memory:")
    }

    /// What the check at open found.
    pub fn quick_check(&self) -> QuickCheck {
        self.checked
    }

    /// Busy timeout, statement cache and page cache of a new connection to `location`.
    fn tune(conn: &Connection, cache_kib: i64, location: &str) -> Result<(), StoreError> {
        let err = |e| open_error(location, "open", e);
        conn.busy_timeout(BUSY_TIMEOUT).map_err(err)?;
        // Every statement is prepared once per connection and reused (accept runs several
        // per event).
        conn.set_prepared_statement_cache_capacity(64);
        conn.pragma_update(None, "cache_size", -cache_kib)
            .map_err(err)?;
        // Savepoint journals (one per write in a group) and sort spills stay in memory.
        conn.pragma_update(None, "temp_store", "MEMORY")
            .map_err(err)
    }

    /// Creates the schema, or migrates an older one, and proves the database writable, in
    /// one transaction.
    fn create_or_migrate(conn: &mut Connection, location: &str) -> Result<(), StoreError> {
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
            }
        }
        tx.execute("UPDATE schema_version SET version = ?1", [SCHEMA_VERSION])
            .map_err(err("schema version"))?;
        // A real write, committed: a read-only file, directory or filesystem (or a full disk)
        // fails here, at start, not at the first event.
        tx.execute(PROBE, []).map_err(err("write test"))?;
        tx.commit().map_err(err("commit"))
    }

    /// Version 2 clusters `desired` by its key (WITHOUT ROWID): one B-tree instead of a table
    /// and its key index. Same columns, so the rows are copied as they are.
    fn migrate_to_2(tx: &Connection) -> rusqlite::Result<()> {
        tx.execute_batch(
            "ALTER TABLE desired RENAME TO desired_v1;
             DROP INDEX desired_pending;",
        )?;
        create_tables(tx)?;
        tx.execute_batch(&format!(
            "INSERT INTO desired ({DESIRED_V2_COLUMNS}) SELECT {DESIRED_V2_COLUMNS} FROM desired_v1;
             DROP TABLE desired_v1;"
        ))
    }

    /// Version 3 counts failed tries per key (`tries`), keeps each destination's state, and
    /// maintains the figures per audience (`audience_counts`, filled here from every row).
    fn migrate_to_3(tx: &Connection) -> Result<(), StoreError> {
        const OP: &str = "open";
        let has_tries: bool = tx
            .query_row(
                "SELECT COUNT(*) > 0 FROM pragma_table_info('desired') WHERE name = 'tries'",
                [],
                |r| r.get(0),
            )
            .map_err(engine(OP))?;
        if !has_tries {
            // A stored retry counted one failed try at least.
            tx.execute_batch(
                "ALTER TABLE desired ADD COLUMN tries INTEGER NOT NULL DEFAULT 0;
                 UPDATE desired SET tries = attempts WHERE attempts > 0;",
            )
            .map_err(engine(OP))?;
        }
        tx.execute("DELETE FROM audience_counts", [])
            .map_err(engine(OP))?;
        counts::fill(tx)
    }

    /// Sets the writer up, checks the file, creates or checks the schema, then opens the read
    /// connection of a file database.
    fn init(
        mut conn: Connection,
        file: Option<&Path>,
        wal_restart_frames: i64,
        options: &OpenOptions,
    ) -> Result<Self, StoreError> {
        const OP: &str = "open";
        let location = file.map_or_else(|| ":memory:".to_string(), |p| p.display().to_string());
        Self::tune(&conn, WRITER_CACHE_KIB, &location)?;
        // Returns the mode in force: "wal" on files, "memory" for :memory:.
        let _mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(|e| open_error(&location, "journal_mode", e))?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(engine(OP))?;
        let checked = match (file, options.quick_check) {
            (Some(_), Some(budget)) if !budget.is_zero() => {
                integrity::quick_check(&conn, &location, budget, integrity::deadline(budget))?
            }
            _ => QuickCheck::Skipped,
        };
        Self::create_or_migrate(&mut conn, &location)?;
        if file.is_some() {
            conn.pragma_update(None, "wal_autocheckpoint", 0)
                .map_err(engine(OP))?;
            // After a restart, the WAL file is truncated back to this size.
            conn.pragma_update(None, "journal_size_limit", wal_restart_frames * 4096)
                .map_err(engine(OP))?;
        }
        let checkpointer = file
            .map(|p| Checkpointer::start(p, wal_restart_frames))
            .transpose()?;
        let reader = match file {
            None => None,
            Some(path) => {
                let r = Connection::open_with_flags(
                    path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(|e| StoreError::Open {
                    location: path.display().to_string(),
                    source: e.into(),
                })?;
                Self::tune(&r, READER_CACHE_KIB, &location)?;
                Some(Mutex::new(r))
            }
        };
        Ok(Self {
            writer: Mutex::new(Writer {
                conn,
                open: false,
                ops: 0,
                epoch: 0,
                failed: VecDeque::new(),
            }),
            committed: Condvar::new(),
            queued: AtomicUsize::new(0),
            reader,
            checkpointer,
            health: WriteHealth::default(),
            checked,
        })
    }

    fn lock_writer(&self) -> MutexGuard<'_, Writer> {
        // A panic inside an operation is caught and rolled back (see `write`), so the state
        // behind a poisoned lock is consistent.
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The writing connection once no group transaction is open (it sees committed data only).
    fn idle_writer(&self) -> MutexGuard<'_, Writer> {
        let mut w = self.lock_writer();
        while w.open {
            w = self.committed.wait(w).unwrap_or_else(|p| p.into_inner());
        }
        w
    }

    /// The connection for reads: the read connection, or the idle writer of an in-memory
    /// database.
    fn lock(&self) -> ReadGuard<'_> {
        match &self.reader {
            Some(r) => ReadGuard::Reader(r.lock().unwrap_or_else(|p| p.into_inner())),
            None => ReadGuard::Writer(self.idle_writer()),
        }
    }

    /// Runs one write operation in the shared group transaction (see [`SqliteStore`]) and
    /// returns once that transaction is committed. A failure that means the store cannot
    /// write sets the health flag; a committed write clears it.
    fn write<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let r = self.write_in_group(op, f);
        match &r {
            Ok(_) => self.health.committed(),
            Err(e) => self.health.failed(e),
        }
        r
    }

    fn write_in_group<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.queued.fetch_add(1, Ordering::SeqCst);
        let mut w = self.lock_writer();
        self.queued.fetch_sub(1, Ordering::SeqCst);
        if !w.open {
            w.conn
                .execute_batch("BEGIN IMMEDIATE")
                .map_err(engine(op))?;
            w.open = true;
            w.ops = 0;
        }
        let epoch = w.epoch;
        // The first operation of a group runs without a savepoint (which would copy every
        // page it touches into a sub-journal): if it fails, the transaction holds nothing
        // else and is rolled back whole.
        let first = w.ops == 0;
        if !first && let Err(e) = w.conn.execute_batch("SAVEPOINT op") {
            return self.end_op(w, op, Err(StoreError::engine(op, e)), epoch);
        }
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&w.conn)));
        let ok = matches!(run, Ok(Ok(_)));
        let end = match (first, ok) {
            (true, true) => Ok(()),
            (false, true) => w.conn.execute_batch("RELEASE op"),
            (false, false) => w.conn.execute_batch("ROLLBACK TO op; RELEASE op"),
            (true, false) => {
                // Nobody else is in the transaction: undo it all.
                let r = w.conn.execute_batch("ROLLBACK");
                w.open = false;
                self.committed.notify_all();
                r
            }
        };
        match (run, end) {
            (Err(panic), undone) => {
                // Leave the group consistent for the others, then go on unwinding: its
                // changes were undone, so the others' commit; if they could not be undone,
                // the whole group is rolled back and fails.
                if first {
                    // Rolled back above (or the connection is unusable either way).
                } else if undone.is_ok() {
                    let _ = self.finish(&mut w, op);
                } else {
                    let _ = w.conn.execute_batch("ROLLBACK");
                    Self::fail_group(&mut w, "an operation panicked".into());
                    self.committed.notify_all();
                }
                drop(w);
                std::panic::resume_unwind(panic);
            }
            (Ok(_), Err(e)) if !first => {
                // The savepoint could not be closed: the group cannot be trusted.
                let _ = w.conn.execute_batch("ROLLBACK");
                Self::fail_group(&mut w, e.to_string());
                self.committed.notify_all();
                Err(StoreError::engine(op, e))
            }
            (Ok(Err(e)), _) if first => Err(e),
            (Ok(r), _) => self.end_op(w, op, r, epoch),
        }
    }

    /// After an operation ran in the group transaction `epoch` (its changes kept, or undone
    /// to its savepoint): commits the group if nobody is queued behind, or waits for the
    /// writer that does. Returns the operation's result once its group is committed.
    fn end_op<T>(
        &self,
        mut w: MutexGuard<'_, Writer>,
        op: &'static str,
        out: Result<T, StoreError>,
        epoch: u64,
    ) -> Result<T, StoreError> {
        w.ops += 1;
        if self.queued.load(Ordering::SeqCst) == 0 || w.ops >= MAX_GROUP_OPS {
            return match self.finish(&mut w, op) {
                Ok(()) => out,
                Err(e) => Err(e),
            };
        }
        // A queued writer runs in this transaction and commits it (or leaves it to the next).
        let out = out?;
        while w.epoch == epoch {
            w = self.committed.wait(w).unwrap_or_else(|p| p.into_inner());
        }
        match w.failed.iter().find(|(e, _)| *e == epoch) {
            Some((_, why)) => Err(StoreError::engine(
                op,
                format!("the group transaction failed to commit: {why}"),
            )),
            None => Ok(out),
        }
    }

    /// Commits the open group transaction and wakes its waiting writers.
    fn finish(&self, w: &mut Writer, op: &'static str) -> Result<(), StoreError> {
        let r = w.conn.execute_batch("COMMIT");
        let out = match r {
            Ok(()) => {
                w.open = false;
                w.epoch += 1;
                if let Some(c) = &self.checkpointer {
                    if c.restart_due() {
                        // Best effort: a failure leaves the WAL as it is, still valid, and
                        // the restart is tried again after a later commit. Every writer
                        // waits meanwhile, so the wait for readers and for a running
                        // passive checkpoint is kept short.
                        let _ = w.conn.busy_timeout(RESTART_WAIT);
                        let _ = w
                            .conn
                            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
                        let _ = w.conn.busy_timeout(BUSY_TIMEOUT);
                    }
                    c.committed();
                }
                Ok(())
            }
            Err(e) => {
                let _ = w.conn.execute_batch("ROLLBACK");
                Self::fail_group(w, e.to_string());
                Err(StoreError::engine(op, e))
            }
        };
        self.committed.notify_all();
        out
    }

    /// Marks the open group transaction failed (it was rolled back) and closes it.
    fn fail_group(w: &mut Writer, why: String) {
        if w.failed.len() == FAILED_KEPT {
            w.failed.pop_front();
        }
        w.failed.push_back((w.epoch, why));
        w.open = false;
        w.epoch += 1;
    }

    /// A pragma's value as text (`journal_mode`, `synchronous`, ...), for diagnostics.
    pub fn pragma(&self, name: &str) -> Result<String, StoreError> {
        let w = self.idle_writer();
        w.conn
            .query_row(&format!("PRAGMA {name}"), [], |r| {
                r.get::<_, rusqlite::types::Value>(0)
            })
            .map(|v| match v {
                rusqlite::types::Value::Integer(i) => i.to_string(),
                rusqlite::types::Value::Text(t) => t,
                other => format!("{other:?}"),
            })
            .map_err(engine("pragma"))
    }

    /// The schema version stored in the database.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        let conn = self.lock();
        conn.query_row("SELECT MAX(version) FROM schema_version", [], |r| r.get(0))
            .map_err(engine("schema_version"))
    }

    /// The ignored audience settings logged with event `seq`.
    fn ignored_settings(conn: &Connection, seq: i64) -> Result<Vec<IgnoredSetting>, StoreError> {
        const OP: &str = "event_status";
        let mut stmt = conn
            .prepare_cached(
                "SELECT setting, value, reason FROM ignored_settings WHERE seq = ?1
                 ORDER BY setting",
            )
            .map_err(engine(OP))?;
        let raw = stmt
            .query_map([seq], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(engine(OP))?
            .collect::<Result<Vec<(String, String, String)>, _>>()
            .map_err(engine(OP))?;
        raw.into_iter()
            .map(|(setting, value, reason)| {
                let setting = SettingName::parse(&setting).ok_or_else(|| StoreError::Corrupt {
                    op: OP,
                    message: format!("unknown audience setting {setting:?} of seq {seq}"),
                })?;
                Ok(IgnoredSetting {
                    setting,
                    value,
                    reason,
                })
            })
            .collect()
    }

    fn accept_one(
        tx: &Connection,
        st: &mut AcceptStatements<'_>,
        deltas: &mut Deltas,
        ev: &NewEvent,
    ) -> Result<Receipt, StoreError> {
        const OP: &str = "accept";
        // One statement for a new event; a duplicate inserts nothing and is looked up.
        let inserted = st
            .insert_event
            .execute(params![ev.destination, ev.message_id, ev.received_ms])
            .map_err(engine(OP))?;
        if inserted == 0 {
            let seq: i64 = tx
                .prepare_cached("SELECT seq FROM events WHERE destination = ?1 AND message_id = ?2")
                .map_err(engine(OP))?
                .query_row(params![ev.destination, ev.message_id], |r| r.get(0))
                .map_err(engine(OP))?;
            return Ok(Receipt::Duplicate {
                seq: to_u64(OP, seq)?,
            });
        }
        let seq = tx.last_insert_rowid();
        if !ev.ignored_settings.is_empty() {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO ignored_settings (seq, setting, value, reason)
                     VALUES (?1, ?2, ?3, ?4) ON CONFLICT (seq, setting) DO NOTHING",
                )
                .map_err(engine(OP))?;
            for ig in &ev.ignored_settings {
                insert
                    .execute(params![seq, ig.setting.as_str(), ig.value, ig.reason])
                    .map_err(engine(OP))?;
            }
        }
        let changes = match &ev.content {
            EventContent::Rejected(reason) | EventContent::Skipped(reason) => {
                let status = if matches!(ev.content, EventContent::Rejected(_)) {
                    StatusKind::Rejected
                } else {
                    StatusKind::Skipped
                };
                st.insert_status
                    .execute(params![
                        seq,
                        0i64,
                        "",
                        "",
                        "",
                        None::<bool>,
                        None::<i64>,
                        status.as_str(),
                        reason,
                        ev.received_ms
                    ])
                    .map_err(engine(OP))?;
                deltas.of(&ev.destination, "").event(status, 1);
                Vec::new()
            }
            EventContent::Changes(changes) => {
                let mut out = Vec::with_capacity(changes.len());
                for (part, c) in changes.iter().enumerate() {
                    let part = to_i64(OP, part as u64)?;
                    let d = deltas.of(&ev.destination, &c.audience_key);
                    let (status, reason, applied) =
                        Self::apply_change(tx, st, d, ev, seq, part, c)?;
                    let id = &c.identity;
                    st.insert_status
                        .execute(params![
                            seq,
                            part,
                            c.audience_key,
                            key_part(&id.email),
                            key_part(&id.user_id),
                            c.member,
                            c.time_ms,
                            status.as_str(),
                            reason,
                            ev.received_ms
                        ])
                        .map_err(engine(OP))?;
                    d.event(status, 1);
                    out.push(applied);
                }
                out
            }
        };
        Ok(Receipt::Accepted {
            seq: to_u64(OP, seq)?,
            changes,
        })
    }

    /// Makes one change of a new event the desired state of its key, unless it is unusable or
    /// stale; returns the event's status in the audience, with the reason. `d` is the
    /// audience's delta.
    fn apply_change(
        tx: &Connection,
        st: &mut AcceptStatements<'_>,
        d: &mut Delta,
        ev: &NewEvent,
        seq: i64,
        part: i64,
        c: &crate::store::MembershipChange,
    ) -> Result<(StatusKind, Option<String>, Applied), StoreError> {
        const OP: &str = "accept";
        let id = &c.identity;
        let (email, user_id) = (key_part(&id.email), key_part(&id.user_id));
        if id.is_empty() {
            let why = "the change has neither an email nor a userId";
            return Ok((
                StatusKind::Rejected,
                Some(why.into()),
                Applied::Refused(why.into()),
            ));
        }
        let data = match &c.data_fields {
            None => None,
            Some(m) => Some(serde_json::to_string(m).map_err(|e| StoreError::Invalid {
                op: OP,
                message: format!("data fields cannot be stored: {e}"),
            })?),
        };
        // A key seen for the first time (every key of an initial sync) needs one statement; a
        // known key is read first, to decide and to log.
        let row = params![
            ev.destination,
            c.audience_key,
            email,
            user_id,
            c.list_id,
            c.member,
            c.time_ms,
            seq,
            part,
            ev.received_ms,
            data,
            c.settings.update_existing_users_only,
            c.settings.channel_unsubscribe,
            c.settings.campaign_id
        ];
        if st.insert_new.execute(row).map_err(engine(OP))? == 1 {
            d.keys += 1;
            d.pending += 1;
            return Ok((StatusKind::Accepted, None, Applied::Current));
        }
        let old = current(&mut st.get, OP, &ev.destination, &c.audience_key, id)?;
        if let Some(old) = &old {
            if old.seq == seq {
                let why = "the event names this user and audience twice; the first counts";
                return Ok((
                    StatusKind::Skipped,
                    Some(why.into()),
                    Applied::Refused(why.into()),
                ));
            }
            if version(OP, c.time_ms, seq)? < version(OP, old.time_ms, old.seq)? {
                let newer: String = tx
                    .query_row(
                        "SELECT message_id FROM events WHERE seq = ?1",
                        [old.seq],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(engine(OP))?
                    .unwrap_or_default();
                let why = format!("stale: event {newer:?} for the same user and audience is newer");
                return Ok((StatusKind::Skipped, Some(why), Applied::Stale));
            }
        }
        st.upsert.execute(row).map_err(engine(OP))?;
        match old {
            None => {
                d.keys += 1;
                d.pending += 1;
            }
            Some(old) => {
                d.state_moved(&old.state, "pending");
                if old.state == "pending" {
                    // The replaced change's event is accepted, or pending after a failure.
                    let why = format!("superseded by event {:?}", ev.message_id);
                    for from in [StatusKind::Accepted, StatusKind::Pending] {
                        let moved = st
                            .supersede
                            .execute(params![
                                old.seq,
                                old.part,
                                why,
                                ev.received_ms,
                                from.as_str()
                            ])
                            .map_err(engine(OP))?;
                        if moved == 1 {
                            d.event_moved(from, StatusKind::Superseded);
                            break;
                        }
                    }
                }
            }
        }
        Ok((StatusKind::Accepted, None, Applied::Current))
    }
}

impl SqliteStore {
    /// The common case of [`SqliteStore::record_one`]: the planned version is still the
    /// desired one and still pending, and Iterable took (`kind` delivered) or refused it. Its
    /// event is accepted, or pending after a failed try.
    fn settle_planned(
        st: &mut OutcomeStatements<'_>,
        d: &mut Delta,
        at: &Recording<'_>,
        id: &Identity,
        row: &Current,
        (kind, reason): (StatusKind, Option<&str>),
    ) -> Result<(), StoreError> {
        const OP: &str = "record_outcomes";
        let Recording {
            destination,
            audience_key,
            now_ms,
        } = *at;
        let (email, user_id) = (key_part(&id.email), key_part(&id.user_id));
        let seq = row.seq;
        st.settle_current
            .execute(params![
                destination,
                audience_key,
                email,
                user_id,
                kind.as_str(),
                reason,
                now_ms
            ])
            .map_err(engine(OP))?;
        d.state_moved("pending", kind.as_str());
        if kind == StatusKind::Delivered {
            d.ack_moved(row.ack_member, row.member);
            d.delivered_at(now_ms);
        }
        for from in [StatusKind::Accepted, StatusKind::Pending] {
            let moved = st
                .move_status
                .execute(params![
                    seq,
                    row.part,
                    kind.as_str(),
                    reason,
                    now_ms,
                    from.as_str()
                ])
                .map_err(engine(OP))?;
            if moved == 1 {
                d.event_moved(from, kind);
                return Ok(());
            }
        }
        // The event had another status (not seen in practice): set it all the same.
        let was: Option<String> = st
            .status_of
            .query_row(params![seq, row.part], |r| r.get(0))
            .optional()
            .map_err(engine(OP))?;
        if let Some(was) = was {
            d.event_moved(status_of(OP, &was)?, kind);
            st.set_status
                .execute(params![
                    seq,
                    row.part,
                    kind.as_str(),
                    reason,
                    None::<i64>,
                    now_ms
                ])
                .map_err(engine(OP))?;
        }
        Ok(())
    }

    /// Records one outcome of [`Store::record_outcomes`]. The key's desired row is read first:
    /// it decides, and tells what changes in the audience's figures (`d`).
    fn record_one(
        st: &mut OutcomeStatements<'_>,
        d: &mut Delta,
        at: &Recording<'_>,
        o: &OutcomeRow,
    ) -> Result<Recorded, StoreError> {
        const OP: &str = "record_outcomes";
        let Recording {
            destination,
            audience_key,
            now_ms,
        } = *at;
        let id = &o.identity;
        let (email, user_id) = (key_part(&id.email), key_part(&id.user_id));
        let seq = to_i64(OP, o.seq)?;
        let Some(row) = current(&mut st.get, OP, destination, audience_key, id)? else {
            return Ok(Recorded::Unknown);
        };
        let unchanged = row.seq == seq;
        let settled = match &o.outcome {
            Outcome::Delivered => Some((StatusKind::Delivered, None)),
            Outcome::Rejected { reason } => Some((StatusKind::Rejected, Some(reason.as_str()))),
            Outcome::Retry { .. } | Outcome::Superseded { .. } => None,
        };
        if let Some((kind, reason)) = settled
            && unchanged
            && row.state == "pending"
        {
            Self::settle_planned(st, d, at, id, &row, (kind, reason))?;
            return Ok(Recorded::Applied);
        }
        let event: Option<(i64, Option<bool>, Option<i64>, String)> = st
            .planned
            .query_row(params![seq, audience_key, email, user_id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .optional()
            .map_err(engine(OP))?;
        let Some((part, member, time_ms, was)) = event else {
            return Ok(Recorded::Unknown);
        };
        let was = status_of(OP, &was)?;
        if unchanged && row.state != "pending" && o.outcome != Outcome::Delivered {
            // Already settled (e.g. an outcome reported twice): keep the first.
            return Ok(Recorded::Applied);
        }
        let mut status = |d: &mut Delta, k: StatusKind, reason: Option<&str>, next: Option<i64>| {
            d.event_moved(was, k);
            st.set_status
                .execute(params![seq, part, k.as_str(), reason, next, now_ms])
                .map(|_| ())
                .map_err(engine(OP))
        };
        // (the new state, its reason, attempts to add, next attempt), when the key settles.
        let settle: Option<(&str, Option<&str>, i64, i64)> = match &o.outcome {
            Outcome::Delivered => {
                status(d, StatusKind::Delivered, None, None)?;
                let newer_than_ack = match row.ack_seq {
                    None => true,
                    Some(a) => version(OP, time_ms, seq)? > version(OP, row.ack_time_ms, a)?,
                };
                if newer_than_ack {
                    st.ack
                        .execute(params![
                            destination,
                            audience_key,
                            email,
                            user_id,
                            member,
                            time_ms,
                            seq,
                            now_ms
                        ])
                        .map_err(engine(OP))?;
                    d.ack_moved(row.ack_member, member == Some(true));
                    d.delivered_at(now_ms);
                }
                unchanged.then_some(("delivered", None, 0, 0))
            }
            Outcome::Rejected { reason } => {
                status(d, StatusKind::Rejected, Some(reason), None)?;
                unchanged.then_some(("rejected", Some(reason.as_str()), 0, 0))
            }
            Outcome::Retry {
                next_attempt_ms,
                reason,
            } => {
                if unchanged {
                    status(d, StatusKind::Pending, Some(reason), Some(*next_attempt_ms))?;
                }
                unchanged.then_some(("pending", Some(reason.as_str()), 1, *next_attempt_ms))
            }
            Outcome::Superseded { reason } => {
                if unchanged {
                    status(d, StatusKind::Superseded, Some(reason), None)?;
                }
                unchanged.then_some(("superseded", Some(reason.as_str()), 0, 0))
            }
        };
        if let Some((state, reason, attempts, next)) = settle {
            st.settle
                .execute(params![
                    destination,
                    audience_key,
                    email,
                    user_id,
                    state,
                    reason,
                    attempts,
                    next
                ])
                .map_err(engine(OP))?;
            d.state_moved(&row.state, state);
        }
        Ok(if unchanged {
            Recorded::Applied
        } else {
            Recorded::ChangedMeanwhile
        })
    }
}

/// Where and when outcomes are recorded: one audience, one moment.
#[derive(Clone, Copy)]
struct Recording<'a> {
    destination: &'a str,
    audience_key: &'a str,
    now_ms: i64,
}

/// The statements of [`Store::record_outcomes`], prepared once per call.
struct OutcomeStatements<'c> {
    get: rusqlite::CachedStatement<'c>,
    planned: rusqlite::CachedStatement<'c>,
    status_of: rusqlite::CachedStatement<'c>,
    set_status: rusqlite::CachedStatement<'c>,
    move_status: rusqlite::CachedStatement<'c>,
    ack: rusqlite::CachedStatement<'c>,
    settle: rusqlite::CachedStatement<'c>,
    settle_current: rusqlite::CachedStatement<'c>,
}

impl<'c> OutcomeStatements<'c> {
    fn prepare(tx: &'c Connection) -> Result<Self, StoreError> {
        let p = |sql: &str| tx.prepare_cached(sql).map_err(engine("record_outcomes"));
        Ok(Self {
            get: p(CURRENT)?,
            planned: p("SELECT part, member, time_ms, status FROM event_audiences
                 WHERE seq = ?1 AND list_key = ?2 AND email = ?3 AND user_id = ?4")?,
            status_of: p("SELECT status FROM event_audiences WHERE seq = ?1 AND part = ?2")?,
            set_status: p(
                "UPDATE event_audiences SET status = ?3, reason = ?4, next_attempt_ms = ?5,
                 updated_ms = ?6 WHERE seq = ?1 AND part = ?2",
            )?,
            move_status: p(
                "UPDATE event_audiences SET status = ?3, reason = ?4, next_attempt_ms = NULL,
                 updated_ms = ?5 WHERE seq = ?1 AND part = ?2 AND status = ?6",
            )?,
            ack: p(
                "UPDATE desired SET ack_member = ?5, ack_time_ms = ?6, ack_seq = ?7,
                 ack_ms = ?8
                 WHERE destination = ?1 AND list_key = ?2 AND email = ?3 AND user_id = ?4",
            )?,
            settle: p("UPDATE desired SET state = ?5, reason = ?6,
                 attempts = attempts + ?7, tries = MAX(tries, attempts + ?7),
                 next_attempt_ms = ?8
                 WHERE destination = ?1 AND list_key = ?2 AND email = ?3 AND user_id = ?4")?,
            // No RETURNING, and no UPDATE by a key prefix: either makes SQLite open a
            // statement journal per row. The acknowledged version is never newer than the
            // desired one, so a delivery of the desired version always moves it.
            settle_current: p(
                "UPDATE desired SET state = ?5, reason = ?6, next_attempt_ms = 0,
                 ack_member = CASE WHEN ?5 = 'delivered' THEN member ELSE ack_member END,
                 ack_time_ms = CASE WHEN ?5 = 'delivered' THEN time_ms ELSE ack_time_ms END,
                 ack_seq = CASE WHEN ?5 = 'delivered' THEN seq ELSE ack_seq END,
                 ack_ms = CASE WHEN ?5 = 'delivered' THEN ?7 ELSE ack_ms END
                 WHERE destination = ?1 AND list_key = ?2 AND email = ?3 AND user_id = ?4",
            )?,
        })
    }
}

/// The statements of [`Store::accept`], prepared once per batch.
struct AcceptStatements<'c> {
    insert_event: rusqlite::CachedStatement<'c>,
    insert_status: rusqlite::CachedStatement<'c>,
    get: rusqlite::CachedStatement<'c>,
    insert_new: rusqlite::CachedStatement<'c>,
    upsert: rusqlite::CachedStatement<'c>,
    supersede: rusqlite::CachedStatement<'c>,
}

impl<'c> AcceptStatements<'c> {
    fn prepare(tx: &'c Connection) -> Result<Self, StoreError> {
        let p = |sql: &str| tx.prepare_cached(sql).map_err(engine("accept"));
        Ok(Self {
            insert_event: p(
                "INSERT INTO events (destination, message_id, received_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (destination, message_id) DO NOTHING",
            )?,
            insert_status: p(
                "INSERT INTO event_audiences (seq, part, list_key, email, user_id, member,
                 time_ms, status, reason, next_attempt_ms, updated_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, NULL, ?10)",
            )?,
            get: p(CURRENT)?,
            insert_new: p(concat!(insert_desired!(), "NOTHING"))?,
            upsert: p(concat!(
                insert_desired!(),
                "UPDATE SET
                 list_id = excluded.list_id, member = excluded.member,
                 time_ms = excluded.time_ms, seq = excluded.seq, part = excluded.part,
                 accepted_ms = excluded.accepted_ms, data_fields = excluded.data_fields,
                 update_existing_users_only = excluded.update_existing_users_only,
                 channel_unsubscribe = excluded.channel_unsubscribe,
                 campaign_id = excluded.campaign_id, state = 'pending', reason = NULL,
                 attempts = 0, next_attempt_ms = 0, tries = 0"
            ))?,
            supersede: p(
                "UPDATE event_audiences SET status = 'superseded', reason = ?3,
                 next_attempt_ms = NULL, updated_ms = ?4
                 WHERE seq = ?1 AND part = ?2 AND status = ?5",
            )?,
        })
    }
}

/// Columns of a pending row as stored.
struct RawPending {
    list_id: Option<i64>,
    email: String,
    user_id: String,
    member: bool,
    data_fields: Option<String>,
    settings: AudienceSettings,
    time_ms: Option<i64>,
    seq: i64,
    accepted_ms: i64,
    attempts: i64,
    reason: Option<String>,
}

impl RawPending {
    fn into_row(self, audience_key: &str) -> Result<PendingRow, StoreError> {
        const OP: &str = "pending";
        let data_fields =
            match self.data_fields {
                None => None,
                Some(text) => Some(serde_json::from_str::<Map<String, Value>>(&text).map_err(
                    |e| StoreError::Corrupt {
                        op: OP,
                        message: format!("data fields of seq {}: {e}", self.seq),
                    },
                )?),
            };
        Ok(PendingRow {
            audience_key: audience_key.to_string(),
            list_id: self.list_id,
            identity: identity_of(self.email, self.user_id),
            member: self.member,
            data_fields,
            settings: self.settings,
            version: version(OP, self.time_ms, self.seq)?,
            accepted_ms: self.accepted_ms,
            attempts: u32::try_from(self.attempts).map_err(|_| StoreError::Corrupt {
                op: OP,
                message: format!("attempts {} out of range", self.attempts),
            })?,
            last_error: self.reason,
        })
    }
}

impl Store for SqliteStore {
    fn accept(&self, batch: &[NewEvent]) -> Result<Vec<Receipt>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        self.write("accept", |tx| {
            let mut st = AcceptStatements::prepare(tx)?;
            let mut deltas = Deltas::default();
            let receipts = batch
                .iter()
                .map(|ev| Self::accept_one(tx, &mut st, &mut deltas, ev))
                .collect::<Result<Vec<_>, _>>()?;
            deltas.apply(tx, "accept")?;
            Ok(receipts)
        })
    }

    fn pending(
        &self,
        destination: &str,
        audience_key: &str,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<PendingRow>, StoreError> {
        const OP: &str = "pending";
        let limit = to_i64(OP, limit as u64)?;
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT list_id, email, user_id, member, data_fields,
                 update_existing_users_only, channel_unsubscribe, campaign_id, time_ms, seq,
                 accepted_ms, attempts, reason
                 FROM desired
                 WHERE destination = ?1 AND list_key = ?2 AND state = 'pending'
                   AND next_attempt_ms <= ?3
                 ORDER BY seq LIMIT ?4",
            )
            .map_err(engine(OP))?;
        let mut out = Vec::with_capacity(limit.clamp(0, 8192) as usize);
        let rows = stmt
            .query_map(params![destination, audience_key, now_ms, limit], |r| {
                Ok(RawPending {
                    list_id: r.get(0)?,
                    email: r.get(1)?,
                    user_id: r.get(2)?,
                    member: r.get(3)?,
                    data_fields: r.get(4)?,
                    settings: AudienceSettings {
                        update_existing_users_only: r.get(5)?,
                        channel_unsubscribe: r.get(6)?,
                        campaign_id: r.get(7)?,
                    },
                    time_ms: r.get(8)?,
                    seq: r.get(9)?,
                    accepted_ms: r.get(10)?,
                    attempts: r.get(11)?,
                    reason: r.get(12)?,
                })
            })
            .map_err(engine(OP))?;
        for r in rows {
            out.push(r.map_err(engine(OP))?.into_row(audience_key)?);
        }
        Ok(out)
    }

    fn pending_audiences(&self, destination: &str, now_ms: i64) -> Result<Vec<String>, StoreError> {
        const OP: &str = "pending_audiences";
        let conn = self.lock();
        let mut stmt = conn
            // One seek per audience on the partial index (the next audience with pending
            // rows, then whether one of them is due), instead of reading every pending row:
            // this runs several times a second, also under a backlog of millions.
            .prepare_cached(
                "WITH RECURSIVE k(key) AS (
                   SELECT (SELECT MIN(list_key) FROM desired INDEXED BY desired_pending
                           WHERE destination = ?1 AND state = 'pending')
                   UNION ALL
                   SELECT (SELECT MIN(list_key) FROM desired INDEXED BY desired_pending
                           WHERE destination = ?1 AND state = 'pending' AND list_key > k.key)
                   FROM k WHERE k.key IS NOT NULL
                 )
                 SELECT key FROM k WHERE key IS NOT NULL AND EXISTS (
                   SELECT 1 FROM desired INDEXED BY desired_pending
                   WHERE destination = ?1 AND list_key = k.key AND state = 'pending'
                     AND next_attempt_ms <= ?2)
                 ORDER BY key",
            )
            .map_err(engine(OP))?;
        stmt.query_map(params![destination, now_ms], |r| r.get(0))
            .map_err(engine(OP))?
            .collect::<Result<Vec<String>, _>>()
            .map_err(engine(OP))
    }

    fn record_outcomes(
        &self,
        destination: &str,
        audience_key: &str,
        now_ms: i64,
        outcomes: &[OutcomeRow],
    ) -> Result<Vec<Recorded>, StoreError> {
        const OP: &str = "record_outcomes";
        if outcomes.is_empty() {
            return Ok(Vec::new());
        }
        self.write(OP, |tx| {
            let mut st = OutcomeStatements::prepare(tx)?;
            let mut d = Delta::default();
            let at = Recording {
                destination,
                audience_key,
                now_ms,
            };
            let mut out = Vec::with_capacity(outcomes.len());
            for o in outcomes {
                out.push(Self::record_one(&mut st, &mut d, &at, o)?);
            }
            counts::apply(tx, OP, destination, audience_key, &d)?;
            Ok(out)
        })
    }

    fn list_id(&self, destination: &str, audience_key: &str) -> Result<Option<i64>, StoreError> {
        let conn = self.lock();
        conn.query_row(
            "SELECT list_id FROM lists WHERE destination = ?1 AND audience_key = ?2",
            params![destination, audience_key],
            |r| r.get(0),
        )
        .optional()
        .map_err(engine("list_id"))
    }

    fn put_list_id(
        &self,
        destination: &str,
        audience_key: &str,
        list_id: i64,
    ) -> Result<i64, StoreError> {
        const OP: &str = "put_list_id";
        self.write(OP, |tx| {
            tx.execute(
                "INSERT INTO lists (destination, audience_key, list_id) VALUES (?1, ?2, ?3)
                 ON CONFLICT (destination, audience_key) DO NOTHING",
                params![destination, audience_key, list_id],
            )
            .map_err(engine(OP))?;
            tx.query_row(
                "SELECT list_id FROM lists WHERE destination = ?1 AND audience_key = ?2",
                params![destination, audience_key],
                |r| r.get(0),
            )
            .map_err(engine(OP))
        })
    }

    fn event_status(
        &self,
        destination: &str,
        message_id: &str,
    ) -> Result<Option<EventRecord>, StoreError> {
        const OP: &str = "event_status";
        let conn = self.lock();
        let found: Option<(i64, i64)> = conn
            .query_row(
                "SELECT seq, received_ms FROM events WHERE destination = ?1 AND message_id = ?2",
                params![destination, message_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(engine(OP))?;
        let Some((seq, received_ms)) = found else {
            return Ok(None);
        };
        let mut stmt = conn
            .prepare_cached(
                "SELECT ea.list_key, ea.email, ea.user_id, ea.member, ea.time_ms, ea.status,
                 ea.reason, ea.next_attempt_ms, ea.updated_ms,
                 (SELECT d.tries FROM desired d WHERE d.destination = ?2
                    AND d.list_key = ea.list_key AND d.email = ea.email
                    AND d.user_id = ea.user_id AND d.seq = ea.seq AND d.part = ea.part)
                 FROM event_audiences ea WHERE ea.seq = ?1 ORDER BY ea.part",
            )
            .map_err(engine(OP))?;
        // The status as stored, parsed below.
        let raw = stmt
            .query_map(params![seq, destination], |r| {
                let status: String = r.get(5)?;
                let tries: Option<i64> = r.get(9)?;
                Ok((
                    AudienceStatus {
                        audience_key: r.get(0)?,
                        identity: identity_of(r.get(1)?, r.get(2)?),
                        member: r.get(3)?,
                        time_ms: r.get(4)?,
                        status: StatusKind::Accepted,
                        reason: r.get(6)?,
                        next_attempt_ms: r.get(7)?,
                        attempts: 0,
                        updated_ms: r.get(8)?,
                    },
                    status,
                    tries.unwrap_or(0),
                ))
            })
            .map_err(engine(OP))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(engine(OP))?;
        let audiences = raw
            .into_iter()
            .map(|(mut a, status, tries)| {
                a.status = status_of(OP, &status)?;
                a.attempts = u32::try_from(tries).map_err(|_| StoreError::Corrupt {
                    op: OP,
                    message: format!("attempts {tries} out of range"),
                })?;
                Ok(a)
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let ignored_settings = Self::ignored_settings(&conn, seq)?;
        Ok(Some(EventRecord {
            seq: to_u64(OP, seq)?,
            destination: destination.to_string(),
            message_id: message_id.to_string(),
            received_ms,
            audiences,
            ignored_settings,
        }))
    }

    fn list_counts(&self, destination: &str) -> Result<Vec<ListCounts>, StoreError> {
        counts::list_counts(&self.lock(), destination)
    }

    fn event_counts(&self, destination: &str) -> Result<EventCounts, StoreError> {
        counts::event_counts(&self.lock(), destination)
    }

    fn recount(&self, destination: &str) -> Result<(Vec<ListCounts>, EventCounts), StoreError> {
        counts::recount(&self.lock(), destination)
    }

    fn record_attempt(
        &self,
        destination: &str,
        audience_key: &str,
        now_ms: i64,
        rows: &[(Identity, Seq)],
        reason: &str,
        next_attempt_ms: Option<i64>,
    ) -> Result<usize, StoreError> {
        const OP: &str = "record_attempt";
        if rows.is_empty() {
            return Ok(0);
        }
        let keys = Value::Array(
            rows.iter()
                .map(|(id, seq)| {
                    Value::Array(vec![
                        key_part(&id.email).into(),
                        key_part(&id.user_id).into(),
                        (*seq).into(),
                    ])
                })
                .collect(),
        )
        .to_string();
        self.write(OP, |tx| {
            // Whatever the number of rows, a few statements: the keys travel as one JSON array.
            let marked = tx
                .prepare_cached(MARK_TRIES)
                .map_err(engine(OP))?
                .execute(params![destination, audience_key, reason, keys])
                .map_err(engine(OP))?;
            if marked == 0 {
                return Ok(0);
            }
            let events = |from: StatusKind| {
                tx.prepare_cached(MARK_TRIED_EVENTS)
                    .map_err(engine(OP))?
                    .execute(params![
                        destination,
                        audience_key,
                        reason,
                        next_attempt_ms,
                        now_ms,
                        keys,
                        from.as_str()
                    ])
                    .map_err(engine(OP))
            };
            events(StatusKind::Pending)?;
            let flipped = events(StatusKind::Accepted)?;
            let mut d = Delta::default();
            d.event(StatusKind::Accepted, -(flipped as i64));
            d.event(StatusKind::Pending, flipped as i64);
            counts::apply(tx, OP, destination, audience_key, &d)?;
            Ok(marked)
        })
    }

    fn destination_state(&self, destination: &str) -> Result<Option<DestinationState>, StoreError> {
        const OP: &str = "destination_state";
        let conn = self.lock();
        let row: Option<(String, Option<String>, Option<i64>)> = conn
            .query_row(
                "SELECT state, reason, since_ms FROM destination_state WHERE destination = ?1",
                [destination],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(engine(OP))?;
        let Some((state, reason, since)) = row else {
            return Ok(None);
        };
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

    fn set_destination_state(
        &self,
        destination: &str,
        state: &DestinationState,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        const OP: &str = "set_destination_state";
        self.write(OP, |tx| {
            tx.prepare_cached(
                "INSERT INTO destination_state (destination, state, reason, since_ms, updated_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (destination) DO UPDATE SET state = excluded.state,
                 reason = excluded.reason, since_ms = excluded.since_ms,
                 updated_ms = excluded.updated_ms",
            )
            .map_err(engine(OP))?
            .execute(params![
                destination,
                state.word(),
                state.reason(),
                state.since_ms(),
                now_ms
            ])
            .map(|_| ())
            .map_err(engine(OP))
        })
    }

    fn write_failure(&self) -> Option<String> {
        self.health.failure()
    }

    fn probe_write(&self) -> Result<(), StoreError> {
        const OP: &str = "probe_write";
        self.write(OP, |tx| {
            tx.execute(PROBE, []).map(|_| ()).map_err(engine(OP))
        })
    }
}

#[cfg(test)]
mod open_tests;

#[cfg(test)]
mod tests {
    use super::*;

    struct TempDb(std::path::PathBuf);

    impl TempDb {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!(
                "sync-sqlite-unit-{}-{name}-{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0)
            ));
            Self(dir)
        }
        fn file(&self) -> std::path::PathBuf {
            self.0.join("nested").join("store.db")
        }
    }

    impl Drop for TempDb {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn files_use_wal_and_full_sync_and_record_the_schema_version() {
        let t = TempDb::new("pragmas");
        let s = SqliteStore::open(t.file()).unwrap();
        assert_eq!(s.pragma("journal_mode").unwrap(), "wal");
        // FULL is 2.
        assert_eq!(s.pragma("synchronous").unwrap(), "2");
        assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
        drop(s);
        // Reopening keeps one version row.
        let s = SqliteStore::open(t.file()).unwrap();
        let conn = s.lock();
        let rows: i64 = conn
            .query_row("SELECT COUNT(*) FROM schema_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 1);
    }

    /// Why [`SqliteStore::open_read_only`] refuses `path`.
    fn read_only_err(path: &Path) -> StoreError {
        match SqliteStore::open_read_only(path) {
            Ok(_) => panic!("{} opened", path.display()),
            Err(e) => e,
        }
    }

    #[test]
    fn read_only_opens_create_and_change_nothing() {
        let t = TempDb::new("read-only");
        // A missing file: an error naming it, and no file or directory appears.
        let err = read_only_err(&t.file());
        assert!(
            err.to_string().contains(&t.file().display().to_string()),
            "{err}"
        );
        assert!(!t.0.exists(), "read-only open created {}", t.0.display());

        let s = SqliteStore::open(t.file()).unwrap();
        s.put_list_id("d", "vip", 7).unwrap();
        drop(s);
        let r = SqliteStore::open_read_only(t.file()).unwrap();
        assert_eq!(r.schema_version().unwrap(), SCHEMA_VERSION);
        assert_eq!(r.list_id("d", "vip").unwrap(), Some(7));
        assert!(r.list_counts("d").unwrap().is_empty());
        let err = r.put_list_id("d", "other", 8).expect_err("a write");
        assert!(err.to_string().contains("readonly"), "{err}");
        drop(r);
        assert_eq!(
            SqliteStore::open(t.file())
                .unwrap()
                .list_id("d", "other")
                .unwrap(),
            None
        );

        // Another SQLite file, or a newer schema, is refused.
        let other = t.0.join("other.db");
        Connection::open(&other)
            .unwrap()
            .execute_batch("CREATE TABLE t (x INTEGER);")
            .unwrap();
        let err = read_only_err(&other);
        assert!(
            err.to_string().contains("not an iterable-lists database"),
            "{err}"
        );
        Connection::open(t.file())
            .unwrap()
            .execute("UPDATE schema_version SET version = 99", [])
            .unwrap();
        let err = read_only_err(&t.file());
        assert!(
            matches!(err, StoreError::SchemaTooNew { found: 99, .. }),
            "{err}"
        );
    }

    /// Version 1's `desired` (a rowid table), as an earlier build created it.
    const V1_DESIRED: &str = "
        CREATE TABLE schema_version (version INTEGER NOT NULL);
        INSERT INTO schema_version VALUES (1);
        CREATE TABLE desired (
            destination TEXT NOT NULL, list_key TEXT NOT NULL, email TEXT NOT NULL,
            user_id TEXT NOT NULL, list_id INTEGER, member INTEGER NOT NULL, time_ms INTEGER,
            seq INTEGER NOT NULL, part INTEGER NOT NULL, accepted_ms INTEGER NOT NULL,
            data_fields TEXT, update_existing_users_only INTEGER, channel_unsubscribe INTEGER,
            campaign_id INTEGER, state TEXT NOT NULL, reason TEXT,
            attempts INTEGER NOT NULL DEFAULT 0, next_attempt_ms INTEGER NOT NULL DEFAULT 0,
            ack_member INTEGER, ack_time_ms INTEGER, ack_seq INTEGER, ack_ms INTEGER,
            PRIMARY KEY (destination, list_key, email, user_id)
        );
        CREATE INDEX desired_pending ON desired (destination, list_key, seq)
            WHERE state = 'pending';
        INSERT INTO desired (destination, list_key, email, user_id, member, seq, part,
            accepted_ms, data_fields, state)
            VALUES ('d', 'k', 'a@x.co', '', 1, 7, 0, 5, '{\"plan\":\"gold\"}', 'pending');
    ";

    #[test]
    fn a_version_1_database_is_migrated_with_its_rows() {
        let t = TempDb::new("v1");
        std::fs::create_dir_all(t.file().parent().unwrap()).unwrap();
        Connection::open(t.file())
            .unwrap()
            .execute_batch(V1_DESIRED)
            .unwrap();
        let s = SqliteStore::open(t.file()).unwrap();
        assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
        let rows = s.pending("d", "k", 10, 10).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].identity.email.as_deref(), Some("a@x.co"));
        assert_eq!(rows[0].version.seq, 7);
        assert_eq!(
            rows[0].data_fields.as_ref().and_then(|m| m.get("plan")),
            Some(&Value::from("gold"))
        );
        let sql: String = s
            .lock()
            .query_row(
                "SELECT sql FROM sqlite_master WHERE name = 'desired'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(sql.contains("WITHOUT ROWID"), "{sql}");
        drop(s);
        // Opening again changes nothing.
        let s = SqliteStore::open(t.file()).unwrap();
        assert_eq!(s.pending("d", "k", 10, 10).unwrap().len(), 1);
    }

    /// A version-2 database (the schema before `ignored_settings`) with one logged event, as
    /// the previous build left it.
    const V2_WITH_AN_EVENT: &str = "
        CREATE TABLE schema_version (version INTEGER NOT NULL);
        INSERT INTO schema_version VALUES (2);
        CREATE TABLE events (
            seq INTEGER PRIMARY KEY AUTOINCREMENT, destination TEXT NOT NULL,
            message_id TEXT NOT NULL, received_ms INTEGER NOT NULL,
            UNIQUE (destination, message_id)
        );
        CREATE TABLE event_audiences (
            seq INTEGER NOT NULL, part INTEGER NOT NULL, list_key TEXT NOT NULL,
            email TEXT NOT NULL, user_id TEXT NOT NULL, member INTEGER, time_ms INTEGER,
            status TEXT NOT NULL, reason TEXT, next_attempt_ms INTEGER,
            updated_ms INTEGER NOT NULL, PRIMARY KEY (seq, part)
        ) WITHOUT ROWID;
        CREATE TABLE desired (
            destination TEXT NOT NULL, list_key TEXT NOT NULL, email TEXT NOT NULL,
            user_id TEXT NOT NULL, list_id INTEGER, member INTEGER NOT NULL, time_ms INTEGER,
            seq INTEGER NOT NULL, part INTEGER NOT NULL, accepted_ms INTEGER NOT NULL,
            data_fields TEXT, update_existing_users_only INTEGER, channel_unsubscribe INTEGER,
            campaign_id INTEGER, state TEXT NOT NULL, reason TEXT,
            attempts INTEGER NOT NULL DEFAULT 0, next_attempt_ms INTEGER NOT NULL DEFAULT 0,
            ack_member INTEGER, ack_time_ms INTEGER, ack_seq INTEGER, ack_ms INTEGER,
            PRIMARY KEY (destination, list_key, email, user_id)
        ) WITHOUT ROWID;
        CREATE INDEX desired_pending ON desired (destination, list_key, seq)
            WHERE state = 'pending';
        CREATE TABLE lists (
            destination TEXT NOT NULL, audience_key TEXT NOT NULL, list_id INTEGER NOT NULL,
            PRIMARY KEY (destination, audience_key)
        );
        INSERT INTO events VALUES (1, 'd', 'old', 5);
        INSERT INTO event_audiences VALUES (1, 0, 'k', 'a@x.co', '', 1, NULL, 'accepted',
            NULL, NULL, 5);
        INSERT INTO desired (destination, list_key, email, user_id, member, seq, part,
            accepted_ms, state) VALUES ('d', 'k', 'a@x.co', '', 1, 1, 0, 5, 'pending');
    ";

    #[test]
    fn a_version_2_database_is_upgraded_and_logs_ignored_settings() {
        use crate::store::{EventContent, MembershipChange, NewEvent};
        let t = TempDb::new("v2");
        std::fs::create_dir_all(t.file().parent().unwrap()).unwrap();
        Connection::open(t.file())
            .unwrap()
            .execute_batch(V2_WITH_AN_EVENT)
            .unwrap();
        let s = SqliteStore::open(t.file()).unwrap();
        assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
        // The old event reads as before, with nothing ignored.
        let old = s.event_status("d", "old").unwrap().unwrap();
        assert_eq!(old.audiences.len(), 1);
        assert_eq!(old.ignored_settings, vec![]);
        assert_eq!(s.pending("d", "k", 10, 10).unwrap().len(), 1);
        // A new event logs its ignored settings, and a reopen keeps them.
        let ignored = IgnoredSetting {
            setting: SettingName::CampaignId,
            value: "1.5".into(),
            reason: "must be a whole positive number but it was a number".into(),
        };
        let change = MembershipChange {
            audience_key: "k".into(),
            list_id: None,
            identity: Identity::new(Some("b@x.co"), None),
            member: true,
            data_fields: None,
            settings: AudienceSettings::default(),
            time_ms: None,
        };
        s.accept(&[NewEvent {
            destination: "d".into(),
            message_id: "new".into(),
            received_ms: 6,
            content: EventContent::Changes(vec![change]),
            ignored_settings: vec![ignored.clone()],
        }])
        .unwrap();
        drop(s);
        let s = SqliteStore::open(t.file()).unwrap();
        assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
        let new = s.event_status("d", "new").unwrap().unwrap();
        assert_eq!(new.ignored_settings, vec![ignored]);
        let versions: i64 = s
            .lock()
            .query_row("SELECT COUNT(*) FROM schema_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(versions, 1);
    }

    #[test]
    fn an_unknown_ignored_setting_is_an_error_not_a_panic() {
        let s = SqliteStore::open_in_memory().unwrap();
        run_sql(
            &s,
            "INSERT INTO events VALUES (1, 'd', 'm', 5);
             INSERT INTO ignored_settings VALUES (1, 'campaignID', '1', 'x');",
        );
        let err = s.event_status("d", "m").unwrap_err();
        assert!(err.to_string().contains("campaignID"), "{err}");
    }

    /// Runs SQL as one write (rows the store's API would not write).
    fn run_sql(s: &SqliteStore, sql: &str) {
        s.write("test", |c| c.execute_batch(sql).map_err(engine("test")))
            .unwrap();
    }

    fn insert_list(c: &Connection, key: &str) -> Result<(), StoreError> {
        c.execute(
            "INSERT INTO lists (destination, audience_key, list_id) VALUES ('d', ?1, 1)",
            [key],
        )
        .map(|_| ())
        .map_err(engine("test"))
    }

    fn stored_lists(s: &SqliteStore) -> Vec<String> {
        let conn = s.lock();
        let mut stmt = conn
            .prepare("SELECT audience_key FROM lists ORDER BY audience_key")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn concurrent_writes_each_return_after_their_commit() {
        let t = TempDb::new("group");
        let s = Arc::new(SqliteStore::open(t.file()).unwrap());
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for j in 0..50 {
                        let key = format!("t{i}-{j:02}");
                        s.write("test", |c| insert_list(c, &key)).unwrap();
                        // Returned: committed, so the read connection sees it.
                        let n: i64 = s
                            .lock()
                            .query_row(
                                "SELECT COUNT(*) FROM lists WHERE audience_key = ?1",
                                [&key],
                                |r| r.get(0),
                            )
                            .unwrap();
                        assert_eq!(n, 1, "{key} visible after its write returned");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(stored_lists(&s).len(), 400);
        drop(s);
        let s = SqliteStore::open(t.file()).unwrap();
        assert_eq!(stored_lists(&s).len(), 400, "all durable");
    }

    #[test]
    fn a_failing_or_panicking_write_leaves_the_others_of_its_group_intact() {
        let s = Arc::new(SqliteStore::open_in_memory().unwrap());
        // Hold the writer so that the next writers queue up and share one group.
        let gate = s.lock_writer();
        let spawn = |key: &'static str, mode: u8| {
            let s = s.clone();
            std::thread::spawn(move || {
                s.write("test", |c| {
                    insert_list(c, key)?;
                    match mode {
                        1 => Err(StoreError::Invalid {
                            op: "test",
                            message: "refused".into(),
                        }),
                        2 => panic!("boom"),
                        _ => Ok(()),
                    }
                })
            })
        };
        let ok1 = spawn("ok1", 0);
        let bad = spawn("bad", 1);
        let boom = spawn("boom", 2);
        let ok2 = spawn("ok2", 0);
        while s.queued.load(Ordering::SeqCst) < 4 {
            std::thread::yield_now();
        }
        drop(gate);
        assert!(ok1.join().unwrap().is_ok());
        assert!(ok2.join().unwrap().is_ok());
        assert!(matches!(
            bad.join().unwrap(),
            Err(StoreError::Invalid { .. })
        ));
        assert!(boom.join().is_err(), "the panic reaches its caller");
        assert_eq!(stored_lists(&s), ["ok1", "ok2"]);
        // The store goes on working.
        s.write("test", |c| insert_list(c, "after")).unwrap();
        assert_eq!(stored_lists(&s), ["after", "ok1", "ok2"]);
    }

    #[test]
    fn a_failing_or_panicking_first_write_of_a_group_leaves_nothing() {
        // Alone, each write is the first of its group and runs without a savepoint.
        let t = TempDb::new("first");
        let s = SqliteStore::open(t.file()).unwrap();
        let refused = s.write("test", |c| {
            insert_list(c, "refused")?;
            Err::<(), _>(StoreError::Invalid {
                op: "test",
                message: "refused".into(),
            })
        });
        assert!(matches!(refused, Err(StoreError::Invalid { .. })));
        let boom = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            s.write("test", |c| -> Result<(), StoreError> {
                insert_list(c, "boom")?;
                panic!("boom")
            })
        }));
        assert!(boom.is_err(), "the panic reaches its caller");
        assert!(stored_lists(&s).is_empty());
        s.write("test", |c| insert_list(c, "after")).unwrap();
        assert_eq!(stored_lists(&s), ["after"]);
    }

    #[test]
    fn the_wal_is_restarted_under_a_steady_stream_of_commits() {
        let t = TempDb::new("wal");
        let s = Arc::new(SqliteStore::open_with(&t.file(), 64, &OpenOptions::default()).unwrap());
        let wal = t.file().with_extension("db-wal");
        let mut largest = 0;
        // Commits without pause, each adding pages: the WAL would grow without bound if only
        // passive checkpoints ran (36 MB here), and lags far behind if only the checkpointer
        // thread restarted it (2.5 MB). The writer restarts the WAL once it holds twice the
        // 64 frames, whenever the checkpointer runs; a restart that meets a running passive
        // checkpoint is retried at the next commits, hence the room for as many again.
        let bound = 4 * 64 * WAL_FRAME_BYTES;
        for i in 0..3000 {
            s.write("test", |c| {
                c.execute(
                    "INSERT INTO lists (destination, audience_key, list_id) VALUES ('d', ?1, ?2)",
                    params![format!("{i:06}-{}", "x".repeat(200)), i],
                )
                .map(|_| ())
                .map_err(engine("test"))
            })
            .unwrap();
            largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
        }
        assert_eq!(stored_lists(&s).len(), 3000);
        // Far below the ~9,000 frames the commits wrote.
        assert!(largest <= bound, "WAL of {largest} bytes, bound {bound}");
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let t = TempDb::new("newer");
        let s = SqliteStore::open(t.file()).unwrap();
        s.write("test", |c| {
            c.execute("UPDATE schema_version SET version = 99", [])
                .map_err(engine("test"))
        })
        .unwrap();
        drop(s);
        let err = SqliteStore::open(t.file()).unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::SchemaTooNew {
                    found: 99,
                    supported: SCHEMA_VERSION
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn the_pending_query_uses_the_partial_index() {
        let s = SqliteStore::open(":memory:").unwrap();
        let conn = s.lock();
        let plan: Vec<String> = conn
            .prepare(
                "EXPLAIN QUERY PLAN SELECT seq FROM desired
                 WHERE destination = 'd' AND list_key = 'k' AND state = 'pending'
                   AND next_attempt_ms <= 5 ORDER BY seq LIMIT 10",
            )
            .unwrap()
            .query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let text = plan.join("\n");
        assert!(text.contains("desired_pending"), "{text}");
        assert!(!text.contains("TEMP B-TREE"), "no sort step: {text}");
    }

    #[test]
    fn due_audiences_are_those_with_a_due_pending_row() {
        let s = SqliteStore::open(":memory:").unwrap();
        run_sql(
            &s,
            "INSERT INTO desired (destination, list_key, email, user_id, member, seq, part,
             accepted_ms, state, next_attempt_ms) VALUES
             ('d', 'a', 'x', '', 1, 1, 0, 0, 'delivered', 0),
             ('d', 'b', 'x', '', 1, 2, 0, 0, 'pending', 0),
             ('d', 'c', 'x', '', 1, 3, 0, 0, 'pending', 100),
             ('d', 'c', 'y', '', 1, 4, 0, 0, 'pending', 9),
             ('d', 'e', 'x', '', 1, 5, 0, 0, 'pending', 100),
             ('other', 'f', 'x', '', 1, 6, 0, 0, 'pending', 0)",
        );
        assert_eq!(s.pending_audiences("d", 10).unwrap(), ["b", "c"]);
        assert_eq!(s.pending_audiences("d", 100).unwrap(), ["b", "c", "e"]);
        assert!(s.pending_audiences("none", 100).unwrap().is_empty());
    }

    #[test]
    fn corrupt_data_fields_are_an_error_not_a_panic() {
        let s = SqliteStore::open(":memory:").unwrap();
        run_sql(
            &s,
            "INSERT INTO desired (destination, list_key, email, user_id, member, seq, part,
             accepted_ms, data_fields, state) VALUES ('d', 'k', 'a@x.co', '', 1, 1, 0, 0,
             'not json', 'pending')",
        );
        let err = s.pending("d", "k", 0, 10).unwrap_err();
        assert!(
            matches!(err, StoreError::Corrupt { op: "pending", .. }),
            "{err}"
        );
    }

    #[test]
    fn an_unknown_event_status_is_an_error_not_a_silent_miscount() {
        let s = SqliteStore::open(":memory:").unwrap();
        run_sql(
            &s,
            "INSERT INTO events (seq, destination, message_id, received_ms)
             VALUES (1, 'd', 'm1', 0), (2, 'd', 'm2', 0);
             INSERT INTO event_audiences (seq, part, list_key, email, user_id, status,
             updated_ms) VALUES (1, 0, 'k', 'a@x.co', '', 'delivered', 0)",
        );
        // Rows written behind the store's back are not in the maintained counts; the full
        // recount reads every row.
        assert_eq!(s.recount("d").unwrap().1.delivered, 1);
        run_sql(
            &s,
            "INSERT INTO event_audiences (seq, part, list_key, email, user_id, status,
             updated_ms) VALUES (2, 0, 'k', 'b@x.co', '', 'bogus', 0)",
        );
        let err = s.recount("d").unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt { op: "recount", message } if message.contains("1 event statuses")),
            "{err}"
        );
    }
}
