//! The figures of `/metrics`, `/v1/status` and `iterable-lists status`, maintained as rows
//! change instead of counted on each read.
//!
//! One row of `audience_counts` per (destination, audience): the keys of `desired` (all of
//! them, members acknowledged, pending, rejected), the last delivery, and the event log's rows
//! per status. A write sums what it changes per audience in memory ([`Deltas`]) and applies the
//! sums in one statement per audience it touched, in its own transaction; so reading the
//! figures costs one row per audience, whatever the number of users. The audience `""` holds
//! the events that named no audience. `retrying` is the number of the audience's events in
//! `pending` (one per key at most: only a key's latest change can be pending). An event's row
//! counts with the status it shows: a row still `accepted` or `pending` whose delivery is kept
//! with its key's desired row counts as delivered (see `delivered`).
//!
//! [`recount`] computes the same figures from every row: the migration to schema version 3
//! fills the table with it, and tests compare the two.

use hashbrown::HashMap;
use std::sync::LazyLock;

use rusqlite::{Connection, params};

use super::delivered::unwritten_delivery;
use super::{engine, to_u64};
use crate::store::{EventCounts, ListCounts, StatusKind, StoreError};

/// The table and its key. The event columns follow [`StatusKind::ALL`].
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audience_counts (
    destination TEXT NOT NULL,
    list_key TEXT NOT NULL,
    keys INTEGER NOT NULL DEFAULT 0,
    members INTEGER NOT NULL DEFAULT 0,
    pending INTEGER NOT NULL DEFAULT 0,
    rejected INTEGER NOT NULL DEFAULT 0,
    last_delivery_ms INTEGER,
    events_accepted INTEGER NOT NULL DEFAULT 0,
    events_pending INTEGER NOT NULL DEFAULT 0,
    events_delivered INTEGER NOT NULL DEFAULT 0,
    events_superseded INTEGER NOT NULL DEFAULT 0,
    events_rejected INTEGER NOT NULL DEFAULT 0,
    events_skipped INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (destination, list_key)
) WITHOUT ROWID;
";

/// `events_accepted, events_pending, ...` in [`StatusKind::ALL`] order.
fn event_columns() -> Vec<String> {
    StatusKind::ALL
        .iter()
        .map(|k| format!("events_{}", k.as_str()))
        .collect()
}

/// What one write changes in one audience's figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Delta {
    pub keys: i64,
    pub members: i64,
    pub pending: i64,
    pub rejected: i64,
    pub last_delivery_ms: Option<i64>,
    /// Per status, in [`StatusKind::ALL`] order.
    pub events: [i64; StatusKind::ALL.len()],
}

pub(crate) fn index(k: StatusKind) -> usize {
    StatusKind::ALL
        .iter()
        .position(|x| *x == k)
        .unwrap_or_default()
}

impl Delta {
    /// One more (or fewer, `n < 0`) event in status `k`.
    pub fn event(&mut self, k: StatusKind, n: i64) {
        self.events[index(k)] += n;
    }

    /// An event moved from status `from` to `to`.
    pub fn event_moved(&mut self, from: StatusKind, to: StatusKind) {
        if from != to {
            self.event(from, -1);
            self.event(to, 1);
        }
    }

    /// A key's `desired.state` moved from `from` to `to` (`pending`, `delivered`, `rejected`,
    /// `superseded`).
    pub fn state_moved(&mut self, from: &str, to: &str) {
        if from == to {
            return;
        }
        for (state, n) in [(from, -1), (to, 1)] {
            match state {
                "pending" => self.pending += n,
                "rejected" => self.rejected += n,
                _ => {}
            }
        }
    }

    /// A key's acknowledged membership moved from `from` to `to`.
    pub fn ack_moved(&mut self, from: Option<bool>, to: bool) {
        self.members += i64::from(to) - i64::from(from == Some(true));
    }

    /// Iterable acknowledged a change at `ms`.
    pub fn delivered_at(&mut self, ms: i64) {
        self.last_delivery_ms = Some(self.last_delivery_ms.map_or(ms, |l| l.max(ms)));
    }

