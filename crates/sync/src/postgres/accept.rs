//! Accepting a batch of events in one transaction, in a fixed number of statements whatever
//! its size (arrays through `UNNEST`): seqs allocated in arrival order, new events logged
//! (a messageId already stored, by this or another instance, makes a duplicate), the keys'
//! desired rows locked in key order and, with the audiences' snapshot floors (`floors`),
//! decided on (`decide`), then written, with the events' statuses and the figures.

use std::collections::{BTreeMap, HashMap};

use deadpool_postgres::{GenericClient, Transaction};

use super::decide::{Key, NewChange, Stored, decide};
use super::desired::{insert_new_keys, update_stored_keys};
use super::{PostgresStore, counts, pg, to_u64, write_tx};
use crate::store::{Applied, EventContent, NewEvent, Receipt, StatusKind, StoreError};

const OP: &str = "accept";

/// Another instance stored a new key of the batch between our read and our insert: the
/// transaction is run again, and then finds the key stored.
#[derive(Debug, thiserror::Error)]
#[error("a key was stored concurrently")]
pub(super) struct Raced;

impl PostgresStore {
    pub async fn accept(&self, batch: Vec<NewEvent>) -> Result<Vec<Receipt>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        write_tx!(self, OP, |tx| accept_in(&tx, &batch).await?)
    }
}

/// The batch's events that are new in the batch (the first of each messageId), in order.
fn firsts(batch: &[NewEvent]) -> (Vec<usize>, HashMap<(&str, &str), usize>) {
    let mut first: HashMap<(&str, &str), usize> = HashMap::with_capacity(batch.len());
    let mut order = Vec::with_capacity(batch.len());
    for (i, ev) in batch.iter().enumerate() {
        let k = (ev.destination.as_str(), ev.message_id.as_str());
        if let std::collections::hash_map::Entry::Vacant(e) = first.entry(k) {
            e.insert(i);
            order.push(i);
        }
    }
    (order, first)
}

async fn accept_in(tx: &Transaction<'_>, batch: &[NewEvent]) -> Result<Vec<Receipt>, StoreError> {
    let (order, first) = firsts(batch);
    let seqs = allocate(tx, order.len()).await?;
    // seq of each first event, by batch index.
    let mut seq_of: HashMap<usize, i64> = order.iter().copied().zip(seqs).collect();
    let inserted = insert_events(tx, batch, &order, &seq_of).await?;
    let mut duplicate: HashMap<usize, i64> = HashMap::new();
    let lost: Vec<usize> = order
        .iter()
        .copied()
        .filter(|i| !inserted.contains_key(&seq_of[i]))
        .collect();
    if !lost.is_empty() {
        let found = stored_seqs(tx, batch, &lost).await?;
        for i in lost {
            let seq = found
                .get(&(batch[i].destination.as_str(), batch[i].message_id.as_str()))
                .copied()
                .ok_or_else(|| StoreError::Corrupt {
                    op: OP,
                    message: format!(
                        "messageId {:?} conflicts but is not stored",
                        batch[i].message_id
                    ),
                })?;
            duplicate.insert(i, seq);
            seq_of.remove(&i);
        }
    }
    let new: Vec<usize> = order
        .iter()
        .copied()
        .filter(|i| seq_of.contains_key(i))
        .collect();
    insert_ignored_settings(tx, batch, &new, &seq_of).await?;
    let applied = apply_changes(tx, batch, &new, &seq_of).await?;
    // Receipts in input order.
    let mut out = Vec::with_capacity(batch.len());
    let mut applied = applied;
    for (i, ev) in batch.iter().enumerate() {
        let k = (ev.destination.as_str(), ev.message_id.as_str());
        let f = first[&k];
        let receipt = if f != i {
            let seq = seq_of.get(&f).or_else(|| duplicate.get(&f)).copied();
            Receipt::Duplicate {
                seq: to_u64(OP, seq.unwrap_or_default())?,
            }
        } else if let Some(seq) = duplicate.get(&i) {
            Receipt::Duplicate {
                seq: to_u64(OP, *seq)?,
            }
        } else {
            Receipt::Accepted {
                seq: to_u64(OP, seq_of[&i])?,
                changes: applied.remove(&i).unwrap_or_default(),
            }
        };
        out.push(receipt);
    }
    Ok(out)
}

