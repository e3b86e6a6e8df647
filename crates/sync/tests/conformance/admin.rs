//! Conformance cases of what the admin API reads and changes: rejected keys by pages and by a
//! filter, rejected keys sent again (one or all, the figures equal to a recount after), a
//! user's keys in every audience with the events that set them, and the operator's pause.

use sync::{OperatorPause, UserKey, UserQuery};

use super::*;

/// `emails` join audience `aud`, each in an event of its own (`{aud}-{email}`), and Iterable
/// rejects the ones in `rejected` (reason `invalidEmails`) and takes the others.
async fn joined(s: &Store, aud: &str, emails: &[&str], rejected: &[&str]) {
    let mut outcomes = Vec::new();
    for (i, e) in emails.iter().enumerate() {
        let r = accept1(
            s,
            event(
                &format!("{aud}-{e}"),
                vec![change(aud, e, true, Some(i as i64 + 1))],
            ),
        )
        .await;
        let o = if rejected.contains(e) {
            Outcome::Rejected {
                reason: "invalidEmails".into(),
            }
        } else {
            Outcome::Delivered
        };
        outcomes.push(outcome(id(e), r.seq(), o));
    }
    s.record_outcomes(D, aud, NOW, outcomes)
        .await
        .expect("record");
}

fn emails_of(keys: &[sync::RejectedKey]) -> Vec<String> {
    keys.iter()
        .filter_map(|k| k.identity.email.clone())
        .collect()
}

async fn assert_counts_match(s: &Store) {
    let (lists, events) = s.recount(D).await.expect("recount");
    assert_eq!(s.list_counts(D).await.expect("list_counts"), lists);
    assert_eq!(s.event_counts(D).await.expect("event_counts"), events);
}

pub async fn rejected_keys_are_paged_and_filtered(h: &dyn Harness) {
    let s = h.open("admin-rejected");
    let emails = ["a@x.co", "Bob@y.co", "c@x.co", "d@x.co", "e@y.co"];
    joined(
        &s,
        "vip",
        &emails,
        &["a@x.co", "Bob@y.co", "c@x.co", "e@y.co"],
    )
    .await;
    joined(&s, "other", &["a@x.co"], &["a@x.co"]).await;

    // Pages of two, in key order, only the audience's rejected keys.
    let first = s
        .rejected_keys(D, "vip", None, None, 2)
        .await
        .expect("page 1");
    // Emails are stored lowercased.
    assert_eq!(emails_of(&first), ["a@x.co", "bob@y.co"], "key order");
    assert_eq!(first[0].reason.as_deref(), Some("invalidEmails"));
    assert!(first[0].member);
    assert_eq!(first[0].rejected_ms, Some(NOW), "when it was rejected");
    let after = first[1].identity.clone();
    let second = s
        .rejected_keys(D, "vip", Some(&after), None, 2)
        .await
        .expect("page 2");
    assert_eq!(emails_of(&second), ["c@x.co", "e@y.co"]);
    let last = second[1].identity.clone();
    let none = s
        .rejected_keys(D, "vip", Some(&last), None, 2)
        .await
        .expect("page 3");
    assert!(none.is_empty(), "{none:?}");

    // A filter: a substring of the email or userId, ASCII letters without case.
    let y = s
        .rejected_keys(D, "vip", None, Some("Y.CO"), 10)
        .await
        .expect("filtered");
    assert_eq!(emails_of(&y), ["bob@y.co", "e@y.co"]);
    let bob = s
        .rejected_keys(D, "vip", None, Some("BOB"), 10)
        .await
        .expect("filtered");
    assert_eq!(emails_of(&bob), ["bob@y.co"]);
    assert!(
        s.rejected_keys(D, "nobody", None, None, 10)
            .await
            .expect("unknown audience")
            .is_empty()
    );
}

