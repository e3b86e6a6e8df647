//! What drift repair reads and writes: the keys of an audience in key order (`audience
//! verify` walks them), keys made pending again, and a list deleted in Iterable replaced by a
//! new one with the audience's whole membership pending again.

use rusqlite::{OptionalExtension, params};

use super::counts::{self, Delta};
use super::{SqliteStore, delivered, engine, identity_of, key_part, to_i64};
use crate::store::{AudienceKey, Identity, RECREATED, StoreError};

/// Forgets what Iterable acknowledged of one key; `ack_ms` (when Iterable last answered for
/// it) stays, as the audience's last delivery.
const FORGET_ACK: &str = "ack_member = NULL, ack_time_ms = NULL, ack_seq = NULL";

/// A page of an audience's keys (`?1`, `?2`) after the key (`?3`, `?4`), at most `?5`: a
/// range of `desired`'s unique key, in its order.
pub(super) const AUDIENCE_KEYS: &str =
    "SELECT email, user_id, member, ack_member, state = 'pending', list_id
     FROM desired
     WHERE destination = ?1 AND list_key = ?2 AND (email, user_id) > (?3, ?4)
     ORDER BY email, user_id LIMIT ?5";

impl SqliteStore {
    pub fn audience_keys(
        &self,
        destination: &str,
        audience_key: &str,
        after: Option<&Identity>,
        limit: usize,
    ) -> Result<Vec<AudienceKey>, StoreError> {
        const OP: &str = "audience_keys";
        let limit = to_i64(OP, limit as u64)?;
        let (email, user_id) =
            after.map_or(("", ""), |a| (key_part(&a.email), key_part(&a.user_id)));
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(AUDIENCE_KEYS).map_err(engine(OP))?;
        let rows = stmt
            .query_map(
                params![destination, audience_key, email, user_id, limit],
                |r| {
                    Ok(AudienceKey {
                        identity: identity_of(r.get(0)?, r.get(1)?),
                        member: r.get(2)?,
                        ack_member: r.get(3)?,
                        pending: r.get(4)?,
                        list_id: r.get(5)?,
                    })
                },
            )
            .map_err(engine(OP))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(engine(OP))
    }

    pub fn reopen_keys(
        &self,
        destination: &str,
        audience_key: &str,
        keys: &[Identity],
        reason: &str,
        now_ms: i64,
    ) -> Result<usize, StoreError> {
        const OP: &str = "reopen_keys";
        if keys.is_empty() {
            return Ok(0);
        }
        self.write(OP, |tx| {
            let mut get = tx
                .prepare_cached(
                    "SELECT state, ack_member FROM desired
                     WHERE destination = ?1 AND list_key = ?2 AND email = ?3 AND user_id = ?4",
                )
                .map_err(engine(OP))?;
            let mut reopen = tx
                .prepare_cached(&format!(
                    "UPDATE desired SET state = 'pending', reason = ?5, attempts = 0,
                     next_attempt_ms = ?6, {FORGET_ACK}
                     WHERE destination = ?1 AND list_key = ?2 AND email = ?3 AND user_id = ?4"
                ))
                .map_err(engine(OP))?;
            let mut d = Delta::default();
            let mut reopened = 0;
            for id in keys {
                let (email, user_id) = (key_part(&id.email), key_part(&id.user_id));
                let row: Option<(String, Option<bool>)> = get
                    .query_row(params![destination, audience_key, email, user_id], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })
                    .optional()
                    .map_err(engine(OP))?;
                let Some((state, ack)) = row else { continue };
                if state == "pending" {
                    continue;
                }
                if state == "delivered" {
                    delivered::write_for_key(tx, destination, audience_key, email, user_id)
                        .map_err(engine(OP))?;
                }
                reopen
                    .execute(params![
                        destination,
                        audience_key,
                        email,
                        user_id,
                        reason,
                        now_ms
                    ])
                    .map_err(engine(OP))?;
                d.state_moved(&state, "pending");
                d.members -= i64::from(ack == Some(true));
                reopened += 1;
            }
            counts::apply(tx, OP, destination, audience_key, &d)?;
            Ok(reopened)
        })
    }

    pub fn replace_list(
        &self,
        destination: &str,
        audience_key: &str,
        old_list: i64,
        new_list: i64,
        now_ms: i64,
    ) -> Result<Option<usize>, StoreError> {
        const OP: &str = "replace_list";
        self.write(OP, |tx| {
            let replaced = tx
                .execute(
                    "UPDATE lists SET list_id = ?4
                     WHERE destination = ?1 AND audience_key = ?2 AND list_id = ?3",
                    params![destination, audience_key, old_list, new_list],
                )
                .map_err(engine(OP))?;
            if replaced == 0 {
                return Ok(None);
            }
            let (members, reopen): (i64, i64) = tx
                .query_row(
                    "SELECT COALESCE(SUM(ack_member = 1), 0),
                     COALESCE(SUM(member = 1 AND state = 'delivered'), 0)
                     FROM desired
                     WHERE destination = ?1 AND list_key = ?2 AND list_id IS NULL",
                    params![destination, audience_key],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(engine(OP))?;
            let scope = "destination = ?1 AND list_key = ?2 AND list_id IS NULL";
            // The deliveries of the keys set pending again, before they are. (Forgetting the
            // acknowledgement keeps `ack_ms`, the time those deliveries show.)
            delivered::write_matching(
                tx,
                "d.destination = ?1 AND d.list_key = ?2 AND d.list_id IS NULL AND d.member = 1",
                &[&destination, &audience_key],
            )
            .map_err(engine(OP))?;
            tx.execute(
                &format!(
                    "UPDATE desired SET state = 'pending', reason = ?3, attempts = 0,
                     next_attempt_ms = ?4
                     WHERE {scope} AND member = 1 AND state = 'delivered'"
                ),
                params![destination, audience_key, RECREATED, now_ms],
            )
            .map_err(engine(OP))?;
            tx.execute(
                &format!(
                    "UPDATE desired SET next_attempt_ms = ?3
                     WHERE {scope} AND state = 'pending' AND next_attempt_ms > ?3"
                ),
                params![destination, audience_key, now_ms],
            )
            .map_err(engine(OP))?;
            tx.execute(
                &format!("UPDATE desired SET {FORGET_ACK} WHERE {scope} AND ack_seq IS NOT NULL"),
                params![destination, audience_key],
            )
            .map_err(engine(OP))?;
            let d = Delta {
                members: -members,
                pending: reopen,
                ..Delta::default()
            };
            counts::apply(tx, OP, destination, audience_key, &d)?;
            Ok(Some(reopen as usize))
        })
    }
}
