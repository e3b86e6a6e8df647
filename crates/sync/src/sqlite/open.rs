//! Opening a database: a file (created with its directories) or `:memory:`, tuned, checked
//! (`quick_check` within a budget, a real write), its schema created or migrated, and its
//! read connection and checkpointer started; or an existing file, to read it only.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::AtomicUsize;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::checkpoint::{BUSY_TIMEOUT, Checkpointer, WAL_RESTART_FRAMES};
use super::floors::FloorCache;
use super::integrity::{self, QuickCheck, WriteHealth, open_error};
use super::schema::SCHEMA_VERSION;
use super::{SqliteStore, Writer, engine};
use crate::store::StoreError;

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

/// SQLite's page cache per connection, in KiB (negative `cache_size`). Enough for the hot
/// B-tree pages of a large backlog; the default 2 MiB made every commit re-read pages.
const WRITER_CACHE_KIB: i64 = 32 * 1024;
const READER_CACHE_KIB: i64 = 16 * 1024;

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
    pub(super) fn open_with(
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
        let floors = FloorCache::default();
        Ok(Self::assemble(
            conn,
            floors,
            None,
            None,
            QuickCheck::Skipped,
        ))
    }

    /// The store over its writing connection, its read connection and its checkpointer.
    fn assemble(
        conn: Connection,
        floors: FloorCache,
        reader: Option<Mutex<Connection>>,
        checkpointer: Option<Checkpointer>,
        checked: QuickCheck,
    ) -> Self {
        Self {
            writer: Mutex::new(Writer {
                conn,
                open: false,
                ops: 0,
                epoch: 0,
                failed: VecDeque::new(),
                floors,
            }),
            committed: Condvar::new(),
            queued: AtomicUsize::new(0),
            reader,
            checkpointer,
            health: WriteHealth::default(),
            checked,
            prune_from: Mutex::new(None),
        }
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

    /// Sets the writer up, checks the file, creates or checks the schema, then opens the read
    /// connection of a file database.
    pub(super) fn init(
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
        let floors = FloorCache::load(&conn)?;
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
        Ok(Self::assemble(conn, floors, reader, checkpointer, checked))
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
}
