//! Writing exported rows (`store copy`): each batch in one transaction, a fixed number of
//! statements whatever its size (arrays through `UNNEST`), rows replacing those of the same
//! key; then the figures per audience rebuilt from every row and the arrival sequence moved
//! past every imported one.

use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::error::SqlState;

use super::export::{DESIRED_COLUMNS, table_counts};
use super::{PostgresStore, key_part, pg, to_i64, write_tx};
use crate::store::{
    CopyBatch, DesiredEntry, ListEntry, LoggedEvent, StatusKind, StoreError, StoredState,
    TableCounts,
};

const OP: &str = "import";

impl PostgresStore {
    /// Writes one batch in one transaction (see [`crate::Engine::import`]).
    pub async fn import(&self, batch: CopyBatch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        write_tx!(self, OP, |tx| {
            match &batch {
                CopyBatch::Lists(rows) => import_lists(&tx, rows).await?,
                CopyBatch::DestinationStates(rows) => import_states(&tx, rows).await?,
                CopyBatch::Desired(rows) => import_desired(&tx, rows).await?,
                CopyBatch::Events(rows) => import_events(&tx, rows).await?,
            }
        })
    }

    /// Rebuilds the figures per audience from every row, and moves the arrival sequence past
    /// every seq the rows name (events, desired and acknowledged versions), never back.
    pub async fn finish_import(&self) -> Result<(), StoreError> {
        write_tx!(self, OP, |tx| {
            // Holds of the mass-removal guard are not copied: removals held in the source
            // become due, and the guard decides on them again here.
            tx.execute(
                "UPDATE desired SET next_attempt_ms = 0
                 WHERE state = 'pending' AND next_attempt_ms = $1",
                &[&crate::store::HELD_MS],
            )
            .await
            .map_err(pg(OP))?;
            tx.batch_execute(&refill_counts_sql())
                .await
                .map_err(pg(OP))?;
            tx.batch_execute(
                "SELECT setval('event_seq', GREATEST(m.seq,
                   (SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END
                    FROM event_seq)))
                 FROM (SELECT GREATEST((SELECT MAX(seq) FROM events),
                   (SELECT MAX(GREATEST(seq, COALESCE(ack_seq, 0))) FROM desired)) AS seq) m
                 WHERE m.seq IS NOT NULL AND m.seq > 0",
            )
            .await
            .map_err(pg(OP))?;
        })
    }

    /// Rows per table, counted now.
    pub async fn table_counts(&self) -> Result<TableCounts, StoreError> {
        const OP: &str = "table_counts";
        let c = self.client(OP).await?;
        table_counts(&c, OP).await
    }
}

/// Empties `audience_counts` and fills it from `desired` and the event log.
fn refill_counts_sql() -> String {
    let cols: Vec<String> = StatusKind::ALL
        .iter()
        .map(|k| format!("events_{}", k.as_str()))
        .collect();
    let per_status: Vec<String> = StatusKind::ALL
        .iter()
        .map(|k| format!("COUNT(*) FILTER (WHERE ea.status = '{}')", k.as_str()))
        .collect();
    let set: Vec<String> = cols.iter().map(|c| format!("{c} = EXCLUDED.{c}")).collect();
    format!(
        "DELETE FROM audience_counts;
         INSERT INTO audience_counts (destination, list_key, keys, members, pending, rejected,
           last_delivery_ms)
         SELECT destination, list_key, COUNT(*), COUNT(*) FILTER (WHERE ack_member),
           COUNT(*) FILTER (WHERE state = 'pending'), COUNT(*) FILTER (WHERE state = 'rejected'),
           MAX(ack_ms)
         FROM desired GROUP BY destination, list_key;
         INSERT INTO audience_counts (destination, list_key, {cols})
         SELECT e.destination, ea.list_key, {per_status}
         FROM event_audiences ea JOIN events e ON e.seq = ea.seq
         GROUP BY e.destination, ea.list_key
         ON CONFLICT (destination, list_key) DO UPDATE SET {set};",
        cols = cols.join(", "),
        per_status = per_status.join(", "),
        set = set.join(", ")
    )
}

