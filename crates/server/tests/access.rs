//! Who may read what: `/metrics` and the admin endpoints behind the admin token (its scheme
//! matched case-insensitively, as is Basic's for write keys), and the `metrics_listen` address
//! that serves `/metrics` alone, without a token.

mod support;

use serde_json::{Value, json};
use support::*;

const TOKEN: &str = "admin-t0ken";

async fn get(h: &Harness, base: &str, path: &str, auth: Option<&str>) -> (u16, String) {
    let mut r = h.http.get(format!("{base}{path}"));
    if let Some(a) = auth {
        r = r.header("Authorization", a);
    }
    let r = r.send().await.expect("send");
    let status = r.status().as_u16();
    (status, r.text().await.expect("body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_admin_endpoints_need_the_token_when_one_is_set() {
    let h = Harness::start_top(&format!("admin_token = \"{TOKEN}\""), "").await;
    let base = h.svc().url();
    for path in ["/metrics", "/v1/status", "/v1/events/m1"] {
        let (s, body) = get(&h, &base, path, None).await;
        assert_eq!(s, 401, "{path}: {body}");
        assert!(!body.contains("iterable_lists_"), "{path}: {body}");
        let (s, body) = get(&h, &base, path, Some("Bearer wrong")).await;
        assert_eq!(s, 401, "{path}: {body}");
        let (s, _) = get(&h, &base, path, Some(&format!("Basic {TOKEN}"))).await;
        assert_eq!(s, 401, "{path}");
    }
    for auth in [
        format!("Bearer {TOKEN}"),
        format!("bearer {TOKEN}"),
        format!("BEARER  {TOKEN} "),
        format!("BeArEr\t{TOKEN}"),
    ] {
        let (s, body) = get(&h, &base, "/metrics", Some(&auth)).await;
        assert_eq!(s, 200, "{auth:?}: {body}");
        assert!(body.contains("iterable_lists_"), "{body}");
        let (s, body) = get(&h, &base, "/v1/status", Some(&auth)).await;
        assert_eq!(s, 200, "{auth:?}: {body}");
    }
    // Health checks stay open.
    assert_eq!(get(&h, &base, "/healthz", None).await.0, 200);
    assert_eq!(get(&h, &base, "/readyz", None).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_listen_serves_metrics_alone_without_a_token() {
    let h = Harness::start_top(
        &format!("admin_token = \"{TOKEN}\"\nmetrics_listen = \"127.0.0.1:0\""),
        "",
    )
    .await;
    let metrics = format!(
        "http://{}",
        h.svc().metrics_addr().expect("a metrics listener")
    );
    assert_ne!(metrics, h.svc().url());
    let (s, body) = get(&h, &metrics, "/metrics", None).await;
    assert_eq!(s, 200, "{body}");
    assert!(body.contains("iterable_lists_"), "{body}");
    assert!(body.contains("prod"), "{body}");
    // Nothing else there, token or not.
    for path in ["/v1/status", "/v1/events/m1", "/healthz", "/", "/metrics/x"] {
        let (s, body) = get(&h, &metrics, path, Some(&format!("Bearer {TOKEN}"))).await;
        assert_eq!(s, 404, "{path}: {body}");
    }
    let r = h
        .http
        .post(format!("{metrics}/v1/batch"))
        .basic_auth(WRITE_KEY, Some(""))
        .body(json!({"batch": [identify("m1", "ann", None, "vip", true)]}).to_string())
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 404);
    let r = h
        .http
        .post(format!("{metrics}/metrics"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 405);
    // The main listener still wants the token for /metrics, and stored nothing.
    assert_eq!(get(&h, &h.svc().url(), "/metrics", None).await.0, 401);
    let (s, v) = get(
        &h,
        &h.svc().url(),
        "/v1/events/m1",
        Some(&format!("Bearer {TOKEN}")),
    )
    .await;
    assert_eq!(s, 404, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_basic_scheme_of_a_write_key_is_case_insensitive() {
    let h = Harness::start("").await;
    let credentials = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(format!("{WRITE_KEY}:"))
    };
    for (i, scheme) in ["Basic", "basic", "BASIC"].into_iter().enumerate() {
        let id = format!("b{i}");
        let r = h
            .http
            .post(h.url("/v1/batch"))
            .header("Authorization", format!("{scheme} {credentials}"))
            .body(json!({"batch": [identify(&id, "ann", None, "vip", true)]}).to_string())
            .send()
            .await
            .expect("send");
        let status = r.status().as_u16();
        let body: Value = serde_json::from_str(&r.text().await.expect("body")).expect("json");
        assert_eq!((status, body), (200, json!({"success": true})), "{scheme}");
    }
}

/// Clients polling `/metrics` and `/v1/status` all at once are paced: each waits its turn
/// (asleep), and those that would wait too long are told to come back (503, `Retry-After`),
/// while ingestion answers as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_clients_are_paced_and_ingestion_is_not() {
    let h = Harness::start_top(&format!("admin_token = \"{TOKEN}\""), "").await;
    let base = h.svc().url();
    // More at once than 2 s of turns at 20 a second.
    let polls: Vec<_> = (0..200)
        .map(|i| {
            let (http, base) = (h.http.clone(), base.clone());
            let path = if i % 2 == 0 { "/metrics" } else { "/v1/status" };
            tokio::spawn(async move {
                let r = http
                    .get(format!("{base}{path}"))
                    .header("Authorization", format!("Bearer {TOKEN}"))
                    .send()
                    .await
                    .expect("send");
                let retry_after = r.headers().get("retry-after").cloned();
                (r.status().as_u16(), retry_after)
            })
        })
        .collect();
    let (s, body) = h
        .post(
            "/v1/batch",
            &json!({"batch": [identify("m1", "u1", Some("a@example.com"), "vip", true)]}),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let mut answered = 0;
    let mut busy = 0;
    for p in polls {
        match p.await.expect("task") {
            (200, _) => answered += 1,
            (503, Some(v)) if v == "1" => busy += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert!(answered >= 40, "{answered} answered, {busy} busy");
    assert!(busy > 0, "{answered} answered, {busy} busy");
}

/// Every 401 names the scheme that would be accepted (`WWW-Authenticate`, which HTTP requires
/// on a 401): `Basic` for the write key of the tracking API, `Bearer` for the admin token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_401_says_which_credentials_would_do() {
    let h = Harness::start_top(&format!("admin_token = \"{TOKEN}\""), "").await;
    let challenge = |r: &reqwest::Response| {
        r.headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let batch = json!({"batch": [identify("w1", "ann", None, "vip", true)]}).to_string();
    let tracking = [
        h.http.post(h.url("/v1/batch")),
        h.http
            .post(h.url("/v1/batch"))
            .basic_auth("not-a-key", Some("")),
        h.http
            .post(h.url("/v1/batch"))
            .header("Authorization", "Basic !!!"),
        // A webhook takes a write key too; known and unknown destinations answer alike.
        h.http.post(h.url("/v1/webhook/prod")),
        h.http.post(h.url("/v1/webhook/nowhere")),
    ];
    for r in tracking {
        let r = r.body(batch.clone()).send().await.expect("send");
        assert_eq!(r.status().as_u16(), 401);
        let c = challenge(&r);
        assert!(
            c.as_deref().is_some_and(|c| c.starts_with("Basic ")),
            "{c:?}"
        );
    }
    for auth in [None, Some("Bearer wrong")] {
        let mut r = h.http.get(h.url("/v1/status"));
        if let Some(a) = auth {
            r = r.header("Authorization", a);
        }
        let r = r.send().await.expect("send");
        assert_eq!(r.status().as_u16(), 401);
        let c = challenge(&r);
        assert!(
            c.as_deref().is_some_and(|c| c.starts_with("Bearer")),
            "{auth:?}: {c:?}"
        );
    }
}

/// A service listening on every address of both families (`[::]`, dual-stack) sees a local
/// IPv4 client as `::ffff:127.0.0.1`: without an admin token, that client is local and is
/// answered, as one connecting to `[::1]` is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_ipv4_client_of_a_dual_stack_listener_is_local() {
    let emu = emulator(iterable_emulator::Faults::default()).await;
    let dir = temp_dir("dual");
    let text = config_text(&dir.join("db.sqlite"), &emu.url(), "")
        .replace("listen = \"127.0.0.1:0\"", "listen = \"[::]:0\"");
    let cfg = server::Config::parse(&text, &|_| None).expect("config");
    let svc = server::RunningService::start(cfg).await.expect("service");
    let port = svc.addr().port();
    let http = http();
    for base in [
        format!("http://127.0.0.1:{port}"),
        format!("http://[::1]:{port}"),
    ] {
        for path in ["/v1/status", "/metrics"] {
            let r = http
                .get(format!("{base}{path}"))
                .send()
                .await
                .expect("send");
            let status = r.status().as_u16();
            let body = r.text().await.expect("body");
            assert_eq!(status, 200, "{base}{path}: {body}");
        }
    }
    svc.shutdown(std::time::Duration::from_secs(5)).await;
    let _ = std::fs::remove_dir_all(dir);
}
