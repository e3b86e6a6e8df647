//! Accepting events: each new event is logged, and each of its changes becomes the desired
//! state of its key unless it is stale (an older version arriving late, or older than the
//! audience's newest snapshot: superseded by it), or unusable.

use std::borrow::Cow;
use std::sync::LazyLock;

use rusqlite::{Connection, OptionalExtension, params};

use super::bind::Rebound;
use super::counts::{Delta, Deltas};
use super::floors::FloorCache;
use super::{
    CURRENT, Current, SqliteStore, current, delivered, engine, key_part, seqs, to_i64, to_u64,
    version,
};
use crate::store::{
    Applied, EventContent, MembershipChange, NewEvent, Receipt, StatusKind, StoreError,
};

/// The insert of a new desired row (pending), up to the conflict action: `NOTHING` for a key
/// seen for the first time, `UPDATE SET ...` to replace the row of a known key.
macro_rules! insert_desired {
    () => {
        "INSERT INTO desired (destination, list_key, email, user_id, list_id, member, time_ms,
         seq, part, accepted_ms, data_fields, update_existing_users_only, channel_unsubscribe,
         campaign_id, state, reason, attempts, next_attempt_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, 'pending', NULL, 0, 0)
         ON CONFLICT (destination, list_key, email, user_id) DO "
    };
}

