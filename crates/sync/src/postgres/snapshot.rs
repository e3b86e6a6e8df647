//! Applying a full audience snapshot (`crate::snapshot`) in PostgreSQL: one transaction. The
//! rows are staged in a temporary table (dropped at its end) in batches through `UNNEST`, the
//! first row of an identity counting; then every table the apply writes is locked against
//! writers and row lockers (`EXCLUSIVE`, see [`APPLY_LOCK`]: plain readers go on, other
//! instances' accepts, outcomes and holds wait for the commit, so that the diff and what it
//! writes see one state, and a batch accepted after it sees its floor), the diff is computed
//! in SQL into a second temporary table (its serial is the change's part), the policy decides,
//! and the changes are written as the changes of one new event with the audience's snapshot
//! floor raised (`floors`), or the transaction is rolled back. A dry run takes no lock.

use std::collections::HashSet;

use deadpool_postgres::{GenericClient, Transaction};

use super::{PostgresStore, counts, pg, to_u64};
use crate::snapshot::{
    BAD_KEPT, DiffOp, DiffRow, DiffSink, Feed, FeedReceiver, Figures, SAMPLE, SnapshotDiff,
    SnapshotSpec, StagedRow,
};
use crate::sqlite::counts::Deltas;
use crate::store::{Identity, StatusKind, StoreError};

const OP: &str = "apply_snapshot";

/// What staging counted.
#[derive(Default)]
struct Staged {
    members: u64,
    duplicates: u64,
    duplicate_lines: Vec<u64>,
    parse_bad_rows: u64,
    diff: Option<Box<dyn DiffSink>>,
}

impl PostgresStore {
    /// See [`crate::Engine::apply_snapshot`].
    pub async fn apply_snapshot(
        &self,
        spec: &SnapshotSpec,
        mut feed: FeedReceiver,
    ) -> Result<SnapshotDiff, StoreError> {
        let r = self.apply_snapshot_in(spec, &mut feed).await;
        if matches!(&r, Ok(d) if d.applied) || r.is_err() {
            self.note_write(&r);
        }
        r
    }

    async fn apply_snapshot_in(
        &self,
        spec: &SnapshotSpec,
        feed: &mut FeedReceiver,
    ) -> Result<SnapshotDiff, StoreError> {
        let mut client = self.client(OP).await?;
        let tx = client.transaction().await.map_err(pg(OP))?;
        tx.batch_execute(
            "CREATE TEMP TABLE snap_stage (email TEXT COLLATE \"C\" NOT NULL,
               user_id TEXT COLLATE \"C\" NOT NULL, data_fields TEXT, line BIGINT NOT NULL,
               PRIMARY KEY (email, user_id)) ON COMMIT DROP;
             CREATE TEMP TABLE snap_changes (part SERIAL PRIMARY KEY,
               email TEXT COLLATE \"C\" NOT NULL, user_id TEXT COLLATE \"C\" NOT NULL,
               member BOOLEAN NOT NULL, data_fields TEXT, newer BOOLEAN NOT NULL,
               old_exists BOOLEAN NOT NULL,
               old_state TEXT, old_seq BIGINT, old_part INTEGER) ON COMMIT DROP;",
        )
        .await
        .map_err(pg(OP))?;
        let mut staged = Staged::default();
        loop {
            match feed.recv().await {
                Some(Feed::Rows(rows)) => stage(&tx, &rows, &mut staged).await?,
                Some(Feed::End { bad_rows, diff }) => {
                    staged.parse_bad_rows = bad_rows;
                    staged.diff = diff;
                    break;
                }
                None => {
                    return Err(StoreError::Invalid {
                        op: OP,
                        message: "the snapshot's rows ended before their end: nothing was \
                                  applied"
                            .into(),
                    });
                }
            }
        }
        // The diff compares the whole audience with the whole snapshot: joins by hashing
        // or merging, over scans, are what it wants, unlike the key lookups the sessions'
        // planner settings are made for (see `KEYED_PLANS`); for this transaction only.
        tx.batch_execute(
            "ANALYZE snap_stage; SET LOCAL enable_seqscan = on; \
             SET LOCAL enable_hashjoin = on; SET LOCAL enable_mergejoin = on",
        )
        .await
        .map_err(pg(OP))?;
        if !spec.policy.dry_run {
            // `events` first, as accept inserts its events before it reads the floors and
            // writes the rest: a batch either commits before the diff or waits for the
            // snapshot and then sees its floor (see `floors`).
            lock_for_apply(&tx).await?;
        }
        let (diff, raised) = diff_and_write(&tx, spec, &mut staged).await?;
        if raised {
            tx.commit().await.map_err(pg(OP))?;
        } else {
            tx.rollback().await.map_err(pg(OP))?;
        }
        if let Some(sink) = staged.diff.as_mut() {
            sink.finish().map_err(|e| StoreError::Invalid {
                op: OP,
                message: format!("cannot write the diff: {e}"),
            })?;
        }
        Ok(diff)
    }
}

