//! The embedded SQLite engine: one file (or `:memory:`), WAL mode with `synchronous=FULL`, the
//! schema created and versioned on open.
//!
//! **Blocking inside, async outside.** [`SqliteStore`] is the database: every method runs
//! SQLite on the caller's thread and returns when the transaction is committed (for
//! [`SqliteStore::accept`]: fsynced), so it is testable without a runtime. [`SqliteEngine`]
//! makes it an [`crate::store::Engine`] by running each call on tokio's blocking pool, and
//! ingestion on its own thread (see `engine`); the service and the conformance suite use it
//! through [`crate::Store`].
//!
//! **Connections.** Writes share one connection and are group-committed (`group`): concurrent
//! writers (an ingestion batch, delivery outcomes, failed tries) share one transaction and one
//! fsync. Concurrent requests' events reach it as one batch, gathered by the engine's
//! ingestion queue (`ingest`, which says why both are needed). Reads have their own
//! connection, so they never wait for a commit. A third connection checkpoints the WAL in the
//! background, off the commit path (`checkpoint`).
//!
//! **Checks at open** (`open`, `integrity`). A file database is checked with `PRAGMA
//! quick_check` within a time budget (a damaged file refuses to open; an unfinished check is
//! reported), and proven writable by a real write transaction, so that a read-only file,
//! directory or filesystem fails at start rather than at the first event. Afterwards, a write
//! that fails because the store cannot write sets a flag ([`SqliteStore::write_failure`]) that
//! the next committed write clears.
//!
//! The parts: `schema` (tables, version, migrations), `open`, `group` (the group commit),
//! `checkpoint`, `ingest` (the ingestion queue), `seqs` (the arrival sequence), `holds` (the
//! mass-removal guard), `accept` (accepting events), `outcomes` (recording outcomes and failed
//! tries; `settle_direct` the common outcome, `delivered` the deliveries it keeps with the
//! desired row), `pending` (what the reconciler reads), `reports` (event lookup, figures;
//! `counts` maintains the figures), `registry` (lists, destination state, write probe),
//! `integrity`, `export` and `import` (`store copy`: a snapshot read in batches, and batches
//! written back), `engine` (the async seam).
//!
//! Schema (version 11; older databases are migrated on open):
//! - `events`: the append-only log, one row per new event; `seq` (never reused: see `seqs`,
//!   which keeps the largest given out in `seq_floor`) is the arrival sequence;
//!   `UNIQUE (message_id, destination)` catches duplicates (message id first since version 11).
//! - `event_audiences`: the status of an event in each audience it named (`part` = index of
//!   the change in the event; one row with an empty audience for unusable events). Since
//!   version 9 a row still `accepted` or `pending` whose key's desired row is delivered at its
//!   seq and part was delivered: the common delivery writes the desired row alone (see
//!   `delivered`).
//! - `desired` (a rowid table since version 8, its key a unique index): per (destination,
//!   audience, email, userId) the desired version and its data,
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
//! - `removal_guard`, `removal_window` and the partial index `desired_pending_exits` (since
//!   version 5): the mass-removal guard (see `holds`).
//! - `snapshot_floors` (since version 6): per audience, the time of its newest snapshot,
//!   before which live changes are superseded (see `floors`); `last_verify` (since version
//!   6): per audience, what its last `audience verify` found (see `verifies`).
//! - the admin API's partial indexes on `desired` (rejected keys; userIds) and
//!   `operator_pauses` (version 7; created unnumbered at every open by versions 5 and 6, with
//!   an index on emails that version 7 drops: see `admin`).

mod accept;
mod admin;
mod bind;
mod checkpoint;
pub(crate) mod counts;
mod delivered;
mod drift;
pub mod engine;
mod export;
mod floors;
mod group;
mod holds;
mod import;
mod ingest;
mod integrity;
mod leases;
mod open;
mod outcomes;
mod pending;
mod registry;
mod reports;
mod retention;
mod schema;
mod seqs;
mod settle_direct;
mod snapshot;
mod verifies;

use std::collections::VecDeque;
use std::sync::atomic::AtomicUsize;
use std::sync::{Condvar, Mutex};

use rusqlite::{Connection, OptionalExtension, params};

pub use checkpoint::WAL_RESTART_FRAMES;
pub use engine::SqliteEngine;
pub use group::MAX_GROUP_OPS;
pub use ingest::MAX_GROUP_EVENTS;
pub use integrity::QuickCheck;
pub use open::{DEFAULT_QUICK_CHECK, OpenOptions};
pub use schema::SCHEMA_VERSION;

use crate::store::{Identity, StatusKind, StoreError, Version};
use checkpoint::Checkpointer;
use integrity::WriteHealth;

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
    /// The audiences' snapshot floors, as accept needs them (see `floors`).
    floors: floors::FloorCache,
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
    /// Where the next batch of a pruning round starts: the round's moment, and the last
    /// (seq, part) the previous batch took (see `retention`).
    prune_from: Mutex<Option<(i64, i64, i64)>>,
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

/// The desired row of a key, as accept and record_outcomes need it.
struct Current {
    seq: i64,
    part: i64,
    time_ms: Option<i64>,
    state: String,
    ack_time_ms: Option<i64>,
    ack_seq: Option<i64>,
    ack_member: Option<bool>,
    /// When the acknowledged version was delivered.
    ack_ms: Option<i64>,
}

const CURRENT: &str = "SELECT seq, part, time_ms, state, ack_time_ms, ack_seq, ack_member,
     ack_ms FROM desired
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
                ack_member: r.get(6)?,
                ack_ms: r.get(7)?,
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

#[cfg(test)]
mod open_tests;

/// The query plan of `sql` (`EXPLAIN QUERY PLAN`, its parameters NULL), one line a step.
#[cfg(test)]
fn query_plan(conn: &rusqlite::Connection, sql: &str) -> String {
    let mut st = conn
        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .expect("explain");
    let nulls = vec![rusqlite::types::Null; st.parameter_count()];
    st.query_map(rusqlite::params_from_iter(nulls), |r| r.get::<_, String>(3))
        .expect("plan")
        .collect::<Result<Vec<_>, _>>()
        .expect("rows")
        .join("\n")
}

#[cfg(test)]
mod tests;