impl SqliteStore {
    pub fn accept(&self, batch: &[NewEvent]) -> Result<Vec<Receipt>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        self.write_with_floors("accept", |tx, floors| {
            let mut st = AcceptStatements::prepare(tx, floors)?;
            let mut deltas = Deltas::default();
            let receipts = batch
                .iter()
                .map(|ev| Self::accept_one(tx, &mut st, &mut deltas, ev))
                .collect::<Result<Vec<_>, _>>()?;
            st.flush_statuses().map_err(engine("accept"))?;
            deltas.apply(tx, "accept")?;
            Ok(receipts)
        })
    }

    fn accept_one<'b>(
        tx: &Connection,
        st: &mut AcceptStatements<'_, 'b>,
        deltas: &mut Deltas,
        ev: &'b NewEvent,
    ) -> Result<Receipt, StoreError> {
        const OP: &str = "accept";
        // One statement for a new event; a duplicate inserts nothing and is looked up.
        let Some(seq) = st.insert_event(tx, ev).map_err(engine(OP))? else {
            let seq: i64 = tx
                .prepare_cached("SELECT seq FROM events WHERE destination = ?1 AND message_id = ?2")
                .map_err(engine(OP))?
                .query_row(params![ev.destination, ev.message_id], |r| r.get(0))
                .map_err(engine(OP))?;
            return Ok(Receipt::Duplicate {
                seq: to_u64(OP, seq)?,
            });
        };
        if !ev.ignored_settings.is_empty() {
            Self::log_ignored_settings(tx, ev, seq)?;
        }
        let changes = match &ev.content {
            EventContent::Rejected(reason) => {
                Self::log_unusable(st, deltas, ev, seq, StatusKind::Rejected, reason)?;
                Vec::new()
            }
            EventContent::Skipped(reason) => {
                Self::log_unusable(st, deltas, ev, seq, StatusKind::Skipped, reason)?;
                Vec::new()
            }
            EventContent::Changes(changes) => {
                Self::apply_changes(tx, st, deltas, ev, seq, changes)?
            }
        };
        Ok(Receipt::Accepted {
            seq: to_u64(OP, seq)?,
            changes,
        })
    }

    /// The audience settings the event carried that could not be used.
    fn log_ignored_settings(tx: &Connection, ev: &NewEvent, seq: i64) -> Result<(), StoreError> {
        const OP: &str = "accept";
        let mut insert = tx
            .prepare_cached(
                "INSERT INTO ignored_settings (seq, setting, value, reason)
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (seq, setting) DO NOTHING",
            )
            .map_err(engine(OP))?;
        for ig in &ev.ignored_settings {
            insert
                .execute(params![seq, ig.setting.as_str(), ig.value, ig.reason])
                .map_err(engine(OP))?;
        }
        Ok(())
    }

    /// An event this destination cannot use: one status row, with no audience.
    fn log_unusable<'b>(
        st: &mut AcceptStatements<'_, 'b>,
        deltas: &mut Deltas,
        ev: &'b NewEvent,
        seq: i64,
        status: StatusKind,
        reason: &'b str,
    ) -> Result<(), StoreError> {
        let row = StatusRow {
            seq,
            part: 0,
            list_key: "",
            email: "",
            user_id: "",
            member: None,
            time_ms: None,
            status,
            reason: Some(Cow::Borrowed(reason)),
            received_ms: ev.received_ms,
        };
        st.insert_status(row).map_err(engine("accept"))?;
        deltas.of(&ev.destination, "").event(status, 1);
        Ok(())
    }

    /// Each change of a new event, applied and logged with its status.
    fn apply_changes<'b>(
        tx: &Connection,
        st: &mut AcceptStatements<'_, 'b>,
        deltas: &mut Deltas,
        ev: &'b NewEvent,
        seq: i64,
        changes: &'b [MembershipChange],
    ) -> Result<Vec<Applied>, StoreError> {
        const OP: &str = "accept";
        let mut out = Vec::with_capacity(changes.len());
        for (part, c) in changes.iter().enumerate() {
            let part = to_i64(OP, part as u64)?;
            let d = deltas.of(&ev.destination, &c.audience_key);
            let (status, reason, applied) = Self::apply_change(tx, st, d, ev, seq, part, c)?;
            let id = &c.identity;
            let row = StatusRow {
                seq,
                part,
                list_key: &c.audience_key,
                email: key_part(&id.email),
                user_id: key_part(&id.user_id),
                member: Some(c.member),
                time_ms: c.time_ms,
                status,
                reason: reason.map(Cow::Owned),
                received_ms: ev.received_ms,
            };
            st.insert_status(row).map_err(engine(OP))?;
            d.event(status, 1);
            out.push(applied);
        }
        Ok(out)
    }

    /// Makes one change of a new event the desired state of its key, unless it is unusable or
    /// stale; returns the event's status in the audience, with the reason. `d` is the
    /// audience's delta.
    fn apply_change(
        tx: &Connection,
        st: &mut AcceptStatements<'_, '_>,
        d: &mut Delta,
        ev: &NewEvent,
        seq: i64,
        part: i64,
        c: &MembershipChange,
    ) -> Result<(StatusKind, Option<String>, Applied), StoreError> {
        const OP: &str = "accept";
        let id = &c.identity;
        if id.is_empty() {
            let why = "the change has neither an email nor a userId";
            return Ok((
                StatusKind::Rejected,
                Some(why.into()),
                Applied::Refused(why.into()),
            ));
        }
        // Older than the audience's newest snapshot: that snapshot replaced it, whatever the
        // key (see `crate::snapshot::Floor`).
        if let Some(floor) = st.floors.get(tx, OP, &ev.destination, &c.audience_key)?
            && let Some(why) = floor.supersedes(c, ev.received_ms)
        {
            return Ok((StatusKind::Superseded, Some(why), Applied::Stale));
        }
        let data = match &c.data_fields {
            None => None,
            Some(m) => Some(serde_json::to_string(m).map_err(|e| StoreError::Invalid {
                op: OP,
                message: format!("data fields cannot be stored: {e}"),
            })?),
        };
        // A key seen for the first time (every key of an initial sync) needs one statement; a
        // known key is read first, to decide and to log.
        let inserted = run_desired(&mut st.insert_new, ev, c, seq, part, data.as_deref())
            .map_err(engine(OP))?;
        if inserted == 1 {
            d.keys += 1;
            d.pending += 1;
            return Ok((StatusKind::Accepted, None, Applied::Current));
        }
        let old = current(&mut st.get, OP, &ev.destination, &c.audience_key, id)?;
        if let Some(old) = &old
            && let Some(refused) = Self::refused_over(tx, old, c, seq)?
        {
            return Ok(refused);
        }
        run_desired(&mut st.upsert, ev, c, seq, part, data.as_deref()).map_err(engine(OP))?;
        match old {
            None => {
                d.keys += 1;
                d.pending += 1;
            }
            Some(old) => Self::replaced(tx, st, d, ev, &old)?,
        }
        Ok((StatusKind::Accepted, None, Applied::Current))
    }

    /// Why a change does not replace the stored one of its key, if it does not: the event
    /// names the key twice, or the stored change is newer.
    fn refused_over(
        tx: &Connection,
        old: &Current,
        c: &MembershipChange,
        seq: i64,
    ) -> Result<Option<(StatusKind, Option<String>, Applied)>, StoreError> {
        const OP: &str = "accept";
        if old.seq == seq {
            let why = "the event names this user and audience twice; the first counts";
            return Ok(Some((
                StatusKind::Skipped,
                Some(why.into()),
                Applied::Refused(why.into()),
            )));
        }
        if version(OP, c.time_ms, seq)? >= version(OP, old.time_ms, old.seq)? {
            return Ok(None);
        }
        let newer: String = tx
            .query_row(
                "SELECT message_id FROM events WHERE seq = ?1",
                [old.seq],
                |r| r.get(0),
            )
            .optional()
            .map_err(engine(OP))?
            .unwrap_or_default();
        let why = format!("stale: event {newer:?} for the same user and audience is newer");
        Ok(Some((StatusKind::Skipped, Some(why), Applied::Stale)))
    }

    /// The stored change `old` of a key was replaced by a change of `ev`: a pending one's event
    /// (accepted, or pending after a failure) is superseded, and a delivered one's delivery
    /// written to its event's row if it was not (see `delivered`).
    fn replaced(
        tx: &Connection,
        st: &mut AcceptStatements<'_, '_>,
        d: &mut Delta,
        ev: &NewEvent,
        old: &Current,
    ) -> Result<(), StoreError> {
        d.state_moved(&old.state, "pending");
        // The replaced change may be of an event of this batch, its status row still held back.
        st.flush_statuses_from(old.seq).map_err(engine("accept"))?;
        if old.state == "delivered" {
            delivered::write_key(tx, old.seq, old.part, old.ack_ms).map_err(engine("accept"))?;
        }
        if old.state != "pending" {
            return Ok(());
        }
        let why = format!("superseded by event {:?}", ev.message_id);
        for from in [StatusKind::Accepted, StatusKind::Pending] {
            let moved = st
                .supersede
                .execute(params![
                    old.seq,
                    old.part,
                    why,
                    ev.received_ms,
                    from.as_str()
                ])
                .map_err(engine("accept"))?;
            if moved == 1 {
                d.event_moved(from, StatusKind::Superseded);
                break;
            }
        }
        Ok(())
    }
}

