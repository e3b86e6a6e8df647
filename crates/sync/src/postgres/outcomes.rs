//! Recording what Iterable answered, in one transaction per call and a fixed number of
//! statements: the keys' rows are locked in key order, the planned events read, every outcome
//! decided in memory (`settle`), and what changed written back with the figures. And each
//! failed try of a request the client still retries.

use std::collections::HashMap;

use deadpool_postgres::{GenericClient, Transaction};

use super::settle::{Book, EventRow, Ident, KeyRow, event_lookups};
use super::{PostgresStore, counts, key_part, pg, status_of, to_i64, write_tx};
use crate::sqlite::counts::Deltas;
use crate::store::{Identity, OutcomeRow, Recorded, Seq, StatusKind, StoreError};

impl PostgresStore {
    pub async fn record_outcomes(
        &self,
        destination: &str,
        audience_key: &str,
        now_ms: i64,
        outcomes: Vec<OutcomeRow>,
    ) -> Result<Vec<Recorded>, StoreError> {
        const OP: &str = "record_outcomes";
        if outcomes.is_empty() {
            return Ok(Vec::new());
        }
        let seqs = outcomes
            .iter()
            .map(|o| to_i64(OP, o.seq))
            .collect::<Result<Vec<_>, _>>()?;
        write_tx!(self, OP, |tx| {
            record_in(&tx, destination, audience_key, now_ms, &outcomes, &seqs).await?
        })
    }

    pub async fn record_attempt(
        &self,
        destination: &str,
        audience_key: &str,
        now_ms: i64,
        rows: &[(Identity, Seq)],
        reason: &str,
        next_attempt_ms: Option<i64>,
    ) -> Result<usize, StoreError> {
        const OP: &str = "record_attempt";
        if rows.is_empty() {
            return Ok(0);
        }
        let mut keys: Vec<(&str, &str, i64)> = rows
            .iter()
            .map(|(id, seq)| {
                Ok((
                    key_part(&id.email),
                    key_part(&id.user_id),
                    to_i64(OP, *seq)?,
                ))
            })
            .collect::<Result<_, StoreError>>()?;
        keys.sort();
        keys.dedup();
        let email: Vec<&str> = keys.iter().map(|k| k.0).collect();
        let user: Vec<&str> = keys.iter().map(|k| k.1).collect();
        let seq: Vec<i64> = keys.iter().map(|k| k.2).collect();
        let (de, lk) = (
            vec![destination; keys.len()],
            vec![audience_key; keys.len()],
        );
        write_tx!(self, OP, |tx| {
            lock(&tx, OP, destination, audience_key, &email, &user).await?;
            let marked = tx
                .query(
                    "UPDATE desired d SET tries = d.tries + 1, reason = $3
                     FROM UNNEST($1::text[], $2::text[], $4::text[], $5::text[], $6::int8[])
                       AS u(de, lk, em, ui, se)
                     WHERE d.destination = u.de AND d.list_key = u.lk AND d.email = u.em
                       AND d.user_id = u.ui AND d.seq = u.se AND d.state = 'pending'
                     RETURNING d.seq, d.part",
                    &[&de, &lk, &reason, &email, &user, &seq],
                )
                .await
                .map_err(pg(OP))?;
            if marked.is_empty() {
                0
            } else {
                let seqs: Vec<i64> = marked.iter().map(|r| r.get(0)).collect();
                let parts: Vec<i32> = marked.iter().map(|r| r.get(1)).collect();
                let moved = tx
                    .query(
                        "WITH old AS (SELECT ea.seq, ea.part, ea.status FROM event_audiences ea
                           JOIN UNNEST($1::int8[], $2::int4[]) AS u(se, pa)
                             ON ea.seq = u.se AND ea.part = u.pa
                           WHERE ea.status IN ('accepted', 'pending')
                           ORDER BY ea.seq, ea.part FOR UPDATE OF ea)
                         UPDATE event_audiences ea SET status = 'pending', reason = $3,
                           next_attempt_ms = $4, updated_ms = $5
                         FROM old WHERE ea.seq = old.seq AND ea.part = old.part
                         RETURNING old.status",
                        &[&seqs, &parts, &reason, &next_attempt_ms, &now_ms],
                    )
                    .await
                    .map_err(pg(OP))?;
                let flipped = moved
                    .iter()
                    .filter(|r| r.get::<_, &str>(0) == StatusKind::Accepted.as_str())
                    .count() as i64;
                let mut deltas = Deltas::default();
                let d = deltas.of(destination, audience_key);
                d.event(StatusKind::Accepted, -flipped);
                d.event(StatusKind::Pending, flipped);
                counts::apply(&tx, OP, &deltas).await?;
                marked.len()
            }
        })
    }
}

