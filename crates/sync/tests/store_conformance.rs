//! The store conformance suite: every engine of `sync::Engine` must pass these cases, run
//! through the seam the service uses ([`sync::Store`]: the engine behind its ingestion
//! queue). Each case takes a `Harness` (how to open a named database); `conformance!` runs
//! them all per engine.
//!
//! Engines: SQLite (files in a fresh temp directory) and PostgreSQL (a fresh schema per test
//! and name on the server of `ITERABLE_LISTS_TEST_PG_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`; a server that does not answer fails the tests).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

use destination::plan::Change;
use destination::{AudienceSettings, IgnoredSetting, SettingName};
use iterable::resolve::ListRegistry;
use iterable::types::ListRef;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Map, Value, json};
use sync::{
    Applied, ChangeSettings, DestinationState, EventContent, EventCounts, Identity,
    MembershipChange, NewEvent, Outcome, OutcomeRow, PostgresStore, Receipt, Recorded, SqliteStore,
    StatusKind, Store, StoreRegistry, Version,
};
use testkit::postgres::PgSchema;

/// Waits for a store call from synchronous code that runs on the test's runtime (the property
/// tests' cases): the call still goes through the async seam.
trait Wait: Future + Sized {
    fn wait(self) -> Self::Output {
        tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(self))
    }
}

impl<F: Future> Wait for F {}

/// Opens databases by name; the same name opens the same data again (after the previous
/// handle was dropped).
trait Harness {
    fn open(&self, name: &str) -> Store;
}

static NEXT: AtomicU64 = AtomicU64::new(0);

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// SQLite files in a fresh directory under the system temp dir, removed afterwards.
struct SqliteHarness {
    dir: std::path::PathBuf,
}

impl SqliteHarness {
    fn new() -> Self {
        Self {
            dir: std::env::temp_dir().join(unique("sync-conformance")),
        }
    }
}

impl Harness for SqliteHarness {
    fn open(&self, name: &str) -> Store {
        let path = self.dir.join(format!("{name}.db"));
        Store::sqlite(SqliteStore::open(&path).expect("open the test database"))
    }
}

impl Drop for SqliteHarness {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A PostgreSQL schema per name, dropped with the harness.
struct PostgresHarness {
    schemas: std::sync::Mutex<BTreeMap<String, PgSchema>>,
}

impl PostgresHarness {
    fn new() -> Self {
        Self {
            schemas: std::sync::Mutex::new(BTreeMap::new()),
        }
    }
}

impl Harness for PostgresHarness {
    fn open(&self, name: &str) -> Store {
        let url = {
            let mut schemas = self.schemas.lock().expect("schemas");
            schemas
                .entry(name.to_string())
                .or_insert_with(|| PgSchema::create(name))
                .url()
        };
        let db = PostgresStore::open(&url, 4, sync::postgres::Access::ReadWrite)
            .wait()
            .unwrap_or_else(|e| panic!("open the test schema: {e}"));
        Store::postgres(db)
    }
}

const D: &str = "prod";
const NOW: i64 = 1_700_000_000_000;

fn change(audience: &str, email: &str, member: bool, time_ms: Option<i64>) -> MembershipChange {
    MembershipChange {
        audience_key: audience.into(),
        list_id: None,
        identity: Identity::new(Some(email), None),
        member,
        data_fields: None,
        settings: ChangeSettings::default(),
        time_ms,
    }
}

fn event(message_id: &str, changes: Vec<MembershipChange>) -> NewEvent {
    NewEvent {
        destination: D.into(),
        message_id: message_id.into(),
        received_ms: NOW,
        content: EventContent::Changes(changes),
        ignored_settings: Vec::new(),
    }
}

async fn accept1(s: &Store, e: NewEvent) -> Receipt {
    let mut r = s.accept(vec![e]).await.expect("accept");
    assert_eq!(r.len(), 1);
    r.remove(0)
}

async fn status(s: &Store, message_id: &str) -> Vec<(StatusKind, Option<String>)> {
    s.event_status(D, message_id)
        .await
        .expect("event_status")
        .unwrap_or_else(|| panic!("event {message_id} is unknown"))
        .audiences
        .into_iter()
        .map(|a| (a.status, a.reason))
        .collect()
}

/// What `message_id` shows in its first audience: status, reason, next attempt and time.
async fn shown(s: &Store, message_id: &str) -> (StatusKind, Option<String>, Option<i64>, i64) {
    let e = s
        .event_status(D, message_id)
        .await
        .expect("status")
        .unwrap_or_else(|| panic!("event {message_id} is unknown"));
    let a = &e.audiences[0];
    (a.status, a.reason.clone(), a.next_attempt_ms, a.updated_ms)
}

async fn kinds(s: &Store, message_id: &str) -> Vec<StatusKind> {
    status(s, message_id)
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect()
}

fn id(email: &str) -> Identity {
    Identity::new(Some(email), None)
}

/// An outcome at `seq`, with the part of the planned change when it is given (as the
/// reconciler gives it).
fn outcome_row(identity: Identity, seq: u64, part: Option<u32>, outcome: Outcome) -> OutcomeRow {
    OutcomeRow {
        identity,
        seq,
        part,
        row_id: None,
        outcome,
    }
}

fn outcome(identity: Identity, seq: u64, outcome: Outcome) -> OutcomeRow {
    OutcomeRow {
        identity,
        seq,
        part: None,
        row_id: None,
        outcome,
    }
}

/// Records the delivery of `email`'s change at `seq` in `audience`, the part not given.
async fn delivered(s: &Store, audience: &str, email: &str, seq: u64) -> Vec<Recorded> {
    s.record_outcomes(
        D,
        audience,
        NOW,
        vec![outcome(id(email), seq, Outcome::Delivered)],
    )
    .await
    .expect("record")
}

mod cases {
    use super::*;

    pub async fn latest_wins_whatever_the_arrival_order(h: &dyn Harness) {
        let s = h.open("latest");
        let s = &s;
        // Times 10, 20, 30; the newest (30) says "member".
        let versions = [(10, false), (20, true), (30, true)];
        let orders = [
            [0, 1, 2],
            [0, 2, 1],
            [1, 0, 2],
            [1, 2, 0],
            [2, 0, 1],
            [2, 1, 0],
        ];
        for (n, order) in orders.iter().enumerate() {
            let audience = format!("aud{n}");
            let mut newest_seen = i64::MIN;
            let mut want = BTreeMap::new();
            for &i in order {
                let (t, member) = versions[i];
                let msg = format!("o{n}-t{t}");
                let r = accept1(
                    s,
                    event(&msg, vec![change(&audience, "a@x.co", member, Some(t))]),
                )
                .await;
                let stale = t < newest_seen;
                let expect = if stale {
                    Applied::Stale
                } else {
                    Applied::Current
                };
                assert_eq!(
                    r,
                    Receipt::Accepted {
                        seq: r.seq(),
                        changes: vec![expect]
                    },
                    "order {order:?}, t={t}"
                );
                want.insert(
                    msg,
                    if stale {
                        StatusKind::Skipped
                    } else if t == 30 {
                        StatusKind::Accepted
                    } else {
                        StatusKind::Superseded
                    },
                );
                newest_seen = newest_seen.max(t);
            }
            let rows = s.pending(D, &audience, NOW, 10).await.expect("pending");
            assert_eq!(rows.len(), 1, "order {order:?}");
            assert_eq!(rows[0].version.time_ms, Some(30), "order {order:?}");
            assert!(rows[0].member);
            for (msg, k) in want {
                assert_eq!(kinds(s, &msg).await, vec![k], "order {order:?}, {msg}");
            }
        }
        // Equal times: the later arrival wins. No time is older than any time.
        accept1(s, event("eq1", vec![change("eq", "b@x.co", true, Some(5))])).await;
        accept1(
            s,
            event("eq2", vec![change("eq", "b@x.co", false, Some(5))]),
        )
        .await;
        let r = accept1(s, event("none", vec![change("eq", "b@x.co", true, None)])).await;
        assert_eq!(
            r,
            Receipt::Accepted {
                seq: r.seq(),
                changes: vec![Applied::Stale]
            }
        );
        let rows = s.pending(D, "eq", NOW, 10).await.expect("pending");
        assert_eq!(rows.len(), 1);
        assert!(!rows[0].member, "the later of two equal times wins");
        assert_eq!(kinds(s, "eq1").await, vec![StatusKind::Superseded]);
    }

    pub async fn stale_events_are_recorded_as_skipped(h: &dyn Harness) {
        let s = h.open("stale");
        let s = &s;
        accept1(
            s,
            event("new", vec![change("vip", "a@x.co", true, Some(20))]),
        )
        .await;
        let r = accept1(
            s,
            event("old", vec![change("vip", "a@x.co", false, Some(10))]),
        )
        .await;
        assert!(matches!(&r, Receipt::Accepted { changes, .. } if changes == &[Applied::Stale]));
        let st = status(s, "old").await;
        assert_eq!(st.len(), 1);
        assert_eq!(st[0].0, StatusKind::Skipped);
        let reason = st[0].1.clone().unwrap_or_default();
        assert!(
            reason.contains("stale") && reason.contains("new"),
            "{reason}"
        );
        assert_eq!(kinds(s, "new").await, vec![StatusKind::Accepted]);
        let rows = s.pending(D, "vip", NOW, 10).await.expect("pending");
        assert_eq!(rows.len(), 1);
        assert!(rows[0].member && rows[0].version.time_ms == Some(20));
        let c = s.event_counts(D).await.expect("counts");
        assert_eq!((c.accepted, c.skipped, c.superseded), (1, 1, 0));
    }