/// An event's status row in one audience (`event_audiences`), as accepted.
struct StatusRow<'a> {
    seq: i64,
    part: i64,
    list_key: &'a str,
    email: &'a str,
    user_id: &'a str,
    member: Option<bool>,
    time_ms: Option<i64>,
    status: StatusKind,
    reason: Option<Cow<'a, str>>,
    received_ms: i64,
}

/// How many status rows one run of [`AcceptStatements::insert_statuses`] writes.
const STATUS_CHUNK: usize = 16;

/// The parameters of one status row in the inserts of `event_audiences`.
const STATUS_PARAMS: usize = 10;

/// The insert of [`STATUS_CHUNK`] status rows (`event_audiences`), [`STATUS_PARAMS`]
/// parameters each. `OR FAIL`: an insert of several rows that could stop half-way with `ABORT`
/// (the default) first copies each page it changes into a statement journal, to undo its own
/// rows; a failure here fails the whole accept, whose rows are undone with it.
static INSERT_STATUSES: LazyLock<String> = LazyLock::new(|| {
    let row = "(?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?)";
    format!(
        "INSERT OR FAIL INTO event_audiences (seq, part, list_key, email, user_id, member,
         time_ms, status, reason, next_attempt_ms, updated_ms) VALUES {}",
        vec![row; STATUS_CHUNK].join(", ")
    )
});

