//! What recording outcomes does, decided in memory from the keys' locked rows and their
//! planned events, with the rules of the SQLite engine (`crate::sqlite::outcomes`): a planned
//! version that is still the desired one settles its key; a newer change arrived meanwhile
//! keeps the key pending (a delivery still counts for the planned event and the acknowledged
//! state); an outcome reported twice keeps the first. Outcomes of one call are applied in
//! order, each seeing the previous ones.

use std::collections::HashMap;

use crate::sqlite::counts::Delta;
use crate::store::{Outcome, OutcomeRow, Recorded, StatusKind, Version};

/// A key's desired row, as outcomes need and change it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct KeyRow {
    pub seq: i64,
    pub part: i32,
    pub time_ms: Option<i64>,
    pub member: bool,
    pub state: String,
    pub reason: Option<String>,
    pub attempts: i64,
    pub tries: i64,
    pub next_attempt_ms: i64,
    pub ack_member: Option<bool>,
    pub ack_time_ms: Option<i64>,
    pub ack_seq: Option<i64>,
    pub ack_ms: Option<i64>,
    /// Changed by an outcome: to be written back.
    pub dirty: bool,
}

/// An event's row in the audience, as outcomes need and change it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct EventRow {
    pub part: i32,
    pub member: Option<bool>,
    pub time_ms: Option<i64>,
    pub status: StatusKind,
    pub reason: Option<String>,
    pub next_attempt_ms: Option<i64>,
    pub updated_ms: i64,
    pub dirty: bool,
}

/// (email, userId) as stored.
pub(super) type Ident = (String, String);

fn ver(time_ms: Option<i64>, seq: i64) -> Version {
    Version {
        time_ms,
        seq: seq.max(0) as u64,
    }
}

/// The state of the keys and events one call touches.
#[derive(Debug, Default)]
pub(super) struct Book {
    pub keys: HashMap<Ident, KeyRow>,
    /// By (seq, email, userId).
    pub events: HashMap<(i64, String, String), EventRow>,
}

impl Book {
    fn set_status(
        &mut self,
        d: &mut Delta,
        ev: &(i64, String, String),
        k: StatusKind,
        reason: Option<&str>,
        next: Option<i64>,
        now_ms: i64,
    ) {
        if let Some(e) = self.events.get_mut(ev) {
            d.event_moved(e.status, k);
            e.status = k;
            e.reason = reason.map(str::to_string);
            e.next_attempt_ms = next;
            e.updated_ms = now_ms;
            e.dirty = true;
        }
    }

