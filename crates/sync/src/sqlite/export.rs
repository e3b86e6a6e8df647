//! Reading a whole database for `store copy`: a connection of its own holds one read
//! transaction (a WAL snapshot) for the whole export, so that the batches belong together
//! while the service goes on writing; each table is read in key order, a batch at a time,
//! resuming after the last key read.

use std::sync::{Arc, Mutex};

use destination::{IgnoredSetting, SettingName};
use rusqlite::{Connection, OpenFlags, Row, params};

use super::checkpoint::BUSY_TIMEOUT;
use super::delivered::{ROW_DESTINATION, SHOWN_COLUMNS, unwritten_delivery};
use super::{SqliteStore, engine, identity_of, key_part, status_of, to_u64};
use crate::store::transfer::assemble_events;
use crate::store::{
    Acknowledged, ChangeSettings, CopyBatch, DesiredEntry, Export, KeyState, ListEntry,
    LoggedChange, LoggedEvent, StoreError, StoreFuture, StoredState, TableCounts, Version,
};

const OP: &str = "export";

/// Rows per table, in one statement (one snapshot).
pub(super) const TABLE_COUNTS: &str = "SELECT (SELECT COUNT(*) FROM lists),
     (SELECT COUNT(*) FROM destination_state), (SELECT COUNT(*) FROM desired),
     (SELECT COUNT(*) FROM events), (SELECT COUNT(*) FROM event_audiences),
     (SELECT COUNT(*) FROM ignored_settings)";

pub(super) fn table_counts(conn: &Connection, op: &'static str) -> Result<TableCounts, StoreError> {
    let n: [i64; 6] = conn
        .query_row(TABLE_COUNTS, [], |r| {
            Ok([
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ])
        })
        .map_err(engine(op))?;
    Ok(TableCounts {
        lists: to_u64(op, n[0])?,
        destination_states: to_u64(op, n[1])?,
        desired: to_u64(op, n[2])?,
        events: to_u64(op, n[3])?,
        event_changes: to_u64(op, n[4])?,
        ignored_settings: to_u64(op, n[5])?,
    })
}

/// Where the export stands: the table it reads and the last key it read there.
#[derive(Debug, Clone)]
enum Cursor {
    Lists(Option<(String, String)>),
    States(Option<String>),
    Desired(Option<[String; 4]>),
    Events(Option<i64>),
    Done,
}

/// The snapshot connection and where the export stands.
struct Snapshot {
    conn: Connection,
    cursor: Cursor,
}

/// An [`Export`] of a SQLite database.
pub(super) struct SqliteExport {
    snapshot: Arc<Mutex<Snapshot>>,
}

impl SqliteStore {
    /// Opens a read-only connection to the database file and starts the read transaction that
    /// the whole export reads in. An in-memory database has no file to open: refused.
    pub fn export(&self) -> Result<Box<dyn Export>, StoreError> {
        let path = {
            let w = self.idle_writer();
            w.conn.path().unwrap_or_default().to_string()
        };
        if path.is_empty() {
            return Err(StoreError::Invalid {
                op: OP,
                message: "an in-memory database cannot be exported (it exists only inside the \
                          process that opened it)"
                    .into(),
            });
        }
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| StoreError::Open {
            location: path.clone(),
            source: e.into(),
        })?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(engine(OP))?;
        // The snapshot begins with the transaction's first read.
        conn.execute_batch("BEGIN DEFERRED").map_err(engine(OP))?;
        conn.query_row("SELECT COUNT(*) FROM schema_version", [], |r| {
            r.get::<_, i64>(0)
        })
        .map_err(engine(OP))?;
        Ok(Box::new(SqliteExport {
            snapshot: Arc::new(Mutex::new(Snapshot {
                conn,
                cursor: Cursor::Lists(None),
            })),
        }))
    }
}

impl SqliteExport {
    /// Runs `f` on the snapshot on tokio's blocking pool.
    fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Snapshot) -> Result<T, StoreError> + Send + 'static,
    ) -> StoreFuture<'static, T> {
        let snapshot = self.snapshot.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let mut s = snapshot.lock().unwrap_or_else(|p| p.into_inner());
                f(&mut s)
            })
            .await
            .map_err(|e| StoreError::Task {
                op: OP,
                message: e.to_string(),
            })?
        })
    }
}

impl Export for SqliteExport {
    fn counts(&mut self) -> StoreFuture<'_, TableCounts> {
        self.run(|s| table_counts(&s.conn, OP))
    }

    fn next_batch(&mut self, limit: usize) -> StoreFuture<'_, Option<CopyBatch>> {
        self.run(move |s| s.next_batch(limit.max(1)))
    }
}

