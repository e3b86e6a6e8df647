//! The reconciler as a user sees it: events accepted into a SQLite store reach an in-process
//! Iterable emulator, and the store says what happened to each (delivered, rejected, retrying).
//!
//! Network tests run on real time with millisecond settings: Tokio's paused clock would
//! auto-advance past in-flight localhost I/O (firing client timeouts), so only the emulator's
//! clock is manual, which makes its latency and list visibility cost nothing.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use destination::plan::Limits;
use destination::settings::ProjectType;
use iterable::limiter::{Endpoint, Limit};
use iterable_emulator::{Emulator, Faults, LogQuery, SeedList, SeedRequest, SeedUser};
use serde_json::{Value, json};
use support::*;
use sync::metrics::{DestinationSnapshot, RowResult, StatusClass, render};
use sync::reconciler::{DestinationState, OnListDeleted, ReconcileError};
use sync::{SqliteStore, StatusKind};

fn subscribe_log(
    emu: &iterable_emulator::RunningEmulator,
) -> Vec<iterable_emulator::LoggedRequest> {
    emu.requests(&LogQuery {
        path: Some("/api/lists/subscribe".into()),
        ..Default::default()
    })
}

fn rows_in(body: &str) -> usize {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["subscribers"].as_array().map(Vec::len))
        .unwrap_or(0)
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adds_and_removes_reach_the_list_and_the_latest_wins() {
    let w = World::new(Faults::default()).await;
    w.accept(vec![
        ev(
            "m1",
            change("vip", Some("ann@example.com"), Some("ann"), true, Some(1)),
        ),
        ev(
            "m2",
            change("vip", Some("Bob@Example.com"), None, true, Some(1)),
        ),
        ev(
            "m3",
            change("vip", Some("cat@example.com"), None, true, Some(1)),
        ),
        // Cat leaves later: only the exit is sent.
        ev(
            "m4",
            change("vip", Some("cat@example.com"), None, false, Some(2)),
        ),
        // Dan's exit, then an older entry arriving late (stale).
        ev("m5", change("vip", None, Some("dan"), false, Some(5))),
        ev("m6", change("vip", None, Some("dan"), true, Some(3))),
        ev(
            "m7",
            change("churn", Some("eve@example.com"), None, true, None),
        ),
    ]);
    let r = w.hybrid();
    let report = r.run_once().await.expect("a pass");
    let (vip, churn) = (w.list_id("vip"), w.list_id("churn"));
    assert_eq!(w.members(vip), set(&["ann@example.com", "bob@example.com"]));
    assert_eq!(w.members(churn), set(&["eve@example.com"]));
    assert_eq!(w.kind("m1"), StatusKind::Delivered);
    assert_eq!(w.kind("m3"), StatusKind::Superseded);
    // Unsubscribing users Iterable does not know (notFound*) is what was wanted.
    assert_eq!(w.kind("m4"), StatusKind::Delivered);
    assert_eq!(w.kind("m5"), StatusKind::Delivered);
    assert_eq!(w.kind("m6"), StatusKind::Skipped);
    assert_eq!(
        (report.audiences, report.requests, report.delivered),
        (2, 3, 5),
        "{report:?}"
    );

    // Ann exits, Cat enters again.
    w.accept(vec![
        ev(
            "m8",
            change("vip", Some("ann@example.com"), Some("ann"), false, Some(10)),
        ),
        ev(
            "m9",
            change("vip", Some("cat@example.com"), None, true, Some(10)),
        ),
    ]);
    let report = r.run_once().await.expect("a pass");
    assert_eq!(report.delivered, 2);
    assert_eq!(w.members(vip), set(&["bob@example.com", "cat@example.com"]));
    assert_eq!(w.kind("m8"), StatusKind::Delivered);
    // Nothing is left: the next pass sends nothing.
    let report = r.run_once().await.expect("a pass");
    assert_eq!(report.requests, 0);
    assert_eq!(
        w.emu.state(false)[0].lists.len(),
        2,
        "one list per audience"
    );

    // What the metrics say.
    let m = r.metrics();
    assert_eq!(m.rows_count(RowResult::Delivered), 7);
    assert_eq!(m.latency().count(), 7);
    assert_eq!(
        m.requests_count(Endpoint::Subscribe, StatusClass::Success)
            + m.requests_count(Endpoint::Unsubscribe, StatusClass::Success),
        5
    );
    let counts = w.store.list_counts(D).expect("counts");
    let mut text = String::new();
    render(
        &mut text,
        &[DestinationSnapshot {
            name: D,
            metrics: m,
            paused: false,
            degraded: false,
            lists: &counts,
            now_ms: w.clock.now(),
            event_log_rows: None,
        }],
    );
    assert!(
        text.contains("iterable_lists_rows_total{destination=\"prod\",outcome=\"delivered\"} 7\n"),
        "{text}"
    );
    assert!(
        text.contains("iterable_lists_list_members{destination=\"prod\",audience=\"vip\"} 2\n"),
        "{text}"
    );
    assert!(
        text.contains("iterable_lists_queue_depth{destination=\"prod\",audience=\"vip\"} 0\n"),
        "{text}"
    );
}