    pub async fn duplicate_message_ids_are_ignored(h: &dyn Harness) {
        let s = h.open("dup");
        let s = &s;
        let first = accept1(
            s,
            event("m1", vec![change("vip", "a@x.co", true, Some(10))]),
        )
        .await;
        let rs = s
            .accept(vec![
                event("m1", vec![change("vip", "a@x.co", false, Some(99))]),
                event("m2", vec![change("vip", "b@x.co", true, Some(10))]),
                event("m2", vec![change("vip", "b@x.co", false, Some(99))]),
            ])
            .await
            .expect("accept");
        assert_eq!(rs[0], Receipt::Duplicate { seq: first.seq() });
        assert!(matches!(rs[1], Receipt::Accepted { .. }));
        assert_eq!(rs[2], Receipt::Duplicate { seq: rs[1].seq() });
        let rows = s.pending(D, "vip", NOW, 10).await.expect("pending");
        assert_eq!(rows.len(), 2);
        assert!(
            rows.iter()
                .all(|r| r.member && r.version.time_ms == Some(10)),
            "duplicates changed nothing: {rows:?}"
        );
        // The same messageId on another destination is a different event.
        let mut other = event("m1", vec![change("vip", "a@x.co", false, Some(5))]);
        other.destination = "staging".into();
        assert!(matches!(accept1(s, other).await, Receipt::Accepted { .. }));
        assert_eq!(s.event_counts(D).await.expect("counts").accepted, 2);
        assert_eq!(s.event_counts("staging").await.expect("counts").accepted, 1);
    }

    pub async fn pending_reflects_desired_versus_acknowledged(h: &dyn Harness) {
        let s = h.open("pending");
        let s = &s;
        let mut seqs: Vec<u64> = Vec::new();
        for (i, e) in ["a@x.co", "b@x.co", "c@x.co"].iter().enumerate() {
            let e = event(&format!("p{i}"), vec![change("vip", e, true, Some(1))]);
            seqs.push(accept1(s, e).await.seq());
        }
        accept1(
            s,
            event("other", vec![change("other", "z@x.co", false, Some(1))]),
        )
        .await;
        // Oldest arrival first, limited.
        let rows = s.pending(D, "vip", NOW, 2).await.expect("pending");
        let emails: Vec<_> = rows.iter().map(|r| r.identity.email.clone()).collect();
        assert_eq!(emails, vec![Some("a@x.co".into()), Some("b@x.co".into())]);
        assert_eq!(
            s.pending_audiences(D, NOW).await.expect("audiences"),
            vec!["other".to_string(), "vip".to_string()]
        );
        // Acknowledge a: no longer pending.
        let rec = s
            .record_outcomes(
                D,
                "vip",
                NOW,
                vec![outcome(id("a@x.co"), seqs[0], Outcome::Delivered)],
            )
            .await
            .expect("record");
        assert_eq!(rec, vec![Recorded::Applied]);
        let rows = s.pending(D, "vip", NOW, 10).await.expect("pending");
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().all(|r| r.identity != id("a@x.co")));
        // A newer change for a (email in another case: the same key) makes it pending again,
        // now the newest.
        accept1(
            s,
            event("p3", vec![change("vip", "A@X.CO", false, Some(2))]),
        )
        .await;
        let rows = s.pending(D, "vip", NOW, 10).await.expect("pending");
        let emails: Vec<_> = rows.iter().map(|r| r.identity.email.clone()).collect();
        assert_eq!(
            emails,
            vec![
                Some("b@x.co".into()),
                Some("c@x.co".into()),
                Some("a@x.co".into())
            ]
        );
        let counts = s.list_counts(D).await.expect("counts");
        let vip = counts
            .iter()
            .find(|c| c.audience_key == "vip")
            .expect("vip counted");
        assert_eq!(
            (vip.members, vip.pending, vip.rejected),
            (1, 3, 0),
            "a stays acknowledged as member until its removal is delivered"
        );
        assert_eq!(vip.oldest_pending_ms, Some(NOW));
        assert_eq!(vip.last_delivery_ms, Some(NOW));
        // Nothing pending in an audience that has no changes.
        assert!(
            s.pending(D, "nobody", NOW, 10)
                .await
                .expect("pending")
                .is_empty()
        );
    }

    pub async fn pending_except_leaves_out_the_rows_in_flight(h: &dyn Harness) {
        let s = h.open("pending_except");
        let s = &s;
        let mut seqs: Vec<u64> = Vec::new();
        for (i, e) in ["a@x.co", "b@x.co", "c@x.co", "d@x.co"].iter().enumerate() {
            let e = event(&format!("f{i}"), vec![change("vip", e, true, Some(1))]);
            seqs.push(accept1(s, e).await.seq());
        }
        let emails = |rows: &[sync::store::PendingRow]| -> Vec<String> {
            rows.iter()
                .map(|r| r.identity.email.clone().unwrap_or_default())
                .collect()
        };
        // a and c are in flight: left out, and the limit counts the rows returned.
        let in_flight = vec![seqs[0], seqs[2]];
        let rows = s
            .pending_except(D, "vip", NOW, 10, in_flight.clone())
            .await
            .expect("pending");
        assert_eq!(emails(&rows), ["b@x.co", "d@x.co"]);
        let rows = s
            .pending_except(D, "vip", NOW, 1, in_flight)
            .await
            .expect("pending");
        assert_eq!(emails(&rows), ["b@x.co"]);
        // A newer change of a key in flight has a seq of its own: it is read (the reconciler
        // holds it back until the request in flight is done).
        let newer = accept1(
            s,
            event("f4", vec![change("vip", "a@x.co", false, Some(2))]),
        )
        .await
        .seq();
        let rows = s
            .pending_except(D, "vip", NOW, 10, vec![seqs[0], seqs[2]])
            .await
            .expect("pending");
        assert_eq!(emails(&rows), ["b@x.co", "d@x.co", "a@x.co"]);
        assert_eq!(rows[2].version.seq, newer);
        // Rows in flight past one that is not (b, d) are left out too; every row in flight
        // leaves nothing.
        let rows = s
            .pending_except(D, "vip", NOW, 10, vec![seqs[1], seqs[3]])
            .await
            .expect("pending");
        assert_eq!(emails(&rows), ["c@x.co", "a@x.co"]);
        let rows = s
            .pending_except(D, "vip", NOW, 10, vec![seqs[1], seqs[2], seqs[3], newer])
            .await
            .expect("pending");
        assert!(rows.is_empty(), "{rows:?}");
        // Nothing in flight: every due row, as `pending` reads them.
        let all = s
            .pending_except(D, "vip", NOW, 10, Vec::new())
            .await
            .expect("pending");
        let plain = s.pending(D, "vip", NOW, 10).await.expect("pending");
        assert_eq!(all, plain);
        assert_eq!(all.len(), 4);

        // One event with two changes of the audience: both rows share its seq. With that seq
        // in flight, a later row is still read (the walk counts distinct seqs).
        let s2 = h.open("pending_except_shared_seq");
        let s2 = &s2;
        let shared = accept1(
            s2,
            event(
                "g0",
                vec![
                    change("vip", "a@x.co", true, Some(1)),
                    change("vip", "b@x.co", true, Some(1)),
                ],
            ),
        )
        .await
        .seq();
        accept1(
            s2,
            event("g1", vec![change("vip", "c@x.co", true, Some(1))]),
        )
        .await;
        let rows = s2
            .pending_except(D, "vip", NOW, 10, vec![shared])
            .await
            .expect("pending");
        assert_eq!(emails(&rows), ["c@x.co"]);
    }

    pub async fn delivered_only_if_unchanged_since_planning(h: &dyn Harness) {
        let s = h.open("delivered");
        let s = &s;
        let planned = accept1(s, event("e1", vec![change("vip", "a@x.co", true, Some(1))])).await;
        let rows = s.pending(D, "vip", NOW, 10).await.expect("pending");
        assert_eq!(rows[0].version.seq, planned.seq());
        // While the request is in flight, a newer change arrives.
        let newer = accept1(
            s,
            event("e2", vec![change("vip", "a@x.co", false, Some(2))]),
        )
        .await;
        let rec = s
            .record_outcomes(
                D,
                "vip",
                NOW + 1,
                vec![outcome(id("a@x.co"), planned.seq(), Outcome::Delivered)],
            )
            .await
            .expect("record");
        assert_eq!(rec, vec![Recorded::ChangedMeanwhile]);
        let rows = s.pending(D, "vip", NOW + 1, 10).await.expect("pending");
        assert_eq!(rows.len(), 1, "still pending for the newer change");
        assert_eq!(rows[0].version.seq, newer.seq());
        assert!(!rows[0].member);
        assert_eq!(kinds(s, "e1").await, vec![StatusKind::Delivered]);
        assert_eq!(kinds(s, "e2").await, vec![StatusKind::Accepted]);
        assert_eq!(s.list_counts(D).await.expect("counts")[0].members, 1);
        // Delivering the newer one settles the key.
        let rec = s
            .record_outcomes(
                D,
                "vip",
                NOW + 2,
                vec![outcome(id("a@x.co"), newer.seq(), Outcome::Delivered)],
            )
            .await
            .expect("record");
        assert_eq!(rec, vec![Recorded::Applied]);
        assert!(
            s.pending(D, "vip", NOW + 2, 10)
                .await
                .expect("pending")
                .is_empty()
        );
        assert_eq!(kinds(s, "e2").await, vec![StatusKind::Delivered]);
        let c = &s.list_counts(D).await.expect("counts")[0];
        assert_eq!(
            (c.members, c.pending, c.last_delivery_ms),
            (0, 0, Some(NOW + 2))
        );
        // A late delivery report of the older version does not roll the acknowledgement back.
        let rec = s
            .record_outcomes(
                D,
                "vip",
                NOW + 3,
                vec![outcome(id("a@x.co"), planned.seq(), Outcome::Delivered)],
            )
            .await
            .expect("record");
        assert_eq!(rec, vec![Recorded::ChangedMeanwhile]);
        assert_eq!(s.list_counts(D).await.expect("counts")[0].members, 0);
        // Unknown keys and versions are reported as such.
        let rec = s
            .record_outcomes(
                D,
                "vip",
                NOW,
                vec![
                    outcome(id("nobody@x.co"), planned.seq(), Outcome::Delivered),
                    outcome(id("a@x.co"), newer.seq() + 1000, Outcome::Delivered),
                ],
            )
            .await
            .expect("record");
        assert_eq!(rec, vec![Recorded::Unknown, Recorded::Unknown]);
        assert_eq!(s.event_counts(D).await.expect("counts").delivered, 2);
    }

