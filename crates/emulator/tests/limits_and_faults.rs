//! Behaviour over HTTP: rate limits (documented defaults and configured ones) and every
//! injected fault, all on a manual clock so nothing sleeps.

mod support;

use std::time::Duration;

use iterable_emulator::{Endpoint, Faults, LogQuery, RateLimit};
use serde_json::json;
use support::*;

#[tokio::test]
async fn per_minute_limits_hold_per_project_and_drain() {
    let h = start().await;
    let id = h.create_list(HYBRID_KEY, "a").await;
    let path = format!("/api/lists/{id}/size");
    for _ in 0..5 {
        assert_eq!(h.get(HYBRID_KEY, &path).await.status, 200);
    }
    let r = h.get(HYBRID_KEY, &path).await;
    assert_eq!(r.status, 429);
    assert_eq!(
        r.json(),
        json!({"msg": format!("Exceeded rate limit for endpoint: {path}, project: {HYBRID_PID} "), "code": "RateLimitExceeded", "params": {}})
    );
    assert_eq!(
        r.header("retry-after"),
        None,
        "Retry-After is off by default"
    );
    // getUsers has its own bucket; other projects have theirs.
    assert_eq!(
        h.get(HYBRID_KEY, &format!("/api/lists/getUsers?listId={id}"))
            .await
            .status,
        200
    );
    let other = h.create_list(USERID_KEY, "b").await;
    assert_eq!(
        h.get(USERID_KEY, &format!("/api/lists/{other}/size"))
            .await
            .status,
        200
    );
    // The bucket drains at 5 per minute: one request every 12 s.
    h.clock.advance(Duration::from_secs(11));
    assert_eq!(h.get(HYBRID_KEY, &path).await.status, 429);
    h.clock.advance(Duration::from_secs(1));
    assert_eq!(h.get(HYBRID_KEY, &path).await.status, 200);
}

/// Sends `n` subscribe calls spaced `gap` apart on the manual clock; returns how many got 200.
async fn paced_subscribes(h: &Harness, list: i64, n: usize, gap: Duration) -> usize {
    let mut ok = 0;
    for i in 0..n {
        let r = h
            .post(
                HYBRID_KEY,
                "/api/lists/subscribe",
                json!({"listId": list, "subscribers": [{"email": format!("u{i}@x.co")}]}),
            )
            .await;
        match r.status {
            200 => ok += 1,
            429 => {}
            s => panic!("unexpected {s}: {}", r.text),
        }
        h.clock.advance(gap);
    }
    ok
}

#[tokio::test]
async fn configured_limit_holds_at_five_times_the_rate() {
    for rate in [20u32, 200] {
        let c = config().with_limit(Endpoint::Subscribe, Some(RateLimit::per_second(rate)));
        let h = start_with(c).await;
        let id = h.create_list(HYBRID_KEY, "a").await;
        // 5x the limit for 10 simulated seconds.
        let n = rate as usize * 5 * 10;
        let gap = Duration::from_nanos(1_000_000_000 / (u64::from(rate) * 5));
        let ok = paced_subscribes(&h, id, n, gap).await;
        let limit = rate as usize * 10;
        assert!(
            ok >= limit && ok <= limit + limit / 10,
            "rate {rate}/s: accepted {ok} of {n}, limit {limit}"
        );
    }
}

#[tokio::test]
async fn retry_after_and_turning_limits_off() {
    let mut c = config().with_limit(Endpoint::Subscribe, Some(RateLimit::per_second(1)));
    c.retry_after = true;
    let h = start_with(c).await;
    let id = h.create_list(HYBRID_KEY, "a").await;
    assert_eq!(paced_subscribes(&h, id, 1, Duration::ZERO).await, 1);
    let r = h
        .post(
            HYBRID_KEY,
            "/api/lists/subscribe",
            json!({"listId": id, "subscribers": []}),
        )
        .await;
    assert_eq!((r.status, r.header("retry-after")), (429, Some("1")));

    let mut c = config();
    c.limits.insert(
        "all".into(),
        "off"
            .parse()
            .map(iterable_emulator::config::LimitValue)
            .unwrap(),
    );
    let h = start_with(c).await;
    let id = h.create_list(HYBRID_KEY, "a").await;
    for _ in 0..20 {
        assert_eq!(
            h.get(HYBRID_KEY, &format!("/api/lists/{id}/size"))
                .await
                .status,
            200
        );
    }
}

