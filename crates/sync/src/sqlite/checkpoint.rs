//! The checkpointer: a thread with its own connection that copies the WAL into the database
//! file after commits, off the commit path, and the writer's WAL restart when the WAL grows
//! too large.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use rusqlite::Connection;

use super::engine;
use crate::store::StoreError;

/// A thread with its own connection that checkpoints the WAL after commits. The writer's
/// automatic checkpoint is off: it ran inside the commit, holding the write lock while it
/// wrote pages into the database file and fsynced it. A passive checkpoint from another
/// connection runs beside the writer and never blocks it.
#[derive(Debug)]
pub(super) struct Checkpointer {
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
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the writer's WAL restart waits for readers and for a passive checkpoint to let
/// go, while every writer waits behind it.
pub(super) const RESTART_WAIT: Duration = Duration::from_millis(100);

/// Bytes of one WAL frame: a 4 KiB page and its 24-byte header.
pub(super) const WAL_FRAME_BYTES: u64 = 4096 + 24;

impl Checkpointer {
    pub(super) fn start(path: &Path, restart_frames: i64) -> Result<Self, StoreError> {
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
    pub(super) fn restart_due(&self) -> bool {
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

    pub(super) fn committed(&self) {
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