    pub async fn rejected_keeps_the_reason(h: &dyn Harness) {
        let s = h.open("rejected");
        let s = &s;
        let r = accept1(s, event("bad", vec![change("vip", "bad@", true, Some(1))])).await;
        let rec = s
            .record_outcomes(
                D,
                "vip",
                NOW,
                vec![outcome(
                    id("bad@"),
                    r.seq(),
                    Outcome::Rejected {
                        reason: "invalidEmails".into(),
                    },
                )],
            )
            .await
            .expect("record");
        assert_eq!(rec, vec![Recorded::Applied]);
        assert_eq!(
            status(s, "bad").await,
            vec![(StatusKind::Rejected, Some("invalidEmails".into()))]
        );
        assert!(
            s.pending(D, "vip", NOW, 10)
                .await
                .expect("pending")
                .is_empty()
        );
        let c = &s.list_counts(D).await.expect("counts")[0];
        assert_eq!((c.rejected, c.pending, c.members), (1, 0, 0));
        assert_eq!(s.event_counts(D).await.expect("counts").rejected, 1);
        // A retry reported after the rejection does not reopen it.
        let rec = s
            .record_outcomes(
                D,
                "vip",
                NOW,
                vec![outcome(
                    id("bad@"),
                    r.seq(),
                    Outcome::Retry {
                        next_attempt_ms: NOW,
                        reason: "late".into(),
                    },
                )],
            )
            .await
            .expect("record");
        assert_eq!(rec, vec![Recorded::Applied]);
        assert_eq!(kinds(s, "bad").await, vec![StatusKind::Rejected]);
        // A newer change is pending again.
        accept1(
            s,
            event("bad2", vec![change("vip", "bad@", false, Some(2))]),
        )
        .await;
        assert_eq!(
            s.pending(D, "vip", NOW, 10).await.expect("pending").len(),
            1
        );
        assert_eq!(
            kinds(s, "bad").await,
            vec![StatusKind::Rejected],
            "stays rejected"
        );
        // Unusable events are logged with their reason too.
        let mut e = event("junk", vec![]);
        e.content = EventContent::Rejected("Email is not a string".into());
        let r = accept1(s, e).await;
        assert_eq!(
            r,
            Receipt::Accepted {
                seq: r.seq(),
                changes: vec![]
            }
        );
        let mut e = event("page", vec![]);
        e.content = EventContent::Skipped("page events are not handled".into());
        accept1(s, e).await;
        assert_eq!(
            status(s, "junk").await,
            vec![(StatusKind::Rejected, Some("Email is not a string".into()))]
        );
        assert_eq!(kinds(s, "page").await, vec![StatusKind::Skipped]);
        // A change with no identity at all is rejected, not stored.
        let r = accept1(s, event("anon", vec![change("vip", "", true, Some(1))])).await;
        assert!(
            matches!(&r, Receipt::Accepted { changes, .. } if matches!(changes[..], [Applied::Refused(_)]))
        );
        assert_eq!(kinds(s, "anon").await, vec![StatusKind::Rejected]);
        assert_eq!(
            s.pending(D, "vip", NOW, 10).await.expect("pending").len(),
            1
        );
    }