    pub fn is_zero(&self) -> bool {
        *self == Delta::default()
    }
}

/// The deltas of one write, per destination and audience. Looking up a known audience
/// allocates nothing, and hashes each name once with hashbrown's default (foldhash), not
/// SipHash: every accepted change looks its audience up (SQLite's outcomes use one `Delta` per
/// call; the PostgreSQL engine's writes use `Deltas` too).
#[derive(Debug, Default)]
pub(crate) struct Deltas(HashMap<String, HashMap<String, Delta>>);

static UPSERT: LazyLock<String> = LazyLock::new(|| {
    let events = event_columns();
    let sums: Vec<String> = ["keys", "members", "pending", "rejected"]
        .iter()
        .map(|c| c.to_string())
        .chain(events.iter().cloned())
        .map(|c| format!("{c} = {c} + excluded.{c}"))
        .collect();
    let params: Vec<String> = (1..=7 + events.len()).map(|i| format!("?{i}")).collect();
    format!(
        "INSERT INTO audience_counts (destination, list_key, keys, members, pending, rejected,
         last_delivery_ms, {}) VALUES ({})
         ON CONFLICT (destination, list_key) DO UPDATE SET {},
         last_delivery_ms = COALESCE(MAX(last_delivery_ms, excluded.last_delivery_ms),
                                     last_delivery_ms, excluded.last_delivery_ms)",
        events.join(", "),
        params.join(", "),
        sums.join(", ")
    )
});

/// Adds `d` to the figures of one audience (one statement).
pub(super) fn apply(
    tx: &Connection,
    op: &'static str,
    destination: &str,
    list_key: &str,
    d: &Delta,
) -> Result<(), StoreError> {
    if d.is_zero() {
        return Ok(());
    }
    let mut stmt = tx.prepare_cached(&UPSERT).map_err(engine(op))?;
    let [e0, e1, e2, e3, e4, e5] = d.events;
    stmt.execute(params![
        destination,
        list_key,
        d.keys,
        d.members,
        d.pending,
        d.rejected,
        d.last_delivery_ms,
        e0,
        e1,
        e2,
        e3,
        e4,
        e5
    ])
    .map(|_| ())
    .map_err(engine(op))
}

impl Deltas {
    /// The delta of one audience, created empty on first use.
    pub fn of(&mut self, destination: &str, list_key: &str) -> &mut Delta {
        self.0
            .entry_ref(destination)
            .or_default()
            .entry_ref(list_key)
            .or_default()
    }

    /// Every non-zero delta, by (destination, audience), sorted (the PostgreSQL engine
    /// applies them in this order, so that two writers lock the figures in one order).
    pub fn sorted(&self) -> Vec<(&str, &str, &Delta)> {
        let mut all: Vec<(&str, &str, &Delta)> = self
            .0
            .iter()
            .flat_map(|(dest, per)| per.iter().map(move |(k, d)| (dest.as_str(), k.as_str(), d)))
            .filter(|(_, _, d)| !d.is_zero())
            .collect();
        all.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        all
    }

    /// Applies every delta: one statement per audience.
    pub fn apply(&self, tx: &Connection, op: &'static str) -> Result<(), StoreError> {
        for (destination, per) in &self.0 {
            for (list_key, d) in per {
                apply(tx, op, destination, list_key, d)?;
            }
        }
        Ok(())
    }
}

/// The oldest pending change's arrival (of the first to arrive, by seq), by one seek on the
/// pending index; not maintained, as it would need an ordered structure of its own.
const OLDEST: &str = "(SELECT accepted_ms FROM desired INDEXED BY desired_pending
     WHERE destination = c.destination AND list_key = c.list_key AND state = 'pending'
     ORDER BY seq LIMIT 1)";

