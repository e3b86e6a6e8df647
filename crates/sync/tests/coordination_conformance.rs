//! Conformance of the coordination of several instances on one store, for every engine:
//! leases of audiences (acquire, renew, expire, take over, release), live instances per
//! project and shared rate cuts. Time is the `now_ms` each call is given (an injected
//! clock): nothing here sleeps or reads the wall clock.
//!
//! Two handles opened on the same database play two instances (two processes). To add an
//! engine, implement `Harness` for it and add one `coordination!` line.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

use sync::{Lease, PostgresStore, RateCut, SqliteStore, Store};
use testkit::postgres::PgSchema;

/// Waits for a future from synchronous code running on the test's runtime.
trait Wait: Future + Sized {
    fn wait(self) -> Self::Output {
        tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(self))
    }
}

impl<F: Future> Wait for F {}

/// Opens handles by name; the same name opens the same data, also while another handle on it
/// is open (as another process would).
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

struct SqliteHarness {
    dir: std::path::PathBuf,
}

impl SqliteHarness {
    fn new() -> Self {
        Self {
            dir: std::env::temp_dir().join(unique("sync-coordination")),
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

/// A PostgreSQL schema per name (on the server of `ITERABLE_LISTS_TEST_PG_URL`, as the
/// store conformance suite), dropped with the harness.
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
const T0: i64 = 1_700_000_000_000;
const LEASE: i64 = 30_000;

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

async fn acquire(s: &Store, who: &str, cands: &[&str], max: usize, now: i64) -> Vec<String> {
    s.acquire_leases(D, who, &names(cands), max, now, now + LEASE)
        .await
        .expect("acquire_leases")
}

async fn holders(s: &Store) -> Vec<(String, String, i64)> {
    s.leases(D)
        .await
        .expect("leases")
        .into_iter()
        .map(
            |Lease {
                 audience_key,
                 holder,
                 expires_ms,
             }| (audience_key, holder, expires_ms),
        )
        .collect()
}

mod cases {
    use super::*;

    pub async fn acquire_takes_free_leases_up_to_max(h: &impl Harness) {
        let (a, b) = (h.open("acq"), h.open("acq"));
        assert_eq!(
            acquire(&a, "A", &["x", "y", "z"], 2, T0).await,
            names(&["x", "y"])
        );
        // Held by A: B gets only what is free, however many it wants.
        assert_eq!(
            acquire(&b, "B", &["x", "y", "z"], 3, T0).await,
            names(&["z"])
        );
        assert_eq!(
            acquire(&b, "B", &["x"], 3, T0 + 1).await,
            Vec::<String>::new()
        );
        assert_eq!(
            holders(&a).await,
            vec![
                ("x".into(), "A".into(), T0 + LEASE),
                ("y".into(), "A".into(), T0 + LEASE),
                ("z".into(), "B".into(), T0 + LEASE),
            ]
        );
        // Max 0 takes nothing new; nothing asked, nothing held.
        assert!(acquire(&a, "A", &["w"], 0, T0).await.is_empty());
        assert!(acquire(&a, "A", &[], 5, T0).await.is_empty());
    }

    pub async fn renewing_keeps_leases_past_max_and_moves_the_expiry(h: &impl Harness) {
        let s = h.open("renew");
        assert_eq!(
            acquire(&s, "A", &["x", "y"], 2, T0).await,
            names(&["x", "y"])
        );
        // Renewal: what A holds is renewed even beyond max, and nothing new is taken.
        let later = T0 + 10_000;
        assert_eq!(
            acquire(&s, "A", &["y", "x", "z"], 1, later).await,
            names(&["y", "x"])
        );
        for (_, holder, until) in holders(&s).await {
            assert_eq!((holder.as_str(), until), ("A", later + LEASE));
        }
        // Renewed, A's leases outlive the first expiry: B cannot take them then.
        assert!(
            acquire(&s, "B", &["x", "y"], 2, T0 + LEASE)
                .await
                .is_empty()
        );
    }

    pub async fn an_expired_lease_is_taken_over_and_lost_by_its_holder(h: &impl Harness) {
        let (a, b) = (h.open("expire"), h.open("expire"));
        assert_eq!(
            acquire(&a, "A", &["x", "y"], 2, T0).await,
            names(&["x", "y"])
        );
        // Just before the end: still A's.
        assert!(acquire(&b, "B", &["x"], 1, T0 + LEASE - 1).await.is_empty());
        // At the end: B takes it over.
        assert_eq!(acquire(&b, "B", &["x"], 1, T0 + LEASE).await, names(&["x"]));
        // A, late to renew, keeps only what nobody took (an expired lease still its own).
        assert_eq!(
            acquire(&a, "A", &["x", "y"], 2, T0 + LEASE + 5).await,
            names(&["y"])
        );
        assert_eq!(
            holders(&a).await,
            vec![
                ("x".into(), "B".into(), T0 + 2 * LEASE),
                ("y".into(), "A".into(), T0 + LEASE + 5 + LEASE),
            ]
        );
    }

    pub async fn released_leases_are_free_at_once(h: &impl Harness) {
        let (a, b) = (h.open("release"), h.open("release"));
        assert_eq!(acquire(&a, "A", &["x", "y", "z"], 3, T0).await.len(), 3);
        // Only the holder's leases are released.
        assert_eq!(b.release_leases(D, "B", None).await.expect("release"), 0);
        assert_eq!(
            a.release_leases(D, "A", Some(&names(&["y", "nope"])))
                .await
                .expect("release"),
            1
        );
        assert_eq!(
            acquire(&b, "B", &["x", "y", "z"], 3, T0 + 1).await,
            names(&["y"])
        );
        assert_eq!(a.release_leases(D, "A", None).await.expect("release"), 2);
        assert_eq!(
            acquire(&b, "B", &["x", "y", "z"], 3, T0 + 2).await,
            names(&["x", "y", "z"])
        );
        // Leases are per destination.
        let other = a
            .acquire_leases("other", "A", &names(&["x"]), 1, T0, T0 + LEASE)
            .await
            .expect("acquire");
        assert_eq!(other, names(&["x"]));
    }

    pub async fn only_one_of_two_racing_instances_gets_a_lease(h: &impl Harness) {
        for round in 0..20 {
            let name = format!("race{round}");
            let (a, b) = (h.open(&name), h.open(&name));
            let cands = names(&["x"]);
            let (ra, rb) = tokio::join!(
                a.acquire_leases(D, "A", &cands, 1, T0, T0 + LEASE),
                b.acquire_leases(D, "B", &cands, 1, T0, T0 + LEASE),
            );
            let (ra, rb) = (ra.expect("A"), rb.expect("B"));
            assert_eq!(ra.len() + rb.len(), 1, "round {round}: {ra:?} {rb:?}");
        }
    }

    pub async fn heartbeats_count_live_instances_per_project(h: &impl Harness) {
        let (a, b) = (h.open("beat"), h.open("beat"));
        assert_eq!(a.heartbeat("p1", "A", T0, T0 + LEASE).await.expect("hb"), 1);
        assert_eq!(b.heartbeat("p1", "B", T0, T0 + LEASE).await.expect("hb"), 2);
        assert_eq!(b.heartbeat("p2", "B", T0, T0 + LEASE).await.expect("hb"), 1);
        // Again, the same instance counts once.
        assert_eq!(
            a.heartbeat("p1", "A", T0 + 5, T0 + 5 + LEASE)
                .await
                .expect("hb"),
            2
        );
        // B stops beating; once its registration ends it no longer counts.
        assert_eq!(
            a.heartbeat("p1", "A", T0 + LEASE, T0 + 2 * LEASE)
                .await
                .expect("hb"),
            1
        );
        // Leaving counts at once.
        assert_eq!(
            b.heartbeat("p1", "B", T0 + LEASE, T0 + 2 * LEASE)
                .await
                .expect("hb"),
            2
        );
        b.leave("p1", "B").await.expect("leave");
        assert_eq!(
            a.heartbeat("p1", "A", T0 + LEASE, T0 + 2 * LEASE)
                .await
                .expect("hb"),
            1
        );
    }

    pub async fn the_latest_rate_cut_is_shared(h: &impl Harness) {
        let (a, b) = (h.open("cut"), h.open("cut"));
        let e = "POST /api/lists/subscribe";
        assert_eq!(b.share_rate_cut("p", e, None).await.expect("read"), None);
        let cut = |rate: f64, cut_ms: i64, who: &str| RateCut {
            rate,
            cut_ms,
            instance: who.to_string(),
        };
        let first = cut(9.0, T0, "A");
        assert_eq!(
            a.share_rate_cut("p", e, Some(&first)).await.expect("cut"),
            Some(first.clone())
        );
        assert_eq!(
            b.share_rate_cut("p", e, None).await.expect("read"),
            Some(first.clone())
        );
        // An older cut does not replace a newer one.
        let older = cut(5.0, T0 - 1, "B");
        assert_eq!(
            b.share_rate_cut("p", e, Some(&older)).await.expect("cut"),
            Some(first.clone())
        );
        let newer = cut(8.1, T0 + 1, "B");
        assert_eq!(
            b.share_rate_cut("p", e, Some(&newer)).await.expect("cut"),
            Some(newer.clone())
        );
        // Per project and endpoint.
        assert_eq!(a.share_rate_cut("q", e, None).await.expect("read"), None);
        assert_eq!(
            a.share_rate_cut("p", "other", None).await.expect("read"),
            None
        );
        // A rate that is no rate is refused.
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(
                a.share_rate_cut("p", e, Some(&cut(bad, T0 + 9, "A")))
                    .await
                    .is_err()
            );
        }
    }

    pub async fn send_slots_come_from_one_bucket(h: &impl Harness) {
        let (a, b) = (h.open("slots"), h.open("slots"));
        let e = "POST /api/lists/subscribe";
        let us = 1_000_000i64;
        // 10/s: a slot every 100 ms, no burst. A reserves one slot now, B the next ones.
        let t = T0 * 1000;
        assert_eq!(
            a.reserve_slots("p", e, 1, us / 10, 0, t).await.expect("a"),
            t
        );
        assert_eq!(
            b.reserve_slots("p", e, 2, us / 10, 0, t).await.expect("b"),
            t + us / 10
        );
        // The schedule is 300 ms ahead: the next slot is then, whoever asks.
        assert_eq!(
            a.reserve_slots("p", e, 1, us / 10, 0, t + 1)
                .await
                .expect("a"),
            t + 3 * us / 10
        );
        // A burst tolerance lets a slot come that much ahead of the schedule, never before now.
        assert_eq!(
            b.reserve_slots("p", e, 1, us / 10, us / 10, t + 2)
                .await
                .expect("b"),
            t + 3 * us / 10
        );
        // An idle bucket starts again from now.
        let later = t + 60 * us;
        assert_eq!(
            a.reserve_slots("p", e, 1, us / 10, 0, later)
                .await
                .expect("a"),
            later
        );
        // Per project and endpoint.
        assert_eq!(
            a.reserve_slots("q", e, 1, us / 10, 0, t).await.expect("q"),
            t
        );
        assert_eq!(
            a.reserve_slots("p", "x", 1, us / 10, 0, t)
                .await
                .expect("x"),
            t
        );
        assert!(a.reserve_slots("p", e, 1, -1, 0, t).await.is_err());
    }

    pub async fn leases_survive_a_restart(h: &impl Harness) {
        {
            let s = h.open("restart");
            assert_eq!(acquire(&s, "A", &["x"], 1, T0).await, names(&["x"]));
        }
        let s = h.open("restart");
        assert_eq!(
            holders(&s).await,
            vec![("x".into(), "A".into(), T0 + LEASE)]
        );
        assert!(acquire(&s, "B", &["x"], 1, T0 + 1).await.is_empty());
    }
}

macro_rules! coordination {
    ($engine:ident, $harness:expr) => {
        mod $engine {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn acquire_takes_free_leases_up_to_max() {
                cases::acquire_takes_free_leases_up_to_max(&$harness).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn renewing_keeps_leases_past_max_and_moves_the_expiry() {
                cases::renewing_keeps_leases_past_max_and_moves_the_expiry(&$harness).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn an_expired_lease_is_taken_over_and_lost_by_its_holder() {
                cases::an_expired_lease_is_taken_over_and_lost_by_its_holder(&$harness).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn released_leases_are_free_at_once() {
                cases::released_leases_are_free_at_once(&$harness).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn only_one_of_two_racing_instances_gets_a_lease() {
                cases::only_one_of_two_racing_instances_gets_a_lease(&$harness).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn heartbeats_count_live_instances_per_project() {
                cases::heartbeats_count_live_instances_per_project(&$harness).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn the_latest_rate_cut_is_shared() {
                cases::the_latest_rate_cut_is_shared(&$harness).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn send_slots_come_from_one_bucket() {
                cases::send_slots_come_from_one_bucket(&$harness).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn leases_survive_a_restart() {
                cases::leases_survive_a_restart(&$harness).await
            }
        }
    };
}

coordination!(sqlite, SqliteHarness::new());
coordination!(postgres, PostgresHarness::new());