pub async fn rejected_keys_are_sent_again_one_or_all(h: &dyn Harness) {
    let s = h.open("admin-retry");
    joined(
        &s,
        "vip",
        &["a@x.co", "b@x.co", "c@x.co", "d@x.co"],
        &["a@x.co", "b@x.co", "c@x.co"],
    )
    .await;
    // One key, and a key that is not rejected (delivered): only the first moves.
    let n = s
        .retry_rejected(D, "vip", Some(&[id("b@x.co"), id("d@x.co")]), NOW + 5)
        .await
        .expect("retry one");
    assert_eq!(n, 1);
    let pending = s.pending(D, "vip", NOW + 5, 10).await.expect("pending");
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].identity, id("b@x.co"));
    assert_eq!(pending[0].attempts, 0);
    assert_eq!(
        status(&s, "vip-b@x.co").await,
        [(
            StatusKind::Pending,
            Some(sync::store::RETRIED_REASON.into())
        )],
        "the event shows it is pending again"
    );
    assert_counts_match(&s).await;
    let counts = s.list_counts(D).await.expect("counts");
    assert_eq!((counts[0].pending, counts[0].rejected), (1, 2));

    // Every rejected key of the audience; then nothing is left to retry.
    let n = s
        .retry_rejected(D, "vip", None, NOW + 6)
        .await
        .expect("retry all");
    assert_eq!(n, 2);
    assert_counts_match(&s).await;
    assert_eq!(
        s.pending(D, "vip", NOW + 6, 10)
            .await
            .expect("pending")
            .len(),
        3
    );
    assert!(
        s.rejected_keys(D, "vip", None, None, 10)
            .await
            .expect("rejected")
            .is_empty()
    );
    assert_eq!(
        s.retry_rejected(D, "vip", None, NOW + 7)
            .await
            .expect("again"),
        0
    );

    // Delivered this time: the key is a member, the event delivered.
    let r = s.pending(D, "vip", NOW + 8, 10).await.expect("pending");
    let outcomes = r
        .iter()
        .map(|p| outcome(p.identity.clone(), p.version.seq, Outcome::Delivered))
        .collect();
    s.record_outcomes(D, "vip", NOW + 8, outcomes)
        .await
        .expect("record");
    assert_eq!(kinds(&s, "vip-a@x.co").await, [StatusKind::Delivered]);
    assert_counts_match(&s).await;
    let counts = s.list_counts(D).await.expect("counts");
    assert_eq!(
        (counts[0].members, counts[0].pending, counts[0].rejected),
        (4, 0, 0)
    );
}

pub async fn a_user_is_found_in_every_audience_with_the_events_that_set_it(h: &dyn Harness) {
    let s = h.open("admin-user");
    joined(&s, "vip", &["jane@x.co", "joe@x.co"], &[]).await;
    joined(&s, "beta", &["jane@x.co"], &["jane@x.co"]).await;
    // jane leaves vip, not delivered yet.
    accept1(
        &s,
        event("leave", vec![change("vip", "jane@x.co", false, Some(50))]),
    )
    .await;

    let found = s
        .user_states(&UserQuery::Email("jane@x.co".into()), None, 100)
        .await
        .expect("user");
    assert_eq!(found.len(), 2, "{found:?}");
    let (beta, vip) = (&found[0], &found[1]);
    assert_eq!(
        (beta.audience_key.as_str(), vip.audience_key.as_str()),
        ("beta", "vip")
    );
    assert_eq!(beta.state, "rejected");
    assert_eq!(beta.reason.as_deref(), Some("invalidEmails"));
    assert_eq!(beta.desired.message_id.as_deref(), Some("beta-jane@x.co"));
    assert!(beta.acknowledged.is_none() && beta.ack_member.is_none());

    assert_eq!(vip.state, "pending");
    assert!(!vip.member);
    assert_eq!(vip.desired.message_id.as_deref(), Some("leave"));
    assert_eq!(vip.desired.time_ms, Some(50));
    assert_eq!(vip.desired.received_ms, Some(NOW));
    assert!(vip.next_attempt_ms.is_some());
    assert_eq!(vip.ack_member, Some(true));
    let ack = vip.acknowledged.as_ref().expect("acknowledged");
    assert_eq!(ack.message_id.as_deref(), Some("vip-jane@x.co"));
    assert_eq!(ack.time_ms, Some(1));
    assert_eq!(vip.ack_ms, Some(NOW));

    // Exact matches only; an unknown user and an empty query find nothing.
    for q in [
        UserQuery::Email("jane@x".into()),
        UserQuery::Email(String::new()),
        UserQuery::UserId("jane@x.co".into()),
    ] {
        assert!(
            s.user_states(&q, None, 100)
                .await
                .expect("lookup")
                .is_empty(),
            "{q:?}"
        );
    }
    // Pages of one, by destination, audience and key.
    let q = UserQuery::Email("jane@x.co".into());
    let first = s.user_states(&q, None, 1).await.expect("page 1");
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].audience_key, "beta");
    let after = UserKey {
        destination: first[0].destination.clone(),
        audience_key: first[0].audience_key.clone(),
        identity: first[0].identity.clone(),
    };
    let second = s.user_states(&q, Some(&after), 1).await.expect("page 2");
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].audience_key, "vip");
    let after = UserKey {
        audience_key: "vip".into(),
        ..after
    };
    assert!(
        s.user_states(&q, Some(&after), 1)
            .await
            .expect("page 3")
            .is_empty()
    );
}

