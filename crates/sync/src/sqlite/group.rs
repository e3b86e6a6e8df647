//! The group commit: every write runs in a transaction shared with the writes queued beside it
//! (see [`SqliteStore`]), and returns once that transaction is committed.

use std::sync::MutexGuard;
use std::sync::atomic::Ordering;

use rusqlite::Connection;

use super::checkpoint::{BUSY_TIMEOUT, RESTART_WAIT};
use super::floors::FloorCache;
use super::{SqliteStore, Writer, engine};
use crate::store::StoreError;

/// A group transaction commits after this many operations even if more are queued, so the
/// first writers' wait stays bounded under a steady stream.
pub const MAX_GROUP_OPS: usize = 32;

/// Failed commits remembered for writers that have not woken up yet.
const FAILED_KEPT: usize = 64;

/// A locked connection to read from.
pub(super) enum ReadGuard<'a> {
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

impl SqliteStore {
    pub(super) fn lock_writer(&self) -> MutexGuard<'_, Writer> {
        // A panic inside an operation is caught and rolled back (see `write`), so the state
        // behind a poisoned lock is consistent.
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The writing connection once no group transaction is open (it sees committed data only).
    pub(super) fn idle_writer(&self) -> MutexGuard<'_, Writer> {
        let mut w = self.lock_writer();
        while w.open {
            w = self.committed.wait(w).unwrap_or_else(|p| p.into_inner());
        }
        w
    }

    /// The connection for reads: the read connection, or the idle writer of an in-memory
    /// database.
    pub(super) fn lock(&self) -> ReadGuard<'_> {
        match &self.reader {
            Some(r) => ReadGuard::Reader(r.lock().unwrap_or_else(|p| p.into_inner())),
            None => ReadGuard::Writer(self.idle_writer()),
        }
    }

    /// Runs one write operation in the shared group transaction (see [`SqliteStore`]) and
    /// returns once that transaction is committed. A failure that means the store cannot
    /// write sets the health flag; a committed write clears it.
    pub(super) fn write<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.write_with_floors(op, |conn, _| f(conn))
    }

    /// [`SqliteStore::write`] for an operation that also reads the snapshot floors the
    /// writer keeps (accept).
    pub(super) fn write_with_floors<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Connection, &mut FloorCache) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let r = self.write_in_group(op, f);
        match &r {
            Ok(_) => self.health.committed(),
            Err(e) => self.health.failed(e),
        }
        r
    }
}

impl SqliteStore {
    fn write_in_group<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Connection, &mut FloorCache) -> Result<T, StoreError>,
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
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let w = &mut *w;
            f(&w.conn, &mut w.floors)
        }));
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
                self.after_commit(w);
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

    /// After a commit on the writer: the WAL's checkpointer hears of it, and the WAL is
    /// truncated when due.
    pub(super) fn after_commit(&self, w: &mut Writer) {
        if let Some(c) = &self.checkpointer {
            if c.restart_due() {
                // Best effort: a failure leaves the WAL as it is, still valid, and the restart
                // is tried again after a later commit. Every writer waits meanwhile, so the
                // wait for readers and for a running passive checkpoint is kept short.
                let _ = w.conn.busy_timeout(RESTART_WAIT);
                let _ = w
                    .conn
                    .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
                let _ = w.conn.busy_timeout(BUSY_TIMEOUT);
            }
            c.committed();
        }
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
}
