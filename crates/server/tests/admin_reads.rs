//! The admin reads ([`server::admin::read`]) against a running service and the emulator, as
//! the console calls them: events go in through the ingestion API, then each view shows what
//! the store and the emulator hold.

mod support;

use server::admin::AdminError;
use server::admin::params::{EventParams, PageParams, RejectedParams, UserParams};
use server::admin::read;
use server::admin::views::StateWord;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_view_shows_what_was_ingested_and_delivered() {
    let h = Harness::start("").await;
    let events: Vec<_> = (0..3)
        .map(|i| {
            identify(
                &format!("m{i}"),
                &format!("u{i}"),
                Some(&format!("user{i}@example.com")),
                "vip_users",
                true,
            )
        })
        .collect();
    let (s, _) = h
        .post("/v1/batch", &serde_json::json!({"batch": events}))
        .await;
    assert_eq!(s, 200);
    h.wait_list(
        "vip_users",
        &[
            "user0@example.com",
            "user1@example.com",
            "user2@example.com",
        ],
    )
    .await;
    h.wait_final("m2").await;
    let state = h.svc().state().clone();
    // The figures snapshot is at most a second old: wait until it shows the deliveries.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let o = loop {
        let o = read::overview(&state).await.expect("overview");
        if o.destinations[0].members == 3 || std::time::Instant::now() > deadline {
            break o;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let d = &o.destinations[0];
    assert_eq!(d.name, "prod");
    assert_eq!(d.state.state, StateWord::Running);
    assert_eq!((d.members, d.audiences, d.queue.pending), (3, 1, 0));
    assert!(d.operator_pause.is_none());

    let v = read::destination(&state, "prod", &PageParams::default())
        .await
        .expect("destination");
    assert_eq!(v.audiences.total, 1);
    assert_eq!(v.audiences.rows[0].audience_key, "vip_users");
    assert_eq!(v.audiences.rows[0].members, 3);
    assert!(v.audiences.rows[0].list_id.is_some());
    assert!(v.settings.api_key_set);
    let json = serde_json::to_string(&v).expect("json");
    assert!(!json.contains(KEY), "the API key is never shown");
    assert!(!json.contains(WRITE_KEY), "nor a write key");

    let a = read::audience(&state, "prod", "vip_users")
        .await
        .expect("audience");
    assert_eq!(a.audience.members, 3);

    // A sample of the minute (what the sampler task records every minute): the counters'
    // growth per destination, the figures per audience.
    server::admin::history::sample(&state).await;
    let o = read::overview(&state).await.expect("overview");
    let d = &o.destinations[0];
    assert_eq!(
        (
            d.ingested_per_minute.len(),
            d.ingested_per_minute[0].value,
            d.delivered_per_minute[0].value
        ),
        (1, 3, 3)
    );
    server::admin::history::sample(&state).await;
    let o = read::overview(&state).await.expect("overview");
    assert_eq!(
        o.destinations[0].ingested_per_minute[1].value, 0,
        "nothing new"
    );
    let a = read::audience(&state, "prod", "vip_users")
        .await
        .expect("audience");
    assert_eq!(a.series.len(), 2);
    assert_eq!((a.series[1].members, a.series[1].pending), (3, 0));

    let u = read::user(
        &state,
        &UserParams {
            email: Some("USER1@example.com".into()),
            ..UserParams::default()
        },
    )
    .await
    .expect("user");
    assert_eq!(u.audiences.len(), 1);
    let ua = &u.audiences[0];
    assert_eq!((ua.state.as_str(), ua.member), ("delivered", true));
    assert_eq!(ua.desired_by.message_id.as_deref(), Some("m1"));
    assert_eq!(
        ua.acknowledged_by
            .as_ref()
            .and_then(|e| e.message_id.as_deref()),
        Some("m1")
    );

    let e = read::event(&state, "m0", &EventParams::default())
        .await
        .expect("event");
    assert_eq!(e.events[0].audiences[0].status, "delivered");

    let r = read::rejected(&state, "prod", "vip_users", &RejectedParams::default())
        .await
        .expect("rejected");
    assert!(r.rows.is_empty() && r.next_after.is_none());

    // Errors name what is wrong.
    assert_eq!(
        read::destination(&state, "nope", &PageParams::default())
            .await
            .expect_err("unknown"),
        AdminError::UnknownDestination("nope".into())
    );
    let e = read::audience(&state, "prod", "nope")
        .await
        .expect_err("unknown audience");
    assert_eq!(e.status(), 404);
    let e = read::event(&state, "nope", &EventParams::default())
        .await
        .expect_err("unknown event");
    assert_eq!(e.status(), 404);
    let e = read::destination(
        &state,
        "prod",
        &PageParams {
            after: None,
            limit: Some(501),
        },
    )
    .await
    .expect_err("limit");
    assert_eq!(e.body().field.as_deref(), Some("limit"));
    let e = read::user(&state, &UserParams::default())
        .await
        .expect_err("no query");
    assert_eq!(e.status(), 400);
}
