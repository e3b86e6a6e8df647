//! Writing exported rows (`store copy`): each batch in one transaction, rows replacing those of
//! the same key; then the figures per audience rebuilt from every row.

use rusqlite::{Connection, ErrorCode, params};

use super::export::{DESIRED_COLUMNS, table_counts};
use super::{SqliteStore, counts, delivered, engine, key_part, seqs, to_i64};
use crate::store::{
    CopyBatch, DesiredEntry, ListEntry, LoggedEvent, StoreError, StoredState, TableCounts,
};

const OP: &str = "import";

impl SqliteStore {
    /// Writes one batch in one transaction (see [`crate::Engine::import`]).
    pub fn import(&self, batch: &CopyBatch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.write(OP, |tx| match batch {
            CopyBatch::Lists(rows) => import_lists(tx, rows),
            CopyBatch::DestinationStates(rows) => import_states(tx, rows),
            CopyBatch::Desired(rows) => import_desired(tx, rows),
            CopyBatch::Events(rows) => import_events(tx, rows),
        })
    }

    /// Rebuilds the figures per audience from every row. The arrival sequence is past every
    /// seq the rows name already: each batch of desired rows raised the floor (their versions
    /// may name events the source's retention removed), and the largest rowid covers the
    /// copied events (see `seqs`).
    pub fn finish_import(&self) -> Result<(), StoreError> {
        self.write(OP, |tx| {
            // Holds of the mass-removal guard are not copied: removals held in the source
            // become due, and the guard decides on them again here.
            tx.execute(
                "UPDATE desired SET next_attempt_ms = 0
                 WHERE state = 'pending' AND next_attempt_ms = ?1",
                [crate::store::HELD_MS],
            )
            .map_err(engine(OP))?;
            tx.execute("DELETE FROM audience_counts", [])
                .map_err(engine(OP))?;
            counts::fill(tx)
        })
    }

    /// Rows per table, counted now.
    pub fn table_counts(&self) -> Result<TableCounts, StoreError> {
        table_counts(&self.lock(), "table_counts")
    }
}

fn import_lists(tx: &Connection, rows: &[ListEntry]) -> Result<(), StoreError> {
    let mut stmt = tx
        .prepare_cached(
            "INSERT INTO lists (destination, audience_key, list_id) VALUES (?1, ?2, ?3)
             ON CONFLICT (destination, audience_key) DO UPDATE SET list_id = excluded.list_id",
        )
        .map_err(engine(OP))?;
    for l in rows {
        stmt.execute(params![l.destination, l.audience_key, l.list_id])
            .map_err(engine(OP))?;
    }
    Ok(())
}

fn import_states(tx: &Connection, rows: &[StoredState]) -> Result<(), StoreError> {
    let mut stmt = tx
        .prepare_cached(
            "INSERT INTO destination_state (destination, state, reason, since_ms, updated_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (destination) DO UPDATE SET state = excluded.state,
             reason = excluded.reason, since_ms = excluded.since_ms,
             updated_ms = excluded.updated_ms",
        )
        .map_err(engine(OP))?;
    for s in rows {
        stmt.execute(params![
            s.destination,
            s.state.word(),
            s.state.reason(),
            s.state.since_ms(),
            s.updated_ms
        ])
        .map_err(engine(OP))?;
    }
    Ok(())
}

