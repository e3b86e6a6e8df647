//! What the store says while Iterable fails: each try the client makes shows on the events
//! (pending, the attempt count, the last error) and counts as retrying; Iterable unreachable
//! for longer than `degraded_after` makes the destination degraded until it answers; a pause
//! is stored and holds for the next reconciler on the same store.

mod support;

use std::time::Duration;

use destination::settings::ProjectType;
use iterable_emulator::Faults;
use support::*;
use sync::reconciler::{DestinationState, ReconcileError};
use sync::{SqliteStore, StatusKind};

fn failing() -> Faults {
    Faults {
        error_500: 1.0,
        ..Faults::default()
    }
}

/// A world whose emulator has list "vip" registered, then fails every call.
async fn failing_with_list() -> World {
    let w = World::new(Faults::default()).await;
    let vip = client(&w.emu.url(), KEY)
        .create_list("vip")
        .await
        .expect("list");
    w.store.put_list_id(D, "vip", vip).expect("registry");
    w.emu.set_faults(failing()).expect("faults");
    w
}

/// (status, attempts, reason) of an event's only audience.
fn shown(store: &SqliteStore, message_id: &str) -> (StatusKind, u32, Option<String>) {
    let e = store
        .event_status(D, message_id)
        .expect("status")
        .expect("known");
    let a = &e.audiences[0];
    (a.status, a.attempts, a.reason.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_try_of_a_failing_request_shows_on_its_events() {
    // The list is known, so the first call is the subscribe.
    let w = failing_with_list().await;
    w.accept(vec![
        ev("a", change("vip", Some("a@example.com"), None, true, None)),
        ev("b", change("vip", Some("b@example.com"), None, true, None)),
    ]);
    // Five tries inside the client, then a stored retry.
    let r = w.reconciler(
        config(D, ProjectType::Hybrid),
        client_with(&w.emu.url(), KEY, 5),
    );
    let report = r.run_once().await.expect("a pass");
    assert_eq!(report.retried, 2);
    for m in ["a", "b"] {
        let (status, attempts, reason) = shown(&w.store, m);
        assert_eq!((status, attempts), (StatusKind::Pending, 5), "{m}");
        let reason = reason.unwrap_or_default();
        assert!(
            reason.contains("/api/lists/subscribe") && reason.contains("HTTP 500"),
            "{reason}"
        );
    }
    let c = &w.store.list_counts(D).expect("counts")[0];
    assert_eq!((c.pending, c.retrying), (2, 2));
    // The stored schedule counts one attempt: the client's tries do not stretch it.
    let due = w.store.pending(D, "vip", i64::MAX, 10).expect("pending");
    assert_eq!(due[0].attempts, 1);
    // The next round adds its tries; then Iterable answers and the events are delivered.
    w.clock.advance(Duration::from_secs(1));
    r.run_once().await.expect("a pass");
    assert_eq!(shown(&w.store, "a").1, 10);
    w.emu.set_faults(Faults::default()).expect("faults");
    w.clock.advance(Duration::from_secs(1));
    let report = r.run_once().await.expect("a pass");
    assert_eq!(report.delivered, 2);
    assert_eq!(shown(&w.store, "a"), (StatusKind::Delivered, 10, None));
    let c = &w.store.list_counts(D).expect("counts")[0];
    assert_eq!((c.pending, c.retrying, c.members), (0, 0, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tries_of_a_list_lookup_show_on_the_events_that_wait_for_it() {
    let w = World::new(failing()).await;
    w.accept(vec![ev(
        "a",
        change("new", Some("a@example.com"), None, true, None),
    )]);
    let r = w.reconciler(
        config(D, ProjectType::Hybrid),
        client_with(&w.emu.url(), KEY, 3),
    );
    r.run_once().await.expect("a pass");
    let (status, attempts, reason) = shown(&w.store, "a");
    assert_eq!(status, StatusKind::Pending);
    assert_eq!(attempts, 3, "three tries of GET /api/lists");
    let reason = reason.unwrap_or_default();
    assert!(reason.contains("HTTP 500"), "{reason}");
    assert_eq!(w.store.list_counts(D).expect("counts")[0].retrying, 1);
}

/// While the client is still trying (a slow backoff), the events already show the failed
/// tries, and the running loop's store counts them as retrying.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_show_pending_while_the_client_still_retries() {
    let w = failing_with_list().await;
    w.accept(vec![ev(
        "a",
        change("vip", Some("a@example.com"), None, true, None),
    )]);
    let mut cc =
        iterable::client::ClientConfig::new(w.emu.url(), iterable::client::ApiKey::new(KEY));
    // Tries up to a minute apart, and so many that the client does not give up during the
    // test: the test looks while it retries.
    cc.backoff = iterable::backoff::Backoff {
        base: Duration::from_secs(60),
        cap: Duration::from_secs(60),
        max_attempts: 1_000,
    };
    let r = w.reconciler(
        config(D, ProjectType::Hybrid),
        std::sync::Arc::new(iterable::client::Client::new(cc).expect("client")),
    );
    let running = Running::start(r.clone());
    eventually("the first try is recorded", || shown(&w.store, "a").1 >= 1).await;
    let (status, _, reason) = shown(&w.store, "a");
    assert_eq!(status, StatusKind::Pending);
    assert!(reason.is_some_and(|r| r.contains("HTTP 500")));
    assert_eq!(r.in_flight_rows(), 1, "the request is still in the client");
    let c = &w.store.list_counts(D).expect("counts")[0];
    assert_eq!((c.pending, c.retrying), (1, 1));
    let e = w
        .store
        .event_status(D, "a")
        .expect("status")
        .expect("known");
    assert!(
        e.audiences[0].next_attempt_ms.is_some(),
        "the next try is shown"
    );
    // Shutting down does not wait for the client's minute-long backoff to end.
    drop(running);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_for_longer_than_the_threshold_is_degraded_until_an_answer() {
    let w = failing_with_list().await;
    w.accept(vec![ev(
        "a",
        change("vip", Some("a@example.com"), None, true, None),
    )]);
    let r = w.reconciler(
        config(D, ProjectType::Hybrid),
        client_with(&w.emu.url(), KEY, 2),
    );
    r.run_once().await.expect("a pass");
    assert_eq!(
        r.state(),
        DestinationState::Running,
        "failing, not for long"
    );
    assert_eq!(w.store.destination_state(D).expect("state"), None);
    // A minute later, still failing.
    w.clock.advance(Duration::from_secs(61));
    r.run_once().await.expect("a pass");
    let DestinationState::Degraded { reason, since_ms } = r.state() else {
        panic!("{:?}", r.state());
    };
    assert!(reason.contains("HTTP 500"), "{reason}");
    assert!(
        w.clock.now() - since_ms >= 61_000,
        "since the first failure"
    );
    assert!(
        w.store
            .destination_state(D)
            .expect("state")
            .is_some_and(|s| s.is_degraded()),
        "stored"
    );
    // Iterable answers again: running, stored.
    w.emu.set_faults(Faults::default()).expect("faults");
    w.clock.advance(Duration::from_secs(600));
    let report = r.run_once().await.expect("a pass");
    assert_eq!(report.delivered, 1);
    assert_eq!(r.state(), DestinationState::Running);
    assert_eq!(
        w.store.destination_state(D).expect("state"),
        Some(DestinationState::Running)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_pause_holds_for_the_next_reconciler_until_its_key_works() {
    let w = World::new(Faults::default()).await;
    w.accept(vec![ev(
        "a",
        change("vip", Some("a@example.com"), None, true, None),
    )]);
    let bad = w.reconciler(
        config(D, ProjectType::Hybrid),
        client(&w.emu.url(), BAD_KEY),
    );
    assert!(matches!(
        bad.run_once().await,
        Err(ReconcileError::Paused { .. })
    ));
    let stored = w.store.destination_state(D).expect("state");
    let Some(DestinationState::Paused { reason, .. }) = &stored else {
        panic!("{stored:?}");
    };
    assert!(reason.contains("BadApiKey"), "{reason}");
    // Another instance with the same bad key starts paused and stays so.
    let other = w.reconciler(
        config(D, ProjectType::Hybrid),
        client(&w.emu.url(), BAD_KEY),
    );
    let running = Running::start(other.clone());
    eventually("the stored pause is taken up", || other.state().is_paused()).await;
    running.stop().await;
    assert_eq!(w.kind("a"), StatusKind::Accepted);
    // With the key fixed, the first probe resumes it at once.
    let good = w.hybrid();
    let running = Running::start(good.clone());
    eventually("delivered", || w.kind("a") == StatusKind::Delivered).await;
    running.stop().await;
    assert_eq!(
        w.store.destination_state(D).expect("state"),
        Some(DestinationState::Running)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_and_a_resume_stored_by_one_instance_hold_for_another() {
    let w = World::new(Faults::default()).await;
    // B has a working key and would not probe for an hour: whatever it does about the pause
    // it learns from the store.
    let mut cfg = config(D, ProjectType::Hybrid);
    cfg.probe_interval = Duration::from_secs(3600);
    let b = w.reconciler(cfg, client(&w.emu.url(), KEY));
    let running = Running::start(b.clone());
    // A, with a refused key, pauses the destination and stores it.
    let a = w.reconciler(
        config(D, ProjectType::Hybrid),
        client(&w.emu.url(), BAD_KEY),
    );
    // B, running beside it, may take the audience's lease and deliver the event before A
    // tries; A then has nothing it may send and no 401 to pause on (3 runs in 33 failed so).
    // A gets events for new audiences until one of its tries meets the 401.
    let mut stored = None;
    for i in 0..20 {
        let id = format!("p{i}");
        w.accept(vec![ev(
            &id,
            change(
                &format!("early-{i}"),
                Some(&format!("{id}@example.com")),
                None,
                true,
                None,
            ),
        )]);
        let _ = a.run_once().await;
        stored = w.store.destination_state(D).expect("state");
        if matches!(stored, Some(DestinationState::Paused { .. })) {
            break;
        }
    }
    assert!(
        matches!(stored, Some(DestinationState::Paused { .. })),
        "A never paused: {stored:?}"
    );
    // B takes the pause up within a tick of its clock (the event may have been delivered by
    // B before A paused; what matters is that B pauses).
    eventually("B paused", || {
        w.clock.advance(Duration::from_millis(200));
        b.state().is_paused()
    })
    .await;
    w.accept(vec![ev(
        "q",
        change("vip", Some("q@example.com"), None, true, None),
    )]);
    // Nothing is sent while paused; then another instance's working probe stores the resume.
    for _ in 0..5 {
        w.clock.advance(Duration::from_millis(200));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(w.kind("q"), StatusKind::Accepted, "sent while paused");
    w.store
        .set_destination_state(D, &DestinationState::Running, w.clock.now())
        .expect("resume");
    eventually("B resumed and delivered", || {
        w.clock.advance(Duration::from_millis(200));
        w.kind("q") == StatusKind::Delivered
    })
    .await;
    assert!(!b.state().is_paused());
    running.stop().await;
}