async fn import_lists(tx: &Transaction<'_>, rows: &[ListEntry]) -> Result<(), StoreError> {
    let dest: Vec<&str> = rows.iter().map(|l| l.destination.as_str()).collect();
    let key: Vec<&str> = rows.iter().map(|l| l.audience_key.as_str()).collect();
    let id: Vec<i64> = rows.iter().map(|l| l.list_id).collect();
    tx.execute(
        "INSERT INTO lists (destination, audience_key, list_id)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[])
         ON CONFLICT (destination, audience_key) DO UPDATE SET list_id = EXCLUDED.list_id",
        &[&dest, &key, &id],
    )
    .await
    .map_err(pg(OP))?;
    Ok(())
}

async fn import_states(tx: &Transaction<'_>, rows: &[StoredState]) -> Result<(), StoreError> {
    let stmt = tx
        .prepare_cached(
            "INSERT INTO destination_state (destination, state, reason, since_ms, updated_ms)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (destination) DO UPDATE SET state = EXCLUDED.state,
             reason = EXCLUDED.reason, since_ms = EXCLUDED.since_ms,
             updated_ms = EXCLUDED.updated_ms",
        )
        .await
        .map_err(pg(OP))?;
    for s in rows {
        tx.execute(
            &stmt,
            &[
                &s.destination,
                &s.state.word(),
                &s.state.reason(),
                &s.state.since_ms(),
                &s.updated_ms,
            ],
        )
        .await
        .map_err(pg(OP))?;
    }
    Ok(())
}

/// The columns of [`DesiredEntry`] rows as arrays, in [`DESIRED_COLUMNS`] order.
struct DesiredArrays<'a> {
    destination: Vec<&'a str>,
    list_key: Vec<&'a str>,
    email: Vec<&'a str>,
    user_id: Vec<&'a str>,
    list_id: Vec<Option<i64>>,
    member: Vec<bool>,
    time_ms: Vec<Option<i64>>,
    seq: Vec<i64>,
    part: Vec<i32>,
    accepted_ms: Vec<i64>,
    data_fields: Vec<Option<&'a str>>,
    update_existing_users_only: Vec<Option<bool>>,
    channel_unsubscribe: Vec<Option<bool>>,
    campaign_id: Vec<Option<i64>>,
    state: Vec<&'static str>,
    reason: Vec<Option<&'a str>>,
    attempts: Vec<i64>,
    next_attempt_ms: Vec<i64>,
    ack_member: Vec<Option<bool>>,
    ack_time_ms: Vec<Option<i64>>,
    ack_seq: Vec<Option<i64>>,
    ack_ms: Vec<Option<i64>>,
    tries: Vec<i64>,
}

fn part_of(part: u32) -> Result<i32, StoreError> {
    i32::try_from(part).map_err(|_| StoreError::Invalid {
        op: OP,
        message: format!("part {part} is out of range"),
    })
}

impl<'a> DesiredArrays<'a> {
    fn of(rows: &'a [DesiredEntry]) -> Result<Self, StoreError> {
        let ack = |d: &DesiredEntry| d.acknowledged;
        Ok(Self {
            destination: rows.iter().map(|d| d.destination.as_str()).collect(),
            list_key: rows.iter().map(|d| d.audience_key.as_str()).collect(),
            email: rows.iter().map(|d| key_part(&d.identity.email)).collect(),
            user_id: rows.iter().map(|d| key_part(&d.identity.user_id)).collect(),
            list_id: rows.iter().map(|d| d.list_id).collect(),
            member: rows.iter().map(|d| d.member).collect(),
            time_ms: rows.iter().map(|d| d.version.time_ms).collect(),
            seq: rows
                .iter()
                .map(|d| to_i64(OP, d.version.seq))
                .collect::<Result<_, _>>()?,
            part: rows
                .iter()
                .map(|d| part_of(d.part))
                .collect::<Result<_, _>>()?,
            accepted_ms: rows.iter().map(|d| d.accepted_ms).collect(),
            data_fields: rows.iter().map(|d| d.data_fields.as_deref()).collect(),
            update_existing_users_only: rows
                .iter()
                .map(|d| d.settings.update_existing_users_only)
                .collect(),
            channel_unsubscribe: rows
                .iter()
                .map(|d| d.settings.channel_unsubscribe)
                .collect(),
            campaign_id: rows.iter().map(|d| d.settings.campaign_id).collect(),
            state: rows.iter().map(|d| d.state.as_str()).collect(),
            reason: rows.iter().map(|d| d.reason.as_deref()).collect(),
            attempts: rows.iter().map(|d| i64::from(d.attempts)).collect(),
            next_attempt_ms: rows.iter().map(|d| d.next_attempt_ms).collect(),
            ack_member: rows.iter().map(|d| ack(d).map(|a| a.member)).collect(),
            ack_time_ms: rows
                .iter()
                .map(|d| ack(d).and_then(|a| a.version.time_ms))
                .collect(),
            ack_seq: rows
                .iter()
                .map(|d| ack(d).map(|a| to_i64(OP, a.version.seq)).transpose())
                .collect::<Result<_, _>>()?,
            ack_ms: rows.iter().map(|d| ack(d).map(|a| a.at_ms)).collect(),
            tries: rows.iter().map(|d| i64::from(d.tries)).collect(),
        })
    }
}

