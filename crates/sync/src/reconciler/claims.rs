//! Users with a request in flight, per audience: a row is taken for sending only when no other
//! row of the same person (by email or by userId) is in flight, so two versions of one user are
//! never in flight at once and the latest always lands last.

use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};

use hashbrown::{DefaultHashBuilder, HashMap, HashSet};

use super::shared::lock;
use crate::store::{Identity, PendingRow, Seq};

/// Users (by email and by userId) of one audience with a request in flight. Hashes, not
/// strings: a collision only delays a row until the other request is done. The maps hash with
/// hashbrown's default (foldhash, randomly seeded), not SipHash: every row taken and
/// released is several lookups (about 4% of the service's CPU in part (c) with SipHash).
#[derive(Debug, Default)]
pub(super) struct Keys {
    ids: HashMap<u64, u32>,
    /// The seqs of the rows in flight (a count each: two rows of one event may be), which
    /// the next read of the audience leaves out ([`Keys::seqs_in_flight`]).
    seqs: HashMap<u64, u32>,
    pub(super) rows: usize,
}

impl Keys {
    /// The seqs of the rows in flight, ascending: the store leaves them out of a read
    /// instead of returning them to be skipped here.
    pub(super) fn seqs_in_flight(&self) -> Vec<Seq> {
        let mut seqs: Vec<Seq> = self.seqs.keys().copied().collect();
        seqs.sort_unstable();
        seqs
    }
}

#[derive(Debug, Default)]
pub(super) struct InFlightTable {
    hasher: DefaultHashBuilder,
    pub(super) audiences: HashMap<String, Keys>,
    /// Per audience with a pending read under way ([`Claim::begin_read`]): users whose request
    /// finished meanwhile. The read may predate their outcome, so [`Claim::take`] leaves them
    /// for the next read instead of sending the same version twice.
    pub(super) released: HashMap<String, HashSet<u64>>,
}

impl InFlightTable {
    fn hashes(&self, id: &Identity) -> [Option<u64>; 2] {
        [
            id.email.as_deref().map(|e| self.hasher.hash_one((0u8, e))),
            id.user_id
                .as_deref()
                .map(|u| self.hasher.hash_one((1u8, u))),
        ]
    }
}

pub(super) type InFlight = Arc<Mutex<InFlightTable>>;

/// Rows of one audience taken for sending; released (from the in-flight table) on drop, so
/// a panicking or cancelled task cannot strand them.
#[derive(Debug)]
pub(super) struct Claim {
    table: InFlight,
    audience: String,
    /// Per row taken: its user's hashes and its seq (`None` once split off).
    hashes: Vec<Option<([Option<u64>; 2], Seq)>>,
}

impl Claim {
    /// Marks the start of a read of `audience`'s pending rows (before the store query).
    pub(super) fn begin_read(table: &InFlight, audience: &str) {
        lock(table)
            .released
            .insert(audience.to_string(), HashSet::new());
    }

    /// Claims the rows of `rows` whose user has no request in flight and returns them, with
    /// the number of rows left out because their user is busy. Takes at most `max` rows.
    /// Rows of one person within `rows` are taken together, for the planner to collapse.
    pub(super) fn take(
        table: &InFlight,
        audience: &str,
        rows: Vec<PendingRow>,
        max: usize,
    ) -> (Claim, Vec<PendingRow>, usize) {
        let mut t = lock(table);
        let mut taken = Vec::with_capacity(rows.len().min(max));
        let mut hashes = Vec::with_capacity(taken.capacity());
        let mut blocked = 0;
        let hs: Vec<[Option<u64>; 2]> = rows.iter().map(|r| t.hashes(&r.identity)).collect();
        let released = t.released.remove(audience).unwrap_or_default();
        let keys = t.audiences.entry(audience.to_string()).or_default();
        for (row, h) in rows.into_iter().zip(hs) {
            if taken.len() >= max {
                break;
            }
            if h.iter()
                .flatten()
                .any(|x| keys.ids.contains_key(x) || released.contains(x))
            {
                blocked += 1;
                continue;
            }
            hashes.push(Some((h, row.version.seq)));
            taken.push(row);
        }
        for (h, seq) in hashes.iter().flatten() {
            for x in h.iter().flatten() {
                *keys.ids.entry(*x).or_default() += 1;
            }
            *keys.seqs.entry(*seq).or_default() += 1;
            keys.rows += 1;
        }
        if keys.rows == 0 {
            t.audiences.remove(audience);
        }
        drop(t);
        (
            Claim {
                table: table.clone(),
                audience: audience.to_string(),
                hashes,
            },
            taken,
            blocked,
        )
    }