/// The apply's table locks: every table it writes, taken at once before the diff, in the order
/// the other writers take them: `removal_guard` first (a guard's hold or discard locks its row,
/// then writes `desired` and `event_audiences`; nothing takes it after another of these), then
/// `events`, `desired`, `event_audiences` (accept's order; retention locks `events` before it
/// deletes from `event_audiences`), `audience_counts` last (every writer's last).
///
/// `EXCLUSIVE` rather than `SHARE ROW EXCLUSIVE`: the weaker mode let another transaction lock
/// rows with `SELECT ... FOR UPDATE` (outcomes lock their keys' desired rows so, and a hold's
/// discard its event rows) and then wait for the table to write them, while the snapshot
/// waited for those rows: a deadlock after the lock, which the snapshot could lose (a 500 on
/// its request, seen once in CI). Once these are held, no other transaction holds or can take
/// a row lock in a table the apply writes, so nothing after the lock waits on anyone.
const APPLY_LOCK: &str = "LOCK TABLE removal_guard, events, desired, event_audiences, \
                          snapshot_floors, audience_counts IN EXCLUSIVE MODE";

/// Takes the write locks of the apply ([`APPLY_LOCK`]). Waiting for one table while holding
/// another, the snapshot can be chosen as a deadlock's victim (seen once under a loaded CI
/// run); the staged rows are kept: the locks alone are taken again, under a savepoint (which
/// gives back those it got), a few times.
async fn lock_for_apply(tx: &Transaction<'_>) -> Result<(), StoreError> {
    const TRIES: u32 = 5;
    let mut attempt = 0;
    loop {
        attempt += 1;
        tx.batch_execute("SAVEPOINT snapshot_lock")
            .await
            .map_err(pg(OP))?;
        match tx.batch_execute(APPLY_LOCK).await {
            Ok(()) => {
                return tx
                    .batch_execute("RELEASE SAVEPOINT snapshot_lock")
                    .await
                    .map_err(pg(OP));
            }
            Err(e)
                if attempt < TRIES
                    && e.code()
                        == Some(&tokio_postgres::error::SqlState::T_R_DEADLOCK_DETECTED) =>
            {
                tracing::info!(
                    attempt,
                    "a snapshot's table locks met a deadlock; taking them again"
                );
                tx.batch_execute("ROLLBACK TO SAVEPOINT snapshot_lock")
                    .await
                    .map_err(pg(OP))?;
                tokio::time::sleep(std::time::Duration::from_millis(20 * u64::from(attempt))).await;
            }
            Err(e) => return Err(pg(OP)(e)),
        }
    }
}

