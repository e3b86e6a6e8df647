//! The comparison of the store's keys of an audience with the live list, one key at a time in
//! any order: pure, no I/O. A key is expected in the list when Iterable acknowledged it as a
//! member; a key still pending is in flux and neither missing nor extra. A key matches a line
//! by its email or its userId (the list shows one of them per user). What grows in memory:
//! one byte per line, and the keys found extra (the drift, not the list).

use super::lines::LineSet;
use crate::store::{AudienceKey, Identity};

/// A row of the store matched this line.
const TOUCHED: u8 = 1;
/// A member (acknowledged) or pending key matched this line: it is where it should be, or in
/// flux.
const COVERED: u8 = 2;

/// What the comparison found, in counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DriftCounts {
    /// Distinct identifiers in the live list.
    pub in_iterable: u64,
    /// Keys the store holds as acknowledged members (pending ones excepted).
    pub acknowledged: u64,
    /// Keys still to be sent: not compared.
    pub pending: u64,
    /// Keys whose event named another list (its external audience id): not compared.
    pub other_list: u64,
    /// Acknowledged members that the list lacks.
    pub missing: u64,
    /// Identifiers in the list that no acknowledged member or pending key of the store has.
    pub extra: u64,
    /// Of those, identifiers the store has no key for at all.
    pub extra_unknown: u64,
}

/// The walk over the store's keys, against the sealed lines of the list.
#[derive(Debug)]
pub struct Walk<'a> {
    lines: &'a LineSet,
    list_id: i64,
    flags: Vec<u8>,
    /// Keys not expected in the list that matched a line: extra unless a member or pending
    /// key matches the same line.
    candidates: Vec<(usize, Identity)>,
    pub counts: DriftCounts,
}

/// What the walk decided once every key was seen.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Extras {
    /// Keys of the store to be sent again (their desired state is not "member", or was never
    /// acknowledged, yet the list has them).
    pub known: Vec<Identity>,
    /// Indexes (in the [`LineSet`]) of the identifiers the store does not know.
    pub unknown: Vec<usize>,
}

impl<'a> Walk<'a> {
    pub fn new(lines: &'a LineSet, list_id: i64) -> Self {
        Self {
            lines,
            list_id,
            flags: vec![0; lines.len()],
            candidates: Vec::new(),
            counts: DriftCounts {
                in_iterable: lines.len() as u64,
                ..DriftCounts::default()
            },
        }
    }

    fn hits(&self, id: &Identity) -> [Option<usize>; 2] {
        let find = |v: &Option<String>| v.as_deref().and_then(|s| self.lines.find(s));
        let (e, u) = (find(&id.email), find(&id.user_id));
        [e, u.filter(|u| Some(*u) != e)]
    }

    /// One key of the store. Returns `true` when it is missing from the list.
    pub fn key(&mut self, k: &AudienceKey) -> bool {
        if k.list_id.is_some_and(|l| l != self.list_id) {
            self.counts.other_list += 1;
            return false;
        }
        let hits = self.hits(&k.identity);
        let found = hits.iter().any(Option::is_some);
        let expected = k.ack_member == Some(true);
        let mark = if k.pending || expected {
            TOUCHED | COVERED
        } else {
            TOUCHED
        };
        for i in hits.into_iter().flatten() {
            self.flags[i] |= mark;
            if mark == TOUCHED {
                self.candidates.push((i, k.identity.clone()));
            }
        }
        if k.pending {
            self.counts.pending += 1;
            return false;
        }
        if expected {
            self.counts.acknowledged += 1;
            if !found {
                self.counts.missing += 1;
                return true;
            }
        }
        false
    }