/// The statements of [`Store::accept`], prepared once per batch, and the snapshot floors.
/// `insert_event` (once per event) and `insert_new` (once per change that becomes a new key's
/// desired state) bind only the parameters that changed since their previous row (see `bind`).
///
/// The status rows of a batch's events (`'b`, one per change, or one per unusable event) are
/// held back and written [`STATUS_CHUNK`] at a time by one statement, `insert_statuses` (each
/// parameter bound every time, as for `insert_status`): each run of a statement costs about 2,000 instructions beyond its
/// rows' own work (callgrind, part c). Within the batch, only the replacement of a key's stored
/// change reads or moves a status row (`replaced`); it first writes what is held back when the
/// replaced change may be among it, as does the end of the batch (`flush_statuses`, one
/// `insert_status` each).
struct AcceptStatements<'c, 'b> {
    floors: &'c mut FloorCache,
    /// The seq the next new event takes explicitly (see `seqs`), else `None`.
    explicit_seq: Option<i64>,
    /// The seq of the batch's last new event, if any.
    last_seq: Option<i64>,
    insert_event: Rebound<'c>,
    insert_status: rusqlite::CachedStatement<'c>,
    insert_statuses: rusqlite::CachedStatement<'c>,
    /// The status rows not written yet (fewer than [`STATUS_CHUNK`]).
    statuses: Vec<StatusRow<'b>>,
    get: rusqlite::CachedStatement<'c>,
    insert_new: Rebound<'c>,
    upsert: Rebound<'c>,
    supersede: rusqlite::CachedStatement<'c>,
}

impl<'c, 'b> AcceptStatements<'c, 'b> {
    fn prepare(tx: &'c Connection, floors: &'c mut FloorCache) -> Result<Self, StoreError> {
        floors.check(tx, "accept")?;
        let p = |sql: &str| tx.prepare_cached(sql).map_err(engine("accept"));
        Ok(Self {
            floors,
            explicit_seq: seqs::next_explicit(tx).map_err(engine("accept"))?,
            last_seq: None,
            insert_event: Rebound::new(p(
                "INSERT INTO events (seq, destination, message_id, received_ms)
                 VALUES (?4, ?1, ?2, ?3) ON CONFLICT (message_id, destination) DO NOTHING",
            )?),
            insert_status: p(
                "INSERT INTO event_audiences (seq, part, list_key, email, user_id, member,
                 time_ms, status, reason, next_attempt_ms, updated_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, NULL, ?10)",
            )?,
            insert_statuses: p(&INSERT_STATUSES)?,
            statuses: Vec::with_capacity(STATUS_CHUNK),
            get: p(CURRENT)?,
            insert_new: Rebound::new(p(concat!(insert_desired!(), "NOTHING"))?),
            upsert: Rebound::new(p(concat!(
                insert_desired!(),
                "UPDATE SET
                 list_id = excluded.list_id, member = excluded.member,
                 time_ms = excluded.time_ms, seq = excluded.seq, part = excluded.part,
                 accepted_ms = excluded.accepted_ms, data_fields = excluded.data_fields,
                 update_existing_users_only = excluded.update_existing_users_only,
                 channel_unsubscribe = excluded.channel_unsubscribe,
                 campaign_id = excluded.campaign_id, state = 'pending', reason = NULL,
                 attempts = 0, next_attempt_ms = 0, tries = 0"
            ))?),
            supersede: p(
                "UPDATE event_audiences SET status = 'superseded', reason = ?3,
                 next_attempt_ms = NULL, updated_ms = ?4
                 WHERE seq = ?1 AND part = ?2 AND status = ?5",
            )?,
        })
    }
}

