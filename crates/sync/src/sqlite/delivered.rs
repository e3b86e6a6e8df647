//! Deliveries not written to the event's row (schema 9): the direct settle (`settle_direct`)
//! records a delivery in the key's desired row alone, and the event's row keeps the status it
//! had (`accepted`, or `pending` after a failed try) while the key's desired row points at it,
//! delivered. That saves one row write per delivered event (the benchmark's part (c): about
//! 8% of the service's instructions).
//!
//! So an event's row in `accepted` or `pending` status whose key's desired row is `delivered`
//! at the row's seq and part was delivered, at the desired row's `ack_ms`
//! ([`unwritten_delivery`]): every reader of statuses reads it that way. Before the desired
//! row leaves that state (a newer change of the key replaces it, drift repair or a recreated
//! list sets it pending again), the delivery is written to the event's row
//! ([`write_key`], [`write_matching`]), so that the rule never needs more than the key's
//! current desired row.

use rusqlite::{Connection, ToSql, params};

/// An expression, for the event's row aliased `ea` of destination `dest` (an SQL
/// expression): the time of its delivery when that delivery was not written to the row (see
/// the module doc), else NULL.
pub(super) fn unwritten_delivery(dest: &str) -> String {
    format!(
        "(SELECT COALESCE(d.ack_ms, ea.updated_ms) FROM desired d
          WHERE ea.status IN ('accepted', 'pending') AND d.destination = {dest}
            AND d.list_key = ea.list_key AND d.email = ea.email AND d.user_id = ea.user_id
            AND d.seq = ea.seq AND d.part = ea.part AND d.state = 'delivered')"
    )
}

/// Writes the delivery of the key's desired version (`seq`, `part`), delivered at `ack_ms`,
/// to its event's row if it was not: before the key's desired row leaves `delivered`.
pub(super) fn write_key(
    tx: &Connection,
    seq: i64,
    part: i64,
    ack_ms: Option<i64>,
) -> rusqlite::Result<usize> {
    tx.prepare_cached(
        "UPDATE event_audiences SET status = 'delivered', reason = NULL,
         next_attempt_ms = NULL, updated_ms = COALESCE(?3, updated_ms)
         WHERE seq = ?1 AND part = ?2 AND status IN ('accepted', 'pending')",
    )?
    .execute(params![seq, part, ack_ms])
}

/// [`write_key`] for every delivered desired row (aliased `d`) that `scope` (an SQL condition
/// on `d`, with parameters `args` numbered from 1) selects.
pub(super) fn write_matching(
    tx: &Connection,
    scope: &str,
    args: &[&dyn ToSql],
) -> rusqlite::Result<usize> {
    tx.execute(
        &format!(
            "UPDATE main.event_audiences AS ea SET status = 'delivered', reason = NULL,
             next_attempt_ms = NULL, updated_ms = COALESCE(d.ack_ms, ea.updated_ms)
             FROM main.desired AS d
             WHERE ({scope}) AND d.state = 'delivered' AND ea.seq = d.seq AND ea.part = d.part
               AND ea.list_key = d.list_key AND ea.email = d.email AND ea.user_id = d.user_id
               AND ea.status IN ('accepted', 'pending')"
        ),
        args,
    )
}