/// The audiences of `destination` that have keys, with their figures: one row each.
pub(super) fn list_counts(
    conn: &Connection,
    destination: &str,
) -> Result<Vec<ListCounts>, StoreError> {
    const OP: &str = "list_counts";
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "SELECT c.list_key, l.list_id, c.members, c.pending, c.events_pending, c.rejected,
             {OLDEST}, c.last_delivery_ms
             FROM audience_counts c
             LEFT JOIN lists l ON l.destination = c.destination AND l.audience_key = c.list_key
             WHERE c.destination = ?1 AND c.keys > 0
             ORDER BY c.list_key"
        )
    });
    let mut stmt = conn.prepare_cached(&SQL).map_err(engine(OP))?;
    let rows = stmt
        .query_map([destination], raw_list_counts)
        .map_err(engine(OP))?
        .collect::<Result<Vec<RawListCounts>, _>>()
        .map_err(engine(OP))?;
    rows.into_iter().map(|r| r.into_counts(OP)).collect()
}

/// The event log's figures of `destination`: one row per audience.
pub(super) fn event_counts(
    conn: &Connection,
    destination: &str,
) -> Result<EventCounts, StoreError> {
    const OP: &str = "event_counts";
    static SQL: LazyLock<String> = LazyLock::new(|| {
        let sums: Vec<String> = event_columns()
            .iter()
            .map(|c| format!("COALESCE(SUM({c}), 0)"))
            .collect();
        format!(
            "SELECT {} FROM audience_counts WHERE destination = ?1",
            sums.join(", ")
        )
    });
    let mut stmt = conn.prepare_cached(&SQL).map_err(engine(OP))?;
    let raw: [i64; StatusKind::ALL.len()] = stmt
        .query_row([destination], |r| {
            let mut counts = [0; StatusKind::ALL.len()];
            for (i, n) in counts.iter_mut().enumerate() {
                *n = r.get(i)?;
            }
            Ok(counts)
        })
        .map_err(engine(OP))?;
    let mut counts = EventCounts::default();
    for (k, n) in StatusKind::ALL.into_iter().zip(raw) {
        counts.add(k, to_u64(OP, n)?);
    }
    Ok(counts)
}

type RawListCounts = (
    String,
    Option<i64>,
    i64,
    i64,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
);

fn raw_list_counts(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawListCounts> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
    ))
}

trait IntoCounts {
    fn into_counts(self, op: &'static str) -> Result<ListCounts, StoreError>;
}

impl IntoCounts for RawListCounts {
    fn into_counts(self, op: &'static str) -> Result<ListCounts, StoreError> {
        let (audience_key, list_id, members, pending, retrying, rejected, oldest, last) = self;
        Ok(ListCounts {
            audience_key,
            list_id,
            members: to_u64(op, members)?,
            pending: to_u64(op, pending)?,
            retrying: to_u64(op, retrying)?,
            rejected: to_u64(op, rejected)?,
            oldest_pending_ms: oldest,
            last_delivery_ms: last,
        })
    }
}

/// The figures of `desired`, per (destination, audience), from every row.
const DESIRED_FIGURES: &str = "SELECT destination, list_key, COUNT(*),
     COUNT(CASE WHEN ack_member = 1 THEN 1 END),
     COUNT(CASE WHEN state = 'pending' THEN 1 END),
     COUNT(CASE WHEN state = 'rejected' THEN 1 END),
     MAX(ack_ms)
     FROM desired";

/// The event log's figures per (destination, audience), from every row: a count per status,
/// then the total (to catch statuses that are none of them). A delivery not written to its
/// row counts as delivered (see `delivered`).
static EVENT_FIGURES: LazyLock<String> = LazyLock::new(|| {
    let per_status: Vec<String> = StatusKind::ALL
        .iter()
        .map(|k| format!("COUNT(CASE WHEN ea.status = '{}' THEN 1 END)", k.as_str()))
        .collect();
    format!(
        "SELECT ea.destination, ea.list_key, {}, COUNT(*)
         FROM (SELECT e.destination, ea.list_key,
                 CASE WHEN {} IS NULL THEN ea.status ELSE 'delivered' END AS status
               FROM event_audiences ea JOIN events e ON e.seq = ea.seq) AS ea",
        per_status.join(", "),
        unwritten_delivery("e.destination")
    )
});

/// Fills `audience_counts` from every row (the migration to version 3; the table is empty).
pub(super) fn fill(tx: &Connection) -> Result<(), StoreError> {
    const OP: &str = "open";
    let events = event_columns();
    tx.execute(
        &format!(
            "INSERT INTO audience_counts (destination, list_key, keys, members, pending,
             rejected, last_delivery_ms)
             {DESIRED_FIGURES} WHERE true GROUP BY destination, list_key"
        ),
        [],
    )
    .map_err(engine(OP))?;
    let set: Vec<String> = events
        .iter()
        .map(|c| format!("{c} = excluded.{c}"))
        .collect();
    // The total of each row is dropped here: recount reports unknown statuses.
    tx.execute(
        &format!(
            "WITH f(destination, list_key, {cols}, total) AS (
               {figures} GROUP BY ea.destination, ea.list_key)
             INSERT INTO audience_counts (destination, list_key, {cols})
             SELECT destination, list_key, {cols} FROM f WHERE true
             ON CONFLICT (destination, list_key) DO UPDATE SET {set}",
            cols = events.join(", "),
            figures = *EVENT_FIGURES,
            set = set.join(", ")
        ),
        [],
    )
    .map_err(engine(OP))?;
    Ok(())
}