    /// Moves the claims of rows `idx` (indices into the rows returned by [`Claim::take`])
    /// into a new claim.
    pub(super) fn split(&mut self, idx: impl IntoIterator<Item = usize>) -> Claim {
        let hashes = idx
            .into_iter()
            .map(|i| self.hashes.get_mut(i).and_then(Option::take))
            .collect();
        Claim {
            table: self.table.clone(),
            audience: self.audience.clone(),
            hashes,
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut t = lock(&self.table);
        if let Some(r) = t.released.get_mut(&self.audience) {
            r.extend(
                self.hashes
                    .iter()
                    .flatten()
                    .flat_map(|(h, _)| h.iter().flatten().copied()),
            );
        }
        let Some(keys) = t.audiences.get_mut(&self.audience) else {
            return;
        };
        for (h, seq) in self.hashes.iter().flatten() {
            for x in h.iter().flatten() {
                if let Some(n) = keys.ids.get_mut(x) {
                    *n -= 1;
                    if *n == 0 {
                        keys.ids.remove(x);
                    }
                }
            }
            if let Some(n) = keys.seqs.get_mut(seq) {
                *n -= 1;
                if *n == 0 {
                    keys.seqs.remove(seq);
                }
            }
            keys.rows = keys.rows.saturating_sub(1);
        }
        if keys.rows == 0 {
            t.audiences.remove(&self.audience);
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    fn row(email: &str, uid: Option<&str>) -> PendingRow {
        PendingRow {
            audience_key: "a".into(),
            list_id: None,
            identity: Identity::new(Some(email), uid),
            member: true,
            data_fields: None,
            settings: Default::default(),
            version: crate::store::Version {
                time_ms: None,
                seq: 1,
            },
            part: 0,
            row_id: None,
            accepted_ms: 0,
            attempts: 0,
            last_error: None,
        }
    }

    fn row_at(email: &str, seq: u64) -> PendingRow {
        let mut r = row(email, None);
        r.version.seq = seq;
        r
    }

    fn seqs(table: &InFlight, audience: &str) -> Vec<Seq> {
        lock(table)
            .audiences
            .get(audience)
            .map_or_else(Vec::new, Keys::seqs_in_flight)
    }

    #[test]
    fn the_seqs_in_flight_follow_the_claims() {
        let table: InFlight = Arc::default();
        let (mut c1, _, _) = Claim::take(
            &table,
            "a",
            vec![
                row_at("a@x.co", 7),
                row_at("b@x.co", 3),
                row_at("c@x.co", 7),
            ],
            10,
        );
        // A row left out (its user busy) is not in flight.
        let (c2, got, blocked) = Claim::take(
            &table,
            "a",
            vec![row_at("a@x.co", 9), row_at("d@x.co", 5)],
            10,
        );
        assert_eq!((got.len(), blocked), (1, 1));
        assert_eq!(seqs(&table, "a"), vec![3, 5, 7]);
        // Seq 7 stays in flight while one of its two rows is.
        drop(c1.split([0]));
        assert_eq!(seqs(&table, "a"), vec![3, 5, 7]);
        drop(c1);
        assert_eq!(seqs(&table, "a"), vec![5]);
        drop(c2);
        assert!(seqs(&table, "a").is_empty());
    }

    #[test]
    fn a_user_released_during_a_read_waits_for_the_next_read() {
        let table: InFlight = Arc::default();
        let (c1, got, _) = Claim::take(&table, "a", vec![row("a@x.co", None)], 10);
        assert_eq!(got.len(), 1);
        // A read starts; the request in flight finishes (its outcome stored) before the read
        // is claimed: the read may still show the row as pending, so it is left out.
        Claim::begin_read(&table, "a");
        drop(c1);
        let (_c, got, blocked) = Claim::take(
            &table,
            "a",
            vec![row("a@x.co", None), row("b@x.co", None)],
            10,
        );
        assert_eq!((got.len(), blocked), (1, 1));
        assert_eq!(got[0].identity.email.as_deref(), Some("b@x.co"));
        // The next read (begun after the release) takes it.
        Claim::begin_read(&table, "a");
        let (_c, got, blocked) = Claim::take(&table, "a", vec![row("a@x.co", None)], 10);
        assert_eq!((got.len(), blocked), (1, 0));
        assert!(lock(&table).released.is_empty());
    }

    #[test]
    fn claims_block_the_same_user_until_released() {
        let table: InFlight = Arc::default();
        let (mut c1, got, blocked) = Claim::take(
            &table,
            "a",
            vec![row("a@x.co", Some("1")), row("b@x.co", None)],
            10,
        );
        assert_eq!((got.len(), blocked), (2, 0));
        // One person twice in one fetch: both taken, for the planner to collapse.
        let (_c0, got, blocked) = Claim::take(
            &table,
            "n",
            vec![row("s@x.co", None), row("s@x.co", Some("9"))],
            10,
        );
        assert_eq!((got.len(), blocked), (2, 0));
        // Same email, or same userId, is busy; another audience is not.
        let (_c2, got, blocked) = Claim::take(
            &table,
            "a",
            vec![
                row("a@x.co", None),
                row("z@x.co", Some("1")),
                row("c@x.co", None),
            ],
            10,
        );
        assert_eq!((got.len(), blocked), (1, 2));
        let (_c3, got, _) = Claim::take(&table, "other", vec![row("a@x.co", None)], 10);
        assert_eq!(got.len(), 1);
        // Releasing the first row only (split off and dropped) frees a@x.co / 1.
        drop(c1.split([0]));
        let (_c4, got, blocked) = Claim::take(
            &table,
            "a",
            vec![row("a@x.co", Some("1")), row("b@x.co", None)],
            10,
        );
        assert_eq!((got.len(), blocked), (1, 1));
        drop(c1);
        drop(_c4);
        drop(_c2);
        assert!(!lock(&table).audiences.contains_key("a"), "all released");
        // `max` caps what is taken.
        let (_c, got, _) = Claim::take(
            &table,
            "m",
            vec![row("p@x.co", None), row("q@x.co", None)],
            1,
        );
        assert_eq!(got.len(), 1);
    }
}
