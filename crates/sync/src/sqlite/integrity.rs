//! Whether the database can be trusted and written: `PRAGMA quick_check` at open, bounded in
//! time; the errors that mean a damaged file or a store that cannot write; and the health flag
//! that failed writes set and a successful one clears.

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode};

use crate::store::StoreError;

/// What the check at open found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuickCheck {
    /// `quick_check` found nothing wrong.
    Passed,
    /// Not run: an in-memory database, or no time budget.
    Skipped,
    /// Stopped when its time budget ran out: the rest of the file is unchecked.
    Unfinished {
        /// The budget it had.
        budget: Duration,
    },
}

/// How often (in SQLite VM instructions) the check looks at its budget.
const CHECK_EVERY_OPS: i32 = 1000;

/// At most this many problems are reported.
const MAX_PROBLEMS: u32 = 10;

/// Runs `PRAGMA quick_check` on `conn` until it finishes or `expired()` says the budget ran
/// out (it is asked every [`CHECK_EVERY_OPS`] instructions). A damaged file is a
/// [`StoreError::Damaged`] naming `location` and what the check said.
pub(super) fn quick_check(
    conn: &Connection,
    location: &str,
    budget: Duration,
    expired: impl FnMut() -> bool + Send + 'static,
) -> Result<QuickCheck, StoreError> {
    conn.progress_handler(CHECK_EVERY_OPS, Some(expired));
    let result = run_quick_check(conn);
    conn.progress_handler(0, None::<fn() -> bool>);
    match result {
        Ok(lines) if lines.len() == 1 && lines[0] == "ok" => Ok(QuickCheck::Passed),
        Ok(lines) => Err(StoreError::Damaged {
            location: location.to_string(),
            detail: format!("quick_check says: {}", lines.join("; ")),
        }),
        Err(e) if e.sqlite_error_code() == Some(ErrorCode::OperationInterrupted) => {
            Ok(QuickCheck::Unfinished { budget })
        }
        Err(e) => Err(open_error(location, "quick_check", e)),
    }
}

fn run_quick_check(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(&format!("PRAGMA quick_check({MAX_PROBLEMS})"))?;
    stmt.query_map([], |r| r.get::<_, String>(0))?.collect()
}

/// A deadline `budget` from now on the monotonic clock, as [`quick_check`] asks for it.
pub(super) fn deadline(budget: Duration) -> impl FnMut() -> bool + Send + 'static {
    let end = Instant::now() + budget;
    move || Instant::now() >= end
}

/// An error met while opening or checking the database at `location`, classified: a damaged
/// file, a file that cannot be written, or another failure to open.
pub(super) fn open_error(location: &str, during: &str, e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => StoreError::Damaged {
            location: location.to_string(),
            detail: format!("{during}: {e}"),
        },
        Some(ErrorCode::ReadOnly | ErrorCode::PermissionDenied) => StoreError::Unwritable {
            location: location.to_string(),
            source: e.into(),
        },
        _ => StoreError::Open {
            location: location.to_string(),
            source: format!("{during}: {e}").into(),
        },
    }
}

/// Why the database at `path` cannot be written, if the filesystem says so: the file cannot be
/// opened for writing, or no file can be created beside it (SQLite's `-wal` and `-shm`).
fn unwritable(path: &Path) -> Option<String> {
    if path.exists()
        && let Err(e) = std::fs::OpenOptions::new().write(true).open(path)
    {
        return Some(format!("the file cannot be opened for writing: {e}"));
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let probe = dir.join(format!(".iterable-lists-write-test-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            None
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => None,
        Err(e) => Some(format!("cannot create files in {}: {e}", dir.display())),
    }
}

/// A failure to open the database at `path`, made precise when the filesystem does not let
/// it be written (SQLite then reports only that it cannot open the file).
pub(super) fn explain_open_failure(path: &Path, e: StoreError) -> StoreError {
    match e {
        StoreError::Open { .. } | StoreError::Unwritable { .. } => match unwritable(path) {
            Some(why) => StoreError::Unwritable {
                location: path.display().to_string(),
                source: why.into(),
            },
            None => e,
        },
        other => other,
    }
}

/// Whether a failed write means the store cannot write (rather than a refused operation):
/// a read-only or full disk, an I/O error, a damaged file, a lock held too long.
pub(super) fn cannot_write(e: &StoreError) -> bool {
    match e {
        StoreError::Unwritable { .. } | StoreError::Damaged { .. } => true,
        StoreError::Engine { source, .. } | StoreError::Open { source, .. } => source
            .downcast_ref::<rusqlite::Error>()
            .and_then(rusqlite::Error::sqlite_error_code)
            .is_some_and(|c| {
                matches!(
                    c,
                    ErrorCode::ReadOnly
                        | ErrorCode::PermissionDenied
                        | ErrorCode::SystemIoFailure
                        | ErrorCode::DiskFull
                        | ErrorCode::CannotOpen
                        | ErrorCode::DatabaseCorrupt
                        | ErrorCode::NotADatabase
                        | ErrorCode::DatabaseBusy
                        | ErrorCode::DatabaseLocked
                        | ErrorCode::FileLockingProtocolFailed
                        | ErrorCode::OutOfMemory
                )
            }),
        StoreError::Group(e) => cannot_write(e),
        StoreError::Corrupt { .. }
        | StoreError::Invalid { .. }
        | StoreError::SchemaTooNew { .. }
        | StoreError::Task { .. } => false,
    }
}

/// Set by a write that failed because the store cannot write; cleared by a committed one.
#[derive(Debug, Default)]
pub(super) struct WriteHealth(Mutex<Option<String>>);

impl WriteHealth {
    pub fn failed(&self, e: &StoreError) {
        if cannot_write(e) {
            *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
        }
    }

    pub fn committed(&self) {
        let mut f = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if f.is_some() {
            *f = None;
        }
    }

    pub fn failure(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_failures_of_the_store_set_the_flag_and_only_commits_clear_it() {
        let h = WriteHealth::default();
        let invalid = StoreError::Invalid {
            op: "x",
            message: "bad input".into(),
        };
        h.failed(&invalid);
        assert_eq!(h.failure(), None);
        let readonly = StoreError::engine(
            "accept",
            rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(8), None),
        );
        assert!(cannot_write(&readonly));
        h.failed(&readonly);
        assert!(h.failure().is_some_and(|f| f.contains("accept")));
        h.failed(&invalid);
        assert!(h.failure().is_some(), "a refused input does not clear it");
        h.committed();
        assert_eq!(h.failure(), None);
    }
}