fn import_desired(tx: &Connection, rows: &[DesiredEntry]) -> Result<(), StoreError> {
    let marks: Vec<String> = (1..=23).map(|i| format!("?{i}")).collect();
    let mut stmt = tx
        .prepare_cached(&format!(
            "INSERT OR REPLACE INTO desired ({DESIRED_COLUMNS}) VALUES ({})",
            marks.join(", ")
        ))
        .map_err(engine(OP))?;
    let mut named = 0;
    for d in rows {
        let (email, user_id) = (key_part(&d.identity.email), key_part(&d.identity.user_id));
        // A key the target has (`--allow-non-empty`): its delivery, if kept with its desired
        // row alone, is written to its event's row before the row is replaced (see
        // `delivered`).
        delivered::write_for_key(tx, &d.destination, &d.audience_key, email, user_id)
            .map_err(engine(OP))?;
        let ack = d.acknowledged.as_ref();
        let ack_seq = ack.map(|a| to_i64(OP, a.version.seq)).transpose()?;
        let seq = to_i64(OP, d.version.seq)?;
        named = named.max(seq).max(ack_seq.unwrap_or(0));
        stmt.execute(params![
            d.destination,
            d.audience_key,
            key_part(&d.identity.email),
            key_part(&d.identity.user_id),
            d.list_id,
            d.member,
            d.version.time_ms,
            seq,
            d.part,
            d.accepted_ms,
            d.data_fields,
            d.settings.update_existing_users_only,
            d.settings.channel_unsubscribe,
            d.settings.campaign_id,
            d.state.as_str(),
            d.reason,
            d.attempts,
            d.next_attempt_ms,
            ack.map(|a| a.member),
            ack.and_then(|a| a.version.time_ms),
            ack_seq,
            ack.map(|a| a.at_ms),
            d.tries,
        ])
        .map_err(engine(OP))?;
    }
    // The seqs these rows name count as given out from now on: an event accepted before the
    // import finishes takes a larger one (see `seqs`).
    seqs::raise_floor(tx, named).map_err(engine(OP))
}

fn import_events(tx: &Connection, rows: &[LoggedEvent]) -> Result<(), StoreError> {
    let mut event = tx
        .prepare_cached(
            "INSERT INTO events (seq, destination, message_id, received_ms)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (seq) DO UPDATE SET received_ms = excluded.received_ms
             WHERE destination = excluded.destination AND message_id = excluded.message_id",
        )
        .map_err(engine(OP))?;
    let mut clear_changes = tx
        .prepare_cached("DELETE FROM event_audiences WHERE seq = ?1")
        .map_err(engine(OP))?;
    let mut clear_ignored = tx
        .prepare_cached("DELETE FROM ignored_settings WHERE seq = ?1")
        .map_err(engine(OP))?;
    let mut change = tx
        .prepare_cached(
            "INSERT INTO event_audiences (seq, part, list_key, email, user_id, member, time_ms,
             status, reason, next_attempt_ms, updated_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )
        .map_err(engine(OP))?;
    let mut ignored = tx
        .prepare_cached(
            "INSERT INTO ignored_settings (seq, setting, value, reason) VALUES (?1, ?2, ?3, ?4)",
        )
        .map_err(engine(OP))?;
    for e in rows {
        let seq = to_i64(OP, e.seq)?;
        // 0 rows: the seq holds another event (the update's condition failed).
        let written = match event.execute(params![seq, e.destination, e.message_id, e.received_ms])
        {
            Ok(n) => n,
            // The messageId is stored under another seq.
            Err(rusqlite::Error::SqliteFailure(f, _))
                if f.code == ErrorCode::ConstraintViolation =>
            {
                0
            }
            Err(err) => return Err(StoreError::engine(OP, err)),
        };
        if written == 0 {
            return Err(StoreError::Invalid {
                op: OP,
                message: format!(
                    "the event {:?} of destination {:?} (seq {}) collides with another event \
                     of the target (the same messageId under another sequence number, or \
                     another event under this one): the target holds events of another store; \
                     copy into an empty one",
                    e.message_id, e.destination, e.seq
                ),
            });
        }
        clear_changes.execute([seq]).map_err(engine(OP))?;
        clear_ignored.execute([seq]).map_err(engine(OP))?;
        for c in &e.changes {
            change
                .execute(params![
                    seq,
                    c.part,
                    c.audience_key,
                    key_part(&c.identity.email),
                    key_part(&c.identity.user_id),
                    c.member,
                    c.time_ms,
                    c.status.as_str(),
                    c.reason,
                    c.next_attempt_ms,
                    c.updated_ms
                ])
                .map_err(engine(OP))?;
        }
        for i in &e.ignored_settings {
            ignored
                .execute(params![seq, i.setting.as_str(), i.value, i.reason])
                .map_err(engine(OP))?;
        }
    }
    Ok(())
}
