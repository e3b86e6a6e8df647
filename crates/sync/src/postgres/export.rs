//! Reading a whole database for `store copy`: one connection, taken out of the pool, holds a
//! `REPEATABLE READ READ ONLY` transaction (one snapshot) for the whole export, while the
//! instances go on writing; each table is read in key order, a batch at a time, resuming after
//! the last key read. The connection is closed when the export is dropped, never handed back
//! to the pool with its transaction open.

use deadpool_postgres::{GenericClient, Object};
use destination::{IgnoredSetting, SettingName};
use tokio_postgres::Row;

use super::{PostgresStore, identity_of, pg, status_of, to_i64, to_u64};
use crate::store::transfer::assemble_events;
use crate::store::{
    Acknowledged, ChangeSettings, CopyBatch, DesiredEntry, DestinationState, Export, KeyState,
    ListEntry, LoggedChange, LoggedEvent, Seq, StoreError, StoreFuture, StoredState, TableCounts,
    Version,
};

const OP: &str = "export";

/// Rows per table, in one statement (one snapshot).
const TABLE_COUNTS: &str = "SELECT (SELECT COUNT(*) FROM lists),
     (SELECT COUNT(*) FROM destination_state), (SELECT COUNT(*) FROM desired),
     (SELECT COUNT(*) FROM events), (SELECT COUNT(*) FROM event_audiences),
     (SELECT COUNT(*) FROM ignored_settings)";