#[tokio::test]
async fn injected_status_faults_use_iterable_envelopes() {
    let h = start().await;
    let cases = [
        (
            Faults {
                error_500: 1.0,
                ..Faults::default()
            },
            500,
            "GenericError",
        ),
        (
            Faults {
                error_503: 1.0,
                ..Faults::default()
            },
            503,
            "GenericError",
        ),
        (
            Faults {
                error_429: 1.0,
                ..Faults::default()
            },
            429,
            "RateLimitExceeded",
        ),
    ];
    for (faults, status, code) in cases {
        h.emu.set_faults(faults).unwrap();
        let r = h.get(HYBRID_KEY, "/api/lists").await;
        assert_eq!(r.status, status);
        assert_eq!(r.json()["code"], code);
        assert_eq!(r.content_type(), "application/json");
        // Inspection is never faulted.
        let s = h.send(h.http.get(h.url("/_emulator/state"))).await;
        assert_eq!(s.status, 200);
    }
    let log = h.emu.requests(&LogQuery {
        path: Some("/api/lists".into()),
        ..Default::default()
    });
    let faults: Vec<_> = log.iter().map(|r| (r.status, r.fault)).collect();
    assert_eq!(
        faults,
        vec![(500, Some("500")), (503, Some("503")), (429, Some("429"))]
    );
}

#[tokio::test]
async fn faults_at_a_probability_hit_about_that_share() {
    let h = start().await;
    h.emu
        .set_faults(Faults {
            error_500: 0.25,
            ..Faults::default()
        })
        .unwrap();
    let mut failures = 0;
    for _ in 0..400 {
        if h.get(HYBRID_KEY, "/api/lists").await.status == 500 {
            failures += 1;
        }
    }
    // Seeded, so this is deterministic; the bounds only say "about a quarter".
    assert!((60..=140).contains(&failures), "{failures} of 400");
}

#[tokio::test]
async fn latency_is_added_on_the_emulator_clock() {
    let h = start().await;
    h.emu
        .set_faults(Faults {
            latency_ms: 250,
            latency_jitter_ms: 100,
            ..Faults::default()
        })
        .unwrap();
    let before = std::time::Instant::now();
    for _ in 0..5 {
        let r = h.get(HYBRID_KEY, "/api/lists").await;
        let ms: u64 = r.header("request-time").unwrap().parse().unwrap();
        assert!((250..=350).contains(&ms), "Request-Time {ms}");
    }
    assert!(
        before.elapsed() < Duration::from_secs(1),
        "the manual clock does not really sleep"
    );
}

