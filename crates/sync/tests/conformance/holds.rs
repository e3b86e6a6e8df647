//! Conformance cases of the mass-removal guard: an exit storm is held (its exits parked,
//! still pending, entries still due), a trickle is counted over the window, small audiences
//! are never held, and an operator's release sends the held removals while a discard settles
//! them coherently (the users stay members, their events say why).

use sync::{GuardVerdict, HoldAction, RemovalFigures, RemovalPolicy};

use super::*;

const A: &str = "vip";

fn policy(max_ratio: f64) -> RemovalPolicy {
    RemovalPolicy {
        max_ratio,
        window_ms: 60_000,
        min_members: 100,
    }
}

fn email(i: usize) -> String {
    format!("u{i}@x.co")
}

/// Accepts one event per user `range` (entering or leaving `audience`, at time `t`); returns
/// the message ids.
async fn changes(
    s: &Store,
    audience: &str,
    range: std::ops::Range<usize>,
    member: bool,
    t: i64,
) -> Vec<String> {
    let mut batch = Vec::new();
    let mut ids = Vec::new();
    for i in range {
        let msg = format!("{audience}-{i}-{member}-{t}");
        ids.push(msg.clone());
        batch.push(event(
            &msg,
            vec![change(audience, &email(i), member, Some(t))],
        ));
    }
    s.accept(batch).await.expect("accept");
    ids
}

/// Delivers every due row of the audience, as the reconciler would after Iterable's 200.
async fn deliver_all(s: &Store, audience: &str, now: i64) -> usize {
    let rows = s.pending(D, audience, now, 100_000).await.expect("pending");
    let n = rows.len();
    let out = rows
        .into_iter()
        .map(|r| outcome(r.identity, r.version.seq, Outcome::Delivered))
        .collect();
    s.record_outcomes(D, audience, now, out)
        .await
        .expect("record");
    n
}

/// The due exits of the audience, as the reconciler passes them to the guard.
async fn due_exits(s: &Store, audience: &str, now: i64) -> Vec<(Identity, u64)> {
    s.pending(D, audience, now, 100_000)
        .await
        .expect("pending")
        .into_iter()
        .filter(|r| !r.member)
        .map(|r| (r.identity, r.version.seq))
        .collect()
}

/// An audience of `n` acknowledged members.
async fn members(s: &Store, audience: &str, n: usize) {
    changes(s, audience, 0..n, true, 1).await;
    assert_eq!(deliver_all(s, audience, NOW).await, n);
}

async fn counts_of(s: &Store, audience: &str) -> ListCounts {
    s.list_counts(D)
        .await
        .expect("list_counts")
        .into_iter()
        .find(|l| l.audience_key == audience)
        .expect("the audience's figures")
}

/// The figures equal a full recount (the guard's writes keep them right).
async fn assert_counts_exact(s: &Store) {
    let (lists, events) = s.recount(D).await.expect("recount");
    assert_eq!(s.list_counts(D).await.expect("list_counts"), lists);
    assert_eq!(s.event_counts(D).await.expect("event_counts"), events);
}

use sync::ListCounts;

