//! How a store operation fails, naming the operation.

use std::error::Error as StdError;
use std::sync::Arc;

type Source = Box<dyn StdError + Send + Sync>;

/// A storage failure, naming the operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: cannot open {location}: {source}")]
    Open {
        location: String,
        #[source]
        source: Source,
    },
    #[error("store: {op}: {source}")]
    Engine {
        op: &'static str,
        #[source]
        source: Source,
    },
    #[error("store: {op}: unreadable stored data: {message}")]
    Corrupt { op: &'static str, message: String },
    #[error("store: {op}: {message}")]
    Invalid { op: &'static str, message: String },
    #[error(
        "store: the database has schema version {found}, newer than this program's {supported}"
    )]
    SchemaTooNew { found: i64, supported: i64 },
    /// The database opens but cannot be written (a read-only file, directory or filesystem).
    #[error(
        "store: cannot write the database {location}: {source}; the service needs to write there \
         (is the file, its directory or the filesystem read-only?)"
    )]
    Unwritable {
        location: String,
        #[source]
        source: Source,
    },
    /// The database file is damaged.
    #[error(
        "store: the database {location} is damaged ({detail}); refusing to start. Restore it from \
         a backup, or copy what is readable into a new file (`sqlite3 {location} .recover | \
         sqlite3 recovered.db`), check it, and put it in its place"
    )]
    Damaged { location: String, detail: String },
    /// The task running the operation panicked or was cancelled (the operation may or may not
    /// have been committed).
    #[error("store: {op}: the store task failed: {message}")]
    Task { op: &'static str, message: String },
    /// The transaction the operation was grouped in failed: the same error reaches every
    /// operation of the group.
    #[error(transparent)]
    Group(Arc<StoreError>),
}

impl StoreError {
    pub fn engine(op: &'static str, source: impl Into<Source>) -> Self {
        StoreError::Engine {
            op,
            source: source.into(),
        }
    }
}
