//! The figures per audience (`audience_counts`), as in the SQLite engine (`crate::sqlite::counts`
//! says what each column holds): maintained by every write from the sums of what it changed,
//! applied last in the transaction, sorted by audience, in one statement; and counted again
//! from every row for checks.

use deadpool_postgres::GenericClient;

use super::{pg, to_u64};
use crate::sqlite::counts::{Deltas, index};
use crate::store::{EventCounts, ListCounts, StatusKind, StoreError};

/// Adds the deltas to the figures: one statement whatever the number of audiences.
pub(super) async fn apply(
    tx: &impl GenericClient,
    op: &'static str,
    deltas: &Deltas,
) -> Result<(), StoreError> {
    let all = deltas.sorted();
    if all.is_empty() {
        return Ok(());
    }
    let n = all.len();
    let (mut dest, mut key) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let mut cols: [Vec<i64>; 4] = Default::default();
    let mut last: Vec<Option<i64>> = Vec::with_capacity(n);
    let mut events: [Vec<i64>; 6] = Default::default();
    for (d, k, delta) in all {
        dest.push(d);
        key.push(k);
        cols[0].push(delta.keys);
        cols[1].push(delta.members);
        cols[2].push(delta.pending);
        cols[3].push(delta.rejected);
        last.push(delta.last_delivery_ms);
        for (i, v) in delta.events.iter().enumerate() {
            events[i].push(*v);
        }
    }
    let stmt = tx
        .prepare_cached(
            "INSERT INTO audience_counts AS c (destination, list_key, keys, members, pending,
             rejected, last_delivery_ms, events_accepted, events_pending, events_delivered,
             events_superseded, events_rejected, events_skipped)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::int8[], $5::int8[],
               $6::int8[], $7::int8[], $8::int8[], $9::int8[], $10::int8[], $11::int8[],
               $12::int8[], $13::int8[])
             ON CONFLICT (destination, list_key) DO UPDATE SET
               keys = c.keys + excluded.keys, members = c.members + excluded.members,
               pending = c.pending + excluded.pending, rejected = c.rejected + excluded.rejected,
               last_delivery_ms = GREATEST(c.last_delivery_ms, excluded.last_delivery_ms),
               events_accepted = c.events_accepted + excluded.events_accepted,
               events_pending = c.events_pending + excluded.events_pending,
               events_delivered = c.events_delivered + excluded.events_delivered,
               events_superseded = c.events_superseded + excluded.events_superseded,
               events_rejected = c.events_rejected + excluded.events_rejected,
               events_skipped = c.events_skipped + excluded.events_skipped",
        )
        .await
        .map_err(pg(op))?;
    tx.execute(
        &stmt,
        &[
            &dest, &key, &cols[0], &cols[1], &cols[2], &cols[3], &last, &events[0], &events[1],
            &events[2], &events[3], &events[4], &events[5],
        ],
    )
    .await
    .map_err(pg(op))?;
    Ok(())
}

/// The oldest pending change's arrival, by one seek on the pending index.
const OLDEST: &str = "(SELECT p.accepted_ms FROM desired p
     WHERE p.destination = c.destination AND p.list_key = c.list_key AND p.state = 'pending'
     ORDER BY p.seq LIMIT 1)";

fn list_row(op: &'static str, r: &tokio_postgres::Row) -> Result<ListCounts, StoreError> {
    Ok(ListCounts {
        audience_key: r.get(0),
        list_id: r.get(1),
        members: to_u64(op, r.get(2))?,
        pending: to_u64(op, r.get(3))?,
        retrying: to_u64(op, r.get(4))?,
        rejected: to_u64(op, r.get(5))?,
        oldest_pending_ms: r.get(6),
        last_delivery_ms: r.get(7),
    })
}

