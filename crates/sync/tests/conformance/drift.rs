//! Conformance cases of drift repair: an audience's keys are read in key order with what
//! Iterable acknowledged, drifted keys are made pending again (and only those that are not
//! pending already), and a list deleted in Iterable is replaced once, with the audience's
//! members pending again. The figures equal a full recount after each.

use sync::AudienceKey;

use super::*;

/// `members` join audience `aud` (at times 1, 2, ...) and are delivered; `leavers` leave it
/// and are delivered; `waiting` join and stay pending.
async fn fill(s: &Store, aud: &str, members: &[&str], leavers: &[&str], waiting: &[&str]) {
    let mut n = 0;
    let mut next = |email: &str, member: bool| {
        n += 1;
        event(
            &format!("{aud}-{n}"),
            vec![change(aud, email, member, Some(n))],
        )
    };
    let mut delivered = Vec::new();
    for (emails, member) in [(members, true), (leavers, false)] {
        for e in emails {
            let r = accept1(s, next(e, member)).await;
            // With the part, as the reconciler gives it (SQLite then keeps the delivery
            // with the desired row alone).
            delivered.push(outcome_row(id(e), r.seq(), Some(0), Outcome::Delivered));
        }
    }
    for e in waiting {
        accept1(s, next(e, true)).await;
    }
    s.record_outcomes(D, aud, NOW, delivered)
        .await
        .expect("record");
}

async fn pending_emails(s: &Store, aud: &str, now_ms: i64) -> Vec<String> {
    let mut v: Vec<String> = s
        .pending(D, aud, now_ms, 100)
        .await
        .expect("pending")
        .into_iter()
        .filter_map(|r| r.identity.email)
        .collect();
    v.sort();
    v
}

async fn assert_counts_match(s: &Store) {
    let (lists, events) = s.recount(D).await.expect("recount");
    let kept = s.list_counts(D).await.expect("list_counts");
    assert_eq!(kept, lists, "maintained figures equal a recount");
    let kept = s.event_counts(D).await.expect("event_counts");
    assert_eq!(kept, events, "maintained event figures equal a recount");
}

/// A list replaced forgets the acknowledgement of the keys it does not send again (the
/// leavers): their deliveries still show at their time, also after a late delivery of an
/// older version is acknowledged.
pub async fn a_forgotten_acknowledgement_keeps_the_delivery_time(h: &dyn Harness) {
    let s = h.open("drift-forgotten");
    assert_eq!(s.put_list_id(D, "vip", 7).await.expect("put"), 7);
    // Received before they are delivered, so that the times differ.
    let early = |id: &str, time: i64| NewEvent {
        received_ms: NOW - 100,
        ..event(id, vec![change("vip", "b@x.co", false, Some(time))])
    };
    let first = accept1(&s, early("b-1", 1)).await;
    let second = accept1(&s, early("b-2", 2)).await;
    let row = outcome_row(id("b@x.co"), second.seq(), Some(0), Outcome::Delivered);
    s.record_outcomes(D, "vip", NOW, vec![row])
        .await
        .expect("record");
    assert_eq!(
        shown(&s, "b-2").await,
        (StatusKind::Delivered, None, None, NOW)
    );
    assert_eq!(
        s.replace_list(D, "vip", 7, 9, NOW + 1)
            .await
            .expect("replace"),
        Some(0),
        "a leaver is not sent again"
    );
    assert_eq!(
        shown(&s, "b-2").await,
        (StatusKind::Delivered, None, None, NOW)
    );
    // A late answer for the first version: acknowledged (nothing is), its event delivered.
    let late = outcome_row(id("b@x.co"), first.seq(), Some(0), Outcome::Delivered);
    s.record_outcomes(D, "vip", NOW + 5, vec![late])
        .await
        .expect("record");
    assert_eq!(
        shown(&s, "b-1").await,
        (StatusKind::Delivered, None, None, NOW + 5)
    );
    assert_eq!(
        shown(&s, "b-2").await,
        (StatusKind::Delivered, None, None, NOW)
    );
    assert_counts_match(&s).await;
}