    /// Records one outcome.
    pub fn record(&mut self, d: &mut Delta, now_ms: i64, o: &OutcomeRow, seq: i64) -> Recorded {
        let ident: Ident = (
            o.identity.email.clone().unwrap_or_default(),
            o.identity.user_id.clone().unwrap_or_default(),
        );
        let Some(row) = self.keys.get(&ident).cloned() else {
            return Recorded::Unknown;
        };
        let unchanged = row.seq == seq;
        let ev_key = (seq, ident.0.clone(), ident.1.clone());
        let settled = match &o.outcome {
            Outcome::Delivered => Some((StatusKind::Delivered, None)),
            Outcome::Rejected { reason } => Some((StatusKind::Rejected, Some(reason.as_str()))),
            Outcome::Retry { .. } | Outcome::Superseded { .. } => None,
        };
        if let Some((kind, reason)) = settled
            && unchanged
            && row.state == "pending"
        {
            let r = self.keys.get_mut(&ident).expect("read above");
            r.state = kind.as_str().to_string();
            r.reason = reason.map(str::to_string);
            r.next_attempt_ms = 0;
            d.state_moved("pending", kind.as_str());
            if kind == StatusKind::Delivered {
                r.ack_member = Some(r.member);
                r.ack_time_ms = r.time_ms;
                r.ack_seq = Some(r.seq);
                r.ack_ms = Some(now_ms);
                d.ack_moved(row.ack_member, row.member);
                d.delivered_at(now_ms);
            }
            r.dirty = true;
            self.set_status(d, &ev_key, kind, reason, None, now_ms);
            return Recorded::Applied;
        }
        let Some(event) = self.events.get(&ev_key).cloned() else {
            return Recorded::Unknown;
        };
        if unchanged && row.state != "pending" && o.outcome != Outcome::Delivered {
            return Recorded::Applied;
        }
        // (state, reason, attempts to add, next attempt), when the key settles.
        let settle: Option<(&str, Option<String>, i64, i64)> = match &o.outcome {
            Outcome::Delivered => {
                self.set_status(d, &ev_key, StatusKind::Delivered, None, None, now_ms);
                let newer = match row.ack_seq {
                    None => true,
                    Some(a) => ver(event.time_ms, seq) > ver(row.ack_time_ms, a),
                };
                if newer {
                    let r = self.keys.get_mut(&ident).expect("read above");
                    r.ack_member = event.member;
                    r.ack_time_ms = event.time_ms;
                    r.ack_seq = Some(seq);
                    r.ack_ms = Some(now_ms);
                    r.dirty = true;
                    d.ack_moved(row.ack_member, event.member == Some(true));
                    d.delivered_at(now_ms);
                }
                unchanged.then_some(("delivered", None, 0, 0))
            }
            Outcome::Rejected { reason } => {
                self.set_status(d, &ev_key, StatusKind::Rejected, Some(reason), None, now_ms);
                unchanged.then(|| ("rejected", Some(reason.clone()), 0, 0))
            }
            Outcome::Retry {
                next_attempt_ms,
                reason,
            } => {
                if unchanged {
                    self.set_status(
                        d,
                        &ev_key,
                        StatusKind::Pending,
                        Some(reason),
                        Some(*next_attempt_ms),
                        now_ms,
                    );
                }
                unchanged.then(|| ("pending", Some(reason.clone()), 1, *next_attempt_ms))
            }
            Outcome::Superseded { reason } => {
                if unchanged {
                    self.set_status(
                        d,
                        &ev_key,
                        StatusKind::Superseded,
                        Some(reason),
                        None,
                        now_ms,
                    );
                }
                unchanged.then(|| ("superseded", Some(reason.clone()), 0, 0))
            }
        };
        if let Some((state, reason, add, next)) = settle {
            let r = self.keys.get_mut(&ident).expect("read above");
            d.state_moved(&r.state, state);
            r.tries = r.tries.max(r.attempts + add);
            r.attempts += add;
            r.state = state.to_string();
            r.reason = reason;
            r.next_attempt_ms = next;
            r.dirty = true;
        }
        if unchanged {
            Recorded::Applied
        } else {
            Recorded::ChangedMeanwhile
        }
    }
}

/// How the planned events of one call are read.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct EventLookups<'a> {
    /// (seq, part) of the planned events of keys that still point at them, or given by the
    /// outcome: one index search each, whatever the number of rows under the seq (a snapshot
    /// writes all its keys under one seq).
    pub by_part: Vec<(i64, i32)>,
    /// (seq, email, userId) of the planned events of keys that changed meanwhile, when the
    /// outcome does not give the part: found among their seq's rows (rare: a key that changed
    /// while its request was in flight, and an outcome from a caller that did not keep the
    /// part).
    pub by_key: Vec<(i64, &'a str, &'a str)>,
}

