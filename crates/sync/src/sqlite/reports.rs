//! What the admin endpoints and commands read: an event's story (its status in every
//! audience, with the ignored settings it carried) and the figures per audience and status.

use destination::{IgnoredSetting, SettingName};
use rusqlite::{Connection, OptionalExtension, params};

use super::delivered::{SHOWN_COLUMNS, unwritten_delivery};
use super::{SqliteStore, counts, engine, identity_of, status_of, to_u64};
use crate::store::{
    AudienceStatus, EVENT_AUDIENCES_READ, EVENT_AUDIENCES_SHOWN, EventCounts, EventRecord,
    ListCounts, StatusKind, StoreError,
};

impl SqliteStore {
    pub fn event_status(
        &self,
        destination: &str,
        message_id: &str,
    ) -> Result<Option<EventRecord>, StoreError> {
        const OP: &str = "event_status";
        let conn = self.lock();
        let found: Option<(i64, i64)> = conn
            .query_row(
                "SELECT seq, received_ms FROM events WHERE destination = ?1 AND message_id = ?2",
                params![destination, message_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(engine(OP))?;
        let Some((seq, received_ms)) = found else {
            return Ok(None);
        };
        // A delivery not written to the row (see `delivered`) is shown as written.
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT list_key, email, user_id, member, time_ms, {SHOWN_COLUMNS}, tries
                 FROM (SELECT ea.*, {delivered} AS delivered_ms,
                   (SELECT d.tries FROM desired d WHERE d.destination = ?2
                      AND d.list_key = ea.list_key AND d.email = ea.email
                      AND d.user_id = ea.user_id AND d.seq = ea.seq AND d.part = ea.part)
                     AS tries
                   FROM event_audiences ea WHERE ea.seq = ?1 ORDER BY ea.part LIMIT ?3)
                 ORDER BY part",
                delivered = unwritten_delivery("?2")
            ))
            .map_err(engine(OP))?;
        // The status as stored, parsed below.
        let raw = stmt
            .query_map(params![seq, destination, EVENT_AUDIENCES_READ], |r| {
                let status: String = r.get(5)?;
                let tries: Option<i64> = r.get(9)?;
                Ok((
                    AudienceStatus {
                        audience_key: r.get(0)?,
                        identity: identity_of(r.get(1)?, r.get(2)?),
                        member: r.get(3)?,
                        time_ms: r.get(4)?,
                        status: StatusKind::Accepted,
                        reason: r.get(6)?,
                        next_attempt_ms: r.get(7)?,
                        attempts: 0,
                        updated_ms: r.get(8)?,
                    },
                    status,
                    tries.unwrap_or(0),
                ))
            })
            .map_err(engine(OP))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(engine(OP))?;
        let more_audiences = raw.len() > EVENT_AUDIENCES_SHOWN;
        let audiences = raw
            .into_iter()
            .take(EVENT_AUDIENCES_SHOWN)
            .map(|(mut a, status, tries)| {
                a.status = status_of(OP, &status)?;
                a.attempts = u32::try_from(tries).map_err(|_| StoreError::Corrupt {
                    op: OP,
                    message: format!("attempts {tries} out of range"),
                })?;
                Ok(a)
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let ignored_settings = Self::ignored_settings(&conn, seq)?;
        Ok(Some(EventRecord {
            seq: to_u64(OP, seq)?,
            destination: destination.to_string(),
            message_id: message_id.to_string(),
            received_ms,
            audiences,
            more_audiences,
            ignored_settings,
        }))
    }

    pub fn list_counts(&self, destination: &str) -> Result<Vec<ListCounts>, StoreError> {
        counts::list_counts(&self.lock(), destination)
    }

    pub fn event_counts(&self, destination: &str) -> Result<EventCounts, StoreError> {
        counts::event_counts(&self.lock(), destination)
    }

    pub fn recount(&self, destination: &str) -> Result<(Vec<ListCounts>, EventCounts), StoreError> {
        counts::recount(&self.lock(), destination)
    }
}

impl SqliteStore {
    /// The ignored audience settings logged with event `seq`.
    fn ignored_settings(conn: &Connection, seq: i64) -> Result<Vec<IgnoredSetting>, StoreError> {
        const OP: &str = "event_status";
        let mut stmt = conn
            .prepare_cached(
                "SELECT setting, value, reason FROM ignored_settings WHERE seq = ?1
                 ORDER BY setting",
            )
            .map_err(engine(OP))?;
        let raw = stmt
            .query_map([seq], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(engine(OP))?
            .collect::<Result<Vec<(String, String, String)>, _>>()
            .map_err(engine(OP))?;
        raw.into_iter()
            .map(|(setting, value, reason)| {
                let setting = SettingName::parse(&setting).ok_or_else(|| StoreError::Corrupt {
                    op: OP,
                    message: format!("unknown audience setting {setting:?} of seq {seq}"),
                })?;
                Ok(IgnoredSetting {
                    setting,
                    value,
                    reason,
                })
            })
            .collect()
    }
}
