//! Applying a full audience snapshot (`crate::snapshot`) in SQLite.
//!
//! **Staging off the writer.** The rows go into a staging database of their own (a temporary
//! file, no journal, no fsync) on a connection of their own, keyed by identity, so that a
//! long upload neither holds the writer nor grows memory: the first row of an identity
//! counts, a repeat is counted with its line. Then, holding the writer (no group transaction
//! open), the staging file is attached and, in one transaction, diffed against the
//! audience's desired rows in SQL; the entries and exits are collected in a table of the
//! staging file (its rowid is the change's part), the policy decides, and the changes are
//! written as the changes of one new event (seq) with the audience's snapshot floor raised
//! (`floors`), or the transaction is rolled back.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::{Connection, params};

use super::counts::Delta;
use super::{SqliteStore, counts, delivered, engine, floors, identity_of, seqs, to_i64, to_u64};
use crate::snapshot::{
    BAD_KEPT, DiffOp, DiffRow, DiffSink, Feed, FeedReceiver, Figures, Floor, SAMPLE, SnapshotDiff,
    SnapshotSpec, StagedRow,
};
use crate::store::{Identity, StatusKind, StoreError};

const OP: &str = "apply_snapshot";

/// A staging database file, removed when dropped.
struct Stage {
    path: PathBuf,
    conn: Option<Connection>,
}

impl Drop for Stage {
    fn drop(&mut self) {
        drop(self.conn.take());
        let _ = std::fs::remove_file(&self.path);
        let _ = std::fs::remove_file(self.path.with_extension("db-journal"));
    }
}

/// What staging counted.
#[derive(Default)]
struct Staged {
    members: u64,
    duplicates: u64,
    duplicate_lines: Vec<u64>,
    parse_bad_rows: u64,
    diff: Option<Box<dyn DiffSink>>,
}

static STAGES: AtomicU64 = AtomicU64::new(0);

impl Stage {
    fn create() -> Result<Self, StoreError> {
        let n = STAGES.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "iterable-lists-snapshot-{}-{nanos}-{n}.db",
            std::process::id()
        ));
        let mut stage = Stage { path, conn: None };
        let conn = Connection::open(&stage.path).map_err(engine(OP))?;
        conn.execute_batch(
            "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -65536;
             CREATE TABLE stage (email TEXT NOT NULL, user_id TEXT NOT NULL, data_fields TEXT,
               line INTEGER NOT NULL, PRIMARY KEY (email, user_id)) WITHOUT ROWID;
             CREATE TABLE changes (part INTEGER PRIMARY KEY, email TEXT NOT NULL,
               user_id TEXT NOT NULL, member INTEGER NOT NULL, data_fields TEXT, newer INTEGER NOT NULL,
               old_exists INTEGER NOT NULL, old_state TEXT, old_seq INTEGER, old_part INTEGER);",
        )
        .map_err(engine(OP))?;
        stage.conn = Some(conn);
        Ok(stage)
    }

    /// Stages every row of `feed` until its end; `Err` if it closed without one (cancelled).
    fn fill(&mut self, feed: &mut FeedReceiver) -> Result<Staged, StoreError> {
        let conn = self.conn.as_ref().ok_or_else(|| cancelled("no staging"))?;
        let mut out = Staged::default();
        loop {
            match feed.blocking_recv() {
                Some(Feed::Rows(rows)) => Self::batch(conn, &rows, &mut out)?,
                Some(Feed::End { bad_rows, diff }) => {
                    out.parse_bad_rows = bad_rows;
                    out.diff = diff;
                    break;
                }
                None => return Err(cancelled("the snapshot's rows ended before their end")),
            }
        }
        // The writer's connection reads the file next.
        drop(self.conn.take());
        Ok(out)
    }

    fn batch(conn: &Connection, rows: &[StagedRow], out: &mut Staged) -> Result<(), StoreError> {
        // In key order, the inserts touch neighbouring pages (a stable sort: of rows naming
        // one identity, the first still comes first and counts).
        let mut sorted: Vec<&StagedRow> = rows.iter().collect();
        sorted.sort_by(|a, b| (&a.email, &a.user_id).cmp(&(&b.email, &b.user_id)));
        conn.execute_batch("BEGIN").map_err(engine(OP))?;
        let mut insert = conn
            .prepare_cached(
                "INSERT INTO stage (email, user_id, data_fields, line) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (email, user_id) DO NOTHING",
            )
            .map_err(engine(OP))?;
        for r in sorted {
            let line = i64::try_from(r.line).unwrap_or(i64::MAX);
            let n = insert
                .execute(params![r.email, r.user_id, r.data_fields, line])
                .map_err(engine(OP))?;
            if n == 1 {
                out.members += 1;
            } else {
                out.duplicates += 1;
                if out.duplicate_lines.len() < BAD_KEPT {
                    out.duplicate_lines.push(r.line);
                }
            }
        }
        drop(insert);
        conn.execute_batch("COMMIT").map_err(engine(OP))
    }
}