async fn import_desired(tx: &Transaction<'_>, rows: &[DesiredEntry]) -> Result<(), StoreError> {
    let a = DesiredArrays::of(rows)?;
    let cols: Vec<&str> = DESIRED_COLUMNS.split(',').map(str::trim).collect();
    let types = [
        "text", "text", "text", "text", "int8", "bool", "int8", "int8", "int4", "int8", "text",
        "bool", "bool", "int8", "text", "text", "int8", "int8", "bool", "int8", "int8", "int8",
        "int8",
    ];
    let arrays: Vec<String> = types
        .iter()
        .enumerate()
        .map(|(i, t)| format!("${}::{t}[]", i + 1))
        .collect();
    let key = ["destination", "list_key", "email", "user_id"];
    let set: Vec<String> = cols
        .iter()
        .filter(|c| !key.contains(c))
        .map(|c| format!("{c} = EXCLUDED.{c}"))
        .collect();
    let sql = format!(
        "INSERT INTO desired ({DESIRED_COLUMNS}) SELECT * FROM UNNEST({})
         ON CONFLICT (destination, list_key, email, user_id) DO UPDATE SET {}",
        arrays.join(", "),
        set.join(", ")
    );
    let stmt = tx.prepare_cached(&sql).await.map_err(pg(OP))?;
    tx.execute(
        &stmt,
        &[
            &a.destination,
            &a.list_key,
            &a.email,
            &a.user_id,
            &a.list_id,
            &a.member,
            &a.time_ms,
            &a.seq,
            &a.part,
            &a.accepted_ms,
            &a.data_fields,
            &a.update_existing_users_only,
            &a.channel_unsubscribe,
            &a.campaign_id,
            &a.state,
            &a.reason,
            &a.attempts,
            &a.next_attempt_ms,
            &a.ack_member,
            &a.ack_time_ms,
            &a.ack_seq,
            &a.ack_ms,
            &a.tries,
        ],
    )
    .await
    .map_err(pg(OP))?;
    Ok(())
}

/// The error of an event that collides with another one of the target.
fn collision(e: &LoggedEvent) -> StoreError {
    StoreError::Invalid {
        op: OP,
        message: format!(
            "the event {:?} of destination {:?} (seq {}) collides with another event of the \
             target (the same messageId under another sequence number, or another event under \
             this one): the target holds events of another store; copy into an empty one",
            e.message_id, e.destination, e.seq
        ),
    }
}