pub async fn an_exit_storm_is_held_and_a_release_sends_it(h: &dyn Harness) {
    let s = h.open("storm");
    let s = &s;
    members(s, A, 200).await;
    let storm_ids = changes(s, A, 0..200, false, 2).await;
    let exits = due_exits(s, A, NOW).await;
    assert_eq!(exits.len(), 200);
    // The reconciler asks with its first batch only: the store counts every pending exit.
    let v = s
        .guard_removals(D, A, &exits[..50], policy(0.25), NOW)
        .await
        .expect("guard");
    let GuardVerdict::Held {
        hold, tripped_now, ..
    } = v
    else {
        panic!("an everyone-exits storm must be held: {v:?}");
    };
    assert!(tripped_now);
    assert_eq!(
        hold.tripped,
        RemovalFigures {
            members: 200,
            pending_removals: 200,
            removed_in_window: 0
        }
    );
    assert_eq!((hold.since_ms, hold.held, hold.max_ratio), (NOW, 200, 0.25));
    // Every exit is parked: nothing due, still pending.
    assert!(
        s.pending(D, A, NOW + 1, 1000)
            .await
            .expect("pending")
            .is_empty()
    );
    assert!(
        !s.pending_audiences(D, NOW + 1)
            .await
            .expect("due")
            .contains(&A.to_string())
    );
    let c = counts_of(s, A).await;
    assert_eq!((c.members, c.pending), (200, 200));
    // Their events say so (still accepted: nothing was sent).
    let st = status(s, &storm_ids[3]).await;
    assert_eq!(
        st[0],
        (
            StatusKind::Accepted,
            Some(sync::store::HELD_REASON.to_string())
        )
    );
    // Entries still flow; an exit arriving now is parked by the next check.
    changes(s, A, 500..501, true, 3).await;
    changes(s, A, 200..201, false, 3).await;
    let rows = s.pending(D, A, NOW + 2, 1000).await.expect("pending");
    assert_eq!(rows.len(), 2);
    let late: Vec<_> = rows
        .iter()
        .filter(|r| !r.member)
        .map(|r| (r.identity.clone(), r.version.seq))
        .collect();
    let v = s
        .guard_removals(D, A, &late, policy(0.25), NOW + 2)
        .await
        .expect("guard");
    assert!(
        matches!(&v, GuardVerdict::Held { tripped_now: false, hold, .. } if hold.held == 201),
        "{v:?}"
    );
    let late_id = format!("{A}-200-false-3");
    assert_eq!(
        status(s, &late_id).await[0].1.as_deref(),
        Some(sync::store::HELD_REASON)
    );
    let rows = s.pending(D, A, NOW + 3, 1000).await.expect("pending");
    assert_eq!(rows.len(), 1);
    assert!(rows[0].member, "only the entry is due");
    // Every engine and instance sees the hold.
    let holds = s.removal_holds(D).await.expect("holds");
    assert_eq!(holds.len(), 1);
    assert_eq!((holds[0].audience_key.as_str(), holds[0].held), (A, 201));
    assert!(s.removal_holds("other").await.expect("holds").is_empty());
    assert_counts_exact(s).await;
    // Released: every parked exit is due, and the guard lets them through.
    let n = s
        .resolve_hold(D, A, HoldAction::Release, "tester", NOW + 4)
        .await
        .expect("release");
    assert_eq!(n, Some(201));
    assert!(s.removal_holds(D).await.expect("holds").is_empty());
    assert_eq!(
        s.last_hold_decision(D, A).await.expect("decision"),
        Some(("released 201 removal(s): tester".to_string(), NOW + 4))
    );
    assert_eq!(
        s.last_hold_decision(D, "other").await.expect("decision"),
        None
    );
    assert_eq!(
        status(s, &storm_ids[3]).await[0],
        (StatusKind::Accepted, None)
    );
    let exits = due_exits(s, A, NOW + 4).await;
    assert_eq!(exits.len(), 201);
    let v = s
        .guard_removals(D, A, &exits, policy(0.25), NOW + 5)
        .await
        .expect("guard");
    assert_eq!(v, GuardVerdict::Allowed);
    deliver_all(s, A, NOW + 6).await;
    let c = counts_of(s, A).await;
    assert_eq!((c.members, c.pending), (1, 0));
    // Nothing is held any more.
    let again = s
        .resolve_hold(D, A, HoldAction::Release, "tester", NOW + 7)
        .await
        .expect("release");
    assert_eq!(again, None);
    assert_counts_exact(s).await;
}

pub async fn a_trickle_counts_over_the_window(h: &dyn Harness) {
    let s = h.open("trickle");
    let s = &s;
    members(s, A, 200).await;
    // 40 exits, sent: within the share (50 of 200).
    changes(s, A, 0..40, false, 2).await;
    let exits = due_exits(s, A, NOW).await;
    let v = s.guard_removals(D, A, &exits, policy(0.25), NOW).await;
    assert_eq!(v.expect("guard"), GuardVerdict::Allowed);
    deliver_all(s, A, NOW).await;
    // Asking again about the same exits counts nothing more.
    let v = s.guard_removals(D, A, &exits, policy(0.25), NOW).await;
    assert_eq!(v.expect("guard"), GuardVerdict::Allowed);
    // 20 more within the window: 60 of 200.
    changes(s, A, 40..60, false, 3).await;
    let exits = due_exits(s, A, NOW + 10_000).await;
    let v = s
        .guard_removals(D, A, &exits, policy(0.25), NOW + 10_000)
        .await
        .expect("guard");
    let GuardVerdict::Held { hold, .. } = v else {
        panic!("60 of 200 within the window must be held: {v:?}");
    };
    assert_eq!(
        hold.tripped,
        RemovalFigures {
            members: 160,
            pending_removals: 20,
            removed_in_window: 40
        }
    );
    s.resolve_hold(D, A, HoldAction::Release, "tester", NOW + 11_000)
        .await
        .expect("release");
    deliver_all(s, A, NOW + 11_000).await;

    // Another audience: 40 sent, then 40 more once the window has passed.
    let b = "late";
    members(s, b, 200).await;
    changes(s, b, 0..40, false, 2).await;
    let exits = due_exits(s, b, NOW).await;
    let v = s.guard_removals(D, b, &exits, policy(0.25), NOW).await;
    assert_eq!(v.expect("guard"), GuardVerdict::Allowed);
    deliver_all(s, b, NOW).await;
    changes(s, b, 40..80, false, 3).await;
    let later = NOW + 60_000 + 2_000;
    let exits = due_exits(s, b, later).await;
    let v = s.guard_removals(D, b, &exits, policy(0.25), later).await;
    assert_eq!(
        v.expect("guard"),
        GuardVerdict::Allowed,
        "the window has passed"
    );
}

