//! The arrival sequence: every new event's `seq`, never given out twice.
//!
//! Since version 10 `events.seq` is a plain rowid, not `AUTOINCREMENT`: SQLite gives a new row
//! the largest rowid plus one, which costs no write, where `AUTOINCREMENT` read and rewrote its
//! counter in `sqlite_sequence` at every insert (about 2,400 of the insert's 12,100
//! instructions per event in the benchmark's part c; BENCHMARKS.md). The
//! largest rowid is the largest seq given out as long as the newest rows of `events` stay.
//! Pruning may remove them, and an import may name larger seqs than its rows of `events` hold;
//! the table `seq_floor` then keeps the largest seq given out, and the first event after it
//! takes the next one explicitly ([`next_explicit`]). A seq matters beyond its row: desired
//! rows keep the seq of their version, which orders changes without a time, and a kept
//! delivery names its event by it (see `delivered`).

use rusqlite::{Connection, OptionalExtension};

/// The floor, one row at most.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS seq_floor (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL
);
";

/// The seq the next new event must be given explicitly, when the floor is above every row of
/// `events`; `None` when SQLite's own choice (the largest rowid plus one) is right. Two
/// searches, once per write transaction that inserts events.
pub(super) fn next_explicit(tx: &Connection) -> rusqlite::Result<Option<i64>> {
    let (floor, newest): (Option<i64>, Option<i64>) = tx
        .prepare_cached(
            "SELECT (SELECT seq FROM seq_floor WHERE id = 1), (SELECT MAX(seq) FROM events)",
        )?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let newest = newest.unwrap_or(0);
    let floor = floor.unwrap_or(0);
    if newest.max(floor) == i64::MAX {
        return Err(exhausted());
    }
    Ok((floor > newest).then_some(floor + 1))
}

/// The error for an event that would follow seq `i64::MAX`: there SQLite would pick a random
/// free rowid, older seqs among them, so it is refused, as AUTOINCREMENT refused it (not
/// reachable at any real rate). Checked before each insert of a transaction: by
/// [`next_explicit`] for the first, by the caller after each new row.
pub(super) fn exhausted() -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
        Some("the arrival sequence (events.seq) is exhausted".into()),
    )
}

/// Raises the floor to `seq` (never lowers it).
pub(super) fn raise_floor(tx: &Connection, seq: i64) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO seq_floor (id, seq) VALUES (1, ?1)
         ON CONFLICT (id) DO UPDATE SET seq = MAX(seq, excluded.seq)",
    )?
    .execute([seq])?;
    Ok(())
}

/// Before rows of `events` are deleted: the floor keeps the largest seq given out, which
/// may be among them.
pub(super) fn keep_newest(tx: &Connection) -> rusqlite::Result<()> {
    let newest: Option<i64> = tx
        .prepare_cached("SELECT MAX(seq) FROM events")?
        .query_row([], |r| r.get(0))?;
    match newest {
        Some(seq) => raise_floor(tx, seq),
        None => Ok(()),
    }
}

/// For the migration to version 10 (see `schema`), before `events` is rewritten: the floor
/// takes the largest seq given out, as `AUTOINCREMENT` kept it in `sqlite_sequence` (which
/// exists while `events` is the old table), and every seq a desired row names (its version,
/// its acknowledged version; more than the counter only in a file an interrupted `store copy`
/// left, as earlier versions raised the counter at its end alone). One pass over `desired`.
pub(super) fn carry_over(tx: &Connection) -> rusqlite::Result<()> {
    let counted: bool = tx.query_row(
        "SELECT COUNT(*) > 0 FROM sqlite_master WHERE name = 'sqlite_sequence'",
        [],
        |r| r.get(0),
    )?;
    let counter: Option<i64> = if counted {
        tx.query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = 'events'",
            [],
            |r| r.get(0),
        )
        .optional()?
    } else {
        None
    };
    let named: Option<i64> = tx.query_row(
        "SELECT MAX(MAX(seq, COALESCE(ack_seq, 0))) FROM desired",
        [],
        |r| r.get(0),
    )?;
    match counter.max(named) {
        Some(seq) => raise_floor(tx, seq),
        None => Ok(()),
    }
}
