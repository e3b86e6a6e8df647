//! The mass-removal guard inside the reconciler, against an in-process emulator, on an
//! injected clock: a storm much larger than one fetch is held before a single unsubscribe is
//! sent (the store counts every pending exit, not the batch), entries still go out; a trickle
//! is let through up to the share and held beyond it; the window forgets old removals.

mod support;

use std::time::Duration;

use destination::plan::Limits;
use destination::settings::ProjectType;
use iterable_emulator::{Faults, LogQuery};
use support::*;
use sync::{HoldAction, RemovalGuard};

fn unsubscribes(w: &World) -> usize {
    w.emu
        .requests(&LogQuery {
            path: Some("/api/lists/unsubscribe".into()),
            ..Default::default()
        })
        .len()
}

/// Small requests (10 rows, 2 in flight: 20 rows a fetch) and the guard's defaults.
fn guarded(w: &World) -> std::sync::Arc<sync::Reconciler> {
    let mut cfg = config(D, ProjectType::Hybrid);
    cfg.limits = Limits {
        max_rows: 10,
        ..Limits::default()
    };
    cfg.concurrency = 2;
    cfg.removal_guard = Some(RemovalGuard::default());
    w.reconciler(cfg, client(&w.emu.url(), KEY))
}

fn users(w: &World, range: std::ops::Range<usize>, member: bool, t: i64) {
    let events = range
        .map(|i| {
            let email = format!("u{i}@example.com");
            ev(
                &format!("u{i}-{member}-{t}"),
                change("vip", Some(&email), None, member, Some(t)),
            )
        })
        .collect();
    w.accept(events);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_larger_than_a_fetch_is_held_before_any_removal_is_sent() {
    let w = World::new(Faults::default()).await;
    let r = guarded(&w);
    users(&w, 0..300, true, 1);
    r.run_once().await.expect("pass");
    let list = w.list_id("vip");
    assert_eq!(w.members(list).len(), 300);
    // Everyone exits (300 rows: 15 fetches' worth); newcomers enter after them.
    users(&w, 0..300, false, 2);
    users(&w, 1000..1005, true, 3);
    r.run_once().await.expect("pass");
    assert_eq!(unsubscribes(&w), 0, "no removal was sent");
    assert_eq!(w.members(list).len(), 305, "the newcomers arrived");
    let store = seam(&w.store);
    let holds = store.removal_holds(D).await.expect("holds");
    assert_eq!(holds.len(), 1);
    assert_eq!(
        (holds[0].held, holds[0].tripped.pending_removals),
        (300, 300)
    );
    // Passes go on holding.
    w.clock.advance(Duration::from_secs(60));
    r.run_once().await.expect("pass");
    assert_eq!(unsubscribes(&w), 0);
    // Released: every removal goes out.
    let n = store
        .resolve_hold(D, "vip", HoldAction::Release, "test", w.clock.now())
        .await
        .expect("release");
    assert_eq!(n, Some(300));
    r.run_once().await.expect("pass");
    assert_eq!(w.members(list).len(), 5);
    assert_eq!(unsubscribes(&w), 30, "300 rows, 10 a request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickle_is_let_through_up_to_the_share_and_the_window_forgets() {
    let w = World::new(Faults::default()).await;
    let r = guarded(&w);
    users(&w, 0..200, true, 1);
    r.run_once().await.expect("pass");
    let list = w.list_id("vip");
    // Ten exits a minute: 50 (a quarter of 200) go out, the sixth ten is held.
    for round in 0..6 {
        let from = round * 10;
        users(&w, from..from + 10, false, 2 + round as i64);
        r.run_once().await.expect("pass");
        w.clock.advance(Duration::from_secs(60));
    }
    assert_eq!(w.members(list).len(), 150);
    let store = seam(&w.store);
    let holds = store.removal_holds(D).await.expect("holds");
    assert_eq!(holds.len(), 1, "the sixth ten is held");
    assert_eq!(holds[0].held, 10);
    assert_eq!(holds[0].tripped.removed_in_window, 50);
    // Discarded: those ten stay; two hours later, 30 exits of 150 are within the share.
    store
        .resolve_hold(D, "vip", HoldAction::Discard, "test", w.clock.now())
        .await
        .expect("discard");
    w.clock.advance(Duration::from_secs(2 * 3600));
    users(&w, 100..130, false, 100);
    r.run_once().await.expect("pass");
    assert_eq!(w.members(list).len(), 120);
    assert!(store.removal_holds(D).await.expect("holds").is_empty());
    // And 20 more right away exceed it (30 + 20 of 150 > 37.5).
    users(&w, 130..150, false, 101);
    r.run_once().await.expect("pass");
    assert_eq!(w.members(list).len(), 120);
    assert_eq!(store.removal_holds(D).await.expect("holds").len(), 1);
}