fn cancelled(why: &str) -> StoreError {
    StoreError::Invalid {
        op: OP,
        message: format!("{why}: nothing was applied"),
    }
}

impl SqliteStore {
    /// See [`crate::Engine::apply_snapshot`]. Blocking: run it off the async runtime.
    pub fn apply_snapshot(
        &self,
        spec: &SnapshotSpec,
        feed: &mut FeedReceiver,
    ) -> Result<SnapshotDiff, StoreError> {
        let mut stage = Stage::create()?;
        let mut staged = stage.fill(feed)?;
        let mut w = self.idle_writer();
        let path = stage.path.to_string_lossy().into_owned();
        w.conn
            .execute("ATTACH DATABASE ?1 AS snap", [&path])
            .map_err(engine(OP))?;
        // The staging file is thrown away: no journal, no fsync. Statement journals (the
        // upsert of many keys needs one) go to temporary files for the snapshot, not to
        // memory as the connection's other writes do: one holds every page a statement
        // changes, hundreds of MB for a large diff.
        let _ = w.conn.execute_batch(
            "PRAGMA snap.journal_mode = OFF; PRAGMA snap.synchronous = OFF;
             PRAGMA temp_store = FILE",
        );
        let begin = if spec.policy.dry_run {
            "BEGIN"
        } else {
            "BEGIN IMMEDIATE"
        };
        let result = w
            .conn
            .execute_batch(begin)
            .map_err(engine(OP))
            .and_then(|()| diff_and_write(&w.conn, spec, &mut staged));
        // Committed when the floor was raised: also a snapshot with nothing to change.
        let result = match result {
            Ok((diff, Some(floor))) => match w.conn.execute_batch("COMMIT") {
                Ok(()) => {
                    w.floors.set(&spec.destination, &spec.audience_key, floor);
                    self.after_commit(&mut w);
                    Ok(diff)
                }
                Err(e) => Err(engine(OP)(e)),
            },
            Ok((diff, None)) => Ok(diff),
            Err(e) => Err(e),
        };
        if !w.conn.is_autocommit() {
            let _ = w.conn.execute_batch("ROLLBACK");
        }
        let _ = w.conn.execute_batch("DETACH DATABASE snap");
        let _ = w.conn.execute_batch("PRAGMA temp_store = MEMORY");
        drop(w);
        match &result {
            Ok(d) if d.applied => self.health.committed(),
            Err(e) => self.health.failed(e),
            Ok(_) => {}
        }
        let diff = result?;
        if let Some(sink) = staged.diff.as_mut() {
            sink.finish().map_err(|e| StoreError::Invalid {
                op: OP,
                message: format!("cannot write the diff: {e}"),
            })?;
        }
        Ok(diff)
    }
}

