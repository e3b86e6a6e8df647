//! What accepting a batch does to each key, decided in memory from the keys' stored rows
//! (locked by the caller) and the batch's changes in arrival order: which change becomes a
//! key's desired state, which are stale or refused, which stored events are superseded, and
//! what changes in the figures. Pure: no I/O, so the same rules as the SQLite engine
//! (`crate::sqlite::accept`) are checked here without a database.

use std::collections::{BTreeMap, HashMap};

use super::floors::Audience;
use crate::snapshot::Floor;
use crate::sqlite::counts::Deltas;
use crate::store::{Applied, MembershipChange, StatusKind, Version};

/// A key: (destination, audience, email, userId), identity parts `''` when absent.
pub(super) type Key = (String, String, String, String);

/// A key's stored row, as accepting needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Stored {
    pub seq: i64,
    pub part: i32,
    pub time_ms: Option<i64>,
    pub state: String,
    /// The messageId of `seq` (empty if that event was pruned).
    pub message_id: String,
}

/// One change of a new event, in arrival order.
#[derive(Debug)]
pub(super) struct NewChange<'a> {
    /// Index of the event in the batch, and of the change in the event.
    pub event: usize,
    pub part: i32,
    pub seq: i64,
    pub message_id: &'a str,
    pub destination: &'a str,
    pub received_ms: i64,
    pub change: &'a MembershipChange,
}

/// A status row of the batch's events, to insert.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct StatusRow {
    pub seq: i64,
    pub part: i32,
    pub destination: String,
    pub list_key: String,
    pub email: String,
    pub user_id: String,
    pub member: Option<bool>,
    pub time_ms: Option<i64>,
    pub status: StatusKind,
    pub reason: Option<String>,
    pub updated_ms: i64,
}

/// A stored event to mark superseded (if it is still accepted or pending).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Supersede {
    pub seq: i64,
    pub part: i32,
    pub destination: String,
    pub list_key: String,
    pub reason: String,
    /// When the superseding event was received.
    pub updated_ms: i64,
}

/// Where a key's desired state ends up after the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Winner {
    /// Index into the changes passed to [`decide`].
    pub change: usize,
    /// Whether the key had a stored row (update) or not (insert).
    pub stored: bool,
}

/// Everything [`decide`] found.
#[derive(Debug, Default)]
pub(super) struct Decisions {
    /// One per change, in the order given.
    pub applied: Vec<Applied>,
    /// One per change, in the order given.
    pub statuses: Vec<StatusRow>,
    pub supersede: Vec<Supersede>,
    /// Keys whose desired row changes, sorted.
    pub winners: BTreeMap<Key, Winner>,
    /// The figures' changes, without the superseded stored events (counted when the update
    /// says what they were) and with the batch's statuses as they end up.
    pub deltas: Deltas,
}

/// The key of a change; `None` for a change without identity.
pub(super) fn key_of(destination: &str, c: &MembershipChange) -> Option<Key> {
    if c.identity.is_empty() {
        return None;
    }
    Some((
        destination.to_string(),
        c.audience_key.clone(),
        c.identity.email.clone().unwrap_or_default(),
        c.identity.user_id.clone().unwrap_or_default(),
    ))
}

fn ver(time_ms: Option<i64>, seq: i64) -> Version {
    Version {
        time_ms,
        seq: seq.max(0) as u64,
    }
}

/// The current desired change of a key while the batch is decided.
struct Current {
    seq: i64,
    part: i32,
    time_ms: Option<i64>,
    state: String,
    message_id: String,
    /// The change of the batch it came from (its status row has the same index).
    from_batch: Option<usize>,
}