/// Ten new audiences at once, lists that stay invisible for a while after creation, some
/// 500s: exactly one list per audience, found again after a restart, everyone on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_list_per_audience_with_many_audiences_at_once() {
    let w = World::new(Faults {
        latency_ms: 5,
        latency_jitter_ms: 10,
        new_list_invisible_ms: 150,
        error_500: 0.05,
        ..Faults::default()
    })
    .await;
    let mut want: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut events = Vec::new();
    for a in 0..10 {
        for u in 0..30 {
            let (aud, email) = (format!("aud_{a}"), format!("u{u}.a{a}@example.com"));
            events.push(ev(
                &format!("e{a}-{u}"),
                change(&aud, Some(&email), None, true, Some(1)),
            ));
            want.entry(aud).or_default().insert(email);
        }
    }
    w.accept(events);
    let r = w.hybrid();
    let running = Running::start(r.clone());
    eventually("every event is settled", || w.unsettled() == 0).await;
    running.stop().await;
    let lists = &w.emu.state(false)[0].lists;
    assert_eq!(lists.len(), 10, "exactly one list per audience");
    for l in lists {
        assert_eq!(w.list_id(&l.name), l.id, "the registry holds it");
        assert_eq!(w.members(l.id), want[&l.name], "{}", l.name);
    }
    let c = w.store.event_counts(D).expect("counts");
    assert_eq!(c.delivered, 300);
    // Subscribes to lists still propagating were retried soon, not given up on.
    assert!(
        subscribe_log(&w.emu).iter().any(|q| q.status == 400),
        "some subscribes met a list that was not visible yet"
    );
    // A restart (a new reconciler over the same store) uses the registry: no new list.
    w.accept(vec![ev(
        "late",
        change("aud_3", Some("late@example.com"), None, true, Some(2)),
    )]);
    let again = w.hybrid();
    again.run_once().await.expect("a pass");
    assert_eq!(w.emu.state(false)[0].lists.len(), 10);
    assert!(w.members(w.list_id("aud_3")).contains("late@example.com"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_rows_keep_iterable_bucket_and_the_rest_is_delivered() {
    let w = World::new(Faults::default()).await;
    let ids = w.emu.project_ids();
    w.emu
        .seed(&SeedRequest {
            project_id: Some(ids[0]),
            users: vec![
                SeedUser {
                    email: Some("gone@example.com".into()),
                    forgotten: true,
                    ..Default::default()
                },
                SeedUser {
                    email: Some("taken@example.com".into()),
                    user_id: Some("owner".into()),
                    ..Default::default()
                },
            ],
            lists: vec![],
        })
        .expect("seed");
    w.accept(vec![
        ev(
            "ok1",
            change("vip", Some("ok1@example.com"), None, true, None),
        ),
        ev("bad", change("vip", Some("not-an-email"), None, true, None)),
        ev(
            "gone",
            change("vip", Some("gone@example.com"), None, true, None),
        ),
        ev(
            "conflict",
            change(
                "vip",
                Some("taken@example.com"),
                Some("intruder"),
                true,
                None,
            ),
        ),
        ev(
            "ok2",
            change("vip", Some("ok2@example.com"), Some("ok2"), true, None),
        ),
    ]);
    let report = w.hybrid().run_once().await.expect("a pass");
    assert_eq!(
        (report.requests, report.delivered, report.rejected),
        (1, 2, 3)
    );
    let vip = w.list_id("vip");
    assert_eq!(w.members(vip), set(&["ok1@example.com", "ok2@example.com"]));
    let reason = |m: &str| {
        let s = w.status(m);
        assert_eq!(s[0].0, StatusKind::Rejected, "{m}: {s:?}");
        s[0].1.clone().unwrap_or_default()
    };
    assert_eq!(reason("bad"), "invalidEmails");
    assert_eq!(reason("gone"), "forgottenEmails");
    // The email belongs to a profile with another userId.
    assert_eq!(reason("conflict"), "conflictUserIds");
    assert_eq!(w.kind("ok1"), StatusKind::Delivered);
    let counts = w.store.list_counts(D).expect("counts");
    assert_eq!((counts[0].rejected, counts[0].members), (3, 2));

    // A userID-based project: an email-only row is not found, a userId row is delivered.
    let uid = sync::reconciler::Reconciler::new(
        config("uid", ProjectType::UserId),
        seam(&w.store),
        client(&w.emu.url(), UID_KEY),
        Arc::default(),
        w.clock.epoch(),
    );
    accept_into(
        &w.store,
        "uid",
        w.clock.now(),
        vec![
            ev("u1", change("vip", None, Some("user-1"), true, None)),
            ev(
                "solo",
                change("vip", Some("solo@example.com"), None, true, None),
            ),
        ],
    );
    let report = uid.run_once().await.expect("a pass");
    assert_eq!((report.delivered, report.rejected), (1, 1));
    let list = w
        .store
        .list_id("uid", "vip")
        .expect("registry")
        .expect("a list");
    assert_ne!(list, vip, "each destination (project) has its own list");
    assert_eq!(w.members(list), set(&["uid:user-1"]));
    assert_eq!(
        status_of(&w.store, "uid", "solo")[0],
        (StatusKind::Rejected, Some("notFoundEmails".into()))
    );
}

/// 500s, 503s, 429s, dropped and reset connections and latency on every call, and a client
/// that gives up after two attempts: stored retries carry every change through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_converges_under_faults() {
    let w = World::new(Faults {
        error_500: 0.15,
        error_503: 0.05,
        error_429: 0.10,
        drop_connection: 0.02,
        reset_connection: 0.03,
        latency_ms: 20,
        latency_jitter_ms: 50,
        ..Faults::default()
    })
    .await;
    let mut cfg = config(D, ProjectType::Hybrid);
    cfg.limits = Limits {
        max_rows: 20,
        ..Limits::default()
    };
    let r = w.reconciler(cfg, client_with(&w.emu.url(), KEY, 2));
    let running = Running::start(r.clone());
    let mut want: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    // Events arrive in three waves while the loop runs; every third user enters then leaves.
    for wave in 0..3 {
        let mut events = Vec::new();
        for a in 0..3 {
            let aud = format!("aud_{a}");
            for u in 0..200 {
                let email = format!("w{wave}u{u}@example.com");
                events.push(ev(
                    &format!("{aud}-{email}-in"),
                    change(&aud, Some(&email), None, true, Some(10)),
                ));
                if u % 3 == 0 {
                    events.push(ev(
                        &format!("{aud}-{email}-out"),
                        change(&aud, Some(&email), None, false, Some(20)),
                    ));
                } else {
                    want.entry(aud.clone()).or_default().insert(email);
                }
            }
        }
        w.accept(events);
        r.waker().notify_one();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    eventually("every event is settled", || w.unsettled() == 0).await;
    running.stop().await;
    let lists = &w.emu.state(false)[0].lists;
    assert_eq!(lists.len(), 3, "no duplicate lists");
    for (aud, emails) in &want {
        assert_eq!(&w.members(w.list_id(aud)), emails, "{aud}");
    }
    let c = w.store.event_counts(D).expect("counts");
    assert_eq!(c.rejected, 0);
    assert_eq!(c.delivered + c.superseded, 3 * 3 * (200 + 67));
    assert!(
        r.metrics().rows_count(RowResult::Retried) > 0,
        "some requests failed past the client's retries and were stored for later"
    );
    // No request ever held more than the batch size.
    assert!(
        subscribe_log(&w.emu)
            .iter()
            .all(|q| rows_in(&q.body) <= 100)
    );
}

/// A failed delivery is stored with its next attempt; a new reconciler over the reopened
/// store file (a restart) delivers it when it is due, to the registered list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_retry_survives_a_restart() {
    let emu = emulator(Faults::default()).await;
    let dir = TempDir::new("restart");
    let clock = TestClock::new();
    let make = |store: Arc<SqliteStore>| {
        Arc::new(sync::reconciler::Reconciler::new(
            {
                let mut c = config(D, ProjectType::Hybrid);
                c.retry_base = Duration::from_secs(60);
                c.retry_max = Duration::from_secs(600);
                c
            },
            seam(&store),
            client_with(&emu.url(), KEY, 2),
            Arc::default(),
            clock.epoch(),
        ))
    };
    let list = {
        let store = open_store(&dir.db());
        accept_into(
            &store,
            D,
            clock.now(),
            vec![ev(
                "first",
                change("vip", Some("a@example.com"), None, true, None),
            )],
        );
        let r = make(store.clone());
        r.run_once().await.expect("a pass");
        // Iterable starts failing.
        emu.set_faults(Faults {
            error_500: 1.0,
            ..Faults::default()
        })
        .expect("faults");
        accept_into(
            &store,
            D,
            clock.now(),
            vec![ev(
                "second",
                change("vip", Some("b@example.com"), None, true, None),
            )],
        );
        let report = r.run_once().await.expect("a pass");
        assert_eq!((report.retried, report.delivered), (1, 0));
        let rec = store
            .event_status(D, "second")
            .expect("status")
            .expect("known");
        let a = &rec.audiences[0];
        assert_eq!(a.status, StatusKind::Pending);
        let reason = a.reason.clone().unwrap_or_default();
        assert!(
            reason.contains("HTTP 500") && reason.contains("GenericError"),
            "{reason}"
        );
        let next = a.next_attempt_ms.expect("a next attempt");
        assert!(next >= clock.now() + 30_000, "backoff from retry_base");
        let counts = store.list_counts(D).expect("counts");
        assert_eq!((counts[0].pending, counts[0].retrying), (1, 1));
        store.list_id(D, "vip").expect("registry").expect("a list")
        // The process ends: reconciler and store are dropped.
    };
    emu.set_faults(Faults::default()).expect("faults");
    let store = open_store(&dir.db());
    let r = make(store.clone());
    let report = r.run_once().await.expect("a pass");
    assert_eq!(report.requests, 0, "not due yet");
    clock.advance(Duration::from_secs(600));
    let report = r.run_once().await.expect("a pass");
    assert_eq!(report.delivered, 1);
    assert_eq!(status_of(&store, D, "second")[0].0, StatusKind::Delivered);
    assert_eq!(
        members(&emu, list),
        set(&["a@example.com", "b@example.com"])
    );
    assert_eq!(
        emu.state(false)[0].lists.len(),
        1,
        "the registered list was reused"
    );
}

/// A refused key pauses the destination and leaves the rows untouched (no attempt counted);
/// a reconciler with a working key (a restart with the config fixed) delivers them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_key_pauses_without_burning_retries() {
    let w = World::new(Faults::default()).await;
    // "vip" already has a list (the 401 comes from subscribe); "new" has none (from GET lists).
    let good = client(&w.emu.url(), KEY);
    let vip = good.create_list("vip").await.expect("list");
    w.store.put_list_id(D, "vip", vip).expect("registry");
    w.accept(vec![
        ev("a", change("vip", Some("a@example.com"), None, true, None)),
        ev("b", change("new", Some("b@example.com"), None, true, None)),
    ]);
    let bad = w.reconciler(
        config(D, ProjectType::Hybrid),
        client(&w.emu.url(), BAD_KEY),
    );
    let err = bad.run_once().await.expect_err("paused");
    let ReconcileError::Paused { reason, .. } = &err else {
        panic!("{err}");
    };
    assert!(
        reason.contains("BadApiKey") && reason.contains("Invalid API key"),
        "{reason}"
    );
    assert!(
        !format!("{err} {err:?} {:?}", bad.state()).contains(BAD_KEY),
        "no key in sight"
    );
    assert!(bad.state().is_paused());
    assert!(bad.state().describe().starts_with("paused: "));
    assert_eq!(bad.metrics().pauses_count(), 1);
    // The rows are untouched: not pending with an error, no attempt counted.
    assert_eq!(w.kind("a"), StatusKind::Accepted);
    assert_eq!(w.kind("b"), StatusKind::Accepted);
    for c in w.store.list_counts(D).expect("counts") {
        assert_eq!((c.pending, c.retrying), (1, 0), "{}", c.audience_key);
    }
    // Still refused: another pass probes once and stops.
    assert!(matches!(
        bad.run_once().await,
        Err(ReconcileError::Paused { .. })
    ));
    // Restarted with the right key.
    let report = w.hybrid().run_once().await.expect("a pass");
    assert_eq!(report.delivered, 2);
    assert_eq!(w.members(vip), set(&["a@example.com"]));
    assert_eq!(w.members(w.list_id("new")), set(&["b@example.com"]));
}