/// Which event rows the outcomes need, and how to find each (see [`EventLookups`]). `seqs`
/// are the outcomes' seqs; `keys` the keys' rows as locked. An outcome for an unknown key
/// needs none.
pub(super) fn event_lookups<'a>(
    outcomes: &'a [OutcomeRow],
    seqs: &[i64],
    keys: &HashMap<Ident, KeyRow>,
) -> EventLookups<'a> {
    let mut out = EventLookups::default();
    for (o, &seq) in outcomes.iter().zip(seqs) {
        let email = o.identity.email.as_deref().unwrap_or("");
        let user_id = o.identity.user_id.as_deref().unwrap_or("");
        let Some(k) = keys.get(&(email.to_string(), user_id.to_string())) else {
            continue;
        };
        // A row found by a part the outcome gives is keyed by its own identity in the book,
        // so a part that is not this key's finds nothing (`Recorded::Unknown`).
        let given = o.part.and_then(|p| i32::try_from(p).ok());
        match given {
            _ if k.seq == seq => out.by_part.push((seq, k.part)),
            Some(part) => out.by_part.push((seq, part)),
            None => out.by_key.push((seq, email, user_id)),
        }
    }
    out.by_part.sort_unstable();
    out.by_part.dedup();
    out.by_key.sort_unstable();
    out.by_key.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Identity;

    fn book(state: &str) -> Book {
        let mut b = Book::default();
        b.keys.insert(
            ("a@x.co".into(), String::new()),
            KeyRow {
                seq: 7,
                part: 0,
                time_ms: Some(1),
                member: true,
                state: state.into(),
                reason: None,
                attempts: 0,
                tries: 0,
                next_attempt_ms: 0,
                ack_member: None,
                ack_time_ms: None,
                ack_seq: None,
                ack_ms: None,
                dirty: false,
            },
        );
        b.events.insert(
            (7, "a@x.co".into(), String::new()),
            EventRow {
                part: 0,
                member: Some(true),
                time_ms: Some(1),
                status: StatusKind::Accepted,
                reason: None,
                next_attempt_ms: None,
                updated_ms: 0,
                dirty: false,
            },
        );
        b
    }

    fn row(outcome: Outcome) -> OutcomeRow {
        OutcomeRow {
            identity: Identity::new(Some("a@x.co"), None),
            seq: 7,
            part: None,
            row_id: None,
            outcome,
        }
    }

    #[test]
    fn a_retry_then_a_delivery_settles_the_key_and_counts_one_attempt() {
        let mut b = book("pending");
        let mut d = Delta::default();
        let retry = Outcome::Retry {
            next_attempt_ms: 50,
            reason: "503".into(),
        };
        assert_eq!(b.record(&mut d, 10, &row(retry), 7), Recorded::Applied);
        let k = &b.keys[&("a@x.co".to_string(), String::new())];
        assert_eq!((k.attempts, k.tries, k.next_attempt_ms), (1, 1, 50));
        assert_eq!(
            b.record(&mut d, 20, &row(Outcome::Delivered), 7),
            Recorded::Applied
        );
        let k = &b.keys[&("a@x.co".to_string(), String::new())];
        assert_eq!(
            (k.state.as_str(), k.ack_seq, k.ack_ms),
            ("delivered", Some(7), Some(20))
        );
        assert_eq!(
            (d.members, d.pending, d.last_delivery_ms),
            (1, -1, Some(20))
        );
        let e = &b.events[&(7, "a@x.co".to_string(), String::new())];
        assert_eq!(e.status, StatusKind::Delivered);
    }

    #[test]
    fn unknown_keys_and_events_are_unknown() {
        let mut b = book("pending");
        let mut d = Delta::default();
        assert_eq!(
            b.record(&mut d, 1, &row(Outcome::Delivered), 8),
            Recorded::Unknown
        );
        assert_eq!(d, Delta::default());
    }

    /// The planned event of a key that still points at it is read by (seq, part), the key's
    /// part (not the first naming of the key under that seq, nor a part the outcome gives); a
    /// key that changed meanwhile by the part the outcome gives, else searched by key; an
    /// unknown key needs nothing. (Reading every row of the outcomes'
    /// seqs made a snapshot's delivery quadratic: all its keys share one seq.)
    #[test]
    fn planned_events_are_read_by_part_unless_the_key_changed() {
        let mut b = book("pending");
        // A snapshot's key (seq 9), at part 41,000 of it.
        b.keys.insert(
            ("s@x.co".into(), "u1".into()),
            KeyRow {
                seq: 9,
                part: 41_000,
                ..b.keys[&("a@x.co".to_string(), String::new())].clone()
            },
        );
        let at = |email: &str, user_id: Option<&str>, seq: u64, part: Option<u32>| OutcomeRow {
            identity: Identity::new(Some(email), user_id),
            seq,
            part,
            row_id: None,
            outcome: Outcome::Delivered,
        };
        let outcomes = [
            at("s@x.co", Some("u1"), 9, None),
            at("a@x.co", None, 7, Some(3)),
            at("a@x.co", None, 7, None),
            at("a@x.co", None, 5, None),
            at("a@x.co", None, 4, Some(2)),
            at("nobody@x.co", None, 9, Some(1)),
        ];
        let seqs: Vec<i64> = outcomes.iter().map(|o| o.seq as i64).collect();
        let got = event_lookups(&outcomes, &seqs, &b.keys);
        assert_eq!(
            got,
            EventLookups {
                by_part: vec![(4, 2), (7, 0), (9, 41_000)],
                by_key: vec![(5, "a@x.co", "")],
            }
        );
    }
}