impl Snapshot {
    /// The next non-empty batch, moving on to the next table when one is read out.
    fn next_batch(&mut self, limit: usize) -> Result<Option<CopyBatch>, StoreError> {
        loop {
            let (batch, next) = match &self.cursor {
                Cursor::Lists(after) => {
                    let rows = lists(&self.conn, after.as_ref(), limit)?;
                    let next = match rows.last() {
                        Some(l) => {
                            Cursor::Lists(Some((l.destination.clone(), l.audience_key.clone())))
                        }
                        None => Cursor::States(None),
                    };
                    (CopyBatch::Lists(rows), next)
                }
                Cursor::States(after) => {
                    let rows = states(&self.conn, after.as_deref(), limit)?;
                    let next = match rows.last() {
                        Some(s) => Cursor::States(Some(s.destination.clone())),
                        None => Cursor::Desired(None),
                    };
                    (CopyBatch::DestinationStates(rows), next)
                }
                Cursor::Desired(after) => {
                    let rows = desired(&self.conn, after.as_ref(), limit)?;
                    let next = match rows.last() {
                        Some(d) => Cursor::Desired(Some([
                            d.destination.clone(),
                            d.audience_key.clone(),
                            key_part(&d.identity.email).to_string(),
                            key_part(&d.identity.user_id).to_string(),
                        ])),
                        None => Cursor::Events(None),
                    };
                    (CopyBatch::Desired(rows), next)
                }
                Cursor::Events(after) => {
                    let rows = events(&self.conn, *after, limit)?;
                    let next = match rows.last() {
                        Some(e) => Cursor::Events(Some(i64::try_from(e.seq).map_err(|_| {
                            StoreError::Corrupt {
                                op: OP,
                                message: format!("sequence {} out of range", e.seq),
                            }
                        })?)),
                        None => Cursor::Done,
                    };
                    (CopyBatch::Events(rows), next)
                }
                Cursor::Done => return Ok(None),
            };
            self.cursor = next;
            if !batch.is_empty() {
                return Ok(Some(batch));
            }
        }
    }
}

/// `SELECT cols FROM table [WHERE (key) > (?, ...)] ORDER BY key LIMIT ?`: the first page
/// without a bound, the next ones after the last key read.
fn page_sql(cols: &str, table: &str, key: &[&str], after: bool) -> String {
    let key_list = key.join(", ");
    let bound = if after {
        let marks: Vec<String> = (1..=key.len()).map(|i| format!("?{i}")).collect();
        format!("WHERE ({key_list}) > ({})", marks.join(", "))
    } else {
        String::new()
    };
    let limit = if after { key.len() + 1 } else { 1 };
    format!("SELECT {cols} FROM {table} {bound} ORDER BY {key_list} LIMIT ?{limit}")
}