pub async fn audience_keys_are_read_in_key_order_by_pages(h: &dyn Harness) {
    let s = h.open("drift-keys");
    fill(&s, "vip", &["c@x.co", "a@x.co"], &["b@x.co"], &["d@x.co"]).await;
    fill(&s, "other", &["a@x.co"], &[], &[]).await;
    let mut all: Vec<AudienceKey> = Vec::new();
    let mut after: Option<Identity> = None;
    loop {
        let page = s
            .audience_keys(D, "vip", after.as_ref(), 2)
            .await
            .expect("audience_keys");
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        after = Some(last.identity.clone());
        all.extend(page);
    }
    let seen: Vec<(&str, bool, Option<bool>, bool)> = all
        .iter()
        .map(|k| {
            (
                k.identity.email.as_deref().unwrap_or(""),
                k.member,
                k.ack_member,
                k.pending,
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("a@x.co", true, Some(true), false),
            ("b@x.co", false, Some(false), false),
            ("c@x.co", true, Some(true), false),
            ("d@x.co", true, None, true),
        ]
    );
    assert!(
        s.audience_keys(D, "none", None, 10)
            .await
            .expect("audience_keys")
            .is_empty()
    );
}

pub async fn reopened_keys_are_pending_again_and_forget_the_acknowledgement(h: &dyn Harness) {
    let s = h.open("drift-reopen");
    fill(&s, "vip", &["a@x.co", "c@x.co"], &["b@x.co"], &["d@x.co"]).await;
    assert_eq!(pending_emails(&s, "vip", NOW).await, vec!["d@x.co"]);
    let keys = [id("a@x.co"), id("b@x.co"), id("d@x.co"), id("zz@x.co")];
    let n = s
        .reopen_keys(D, "vip", &keys, "drift: missing in Iterable", NOW + 5)
        .await
        .expect("reopen");
    assert_eq!(n, 2, "a and b; d is pending already, zz is unknown");
    assert!(
        pending_emails(&s, "vip", NOW).await == vec!["d@x.co"],
        "reopened keys are due at the given time, not before"
    );
    assert_eq!(
        pending_emails(&s, "vip", NOW + 5).await,
        vec!["a@x.co", "b@x.co", "d@x.co"]
    );
    let rows = s.pending(D, "vip", NOW + 5, 10).await.expect("pending");
    let a = rows
        .iter()
        .find(|r| r.identity == id("a@x.co"))
        .expect("a pending");
    assert!(a.member, "the desired version is sent again");
    assert_eq!(a.last_error.as_deref(), Some("drift: missing in Iterable"));
    let keys = s.audience_keys(D, "vip", None, 10).await.expect("keys");
    let ack = |e: &str| {
        keys.iter()
            .find(|k| k.identity == id(e))
            .map(|k| k.ack_member)
    };
    assert_eq!(ack("a@x.co"), Some(None), "acknowledgement forgotten");
    assert_eq!(ack("c@x.co"), Some(Some(true)), "others untouched");
    let counts = s.list_counts(D).await.expect("counts");
    assert_eq!((counts[0].members, counts[0].pending), (1, 3));
    assert_counts_match(&s).await;
    // Delivered again: acknowledged again.
    let again: Vec<OutcomeRow> = rows
        .iter()
        .map(|r| outcome(r.identity.clone(), r.version.seq, Outcome::Delivered))
        .collect();
    s.record_outcomes(D, "vip", NOW + 6, again)
        .await
        .expect("record");
    assert!(pending_emails(&s, "vip", NOW + 10).await.is_empty());
    let counts = s.list_counts(D).await.expect("counts");
    assert_eq!((counts[0].members, counts[0].pending), (3, 0));
    assert_counts_match(&s).await;
    assert_eq!(
        s.reopen_keys(D, "vip", &[], "x", NOW)
            .await
            .expect("reopen"),
        0
    );
}

pub async fn a_replaced_list_gets_the_whole_membership_once(h: &dyn Harness) {
    let s = h.open("drift-replace");
    assert_eq!(s.put_list_id(D, "vip", 7).await.expect("put"), 7);
    fill(&s, "vip", &["a@x.co", "c@x.co"], &["b@x.co"], &["d@x.co"]).await;
    // The waiting key failed on the deleted list: retried in an hour.
    let d_row = s.pending(D, "vip", NOW, 10).await.expect("pending");
    let retry = Outcome::Retry {
        next_attempt_ms: NOW + 3_600_000,
        reason: "invalidListId".into(),
    };
    s.record_outcomes(
        D,
        "vip",
        NOW,
        vec![outcome(
            d_row[0].identity.clone(),
            d_row[0].version.seq,
            retry,
        )],
    )
    .await
    .expect("record");
    assert!(pending_emails(&s, "vip", NOW + 1).await.is_empty());

    assert_eq!(
        s.replace_list(D, "vip", 8, 9, NOW + 1)
            .await
            .expect("replace"),
        None,
        "the registry holds 7, not 8: nothing changes"
    );
    assert_eq!(s.list_id(D, "vip").await.expect("list_id"), Some(7));
    assert_eq!(
        s.replace_list(D, "vip", 7, 9, NOW + 1)
            .await
            .expect("replace"),
        Some(2)
    );
    assert_eq!(s.list_id(D, "vip").await.expect("list_id"), Some(9));
    assert_eq!(
        pending_emails(&s, "vip", NOW + 1).await,
        vec!["a@x.co", "c@x.co", "d@x.co"],
        "members and the waiting key are due now; the leaver is not sent"
    );
    let counts = s.list_counts(D).await.expect("counts");
    assert_eq!(
        (counts[0].list_id, counts[0].members, counts[0].pending),
        (Some(9), 0, 3)
    );
    assert_counts_match(&s).await;
    // A second instance that saw list 7 fail too changes nothing.
    assert_eq!(
        s.replace_list(D, "vip", 7, 10, NOW + 2)
            .await
            .expect("replace"),
        None
    );
    assert_eq!(s.list_id(D, "vip").await.expect("list_id"), Some(9));
}

pub async fn the_last_verify_of_each_audience_is_kept_and_replaced(h: &dyn Harness) {
    let s = h.open("last-verify");
    assert!(s.last_verifies(D).await.expect("none yet").is_empty());
    let first = sync::VerifyRecord {
        audience_key: "vip".into(),
        ran_ms: NOW,
        repair: true,
        error: None,
        in_iterable: 10,
        acknowledged: 11,
        missing: 2,
        extra: 1,
        reopened: 2,
        unsubscribes: 1,
    };
    let failed = sync::VerifyRecord {
        audience_key: "churn".into(),
        ran_ms: NOW + 5,
        error: Some("cannot read the list from Iterable: HTTP 401".into()),
        ..sync::VerifyRecord::default()
    };
    s.record_verify(D, &first).await.expect("record");
    s.record_verify(D, &failed).await.expect("record");
    s.record_verify("other", &first).await.expect("record");
    assert_eq!(
        s.last_verifies(D).await.expect("read"),
        [failed.clone(), first.clone()]
    );
    // The next verify of an audience replaces its record; a second instance reads it too.
    let again = sync::VerifyRecord {
        ran_ms: NOW + 60_000,
        repair: false,
        missing: 0,
        extra: 0,
        reopened: 0,
        unsubscribes: 0,
        ..first.clone()
    };
    s.record_verify(D, &again).await.expect("record");
    let other = h.open("last-verify");
    assert_eq!(
        other.last_verifies(D).await.expect("read"),
        [failed, again.clone()]
    );
    assert!(again.in_sync());
    assert_eq!(other.last_verifies("other").await.expect("read"), [first]);
}
