//! `PUT /v1/audiences/{destination}/{audience}/members` as a warehouse job calls it: admin
//! auth; a snapshot fills a list and the next makes exactly its changes; a dry run writes
//! nothing; emptying the list is refused (409, with the numbers) unless overridden; bad input
//! gets a 4xx naming the parameter or the line; a body cut off midway applies nothing; a live
//! event older than the snapshot, arriving after it, is superseded by it whatever its key. On
//! SQLite and on PostgreSQL.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;
use serde_json::json;
use support::{Harness, track};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "s3cret-admin";

async fn put(h: &Harness, path: &str, body: String, token: Option<&str>) -> (u16, Value) {
    let mut req = h
        .http
        .put(h.url(path))
        .header("Content-Type", "text/csv")
        .body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.expect("send");
    let status = r.status().as_u16();
    let text = r.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn csv(users: impl Iterator<Item = usize>) -> String {
    let mut s = String::from("email,tier\n");
    for u in users {
        s.push_str(&format!("m{u}@example.com,t{}\n", u % 3));
    }
    s
}

fn emails(users: impl Iterator<Item = usize>) -> BTreeSet<String> {
    users.map(|u| format!("m{u}@example.com")).collect()
}

async fn converge(h: &Harness, want: &BTreeSet<String>) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let got = h.list("wh").unwrap_or_default();
        if &got == want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "list wh: {} members, want {}",
            got.len(),
            want.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const PATH: &str = "/v1/audiences/prod/wh/members";

async fn snapshots_through_http(h: &Harness, token: Option<&str>) {
    let (s, r) = put(h, PATH, csv(0..500), token).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(
        (r["adds"].as_u64(), r["applied"].as_bool()),
        (Some(500), Some(true)),
        "{r}"
    );
    converge(h, &emails(0..500)).await;
    // 10% churn.
    let (s, r) = put(h, PATH, csv(50..550), token).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(
        (
            r["adds"].as_u64(),
            r["removes"].as_u64(),
            r["unchanged"].as_u64()
        ),
        (Some(50), Some(50), Some(450)),
        "{r}"
    );
    converge(h, &emails(50..550)).await;
    // Dry run of an empty snapshot: counts, nothing written.
    let (s, r) = put(h, &format!("{PATH}?dry_run=true"), "email\n".into(), token).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(
        (r["removes"].as_u64(), r["applied"].as_bool()),
        (Some(500), Some(false))
    );
    // Emptying the list: refused with the numbers.
    let (s, r) = put(h, PATH, "email\n".into(), token).await;
    assert_eq!(s, 409, "{r}");
    assert_eq!(r["refused"]["code"], "mass_removal");
    assert_eq!(r["refused"]["removes"], 500);
    assert_eq!(r["refused"]["currentMembers"], 500);
    // Bad input: 400 naming the parameter, or the line.
    let (s, r) = put(
        h,
        &format!("{PATH}?max_bad_ratio=7"),
        "email\n".into(),
        token,
    )
    .await;
    assert_eq!(s, 400);
    assert!(
        r["message"]
            .as_str()
            .is_some_and(|m| m.contains("max_bad_ratio")),
        "{r}"
    );
    let (s, r) = put(h, PATH, "name\nann\n".into(), token).await;
    assert_eq!(s, 400);
    assert!(
        r["message"]
            .as_str()
            .is_some_and(|m| m.contains("line 1") && m.contains("no email or userId")),
        "{r}"
    );
    let (s, _) = put(h, "/v1/audiences/nope/wh/members", "email\n".into(), token).await;
    assert_eq!(s, 404);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(h.list("wh").unwrap_or_default(), emails(50..550));
    // With the override, the list is emptied.
    let (s, r) = put(
        h,
        &format!("{PATH}?allow_mass_removal=true"),
        "email\n".into(),
        token,
    )
    .await;
    assert_eq!(s, 200, "{r}");
    converge(h, &BTreeSet::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_need_the_admin_token_and_fill_churn_and_guard_a_list() {
    let h = Harness::start_top(&format!("admin_token = \"{TOKEN}\""), "").await;
    let (s, _) = put(&h, PATH, csv(0..5), None).await;
    assert_eq!(s, 401);
    let (s, _) = put(&h, PATH, csv(0..5), Some("wrong")).await;
    assert_eq!(s, 401);
    assert!(h.list("wh").is_none());
    snapshots_through_http(&h, Some(TOKEN)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_over_http_on_postgresql() {
    let h = Harness::start_postgres(Default::default(), "").await;
    snapshots_through_http(&h, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_cut_off_midway_applies_nothing() {
    let h = Harness::start("").await;
    let addr = h.svc().url().trim_start_matches("http://").to_string();
    let mut sock = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let head = format!(
        "PUT {PATH} HTTP/1.1\r\nHost: {addr}\r\nTransfer-Encoding: chunked\r\nContent-Type: text/csv\r\n\r\n"
    );
    sock.write_all(head.as_bytes()).await.expect("head");
    let part = csv(0..1000);
    sock.write_all(format!("{:x}\r\n{part}\r\n", part.len()).as_bytes())
        .await
        .expect("chunk");
    sock.flush().await.expect("flush");
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The client goes away without the last chunk.
    drop(sock);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        h.list("wh").is_none(),
        "a list was made from a cut-off snapshot"
    );
    let (s, st) = h.get("/v1/status").await;
    assert_eq!(s, 200);
    assert!(!st.contains("\"wh\""), "{st}");
    // The same body sent whole, in chunks, is applied.
    let mut sock = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    sock.write_all(head.as_bytes()).await.expect("head");
    for piece in part.as_bytes().chunks(777) {
        sock.write_all(format!("{:x}\r\n", piece.len()).as_bytes())
            .await
            .expect("size");
        sock.write_all(piece).await.expect("piece");
        sock.write_all(b"\r\n").await.expect("end");
    }
    sock.write_all(b"0\r\n\r\n").await.expect("last");
    let mut answer = vec![0u8; 4096];
    let n = sock.read(&mut answer).await.expect("answer");
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    converge(&h, &emails(0..1000)).await;
}

/// The snapshot at 10:00 names k (kept: a member already) and m; events of 09:59 sent after
/// it, for k (an exit) and for a (never a member, not in the snapshot), are superseded by it
/// and leave the list as it is; an event of 10:01 for a applies.
async fn older_events_lose_to_the_snapshot(h: &Harness) {
    let path = "/v1/audiences/prod/wh/members?as_of=2026-11-29T10:00:00Z";
    let (s, r) = put(h, path, "email,userId\nk@example.com,uk\n".into(), None).await;
    assert_eq!(s, 200, "{r}");
    converge(h, &BTreeSet::from(["k@example.com".to_string()])).await;
    let body = "email,userId\nk@example.com,uk\nm@example.com,um\n".to_string();
    let (s, r) = put(h, path, body, None).await;
    assert_eq!(
        (s, r["adds"].as_u64(), r["unchanged"].as_u64()),
        (200, Some(1), Some(1)),
        "{r}"
    );
    let want: BTreeSet<String> = ["k@example.com", "m@example.com"].map(String::from).into();
    converge(h, &want).await;

    let old = "2026-11-29T09:59:59.000Z";
    let batch = json!({"batch": [
        track("old-k-exit", "uk", "k@example.com", "wh", false, old),
        track("old-a-enter", "ua", "a@example.com", "wh", true, old),
    ]});
    let (s, r) = h.post("/v1/batch", &batch).await;
    assert_eq!(s, 200, "{r}");
    for id in ["old-k-exit", "old-a-enter"] {
        let ev = h.wait_final(id).await;
        let a = &ev["audiences"][0];
        assert_eq!(a["status"], "superseded", "{id}: {ev}");
        let why = a["reason"].as_str().unwrap_or("");
        assert!(
            why.contains("snapshot")
                && why.contains("2026-11-29T10:00:00.000Z")
                && why.contains("older (2026-11-29T09:59:59.000Z)"),
            "{id}: {why}"
        );
    }
    assert_eq!(h.list("wh").unwrap_or_default(), want);
    // Newer than the snapshot: it applies. The list then holds it and nothing of the older
    // events (k stays, as the snapshot says).
    let (s, _) = h
        .post(
            "/v1/batch",
            &json!({"batch": [track("new-a-enter", "ua", "a@example.com", "wh", true, "2026-11-29T10:00:01.000Z")]}),
        )
        .await;
    assert_eq!(s, 200);
    let ev = h.wait_final("new-a-enter").await;
    assert_eq!(ev["audiences"][0]["status"], "delivered", "{ev}");
    let want: BTreeSet<String> = ["a@example.com", "k@example.com", "m@example.com"]
        .map(String::from)
        .into();
    converge(h, &want).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_event_after_a_snapshot_is_superseded_by_it() {
    let h = Harness::start("").await;
    older_events_lose_to_the_snapshot(&h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_event_after_a_snapshot_is_superseded_by_it_on_postgresql() {
    let h = Harness::start_postgres(Default::default(), "").await;
    older_events_lose_to_the_snapshot(&h).await;
}