async fn stage(
    tx: &Transaction<'_>,
    rows: &[StagedRow],
    out: &mut Staged,
) -> Result<(), StoreError> {
    let email: Vec<&str> = rows.iter().map(|r| r.email.as_str()).collect();
    let user: Vec<&str> = rows.iter().map(|r| r.user_id.as_str()).collect();
    let data: Vec<Option<&str>> = rows.iter().map(|r| r.data_fields.as_deref()).collect();
    let line: Vec<i64> = rows
        .iter()
        .map(|r| i64::try_from(r.line).unwrap_or(i64::MAX))
        .collect();
    let stmt = tx
        .prepare_cached(
            "INSERT INTO snap_stage (email, user_id, data_fields, line)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[])
             ON CONFLICT (email, user_id) DO NOTHING RETURNING line",
        )
        .await
        .map_err(pg(OP))?;
    let inserted: HashSet<i64> = tx
        .query(&stmt, &[&email, &user, &data, &line])
        .await
        .map_err(pg(OP))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    out.members += inserted.len() as u64;
    for r in rows {
        if !inserted.contains(&i64::try_from(r.line).unwrap_or(i64::MAX)) {
            out.duplicates += 1;
            if out.duplicate_lines.len() < BAD_KEPT {
                out.duplicate_lines.push(r.line);
            }
        }
    }
    Ok(())
}

/// Staged identities that are desired members already.
const UNCHANGED: &str = "FROM snap_stage s JOIN desired d
     ON d.destination = $1 AND d.list_key = $2 AND d.email = s.email AND d.user_id = s.user_id
     WHERE d.member AND $3::int8 IS NOT NULL";

/// The diff, checked, and written unless it must not be, with the audience's snapshot floor
/// raised; the caller commits when the floor was raised (not a dry run, not refused).
async fn diff_and_write(
    tx: &Transaction<'_>,
    spec: &SnapshotSpec,
    staged: &mut Staged,
) -> Result<(SnapshotDiff, bool), StoreError> {
    let (dest, key, t) = (
        spec.destination.as_str(),
        spec.audience_key.as_str(),
        spec.time_ms,
    );
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
            "INSERT INTO snap_changes (email, user_id, member, data_fields, newer, old_exists,
               old_state, old_seq, old_part)
             SELECT s.email, s.user_id, true, s.data_fields, COALESCE(d.time_ms > $3::int8, false),
               d.seq IS NOT NULL, d.state, d.seq, d.part
             FROM snap_stage s LEFT JOIN desired d
               ON d.destination = $1 AND d.list_key = $2 AND d.email = s.email
              AND d.user_id = s.user_id
             WHERE d.member IS NOT TRUE
             ORDER BY s.email, s.user_id",
            &[&dest, &key, &t],
        )
        .await
        .map_err(pg(OP))?;
    let missing = tx
        .execute(
            "INSERT INTO snap_changes (email, user_id, member, data_fields, newer, old_exists,
               old_state, old_seq, old_part)
             SELECT d.email, d.user_id, false, NULL, COALESCE(d.time_ms > $3::int8, false), true,
               d.state, d.seq, d.part
             FROM desired d
             WHERE d.destination = $1 AND d.list_key = $2 AND d.member
               AND NOT EXISTS (SELECT 1 FROM snap_stage s
                               WHERE s.email = d.email AND s.user_id = d.user_id)
             ORDER BY d.email, d.user_id",
            &[&dest, &key, &t],
        )
        .await
        .map_err(pg(OP))?;
    diff.unchanged = diff.members.saturating_sub(not_members);
    diff.current_members = diff.unchanged + missing;
    let counts = tx
        .query_one(
            "SELECT COUNT(*) FILTER (WHERE NOT newer AND member),
               COUNT(*) FILTER (WHERE NOT newer AND NOT member), COUNT(*) FILTER (WHERE newer)
             FROM snap_changes",
            &[],
        )
        .await
        .map_err(pg(OP))?;
    diff.adds = to_u64(OP, counts.get(0))?;
    diff.removes = to_u64(OP, counts.get(1))?;
    diff.kept_newer = to_u64(OP, counts.get(2))?;
    let ids = |sql: String| async move {
        let rows = tx.query(&sql, &[&dest, &key, &t]).await.map_err(pg(OP))?;
        Ok::<_, StoreError>(
            rows.iter()
                .map(|r| Identity::new(Some(r.get(0)), Some(r.get(1))))
                .collect::<Vec<_>>(),
        )
    };
    let changes = |condition: &str| {
        format!(
            "SELECT email, user_id FROM snap_changes WHERE {condition}
             AND $1::text IS NOT NULL AND $2::text IS NOT NULL AND $3::int8 IS NOT NULL
             ORDER BY part LIMIT {SAMPLE}"
        )
    };
    diff.samples.adds = ids(changes("NOT newer AND member")).await?;
    diff.samples.removes = ids(changes("NOT newer AND NOT member")).await?;
    diff.samples.kept_newer = ids(changes("newer")).await?;
    if diff.unchanged > 0 {
        diff.samples.unchanged = ids(format!(
            "SELECT s.email, s.user_id {UNCHANGED} ORDER BY s.email, s.user_id LIMIT {SAMPLE}"
        ))
        .await?;
    }
    if let Some(sink) = staged.diff.as_deref_mut() {
        write_diff(tx, sink).await?;
    }
    diff.refused = spec.policy.check(&Figures {
        rows: diff.members + diff.duplicates + diff.parse_bad_rows,
        bad_rows: diff.parse_bad_rows + diff.duplicates,
        current_members: diff.current_members,
        removes: diff.removes,
    });
    if spec.policy.dry_run || diff.refused.is_some() {
        return Ok((diff, false));
    }
    // The snapshot is the whole audience as of its time, also when it changes nothing: live
    // changes older than it are superseded from now on.
    super::floors::raise(tx, OP, dest, key, t, &spec.message_id, spec.received_ms).await?;
    if diff.adds + diff.removes == 0 {
        return Ok((diff, true));
    }
    let seq = write_changes(tx, spec).await?;
    if diff.removes > 0 {
        // Its exits were judged by its own guard (`max_removal_ratio`, or the operator's
        // override): the live guard takes them as approved rather than holding them again.
        let seq = i64::try_from(seq).map_err(|_| StoreError::Invalid {
            op: OP,
            message: format!("seq {seq} is out of range"),
        })?;
        super::holds::advance_mark(
            tx,
            OP,
            &spec.destination,
            &spec.audience_key,
            seq,
            spec.received_ms,
        )
        .await?;
    }
    diff.seq = Some(seq);
    diff.applied = true;
    Ok((diff, true))
}