/// The diff of the staged rows against the audience, checked, and written unless it must not
/// be, with the audience's snapshot floor raised; the caller commits when there is a floor
/// (not a dry run, not refused), and keeps it.
fn diff_and_write(
    tx: &Connection,
    spec: &SnapshotSpec,
    staged: &mut Staged,
) -> Result<(SnapshotDiff, Option<Floor>), StoreError> {
    let (dest, key, t) = (&spec.destination, &spec.audience_key, spec.time_ms);
    let mut diff = SnapshotDiff {
        members: staged.members,
        duplicates: staged.duplicates,
        duplicate_lines: std::mem::take(&mut staged.duplicate_lines),
        parse_bad_rows: staged.parse_bad_rows,
        ..SnapshotDiff::default()
    };
    // Two passes: the staged identities that are not desired members (entries), and the
    // desired members that are not staged (exits); a key whose change is newer than the
    // snapshot is collected too, marked `newer`, and kept as it is.
    let not_members = tx
        .execute(
            "INSERT INTO snap.changes (email, user_id, member, data_fields, newer, old_exists,
               old_state, old_seq, old_part)
             SELECT s.email, s.user_id, 1, s.data_fields, COALESCE(d.time_ms > ?3, 0),
               d.seq IS NOT NULL, d.state, d.seq, d.part
             FROM snap.stage s LEFT JOIN main.desired d
               ON d.destination = ?1 AND d.list_key = ?2 AND d.email = s.email
              AND d.user_id = s.user_id
             WHERE d.member IS NOT 1",
            params![dest, key, t],
        )
        .map_err(engine(OP))? as u64;
    let missing = tx
        .execute(
            "INSERT INTO snap.changes (email, user_id, member, data_fields, newer, old_exists,
               old_state, old_seq, old_part)
             SELECT d.email, d.user_id, 0, NULL, COALESCE(d.time_ms > ?3, 0), 1, d.state,
               d.seq, d.part
             FROM main.desired d
             WHERE d.destination = ?1 AND d.list_key = ?2 AND d.member = 1
               AND NOT EXISTS (SELECT 1 FROM snap.stage s
                               WHERE s.email = d.email AND s.user_id = d.user_id)",
            params![dest, key, t],
        )
        .map_err(engine(OP))? as u64;
    diff.unchanged = diff.members.saturating_sub(not_members);
    diff.current_members = diff.unchanged + missing;
    let (adds, removes, kept): (i64, i64, i64) = tx
        .query_row(
            "SELECT COUNT(CASE WHEN newer = 0 AND member = 1 THEN 1 END),
               COUNT(CASE WHEN newer = 0 AND member = 0 THEN 1 END),
               COUNT(CASE WHEN newer = 1 THEN 1 END)
             FROM snap.changes",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .map_err(engine(OP))?;
    (diff.adds, diff.removes, diff.kept_newer) =
        (to_u64(OP, adds)?, to_u64(OP, removes)?, to_u64(OP, kept)?);
    samples(tx, spec, &mut diff)?;
    if let Some(sink) = staged.diff.as_deref_mut() {
        write_diff(tx, sink)?;
    }
    diff.refused = spec.policy.check(&Figures {
        rows: diff.members + diff.duplicates + diff.parse_bad_rows,
        bad_rows: diff.parse_bad_rows + diff.duplicates,
        current_members: diff.current_members,
        removes: diff.removes,
    });
    if spec.policy.dry_run || diff.refused.is_some() {
        return Ok((diff, None));
    }
    // The snapshot is the whole audience as of its time, also when it changes nothing: live
    // changes older than it are superseded from now on.
    let floor = floors::raise(tx, OP, dest, key, t, &spec.message_id, spec.received_ms)?;
    if diff.adds + diff.removes == 0 {
        return Ok((diff, Some(floor)));
    }
    let seq = write_changes(tx, spec)?;
    if diff.removes > 0 {
        // Its exits were judged by its own guard (`max_removal_ratio`, or the operator's
        // override): the live guard takes them as approved rather than holding them again.
        let seq = to_i64(OP, seq)?;
        super::holds::advance_mark(
            tx,
            OP,
            &spec.destination,
            &spec.audience_key,
            seq,
            spec.received_ms,
        )?;
    }
    diff.seq = Some(seq);
    diff.applied = true;
    Ok((diff, Some(floor)))
}

