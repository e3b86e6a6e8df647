//! The common outcome, recorded without reading the key first: Iterable took (or refused) the
//! version that was planned, and that version is still the key's desired one and pending.
//!
//! `record_outcomes` used to read each key's desired row, decide, then update it: two searches
//! of `desired`'s primary key (four text columns) per outcome, with the row decoded between
//! them. Here the update itself checks what the read was for (the planned seq and part, still
//! pending).
//! What the audience's figures need of the old row is how the acknowledged membership moves
//! (`members` counts acknowledged members): each delivery statement is one of three, each
//! matching only rows whose move is known ([`ACK_MOVES`]), tried in turn, the one that matched
//! last first (a request's rows tend to move alike). The outcome gives the part of the planned
//! change, and the update matches only when the key still points at that part: the event's
//! row is then found by its primary key (seq, part), with no second search of `desired`. When
//! the outcome gives the key's rowid too (`OutcomeRow::row_id`, from the pending read), the
//! delivery finds the row by it, an integer search instead of one over the key's four texts,
//! and checks the key, seq, part and state as the search by key does. When no statement
//! matches, or the outcome does not give the part, nothing was written and the caller records
//! the outcome the general way (`record_one`, by key).

use rusqlite::{CachedStatement, Connection, OptionalExtension, params};

use super::bind::Rebound;
use super::counts::Delta;
use super::outcomes::SET_STATUS;
use super::{engine, key_part, status_of, to_i64};
use crate::store::{Outcome, OutcomeRow, StatusKind, StoreError};

const OP: &str = "record_outcomes";

/// The conditions on a delivered row, each with the move of the audience's `members` it
/// means: the three cover every row, and no row matches two.
const ACK_MOVES: [(&str, i64); 3] = [
    ("(member = 1) = (ack_member IS 1)", 0),
    ("member = 1 AND ack_member IS NOT 1", 1),
    ("member = 0 AND ack_member IS 1", -1),
];

/// The key (`?1`..`?4`) at the planned seq (`?5`) and part (`?7`), still pending.
const PLANNED_AND_PENDING: &str = "WHERE destination = ?1 AND list_key = ?2 AND email = ?3
     AND user_id = ?4 AND seq = ?5 AND part = ?7 AND state = 'pending'";

/// [`PLANNED_AND_PENDING`] at the row the pending read gave (`?8`, its rowid): the row is
/// found by an integer search, and must still be the key's, at the planned seq and part.
const PLANNED_AND_PENDING_AT_ROW: &str = "WHERE rowid = ?8 AND destination = ?1
     AND list_key = ?2 AND email = ?3 AND user_id = ?4 AND seq = ?5 AND part = ?7
     AND state = 'pending'";