/// `n` new seqs, ascending.
async fn allocate(tx: &Transaction<'_>, n: usize) -> Result<Vec<i64>, StoreError> {
    let stmt = tx
        .prepare_cached("SELECT nextval('event_seq') FROM generate_series(1, $1::int4)")
        .await
        .map_err(pg(OP))?;
    let n = i32::try_from(n).map_err(|_| StoreError::Invalid {
        op: OP,
        message: format!("a batch of {n} events is too large"),
    })?;
    let mut seqs: Vec<i64> = tx
        .query(&stmt, &[&n])
        .await
        .map_err(pg(OP))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    seqs.sort_unstable();
    Ok(seqs)
}

/// Logs the new events (sorted by messageId, so that two batches wait rather than deadlock);
/// returns the seqs that were inserted (the others' messageIds were stored already).
async fn insert_events(
    tx: &Transaction<'_>,
    batch: &[NewEvent],
    order: &[usize],
    seq_of: &HashMap<usize, i64>,
) -> Result<HashMap<i64, ()>, StoreError> {
    let mut sorted: Vec<usize> = order.to_vec();
    sorted.sort_by(|&a, &b| {
        (&batch[a].destination, &batch[a].message_id)
            .cmp(&(&batch[b].destination, &batch[b].message_id))
    });
    let seqs: Vec<i64> = sorted.iter().map(|i| seq_of[i]).collect();
    let dest: Vec<&str> = sorted
        .iter()
        .map(|&i| batch[i].destination.as_str())
        .collect();
    let msg: Vec<&str> = sorted
        .iter()
        .map(|&i| batch[i].message_id.as_str())
        .collect();
    let recv: Vec<i64> = sorted.iter().map(|&i| batch[i].received_ms).collect();
    let stmt = tx
        .prepare_cached(
            "INSERT INTO events (seq, destination, message_id, received_ms)
             SELECT * FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::int8[])
             ON CONFLICT (destination, message_id) DO NOTHING RETURNING seq",
        )
        .await
        .map_err(pg(OP))?;
    let rows = tx
        .query(&stmt, &[&seqs, &dest, &msg, &recv])
        .await
        .map_err(pg(OP))?;
    Ok(rows.iter().map(|r| (r.get::<_, i64>(0), ())).collect())
}

/// The stored seqs of the events `which` (duplicates of stored events).
async fn stored_seqs<'b>(
    tx: &Transaction<'_>,
    batch: &'b [NewEvent],
    which: &[usize],
) -> Result<HashMap<(&'b str, &'b str), i64>, StoreError> {
    let dest: Vec<&str> = which
        .iter()
        .map(|&i| batch[i].destination.as_str())
        .collect();
    let msg: Vec<&str> = which
        .iter()
        .map(|&i| batch[i].message_id.as_str())
        .collect();
    let stmt = tx
        .prepare_cached(
            "SELECT e.destination, e.message_id, e.seq FROM events e
             JOIN UNNEST($1::text[], $2::text[]) AS u(d, m)
               ON e.destination = u.d AND e.message_id = u.m",
        )
        .await
        .map_err(pg(OP))?;
    let rows = tx.query(&stmt, &[&dest, &msg]).await.map_err(pg(OP))?;
    let mut out = HashMap::new();
    for r in rows {
        let (d, m, seq): (String, String, i64) = (r.get(0), r.get(1), r.get(2));
        if let Some(&i) = which
            .iter()
            .find(|&&i| batch[i].destination == d && batch[i].message_id == m)
        {
            out.insert(
                (batch[i].destination.as_str(), batch[i].message_id.as_str()),
                seq,
            );
        }
    }
    Ok(out)
}

async fn insert_ignored_settings(
    tx: &Transaction<'_>,
    batch: &[NewEvent],
    new: &[usize],
    seq_of: &HashMap<usize, i64>,
) -> Result<(), StoreError> {
    let (mut seq, mut setting, mut value, mut reason) = (vec![], vec![], vec![], vec![]);
    for &i in new {
        for ig in &batch[i].ignored_settings {
            seq.push(seq_of[&i]);
            setting.push(ig.setting.as_str());
            value.push(ig.value.as_str());
            reason.push(ig.reason.as_str());
        }
    }
    if seq.is_empty() {
        return Ok(());
    }
    let stmt = tx
        .prepare_cached(
            "INSERT INTO ignored_settings (seq, setting, value, reason)
             SELECT * FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::text[])
             ON CONFLICT (seq, setting) DO NOTHING",
        )
        .await
        .map_err(pg(OP))?;
    tx.execute(&stmt, &[&seq, &setting, &value, &reason])
        .await
        .map_err(pg(OP))?;
    Ok(())
}