/// A user's keys by email across destinations and audiences, some audiences without the
/// user, one with the email under several userIds: every page size gives the same keys, in
/// key order, as the whole list; a page may end inside an audience.
pub async fn every_page_size_finds_a_users_keys_in_key_order(h: &dyn Harness) {
    let s = h.open("admin-user-pages");
    let keyed = |aud: &str, email: &str, user_id: Option<&str>| {
        let mut c = change(aud, email, true, Some(1));
        c.identity = Identity::new(Some(email), user_id);
        c
    };
    let mut expected = Vec::new();
    let mut n = 0;
    for (destination, audience, user_ids) in [
        ("a-first", "zeta", vec![None]),
        (D, "a0", vec![None, Some("u1"), Some("u2")]),
        (D, "a1", vec![]),
        (D, "a2", vec![Some("u9")]),
        (D, "a3", vec![]),
        ("z-last", "a0", vec![None]),
    ] {
        // Another user in every audience, before and after this one in key order.
        for other in ["aa@x.co", "zz@x.co"] {
            n += 1;
            let mut e = event(&format!("other-{n}"), vec![keyed(audience, other, None)]);
            e.destination = destination.into();
            accept1(&s, e).await;
        }
        for user_id in user_ids {
            n += 1;
            let mut e = event(
                &format!("jane-{n}"),
                vec![keyed(audience, "jane@x.co", user_id)],
            );
            e.destination = destination.into();
            accept1(&s, e).await;
            expected.push((
                destination.to_string(),
                audience.to_string(),
                user_id.map(str::to_string),
            ));
        }
    }
    let q = UserQuery::Email("jane@x.co".into());
    let key = |u: &sync::UserState| {
        (
            u.destination.clone(),
            u.audience_key.clone(),
            u.identity.user_id.clone(),
        )
    };
    let all: Vec<_> = s
        .user_states(&q, None, 100)
        .await
        .expect("all")
        .iter()
        .map(key)
        .collect();
    assert_eq!(all, expected);
    for size in 1..=expected.len() {
        let mut got = Vec::new();
        let mut after: Option<UserKey> = None;
        loop {
            let page = s.user_states(&q, after.as_ref(), size).await.expect("page");
            assert!(page.len() <= size);
            let Some(last) = page.last() else { break };
            after = Some(UserKey {
                destination: last.destination.clone(),
                audience_key: last.audience_key.clone(),
                identity: last.identity.clone(),
            });
            got.extend(page.iter().map(key));
        }
        assert_eq!(got, expected, "pages of {size}");
    }
}

pub async fn the_operator_pause_is_kept_until_resumed(h: &dyn Harness) {
    let s = h.open("admin-pause");
    assert_eq!(s.operator_pause(D).await.expect("none"), None);
    let p = OperatorPause {
        actor: "1a2b3c4d".into(),
        reason: "list cleanup".into(),
        since_ms: NOW,
    };
    assert!(s.set_operator_pause(D, Some(&p)).await.expect("pause"));
    let later = OperatorPause {
        since_ms: NOW + 1,
        ..p.clone()
    };
    assert!(
        !s.set_operator_pause(D, Some(&later)).await.expect("again"),
        "a second pause keeps the first"
    );
    assert_eq!(s.operator_pause(D).await.expect("read"), Some(p));
    assert_eq!(s.operator_pause("other").await.expect("other"), None);
    assert!(s.set_operator_pause(D, None).await.expect("resume"));
    assert!(!s.set_operator_pause(D, None).await.expect("resume again"));
    assert_eq!(s.operator_pause(D).await.expect("gone"), None);
}
