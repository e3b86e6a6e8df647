//! A list deleted in Iterable, as the reconciler meets it: by default it is created again once,
//! registered in place of the old one, and the audience's members are sent to it; when another
//! instance replaced it first, its list is taken up and nothing is created; the rows that met
//! the deleted list are tried again soon, not in an hour.

mod support;

use std::collections::BTreeSet;

use iterable_emulator::Faults;
use support::*;
use sync::StatusKind;

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The emulator's lists named `name`.
fn named(w: &World, name: &str) -> Vec<i64> {
    w.emu
        .state(false)
        .iter()
        .flat_map(|p| p.lists.iter())
        .filter(|l| l.name == name)
        .map(|l| l.id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_list_is_created_again_once_and_refilled() {
    let w = World::new(Faults::default()).await;
    let c = client(&w.emu.url(), KEY);
    let old = c.create_list("vip").await.expect("list");
    w.store.put_list_id(D, "vip", old).expect("registry");
    w.accept(vec![
        ev(
            "a",
            change("vip", Some("a@example.com"), None, true, Some(1)),
        ),
        ev(
            "b",
            change("vip", Some("b@example.com"), None, true, Some(1)),
        ),
        ev(
            "x",
            change("vip", Some("x@example.com"), None, false, Some(1)),
        ),
    ]);
    let r = w.hybrid();
    r.run_once().await.expect("a pass");
    assert_eq!(w.members(old), set(&["a@example.com", "b@example.com"]));

    c.delete_list(old).await.expect("deleted in Iterable");
    w.accept(vec![ev(
        "c",
        change("vip", Some("c@example.com"), None, true, Some(2)),
    )]);
    r.run_once().await.expect("a pass");
    let new = w.list_id("vip");
    assert_ne!(new, old, "a new list is registered");
    assert_eq!(named(&w, "vip"), vec![new], "one list per audience");
    assert_eq!(r.metrics().lists_recreated_count(), 1);
    // Every member is due again at once (c's retry too): the next pass refills the new list.
    r.run_once().await.expect("a pass");
    assert_eq!(
        w.members(new),
        set(&["a@example.com", "b@example.com", "c@example.com"])
    );
    assert_eq!(w.kind("c"), StatusKind::Delivered);
    assert_eq!(w.unsettled(), 0);
    let counts = w.store.list_counts(D).expect("counts");
    assert_eq!((counts[0].members, counts[0].pending), (3, 0));
    // Nothing more happens afterwards.
    assert_eq!(r.run_once().await.expect("a pass").requests, 0);
    assert_eq!(r.metrics().lists_recreated_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_replaced_by_another_instance_is_taken_up() {
    let w = World::new(Faults::default()).await;
    let c = client(&w.emu.url(), KEY);
    let old = c.create_list("vip").await.expect("list");
    w.store.put_list_id(D, "vip", old).expect("registry");
    w.accept(vec![ev(
        "a",
        change("vip", Some("a@example.com"), None, true, Some(1)),
    )]);
    let r = w.hybrid();
    r.run_once().await.expect("a pass");

    // Another instance saw the deletion first and replaced the list (its members pending).
    c.delete_list(old).await.expect("deleted");
    let theirs = c.create_list("vip").await.expect("their list");
    assert_eq!(
        w.store
            .replace_list(D, "vip", old, theirs, w.clock.now())
            .expect("replace"),
        Some(1)
    );
    // This one still has the old list in mind: it meets the deleted list, takes theirs up,
    // creates nothing, and its rows are tried again soon.
    w.accept(vec![ev(
        "b",
        change("vip", Some("b@example.com"), None, true, Some(2)),
    )]);
    let before = w.clock.now();
    r.run_once().await.expect("a pass");
    assert_eq!(named(&w, "vip"), vec![theirs]);
    assert_eq!(r.metrics().lists_recreated_count(), 0);
    let due = w
        .store
        .pending(D, "vip", before + 60_000, 10)
        .expect("pending");
    let b = due
        .iter()
        .find(|p| p.identity.email.as_deref() == Some("b@example.com"))
        .unwrap_or_else(|| panic!("b is due within a minute, not in an hour: {due:?}"));
    assert!(
        b.last_error
            .as_deref()
            .is_some_and(|e| e.contains("was deleted in Iterable and is replaced")),
        "{b:?}"
    );
    w.clock.advance(std::time::Duration::from_secs(1));
    r.run_once().await.expect("a pass");
    assert_eq!(w.members(theirs), set(&["a@example.com", "b@example.com"]));
    assert_eq!(w.unsettled(), 0);
}