/// Locks the desired rows of some identities of one audience, in key order.
async fn lock(
    tx: &Transaction<'_>,
    op: &'static str,
    destination: &str,
    audience_key: &str,
    email: &[&str],
    user: &[&str],
) -> Result<Vec<tokio_postgres::Row>, StoreError> {
    let stmt = tx
        .prepare_cached(
            "SELECT d.email, d.user_id, d.seq, d.part, d.time_ms, d.member, d.state, d.reason,
               d.attempts, d.tries, d.next_attempt_ms, d.ack_member, d.ack_time_ms, d.ack_seq,
               d.ack_ms
             FROM desired d
             JOIN UNNEST($1::text[], $2::text[], $3::text[], $4::text[]) AS u(de, lk, em, ui)
               ON d.destination = u.de AND d.list_key = u.lk AND d.email = u.em
              AND d.user_id = u.ui
             ORDER BY d.email, d.user_id FOR UPDATE OF d",
        )
        .await
        .map_err(pg(op))?;
    // The audience travels as arrays too: the planner then looks each key up by the whole
    // primary key, whatever its statistics say of the audience's size.
    let (de, lk) = (
        vec![destination; email.len()],
        vec![audience_key; email.len()],
    );
    tx.query(&stmt, &[&de, &lk, &email, &user])
        .await
        .map_err(pg(op))
}

async fn record_in(
    tx: &Transaction<'_>,
    destination: &str,
    audience_key: &str,
    now_ms: i64,
    outcomes: &[OutcomeRow],
    seqs: &[i64],
) -> Result<Vec<Recorded>, StoreError> {
    const OP: &str = "record_outcomes";
    let mut idents: Vec<(&str, &str)> = outcomes
        .iter()
        .map(|o| (key_part(&o.identity.email), key_part(&o.identity.user_id)))
        .collect();
    idents.sort();
    idents.dedup();
    let email: Vec<&str> = idents.iter().map(|k| k.0).collect();
    let user: Vec<&str> = idents.iter().map(|k| k.1).collect();
    let mut book = Book::default();
    for r in lock(tx, OP, destination, audience_key, &email, &user).await? {
        book.keys.insert(
            (r.get(0), r.get(1)),
            KeyRow {
                seq: r.get(2),
                part: r.get(3),
                time_ms: r.get(4),
                member: r.get(5),
                state: r.get(6),
                reason: r.get(7),
                attempts: r.get(8),
                tries: r.get(9),
                next_attempt_ms: r.get(10),
                ack_member: r.get(11),
                ack_time_ms: r.get(12),
                ack_seq: r.get(13),
                ack_ms: r.get(14),
                dirty: false,
            },
        );
    }
    // The planned events: by (seq, part) when the key still points at them, else by key
    // among their seq's rows (see `settle::event_lookups`).
    let lookups = event_lookups(outcomes, seqs, &book.keys);
    let columns = "ea.seq, ea.part, ea.email, ea.user_id, ea.member, ea.time_ms, ea.status,
        ea.reason, ea.next_attempt_ms, ea.updated_ms";
    let stmt = tx
        .prepare_cached(&format!(
            "SELECT {columns} FROM event_audiences ea
             JOIN UNNEST($1::int8[], $2::int4[]) AS u(se, pa) ON ea.seq = u.se AND ea.part = u.pa
             WHERE ea.list_key = $3"
        ))
        .await
        .map_err(pg(OP))?;
    let (seq, part): (Vec<i64>, Vec<i32>) = lookups.by_part.iter().copied().unzip();
    let mut rows = tx
        .query(&stmt, &[&seq, &part, &audience_key])
        .await
        .map_err(pg(OP))?;
    if !lookups.by_key.is_empty() {
        let stmt = tx
            .prepare_cached(&format!(
                "SELECT {columns} FROM event_audiences ea
                 JOIN UNNEST($1::int8[], $2::text[], $3::text[]) AS u(se, em, ui)
                   ON ea.seq = u.se AND ea.email = u.em AND ea.user_id = u.ui
                 WHERE ea.list_key = $4
                 ORDER BY ea.seq, ea.status = 'skipped', ea.part"
            ))
            .await
            .map_err(pg(OP))?;
        let seq: Vec<i64> = lookups.by_key.iter().map(|k| k.0).collect();
        let email: Vec<&str> = lookups.by_key.iter().map(|k| k.1).collect();
        let user: Vec<&str> = lookups.by_key.iter().map(|k| k.2).collect();
        rows.extend(
            tx.query(&stmt, &[&seq, &email, &user, &audience_key])
                .await
                .map_err(pg(OP))?,
        );
    }
    for r in rows {
        let status: String = r.get(6);
        // The first row of a key wins: the naming that counted when an event names a key
        // more than once (the by-part rows come first; of the by-key ones, the others were
        // skipped, so they come after).
        book.events
            .entry((r.get(0), r.get(2), r.get(3)))
            .or_insert(EventRow {
                part: r.get(1),
                member: r.get(4),
                time_ms: r.get(5),
                status: status_of(OP, &status)?,
                reason: r.get(7),
                next_attempt_ms: r.get(8),
                updated_ms: r.get(9),
                dirty: false,
            });
    }
    let mut deltas = Deltas::default();
    let d = deltas.of(destination, audience_key);
    let out: Vec<Recorded> = outcomes
        .iter()
        .zip(seqs)
        .map(|(o, &seq)| book.record(d, now_ms, o, seq))
        .collect();
    write_keys(tx, destination, audience_key, &book.keys).await?;
    write_events(tx, &book).await?;
    counts::apply(tx, OP, &deltas).await?;
    Ok(out)
}