/// While paused the loop probes; when Iterable accepts the key again (here: the project now
/// has it), the loop resumes by itself and delivers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_loop_resumes_when_the_key_works_again() {
    let first = emulator(Faults::default()).await;
    let addr = first.addr();
    let w = World::with(first);
    // Five new audiences: each list resolution meets the refused key.
    let audiences: Vec<String> = (0..5).map(|i| format!("vip{i}")).collect();
    w.accept(
        audiences
            .iter()
            .map(|a| ev(a, change(a, Some("a@example.com"), None, true, None)))
            .collect(),
    );
    let r = w.reconciler(
        config(D, ProjectType::Hybrid),
        client(&w.emu.url(), BAD_KEY),
    );
    let running = Running::start(r.clone());
    eventually("the destination pauses", || r.state().is_paused()).await;
    let DestinationState::Paused { since_ms, .. } = r.state() else {
        unreachable!()
    };
    assert!(since_ms > 0);
    assert_eq!(w.kind("vip0"), StatusKind::Accepted);
    // The key is fixed on Iterable's side: same address, the project now knows the key.
    let World {
        emu,
        dir,
        store,
        clock,
    } = w;
    emu.shutdown().await;
    let mut cfg = emulator_config(Faults::default());
    cfg.listen = addr;
    cfg.projects[0].api_keys = vec![iterable_emulator::ApiKey::new(BAD_KEY)];
    let second = Emulator::start(cfg).await.expect("same port");
    eventually("the destination resumes", || !r.state().is_paused()).await;
    eventually("the events are delivered", || {
        audiences
            .iter()
            .all(|a| sync::StatusKind::Delivered == status_of(&store, D, a)[0].0)
    })
    .await;
    running.stop().await;
    for a in &audiences {
        let list = store.list_id(D, a).expect("registry").expect("list");
        assert_eq!(members(&second, list), set(&["a@example.com"]));
    }
    // Refusals met before the key was fixed do not pause it again afterwards.
    assert_eq!(r.metrics().pauses_count(), 1);
    assert!(
        r.metrics()
            .requests_count(Endpoint::GetLists, StatusClass::Unauthorized)
            >= 1
    );
    drop((dir, clock));
}