/// Staged identities that are desired members already (`?3` unused).
const UNCHANGED: &str = "SELECT s.email, s.user_id FROM snap.stage s JOIN main.desired d
     ON d.destination = ?1 AND d.list_key = ?2 AND d.email = s.email AND d.user_id = s.user_id
     WHERE d.member = 1 AND ?3 IS NOT NULL";

fn identities(
    tx: &Connection,
    sql: &str,
    spec: &SnapshotSpec,
) -> Result<Vec<Identity>, StoreError> {
    let mut stmt = tx.prepare(sql).map_err(engine(OP))?;
    let rows = stmt
        .query_map(
            params![spec.destination, spec.audience_key, spec.time_ms],
            |r| Ok(identity_of(r.get(0)?, r.get(1)?)),
        )
        .map_err(engine(OP))?;
    rows.collect::<Result<_, _>>().map_err(engine(OP))
}

fn samples(
    tx: &Connection,
    spec: &SnapshotSpec,
    diff: &mut SnapshotDiff,
) -> Result<(), StoreError> {
    let changes = |condition: &str| {
        format!(
            "SELECT email, user_id FROM snap.changes WHERE {condition}
             AND ?1 IS NOT NULL AND ?2 IS NOT NULL AND ?3 IS NOT NULL ORDER BY part LIMIT {SAMPLE}"
        )
    };
    diff.samples.adds = identities(tx, &changes("newer = 0 AND member = 1"), spec)?;
    diff.samples.removes = identities(tx, &changes("newer = 0 AND member = 0"), spec)?;
    diff.samples.kept_newer = identities(tx, &changes("newer = 1"), spec)?;
    if diff.unchanged > 0 {
        diff.samples.unchanged = identities(tx, &format!("{UNCHANGED} LIMIT {SAMPLE}"), spec)?;
    }
    Ok(())
}

/// Every entry, exit and kept newer change into `sink`, row by row.
fn write_diff(tx: &Connection, sink: &mut dyn DiffSink) -> Result<(), StoreError> {
    let io = |e: std::io::Error| StoreError::Invalid {
        op: OP,
        message: format!("cannot write the diff: {e}"),
    };
    let mut stmt = tx
        .prepare(
            "SELECT email, user_id, member, data_fields, newer FROM snap.changes ORDER BY part",
        )
        .map_err(engine(OP))?;
    let mut rows = stmt.query([]).map_err(engine(OP))?;
    while let Some(r) = rows.next().map_err(engine(OP))? {
        let (email, user_id): (String, String) =
            (r.get(0).map_err(engine(OP))?, r.get(1).map_err(engine(OP))?);
        let member: bool = r.get(2).map_err(engine(OP))?;
        let data: Option<String> = r.get(3).map_err(engine(OP))?;
        let newer: bool = r.get(4).map_err(engine(OP))?;
        // A kept change disagrees with the snapshot: the live state is the other one.
        let (op, live) = match (newer, member) {
            (true, m) => (DiffOp::KeptNewer, Some(!m)),
            (false, true) => (DiffOp::Add, None),
            (false, false) => (DiffOp::Remove, None),
        };
        sink.row(&DiffRow {
            op,
            email: &email,
            user_id: &user_id,
            member: live,
            data_fields: if newer { None } else { data.as_deref() },
            line: None,
            reason: None,
        })
        .map_err(io)?;
    }
    Ok(())
}