#[tokio::test]
async fn dropped_and_reset_connections_fail_the_request() {
    let h = start().await;
    for (faults, name) in [
        (
            Faults {
                drop_connection: 1.0,
                ..Faults::default()
            },
            "drop",
        ),
        (
            Faults {
                reset_connection: 1.0,
                ..Faults::default()
            },
            "reset",
        ),
    ] {
        h.emu.set_faults(faults).unwrap();
        let http = http_builder().pool_max_idle_per_host(0).build().unwrap();
        let err = http
            .post(h.url("/api/lists"))
            .header("Api-Key", HYBRID_KEY)
            .body(r#"{"name":"x"}"#)
            .send()
            .await
            .expect_err("no answer");
        assert!(
            err.is_request() || err.is_connect() || err.is_body(),
            "{name}: {err:?}"
        );
        let last = h.emu.requests(&LogQuery::default()).pop().unwrap();
        assert_eq!((last.status, last.fault), (0, Some(name)));
    }
    // Half the connection faults strike after the request took effect: lost responses.
    h.emu
        .set_faults(Faults {
            reset_connection: 1.0,
            ..Faults::default()
        })
        .unwrap();
    let http = http_builder().pool_max_idle_per_host(0).build().unwrap();
    for i in 0..40 {
        let _ = http
            .post(h.url("/api/lists"))
            .header("Api-Key", HYBRID_KEY)
            .body(format!(r#"{{"name":"l{i}"}}"#))
            .send()
            .await;
    }
    let created = h.emu.state(false)[0].lists.len();
    assert!(
        (5..=35).contains(&created),
        "{created} of 40 took effect before the reset"
    );
    h.emu.set_faults(Faults::default()).unwrap();
    assert_eq!(
        h.get(HYBRID_KEY, "/api/lists").await.status,
        200,
        "the server stays up"
    );
}

#[tokio::test]
async fn new_lists_are_invisible_to_subscribe_for_a_while() {
    let h = start().await;
    h.emu
        .set_faults(Faults {
            new_list_invisible_ms: 2000,
            ..Faults::default()
        })
        .unwrap();
    let id = h.create_list(HYBRID_KEY, "fresh").await;
    let body = json!({"listId": id, "subscribers": [{"email": "a@x.co"}]});
    let r = h
        .post(HYBRID_KEY, "/api/lists/subscribe", body.clone())
        .await;
    assert_eq!(
        (r.status, r.json()["msg"].as_str()),
        (
            400,
            Some(format!("error.lists.invalidListId({id})").as_str())
        )
    );
    assert_eq!(
        h.get(HYBRID_KEY, "/api/lists").await.json()["lists"][0]["id"],
        id,
        "listed at once"
    );
    h.clock.advance(Duration::from_millis(1999));
    assert_eq!(
        h.post(HYBRID_KEY, "/api/lists/unsubscribe", body.clone())
            .await
            .status,
        400
    );
    h.clock.advance(Duration::from_millis(1));
    assert_eq!(
        h.post(HYBRID_KEY, "/api/lists/subscribe", body)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let h = start().await;
    h.emu
        .set_faults(Faults {
            max_body_bytes: Some(200),
            ..Faults::default()
        })
        .unwrap();
    let id = h.create_list(HYBRID_KEY, "a").await;
    let rows: Vec<_> = (0..20)
        .map(|i| json!({"email": format!("user{i}@example.com")}))
        .collect();
    let r = h
        .post(
            HYBRID_KEY,
            "/api/lists/subscribe",
            json!({"listId": id, "subscribers": rows}),
        )
        .await;
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["code"], "BatchTooLarge");
    // The rest of the body is not read: the connection ends, and the response says so.
    assert_eq!(r.header("connection"), Some("close"));
    assert!(h.members(id).is_empty());
}

/// The limiter decides when a request's head arrives, as a gateway would: a request whose
/// body is slow to arrive keeps its place ahead of one sent after it, so that requests a
/// client spaces correctly are not refused for the order their bodies finished in.
#[tokio::test]
async fn the_limit_counts_requests_in_the_order_their_heads_arrive() {
    use iterable_emulator::Clock;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut c = config().with_limit(
        Endpoint::Subscribe,
        Some(RateLimit {
            count: 1,
            period: Duration::from_secs(3600),
            burst: 1,
        }),
    );
    // Every call sleeps 1 s on the manual clock once its head has arrived, which shows
    // (the clock moves) when the emulator has seen a head.
    c.faults.latency_ms = 1000;
    let h = start_with(c).await;
    let list = h.create_list(HYBRID_KEY, "a").await;
    let body = json!({"listId": list, "subscribers": [{"email": "first@x.co"}]}).to_string();
    let before = h.clock.now_millis();
    let mut first = tokio::net::TcpStream::connect(h.emu.addr())
        .await
        .expect("connect");
    let head = format!(
        "POST /api/lists/subscribe HTTP/1.1\r\nHost: localhost\r\nApi-Key: {HYBRID_KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    first.write_all(head.as_bytes()).await.expect("head");
    let waited = std::time::Instant::now();
    while h.clock.now_millis() < before + 1000 {
        assert!(
            waited.elapsed() < Duration::from_secs(10),
            "the head was never read"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // A second request, whole, while the first one's body has not been sent.
    let second = h
        .post(
            HYBRID_KEY,
            "/api/lists/subscribe",
            json!({"listId": list, "subscribers": [{"email": "second@x.co"}]}),
        )
        .await;
    assert_eq!(second.status, 429, "{second:?}");
    first.write_all(body.as_bytes()).await.expect("body");
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = first.read(&mut buf).await.expect("read");
        assert!(n > 0, "closed: {:?}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&buf[..n]);
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(
        h.members(list),
        vec![m(Some("first@x.co"), None)],
        "the first request took effect, the second did not"
    );
}