/// The statements of the direct settle, prepared once per `record_outcomes` call. The delivery
/// statements and the event's move bind only the parameters that changed since their previous
/// run in the call (see `bind`).
pub(super) struct DirectSettle<'c> {
    deliver: [Rebound<'c>; 3],
    /// The same at the row the outcome gives ([`PLANNED_AND_PENDING_AT_ROW`]).
    deliver_at_row: [Rebound<'c>; 3],
    /// Which of `deliver` matched last: tried first.
    last: usize,
    reject: CachedStatement<'c>,
    /// The planned event's status, moved from the one given ([`MOVE_EVENT`]).
    move_event: Rebound<'c>,
    /// The planned event's status: read at every delivery (its figures move from it), and
    /// for a rejection whose event was neither accepted nor pending (rare).
    event: CachedStatement<'c>,
    set_event: CachedStatement<'c>,
}

/// A delivery of the planned, pending version (found as `planned` says: by key, or at the row
/// given) whose acknowledged membership moves as `cond` says ([`ACK_MOVES`]).
fn deliver_sql(planned: &str, cond: &str) -> String {
    format!(
        "UPDATE desired SET state = 'delivered', reason = NULL, next_attempt_ms = 0,
         ack_member = member, ack_time_ms = time_ms, ack_seq = seq, ack_ms = ?6
         {planned} AND {cond}"
    )
}

fn reject_sql() -> String {
    format!(
        "UPDATE desired SET state = 'rejected', reason = ?6, next_attempt_ms = 0
         {PLANNED_AND_PENDING}"
    )
}

/// The planned event's row (`?1` seq, `?2` part) in status `?3` takes status `?4`.
const MOVE_EVENT: &str = "UPDATE event_audiences SET status = ?4, reason = ?5,
     next_attempt_ms = NULL, updated_ms = ?6 WHERE seq = ?1 AND part = ?2 AND status = ?3";

/// The planned event's status (`?1` seq, `?2` part).
const EVENT: &str = "SELECT status FROM event_audiences WHERE seq = ?1 AND part = ?2";

impl<'c> DirectSettle<'c> {
    pub(super) fn prepare(tx: &'c Connection) -> Result<Self, StoreError> {
        let p = |sql: &str| tx.prepare_cached(sql).map_err(engine(OP));
        let deliver = |planned: &str| -> Result<[Rebound<'c>; 3], StoreError> {
            Ok([
                Rebound::new(p(&deliver_sql(planned, ACK_MOVES[0].0))?),
                Rebound::new(p(&deliver_sql(planned, ACK_MOVES[1].0))?),
                Rebound::new(p(&deliver_sql(planned, ACK_MOVES[2].0))?),
            ])
        };
        Ok(Self {
            deliver: deliver(PLANNED_AND_PENDING)?,
            deliver_at_row: deliver(PLANNED_AND_PENDING_AT_ROW)?,
            last: 0,
            reject: p(&reject_sql())?,
            move_event: Rebound::new(p(MOVE_EVENT)?),
            event: p(EVENT)?,
            set_event: p(SET_STATUS)?,
        })
    }

    /// Settles `o` if it is a delivery or a rejection of the key's desired, pending version at
    /// the part it gives; `false` (nothing written) otherwise.
    pub(super) fn settle(
        &mut self,
        d: &mut Delta,
        destination: &str,
        audience_key: &str,
        now_ms: i64,
        o: &OutcomeRow,
    ) -> Result<bool, StoreError> {
        let (email, user_id) = (key_part(&o.identity.email), key_part(&o.identity.user_id));
        let seq = to_i64(OP, o.seq)?;
        let Some(part) = o.part else {
            return Ok(false);
        };
        let part = i64::from(part);
        let key = (destination, audience_key, email, user_id, seq, part);
        let (kind, reason) = match &o.outcome {
            Outcome::Delivered => match self.deliver(key, o.row_id, now_ms)? {
                Some(members) => {
                    d.members += members;
                    d.delivered_at(now_ms);
                    d.state_moved("pending", StatusKind::Delivered.as_str());
                    self.count_delivered(d, (seq, part), now_ms)?;
                    return Ok(true);
                }
                None => return Ok(false),
            },
            Outcome::Rejected { reason } => {
                let (de, lk, em, ui, se, pa) = key;
                let n = self
                    .reject
                    .execute(params![de, lk, em, ui, se, reason, pa])
                    .map_err(engine(OP))?;
                if n == 0 {
                    return Ok(false);
                }
                (StatusKind::Rejected, Some(reason.as_str()))
            }
            Outcome::Retry { .. } | Outcome::Superseded { .. } => return Ok(false),
        };
        d.state_moved("pending", kind.as_str());
        self.log_event(d, (seq, part), kind, reason, now_ms)?;
        Ok(true)
    }

    /// Delivers the key at its planned seq and part if still pending, found at `row_id` when
    /// given: the move of the audience's `members`, or `None` when no row matched.
    fn deliver(
        &mut self,
        key: (&str, &str, &str, &str, i64, i64),
        row_id: Option<i64>,
        now_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        for i in 0..ACK_MOVES.len() {
            let which = (self.last + i) % ACK_MOVES.len();
            let n = match row_id {
                None => run_deliver(&mut self.deliver[which], key, now_ms),
                Some(row) => {
                    let st = &mut self.deliver_at_row[which];
                    st.bind(8, row).and_then(|()| run_deliver(st, key, now_ms))
                }
            }
            .map_err(engine(OP))?;
            if n == 1 {
                self.last = which;
                return Ok(Some(ACK_MOVES[which].1));
            }
        }
        Ok(None)
    }

    /// Counts the delivery of the planned event, at (`seq`, `part`), without writing its row
    /// when it is `accepted` or `pending`: the key's desired row, delivered at that seq and
    /// part, says it was delivered (see `delivered`). A row in another status (a key set
    /// pending again at the same version by drift repair, whose delivery was written then) is
    /// set as before. (Reading the status with the delivery's own statement,
    /// `UPDATE ... RETURNING`, cost about 22% more instructions per event in part (c): SQLite runs
    /// `RETURNING` as a trigger.)
    fn count_delivered(
        &mut self,
        d: &mut Delta,
        (seq, part): (i64, i64),
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let Some(was) = self.event_status((seq, part))? else {
            return Ok(());
        };
        d.event_moved(was, StatusKind::Delivered);
        if !matches!(was, StatusKind::Accepted | StatusKind::Pending) {
            self.set_event_status((seq, part), StatusKind::Delivered, None, now_ms)?;
        }
        Ok(())
    }

    /// The status of the planned event's row at (`seq`, `part`), if there is one.
    fn event_status(&mut self, (seq, part): (i64, i64)) -> Result<Option<StatusKind>, StoreError> {
        let was: Option<String> = self
            .event
            .query_row(params![seq, part], |r| r.get(0))
            .optional()
            .map_err(engine(OP))?;
        was.map(|w| status_of(OP, &w)).transpose()
    }

    /// Sets the planned event's row at (`seq`, `part`) to `kind`, whatever its status.
    fn set_event_status(
        &mut self,
        (seq, part): (i64, i64),
        kind: StatusKind,
        reason: Option<&str>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.set_event
            .execute(params![
                seq,
                part,
                kind.as_str(),
                reason,
                None::<i64>,
                now_ms
            ])
            .map(|_| ())
            .map_err(engine(OP))
    }

    /// The planned event, at (`seq`, `part`), takes the outcome's status.
    fn log_event(
        &mut self,
        d: &mut Delta,
        (seq, part): (i64, i64),
        kind: StatusKind,
        reason: Option<&str>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        for from in [StatusKind::Accepted, StatusKind::Pending] {
            let moved = run_move_event(
                &mut self.move_event,
                (seq, part),
                [from, kind],
                reason,
                now_ms,
            )
            .map_err(engine(OP))?;
            if moved == 1 {
                d.event_moved(from, kind);
                return Ok(());
            }
        }
        // The event had another status (not seen in practice): set it all the same.
        if let Some(was) = self.event_status((seq, part))? {
            d.event_moved(was, kind);
            self.set_event_status((seq, part), kind, reason, now_ms)?;
        }
        Ok(())
    }
}

/// One of the delivery statements ([`deliver_sql`]) for the key at its planned seq and part:
/// the rows it changed.
fn run_deliver(
    st: &mut Rebound<'_>,
    (de, lk, em, ui, se, pa): (&str, &str, &str, &str, i64, i64),
    now_ms: i64,
) -> rusqlite::Result<usize> {
    st.repeating_text(1, Some(de))?;
    st.repeating_text(2, Some(lk))?;
    st.bind(3, em)?;
    st.bind(4, ui)?;
    st.bind(5, se)?;
    st.repeating_int(6, Some(now_ms))?;
    st.bind(7, pa)?;
    st.execute()
}

/// [`MOVE_EVENT`] for the event's row at (`seq`, `part`), from one status to another: the rows
/// it changed.
fn run_move_event(
    st: &mut Rebound<'_>,
    (seq, part): (i64, i64),
    [from, to]: [StatusKind; 2],
    reason: Option<&str>,
    now_ms: i64,
) -> rusqlite::Result<usize> {
    st.bind(1, seq)?;
    st.bind(2, part)?;
    st.repeating_text(3, Some(from.as_str()))?;
    st.repeating_text(4, Some(to.as_str()))?;
    st.repeating_text(5, reason)?;
    st.repeating_int(6, Some(now_ms))?;
    st.execute()
}

#[cfg(test)]
mod tests {
    use super::super::outcomes::PLANNED_EXACT;
    use super::*;
    use crate::sqlite::SqliteStore;
    use crate::store::{
        ChangeSettings, EventContent, Identity, MembershipChange, NewEvent, PendingRow, Receipt,
        Recorded,
    };

    fn change(time_ms: i64) -> MembershipChange {
        MembershipChange {
            audience_key: "vip".into(),
            list_id: None,
            identity: Identity::new(Some("a@x.co"), None),
            member: true,
            data_fields: None,
            settings: ChangeSettings::default(),
            time_ms: Some(time_ms),
        }
    }

    /// [`change`] for another user.
    fn change_of(email: &str, user_id: Option<&str>) -> MembershipChange {
        MembershipChange {
            identity: Identity::new(Some(email), user_id),
            ..change(100)
        }
    }

    /// The delivery of pending row `r`, naming the row `row_id`.
    fn delivery_at(r: &PendingRow, row_id: Option<i64>) -> OutcomeRow {
        OutcomeRow {
            identity: r.identity.clone(),
            seq: r.version.seq,
            part: Some(r.part),
            row_id,
            outcome: Outcome::Delivered,
        }
    }

    fn event(id: &str, changes: Vec<MembershipChange>) -> NewEvent {
        NewEvent {
            destination: "d".into(),
            message_id: id.into(),
            received_ms: 1_000,
            content: EventContent::Changes(changes),
            ignored_settings: Vec::new(),
        }
    }

    /// An event that names a key twice, the first naming stale and the second the key's
    /// desired version: a delivery settles the second, never the first, also when the key was
    /// set pending again at the same version (as drift repair does) and delivered twice. The
    /// same whether the outcome gives the part the key points at (settled here), another part,
    /// or none (both recorded the general way).
    #[test]
    fn a_delivery_settles_the_naming_the_key_points_at() {
        for part in [Some(1), Some(0), None] {
            let s = SqliteStore::open(":memory:").expect("open");
            s.accept(&[event("m1", vec![change(200)])]).expect("accept");
            let r = s
                .accept(&[event("m2", vec![change(100), change(300)])])
                .expect("accept");
            let Some(Receipt::Accepted { seq, .. }) = r.first() else {
                panic!("{r:?}");
            };
            let delivered = OutcomeRow {
                identity: Identity::new(Some("a@x.co"), None),
                seq: *seq,
                part,
                row_id: None,
                outcome: Outcome::Delivered,
            };
            let statuses = || {
                let e = s.event_status("d", "m2").expect("status").expect("known");
                e.audiences.iter().map(|a| a.status).collect::<Vec<_>>()
            };
            assert_eq!(statuses(), [StatusKind::Skipped, StatusKind::Accepted]);
            let recorded = s
                .record_outcomes("d", "vip", 2_000, std::slice::from_ref(&delivered))
                .expect("record");
            assert_eq!(recorded, [Recorded::Applied], "{part:?}");
            assert_eq!(
                statuses(),
                [StatusKind::Skipped, StatusKind::Delivered],
                "{part:?}"
            );
            let key = [Identity::new(Some("a@x.co"), None)];
            s.reopen_keys("d", "vip", &key, "drift", 2_500)
                .expect("reopen");
            s.record_outcomes("d", "vip", 3_000, &[delivered])
                .expect("record");
            assert_eq!(
                statuses(),
                [StatusKind::Skipped, StatusKind::Delivered],
                "{part:?}"
            );
            let (_, events) = s.recount("d").expect("recount");
            assert_eq!(s.event_counts("d").expect("counts"), events, "{part:?}");
        }
    }

    /// A delivery found at the row its outcome gives settles that row only when it is still
    /// the key's, at the planned version: given another key's row, or a row that is no more,
    /// it settles its own key (by key, the general way) and leaves the other pending.
    #[test]
    fn a_delivery_at_another_keys_row_settles_its_own_key_only() {
        let s = SqliteStore::open(":memory:").expect("open");
        let (b, c) = (change_of("b@x.co", None), change_of("c@x.co", Some("u3")));
        s.accept(&[event("m1", vec![change(100), b, c])])
            .expect("accept");
        let pending = s.pending("d", "vip", 10_000, 10).expect("pending");
        let of = |email: &str| {
            pending
                .iter()
                .find(|r| r.identity.email.as_deref() == Some(email))
                .expect("pending")
        };
        let (a, b) = (of("a@x.co"), of("b@x.co"));
        assert!(a.row_id.is_some() && b.row_id.is_some() && a.row_id != b.row_id);
        let still_pending = || {
            let mut e: Vec<_> = s
                .pending("d", "vip", 10_000, 10)
                .expect("pending")
                .into_iter()
                .filter_map(|r| r.identity.email)
                .collect();
            e.sort();
            e
        };
        let applied = s
            .record_outcomes("d", "vip", 2_000, &[delivery_at(a, b.row_id)])
            .expect("record");
        assert_eq!(applied, [Recorded::Applied]);
        assert_eq!(still_pending(), ["b@x.co", "c@x.co"]);
        let applied = s
            .record_outcomes("d", "vip", 2_100, &[delivery_at(b, Some(i64::MAX))])
            .expect("record");
        assert_eq!(applied, [Recorded::Applied]);
        assert_eq!(still_pending(), ["c@x.co"]);
        let c = of("c@x.co");
        s.record_outcomes("d", "vip", 2_200, &[delivery_at(c, c.row_id)])
            .expect("record");
        assert!(still_pending().is_empty());
        let counts = s.list_counts("d").expect("counts");
        assert_eq!(counts[0].members, 3);
        assert_eq!(s.recount("d").expect("recount").0, counts);
        let e = s.event_status("d", "m1").expect("status").expect("known");
        assert!(
            e.audiences
                .iter()
                .all(|a| a.status == StatusKind::Delivered),
            "{e:?}"
        );
    }

    /// A delivery that names the row the pending read gave is settled here, at that row; one
    /// that names another key's row, or a row that is no more, writes nothing here (the
    /// caller then records it by key, as the test above shows).
    #[test]
    fn a_delivery_is_settled_here_at_the_row_the_pending_read_gave() {
        let s = SqliteStore::open(":memory:").expect("open");
        s.accept(&[event("m1", vec![change(100), change_of("b@x.co", None)])])
            .expect("accept");
        let pending = s.pending("d", "vip", 10_000, 10).expect("pending");
        let [a, b] = pending.as_slice() else {
            panic!("{pending:?}");
        };
        let at = |row_id| delivery_at(a, row_id);
        let w = s.lock_writer();
        let mut direct = DirectSettle::prepare(&w.conn).expect("prepare");
        let mut d = Delta::default();
        for other in [b.row_id, Some(i64::MAX)] {
            let settled = direct
                .settle(&mut d, "d", "vip", 2_000, &at(other))
                .expect("settle");
            assert!(!settled, "{other:?}");
        }
        assert_eq!(d.members, 0);
        let settled = direct
            .settle(&mut d, "d", "vip", 2_000, &at(a.row_id))
            .expect("settle");
        assert!(settled);
        assert_eq!(d.members, 1);
        let delivered: Vec<String> = w
            .conn
            .prepare("SELECT email FROM desired WHERE state = 'delivered'")
            .expect("prepare")
            .query_map([], |r| r.get(0))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert_eq!(delivered, ["a@x.co"]);
    }

    /// Every statement finds its rows by whole primary keys: an event's row by (seq, part),
    /// never among the rows of its seq (a snapshot writes a million keys under one seq, and a
    /// walk of them per outcome made a snapshot's delivery quadratic); a delivery at the row
    /// the outcome gives, by its rowid alone.
    #[test]
    fn each_outcome_is_settled_by_key_lookups_not_scans() {
        let s = SqliteStore::open(":memory:").expect("open");
        let conn = s.lock();
        for (cond, _) in ACK_MOVES {
            let sql = deliver_sql(PLANNED_AND_PENDING_AT_ROW, cond);
            let plan = super::super::query_plan(&conn, &sql);
            assert_eq!(
                plan.trim(),
                "SEARCH desired USING INTEGER PRIMARY KEY (rowid=?)",
                "{sql}"
            );
        }
        let mut all: Vec<String> = ACK_MOVES
            .iter()
            .map(|(c, _)| deliver_sql(PLANNED_AND_PENDING, c))
            .collect();
        all.extend([
            reject_sql(),
            MOVE_EVENT.to_string(),
            EVENT.to_string(),
            SET_STATUS.to_string(),
            PLANNED_EXACT.to_string(),
        ]);
        for sql in all {
            let plan = super::super::query_plan(&conn, &sql);
            for line in plan.lines() {
                assert!(!line.starts_with("SCAN"), "{sql}\n{plan}");
                if line.contains("SEARCH desired") {
                    assert!(line.contains("user_id=?"), "the whole key: {sql}\n{plan}");
                }
                if line.contains("SEARCH event_audiences") {
                    assert!(line.contains("part=?"), "(seq, part): {sql}\n{plan}");
                }
            }
            assert!(plan.contains("SEARCH"), "{sql}\n{plan}");
        }
    }
}