/// Batches are full (1,000 rows by default, or the configured size) and no more requests
/// are in flight than the concurrency limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_size_and_concurrency_are_respected() {
    // Default limits: 2,500 users make three requests of 1,000, 1,000 and 500.
    let w = World::new(Faults::default()).await;
    let events = (0..2500)
        .map(|u| {
            ev(
                &format!("e{u}"),
                change(
                    "big",
                    Some(&format!("user{u}@example.com")),
                    None,
                    true,
                    None,
                ),
            )
        })
        .collect();
    w.accept(events);
    w.hybrid().run_once().await.expect("a pass");
    let mut sizes: Vec<usize> = subscribe_log(&w.emu)
        .iter()
        .map(|q| rows_in(&q.body))
        .collect();
    sizes.sort_unstable();
    assert_eq!(sizes, [500, 1000, 1000]);
    assert_eq!(w.members(w.list_id("big")).len(), 2500);

    // 50 ms per request in real time, batches of 100, 2 at a time.
    let emu = emulator_real_time(Faults {
        latency_ms: 50,
        ..Faults::default()
    })
    .await;
    let w = World::with(emu);
    let events = (0..1000)
        .map(|u| {
            ev(
                &format!("e{u}"),
                change(
                    "vip",
                    Some(&format!("user{u}@example.com")),
                    None,
                    true,
                    None,
                ),
            )
        })
        .collect();
    w.accept(events);
    let mut cfg = config(D, ProjectType::Hybrid);
    cfg.limits.max_rows = 100;
    cfg.concurrency = 2;
    let r = w.reconciler(cfg, client(&w.emu.url(), KEY));
    let report = r.run_once().await.expect("a pass");
    assert_eq!((report.requests, report.delivered), (10, 1000));
    let log = subscribe_log(&w.emu);
    assert_eq!(log.len(), 10);
    assert!(log.iter().all(|q| rows_in(&q.body) == 100));
    // Arrival times: a slot is reused only after its 50 ms answer, so no 45 ms window holds
    // more than two arrivals.
    let times: Vec<u64> = log.iter().map(|q| q.timestamp).collect();
    for &t in &times {
        let inside = times.iter().filter(|&&u| u >= t && u < t + 45).count();
        assert!(
            inside <= 2,
            "{inside} requests within 45 ms of {t}: {times:?}"
        );
    }
    assert!(
        times
            .iter()
            .any(|&t| times.iter().filter(|&&u| u >= t && u < t + 45).count() == 2),
        "two requests did run at once: {times:?}"
    );
}