fn limit_of(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

fn lists(
    conn: &Connection,
    after: Option<&(String, String)>,
    limit: usize,
) -> Result<Vec<ListEntry>, StoreError> {
    let sql = page_sql(
        "destination, audience_key, list_id",
        "lists",
        &["destination", "audience_key"],
        after.is_some(),
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(engine(OP))?;
    let read = |r: &Row<'_>| {
        Ok(ListEntry {
            destination: r.get(0)?,
            audience_key: r.get(1)?,
            list_id: r.get(2)?,
        })
    };
    let rows = match after {
        Some((d, a)) => stmt.query_map(params![d, a, limit_of(limit)], read),
        None => stmt.query_map(params![limit_of(limit)], read),
    };
    rows.map_err(engine(OP))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(engine(OP))
}

fn states(
    conn: &Connection,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<StoredState>, StoreError> {
    let sql = page_sql(
        "destination, state, reason, since_ms, updated_ms",
        "destination_state",
        &["destination"],
        after.is_some(),
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(engine(OP))?;
    type Raw = (String, String, Option<String>, Option<i64>, i64);
    let read = |r: &Row<'_>| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?));
    let raw: Vec<Raw> = match after {
        Some(d) => stmt.query_map(params![d, limit_of(limit)], read),
        None => stmt.query_map(params![limit_of(limit)], read),
    }
    .map_err(engine(OP))?
    .collect::<Result<_, _>>()
    .map_err(engine(OP))?;
    raw.into_iter()
        .map(|(destination, state, reason, since, updated_ms)| {
            let (reason, since_ms) = (reason.unwrap_or_default(), since.unwrap_or_default());
            let state = match state.as_str() {
                "running" => crate::store::DestinationState::Running,
                "paused" => crate::store::DestinationState::Paused { reason, since_ms },
                "degraded" => crate::store::DestinationState::Degraded { reason, since_ms },
                other => {
                    return Err(StoreError::Corrupt {
                        op: OP,
                        message: format!("unknown destination state {other:?} of {destination:?}"),
                    });
                }
            };
            Ok(StoredState {
                destination,
                state,
                updated_ms,
            })
        })
        .collect()
}

/// The columns of `desired` an export reads and an import writes, in this order.
pub(super) const DESIRED_COLUMNS: &str = "destination, list_key, email, user_id, list_id, \
     member, time_ms, seq, part, accepted_ms, data_fields, update_existing_users_only, \
     channel_unsubscribe, campaign_id, state, reason, attempts, next_attempt_ms, ack_member, \
     ack_time_ms, ack_seq, ack_ms, tries";

/// One `desired` row as stored.
struct RawDesired {
    destination: String,
    list_key: String,
    email: String,
    user_id: String,
    list_id: Option<i64>,
    member: bool,
    time_ms: Option<i64>,
    seq: i64,
    part: i64,
    accepted_ms: i64,
    data_fields: Option<String>,
    settings: ChangeSettings,
    state: String,
    reason: Option<String>,
    attempts: i64,
    next_attempt_ms: i64,
    ack: (Option<bool>, Option<i64>, Option<i64>, Option<i64>),
    tries: i64,
}

fn raw_desired(r: &Row<'_>) -> rusqlite::Result<RawDesired> {
    Ok(RawDesired {
        destination: r.get(0)?,
        list_key: r.get(1)?,
        email: r.get(2)?,
        user_id: r.get(3)?,
        list_id: r.get(4)?,
        member: r.get(5)?,
        time_ms: r.get(6)?,
        seq: r.get(7)?,
        part: r.get(8)?,
        accepted_ms: r.get(9)?,
        data_fields: r.get(10)?,
        settings: ChangeSettings {
            update_existing_users_only: r.get(11)?,
            channel_unsubscribe: r.get(12)?,
            campaign_id: r.get(13)?,
        },
        state: r.get(14)?,
        reason: r.get(15)?,
        attempts: r.get(16)?,
        next_attempt_ms: r.get(17)?,
        ack: (r.get(18)?, r.get(19)?, r.get(20)?, r.get(21)?),
        tries: r.get(22)?,
    })
}

fn small(what: &str, v: i64) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|_| StoreError::Corrupt {
        op: OP,
        message: format!("{what} {v} out of range"),
    })
}

impl RawDesired {
    fn into_entry(self) -> Result<DesiredEntry, StoreError> {
        let state = KeyState::parse(&self.state).ok_or_else(|| StoreError::Corrupt {
            op: OP,
            message: format!("unknown state {:?} of a desired row", self.state),
        })?;
        let acknowledged = match self.ack {
            (None, _, None, None) => None,
            (Some(member), time_ms, Some(seq), Some(at_ms)) => Some(Acknowledged {
                member,
                version: Version {
                    time_ms,
                    seq: to_u64(OP, seq)?,
                },
                at_ms,
            }),
            partial => {
                return Err(StoreError::Corrupt {
                    op: OP,
                    message: format!("a partly acknowledged desired row: {partial:?}"),
                });
            }
        };
        Ok(DesiredEntry {
            destination: self.destination,
            audience_key: self.list_key,
            identity: identity_of(self.email, self.user_id),
            list_id: self.list_id,
            member: self.member,
            version: Version {
                time_ms: self.time_ms,
                seq: to_u64(OP, self.seq)?,
            },
            part: small("part", self.part)?,
            accepted_ms: self.accepted_ms,
            data_fields: self.data_fields,
            settings: self.settings,
            state,
            reason: self.reason,
            attempts: small("attempts", self.attempts)?,
            tries: small("tries", self.tries)?,
            next_attempt_ms: self.next_attempt_ms,
            acknowledged,
        })
    }
}

fn desired(
    conn: &Connection,
    after: Option<&[String; 4]>,
    limit: usize,
) -> Result<Vec<DesiredEntry>, StoreError> {
    let sql = page_sql(
        DESIRED_COLUMNS,
        "desired",
        &["destination", "list_key", "email", "user_id"],
        after.is_some(),
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(engine(OP))?;
    let raw: Vec<RawDesired> = match after {
        Some([d, l, e, u]) => stmt.query_map(params![d, l, e, u, limit_of(limit)], raw_desired),
        None => stmt.query_map(params![limit_of(limit)], raw_desired),
    }
    .map_err(engine(OP))?
    .collect::<Result<_, _>>()
    .map_err(engine(OP))?;
    raw.into_iter().map(RawDesired::into_entry).collect()
}

/// Up to `limit` events after `after`, each with its changes and ignored settings.
fn events(
    conn: &Connection,
    after: Option<i64>,
    limit: usize,
) -> Result<Vec<LoggedEvent>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT seq, destination, message_id, received_ms FROM events
             WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )
        .map_err(engine(OP))?;
    let raw: Vec<(i64, String, String, i64)> = stmt
        .query_map(params![after.unwrap_or(i64::MIN), limit_of(limit)], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .map_err(engine(OP))?
        .collect::<Result<_, _>>()
        .map_err(engine(OP))?;
    let (Some(first), Some(last)) = (raw.first().map(|e| e.0), raw.last().map(|e| e.0)) else {
        return Ok(Vec::new());
    };
    let events = raw
        .into_iter()
        .map(|(seq, destination, message_id, received_ms)| {
            Ok(LoggedEvent {
                seq: to_u64(OP, seq)?,
                destination,
                message_id,
                received_ms,
                changes: Vec::new(),
                ignored_settings: Vec::new(),
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(assemble_events(
        events,
        changes_between(conn, first, last)?,
        ignored_between(conn, first, last)?,
    ))
}

/// The changes of the events `first..=last`, in (seq, part) order.
fn changes_between(
    conn: &Connection,
    first: i64,
    last: i64,
) -> Result<Vec<(u64, LoggedChange)>, StoreError> {
    // A delivery not written to its row (see `delivered`) is copied as written.
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT seq, part, list_key, email, user_id, member, time_ms, {SHOWN_COLUMNS}
             FROM (SELECT ea.*, {delivered} AS delivered_ms FROM event_audiences ea
                   WHERE ea.seq BETWEEN ?1 AND ?2)
             ORDER BY seq, part",
            delivered = unwritten_delivery(ROW_DESTINATION)
        ))
        .map_err(engine(OP))?;
    type Raw = (i64, i64, LoggedChange, String);
    let raw: Vec<Raw> = stmt
        .query_map(params![first, last], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                LoggedChange {
                    part: 0,
                    audience_key: r.get(2)?,
                    identity: identity_of(r.get(3)?, r.get(4)?),
                    member: r.get(5)?,
                    time_ms: r.get(6)?,
                    status: crate::store::StatusKind::Accepted,
                    reason: r.get(8)?,
                    next_attempt_ms: r.get(9)?,
                    updated_ms: r.get(10)?,
                },
                r.get(7)?,
            ))
        })
        .map_err(engine(OP))?
        .collect::<Result<_, _>>()
        .map_err(engine(OP))?;
    raw.into_iter()
        .map(|(seq, part, mut c, status)| {
            c.part = small("part", part)?;
            c.status = status_of(OP, &status)?;
            Ok((to_u64(OP, seq)?, c))
        })
        .collect()
}