/// Every entry, exit and kept newer change into `sink`, in pages (no cursor needed: the
/// table does not change meanwhile).
async fn write_diff(tx: &Transaction<'_>, sink: &mut dyn DiffSink) -> Result<(), StoreError> {
    const PAGE: i64 = 10_000;
    let io = |e: std::io::Error| StoreError::Invalid {
        op: OP,
        message: format!("cannot write the diff: {e}"),
    };
    let mut after = 0i32;
    loop {
        let rows = tx
            .query(
                "SELECT part, email, user_id, member, data_fields, newer FROM snap_changes
                 WHERE part > $1 ORDER BY part LIMIT $2",
                &[&after, &PAGE],
            )
            .await
            .map_err(pg(OP))?;
        for r in &rows {
            after = r.get(0);
            let member: bool = r.get(3);
            let newer: bool = r.get(5);
            // A kept change disagrees with the snapshot: the live state is the other one.
            let (op, live) = match (newer, member) {
                (true, m) => (DiffOp::KeptNewer, Some(!m)),
                (false, true) => (DiffOp::Add, None),
                (false, false) => (DiffOp::Remove, None),
            };
            sink.row(&DiffRow {
                op,
                email: r.get(1),
                user_id: r.get(2),
                member: live,
                data_fields: if newer { None } else { r.get(4) },
                line: None,
                reason: None,
            })
            .map_err(io)?;
        }
        if (rows.len() as i64) < PAGE {
            break;
        }
    }
    Ok(())
}