pub(super) async fn table_counts(
    c: &impl GenericClient,
    op: &'static str,
) -> Result<TableCounts, StoreError> {
    let r = c.query_one(TABLE_COUNTS, &[]).await.map_err(pg(op))?;
    Ok(TableCounts {
        lists: to_u64(op, r.get(0))?,
        destination_states: to_u64(op, r.get(1))?,
        desired: to_u64(op, r.get(2))?,
        events: to_u64(op, r.get(3))?,
        event_changes: to_u64(op, r.get(4))?,
        ignored_settings: to_u64(op, r.get(5))?,
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

/// An [`Export`] of a PostgreSQL database.
struct PgExport {
    /// The snapshot's connection; `None` only while being dropped.
    client: Option<Object>,
    cursor: Cursor,
}

impl Drop for PgExport {
    fn drop(&mut self) {
        // Out of the pool: dropping the connection closes it, which ends the transaction.
        if let Some(c) = self.client.take() {
            drop(Object::take(c));
        }
    }
}

impl PostgresStore {
    /// Takes a connection and starts the snapshot that the whole export reads in.
    pub async fn export(&self) -> Result<Box<dyn Export>, StoreError> {
        let client = self.client(OP).await?;
        let export = PgExport {
            client: Some(client),
            cursor: Cursor::Lists(None),
        };
        export
            .conn()?
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(pg(OP))?;
        // The snapshot is taken at the transaction's first query.
        export
            .conn()?
            .query_one("SELECT 1", &[])
            .await
            .map_err(pg(OP))?;
        Ok(Box::new(export))
    }
}

impl PgExport {
    fn conn(&self) -> Result<&Object, StoreError> {
        self.client.as_ref().ok_or_else(|| StoreError::Task {
            op: OP,
            message: "the export's connection is gone".into(),
        })
    }

    /// The next non-empty batch, moving on to the next table when one is read out.
    async fn next(&mut self, limit: i64) -> Result<Option<CopyBatch>, StoreError> {
        loop {
            let c = self.conn()?;
            let (batch, next) = match &self.cursor {
                Cursor::Lists(after) => {
                    let rows = lists(c, after.as_ref(), limit).await?;
                    let next = match rows.last() {
                        Some(l) => {
                            Cursor::Lists(Some((l.destination.clone(), l.audience_key.clone())))
                        }
                        None => Cursor::States(None),
                    };
                    (CopyBatch::Lists(rows), next)
                }
                Cursor::States(after) => {
                    let rows = states(c, after.as_deref(), limit).await?;
                    let next = match rows.last() {
                        Some(s) => Cursor::States(Some(s.destination.clone())),
                        None => Cursor::Desired(None),
                    };
                    (CopyBatch::DestinationStates(rows), next)
                }
                Cursor::Desired(after) => {
                    let rows = desired(c, after.as_ref(), limit).await?;
                    let next = match rows.last() {
                        Some(d) => Cursor::Desired(Some([
                            d.destination.clone(),
                            d.audience_key.clone(),
                            super::key_part(&d.identity.email).to_string(),
                            super::key_part(&d.identity.user_id).to_string(),
                        ])),
                        None => Cursor::Events(None),
                    };
                    (CopyBatch::Desired(rows), next)
                }
                Cursor::Events(after) => {
                    let rows = events(c, *after, limit).await?;
                    let next = match rows.last() {
                        Some(e) => Cursor::Events(Some(to_i64(OP, e.seq)?)),
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

impl Export for PgExport {
    fn counts(&mut self) -> StoreFuture<'_, TableCounts> {
        Box::pin(async move { table_counts(self.conn()?, OP).await })
    }

    fn next_batch(&mut self, limit: usize) -> StoreFuture<'_, Option<CopyBatch>> {
        let limit = i64::try_from(limit.max(1)).unwrap_or(i64::MAX);
        Box::pin(self.next(limit))
    }
}

/// `SELECT cols FROM table [WHERE (key) > ($1, ...)] ORDER BY key LIMIT $n`.
fn page_sql(cols: &str, table: &str, key: &[&str], after: bool) -> String {
    let key_list = key.join(", ");
    let bound = if after {
        let marks: Vec<String> = (1..=key.len()).map(|i| format!("${i}")).collect();
        format!("WHERE ({key_list}) > ({})", marks.join(", "))
    } else {
        String::new()
    };
    let limit = if after { key.len() + 1 } else { 1 };
    format!("SELECT {cols} FROM {table} {bound} ORDER BY {key_list} LIMIT ${limit}")
}

async fn lists(
    c: &Object,
    after: Option<&(String, String)>,
    limit: i64,
) -> Result<Vec<ListEntry>, StoreError> {
    let sql = page_sql(
        "destination, audience_key, list_id",
        "lists",
        &["destination", "audience_key"],
        after.is_some(),
    );
    let stmt = c.prepare_cached(&sql).await.map_err(pg(OP))?;
    let rows = match after {
        Some((d, a)) => c.query(&stmt, &[d, a, &limit]).await,
        None => c.query(&stmt, &[&limit]).await,
    }
    .map_err(pg(OP))?;
    Ok(rows
        .iter()
        .map(|r| ListEntry {
            destination: r.get(0),
            audience_key: r.get(1),
            list_id: r.get(2),
        })
        .collect())
}

async fn states(
    c: &Object,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<StoredState>, StoreError> {
    let sql = page_sql(
        "destination, state, reason, since_ms, updated_ms",
        "destination_state",
        &["destination"],
        after.is_some(),
    );
    let stmt = c.prepare_cached(&sql).await.map_err(pg(OP))?;
    let rows = match after {
        Some(d) => c.query(&stmt, &[&d, &limit]).await,
        None => c.query(&stmt, &[&limit]).await,
    }
    .map_err(pg(OP))?;
    rows.iter()
        .map(|r| {
            let destination: String = r.get(0);
            let state: String = r.get(1);
            let reason: Option<String> = r.get(2);
            let since: Option<i64> = r.get(3);
            let (reason, since_ms) = (reason.unwrap_or_default(), since.unwrap_or_default());
            let state = match state.as_str() {
                "running" => DestinationState::Running,
                "paused" => DestinationState::Paused { reason, since_ms },
                "degraded" => DestinationState::Degraded { reason, since_ms },
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
                updated_ms: r.get(4),
            })
        })
        .collect()
}

/// The columns of `desired` an export reads and an import writes, in this order.
pub(super) const DESIRED_COLUMNS: &str = "destination, list_key, email, user_id, list_id, \
     member, time_ms, seq, part, accepted_ms, data_fields, update_existing_users_only, \
     channel_unsubscribe, campaign_id, state, reason, attempts, next_attempt_ms, ack_member, \
     ack_time_ms, ack_seq, ack_ms, tries";

fn small(what: &str, v: i64) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|_| StoreError::Corrupt {
        op: OP,
        message: format!("{what} {v} out of range"),
    })
}

fn desired_entry(r: &Row) -> Result<DesiredEntry, StoreError> {
    let state: String = r.get(14);
    let state = KeyState::parse(&state).ok_or_else(|| StoreError::Corrupt {
        op: OP,
        message: format!("unknown state {state:?} of a desired row"),
    })?;
    let ack: (Option<bool>, Option<i64>, Option<i64>, Option<i64>) =
        (r.get(18), r.get(19), r.get(20), r.get(21));
    let acknowledged = match ack {
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
        destination: r.get(0),
        audience_key: r.get(1),
        identity: identity_of(r.get(2), r.get(3)),
        list_id: r.get(4),
        member: r.get(5),
        version: Version {
            time_ms: r.get(6),
            seq: to_u64(OP, r.get(7))?,
        },
        part: small("part", i64::from(r.get::<_, i32>(8)))?,
        accepted_ms: r.get(9),
        data_fields: r.get(10),
        settings: ChangeSettings {
            update_existing_users_only: r.get(11),
            channel_unsubscribe: r.get(12),
            campaign_id: r.get(13),
        },
        state,
        reason: r.get(15),
        attempts: small("attempts", r.get(16))?,
        next_attempt_ms: r.get(17),
        acknowledged,
        tries: small("tries", r.get(22))?,
    })
}

async fn desired(
    c: &Object,
    after: Option<&[String; 4]>,
    limit: i64,
) -> Result<Vec<DesiredEntry>, StoreError> {
    let sql = page_sql(
        DESIRED_COLUMNS,
        "desired",
        &["destination", "list_key", "email", "user_id"],
        after.is_some(),
    );
    let stmt = c.prepare_cached(&sql).await.map_err(pg(OP))?;
    let rows = match after {
        Some([d, l, e, u]) => c.query(&stmt, &[d, l, e, u, &limit]).await,
        None => c.query(&stmt, &[&limit]).await,
    }
    .map_err(pg(OP))?;
    rows.iter().map(desired_entry).collect()
}

/// Up to `limit` events after `after`, each with its changes and ignored settings.
async fn events(
    c: &Object,
    after: Option<i64>,
    limit: i64,
) -> Result<Vec<LoggedEvent>, StoreError> {
    let stmt = c
        .prepare_cached(
            "SELECT seq, destination, message_id, received_ms FROM events
             WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .await
        .map_err(pg(OP))?;
    let rows = c
        .query(&stmt, &[&after.unwrap_or(i64::MIN), &limit])
        .await
        .map_err(pg(OP))?;
    let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
        return Ok(Vec::new());
    };
    let (first, last): (i64, i64) = (first.get(0), last.get(0));
    let events = rows
        .iter()
        .map(|r| {
            Ok(LoggedEvent {
                seq: to_u64(OP, r.get(0))?,
                destination: r.get(1),
                message_id: r.get(2),
                received_ms: r.get(3),
                changes: Vec::new(),
                ignored_settings: Vec::new(),
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(assemble_events(
        events,
        changes_between(c, first, last).await?,
        ignored_between(c, first, last).await?,
    ))
}

/// The changes of the events `first..=last`, in (seq, part) order.
async fn changes_between(
    c: &Object,
    first: i64,
    last: i64,
) -> Result<Vec<(Seq, LoggedChange)>, StoreError> {
    let stmt = c
        .prepare_cached(
            "SELECT seq, part, list_key, email, user_id, member, time_ms, status, reason,
             next_attempt_ms, updated_ms FROM event_audiences
             WHERE seq BETWEEN $1 AND $2 ORDER BY seq, part",
        )
        .await
        .map_err(pg(OP))?;
    let rows = c.query(&stmt, &[&first, &last]).await.map_err(pg(OP))?;
    rows.iter()
        .map(|r| {
            let status: String = r.get(7);
            Ok((
                to_u64(OP, r.get(0))?,
                LoggedChange {
                    part: small("part", i64::from(r.get::<_, i32>(1)))?,
                    audience_key: r.get(2),
                    identity: identity_of(r.get(3), r.get(4)),
                    member: r.get(5),
                    time_ms: r.get(6),
                    status: status_of(OP, &status)?,
                    reason: r.get(8),
                    next_attempt_ms: r.get(9),
                    updated_ms: r.get(10),
                },
            ))
        })
        .collect()
}

/// The ignored settings of the events `first..=last`, in (seq, setting) order.
async fn ignored_between(
    c: &Object,
    first: i64,
    last: i64,
) -> Result<Vec<(Seq, IgnoredSetting)>, StoreError> {
    let stmt = c
        .prepare_cached(
            "SELECT seq, setting, value, reason FROM ignored_settings
             WHERE seq BETWEEN $1 AND $2 ORDER BY seq, setting COLLATE \"C\"",
        )
        .await
        .map_err(pg(OP))?;
    let rows = c.query(&stmt, &[&first, &last]).await.map_err(pg(OP))?;
    rows.iter()
        .map(|r| {
            let seq: i64 = r.get(0);
            let setting: String = r.get(1);
            let setting = SettingName::parse(&setting).ok_or_else(|| StoreError::Corrupt {
                op: OP,
                message: format!("unknown audience setting {setting:?} of seq {seq}"),
            })?;
            Ok((
                to_u64(OP, seq)?,
                IgnoredSetting {
                    setting,
                    value: r.get(2),
                    reason: r.get(3),
                },
            ))
        })
        .collect()
}
