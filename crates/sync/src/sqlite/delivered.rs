//! Deliveries not written to the event's row (schema 9): the direct settle (`settle_direct`)
//! records a delivery in the key's desired row alone, and the event's row keeps the status it
//! had (`accepted`, or `pending` after a failed try) while the key's desired row points at it,
//! delivered. That saves one row write per delivered event, less the read of the row's status
//! the event figures need (the benchmark's part (c): about 6% of the service's instructions).
//!
//! So an event's row in `accepted` or `pending` status whose key's desired row is `delivered`
//! at the row's seq and part was delivered, at the desired row's `ack_ms`
//! ([`unwritten_delivery`]): every reader of statuses reads it that way. Before the desired
//! row leaves that state or its `ack_ms` changes (a newer change of the key replaces it, a
//! snapshot, drift repair or a recreated list sets it pending again or forgets its
//! acknowledgement, a late delivery of an older version is acknowledged, an import replaces
//! it), the delivery is written to the event's row ([`WRITE_AT`], [`write_key`],
//! [`write_matching`]), so that the rule never needs more than the key's current desired row.

use rusqlite::{Connection, OptionalExtension, ToSql, params};

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

/// The shown status, reason, next attempt and time of an event's row, from a row source with
/// its `status`, `reason`, `next_attempt_ms`, `updated_ms` and its [`unwritten_delivery`] as
/// `delivered_ms`: a kept delivery shows as written.
pub(super) const SHOWN_COLUMNS: &str = "CASE WHEN delivered_ms IS NULL THEN status
     ELSE 'delivered' END, CASE WHEN delivered_ms IS NULL THEN reason END,
     CASE WHEN delivered_ms IS NULL THEN next_attempt_ms END,
     COALESCE(delivered_ms, updated_ms)";

/// The destination of the event's row `ea`, for [`unwritten_delivery`] where no `events` row
/// is joined.
pub(super) const ROW_DESTINATION: &str =
    "(SELECT e.destination FROM events e WHERE e.seq = ea.seq)";

/// The delivery of a key's desired version (`?1` seq, `?2` part), delivered at `?3`
/// (`ack_ms`), written to its event's row if it was not. Run while the key's desired row is
/// still delivered at that version.
pub(super) const WRITE_AT: &str = "UPDATE event_audiences SET status = 'delivered',
     reason = NULL, next_attempt_ms = NULL, updated_ms = COALESCE(?3, updated_ms)
     WHERE seq = ?1 AND part = ?2 AND status IN ('accepted', 'pending')";

/// [`WRITE_AT`] for a key whose desired row (read before) was delivered at (`seq`, `part`).
pub(super) fn write_key(
    tx: &Connection,
    seq: i64,
    part: i64,
    ack_ms: Option<i64>,
) -> rusqlite::Result<usize> {
    tx.prepare_cached(WRITE_AT)?
        .execute(params![seq, part, ack_ms])
}

/// [`WRITE_AT`] for every delivered desired row (aliased `d`) that `scope` (an SQL condition
/// on `d`, with parameters `args` numbered from 1) selects: for many keys at once (a
/// snapshot, a recreated list). The statement is cached by its scope.
pub(super) fn write_matching(
    tx: &Connection,
    scope: &str,
    args: &[&dyn ToSql],
) -> rusqlite::Result<usize> {
    tx.prepare_cached(&format!(
        "UPDATE main.event_audiences AS ea SET status = 'delivered', reason = NULL,
             next_attempt_ms = NULL, updated_ms = COALESCE(d.ack_ms, ea.updated_ms)
             FROM main.desired AS d
             WHERE ({scope}) AND d.state = 'delivered' AND ea.seq = d.seq AND ea.part = d.part
               AND ea.list_key = d.list_key AND ea.email = d.email AND ea.user_id = d.user_id
               AND ea.status IN ('accepted', 'pending')"
    ))?
    .execute(args)
}

/// [`write_key`] for one key, its desired row read here: a search of the key's index, and a
/// write only when the key is delivered (an import over a non-empty target, drift repair).
pub(super) fn write_for_key(
    tx: &Connection,
    destination: &str,
    list_key: &str,
    email: &str,
    user_id: &str,
) -> rusqlite::Result<usize> {
    let found: Option<(i64, i64, Option<i64>)> = tx
        .prepare_cached(
            "SELECT seq, part, ack_ms FROM desired
             WHERE destination = ?1 AND list_key = ?2 AND email = ?3 AND user_id = ?4
               AND state = 'delivered'",
        )?
        .query_row(params![destination, list_key, email, user_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    match found {
        Some((seq, part, ack_ms)) => write_key(tx, seq, part, ack_ms),
        None => Ok(0),
    }
}