/// Writes the collected changes as the changes of one new event; returns its seq.
async fn write_changes(tx: &Transaction<'_>, spec: &SnapshotSpec) -> Result<u64, StoreError> {
    let (dest, key) = (spec.destination.as_str(), spec.audience_key.as_str());
    let row = tx
        .query_opt(
            "INSERT INTO events (seq, destination, message_id, received_ms)
             VALUES (nextval('event_seq'), $1, $2, $3)
             ON CONFLICT (destination, message_id) DO NOTHING RETURNING seq",
            &[&dest, &spec.message_id, &spec.received_ms],
        )
        .await
        .map_err(pg(OP))?;
    let Some(row) = row else {
        return Err(StoreError::Invalid {
            op: OP,
            message: format!("messageId {:?} is taken", spec.message_id),
        });
    };
    let seq: i64 = row.get(0);
    let mut deltas = Deltas::default();
    let figures = tx
        .query_one(
            "SELECT COUNT(*), COUNT(*) FILTER (WHERE NOT old_exists),
               COUNT(*) FILTER (WHERE old_state IS DISTINCT FROM 'pending'),
               COUNT(*) FILTER (WHERE old_state = 'rejected')
             FROM snap_changes WHERE NOT newer",
            &[],
        )
        .await
        .map_err(pg(OP))?;
    let d = deltas.of(dest, key);
    let (n, new_keys, to_pending, from_rejected): (i64, i64, i64, i64) = (
        figures.get(0),
        figures.get(1),
        figures.get(2),
        figures.get(3),
    );
    d.keys += new_keys;
    d.pending += to_pending;
    d.rejected -= from_rejected;
    d.event(StatusKind::Accepted, n);
    let why = format!("superseded by snapshot {:?}", spec.message_id);
    for from in [StatusKind::Accepted, StatusKind::Pending] {
        let moved = tx
            .execute(
                "UPDATE event_audiences ea SET status = 'superseded', reason = $1,
                   next_attempt_ms = NULL, updated_ms = $2
                 FROM snap_changes c
                 WHERE NOT c.newer AND c.old_state = 'pending' AND ea.seq = c.old_seq
                   AND ea.part = c.old_part
                   AND ea.status = $3",
                &[&why, &spec.received_ms, &from.as_str()],
            )
            .await
            .map_err(pg(OP))?;
        d.event(from, -(moved as i64));
        d.event(StatusKind::Superseded, moved as i64);
    }
    let s = spec.settings;
    tx.execute(
        "INSERT INTO desired (destination, list_key, email, user_id, list_id, member, time_ms,
           seq, part, accepted_ms, data_fields, update_existing_users_only,
           channel_unsubscribe, campaign_id, state, reason, attempts, next_attempt_ms)
         SELECT $1, $2, email, user_id, NULL, member, $3, $4, part, $5, data_fields, $6, $7,
           $8, 'pending', NULL, 0, 0
         FROM snap_changes WHERE NOT newer ORDER BY email, user_id
         ON CONFLICT (destination, list_key, email, user_id) DO UPDATE SET
           member = EXCLUDED.member, time_ms = EXCLUDED.time_ms, seq = EXCLUDED.seq,
           part = EXCLUDED.part, accepted_ms = EXCLUDED.accepted_ms,
           data_fields = EXCLUDED.data_fields,
           update_existing_users_only = EXCLUDED.update_existing_users_only,
           channel_unsubscribe = EXCLUDED.channel_unsubscribe,
           campaign_id = EXCLUDED.campaign_id, state = 'pending', reason = NULL,
           attempts = 0, next_attempt_ms = 0, tries = 0",
        &[
            &dest,
            &key,
            &spec.time_ms,
            &seq,
            &spec.received_ms,
            &s.update_existing_users_only,
            &s.channel_unsubscribe,
            &s.campaign_id,
        ],
    )
    .await
    .map_err(pg(OP))?;
    tx.execute(
        "INSERT INTO event_audiences (seq, part, list_key, email, user_id, member, time_ms,
           status, reason, next_attempt_ms, updated_ms)
         SELECT $1, part, $2, email, user_id, member, $3, 'accepted', NULL, NULL, $4
         FROM snap_changes WHERE NOT newer",
        &[&seq, &key, &spec.time_ms, &spec.received_ms],
    )
    .await
    .map_err(pg(OP))?;
    counts::apply(tx, OP, &deltas).await?;
    to_u64(OP, seq)
}