pub async fn small_audiences_and_ratio_one_are_never_held(h: &dyn Harness) {
    let s = h.open("small");
    let s = &s;
    members(s, "three", 3).await;
    changes(s, "three", 0..3, false, 2).await;
    let exits = due_exits(s, "three", NOW).await;
    let v = s
        .guard_removals(D, "three", &exits, policy(0.25), NOW)
        .await;
    assert_eq!(v.expect("guard"), GuardVerdict::Allowed);
    members(s, A, 200).await;
    changes(s, A, 0..200, false, 2).await;
    let exits = due_exits(s, A, NOW).await;
    let v = s.guard_removals(D, A, &exits, policy(1.0), NOW).await;
    assert_eq!(v.expect("guard"), GuardVerdict::Allowed);
    // Exits of users who are not members (never delivered) are not removals.
    changes(s, "strangers", 0..300, false, 2).await;
    let exits = due_exits(s, "strangers", NOW).await;
    assert_eq!(exits.len(), 300);
    let v = s
        .guard_removals(D, "strangers", &exits, policy(0.25), NOW)
        .await;
    assert_eq!(v.expect("guard"), GuardVerdict::Allowed);
    assert!(s.removal_holds(D).await.expect("holds").is_empty());
}

pub async fn a_discard_keeps_the_members_and_says_why(h: &dyn Harness) {
    let s = h.open("discard");
    let s = &s;
    members(s, A, 200).await;
    let ids = changes(s, A, 0..200, false, 2).await;
    let exits = due_exits(s, A, NOW).await;
    let v = s
        .guard_removals(D, A, &exits, policy(0.25), NOW)
        .await
        .expect("guard");
    assert!(matches!(v, GuardVerdict::Held { .. }), "{v:?}");
    let n = s
        .resolve_hold(D, A, HoldAction::Discard, "operator ann", NOW + 1)
        .await
        .expect("discard");
    assert_eq!(n, Some(200));
    assert_eq!(
        s.last_hold_decision(D, A).await.expect("decision"),
        Some((
            "discarded 200 removal(s): operator ann".to_string(),
            NOW + 1
        ))
    );
    // Nothing pending, nothing held, every user still a member.
    assert!(
        s.pending(D, A, i64::MAX - 1, 1000)
            .await
            .expect("pending")
            .is_empty()
    );
    assert!(s.removal_holds(D).await.expect("holds").is_empty());
    let c = counts_of(s, A).await;
    assert_eq!((c.members, c.pending), (200, 0));
    // Each exit's event says the operator discarded it.
    let st = status(s, &ids[7]).await;
    assert_eq!(st.len(), 1);
    assert_eq!(st[0].0, StatusKind::Superseded);
    let reason = st[0].1.clone().unwrap_or_default();
    assert!(
        reason.contains("discarded by the operator (operator ann)"),
        "{reason}"
    );
    let ev = s.event_counts(D).await.expect("event_counts");
    assert_eq!((ev.superseded, ev.accepted), (200, 0));
    assert_counts_exact(s).await;
    // Later, one member leaving is an ordinary removal (1 of 200).
    changes(s, A, 5..6, false, 9).await;
    let exits = due_exits(s, A, NOW + 2).await;
    assert_eq!(exits.len(), 1);
    let v = s.guard_removals(D, A, &exits, policy(0.25), NOW + 2).await;
    assert_eq!(v.expect("guard"), GuardVerdict::Allowed);
    deliver_all(s, A, NOW + 2).await;
    assert_eq!(counts_of(s, A).await.members, 199);
    // A late event older than the discarded exit is stale: the operator's decision stands.
    changes(s, A, 9..10, false, 1).await;
    assert!(due_exits(s, A, NOW + 3).await.is_empty());
    assert_counts_exact(s).await;
}

pub async fn a_copy_makes_held_removals_due_for_the_guard_to_decide_again(h: &dyn Harness) {
    let source = h.open("held-source");
    let target = h.open("held-target");
    members(&source, A, 200).await;
    changes(&source, A, 0..200, false, 2).await;
    let exits = due_exits(&source, A, NOW).await;
    let v = source
        .guard_removals(D, A, &exits, policy(0.25), NOW)
        .await
        .expect("guard");
    assert!(matches!(v, GuardVerdict::Held { .. }), "{v:?}");
    let options = sync::copy::CopyOptions {
        batch_rows: 1000,
        allow_non_empty: false,
    };
    sync::copy::copy_store(&source, &target, options, &mut |_| {})
        .await
        .expect("copy");
    // Holds are not copied; nothing stays parked without one: the removals are due, and the
    // guard holds them again.
    assert!(target.removal_holds(D).await.expect("holds").is_empty());
    let exits = due_exits(&target, A, NOW).await;
    assert_eq!(exits.len(), 200);
    let v = target
        .guard_removals(D, A, &exits, policy(0.25), NOW)
        .await
        .expect("guard");
    assert!(
        matches!(
            v,
            GuardVerdict::Held {
                tripped_now: true,
                ..
            }
        ),
        "{v:?}"
    );
}