/// Writes the collected changes as the changes of one new event; returns its seq.
fn write_changes(tx: &Connection, spec: &SnapshotSpec) -> Result<u64, StoreError> {
    let (dest, key) = (&spec.destination, &spec.audience_key);
    let explicit_seq = seqs::next_explicit(tx).map_err(engine(OP))?;
    let inserted = tx
        .execute(
            "INSERT INTO main.events (seq, destination, message_id, received_ms)
             VALUES (?4, ?1, ?2, ?3) ON CONFLICT (message_id, destination) DO NOTHING",
            params![dest, spec.message_id, spec.received_ms, explicit_seq],
        )
        .map_err(engine(OP))?;
    if inserted == 0 {
        return Err(StoreError::Invalid {
            op: OP,
            message: format!("messageId {:?} is taken", spec.message_id),
        });
    }
    let seq = tx.last_insert_rowid();
    let mut d = Delta::default();
    let (n, new_keys, to_pending, from_rejected): (i64, i64, i64, i64) = tx
        .query_row(
            "SELECT COUNT(*), COUNT(CASE WHEN old_exists = 0 THEN 1 END),
               COUNT(CASE WHEN old_state IS NOT 'pending' THEN 1 END),
               COUNT(CASE WHEN old_state = 'rejected' THEN 1 END)
             FROM snap.changes WHERE newer = 0",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .map_err(engine(OP))?;
    d.keys += new_keys;
    d.pending += to_pending;
    d.rejected -= from_rejected;
    d.event(StatusKind::Accepted, n);
    let why = format!("superseded by snapshot {:?}", spec.message_id);
    for from in [StatusKind::Accepted, StatusKind::Pending] {
        let moved = tx
            .execute(
                "UPDATE main.event_audiences AS ea SET status = 'superseded', reason = ?1,
                   next_attempt_ms = NULL, updated_ms = ?2
                 FROM snap.changes AS c
                 WHERE c.newer = 0 AND c.old_state = 'pending' AND ea.seq = c.old_seq
                   AND ea.part = c.old_part AND ea.status = ?3",
                params![why, spec.received_ms, from.as_str()],
            )
            .map_err(engine(OP))?;
        d.event(from, -(moved as i64));
        d.event(StatusKind::Superseded, moved as i64);
    }
    // The replaced delivered keys' deliveries, before their desired rows move on.
    delivered::write_matching(
        tx,
        "d.destination = ?1 AND d.list_key = ?2 AND (d.email, d.user_id) IN
           (SELECT email, user_id FROM snap.changes WHERE newer = 0 AND old_state = 'delivered')",
        &[dest, key],
    )
    .map_err(engine(OP))?;
    let s = spec.settings;
    tx.execute(
        "INSERT INTO main.desired (destination, list_key, email, user_id, list_id, member,
           time_ms, seq, part, accepted_ms, data_fields, update_existing_users_only,
           channel_unsubscribe, campaign_id, state, reason, attempts, next_attempt_ms)
         SELECT ?1, ?2, email, user_id, NULL, member, ?3, ?4, part, ?5, data_fields, ?6, ?7, ?8,
           'pending', NULL, 0, 0
         FROM snap.changes WHERE newer = 0
         ON CONFLICT (destination, list_key, email, user_id) DO UPDATE SET
           member = excluded.member, time_ms = excluded.time_ms, seq = excluded.seq,
           part = excluded.part, accepted_ms = excluded.accepted_ms,
           data_fields = excluded.data_fields,
           update_existing_users_only = excluded.update_existing_users_only,
           channel_unsubscribe = excluded.channel_unsubscribe,
           campaign_id = excluded.campaign_id, state = 'pending', reason = NULL,
           attempts = 0, next_attempt_ms = 0, tries = 0",
        params![
            dest,
            key,
            spec.time_ms,
            seq,
            spec.received_ms,
            s.update_existing_users_only,
            s.channel_unsubscribe,
            s.campaign_id
        ],
    )
    .map_err(engine(OP))?;
    tx.execute(
        "INSERT INTO main.event_audiences (seq, part, list_key, email, user_id, member,
           time_ms, status, reason, next_attempt_ms, updated_ms)
         SELECT ?1, part, ?2, email, user_id, member, ?3, 'accepted', NULL, NULL, ?4
         FROM snap.changes WHERE newer = 0",
        params![seq, key, spec.time_ms, spec.received_ms],
    )
    .map_err(engine(OP))?;
    counts::apply(tx, OP, dest, key, &d)?;
    to_u64(OP, seq)
}