async fn write_keys(
    tx: &Transaction<'_>,
    destination: &str,
    audience_key: &str,
    keys: &HashMap<Ident, KeyRow>,
) -> Result<(), StoreError> {
    const OP: &str = "record_outcomes";
    let mut dirty: Vec<(&Ident, &KeyRow)> = keys.iter().filter(|(_, k)| k.dirty).collect();
    if dirty.is_empty() {
        return Ok(());
    }
    dirty.sort_by(|a, b| a.0.cmp(b.0));
    let email: Vec<&str> = dirty.iter().map(|(i, _)| i.0.as_str()).collect();
    let user: Vec<&str> = dirty.iter().map(|(i, _)| i.1.as_str()).collect();
    let state: Vec<&str> = dirty.iter().map(|(_, k)| k.state.as_str()).collect();
    let reason: Vec<Option<&str>> = dirty.iter().map(|(_, k)| k.reason.as_deref()).collect();
    let attempts: Vec<i64> = dirty.iter().map(|(_, k)| k.attempts).collect();
    let tries: Vec<i64> = dirty.iter().map(|(_, k)| k.tries).collect();
    let next: Vec<i64> = dirty.iter().map(|(_, k)| k.next_attempt_ms).collect();
    let ack_member: Vec<Option<bool>> = dirty.iter().map(|(_, k)| k.ack_member).collect();
    let ack_time: Vec<Option<i64>> = dirty.iter().map(|(_, k)| k.ack_time_ms).collect();
    let ack_seq: Vec<Option<i64>> = dirty.iter().map(|(_, k)| k.ack_seq).collect();
    let ack_ms: Vec<Option<i64>> = dirty.iter().map(|(_, k)| k.ack_ms).collect();
    let stmt = tx
        .prepare_cached(
            "UPDATE desired d SET state = u.st, reason = u.re, attempts = u.at, tries = u.tr,
               next_attempt_ms = u.nx, ack_member = u.am, ack_time_ms = u.ati,
               ack_seq = u.asq, ack_ms = u.ams
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
               $6::text[], $7::int8[], $8::int8[], $9::int8[], $10::bool[], $11::int8[],
               $12::int8[], $13::int8[])
               AS u(de, lk, em, ui, st, re, at, tr, nx, am, ati, asq, ams)
             WHERE d.destination = u.de AND d.list_key = u.lk AND d.email = u.em
               AND d.user_id = u.ui",
        )
        .await
        .map_err(pg(OP))?;
    let (de, lk) = (
        vec![destination; email.len()],
        vec![audience_key; email.len()],
    );
    tx.execute(
        &stmt,
        &[
            &de,
            &lk,
            &email,
            &user,
            &state,
            &reason,
            &attempts,
            &tries,
            &next,
            &ack_member,
            &ack_time,
            &ack_seq,
            &ack_ms,
        ],
    )
    .await
    .map_err(pg(OP))?;
    Ok(())
}

async fn write_events(tx: &Transaction<'_>, book: &Book) -> Result<(), StoreError> {
    const OP: &str = "record_outcomes";
    let mut dirty: Vec<(i64, &EventRow)> = book
        .events
        .iter()
        .filter(|(_, e)| e.dirty)
        .map(|(k, e)| (k.0, e))
        .collect();
    if dirty.is_empty() {
        return Ok(());
    }
    dirty.sort_by_key(|(seq, e)| (*seq, e.part));
    let seq: Vec<i64> = dirty.iter().map(|(s, _)| *s).collect();
    let part: Vec<i32> = dirty.iter().map(|(_, e)| e.part).collect();
    let status: Vec<&str> = dirty.iter().map(|(_, e)| e.status.as_str()).collect();
    let reason: Vec<Option<&str>> = dirty.iter().map(|(_, e)| e.reason.as_deref()).collect();
    let next: Vec<Option<i64>> = dirty.iter().map(|(_, e)| e.next_attempt_ms).collect();
    let updated: Vec<i64> = dirty.iter().map(|(_, e)| e.updated_ms).collect();
    let stmt = tx
        .prepare_cached(
            "UPDATE event_audiences ea SET status = u.st, reason = u.re, next_attempt_ms = u.nx,
               updated_ms = u.up
             FROM UNNEST($1::int8[], $2::int4[], $3::text[], $4::text[], $5::int8[], $6::int8[])
               AS u(se, pa, st, re, nx, up)
             WHERE ea.seq = u.se AND ea.part = u.pa",
        )
        .await
        .map_err(pg(OP))?;
    tx.execute(&stmt, &[&seq, &part, &status, &reason, &next, &updated])
        .await
        .map_err(pg(OP))?;
    Ok(())
}