    /// Ends the walk: the extra identifiers, known to the store or not.
    pub fn finish(mut self) -> (DriftCounts, Extras) {
        let mut known: Vec<Identity> = self
            .candidates
            .drain(..)
            .filter(|(i, _)| self.flags[*i] & COVERED == 0)
            .map(|(_, id)| id)
            .collect();
        known.sort_unstable();
        known.dedup();
        let mut unknown = Vec::new();
        for (i, f) in self.flags.iter().enumerate() {
            if f & COVERED == 0 {
                self.counts.extra += 1;
                if f & TOUCHED == 0 {
                    unknown.push(i);
                }
            }
        }
        self.counts.extra_unknown = unknown.len() as u64;
        (self.counts, Extras { known, unknown })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(email: &str, user_id: &str, ack: Option<bool>, pending: bool) -> AudienceKey {
        AudienceKey {
            identity: Identity::new(Some(email), Some(user_id)),
            member: ack.unwrap_or(true),
            ack_member: ack,
            pending,
            list_id: None,
        }
    }

    /// Each row: the list's lines, the store's keys, then the missing keys (by email or
    /// userId), the known extras, the unknown extras and the counts (acknowledged, pending,
    /// extra).
    #[test]
    fn drift_by_table() {
        type Case<'a> = (
            &'a [&'a str],
            Vec<AudienceKey>,
            &'a [&'a str],
            &'a [&'a str],
            &'a [&'a str],
            (u64, u64, u64),
        );
        let cases: Vec<Case> = vec![
            // In sync.
            (
                &["a@x.co", "b@x.co"],
                vec![
                    key("a@x.co", "", Some(true), false),
                    key("b@x.co", "", Some(true), false),
                    key("c@x.co", "", Some(false), false),
                ],
                &[],
                &[],
                &[],
                (2, 0, 0),
            ),
            // Removed by hand: missing.
            (
                &["a@x.co"],
                vec![
                    key("a@x.co", "", Some(true), false),
                    key("b@x.co", "", Some(true), false),
                ],
                &["b@x.co"],
                &[],
                &[],
                (2, 0, 0),
            ),
            // Added by hand, unknown to the store.
            (
                &["a@x.co", "z@x.co"],
                vec![key("a@x.co", "", Some(true), false)],
                &[],
                &[],
                &["z@x.co"],
                (1, 0, 1),
            ),
            // A leaver still in the list: known extra.
            (
                &["a@x.co", "c@x.co"],
                vec![
                    key("a@x.co", "", Some(true), false),
                    key("c@x.co", "", Some(false), false),
                ],
                &[],
                &["c@x.co"],
                &[],
                (1, 0, 1),
            ),
            // Pending keys are in flux: neither missing nor extra.
            (
                &["p@x.co"],
                vec![
                    key("p@x.co", "", Some(false), true),
                    key("q@x.co", "", Some(true), true),
                ],
                &[],
                &[],
                &[],
                (0, 2, 0),
            ),
            // Matched by userId (a userId-based list).
            (
                &["u1", "u9"],
                vec![
                    key("a@x.co", "u1", Some(true), false),
                    key("b@x.co", "u2", Some(true), false),
                ],
                &["b@x.co"],
                &[],
                &["u9"],
                (2, 0, 1),
            ),
            // Two keys of one person: the member one covers the line.
            (
                &["a@x.co"],
                vec![
                    key("a@x.co", "", Some(false), false),
                    key("a@x.co", "u1", Some(true), false),
                ],
                &[],
                &[],
                &[],
                (1, 0, 0),
            ),
        ];
        for (n, (lines, keys, missing, known, unknown, (ack, pending, extra))) in
            cases.into_iter().enumerate()
        {
            let mut set = LineSet::default();
            for l in lines {
                set.push(l);
            }
            assert!(set.seal());
            let mut w = Walk::new(&set, 1);
            let got_missing: Vec<String> = keys
                .iter()
                .filter(|k| w.key(k))
                .filter_map(|k| k.identity.email.clone())
                .collect();
            let (counts, extras) = w.finish();
            assert_eq!(got_missing, missing, "case {n}: missing");
            let got_known: Vec<&str> = extras
                .known
                .iter()
                .filter_map(|i| i.email.as_deref())
                .collect();
            assert_eq!(got_known, known, "case {n}: known extras");
            let got_unknown: Vec<&str> = extras.unknown.iter().map(|i| set.get(*i)).collect();
            assert_eq!(got_unknown, unknown, "case {n}: unknown extras");
            assert_eq!(
                (counts.acknowledged, counts.pending, counts.extra),
                (ack, pending, extra),
                "case {n}: counts"
            );
            assert_eq!(counts.missing, missing.len() as u64);
            assert_eq!(counts.in_iterable, set.len() as u64);
        }
    }

    #[test]
    fn keys_of_another_list_are_not_compared() {
        let mut set = LineSet::default();
        set.push("a@x.co");
        assert!(set.seal());
        let mut w = Walk::new(&set, 1);
        let mut k = key("b@x.co", "", Some(true), false);
        k.list_id = Some(2);
        assert!(!w.key(&k));
        let (c, _) = w.finish();
        assert_eq!((c.other_list, c.missing, c.extra), (1, 0, 1));
    }
}
