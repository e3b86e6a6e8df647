//! Writing the desired rows a batch decided on (`decide`): keys seen for the first time are
//! inserted, stored keys (locked by the caller) updated with their winning change, each in one
//! statement whatever the number of keys.

use std::collections::BTreeMap;

use deadpool_postgres::{GenericClient, Transaction};

use super::accept::{KeyColumns, Raced, key_columns};
use super::decide::{Key, NewChange, Winner};
use super::pg;
use crate::store::StoreError;

const OP: &str = "accept";

/// The columns of the winning changes of some keys, in key order.
struct DesiredColumns<'k> {
    keys: KeyColumns<'k>,
    list_id: Vec<Option<i64>>,
    member: Vec<bool>,
    time_ms: Vec<Option<i64>>,
    seq: Vec<i64>,
    part: Vec<i32>,
    accepted_ms: Vec<i64>,
    data: Vec<Option<String>>,
    ueo: Vec<Option<bool>>,
    cu: Vec<Option<bool>>,
    campaign: Vec<Option<i64>>,
}

impl DesiredColumns<'_> {
    /// The columns as the statements' parameters `$1`..`$14`, in this order.
    fn params(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 14] {
        [
            &self.keys.0,
            &self.keys.1,
            &self.keys.2,
            &self.keys.3,
            &self.list_id,
            &self.member,
            &self.time_ms,
            &self.seq,
            &self.part,
            &self.accepted_ms,
            &self.data,
            &self.ueo,
            &self.cu,
            &self.campaign,
        ]
    }
}

fn desired_columns<'k>(
    changes: &[NewChange<'_>],
    winners: impl Iterator<Item = (&'k Key, usize)>,
) -> Result<DesiredColumns<'k>, StoreError> {
    let mut keys = Vec::new();
    let mut d = DesiredColumns {
        keys: Default::default(),
        list_id: vec![],
        member: vec![],
        time_ms: vec![],
        seq: vec![],
        part: vec![],
        accepted_ms: vec![],
        data: vec![],
        ueo: vec![],
        cu: vec![],
        campaign: vec![],
    };
    for (k, i) in winners {
        keys.push(k);
        let nc = &changes[i];
        let c = nc.change;
        d.list_id.push(c.list_id);
        d.member.push(c.member);
        d.time_ms.push(c.time_ms);
        d.seq.push(nc.seq);
        d.part.push(nc.part);
        d.accepted_ms.push(nc.received_ms);
        d.data.push(match &c.data_fields {
            None => None,
            Some(m) => Some(serde_json::to_string(m).map_err(|e| StoreError::Invalid {
                op: OP,
                message: format!("data fields cannot be stored: {e}"),
            })?),
        });
        d.ueo.push(c.settings.update_existing_users_only);
        d.cu.push(c.settings.channel_unsubscribe);
        d.campaign.push(c.settings.campaign_id);
    }
    d.keys = key_columns(keys.into_iter());
    Ok(d)
}

/// Inserts the desired rows of keys seen for the first time. A key another instance stored
/// meanwhile makes the transaction run again ([`Raced`]).
pub(super) async fn insert_new_keys(
    tx: &Transaction<'_>,
    changes: &[NewChange<'_>],
    winners: &BTreeMap<Key, Winner>,
) -> Result<(), StoreError> {
    let new = winners
        .iter()
        .filter(|(_, w)| !w.stored)
        .map(|(k, w)| (k, w.change));
    let d = desired_columns(changes, new)?;
    if d.seq.is_empty() {
        return Ok(());
    }
    let stmt = tx
        .prepare_cached(
            "INSERT INTO desired (destination, list_key, email, user_id, list_id, member, time_ms,
               seq, part, accepted_ms, data_fields, update_existing_users_only,
               channel_unsubscribe, campaign_id, state, reason, attempts, next_attempt_ms)
             SELECT de, lk, em, ui, li, me, ti, se, pa, ac, da, ue, cu, ca, 'pending', NULL, 0, 0
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::bool[],
               $7::int8[], $8::int8[], $9::int4[], $10::int8[], $11::text[], $12::bool[],
               $13::bool[], $14::int8[])
               AS u(de, lk, em, ui, li, me, ti, se, pa, ac, da, ue, cu, ca)
             ON CONFLICT (destination, list_key, email, user_id) DO NOTHING",
        )
        .await
        .map_err(pg(OP))?;
    let n = tx.execute(&stmt, &d.params()).await.map_err(pg(OP))?;
    if n as usize != d.seq.len() {
        return Err(StoreError::engine(OP, Raced));
    }
    Ok(())
}

/// Replaces the desired rows of stored keys (locked) with their winning changes; only a newer
/// version replaces a row, whatever happened.
pub(super) async fn update_stored_keys(
    tx: &Transaction<'_>,
    changes: &[NewChange<'_>],
    winners: &BTreeMap<Key, Winner>,
) -> Result<(), StoreError> {
    let stored = winners
        .iter()
        .filter(|(_, w)| w.stored)
        .map(|(k, w)| (k, w.change));
    let d = desired_columns(changes, stored)?;
    if d.seq.is_empty() {
        return Ok(());
    }
    let stmt = tx
        .prepare_cached(
            "UPDATE desired d SET list_id = u.li, member = u.me, time_ms = u.ti, seq = u.se,
               part = u.pa, accepted_ms = u.ac, data_fields = u.da,
               update_existing_users_only = u.ue, channel_unsubscribe = u.cu,
               campaign_id = u.ca, state = 'pending', reason = NULL, attempts = 0,
               next_attempt_ms = 0, tries = 0
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::bool[],
               $7::int8[], $8::int8[], $9::int4[], $10::int8[], $11::text[], $12::bool[],
               $13::bool[], $14::int8[])
               AS u(de, lk, em, ui, li, me, ti, se, pa, ac, da, ue, cu, ca)
             WHERE d.destination = u.de AND d.list_key = u.lk AND d.email = u.em
               AND d.user_id = u.ui
               AND (u.ti IS NOT NULL, COALESCE(u.ti, 0), u.se)
                 > (d.time_ms IS NOT NULL, COALESCE(d.time_ms, 0), d.seq)",
        )
        .await
        .map_err(pg(OP))?;
    tx.execute(&stmt, &d.params()).await.map_err(pg(OP))?;
    Ok(())
}