/// A partial batch waits up to the linger for more rows; a full one goes at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_batches_linger_and_full_ones_do_not() {
    let w = World::new(Faults::default()).await;
    let mut cfg = config(D, ProjectType::Hybrid);
    cfg.linger = Duration::from_millis(300);
    cfg.limits.max_rows = 200;
    let r = w.reconciler(cfg.clone(), client(&w.emu.url(), KEY));
    let running = Running::start(r.clone());
    let start = Instant::now();
    w.accept(
        (0..5)
            .map(|u| {
                ev(
                    &format!("p{u}"),
                    change("vip", Some(&format!("p{u}@example.com")), None, true, None),
                )
            })
            .collect(),
    );
    r.waker().notify_one();
    // More rows arrive while the first ones linger: they join the same request.
    tokio::time::sleep(Duration::from_millis(3)).await;
    w.accept(vec![ev(
        "p5",
        change("vip", Some("p5@example.com"), None, true, None),
    )]);
    r.waker().notify_one();
    eventually("the partial batch is delivered", || w.unsettled() == 0).await;
    let waited = start.elapsed();
    assert!(waited >= Duration::from_millis(280), "{waited:?}");
    let log = subscribe_log(&w.emu);
    assert_eq!(log.len(), 1, "one request for all six");
    assert_eq!(rows_in(&log[0].body), 6);
    running.stop().await;

    // With a long linger, a full batch still goes at once.
    cfg.linger = Duration::from_secs(5);
    let r = w.reconciler(cfg, client(&w.emu.url(), KEY));
    let running = Running::start(r.clone());
    let start = Instant::now();
    w.accept(
        (0..200)
            .map(|u| {
                ev(
                    &format!("f{u}"),
                    change("vip", Some(&format!("f{u}@example.com")), None, true, None),
                )
            })
            .collect(),
    );
    r.waker().notify_one();
    eventually("the full batch is delivered", || w.unsettled() == 0).await;
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    running.stop().await;
}