pub(super) async fn list_counts(
    c: &impl GenericClient,
    destination: &str,
) -> Result<Vec<ListCounts>, StoreError> {
    const OP: &str = "list_counts";
    let sql = format!(
        "SELECT c.list_key, l.list_id, c.members, c.pending, c.events_pending, c.rejected,
         {OLDEST}, c.last_delivery_ms
         FROM audience_counts c
         LEFT JOIN lists l ON l.destination = c.destination AND l.audience_key = c.list_key
         WHERE c.destination = $1 AND c.keys > 0
         ORDER BY c.list_key"
    );
    let stmt = c.prepare_cached(&sql).await.map_err(pg(OP))?;
    let rows = c.query(&stmt, &[&destination]).await.map_err(pg(OP))?;
    rows.iter().map(|r| list_row(OP, r)).collect()
}

pub(super) async fn event_counts(
    c: &impl GenericClient,
    destination: &str,
) -> Result<EventCounts, StoreError> {
    const OP: &str = "event_counts";
    let cols: Vec<String> = StatusKind::ALL
        .iter()
        .map(|k| format!("COALESCE(SUM(events_{}), 0)::int8", k.as_str()))
        .collect();
    let sql = format!(
        "SELECT {} FROM audience_counts WHERE destination = $1",
        cols.join(", ")
    );
    let stmt = c.prepare_cached(&sql).await.map_err(pg(OP))?;
    let row = c.query_one(&stmt, &[&destination]).await.map_err(pg(OP))?;
    let mut counts = EventCounts::default();
    for (i, k) in StatusKind::ALL.into_iter().enumerate() {
        counts.add(k, to_u64(OP, row.get(i))?);
    }
    Ok(counts)
}

/// [`list_counts`] and [`event_counts`] from every row of `destination`; a status that is none
/// of [`StatusKind::ALL`] is an error.
pub(super) async fn recount(
    c: &impl GenericClient,
    destination: &str,
) -> Result<(Vec<ListCounts>, EventCounts), StoreError> {
    const OP: &str = "recount";
    let sql = format!(
        "WITH c AS (
           SELECT destination, list_key, COUNT(*) AS keys,
             COUNT(*) FILTER (WHERE ack_member) AS members,
             COUNT(*) FILTER (WHERE state = 'pending') AS pending,
             COUNT(*) FILTER (WHERE state = 'rejected') AS rejected,
             MAX(ack_ms) AS last
           FROM desired WHERE destination = $1 GROUP BY destination, list_key)
         SELECT c.list_key, l.list_id, c.members, c.pending, 0::int8, c.rejected, {OLDEST}, c.last
         FROM c
         LEFT JOIN lists l ON l.destination = c.destination AND l.audience_key = c.list_key
         ORDER BY c.list_key"
    );
    let rows = c.query(&sql, &[&destination]).await.map_err(pg(OP))?;
    let mut lists = rows
        .iter()
        .map(|r| list_row(OP, r))
        .collect::<Result<Vec<_>, _>>()?;
    let per_status: Vec<String> = StatusKind::ALL
        .iter()
        .map(|k| format!("COUNT(*) FILTER (WHERE ea.status = '{}')", k.as_str()))
        .collect();
    let sql = format!(
        "SELECT ea.list_key, {}, COUNT(*)
         FROM event_audiences ea JOIN events e ON e.seq = ea.seq
         WHERE e.destination = $1 GROUP BY ea.list_key",
        per_status.join(", ")
    );
    let rows = c.query(&sql, &[&destination]).await.map_err(pg(OP))?;
    const N: usize = StatusKind::ALL.len();
    let mut events = EventCounts::default();
    for r in rows {
        let key: String = r.get(0);
        let counts: Vec<i64> = (0..N).map(|i| r.get(1 + i)).collect();
        let total: i64 = r.get(1 + N);
        let known: i64 = counts.iter().sum();
        if known != total {
            return Err(StoreError::Corrupt {
                op: OP,
                message: format!(
                    "{} event statuses are none of {:?}",
                    total - known,
                    StatusKind::ALL.map(StatusKind::as_str)
                ),
            });
        }
        for (k, n) in StatusKind::ALL.into_iter().zip(&counts) {
            events.add(k, to_u64(OP, *n)?);
        }
        if let Some(l) = lists.iter_mut().find(|l| l.audience_key == key) {
            l.retrying = to_u64(OP, counts[index(StatusKind::Pending)])?;
        }
    }
    Ok((lists, events))
}