    pub async fn retry_keeps_the_next_attempt(h: &dyn Harness) {
        let s = h.open("retry");
        let s = &s;
        let r = accept1(s, event("e", vec![change("vip", "a@x.co", true, Some(1))])).await;
        let next = NOW + 5_000;
        let rec = s
            .record_outcomes(
                D,
                "vip",
                NOW,
                vec![outcome(
                    id("a@x.co"),
                    r.seq(),
                    Outcome::Retry {
                        next_attempt_ms: next,
                        reason: "429 Too Many Requests".into(),
                    },
                )],
            )
            .await
            .expect("record");
        assert_eq!(rec, vec![Recorded::Applied]);
        assert!(
            s.pending(D, "vip", NOW, 10)
                .await
                .expect("pending")
                .is_empty()
        );
        assert!(
            s.pending_audiences(D, NOW)
                .await
                .expect("audiences")
                .is_empty()
        );
        let rows = s.pending(D, "vip", next, 10).await.expect("pending");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].attempts, 1);
        assert_eq!(rows[0].last_error.as_deref(), Some("429 Too Many Requests"));
        let ev = s
            .event_status(D, "e")
            .await
            .expect("status")
            .expect("known");
        assert_eq!(ev.audiences[0].status, StatusKind::Pending);
        assert_eq!(ev.audiences[0].next_attempt_ms, Some(next));
        assert_eq!(ev.audiences[0].updated_ms, NOW);
        let c = &s.list_counts(D).await.expect("counts")[0];
        assert_eq!((c.pending, c.retrying), (1, 1));
        // A second failure counts up; then a delivery settles it.
        s.record_outcomes(
            D,
            "vip",
            next,
            vec![outcome(
                id("a@x.co"),
                r.seq(),
                Outcome::Retry {
                    next_attempt_ms: next + 10_000,
                    reason: "500".into(),
                },
            )],
        )
        .await
        .expect("record");
        let rows = s
            .pending(D, "vip", next + 10_000, 10)
            .await
            .expect("pending");
        assert_eq!(
            (rows[0].attempts, rows[0].last_error.as_deref()),
            (2, Some("500"))
        );
        s.record_outcomes(
            D,
            "vip",
            next + 10_000,
            vec![outcome(id("a@x.co"), r.seq(), Outcome::Delivered)],
        )
        .await
        .expect("record");
        let ev = s
            .event_status(D, "e")
            .await
            .expect("status")
            .expect("known");
        assert_eq!(
            (ev.audiences[0].status, ev.audiences[0].next_attempt_ms),
            (StatusKind::Delivered, None)
        );
        // A newer change resets the schedule: it is due at once.
        accept1(
            s,
            event("e2", vec![change("vip", "a@x.co", false, Some(2))]),
        )
        .await;
        let rows = s.pending(D, "vip", NOW, 10).await.expect("pending");
        assert_eq!((rows.len(), rows[0].attempts), (1, 0));
        // The reconciler may settle a row without sending it.
        s.record_outcomes(
            D,
            "vip",
            NOW,
            vec![outcome(
                id("a@x.co"),
                rows[0].version.seq,
                Outcome::Superseded {
                    reason: "another row of this user won".into(),
                },
            )],
        )
        .await
        .expect("record");
        assert!(
            s.pending(D, "vip", NOW, 10)
                .await
                .expect("pending")
                .is_empty()
        );
        assert_eq!(kinds(s, "e2").await, vec![StatusKind::Superseded]);
    }

    pub async fn pending_rows_rebuild_the_planner_change(h: &dyn Harness) {
        let s = h.open("change");
        let s = &s;
        let mut fields = Map::new();
        fields.insert("plan".into(), json!("gold"));
        fields.insert("score".into(), json!(3.5));
        let settings = AudienceSettings {
            update_existing_users_only: Some(true),
            channel_unsubscribe: Some(false),
            campaign_id: Some(987),
        };
        let planned = Change {
            audience_key: "vip".into(),
            list: ListRef::Id(42),
            email: Some("Ann@X.co".into()),
            user_id: Some("u1".into()),
            member: true,
            data_fields: Some(fields.clone()),
            settings,
            time_ms: Some(1234),
            seq: 0,
        };
        let mut e = event("c1", vec![MembershipChange::from_change(&planned)]);
        e.received_ms = NOW - 50;
        let r = accept1(s, e).await;
        let plain = Change {
            audience_key: "plain".into(),
            list: ListRef::for_audience("plain"),
            email: None,
            user_id: Some("u2".into()),
            member: false,
            data_fields: None,
            settings: AudienceSettings::default(),
            time_ms: None,
            seq: 0,
        };
        let r2 = accept1(s, event("c2", vec![MembershipChange::from_change(&plain)])).await;
        let rows = s.pending(D, "vip", NOW, 10).await.expect("pending");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].accepted_ms, NOW - 50);
        assert_eq!(
            rows[0].version,
            Version {
                time_ms: Some(1234),
                seq: r.seq()
            }
        );
        assert_eq!(
            rows[0].to_change(),
            Change {
                email: Some("ann@x.co".into()),
                seq: r.seq(),
                ..planned
            }
        );
        let rows = s.pending(D, "plain", NOW, 10).await.expect("pending");
        assert_eq!(
            rows[0].to_change(),
            Change {
                seq: r2.seq(),
                ..plain
            }
        );
        let st = s
            .event_status(D, "c1")
            .await
            .expect("status")
            .expect("known");
        assert_eq!(
            st.audiences[0].identity,
            Identity::new(Some("ann@x.co"), Some("u1"))
        );
        assert_eq!(
            (st.audiences[0].member, st.audiences[0].time_ms),
            (Some(true), Some(1234))
        );
        assert_eq!(st.received_ms, NOW - 50);
        assert!(s.event_status(D, "nope").await.expect("status").is_none());
    }

    pub async fn ignored_settings_are_logged_with_the_event(h: &dyn Harness) {
        let ig = |setting, value: &str, reason: &str| IgnoredSetting {
            setting,
            value: value.into(),
            reason: reason.into(),
        };
        let campaign = ig(
            SettingName::CampaignId,
            "1.5",
            "must be a whole positive number but it was a number",
        );
        let flag = ig(
            SettingName::UpdateExistingUsersOnly,
            "\"yes\"",
            "must be a boolean but it was a string",
        );
        {
            let s = h.open("ignored");
            let s = &s;
            let mut e = event("i1", vec![change("vip", "a@x.co", true, Some(1))]);
            e.ignored_settings = vec![flag.clone(), campaign.clone()];
            let first = accept1(s, e).await;
            // A repeat of the messageId changes nothing, its settings included.
            let mut again = event("i1", vec![change("vip", "a@x.co", true, Some(2))]);
            again.ignored_settings = vec![ig(SettingName::GlobalUnsubscribe, "0", "x")];
            assert_eq!(
                accept1(s, again).await,
                Receipt::Duplicate { seq: first.seq() }
            );
            // Rejected and skipped events keep theirs too.
            let mut rejected = event("i2", vec![]);
            rejected.content = EventContent::Rejected("no identity".into());
            rejected.ignored_settings = vec![campaign.clone()];
            accept1(s, rejected).await;
            accept1(s, event("i3", vec![change("vip", "b@x.co", true, None)])).await;
        }
        let s = h.open("ignored");
        let s = &s;
        let got = |m: &str| {
            s.event_status(D, m)
                .wait()
                .expect("status")
                .expect("known")
                .ignored_settings
        };
        // Listed by setting name.
        assert_eq!(got("i1"), vec![campaign.clone(), flag]);
        assert_eq!(got("i2"), vec![campaign]);
        assert_eq!(got("i3"), vec![]);
        // The event itself is stored as usual.
        assert_eq!(kinds(s, "i1").await, vec![StatusKind::Accepted]);
    }

    pub async fn everything_survives_close_and_reopen(h: &dyn Harness) {
        let (seqs, last_seq) = {
            let s = h.open("durable");
            let s = &s;
            let mut fields = Map::new();
            fields.insert("k".into(), Value::from("v"));
            let mut c = change("vip", "a@x.co", true, Some(1));
            c.data_fields = Some(fields);
            let rs = s
                .accept(vec![
                    event("d1", vec![c]),
                    event("d2", vec![change("vip", "b@x.co", true, Some(1))]),
                    event("d3", vec![change("vip", "c@x.co", true, Some(1))]),
                    event("d4", vec![change("vip", "d@x.co", true, Some(1))]),
                    event("d5", vec![change("vip", "d@x.co", false, Some(0))]),
                ])
                .await
                .expect("accept");
            let seqs: Vec<u64> = rs.iter().map(Receipt::seq).collect();
            s.record_outcomes(
                D,
                "vip",
                NOW,
                vec![
                    outcome(id("b@x.co"), seqs[1], Outcome::Delivered),
                    outcome(
                        id("c@x.co"),
                        seqs[2],
                        Outcome::Rejected {
                            reason: "invalidEmails".into(),
                        },
                    ),
                    outcome(
                        id("d@x.co"),
                        seqs[3],
                        Outcome::Retry {
                            next_attempt_ms: NOW + 60_000,
                            reason: "503".into(),
                        },
                    ),
                ],
            )
            .await
            .expect("record");
            assert_eq!(s.put_list_id(D, "vip", 77).await.expect("put"), 77);
            (seqs.clone(), seqs[4])
        };
        let s = h.open("durable");
        let s = &s;
        let rows = s.pending(D, "vip", NOW, 10).await.expect("pending");
        assert_eq!(
            rows.len(),
            1,
            "a is pending; b delivered; c rejected; d waits"
        );
        assert_eq!(rows[0].identity, id("a@x.co"));
        assert_eq!(
            rows[0].data_fields.as_ref().and_then(|m| m.get("k")),
            Some(&Value::from("v"))
        );
        let later = s
            .pending(D, "vip", NOW + 60_000, 10)
            .await
            .expect("pending");
        assert_eq!(later.len(), 2);
        assert_eq!(
            (later[1].identity.clone(), later[1].attempts),
            (id("d@x.co"), 1)
        );
        assert_eq!(kinds(s, "d2").await, vec![StatusKind::Delivered]);
        assert_eq!(
            status(s, "d3").await,
            vec![(StatusKind::Rejected, Some("invalidEmails".into()))]
        );
        let d4 = s
            .event_status(D, "d4")
            .await
            .expect("status")
            .expect("known");
        assert_eq!(d4.audiences[0].next_attempt_ms, Some(NOW + 60_000));
        assert_eq!(kinds(s, "d5").await, vec![StatusKind::Skipped]);
        assert_eq!(s.list_id(D, "vip").await.expect("get"), Some(77));
        let c = &s.list_counts(D).await.expect("counts")[0];
        assert_eq!(
            (c.list_id, c.members, c.pending, c.retrying, c.rejected),
            (Some(77), 1, 2, 1, 1)
        );
        // Duplicates are still recognised, and arrival order continues.
        assert_eq!(
            accept1(
                s,
                event("d1", vec![change("vip", "a@x.co", false, Some(9))])
            )
            .await,
            Receipt::Duplicate { seq: seqs[0] }
        );
        let next = accept1(s, event("d6", vec![change("vip", "e@x.co", true, Some(1))])).await;
        assert!(next.seq() > last_seq, "{} > {last_seq}", next.seq());
    }

    pub async fn each_change_of_an_event_gets_its_own_outcome(h: &dyn Harness) {
        let s = h.open("parts");
        let s = &s;
        // One event, three changes: a user in two audiences and another user in one.
        let seq = accept1(
            s,
            event(
                "multi",
                vec![
                    change("vip", "a@x.co", true, Some(1)),
                    change("vip", "b@x.co", true, Some(1)),
                    change("churn", "a@x.co", true, Some(1)),
                ],
            ),
        )
        .await
        .seq();
        let rejected = Outcome::Rejected {
            reason: "invalidEmails".into(),
        };
        // Later changes first, then the first one.
        let r = s
            .record_outcomes(D, "churn", NOW, vec![outcome(id("a@x.co"), seq, rejected)])
            .await
            .expect("record");
        assert_eq!(r, [Recorded::Applied]);
        let r = s
            .record_outcomes(
                D,
                "vip",
                NOW,
                vec![
                    outcome(id("b@x.co"), seq, Outcome::Delivered),
                    outcome(id("a@x.co"), seq, Outcome::Delivered),
                ],
            )
            .await
            .expect("record");
        assert_eq!(r, [Recorded::Applied, Recorded::Applied]);
        let st = status(s, "multi").await;
        assert_eq!(
            st.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            [
                StatusKind::Delivered,
                StatusKind::Delivered,
                StatusKind::Rejected
            ],
            "{st:?}"
        );
        assert_eq!(st[2].1.as_deref(), Some("invalidEmails"));
        assert!(
            s.pending(D, "vip", NOW, 10)
                .await
                .expect("pending")
                .is_empty()
        );
        assert!(
            s.pending(D, "churn", NOW, 10)
                .await
                .expect("pending")
                .is_empty()
        );
        let c = s.event_counts(D).await.expect("counts");
        assert_eq!((c.delivered, c.rejected, c.accepted), (2, 1, 0));

        // An event whose first change to a key is stale and whose second is current: the
        // outcome belongs to the second.
        accept1(
            s,
            event("now", vec![change("late", "a@x.co", true, Some(100))]),
        )
        .await;
        let seq = accept1(
            s,
            event(
                "mixed",
                vec![
                    change("late", "a@x.co", false, Some(50)),
                    change("late", "a@x.co", false, Some(200)),
                ],
            ),
        )
        .await
        .seq();
        assert_eq!(
            kinds(s, "mixed").await,
            [StatusKind::Skipped, StatusKind::Accepted]
        );
        let r = delivered(s, "late", "a@x.co", seq).await;
        assert_eq!(r, [Recorded::Applied]);
        assert_eq!(
            kinds(s, "mixed").await,
            [StatusKind::Skipped, StatusKind::Delivered]
        );

        // An event that names a key twice: the first naming counts, and the outcome is its.
        let seq = accept1(
            s,
            event(
                "twice",
                vec![
                    change("twice", "a@x.co", true, Some(1)),
                    change("twice", "a@x.co", false, Some(1)),
                ],
            ),
        )
        .await
        .seq();
        assert_eq!(
            kinds(s, "twice").await,
            [StatusKind::Accepted, StatusKind::Skipped]
        );
        let r = delivered(s, "twice", "a@x.co", seq).await;
        assert_eq!(r, [Recorded::Applied]);
        assert_eq!(
            kinds(s, "twice").await,
            [StatusKind::Delivered, StatusKind::Skipped]
        );
        let c = s.event_counts(D).await.expect("counts");
        assert_eq!((c.accepted, c.skipped), (0, 2));

        // The same, the keys changed meanwhile: the delivery still counts for the naming that
        // was planned (the current one, not the stale first), whether the outcome gives its
        // part (a, as the reconciler does) or not (b).
        let both = |prefix: &str, t: Option<i64>, member: bool| {
            ["a@x.co", "b@x.co"]
                .iter()
                .map(|e| change(&format!("{prefix}-2"), e, member, t))
                .collect::<Vec<_>>()
        };
        accept1(s, event("now-2", both("late", Some(100), true))).await;
        let mut changes = Vec::new();
        for e in ["a@x.co", "b@x.co"] {
            changes.push(change("late-2", e, false, Some(50)));
            changes.push(change("late-2", e, false, Some(200)));
        }
        let seq = accept1(s, event("mixed-2", changes)).await.seq();
        let planned = s.pending(D, "late-2", NOW, 10).await.expect("pending");
        let part_of = |email: &str| {
            planned
                .iter()
                .find(|r| r.identity == id(email))
                .map(|r| r.part)
        };
        assert_eq!((part_of("a@x.co"), part_of("b@x.co")), (Some(1), Some(3)));
        accept1(s, event("newer-2", both("late", Some(300), true))).await;
        assert_eq!(
            kinds(s, "mixed-2").await,
            [
                StatusKind::Skipped,
                StatusKind::Superseded,
                StatusKind::Skipped,
                StatusKind::Superseded
            ]
        );
        let mut given = outcome(id("a@x.co"), seq, Outcome::Delivered);
        given.part = part_of("a@x.co");
        let r = s
            .record_outcomes(
                D,
                "late-2",
                NOW,
                vec![given, outcome(id("b@x.co"), seq, Outcome::Delivered)],
            )
            .await
            .expect("record");
        assert_eq!(r, [Recorded::ChangedMeanwhile, Recorded::ChangedMeanwhile]);
        assert_eq!(
            kinds(s, "mixed-2").await,
            [
                StatusKind::Skipped,
                StatusKind::Delivered,
                StatusKind::Skipped,
                StatusKind::Delivered
            ]
        );
        // A part that is not the key's finds nothing: the outcome is unknown.
        let mut wrong = outcome(id("a@x.co"), seq, Outcome::Delivered);
        wrong.part = part_of("b@x.co");
        let r = s
            .record_outcomes(D, "late-2", NOW, vec![wrong])
            .await
            .expect("record");
        assert_eq!(r, [Recorded::Unknown]);
    }

    /// An event's story lists its first audience rows only, and says when there are more: a
    /// snapshot names each key of its audience, and reading them all answered a lookup of
    /// its messageId with every one of them (200,000 rows in 0.4 s on SQLite, 1 s on
    /// PostgreSQL, and a response of that size).
    pub async fn an_event_shows_its_first_audiences_and_says_there_are_more(h: &dyn Harness) {
        let s = h.open("event-cap");
        let s = &s;
        let named = |n: usize| {
            (0..n)
                .map(|i| change("big", &format!("u{i}@x.co"), true, Some(1)))
                .collect::<Vec<_>>()
        };
        accept1(s, event("all-shown", named(sync::EVENT_AUDIENCES_SHOWN))).await;
        accept1(s, event("more", named(sync::EVENT_AUDIENCES_SHOWN + 1))).await;
        let all = s
            .event_status(D, "all-shown")
            .await
            .expect("read")
            .expect("logged");
        assert_eq!(all.audiences.len(), sync::EVENT_AUDIENCES_SHOWN);
        assert!(!all.more_audiences);
        let more = s
            .event_status(D, "more")
            .await
            .expect("read")
            .expect("logged");
        assert_eq!(more.audiences.len(), sync::EVENT_AUDIENCES_SHOWN);
        assert!(more.more_audiences);
        // In the order of its changes (the second event's changes superseded the first's).
        let emails: Vec<_> = more
            .audiences
            .iter()
            .take(3)
            .map(|a| a.identity.email.clone().unwrap_or_default())
            .collect();
        assert_eq!(emails, ["u0@x.co", "u1@x.co", "u2@x.co"]);
    }

    pub async fn the_registry_keeps_the_first_writer(h: &dyn Harness) {
        let s = h.open("registry");
        assert_eq!(s.list_id(D, "vip").await.expect("get"), None);
        assert_eq!(s.put_list_id(D, "vip", 1).await.expect("put"), 1);
        assert_eq!(
            s.put_list_id(D, "vip", 2).await.expect("put"),
            1,
            "first wins"
        );
        assert_eq!(s.list_id(D, "vip").await.expect("get"), Some(1));
        assert_eq!(s.put_list_id(D, "other", 3).await.expect("put"), 3);
        assert_eq!(s.put_list_id("staging", "vip", 4).await.expect("put"), 4);
        assert_eq!(s.list_id(D, "vip").await.expect("get"), Some(1));
        // Through the resolver's trait.
        let reg = StoreRegistry(s);
        assert_eq!(reg.get(D, "vip").await, Ok(Some(1)));
        assert_eq!(reg.get(D, "new").await, Ok(None));
        assert_eq!(reg.put(D, "new", 10).await, Ok(()));
        assert_eq!(reg.put(D, "new", 11).await, Ok(()));
        assert_eq!(reg.get(D, "new").await, Ok(Some(10)));
    }

    /// A random interleaving of changes: (identity, audience, member, time), and batch sizes.
    /// (identity, audience, member, event time) of one change.
    type Step = (u8, u8, bool, Option<i64>);

    fn interleavings() -> impl Strategy<Value = (Vec<Step>, Vec<usize>)> {
        (
            prop::collection::vec(
                (0u8..3, 0u8..2, any::<bool>(), prop::option::of(0i64..4)),
                1..30,
            ),
            prop::collection::vec(1usize..6, 1..10),
        )
    }

    pub async fn desired_is_the_latest_by_time_then_arrival(h: &dyn Harness) {
        let s = h.open("prop");
        let s = &s;
        let case = AtomicU64::new(0);
        let mut runner = TestRunner::new(Config::with_cases(64));
        let result = runner.run(&interleavings(), |(changes, sizes)| {
            let dest = format!("p{}", case.fetch_add(1, Ordering::Relaxed));
            let events: Vec<NewEvent> = changes
                .iter()
                .enumerate()
                .map(|(i, &(who, aud, member, time))| {
                    let mut e = event(
                        &format!("m{i}"),
                        vec![change(
                            &format!("a{aud}"),
                            &format!("u{who}@x.co"),
                            member,
                            time,
                        )],
                    );
                    e.destination = dest.clone();
                    e
                })
                .collect();
            // Arrival order is input order; batches split it at random sizes.
            let mut receipts = Vec::new();
            let mut rest = &events[..];
            let mut k = 0;
            while !rest.is_empty() {
                let n = sizes[k % sizes.len()].min(rest.len());
                receipts.extend(s.accept(rest[..n].to_vec()).wait().expect("accept"));
                rest = &rest[n..];
                k += 1;
            }
            prop_assert_eq!(receipts.len(), events.len());
            // Expected winner per key: the greatest (time, arrival index).
            let mut winner: BTreeMap<(u8, u8), usize> = BTreeMap::new();
            for (i, &(who, aud, _, time)) in changes.iter().enumerate() {
                let w = winner.entry((who, aud)).or_insert(i);
                if (time, i) > (changes[*w].3, *w) {
                    *w = i;
                }
            }
            for aud in 0..2u8 {
                let rows = s
                    .pending(&dest, &format!("a{aud}"), NOW, 100)
                    .wait()
                    .expect("pending");
                let want: Vec<_> = winner.iter().filter(|((_, a), _)| *a == aud).collect();
                prop_assert_eq!(rows.len(), want.len());
                for ((who, _), &i) in want {
                    let row = rows
                        .iter()
                        .find(|r| r.identity == id(&format!("u{who}@x.co")));
                    prop_assert!(row.is_some());
                    let row = row.expect("checked");
                    prop_assert_eq!(row.member, changes[i].2);
                    prop_assert_eq!(
                        row.version,
                        Version {
                            time_ms: changes[i].3,
                            seq: receipts[i].seq()
                        }
                    );
                }
            }
            // Every event has one status: the winners accepted, the others superseded or skipped.
            let won: Vec<usize> = winner.values().copied().collect();
            for i in 0..events.len() {
                let st = s
                    .event_status(&dest, &format!("m{i}"))
                    .wait()
                    .expect("status");
                let st = st.map(|e| e.audiences.iter().map(|a| a.status).collect::<Vec<_>>());
                let expected_winner = won.contains(&i);
                match st.as_deref() {
                    Some([StatusKind::Accepted]) => {
                        prop_assert!(expected_winner, "m{} accepted", i)
                    }
                    Some([StatusKind::Superseded | StatusKind::Skipped]) => {
                        prop_assert!(!expected_winner, "m{} lost", i)
                    }
                    other => prop_assert!(false, "m{}: {:?}", i, other),
                }
            }
            Ok(())
        });
        if let Err(e) = result {
            panic!("{e}");
        }
    }

    pub async fn failed_tries_show_on_the_events_and_count_as_retrying(h: &dyn Harness) {
        let s = h.open("tries");
        let s = &s;
        let a = accept1(s, event("a", vec![change("vip", "a@x.co", true, Some(1))])).await;
        let b = accept1(s, event("b", vec![change("vip", "b@x.co", true, Some(1))])).await;
        let rows = [(id("a@x.co"), a.seq()), (id("b@x.co"), b.seq())];
        let why = "POST /api/lists/subscribe failed: HTTP 500";
        let marked = s
            .record_attempt(D, "vip", NOW, &rows, why, Some(NOW + 400))
            .await
            .expect("attempt");
        assert_eq!(marked, 2);
        let shown = |m: &str| {
            let e = s.event_status(D, m).wait().expect("status").expect("known");
            let a = &e.audiences[0];
            (a.status, a.attempts, a.reason.clone(), a.next_attempt_ms)
        };
        assert_eq!(
            shown("a"),
            (StatusKind::Pending, 1, Some(why.into()), Some(NOW + 400))
        );
        let c = &s.list_counts(D).await.expect("counts")[0];
        assert_eq!((c.pending, c.retrying), (2, 2));
        assert_eq!(s.event_counts(D).await.expect("counts").pending, 2);
        // The stored retry schedule is the reconciler's: a try inside the client is not a
        // stored attempt, and the row stays due.
        let due = s.pending(D, "vip", NOW, 10).await.expect("pending");
        assert_eq!((due.len(), due[0].attempts), (2, 0));
        assert_eq!(due[0].last_error.as_deref(), Some(why));
        s.record_attempt(D, "vip", NOW + 1, &rows[..1], "timeout", None)
            .await
            .expect("attempt");
        assert_eq!(
            shown("a"),
            (StatusKind::Pending, 2, Some("timeout".into()), None)
        );
        // Delivered at the third try: settled, the tries still shown.
        s.record_outcomes(
            D,
            "vip",
            NOW + 2,
            vec![outcome(id("a@x.co"), a.seq(), Outcome::Delivered)],
        )
        .await
        .expect("record");
        assert_eq!(shown("a"), (StatusKind::Delivered, 2, None, None));
        let c = &s.list_counts(D).await.expect("counts")[0];
        assert_eq!((c.pending, c.retrying, c.members), (1, 1, 1));
        // A newer change of b: the old version's tries are not the new one's; a try of the old
        // version marks nothing.
        let b2 = accept1(
            s,
            event("b2", vec![change("vip", "b@x.co", false, Some(2))]),
        )
        .await;
        assert_eq!(shown("b").0, StatusKind::Superseded);
        assert_eq!(shown("b2"), (StatusKind::Accepted, 0, None, None));
        assert_eq!(
            s.record_attempt(D, "vip", NOW, &rows[1..], why, None)
                .await
                .expect("attempt"),
            0
        );
        assert_eq!(shown("b2").0, StatusKind::Accepted);
        let c = &s.list_counts(D).await.expect("counts")[0];
        assert_eq!((c.pending, c.retrying), (1, 0));
        // After the client gave up, a stored retry counts at least one try.
        s.record_outcomes(
            D,
            "vip",
            NOW,
            vec![outcome(
                id("b@x.co"),
                b2.seq(),
                Outcome::Retry {
                    next_attempt_ms: NOW + 5_000,
                    reason: "no list".into(),
                },
            )],
        )
        .await
        .expect("record");
        assert_eq!(
            shown("b2"),
            (
                StatusKind::Pending,
                1,
                Some("no list".into()),
                Some(NOW + 5_000)
            )
        );
        assert!(
            s.record_attempt(D, "vip", NOW, &[], why, None)
                .await
                .expect("none")
                == 0
        );
    }

    pub async fn the_destination_state_is_kept(h: &dyn Harness) {
        {
            let s = h.open("state");
            assert_eq!(s.destination_state(D).await.expect("state"), None);
            let paused = DestinationState::Paused {
                reason: "401 BadApiKey".into(),
                since_ms: NOW,
            };
            s.set_destination_state(D, &paused, NOW)
                .await
                .expect("store");
            s.set_destination_state(
                "other",
                &DestinationState::Degraded {
                    reason: "connection refused".into(),
                    since_ms: NOW - 61_000,
                },
                NOW,
            )
            .await
            .expect("store");
            assert_eq!(s.destination_state(D).await.expect("state"), Some(paused));
        }
        let s = h.open("state");
        assert!(
            s.destination_state(D)
                .await
                .expect("state")
                .is_some_and(|st| st.is_paused())
        );
        assert_eq!(
            s.destination_state("other").await.expect("state"),
            Some(DestinationState::Degraded {
                reason: "connection refused".into(),
                since_ms: NOW - 61_000
            })
        );
        s.set_destination_state(D, &DestinationState::Running, NOW + 1)
            .await
            .expect("store");
        assert_eq!(
            s.destination_state(D).await.expect("state"),
            Some(DestinationState::Running)
        );
        // A working store has no write failure; a probe write succeeds.
        assert_eq!(s.write_failure(), None);
        s.probe_write().await.expect("probe");
        assert_eq!(s.write_failure(), None);
    }

    /// One random step: accept a batch, record outcomes or failed tries for keys seen so far.
    #[derive(Debug, Clone)]
    enum Write {
        /// Events: (kind, person, audience, member, time). Kind 0..=5: a change (most), an
        /// event rejected or skipped whole, a change without identity, an event naming the
        /// same person twice, a repeated messageId.
        Accept(Vec<(u8, u8, u8, bool, Option<i64>)>),
        /// Outcomes of changes seen so far (index into them, what happened).
        Outcomes(u8, Vec<(u16, u8)>),
        /// A failed try of changes seen so far.
        Tries(u8, Vec<u16>),
        /// Keys seen so far set pending again (drift repair).
        Reopen(u8, Vec<u16>),
        /// The event log pruned of what was final before now.
        Prune,
    }

    /// A change accepted: (audience, person, seq, part).
    type Seen = (String, Identity, u64, u32);

    /// Audience `aud`'s name, and the changes of it in `seen`.
    fn of_audience(seen: &[Seen], aud: u8) -> (String, Vec<&Seen>) {
        let audience = format!("a{aud}");
        let mine = seen.iter().filter(|x| x.0 == audience).collect();
        (audience, mine)
    }

    fn writes() -> impl Strategy<Value = Vec<Write>> {
        let accept = prop::collection::vec(
            (
                prop_oneof![6 => Just(0u8), 1 => 1u8..=5],
                0u8..4,
                0u8..3,
                any::<bool>(),
                prop::option::of(0i64..3),
            ),
            1..8,
        )
        .prop_map(Write::Accept);
        let outcomes = (0u8..3, prop::collection::vec((any::<u16>(), 0u8..4), 1..6))
            .prop_map(|(a, o)| Write::Outcomes(a, o));
        let tries = (0u8..3, prop::collection::vec(any::<u16>(), 1..6))
            .prop_map(|(a, t)| Write::Tries(a, t));
        let reopen = (0u8..3, prop::collection::vec(any::<u16>(), 1..4))
            .prop_map(|(a, k)| Write::Reopen(a, k));
        let steps = prop_oneof![
            6 => accept,
            4 => outcomes,
            2 => tries,
            1 => reopen,
            1 => Just(Write::Prune)
        ];
        prop::collection::vec(steps, 1..25)
    }

    /// The figures the store maintains equal a full recount, and the recount agrees with
    /// what the store shows otherwise (due rows, event statuses), after any sequence of
    /// writes.
    pub async fn counts_equal_a_full_recount_after_any_writes(h: &dyn Harness) {
        let s = h.open("counts");
        let s = &s;
        let case = AtomicU64::new(0);
        let mut runner = TestRunner::new(Config::with_cases(64));
        let result = runner.run(&writes(), |writes| {
            let dest = format!("c{}", case.fetch_add(1, Ordering::Relaxed));
            // (audience, person, seq, part) of every change accepted, and every messageId.
            let mut seen: Vec<Seen> = Vec::new();
            let mut ids: Vec<String> = Vec::new();
            let mut clock = NOW;
            for write in writes {
                clock += 1_000;
                match write {
                    Write::Accept(events) => {
                        let batch: Vec<NewEvent> = events
                            .iter()
                            .map(|&(kind, who, aud, member, time)| {
                                let audience = format!("a{aud}");
                                let email = format!("u{who}@x.co");
                                let one = change(&audience, &email, member, time);
                                let content = match kind {
                                    1 => EventContent::Rejected("bad".into()),
                                    2 => EventContent::Skipped("not an audience event".into()),
                                    3 => {
                                        let mut c = one;
                                        c.identity = Identity::default();
                                        EventContent::Changes(vec![c])
                                    }
                                    4 => EventContent::Changes(vec![one.clone(), one]),
                                    _ => EventContent::Changes(vec![one]),
                                };
                                let message_id = match (kind, ids.first()) {
                                    (5, Some(first)) => first.clone(),
                                    _ => format!("m{}", ids.len()),
                                };
                                ids.push(message_id.clone());
                                NewEvent {
                                    destination: dest.clone(),
                                    message_id,
                                    received_ms: clock,
                                    content,
                                    ignored_settings: Vec::new(),
                                }
                            })
                            .collect();
                        let receipts = s.accept(batch.clone()).wait().expect("accept");
                        for (e, r) in batch.iter().zip(receipts) {
                            if let (EventContent::Changes(cs), Receipt::Accepted { seq, .. }) =
                                (&e.content, r)
                            {
                                for (part, c) in (0u32..).zip(cs) {
                                    let key = (c.audience_key.clone(), c.identity.clone());
                                    seen.push((key.0, key.1, seq, part));
                                }
                            }
                        }
                    }
                    Write::Outcomes(aud, picks) => {
                        let (audience, mine) = of_audience(&seen, aud);
                        if mine.is_empty() {
                            continue;
                        }
                        let rows: Vec<OutcomeRow> = picks
                            .iter()
                            .map(|&(i, o)| {
                                let (_, identity, seq, part) = mine[usize::from(i) % mine.len()];
                                // The part given (as the reconciler gives it) or not (the
                                // general path on SQLite), half and half.
                                let part = (i % 2 == 0).then_some(*part);
                                let outcome = match o {
                                    0 => Outcome::Delivered,
                                    1 => Outcome::Rejected {
                                        reason: "invalidEmails".into(),
                                    },
                                    2 => Outcome::Retry {
                                        next_attempt_ms: clock + 5_000,
                                        reason: "500".into(),
                                    },
                                    _ => Outcome::Superseded {
                                        reason: "another row won".into(),
                                    },
                                };
                                outcome_row(identity.clone(), *seq, part, outcome)
                            })
                            .collect();
                        s.record_outcomes(&dest, &audience, clock, rows)
                            .wait()
                            .expect("record");
                    }
                    Write::Tries(aud, picks) => {
                        let (audience, mine) = of_audience(&seen, aud);
                        if mine.is_empty() {
                            continue;
                        }
                        let rows: Vec<(Identity, u64)> = picks
                            .iter()
                            .map(|&i| {
                                let (_, identity, seq, _) = mine[usize::from(i) % mine.len()];
                                (identity.clone(), *seq)
                            })
                            .collect();
                        s.record_attempt(&dest, &audience, clock, &rows, "timeout", None)
                            .wait()
                            .expect("attempt");
                    }
                    Write::Reopen(aud, picks) => {
                        let (audience, mine) = of_audience(&seen, aud);
                        if mine.is_empty() {
                            continue;
                        }
                        let keys: Vec<Identity> = picks
                            .iter()
                            .map(|&i| mine[usize::from(i) % mine.len()].1.clone())
                            .collect();
                        s.reopen_keys(&dest, &audience, &keys, "drift", clock)
                            .wait()
                            .expect("reopen");
                    }
                    Write::Prune => {
                        s.prune_events(clock, 1_000).wait().expect("prune");
                    }
                }
                let (lists, events) = s.recount(&dest).wait().expect("recount");
                prop_assert_eq!(&s.list_counts(&dest).wait().expect("counts"), &lists);
                prop_assert_eq!(s.event_counts(&dest).wait().expect("counts"), events);
            }
            // The recount agrees with what the store shows otherwise.
            let (lists, events) = s.recount(&dest).wait().expect("recount");
            for l in &lists {
                let due = s
                    .pending(&dest, &l.audience_key, i64::MAX, 1_000)
                    .wait()
                    .expect("pending");
                prop_assert_eq!(l.pending, due.len() as u64);
            }
            let mut shown = EventCounts::default();
            let mut unique = ids.clone();
            unique.sort();
            unique.dedup();
            for m in &unique {
                // None: pruned.
                let Some(e) = s.event_status(&dest, m).wait().expect("status") else {
                    continue;
                };
                for a in e.audiences {
                    shown.add(a.status, 1);
                }
            }
            prop_assert_eq!(shown, events);
            Ok(())
        });
        if let Err(e) = result {
            panic!("{e}");
        }
    }

    /// A delivery recorded by the part the reconciler gives (SQLite's direct settle, which
    /// writes the key's desired row alone) shows on its event with the time of the delivery,
    /// no reason and no next attempt: while the key stays delivered, after a newer change
    /// replaced it, after drift repair set it pending again; and it is pruned as final, also
    /// while the key stays delivered.
    pub async fn a_delivery_shows_on_its_event_whatever_moves_the_key_on(h: &dyn Harness) {
        let s = h.open("shown");
        let s = &s;
        let at = |id: &str, email: &str, time: i64, received_ms: i64| {
            let mut e = event(id, vec![change("vip", email, true, Some(time))]);
            e.received_ms = received_ms;
            e
        };
        let rs = s
            .accept(vec![
                at("s1", "a@x.co", 1, NOW - 100),
                at("s2", "b@x.co", 1, NOW - 100),
                at("s4", "c@x.co", 1, NOW - 100),
            ])
            .await
            .expect("accept");
        let seqs: Vec<u64> = rs.iter().map(Receipt::seq).collect();
        // b fails once first: its event is pending, with the error and the next try.
        let retry = Outcome::Retry {
            next_attempt_ms: NOW + 1_000,
            reason: "503".into(),
        };
        s.record_outcomes(
            D,
            "vip",
            NOW - 90,
            vec![outcome(id("b@x.co"), seqs[1], retry)],
        )
        .await
        .expect("record");
        let rows = vec![
            outcome_row(id("a@x.co"), seqs[0], Some(0), Outcome::Delivered),
            outcome_row(id("b@x.co"), seqs[1], Some(0), Outcome::Delivered),
            outcome_row(id("c@x.co"), seqs[2], Some(0), Outcome::Delivered),
        ];
        let recorded = s
            .record_outcomes(D, "vip", NOW - 50, rows)
            .await
            .expect("record");
        assert_eq!(recorded, vec![Recorded::Applied; 3]);
        let delivered = (StatusKind::Delivered, None, None, NOW - 50);
        assert_eq!(shown(s, "s1").await, delivered);
        assert_eq!(shown(s, "s2").await, delivered, "the retry's error is gone");
        // A newer change replaces a's delivered one; drift repair sets b pending again.
        accept1(s, at("s3", "a@x.co", 2, NOW - 40)).await;
        s.reopen_keys(D, "vip", &[id("b@x.co")], "drift", NOW - 30)
            .await
            .expect("reopen");
        assert_eq!(shown(s, "s1").await, delivered, "replaced");
        assert_eq!(shown(s, "s2").await, delivered, "reopened");
        assert_eq!(shown(s, "s4").await, delivered, "unchanged");
        assert_eq!(kinds(s, "s3").await, vec![StatusKind::Accepted]);
        let counts = s.event_counts(D).await.expect("counts");
        assert_eq!((counts.delivered, counts.accepted), (3, 1));
        assert_eq!(s.recount(D).await.expect("recount").1, counts);
        // The deliveries are final and older than the moment: pruned, and counted so.
        assert_eq!(s.prune_events(NOW, 10).await.expect("prune"), 3);
        assert!(s.event_status(D, "s1").await.expect("status").is_none());
        assert!(s.event_status(D, "s4").await.expect("status").is_none());
        let counts = s.event_counts(D).await.expect("counts");
        assert_eq!((counts.delivered, counts.accepted), (0, 1));
        assert_eq!(s.recount(D).await.expect("recount").1, counts);
    }

    pub async fn old_final_rows_are_pruned_and_state_stays(h: &dyn Harness) {
        let s = h.open("prune");
        let s = &s;
        let old = |id: &str, email: &str, received_ms: i64| {
            let mut e = event(id, vec![change("vip", email, true, Some(1))]);
            e.received_ms = received_ms;
            e
        };
        let rs = s
            .accept(vec![
                old("p1", "a@x.co", NOW - 100),
                old("p2", "b@x.co", NOW - 100),
                NewEvent {
                    content: EventContent::Rejected("no audience".into()),
                    ..old("p3", "c@x.co", NOW - 100)
                },
                old("p4", "d@x.co", NOW - 100),
            ])
            .await
            .expect("accept");
        let seqs: Vec<u64> = rs.iter().map(Receipt::seq).collect();
        s.record_outcomes(
            D,
            "vip",
            NOW - 50,
            vec![
                outcome(id("a@x.co"), seqs[0], Outcome::Delivered),
                outcome(
                    id("d@x.co"),
                    seqs[3],
                    Outcome::Retry {
                        next_attempt_ms: NOW + 1_000_000,
                        reason: "503".into(),
                    },
                ),
            ],
        )
        .await
        .expect("record");
        let total = |c: EventCounts| StatusKind::ALL.iter().map(|k| c.get(*k)).sum::<u64>();
        assert_eq!(total(s.event_counts(D).await.expect("counts")), 4);
        // Nothing is older than the moment: nothing goes.
        assert_eq!(s.prune_events(NOW - 100, 10).await.expect("prune"), 0);
        // p1 (delivered) and p3 (rejected) are final; p2 (accepted) and p4 (pending) are not.
        assert_eq!(
            s.prune_events(NOW, 1).await.expect("prune"),
            1,
            "the limit holds"
        );
        assert_eq!(s.prune_events(NOW, 10).await.expect("prune"), 1);
        assert_eq!(s.prune_events(NOW, 10).await.expect("prune"), 0);
        assert!(s.event_status(D, "p1").await.expect("status").is_none());
        assert!(s.event_status(D, "p3").await.expect("status").is_none());
        assert_eq!(kinds(s, "p2").await, vec![StatusKind::Accepted]);
        assert_eq!(kinds(s, "p4").await, vec![StatusKind::Pending]);
        let counts = s.event_counts(D).await.expect("counts");
        assert_eq!((counts.accepted, counts.pending, total(counts)), (1, 1, 2));
        // Desired and acknowledged state stay: a is still a member, b still to send.
        let lists = s.list_counts(D).await.expect("lists");
        assert_eq!((lists[0].members, lists[0].pending), (1, 2));
        let due = s
            .pending(D, "vip", NOW + 1_000_000, 10)
            .await
            .expect("pending");
        let who: Vec<Identity> = due.into_iter().map(|r| r.identity).collect();
        assert_eq!(who, vec![id("b@x.co"), id("d@x.co")]);
        assert_eq!(
            s.recount(D).await.expect("recount"),
            (lists, counts),
            "the figures follow the pruned rows"
        );
        // A newer change of a pruned key is applied as usual.
        let r = accept1(
            s,
            event("p5", vec![change("vip", "a@x.co", false, Some(2))]),
        )
        .await;
        assert_eq!(
            r,
            Receipt::Accepted {
                seq: r.seq(),
                changes: vec![Applied::Current]
            }
        );
    }

    /// A seq is never given out twice, even after pruning removed every event: a change
    /// without a time is ordered by its seq, so an event accepted then must still be newer
    /// than the pruned one its key's desired row names.
    pub async fn seqs_stay_new_after_pruning_every_event(h: &dyn Harness) {
        let s = h.open("seqs");
        let s = &s;
        let mut first = Vec::new();
        for (mid, email) in [("s1", "a@x.co"), ("s2", "b@x.co")] {
            let mut e = event(mid, vec![change("vip", email, true, None)]);
            e.received_ms = NOW - 100;
            first.push(accept1(s, e).await.seq());
        }
        let rows = first
            .iter()
            .zip(["a@x.co", "b@x.co"])
            .map(|(seq, email)| outcome(id(email), *seq, Outcome::Delivered))
            .collect();
        s.record_outcomes(D, "vip", NOW - 50, rows)
            .await
            .expect("record");
        assert_eq!(s.prune_events(NOW, 10).await.expect("prune"), 2);
        assert!(s.event_status(D, "s2").await.expect("status").is_none());
        let newest = first.iter().copied().max().unwrap_or_default();
        // a and b leave, newer by arrival alone, in one batch; then c joins: each event takes
        // a new seq.
        let both = s
            .accept(vec![
                event("s3", vec![change("vip", "a@x.co", false, None)]),
                event("s4", vec![change("vip", "b@x.co", false, None)]),
            ])
            .await
            .expect("accept");
        let joined = accept1(s, event("s5", vec![change("vip", "c@x.co", true, None)])).await;
        let mut seqs: Vec<u64> = both.iter().map(Receipt::seq).collect();
        seqs.push(joined.seq());
        assert!(
            seqs[0] > newest && seqs[1] > seqs[0] && seqs[2] > seqs[1],
            "{seqs:?} after {first:?}"
        );
        assert!(
            both.iter().chain([&joined]).all(
                |r| matches!(r, Receipt::Accepted { changes, .. } if changes == &[Applied::Current])
            ),
            "{both:?} {joined:?}"
        );
        // What the reconciler reads: the three newer changes, none shown delivered.
        let due = s.pending(D, "vip", NOW, 10).await.expect("pending");
        let who: Vec<(Identity, bool)> = due.into_iter().map(|r| (r.identity, r.member)).collect();
        assert_eq!(
            who,
            vec![
                (id("a@x.co"), false),
                (id("b@x.co"), false),
                (id("c@x.co"), true)
            ]
        );
        for mid in ["s3", "s4", "s5"] {
            assert_eq!(kinds(s, mid).await, vec![StatusKind::Accepted], "{mid}");
        }
    }

    /// A batch longer than the chunk in which SQLite writes status rows (16), with unusable
    /// events among its own, an event of two changes, and events naming a key named earlier in
    /// the batch: one whose status row is written already, one whose row is still held back.
    /// Every event shows what it asked for with its status and time, the earlier change of
    /// each repeated key is superseded, and the figures equal a recount.
    pub async fn a_long_batch_logs_every_status(h: &dyn Harness) {
        let s = h.open("long-batch");
        let s = &s;
        let who = |i: usize| match i {
            19 => 17,
            35 => 2,
            i => i,
        };
        let batch: Vec<NewEvent> = (0..40)
            .map(|i| {
                let email = format!("u{}@x.co", who(i));
                let c = change("vip", &email, i % 3 != 0, Some(NOW + i as i64));
                let mut e = event(&format!("L{i}"), vec![c.clone()]);
                e.received_ms = NOW + 1_000 + i as i64;
                if i == 30 {
                    let mut gold = c.clone();
                    gold.audience_key = "gold".into();
                    gold.member = false;
                    e.content = EventContent::Changes(vec![gold, c]);
                }
                if i == 5 || i == 25 {
                    e.content = EventContent::Rejected("bad".into());
                }
                e
            })
            .collect();
        assert_eq!(s.accept(batch).await.expect("accept").len(), 40);
        for i in 0..40usize {
            let mid = format!("L{i}");
            let e = s.event_status(D, &mid).await.expect("status");
            let all = &e.unwrap_or_else(|| panic!("{mid} unknown")).audiences;
            assert_eq!(all.len(), if i == 30 { 2 } else { 1 }, "{mid}: {all:?}");
            let a = all.last().expect("one");
            // Set when accepted, or when the later event superseded it.
            let updated = match i {
                2 => 35,
                17 => 19,
                i => i,
            };
            assert!(
                all.iter()
                    .all(|a| a.updated_ms == NOW + 1_000 + updated as i64),
                "{mid}: {all:?}"
            );
            if i == 30 {
                assert_eq!(
                    (&all[0].audience_key, all[0].member, all[0].status),
                    (&"gold".to_string(), Some(false), StatusKind::Accepted)
                );
            }
            let (status, reason) = match i {
                5 | 25 => (StatusKind::Rejected, Some("bad".to_string())),
                2 => (
                    StatusKind::Superseded,
                    Some("superseded by event \"L35\"".into()),
                ),
                17 => (
                    StatusKind::Superseded,
                    Some("superseded by event \"L19\"".into()),
                ),
                _ => (StatusKind::Accepted, None),
            };
            assert_eq!((a.status, &a.reason), (status, &reason), "{mid}");
            if status == StatusKind::Rejected {
                assert_eq!((a.audience_key.as_str(), a.member), ("", None), "{mid}");
                continue;
            }
            let email = format!("u{}@x.co", who(i));
            assert_eq!(
                (&a.audience_key, &a.identity, a.member, a.time_ms),
                (
                    &"vip".to_string(),
                    &id(&email),
                    Some(i % 3 != 0),
                    Some(NOW + i as i64)
                ),
                "{mid}"
            );
        }
        let (lists, events) = s.recount(D).await.expect("recount");
        assert_eq!(s.list_counts(D).await.expect("counts"), lists);
        assert_eq!(s.event_counts(D).await.expect("counts"), events);
        // In "vip", 38 changes, of which 2 name a key again.
        let vip = lists.iter().find(|l| l.audience_key == "vip").expect("vip");
        assert_eq!(vip.pending, 36);
        assert_eq!(
            s.pending(D, "vip", i64::MAX, 100).await.expect("due").len(),
            36
        );
        assert_eq!(
            s.pending(D, "gold", i64::MAX, 100)
                .await
                .expect("due")
                .len(),
            1
        );
    }
}