/// A list that cannot be created yet (here the create limit is spent for an hour) holds back
/// only its own audience: the loop goes on delivering the others meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_waiting_to_be_created_holds_back_only_its_audience() {
    let w = World::new(Faults::default()).await;
    let one_an_hour = Limit::Fixed {
        per_second: 1.0 / 3600.0,
        burst: 1,
    };
    let c = client_limiting(&w.emu.url(), KEY, Endpoint::CreateList, one_an_hour);
    let r = w.reconciler(config(D, ProjectType::Hybrid), c);
    let running = Running::start(r.clone());
    w.accept(vec![ev(
        "z1",
        change("z_flowing", Some("z1@example.com"), None, true, None),
    )]);
    r.waker().notify_one();
    eventually("the first list is created and filled", || {
        w.unsettled() == 0
    })
    .await;
    let flowing = w.list_id("z_flowing");
    // "a_waiting" comes first in every round, and its list must wait an hour.
    w.accept(vec![
        ev(
            "a1",
            change("a_waiting", Some("a1@example.com"), None, true, None),
        ),
        ev(
            "z2",
            change("z_flowing", Some("z2@example.com"), None, true, None),
        ),
    ]);
    r.waker().notify_one();
    eventually("the other audience is delivered meanwhile", || {
        w.kind("z2") == StatusKind::Delivered
    })
    .await;
    assert_eq!(
        w.members(flowing),
        set(&["z1@example.com", "z2@example.com"])
    );
    assert_eq!(w.kind("a1"), StatusKind::Accepted);
    assert_eq!(w.store.list_id(D, "a_waiting").expect("registry"), None);
    running.stop().await;
}