/// Applies the changes of the new events and logs every status; returns the changes' fates
/// per event (batch index).
async fn apply_changes(
    tx: &Transaction<'_>,
    batch: &[NewEvent],
    new: &[usize],
    seq_of: &HashMap<usize, i64>,
) -> Result<HashMap<usize, Vec<Applied>>, StoreError> {
    let mut changes = Vec::new();
    let mut unusable = Vec::new();
    for &i in new {
        let ev = &batch[i];
        match &ev.content {
            EventContent::Changes(cs) => {
                for (part, c) in cs.iter().enumerate() {
                    changes.push(NewChange {
                        event: i,
                        part: i32::try_from(part).unwrap_or(i32::MAX),
                        seq: seq_of[&i],
                        message_id: &ev.message_id,
                        destination: &ev.destination,
                        received_ms: ev.received_ms,
                        change: c,
                    });
                }
            }
            EventContent::Rejected(reason) => unusable.push((i, StatusKind::Rejected, reason)),
            EventContent::Skipped(reason) => unusable.push((i, StatusKind::Skipped, reason)),
        }
    }
    let mut keys: Vec<Key> = changes
        .iter()
        .filter_map(|c| super::decide::key_of(c.destination, c.change))
        .collect();
    keys.sort();
    keys.dedup();
    let mut audiences: Vec<(&str, &str)> = changes
        .iter()
        .map(|c| (c.destination, c.change.audience_key.as_str()))
        .collect();
    audiences.sort_unstable();
    audiences.dedup();
    // Both reads go out together (the driver pipelines them): no round trip for the floors.
    let (stored, floors) = tokio::try_join!(
        lock_keys(tx, &keys),
        super::floors::read(tx, OP, &audiences)
    )?;
    let mut decided = decide(&changes, &stored, &floors);
    insert_new_keys(tx, &changes, &decided.winners).await?;
    update_stored_keys(tx, &changes, &decided.winners).await?;
    supersede(tx, &decided.supersede, &mut decided.deltas).await?;
    let mut statuses = std::mem::take(&mut decided.statuses);
    for (i, status, reason) in unusable {
        let ev = &batch[i];
        decided.deltas.of(&ev.destination, "").event(status, 1);
        statuses.push(super::decide::StatusRow {
            seq: seq_of[&i],
            part: 0,
            destination: ev.destination.clone(),
            list_key: String::new(),
            email: String::new(),
            user_id: String::new(),
            member: None,
            time_ms: None,
            status,
            reason: Some(reason.clone()),
            updated_ms: ev.received_ms,
        });
    }
    insert_statuses(tx, &statuses).await?;
    counts::apply(tx, OP, &decided.deltas).await?;
    let mut out: HashMap<usize, Vec<Applied>> = HashMap::new();
    for (c, a) in changes.iter().zip(decided.applied) {
        out.entry(c.event).or_default().push(a);
    }
    Ok(out)
}

/// Locks the stored rows of `keys` (sorted: every writer locks in this order) and reads them.
async fn lock_keys(
    tx: &Transaction<'_>,
    keys: &[Key],
) -> Result<BTreeMap<Key, Stored>, StoreError> {
    if keys.is_empty() {
        return Ok(BTreeMap::new());
    }
    let cols = key_columns(keys.iter());
    let stmt = tx
        .prepare_cached(
            "SELECT d.destination, d.list_key, d.email, d.user_id, d.seq, d.part, d.time_ms,
               d.state, COALESCE(e.message_id, '')
             FROM desired d
             JOIN UNNEST($1::text[], $2::text[], $3::text[], $4::text[]) AS u(de, lk, em, ui)
               ON d.destination = u.de AND d.list_key = u.lk AND d.email = u.em
              AND d.user_id = u.ui
             LEFT JOIN events e ON e.seq = d.seq
             ORDER BY d.destination, d.list_key, d.email, d.user_id
             FOR UPDATE OF d",
        )
        .await
        .map_err(pg(OP))?;
    let rows = tx
        .query(&stmt, &[&cols.0, &cols.1, &cols.2, &cols.3])
        .await
        .map_err(pg(OP))?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                (r.get(0), r.get(1), r.get(2), r.get(3)),
                Stored {
                    seq: r.get(4),
                    part: r.get(5),
                    time_ms: r.get(6),
                    state: r.get(7),
                    message_id: r.get(8),
                },
            )
        })
        .collect())
}