impl<'b> AcceptStatements<'_, 'b> {
    /// Logs a new event (`events`): its seq, or `None` for a duplicate. The seq is SQLite's
    /// next rowid (`?4` NULL), unless the floor is above every row (see `seqs`).
    fn insert_event(&mut self, tx: &Connection, ev: &NewEvent) -> rusqlite::Result<Option<i64>> {
        if self.last_seq == Some(i64::MAX) {
            return Err(seqs::exhausted());
        }
        let st = &mut self.insert_event;
        st.repeating_text(1, Some(&ev.destination))?;
        st.bind(2, &ev.message_id)?;
        st.repeating_int(3, Some(ev.received_ms))?;
        st.repeating_int(4, self.explicit_seq)?;
        if st.execute()? == 0 {
            return Ok(None);
        }
        // The first new row is above the floor: SQLite's choice is right from now on.
        self.explicit_seq = None;
        let seq = tx.last_insert_rowid();
        self.last_seq = Some(seq);
        Ok(Some(seq))
    }

    /// Logs an event's status in one audience (`event_audiences`): held back, and written
    /// with the [`STATUS_CHUNK`] - 1 before it, or by [`Self::flush_statuses`].
    fn insert_status(&mut self, row: StatusRow<'b>) -> rusqlite::Result<()> {
        self.statuses.push(row);
        if self.statuses.len() < STATUS_CHUNK {
            return Ok(());
        }
        let st = &mut self.insert_statuses;
        for (i, row) in self.statuses.iter().enumerate() {
            bind_status(st, i * STATUS_PARAMS, row)?;
        }
        st.raw_execute()?;
        self.statuses.clear();
        Ok(())
    }

    /// Writes the status rows held back if the row of event `seq` may be among them (they are
    /// in seq order).
    fn flush_statuses_from(&mut self, seq: i64) -> rusqlite::Result<()> {
        if self.statuses.first().is_some_and(|held| held.seq <= seq) {
            self.flush_statuses()?;
        }
        Ok(())
    }

    /// Writes the status rows held back, one statement each.
    fn flush_statuses(&mut self) -> rusqlite::Result<()> {
        let st = &mut self.insert_status;
        for row in self.statuses.drain(..) {
            bind_status(st, 0, &row)?;
            st.raw_execute()?;
        }
        Ok(())
    }
}

/// Binds `row` to parameters `at + 1` to `at + STATUS_PARAMS` of an insert of status rows
/// (`insert_status` or `insert_statuses`): every one, every time.
fn bind_status(
    st: &mut rusqlite::CachedStatement<'_>,
    at: usize,
    row: &StatusRow<'_>,
) -> rusqlite::Result<()> {
    st.raw_bind_parameter(at + 1, row.seq)?;
    st.raw_bind_parameter(at + 2, row.part)?;
    st.raw_bind_parameter(at + 3, row.list_key)?;
    st.raw_bind_parameter(at + 4, row.email)?;
    st.raw_bind_parameter(at + 5, row.user_id)?;
    st.raw_bind_parameter(at + 6, row.member)?;
    st.raw_bind_parameter(at + 7, row.time_ms)?;
    st.raw_bind_parameter(at + 8, row.status.as_str())?;
    st.raw_bind_parameter(at + 9, row.reason.as_deref())?;
    st.raw_bind_parameter(at + 10, row.received_ms)
}

/// One of the statements of [`insert_desired!`] (`insert_new`: 1, or 0 when the key has a
/// row already; `upsert`: the row replaced, pending again) with its parameters: the key, and
/// the change as its desired state.
fn run_desired(
    st: &mut Rebound<'_>,
    ev: &NewEvent,
    c: &MembershipChange,
    seq: i64,
    part: i64,
    data_fields: Option<&str>,
) -> rusqlite::Result<usize> {
    let id = &c.identity;
    st.repeating_text(1, Some(&ev.destination))?;
    st.repeating_text(2, Some(&c.audience_key))?;
    st.bind(3, key_part(&id.email))?;
    st.bind(4, key_part(&id.user_id))?;
    st.repeating_int(5, c.list_id)?;
    st.repeating_int(6, Some(i64::from(c.member)))?;
    st.repeating_int(7, c.time_ms)?;
    st.bind(8, seq)?;
    st.bind(9, part)?;
    st.repeating_int(10, Some(ev.received_ms))?;
    st.repeating_text(11, data_fields)?;
    let settings = &c.settings;
    st.repeating_int(12, settings.update_existing_users_only.map(i64::from))?;
    st.repeating_int(13, settings.channel_unsubscribe.map(i64::from))?;
    st.repeating_int(14, settings.campaign_id)?;
    st.execute()
}