/// [`list_counts`] and [`event_counts`] from every row of `destination`. An event status that
/// is none of [`StatusKind::ALL`] is an error, not a silent miscount.
pub(super) fn recount(
    conn: &Connection,
    destination: &str,
) -> Result<(Vec<ListCounts>, EventCounts), StoreError> {
    const OP: &str = "recount";
    let mut stmt = conn
        .prepare(&format!(
            "WITH f(destination, list_key, keys, members, pending, rejected, last) AS (
               {DESIRED_FIGURES} WHERE destination = ?1 GROUP BY list_key)
             SELECT c.list_key, l.list_id, c.members, c.pending, 0, c.rejected, {OLDEST}, c.last
             FROM f AS c
             LEFT JOIN lists l ON l.destination = c.destination AND l.audience_key = c.list_key
             ORDER BY c.list_key"
        ))
        .map_err(engine(OP))?;
    let mut lists = stmt
        .query_map([destination], raw_list_counts)
        .map_err(engine(OP))?
        .collect::<Result<Vec<RawListCounts>, _>>()
        .map_err(engine(OP))?
        .into_iter()
        .map(|r| r.into_counts(OP))
        .collect::<Result<Vec<_>, _>>()?;
    let mut stmt = conn
        .prepare(&format!(
            "{} WHERE ea.destination = ?1 GROUP BY ea.list_key",
            *EVENT_FIGURES
        ))
        .map_err(engine(OP))?;
    const N: usize = StatusKind::ALL.len();
    let rows = stmt
        .query_map([destination], |r| {
            let key: String = r.get(1)?;
            let mut counts = [0i64; N + 1];
            for (i, n) in counts.iter_mut().enumerate() {
                *n = r.get(2 + i)?;
            }
            Ok((key, counts))
        })
        .map_err(engine(OP))?
        .collect::<Result<Vec<(String, [i64; N + 1])>, _>>()
        .map_err(engine(OP))?;
    let mut events = EventCounts::default();
    for (key, counts) in rows {
        let (per_status, total) = counts.split_at(N);
        let known: i64 = per_status.iter().sum();
        if known != total[0] {
            return Err(StoreError::Corrupt {
                op: OP,
                message: format!(
                    "{} event statuses are none of {:?}",
                    total[0] - known,
                    StatusKind::ALL.map(StatusKind::as_str)
                ),
            });
        }
        for (k, n) in StatusKind::ALL.into_iter().zip(per_status) {
            events.add(k, to_u64(OP, *n)?);
        }
        if let Some(l) = lists.iter_mut().find(|l| l.audience_key == key) {
            l.retrying = to_u64(OP, per_status[index(StatusKind::Pending)])?;
        }
    }
    Ok((lists, events))
}
