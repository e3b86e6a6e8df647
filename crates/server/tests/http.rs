//! The HTTP surface itself: how paths and query values are decoded, how paths and methods are
//! routed (as the service always has), and the request id every reply carries.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn send(r: reqwest::RequestBuilder) -> (u16, reqwest::header::HeaderMap, String) {
    let r = r.send().await.expect("send");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.text().await.expect("body"))
}

fn message_ids(body: &str) -> Vec<String> {
    let v: Value = serde_json::from_str(body).expect("json");
    v["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["messageId"].as_str().expect("messageId").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plus_in_an_event_path_is_a_plus_sign_and_a_space_in_a_query() {
    let h = Harness::start("").await;
    let (s, body) = h
        .post(
            "/v1/batch",
            &json!({"batch": [
                identify("a+b", "ann", None, "vip", true),
                identify("a b", "bob", None, "vip", true),
            ]}),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    for (path, want) in [
        ("/v1/events/a+b", "a+b"),
        ("/v1/events/a%2Bb", "a+b"),
        ("/v1/events/a%2bb?destination=prod", "a+b"),
        ("/v1/events/a%20b", "a b"),
    ] {
        let (s, body) = h.get(path).await;
        assert_eq!(s, 200, "{path}: {body}");
        assert_eq!(message_ids(&body), [want], "{path}");
    }
    // In a query value, `+` is a space (form encoding), and `%2B` a plus sign.
    let (s, body) = h.get("/v1/events/a+b?destination=pr+od").await;
    assert_eq!(s, 404, "{body}");
    assert!(body.contains(r#"no destination named \"pr od\""#), "{body}");
    let (s, body) = h.get("/v1/events/a+b?destination=pr%2Bod").await;
    assert_eq!(s, 404, "{body}");
    assert!(body.contains(r#"no destination named \"pr+od\""#), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reply_carries_a_request_id() {
    let h = Harness::start_top("metrics_listen = \"127.0.0.1:0\"", "").await;
    let metrics = format!(
        "http://{}",
        h.svc().metrics_addr().expect("metrics address")
    );
    let batch = json!({"batch": [identify("r1", "ann", None, "vip", true)]}).to_string();
    let url = h.url("/v1/batch");
    let requests = [
        (h.http.get(h.url("/healthz")), 200),
        (h.http.get(h.url("/v1/status")), 200),
        (h.http.get(h.url("/nowhere")), 404),
        (h.http.put(&url).body(batch.clone()), 405),
        (h.http.post(&url).body("{\"batch\": ["), 400),
        (
            h.http
                .post(&url)
                .basic_auth(WRITE_KEY, Some(""))
                .body(batch.clone()),
            200,
        ),
        (h.http.get(format!("{metrics}/metrics")), 200),
        (h.http.get(format!("{metrics}/nowhere")), 404),
    ];
    let mut seen = HashSet::new();
    for (req, status) in requests {
        let (s, headers, body) = send(req).await;
        assert_eq!(s, status, "{body}");
        let id = headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no x-request-id on a {status}: {headers:?}"));
        // A UUID v4, new for each request.
        assert_eq!(id.len(), 36, "{id}");
        assert_eq!(id.as_bytes()[14], b'4', "{id}");
        assert!(seen.insert(id.to_string()), "{id} twice");
    }

    // A client's (or a proxy's) id is kept; one that would garble a log line is replaced.
    let (_, headers, _) = send(
        h.http
            .get(h.url("/healthz"))
            .header("x-request-id", "lb-7f3a:1"),
    )
    .await;
    assert_eq!(headers["x-request-id"], "lb-7f3a:1");
    for unusable in ["x".repeat(129), "two words".to_string()] {
        let (_, headers, _) = send(
            h.http
                .get(h.url("/healthz"))
                .header("x-request-id", &unusable),
        )
        .await;
        let id = headers["x-request-id"].to_str().expect("ascii");
        assert_ne!(id, unusable);
        assert_eq!(id.len(), 36, "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_and_methods_are_routed_as_before() {
    let h = Harness::start_top("metrics_listen = \"127.0.0.1:0\"", "").await;
    let metrics = format!(
        "http://{}",
        h.svc().metrics_addr().expect("metrics address")
    );
    // Leading and trailing slashes do not matter on the main address.
    let batch = json!({"batch": [identify("s1", "ann", None, "vip", true)]}).to_string();
    let (s, _, body) = send(
        h.http
            .post(h.url("/v1/batch/"))
            .basic_auth(WRITE_KEY, Some(""))
            .body(batch),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(h.get("//healthz//").await.0, 200);
    assert_eq!(h.event("s1/").await.0, 200);

    let cases = [
        (
            h.http.put(h.url("/v1/batch/")),
            405,
            "PUT is not allowed on /v1/batch/; use POST",
        ),
        (
            h.http.get(h.url("/v1/webhook/prod")),
            405,
            "GET is not allowed on /v1/webhook/prod; use POST",
        ),
        (
            h.http.post(h.url("/v1/status")),
            404,
            "no such endpoint: POST /v1/status",
        ),
        (
            h.http.delete(h.url("/healthz")),
            404,
            "no such endpoint: DELETE /healthz",
        ),
        (
            h.http.get(h.url("/v1/events/")),
            404,
            "no such endpoint: GET /v1/events/",
        ),
        (
            h.http.get(h.url("/v1//status")),
            404,
            "no such endpoint: GET /v1//status",
        ),
        (
            h.http.get(h.url("/v1/webhook")),
            404,
            "no such endpoint: GET /v1/webhook",
        ),
        (
            h.http.post(format!("{metrics}/metrics")),
            405,
            "POST is not allowed on /metrics; use GET",
        ),
        (
            h.http.get(format!("{metrics}/metrics/")),
            404,
            "no such endpoint: GET /metrics/ (this address serves only GET /metrics)",
        ),
    ];
    for (req, status, message) in cases {
        let (s, headers, body) = send(req).await;
        assert_eq!(s, status, "{message}: {body}");
        assert_eq!(
            headers["content-type"], "application/json",
            "{message}: {headers:?}"
        );
        let v: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v, json!({"success": false, "message": message}));
    }
    // HEAD is not GET: the endpoints answer GET only.
    for (url, status) in [
        (h.url("/healthz"), 404),
        (h.url("/v1/status"), 404),
        (format!("{metrics}/metrics"), 405),
    ] {
        let (s, _, body) = send(h.http.head(&url)).await;
        assert_eq!((s, body.as_str()), (status, ""), "{url}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_sent_too_slowly_is_cut_off_through_the_router() {
    // After 50 ms, a body must keep 100,000 bytes/s on average.
    let h = Harness::start_top("http = { body_grace_ms = 50, body_min_rate = 100000 }", "").await;
    let mut s = TcpStream::connect(h.svc().addr()).await.expect("connect");
    let head = "POST /v1/batch HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
                content-length: 100000\r\n\r\n{\"batch\": [";
    s.write_all(head.as_bytes()).await.expect("write");
    // Nothing more is sent: the service closes the connection (the bound only keeps a failure
    // from hanging the test).
    let mut got = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(60), async {
        let mut buf = [0u8; 1024];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the stalled body was never cut off");
    let text = String::from_utf8_lossy(&got);
    assert!(!text.contains(" 200 "), "{text}");
    // The service still answers, and stored nothing.
    let (s, status) = h.get("/v1/status").await;
    assert_eq!(s, 200);
    assert!(status.contains("\"accepted\":0"), "{status}");
}

/// Reads one HTTP/1.1 response (with a `content-length`) off `s`: its head and body, or why
/// it could not be read.
async fn read_response(s: &mut TcpStream) -> Result<(String, Vec<u8>), String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match s.read(&mut buf).await {
            Ok(0) => return Err(format!("closed after {} bytes", got.len())),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("read failed: {e}")),
        }
    };
    let head = String::from_utf8_lossy(&got[..head_end]).to_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("no content-length in {head}"))?;
    while got.len() < head_end + length {
        match s.read(&mut buf).await {
            Ok(0) => return Err("closed in the body".into()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("read failed: {e}")),
        }
    }
    Ok((head, got[head_end..head_end + length].to_vec()))
}

/// `f`, bounded so that a failure cannot hang the test.
fn bounded<F: std::future::Future>(f: F) -> tokio::time::Timeout<F> {
    tokio::time::timeout(Duration::from_secs(60), f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_refused_for_its_credentials_leaves_its_connection_usable() {
    // A client with an unreadable Authorization header sends a batch of 64 KiB on a kept-alive
    // connection: it gets the 401 that says why, and its connection carries its next request
    // (the body is read, so the server neither resets the connection under the answer nor
    // closes it without saying so).
    let h = Harness::start("").await;
    let mut s = TcpStream::connect(h.svc().addr()).await.expect("connect");
    let pad = "x".repeat(64 * 1024);
    let body = format!("{{\"batch\": [], \"pad\": \"{pad}\"}}");
    let request = format!(
        "POST /v1/batch HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         authorization: Basic !!!\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    bounded(s.write_all(request.as_bytes()))
        .await
        .expect("written in time")
        .expect("request written");
    let (head, answer) = bounded(read_response(&mut s))
        .await
        .expect("answered in time")
        .expect("the 401 arrives");
    assert!(head.starts_with("http/1.1 401"), "{head}");
    let answer: Value = serde_json::from_slice(&answer).expect("json");
    assert_eq!(answer["code"], "bad_authorization", "{answer}");
    if head.contains("connection: close") {
        return;
    }
    s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .expect("second request written");
    let (head, _) = bounded(read_response(&mut s))
        .await
        .expect("answered in time")
        .expect("the connection carries the next request");
    assert!(head.starts_with("http/1.1 200"), "{head}");
}