/// Decides a batch: `changes` in arrival order, `stored` the locked rows of their keys,
/// `floors` the snapshot floors of their audiences.
pub(super) fn decide(
    changes: &[NewChange<'_>],
    stored: &BTreeMap<Key, Stored>,
    floors: &HashMap<Audience, Floor>,
) -> Decisions {
    let mut out = Decisions::default();
    let mut current: BTreeMap<Key, Current> = BTreeMap::new();
    for (i, nc) in changes.iter().enumerate() {
        let c = nc.change;
        let mut row = StatusRow {
            seq: nc.seq,
            part: nc.part,
            destination: nc.destination.to_string(),
            list_key: c.audience_key.clone(),
            email: c.identity.email.clone().unwrap_or_default(),
            user_id: c.identity.user_id.clone().unwrap_or_default(),
            member: Some(c.member),
            time_ms: c.time_ms,
            status: StatusKind::Accepted,
            reason: None,
            updated_ms: nc.received_ms,
        };
        let Some(key) = key_of(nc.destination, c) else {
            let why = "the change has neither an email nor a userId";
            row.status = StatusKind::Rejected;
            row.reason = Some(why.into());
            out.applied.push(Applied::Refused(why.into()));
            out.statuses.push(row);
            continue;
        };
        // Older than the audience's newest snapshot: that snapshot replaced it, whatever the
        // key (`floors` holds the batch's audiences that have one: a few).
        if let Some(why) = floors
            .iter()
            .find(|((d, k), _)| *d == key.0 && *k == key.1)
            .and_then(|(_, f)| f.supersedes(c, nc.received_ms))
        {
            row.status = StatusKind::Superseded;
            row.reason = Some(why);
            out.applied.push(Applied::Stale);
            out.statuses.push(row);
            continue;
        }
        if !current.contains_key(&key)
            && let Some(s) = stored.get(&key)
        {
            current.insert(
                key.clone(),
                Current {
                    seq: s.seq,
                    part: s.part,
                    time_ms: s.time_ms,
                    state: s.state.clone(),
                    message_id: s.message_id.clone(),
                    from_batch: None,
                },
            );
        }
        let d = out.deltas.of(nc.destination, &c.audience_key);
        let applied = match current.get(&key) {
            None => {
                d.keys += 1;
                d.pending += 1;
                Applied::Current
            }
            Some(cur) if cur.seq == nc.seq => {
                let why = "the event names this user and audience twice; the first counts";
                row.status = StatusKind::Skipped;
                row.reason = Some(why.into());
                Applied::Refused(why.into())
            }
            Some(cur) if ver(c.time_ms, nc.seq) < ver(cur.time_ms, cur.seq) => {
                row.status = StatusKind::Skipped;
                row.reason = Some(format!(
                    "stale: event {:?} for the same user and audience is newer",
                    cur.message_id
                ));
                Applied::Stale
            }
            Some(cur) => {
                d.state_moved(&cur.state, "pending");
                if cur.state == "pending" {
                    let why = format!("superseded by event {:?}", nc.message_id);
                    match cur.from_batch {
                        Some(j) => {
                            let old = &mut out.statuses[j];
                            old.status = StatusKind::Superseded;
                            old.reason = Some(why);
                            old.updated_ms = nc.received_ms;
                        }
                        None => out.supersede.push(Supersede {
                            seq: cur.seq,
                            part: cur.part,
                            destination: key.0.clone(),
                            list_key: key.1.clone(),
                            reason: why,
                            updated_ms: nc.received_ms,
                        }),
                    }
                }
                Applied::Current
            }
        };
        if applied == Applied::Current {
            current.insert(
                key.clone(),
                Current {
                    seq: nc.seq,
                    part: nc.part,
                    time_ms: c.time_ms,
                    state: "pending".into(),
                    message_id: nc.message_id.to_string(),
                    from_batch: Some(i),
                },
            );
            out.winners.insert(
                key.clone(),
                Winner {
                    change: i,
                    stored: stored.contains_key(&key),
                },
            );
        }
        out.applied.push(applied);
        out.statuses.push(row);
    }
    for s in &out.statuses {
        out.deltas
            .of(&s.destination, &s.list_key)
            .event(s.status, 1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ChangeSettings, Identity};

    fn change(audience: &str, email: &str, member: bool, t: Option<i64>) -> MembershipChange {
        MembershipChange {
            audience_key: audience.into(),
            list_id: None,
            identity: Identity::new(Some(email), None),
            member,
            data_fields: None,
            settings: ChangeSettings::default(),
            time_ms: t,
        }
    }

    fn nc<'a>(event: usize, seq: i64, msg: &'a str, c: &'a MembershipChange) -> NewChange<'a> {
        NewChange {
            event,
            part: 0,
            seq,
            message_id: msg,
            destination: "d",
            received_ms: 5,
            change: c,
        }
    }

    #[test]
    fn within_a_batch_the_latest_wins_and_the_earlier_is_superseded() {
        let (a, b, c) = (
            change("aud", "x@y.z", true, Some(10)),
            change("aud", "x@y.z", false, Some(20)),
            change("aud", "x@y.z", true, Some(15)),
        );
        let changes = [nc(0, 1, "m1", &a), nc(1, 2, "m2", &b), nc(2, 3, "m3", &c)];
        let d = decide(&changes, &BTreeMap::new(), &HashMap::new());
        assert_eq!(
            d.applied,
            vec![Applied::Current, Applied::Current, Applied::Stale]
        );
        let kinds: Vec<StatusKind> = d.statuses.iter().map(|s| s.status).collect();
        assert_eq!(
            kinds,
            vec![
                StatusKind::Superseded,
                StatusKind::Accepted,
                StatusKind::Skipped
            ]
        );
        assert_eq!(d.winners.values().next().map(|w| w.change), Some(1));
        let delta = *d.deltas.sorted()[0].2;
        assert_eq!((delta.keys, delta.pending), (1, 1));
    }

    #[test]
    fn a_stored_newer_version_makes_the_change_stale_and_an_older_one_is_superseded() {
        let key: Key = ("d".into(), "aud".into(), "x@y.z".into(), String::new());
        let stored = |t| {
            BTreeMap::from([(
                key.clone(),
                Stored {
                    seq: 1,
                    part: 0,
                    time_ms: Some(t),
                    state: "pending".into(),
                    message_id: "old".into(),
                },
            )])
        };
        let c = change("aud", "x@y.z", true, Some(10));
        let d = decide(&[nc(0, 2, "new", &c)], &stored(20), &HashMap::new());
        assert_eq!(d.applied, vec![Applied::Stale]);
        assert!(d.supersede.is_empty() && d.winners.is_empty());
        assert!(
            d.statuses[0]
                .reason
                .as_deref()
                .unwrap_or("")
                .contains("\"old\"")
        );
        let d = decide(&[nc(0, 2, "new", &c)], &stored(5), &HashMap::new());
        assert_eq!(d.applied, vec![Applied::Current]);
        assert_eq!(d.supersede.len(), 1);
        assert_eq!(
            d.winners[&key],
            Winner {
                change: 0,
                stored: true
            }
        );
    }

    #[test]
    fn a_change_older_than_the_audiences_snapshot_is_superseded_whatever_its_key() {
        let floors = HashMap::from([(
            ("d".to_string(), "aud".to_string()),
            Floor {
                time_ms: 100,
                message_id: "snapshot-1".into(),
            },
        )]);
        let (old, same, newer, other) = (
            change("aud", "x@y.z", true, Some(99)),
            change("aud", "x@y.z", true, Some(100)),
            change("aud", "w@y.z", false, Some(101)),
            change("other", "x@y.z", true, Some(1)),
        );
        let changes = [
            nc(0, 1, "old", &old),
            nc(1, 2, "same", &same),
            nc(2, 3, "newer", &newer),
            nc(3, 4, "other", &other),
        ];
        let d = decide(&changes, &BTreeMap::new(), &floors);
        assert_eq!(
            d.applied,
            vec![
                Applied::Stale,
                Applied::Current,
                Applied::Current,
                Applied::Current
            ]
        );
        assert_eq!(d.statuses[0].status, StatusKind::Superseded);
        let why = d.statuses[0].reason.as_deref().unwrap_or("");
        assert!(why.contains("\"snapshot-1\""), "{why}");
        assert_eq!(d.winners.len(), 3);
        let delta = d
            .deltas
            .sorted()
            .into_iter()
            .find(|(_, k, _)| *k == "aud")
            .map(|(_, _, d)| *d)
            .expect("aud");
        let superseded = delta.events[crate::sqlite::counts::index(StatusKind::Superseded)];
        assert_eq!((delta.keys, superseded), (2, 1));
    }
}