/// The ignored settings of the events `first..=last`, in (seq, setting) order.
fn ignored_between(
    conn: &Connection,
    first: i64,
    last: i64,
) -> Result<Vec<(u64, IgnoredSetting)>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT seq, setting, value, reason FROM ignored_settings
             WHERE seq BETWEEN ?1 AND ?2 ORDER BY seq, setting",
        )
        .map_err(engine(OP))?;
    let raw: Vec<(i64, String, String, String)> = stmt
        .query_map(params![first, last], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .map_err(engine(OP))?
        .collect::<Result<_, _>>()
        .map_err(engine(OP))?;
    raw.into_iter()
        .map(|(seq, setting, value, reason)| {
            let setting = SettingName::parse(&setting).ok_or_else(|| StoreError::Corrupt {
                op: OP,
                message: format!("unknown audience setting {setting:?} of seq {seq}"),
            })?;
            Ok((
                to_u64(OP, seq)?,
                IgnoredSetting {
                    setting,
                    value,
                    reason,
                },
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::SqliteStore;

    /// A page of `desired` is a range of its key's unique index, in its order, with nothing
    /// sorted: a sort would read the whole table for every page.
    #[test]
    fn a_page_of_desired_is_a_range_of_its_key() {
        let s = SqliteStore::open(":memory:").expect("open");
        let conn = s.lock();
        let key = ["destination", "list_key", "email", "user_id"];
        for after in [false, true] {
            let sql = page_sql(DESIRED_COLUMNS, "desired", &key, after);
            let plan = super::super::query_plan(&conn, &sql);
            assert!(plan.contains("INDEX sqlite_autoindex_desired_1"), "{plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{plan}");
        }
    }
}