/// On shutdown the loop starts nothing new but finishes and records what is in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_records_requests_in_flight() {
    let emu = emulator_real_time(Faults {
        latency_ms: 300,
        ..Faults::default()
    })
    .await;
    let w = World::with(emu);
    // The list exists already, so the only slow call is the subscribe.
    let vip = client(&w.emu.url(), KEY)
        .create_list("vip")
        .await
        .expect("list");
    w.store.put_list_id(D, "vip", vip).expect("registry");
    w.accept(vec![ev(
        "a",
        change("vip", Some("a@example.com"), None, true, None),
    )]);
    let r = w.hybrid();
    let running = Running::start(r.clone());
    // A request, not merely rows taken: rows are also held while their list is looked up in
    // a task of its own, and a shutdown then leaves them pending (a loaded machine made that
    // window wide enough to be seen here).
    eventually("a request is in flight", || r.requests_in_flight() == 1).await;
    assert_eq!(r.in_flight_rows(), 1);
    running.stop().await;
    assert_eq!(r.in_flight_rows(), 0);
    assert_eq!(w.kind("a"), StatusKind::Delivered);
    assert_eq!(w.members(vip), set(&["a@example.com"]));
}

/// Lists that are gone or not static, and requests too large for the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_problems_are_reported_and_large_requests_split() {
    let w = World::new(Faults::default()).await;
    let ids = w.emu.project_ids();
    let seeded = w
        .emu
        .seed(&SeedRequest {
            project_id: Some(ids[0]),
            users: vec![],
            lists: vec![SeedList {
                name: "smart".into(),
                list_type: iterable_emulator::ListType::Dynamic,
                ..Default::default()
            }],
        })
        .expect("seed");
    let dynamic = seeded.lists[0].id;
    let c = client(&w.emu.url(), KEY);
    let doomed = c.create_list("doomed").await.expect("list");
    w.store.put_list_id(D, "doomed", doomed).expect("registry");
    c.delete_list(doomed).await.expect("deleted in Iterable");
    let mut explicit = change("named", Some("n@example.com"), None, true, None);
    explicit.list_id = Some(987_654);
    let mut on_dynamic = change("smart", Some("s@example.com"), None, true, None);
    on_dynamic.list_id = Some(dynamic);
    w.accept(vec![
        ev(
            "doomed",
            change("doomed", Some("d@example.com"), None, true, None),
        ),
        ev("named", explicit),
        ev("dynamic", on_dynamic),
    ]);
    // As before `on_list_deleted`: the deleted list is not created again.
    let mut cfg = config(D, ProjectType::Hybrid);
    cfg.on_list_deleted = OnListDeleted::Pause;
    let r = w.reconciler(cfg, client(&w.emu.url(), KEY));
    let before = w.clock.now();
    let report = r.run_once().await.expect("a pass");
    assert_eq!((report.retried, report.rejected), (2, 1), "{report:?}");
    let rec = w
        .store
        .event_status(D, "doomed")
        .expect("status")
        .expect("known");
    let a = &rec.audiences[0];
    assert_eq!(a.status, StatusKind::Pending);
    let reason = a.reason.clone().unwrap_or_default();
    assert!(
        reason.contains(&format!("list {doomed}")) && reason.contains("no longer exists"),
        "{reason}"
    );
    assert!(
        a.next_attempt_ms.unwrap_or(0) >= before + 30 * 60 * 1000,
        "a long backoff"
    );
    let s = w.status("named");
    assert!(s[0].1.as_deref().unwrap_or("").contains("987654"), "{s:?}");
    let s = w.status("dynamic");
    assert_eq!(s[0].0, StatusKind::Rejected);
    assert!(
        s[0].1.as_deref().unwrap_or("").starts_with("BadParams: "),
        "Iterable's code and message: {s:?}"
    );
    assert_eq!(w.emu.state(false)[0].lists.len(), 1, "nothing re-created");

    // A server that takes at most ~2 KB: 100 rows are split until they fit.
    w.emu
        .set_faults(Faults {
            max_body_bytes: Some(2_000),
            ..Faults::default()
        })
        .expect("faults");
    w.accept(
        (0..100)
            .map(|u| {
                let mut c = change(
                    "big",
                    Some(&format!("user{u}@example.com")),
                    None,
                    true,
                    None,
                );
                c.data_fields = Some(fields(&[("plan", json!("gold"))]));
                ev(&format!("b{u}"), c)
            })
            .collect(),
    );
    let report = r.run_once().await.expect("a pass");
    assert_eq!(report.delivered, 100, "{report:?}");
    assert_eq!(w.members(w.list_id("big")).len(), 100);
    let log = subscribe_log(&w.emu);
    assert!(log.iter().any(|q| q.status == 413));
    assert!(
        log.iter()
            .filter(|q| q.status == 200)
            .all(|q| q.body.len() <= 2_000)
    );
}