#[path = "conformance/copy.rs"]
mod copy_cases;
#[path = "conformance/holds.rs"]
mod hold_cases;

#[path = "conformance/drift.rs"]
mod drift_cases;

#[path = "conformance/admin.rs"]
mod admin_cases;

#[path = "conformance/snapshot.rs"]
mod snapshot_cases;

macro_rules! conformance {
    ($engine:ident, $harness:expr) => {
        mod $engine {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_copy_holds_every_row_exactly() {
                copy_cases::a_copy_holds_every_row_exactly(&$harness).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_copy_refuses_a_non_empty_target_unless_allowed() {
                copy_cases::a_copy_refuses_a_non_empty_target_unless_allowed(&$harness).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_copy_continues_past_every_sequence_it_names() {
                copy_cases::a_copy_continues_past_every_sequence_it_names(&$harness).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_delivery_is_exported_as_delivered() {
                copy_cases::a_delivery_is_exported_as_delivered(&$harness).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn an_import_over_a_kept_delivery_keeps_it_shown() {
                copy_cases::an_import_over_a_kept_delivery_keeps_it_shown(&$harness).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_delivery_replaced_by_a_snapshot_stays_delivered() {
                snapshot_cases::a_delivery_replaced_by_a_snapshot_stays_delivered(&$harness).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn an_export_reads_one_snapshot() {
                copy_cases::an_export_reads_one_snapshot(&$harness).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_snapshot_fills_an_audience_and_the_next_makes_exactly_its_changes() {
                snapshot_cases::a_snapshot_fills_an_audience_and_the_next_makes_exactly_its_changes(
                    &$harness,
                )
                .await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_newer_live_change_wins_over_a_snapshot_and_an_older_one_loses() {
                snapshot_cases::a_newer_live_change_wins_over_a_snapshot_and_an_older_one_loses(
                    &$harness,
                )
                .await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_live_change_older_than_a_snapshot_is_superseded_whatever_its_key() {
                snapshot_cases::a_live_change_older_than_a_snapshot_is_superseded_whatever_its_key(
                    &$harness,
                )
                .await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_dry_run_a_refusal_and_a_cancelled_feed_write_nothing() {
                snapshot_cases::a_dry_run_a_refusal_and_a_cancelled_feed_write_nothing(&$harness)
                    .await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn repeated_and_bad_rows_are_counted_with_their_lines() {
                snapshot_cases::repeated_and_bad_rows_are_counted_with_their_lines(&$harness).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn rejected_keys_are_paged_and_filtered() {
                admin_cases::rejected_keys_are_paged_and_filtered(&$harness).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn rejected_keys_are_sent_again_one_or_all() {
                admin_cases::rejected_keys_are_sent_again_one_or_all(&$harness).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_user_is_found_in_every_audience_with_the_events_that_set_it() {
                admin_cases::a_user_is_found_in_every_audience_with_the_events_that_set_it(
                    &$harness,
                )
                .await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn every_page_size_finds_a_users_keys_in_key_order() {
                admin_cases::every_page_size_finds_a_users_keys_in_key_order(&$harness).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn the_operator_pause_is_kept_until_resumed() {
                admin_cases::the_operator_pause_is_kept_until_resumed(&$harness).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn audience_keys_are_read_in_key_order_by_pages() {
                drift_cases::audience_keys_are_read_in_key_order_by_pages(&$harness).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn reopened_keys_are_pending_again_and_forget_the_acknowledgement() {
                drift_cases::reopened_keys_are_pending_again_and_forget_the_acknowledgement(
                    &$harness,
                )
                .await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn the_last_verify_of_each_audience_is_kept_and_replaced() {
                drift_cases::the_last_verify_of_each_audience_is_kept_and_replaced(&$harness).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_replaced_list_gets_the_whole_membership_once() {
                drift_cases::a_replaced_list_gets_the_whole_membership_once(&$harness).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_forgotten_acknowledgement_keeps_the_delivery_time() {
                drift_cases::a_forgotten_acknowledgement_keeps_the_delivery_time(&$harness).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn an_exit_storm_is_held_and_a_release_sends_it() {
                hold_cases::an_exit_storm_is_held_and_a_release_sends_it(&$harness).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_trickle_counts_over_the_window() {
                hold_cases::a_trickle_counts_over_the_window(&$harness).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn small_audiences_and_ratio_one_are_never_held() {
                hold_cases::small_audiences_and_ratio_one_are_never_held(&$harness).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_copy_makes_held_removals_due_for_the_guard_to_decide_again() {
                hold_cases::a_copy_makes_held_removals_due_for_the_guard_to_decide_again(&$harness)
                    .await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_discard_keeps_the_members_and_says_why() {
                hold_cases::a_discard_keeps_the_members_and_says_why(&$harness).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn latest_wins_whatever_the_arrival_order() {
                cases::latest_wins_whatever_the_arrival_order(&$harness).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn stale_events_are_recorded_as_skipped() {
                cases::stale_events_are_recorded_as_skipped(&$harness).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn duplicate_message_ids_are_ignored() {
                cases::duplicate_message_ids_are_ignored(&$harness).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn pending_reflects_desired_versus_acknowledged() {
                cases::pending_reflects_desired_versus_acknowledged(&$harness).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn pending_except_leaves_out_the_rows_in_flight() {
                cases::pending_except_leaves_out_the_rows_in_flight(&$harness).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn delivered_only_if_unchanged_since_planning() {
                cases::delivered_only_if_unchanged_since_planning(&$harness).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn rejected_keeps_the_reason() {
                cases::rejected_keeps_the_reason(&$harness).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn retry_keeps_the_next_attempt() {
                cases::retry_keeps_the_next_attempt(&$harness).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn pending_rows_rebuild_the_planner_change() {
                cases::pending_rows_rebuild_the_planner_change(&$harness).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn ignored_settings_are_logged_with_the_event() {
                cases::ignored_settings_are_logged_with_the_event(&$harness).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn everything_survives_close_and_reopen() {
                cases::everything_survives_close_and_reopen(&$harness).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn an_event_shows_its_first_audiences_and_says_there_are_more() {
                cases::an_event_shows_its_first_audiences_and_says_there_are_more(&$harness).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn each_change_of_an_event_gets_its_own_outcome() {
                cases::each_change_of_an_event_gets_its_own_outcome(&$harness).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn the_registry_keeps_the_first_writer() {
                cases::the_registry_keeps_the_first_writer(&$harness).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn desired_is_the_latest_by_time_then_arrival() {
                cases::desired_is_the_latest_by_time_then_arrival(&$harness).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn failed_tries_show_on_the_events_and_count_as_retrying() {
                cases::failed_tries_show_on_the_events_and_count_as_retrying(&$harness).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn the_destination_state_is_kept() {
                cases::the_destination_state_is_kept(&$harness).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_delivery_shows_on_its_event_whatever_moves_the_key_on() {
                cases::a_delivery_shows_on_its_event_whatever_moves_the_key_on(&$harness).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn old_final_rows_are_pruned_and_state_stays() {
                cases::old_final_rows_are_pruned_and_state_stays(&$harness).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn seqs_stay_new_after_pruning_every_event() {
                cases::seqs_stay_new_after_pruning_every_event(&$harness).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_long_batch_logs_every_status() {
                cases::a_long_batch_logs_every_status(&$harness).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn counts_equal_a_full_recount_after_any_writes() {
                cases::counts_equal_a_full_recount_after_any_writes(&$harness).await
            }
        }
    };
}

conformance!(sqlite, SqliteHarness::new());
conformance!(postgres, PostgresHarness::new());