async fn import_events(tx: &Transaction<'_>, rows: &[LoggedEvent]) -> Result<(), StoreError> {
    let seq: Vec<i64> = rows
        .iter()
        .map(|e| to_i64(OP, e.seq))
        .collect::<Result<_, _>>()?;
    let dest: Vec<&str> = rows.iter().map(|e| e.destination.as_str()).collect();
    let msg: Vec<&str> = rows.iter().map(|e| e.message_id.as_str()).collect();
    let recv: Vec<i64> = rows.iter().map(|e| e.received_ms).collect();
    // A messageId stored under another seq: the first such event is named.
    let elsewhere = tx
        .query_opt(
            "SELECT u.i FROM UNNEST($1::int8[], $2::text[], $3::text[]) WITH ORDINALITY
               AS u(seq, d, m, i)
             JOIN events e ON e.destination = u.d AND e.message_id = u.m AND e.seq <> u.seq
             ORDER BY u.i LIMIT 1",
            &[&seq, &dest, &msg],
        )
        .await
        .map_err(pg(OP))?;
    if let Some(r) = elsewhere {
        let i = usize::try_from(r.get::<_, i64>(0) - 1).unwrap_or(0);
        return Err(collision(&rows[i.min(rows.len() - 1)]));
    }
    // An event already there under its seq is kept only if it is the same event.
    let written = tx
        .query(
            "INSERT INTO events (seq, destination, message_id, received_ms)
             SELECT * FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::int8[])
             ON CONFLICT (seq) DO UPDATE SET received_ms = EXCLUDED.received_ms
             WHERE events.destination = EXCLUDED.destination
               AND events.message_id = EXCLUDED.message_id
             RETURNING seq",
            &[&seq, &dest, &msg, &recv],
        )
        .await;
    let written = match written {
        Ok(rows) => rows,
        // Written meanwhile by someone else.
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            return Err(collision(&rows[0]));
        }
        Err(e) => return Err(pg(OP)(e)),
    };
    if written.len() != rows.len() {
        let kept: std::collections::HashSet<i64> = written.iter().map(|r| r.get(0)).collect();
        let first = rows
            .iter()
            .zip(&seq)
            .find(|(_, s)| !kept.contains(s))
            .map_or(&rows[0], |(e, _)| e);
        return Err(collision(first));
    }
    tx.execute("DELETE FROM event_audiences WHERE seq = ANY($1)", &[&seq])
        .await
        .map_err(pg(OP))?;
    tx.execute("DELETE FROM ignored_settings WHERE seq = ANY($1)", &[&seq])
        .await
        .map_err(pg(OP))?;
    import_changes(tx, rows).await?;
    import_ignored(tx, rows).await
}

async fn import_changes(tx: &Transaction<'_>, rows: &[LoggedEvent]) -> Result<(), StoreError> {
    let all = rows
        .iter()
        .flat_map(|e| e.changes.iter().map(move |c| (e.seq, c)));
    let n = rows.iter().map(|e| e.changes.len()).sum();
    let mut seq = Vec::with_capacity(n);
    let mut part = Vec::with_capacity(n);
    let (mut key, mut email, mut user) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut member, mut time, mut status, mut reason, mut next, mut updated) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for (s, c) in all {
        seq.push(to_i64(OP, s)?);
        part.push(part_of(c.part)?);
        key.push(c.audience_key.as_str());
        email.push(key_part(&c.identity.email));
        user.push(key_part(&c.identity.user_id));
        member.push(c.member);
        time.push(c.time_ms);
        status.push(c.status.as_str());
        reason.push(c.reason.as_deref());
        next.push(c.next_attempt_ms);
        updated.push(c.updated_ms);
    }
    if seq.is_empty() {
        return Ok(());
    }
    tx.execute(
        "INSERT INTO event_audiences (seq, part, list_key, email, user_id, member, time_ms,
           status, reason, next_attempt_ms, updated_ms)
         SELECT * FROM UNNEST($1::int8[], $2::int4[], $3::text[], $4::text[], $5::text[],
           $6::bool[], $7::int8[], $8::text[], $9::text[], $10::int8[], $11::int8[])",
        &[
            &seq, &part, &key, &email, &user, &member, &time, &status, &reason, &next, &updated,
        ],
    )
    .await
    .map_err(pg(OP))?;
    Ok(())
}

async fn import_ignored(tx: &Transaction<'_>, rows: &[LoggedEvent]) -> Result<(), StoreError> {
    let mut seq = Vec::new();
    let (mut setting, mut value, mut reason) = (Vec::new(), Vec::new(), Vec::new());
    for e in rows {
        for i in &e.ignored_settings {
            seq.push(to_i64(OP, e.seq)?);
            setting.push(i.setting.as_str());
            value.push(i.value.as_str());
            reason.push(i.reason.as_str());
        }
    }
    if seq.is_empty() {
        return Ok(());
    }
    tx.execute(
        "INSERT INTO ignored_settings (seq, setting, value, reason)
         SELECT * FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::text[])",
        &[&seq, &setting, &value, &reason],
    )
    .await
    .map_err(pg(OP))?;
    Ok(())
}
