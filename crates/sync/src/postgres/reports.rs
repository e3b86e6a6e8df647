//! What the admin endpoints and commands read: an event's story and the figures.

use deadpool_postgres::GenericClient;
use destination::{IgnoredSetting, SettingName};

use super::{PostgresStore, counts, identity_of, pg, status_of, to_u64};
use crate::store::{
    AudienceStatus, EVENT_AUDIENCES_READ, EVENT_AUDIENCES_SHOWN, EventCounts, EventRecord,
    ListCounts, StoreError,
};

impl PostgresStore {
    pub async fn event_status(
        &self,
        destination: &str,
        message_id: &str,
    ) -> Result<Option<EventRecord>, StoreError> {
        const OP: &str = "event_status";
        let client = self.client(OP).await?;
        let found = client
            .query_opt(
                "SELECT seq, received_ms FROM events WHERE destination = $1 AND message_id = $2",
                &[&destination, &message_id],
            )
            .await
            .map_err(pg(OP))?;
        let Some(found) = found else {
            return Ok(None);
        };
        let (seq, received_ms): (i64, i64) = (found.get(0), found.get(1));
        let stmt = client
            .prepare_cached(
                "SELECT ea.list_key, ea.email, ea.user_id, ea.member, ea.time_ms, ea.status,
                 ea.reason, ea.next_attempt_ms, ea.updated_ms,
                 (SELECT d.tries FROM desired d WHERE d.destination = $2
                    AND d.list_key = ea.list_key AND d.email = ea.email
                    AND d.user_id = ea.user_id AND d.seq = ea.seq AND d.part = ea.part)
                 FROM event_audiences ea WHERE ea.seq = $1 ORDER BY ea.part LIMIT $3",
            )
            .await
            .map_err(pg(OP))?;
        let rows = client
            .query(&stmt, &[&seq, &destination, &EVENT_AUDIENCES_READ])
            .await
            .map_err(pg(OP))?;
        let more_audiences = rows.len() > EVENT_AUDIENCES_SHOWN;
        let mut audiences = Vec::with_capacity(rows.len());
        for r in rows.iter().take(EVENT_AUDIENCES_SHOWN) {
            let status: String = r.get(5);
            let tries: Option<i64> = r.get(9);
            let tries = tries.unwrap_or(0);
            audiences.push(AudienceStatus {
                audience_key: r.get(0),
                identity: identity_of(r.get(1), r.get(2)),
                member: r.get(3),
                time_ms: r.get(4),
                status: status_of(OP, &status)?,
                reason: r.get(6),
                next_attempt_ms: r.get(7),
                attempts: u32::try_from(tries).map_err(|_| StoreError::Corrupt {
                    op: OP,
                    message: format!("attempts {tries} out of range"),
                })?,
                updated_ms: r.get(8),
            });
        }
        let rows = client
            .query(
                "SELECT setting, value, reason FROM ignored_settings WHERE seq = $1
                 ORDER BY setting",
                &[&seq],
            )
            .await
            .map_err(pg(OP))?;
        let mut ignored_settings = Vec::with_capacity(rows.len());
        for r in rows {
            let setting: String = r.get(0);
            let setting = SettingName::parse(&setting).ok_or_else(|| StoreError::Corrupt {
                op: OP,
                message: format!("unknown audience setting {setting:?} of seq {seq}"),
            })?;
            ignored_settings.push(IgnoredSetting {
                setting,
                value: r.get(1),
                reason: r.get(2),
            });
        }
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

    pub async fn list_counts(&self, destination: &str) -> Result<Vec<ListCounts>, StoreError> {
        let client = self.client("list_counts").await?;
        counts::list_counts(&client, destination).await
    }

    pub async fn event_counts(&self, destination: &str) -> Result<EventCounts, StoreError> {
        let client = self.client("event_counts").await?;
        counts::event_counts(&client, destination).await
    }

    pub async fn recount(
        &self,
        destination: &str,
    ) -> Result<(Vec<ListCounts>, EventCounts), StoreError> {
        let client = self.client("recount").await?;
        counts::recount(&client, destination).await
    }
}
