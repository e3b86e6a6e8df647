//! Webhook signatures as an attacker holding one genuinely signed body would try them: events
//! appended, removed, reordered or changed, signatures moved between headers, a wrong write
//! key. Every such request is refused and nothing is stored; what a signature does cover is
//! accepted. Unknown and known destinations refuse alike.

mod support;

use serde_json::{Value, json};
use support::*;

const SECRET: &[u8] = b"s3cret";

/// Extra request headers, name and value.
type Headers<'a> = Vec<(&'a str, &'a str)>;

fn sign(secret: &[u8], data: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    ring::hmac::sign(&key, data)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An event's JSON text, as Segment's Webhooks (Actions) destination writes it.
fn event(id: &str, user: &str, member: bool) -> String {
    identify(
        id,
        user,
        Some(&format!("{user}@example.com")),
        "vip",
        member,
    )
    .to_string()
}

/// POSTs `body` to `/v1/webhook/{dest}` with `headers` (and the write key `basic` as HTTP
/// Basic); returns the status and the JSON answer.
async fn post(
    h: &Harness,
    dest: &str,
    body: &str,
    headers: &[(&str, &str)],
    basic: Option<&str>,
) -> (u16, Value) {
    let mut r = h
        .http
        .post(h.url(&format!("/v1/webhook/{dest}")))
        .header("Content-Type", "application/json")
        .body(body.to_owned());
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    if let Some(key) = basic {
        r = r.basic_auth(key, Some(""));
    }
    let r = r.send().await.expect("send");
    let status = r.status().as_u16();
    let text = r.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// The number of events the store holds, from `/v1/status`.
async fn stored_events(h: &Harness) -> u64 {
    let (s, status) = h.get("/v1/status").await;
    assert_eq!(s, 200, "{status}");
    let status: Value = serde_json::from_str(&status).expect("json");
    status["destinations"][0]["events"]
        .as_object()
        .expect("counts")
        .values()
        .filter_map(Value::as_u64)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_signatures_with_events_appended_removed_reordered_or_changed_are_refused() {
    let h = Harness::start("webhook_secret = \"s3cret\"").await;
    let (e1, e2) = (event("w1", "ann", true), event("w2", "bob", true));
    let forged = event("f1", "mallory", true);
    // What Segment's Webhooks (Actions) destination sends with batching on: the array, and
    // X-Signature over its first event.
    let batch = format!("[{e1},{e2}]");
    let first = sign(SECRET, e1.as_bytes());
    // What a sender signing the whole body sends.
    let whole = sign(SECRET, batch.as_bytes());
    let e1_leaves = event("w1", "ann", false);
    let changed_batch = batch.replace("bob", "rob");
    let other_secret = sign(b"other", e1.as_bytes());
    let x = "X-Signature";
    let xs = "X-Segment-Signature";

    let cases: Vec<(&str, String, Headers<'_>, Option<&str>, &str)> = vec![
        (
            "the batch as Segment signs it (first event only)",
            batch.clone(),
            vec![(x, &first)],
            None,
            "partial_signature",
        ),
        (
            "appended after a first-event signature",
            format!("[{e1},{forged}]"),
            vec![(x, &first)],
            None,
            "partial_signature",
        ),
        (
            "appended after a whole-body signature",
            format!("[{e1},{e2},{forged}]"),
            vec![(x, &whole)],
            None,
            "webhook_refused",
        ),
        (
            "the last event removed",
            format!("[{e1}]"),
            vec![(x, &whole)],
            None,
            "webhook_refused",
        ),
        (
            "the first event removed",
            format!("[{e2}]"),
            vec![(x, &whole)],
            None,
            "webhook_refused",
        ),
        (
            "the first event alone, unwrapped",
            e1.clone(),
            vec![(x, &whole)],
            None,
            "webhook_refused",
        ),
        (
            "reordered, whole-body signature",
            format!("[{e2},{e1}]"),
            vec![(x, &whole)],
            None,
            "webhook_refused",
        ),
        (
            "reordered, first-event signature",
            format!("[{e2},{e1}]"),
            vec![(x, &first)],
            None,
            "webhook_refused",
        ),
        (
            "the signed event changed",
            format!("[{e1_leaves}]"),
            vec![(x, &first)],
            None,
            "webhook_refused",
        ),
        (
            "another event changed",
            changed_batch,
            vec![(x, &whole)],
            None,
            "webhook_refused",
        ),
        (
            "a first-event X-Segment-Signature, whatever X-Signature says",
            batch.clone(),
            vec![(xs, &first), (x, &whole)],
            None,
            "webhook_refused",
        ),
        (
            "a signature made with another secret",
            format!("[{e1}]"),
            vec![(x, &other_secret)],
            None,
            "webhook_refused",
        ),
        (
            "a good signature with a wrong write key",
            batch.clone(),
            vec![(x, &whole)],
            Some("wk_nope"),
            "webhook_refused",
        ),
        (
            "a first-event signature and a wrong write key",
            batch.clone(),
            vec![(x, &first)],
            Some("wk_nope"),
            "webhook_refused",
        ),
    ];
    for (what, body, headers, basic, code) in cases {
        let (s, answer) = post(&h, "prod", &body, &headers, basic).await;
        assert_eq!(s, 401, "{what}: {answer}");
        assert_eq!(answer["code"], code, "{what}: {answer}");
        assert_eq!(answer["success"], false, "{what}: {answer}");
    }
    let (_, partial) = post(&h, "prod", &batch, &[(x, &first)], None).await;
    let message = partial["message"].as_str().unwrap_or_default();
    for needle in [
        "first event",
        "batching off",
        "X-Segment-Signature",
        "write key",
    ] {
        assert!(message.contains(needle), "{message:?} lacks {needle:?}");
    }

    // Nothing stored, nothing sent to Iterable.
    assert_eq!(stored_events(&h).await, 0);
    for id in ["w1", "w2", "f1"] {
        assert_eq!(h.event(id).await.0, 404, "{id}");
    }
    let lists: usize = h.emu.state(false).iter().map(|p| p.lists.len()).sum();
    assert_eq!(lists, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_signature_or_a_write_key_covers_is_accepted() {
    let h = Harness::start("webhook_secret = \"s3cret\"").await;
    let x = "X-Signature";
    // A batch of one, signed as Webhooks (Actions) signs a batch.
    let one = event("a1", "ann", true);
    let (s, answer) = post(
        &h,
        "prod",
        &format!("[{one}]"),
        &[(x, &sign(SECRET, one.as_bytes()))],
        None,
    )
    .await;
    assert_eq!((s, &answer), (200, &json!({"success": true})));
    // A whole batch under X-Segment-Signature.
    let batch = format!(
        "[{},{}]",
        event("a2", "bob", true),
        event("a3", "cid", true)
    );
    let (s, answer) = post(
        &h,
        "prod",
        &batch,
        &[("X-Segment-Signature", &sign(SECRET, batch.as_bytes()))],
        None,
    )
    .await;
    assert_eq!(s, 200, "{answer}");
    // A batch signed over its first event, sent with a write key of the destination.
    let (d4, d5) = (event("a4", "dan", true), event("a5", "eve", true));
    let (s, answer) = post(
        &h,
        "prod",
        &format!("[{d4},{d5}]"),
        &[(x, &sign(SECRET, d4.as_bytes()))],
        Some(WRITE_KEY),
    )
    .await;
    assert_eq!(s, 200, "{answer}");
    // A write key alone.
    let f6 = event("a6", "fay", true);
    let (s, answer) = post(&h, "prod", &f6, &[], Some(WRITE_KEY)).await;
    assert_eq!(s, 200, "{answer}");
    h.wait_list(
        "vip",
        &[
            "ann@example.com",
            "bob@example.com",
            "cid@example.com",
            "dan@example.com",
            "eve@example.com",
            "fay@example.com",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_destinations_and_refused_credentials_get_the_same_answer() {
    let h = Harness::start("webhook_secret = \"s3cret\"").await;
    let body = format!("[{}]", event("u1", "ann", true));
    let good_for_prod = sign(SECRET, body.as_bytes());
    let bad = sign(b"guess", body.as_bytes());
    let x = "X-Signature";
    let tries: Vec<(&str, Headers<'_>, Option<&str>)> = vec![
        ("no credential", vec![], None),
        ("a wrong signature", vec![(x, &bad)], None),
        ("a malformed signature", vec![(x, "zz")], None),
        ("a wrong write key", vec![], Some("wk_nope")),
    ];
    let mut answers = Vec::new();
    for (what, headers, basic) in &tries {
        let known = post(&h, "prod", &body, headers, *basic).await;
        let unknown = post(&h, "nope", &body, headers, *basic).await;
        assert_eq!(known.0, 401, "{what}: {known:?}");
        assert_eq!(known, unknown, "{what}");
        answers.push(known);
    }
    // Credentials good for one destination, sent to a name that does not exist.
    answers.push(post(&h, "nope", &body, &[(x, &good_for_prod)], None).await);
    answers.push(post(&h, "nope", &body, &[], Some(WRITE_KEY)).await);
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
    assert_eq!(stored_events(&h).await, 0);
}