/// Collapsing: two stored keys that are one person in a hybrid project (same email, one
/// with a userId) are sent once; the older one is superseded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_person_under_two_keys_is_sent_once() {
    let w = World::new(Faults::default()).await;
    w.accept(vec![
        ev(
            "old",
            change("vip", Some("ann@example.com"), None, true, Some(1)),
        ),
        ev(
            "new",
            change("vip", Some("ann@example.com"), Some("ann"), true, Some(2)),
        ),
    ]);
    let report = w.hybrid().run_once().await.expect("a pass");
    assert_eq!((report.delivered, report.superseded), (1, 1));
    assert_eq!(w.kind("old"), StatusKind::Superseded);
    assert_eq!(w.kind("new"), StatusKind::Delivered);
    let log = subscribe_log(&w.emu);
    assert_eq!(rows_in(&log[0].body), 1);
}

/// Delivery under a steady load: events accepted into a durable SQLite file while the loop
/// runs, until every one is acknowledged by the emulator. In the suite it moves 5,000
/// events; as a measurement of the delivery side alone run
/// `THROUGHPUT_EVENTS=200000 cargo test --release -p sync --test reconciler throughput -- --nocapture`
/// (the whole service is measured by `iterable-lists bench --only c`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput() {
    const BATCH: usize = 1_000;
    let n_events = std::env::var("THROUGHPUT_EVENTS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(5_000);
    let n_events = (n_events / BATCH).max(1) * BATCH;
    let w = World::with(emulator_real_time(Faults::default()).await);
    let mut cfg = config(D, ProjectType::Hybrid);
    cfg.linger = Duration::from_millis(500);
    cfg.poll_interval = Duration::from_secs(1);
    let r = w.reconciler(cfg, client(&w.emu.url(), KEY));
    // THROUGHPUT_SEQUENTIAL=1: accept everything first, then deliver (each side alone).
    let sequential = std::env::var_os("THROUGHPUT_SEQUENTIAL").is_some();
    let mut running = (!sequential).then(|| Running::start(r.clone()));
    let start = Instant::now();
    let store = w.store.clone();
    let clock = w.clock.clone();
    let waker = r.waker();
    let producer = tokio::task::spawn_blocking(move || {
        let mut accept_time = Duration::ZERO;
        for b in 0..n_events / BATCH {
            let events = (0..BATCH)
                .map(|i| {
                    let n = b * BATCH + i;
                    let mut c = change(
                        &format!("aud_{}", n % 4),
                        Some(&format!("user{n}@example.com")),
                        Some(&format!("u{n}")),
                        n % 10 != 0,
                        Some(n as i64),
                    );
                    c.data_fields = Some(fields(&[("plan", json!("gold")), ("n", json!(n))]));
                    ev(&format!("m{n}"), c)
                })
                .collect();
            let t = Instant::now();
            accept_into(&store, D, clock.now(), events);
            accept_time += t.elapsed();
            waker.notify_one();
        }
        accept_time
    });
    let accept_time = producer.await.expect("producer");
    let accepted_in = start.elapsed();
    if running.is_none() {
        running = Some(Running::start(r.clone()));
    }
    let deliver_start = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(120);
    // Watch the counters, not the store: counting the event log takes the store's lock.
    while r.metrics().rows_count(RowResult::Delivered) < n_events as u64 {
        assert!(Instant::now() < deadline, "not drained in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let total = start.elapsed();
    let delivering = deliver_start.elapsed();
    if let Some(running) = running {
        running.stop().await;
    }
    let m = r.metrics();
    let (p50, p99) = m.latency_p50_p99().unwrap_or_default();
    println!(
        "{n_events} events: accepted in {:.2}s ({:.0}/s, {:.2}s inside accept), all acknowledged after {:.2}s: {:.0} events/s end to end ({:.2}s after the last accept); latency p50 {:.3}s p99 {:.3}s; {} requests",
        accepted_in.as_secs_f64(),
        n_events as f64 / accepted_in.as_secs_f64(),
        accept_time.as_secs_f64(),
        total.as_secs_f64(),
        n_events as f64 / total.as_secs_f64(),
        delivering.as_secs_f64(),
        p50,
        p99,
        m.requests_count(Endpoint::Subscribe, StatusClass::Success)
            + m.requests_count(Endpoint::Unsubscribe, StatusClass::Success),
    );
    assert_eq!(m.rows_count(RowResult::Delivered), n_events as u64);
    assert_eq!(w.unsettled(), 0);
}