pub(super) type KeyColumns<'k> = (Vec<&'k str>, Vec<&'k str>, Vec<&'k str>, Vec<&'k str>);

pub(super) fn key_columns<'k>(keys: impl Iterator<Item = &'k Key>) -> KeyColumns<'k> {
    let mut c: KeyColumns<'k> = Default::default();
    for k in keys {
        c.0.push(&k.0);
        c.1.push(&k.1);
        c.2.push(&k.2);
        c.3.push(&k.3);
    }
    c
}

/// Marks stored events superseded (those still accepted or pending), counting what they were.
async fn supersede(
    tx: &Transaction<'_>,
    rows: &[super::decide::Supersede],
    deltas: &mut crate::sqlite::counts::Deltas,
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let seq: Vec<i64> = rows.iter().map(|r| r.seq).collect();
    let part: Vec<i32> = rows.iter().map(|r| r.part).collect();
    let reason: Vec<&str> = rows.iter().map(|r| r.reason.as_str()).collect();
    let updated: Vec<i64> = rows.iter().map(|r| r.updated_ms).collect();
    let stmt = tx
        .prepare_cached(
            "WITH u AS (SELECT * FROM UNNEST($1::int8[], $2::int4[], $3::text[], $4::int8[])
                          AS u(seq, part, reason, updated_ms)),
             old AS (SELECT ea.seq, ea.part, ea.status FROM event_audiences ea
                     JOIN u ON ea.seq = u.seq AND ea.part = u.part
                     WHERE ea.status IN ('accepted', 'pending')
                     ORDER BY ea.seq, ea.part FOR UPDATE OF ea)
             UPDATE event_audiences ea SET status = 'superseded', reason = u.reason,
               next_attempt_ms = NULL, updated_ms = u.updated_ms
             FROM old JOIN u ON u.seq = old.seq AND u.part = old.part
             WHERE ea.seq = old.seq AND ea.part = old.part
             RETURNING ea.seq, ea.part, old.status",
        )
        .await
        .map_err(pg(OP))?;
    let moved = tx
        .query(&stmt, &[&seq, &part, &reason, &updated])
        .await
        .map_err(pg(OP))?;
    for r in moved {
        let (s, p, was): (i64, i32, String) = (r.get(0), r.get(1), r.get(2));
        let Some(row) = rows.iter().find(|x| x.seq == s && x.part == p) else {
            continue;
        };
        let was = super::status_of(OP, &was)?;
        deltas
            .of(&row.destination, &row.list_key)
            .event_moved(was, StatusKind::Superseded);
    }
    Ok(())
}

/// Inserts the batch's status rows.
async fn insert_statuses(
    tx: &Transaction<'_>,
    rows: &[super::decide::StatusRow],
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let seq: Vec<i64> = rows.iter().map(|r| r.seq).collect();
    let part: Vec<i32> = rows.iter().map(|r| r.part).collect();
    let key: Vec<&str> = rows.iter().map(|r| r.list_key.as_str()).collect();
    let email: Vec<&str> = rows.iter().map(|r| r.email.as_str()).collect();
    let user: Vec<&str> = rows.iter().map(|r| r.user_id.as_str()).collect();
    let member: Vec<Option<bool>> = rows.iter().map(|r| r.member).collect();
    let time: Vec<Option<i64>> = rows.iter().map(|r| r.time_ms).collect();
    let status: Vec<&str> = rows.iter().map(|r| r.status.as_str()).collect();
    let reason: Vec<Option<&str>> = rows.iter().map(|r| r.reason.as_deref()).collect();
    let updated: Vec<i64> = rows.iter().map(|r| r.updated_ms).collect();
    let stmt = tx
        .prepare_cached(
            "INSERT INTO event_audiences (seq, part, list_key, email, user_id, member, time_ms,
               status, reason, next_attempt_ms, updated_ms)
             SELECT se, pa, lk, em, ui, me, ti, st, re, NULL, up
             FROM UNNEST($1::int8[], $2::int4[], $3::text[], $4::text[], $5::text[], $6::bool[],
               $7::int8[], $8::text[], $9::text[], $10::int8[])
               AS u(se, pa, lk, em, ui, me, ti, st, re, up)",
        )
        .await
        .map_err(pg(OP))?;
    tx.execute(
        &stmt,
        &[
            &seq, &part, &key, &email, &user, &member, &time, &status, &reason, &updated,
        ],
    )
    .await
    .map_err(pg(OP))?;
    Ok(())
}
