//! Every value that comes from events, from Iterable or from an operator reaches the console's
//! pages escaped: `<script>alert(1)</script>` and `"><img src=x onerror=alert(1)>` are sent
//! through every field an event carries (audience key, email, userId, traits, messageId), come
//! back in Iterable's answers (a refused email, in the rejected users), and are typed into a
//! form (the pause reason, a lookup); each page's HTML must hold them only escaped.

mod support;

use reqwest::Client;
use reqwest::redirect::Policy;
use serde_json::json;
use support::Harness;

const TOKEN: &str = "safety-test-admin-token";
const SCRIPT: &str = "<script>alert(1)</script>";
const IMG: &str = "\"><img src=x onerror=alert(1)>";

fn client() -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("client")
}

/// Fails when `html` holds either payload unescaped; true when it holds one escaped.
fn check(path: &str, html: &str) -> bool {
    for raw in ["<script>alert(1)</script>", "<img src=x", "\"><img"] {
        assert!(
            !html.contains(raw),
            "{path} holds {raw:?} unescaped:\n{html}"
        );
    }
    html.contains("&lt;script&gt;alert(1)&lt;/script&gt;") || html.contains("&lt;img src=x")
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[tokio::test]
async fn hostile_values_are_escaped_on_every_page() {
    let h = Harness::start_top(&format!("admin_token = \"{TOKEN}\""), "").await;
    let c = client();
    // An audience key, a userId, an email Iterable refuses, traits and messageIds, each
    // holding a payload.
    let mut events = Vec::new();
    for (i, (key, payload)) in [(SCRIPT, IMG), (IMG, SCRIPT)].into_iter().enumerate() {
        events.push(json!({
            "type": "identify", "messageId": format!("{payload}-{i}"), "userId": format!("{payload}{i}"),
            "timestamp": "2026-11-29T10:00:00.000Z",
            "traits": {"email": format!("{payload}{i}@example.com"), key: true, "name": payload},
            "context": {"personas": {"computation_key": key, "computation_class": "audience"}}
        }));
        events.push(json!({
            "type": "identify", "messageId": format!("ok-{i}"), "userId": format!("ok{i}"),
            "timestamp": "2026-11-29T10:00:00.000Z",
            "traits": {"email": format!("ok{i}@example.com"), key: true, "title": payload},
            "context": {"personas": {"computation_key": key, "computation_class": "audience"}}
        }));
    }
    let (s, v) = h.post("/v1/batch", &json!({ "batch": events })).await;
    assert_eq!(s, 200, "{v}");
    for i in 0..2 {
        h.wait_final_as(Some(TOKEN), &format!("ok-{i}")).await;
    }
    let refused = h
        .wait_final_as(Some(TOKEN), &enc(&format!("{IMG}-0")))
        .await;
    assert_eq!(refused["audiences"][0]["status"], "rejected", "{refused}");

    // Sign in, and pause with a hostile reason.
    let r = c
        .post(h.url("/console/signin"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={TOKEN}"))
        .send()
        .await
        .expect("send");
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .split(';')
        .next()
        .expect("cookie")
        .to_string();
    let page = fetch(&c, &h, &cookie, "/console/destinations/prod").await;
    let at = page.find(r#"name="csrf" value=""#).expect("csrf") + 19;
    let csrf = &page[at..at + 64];
    let r = c
        .post(h.url("/console/destinations/prod/pause"))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}&reason={}", enc(SCRIPT)))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 303);

    let mut paths = vec![
        "/console".to_string(),
        "/console/destinations/prod".into(),
        format!("/console/lookup?messageId={}", enc(&format!("{IMG}-0"))),
        format!("/console/lookup?messageId={}", enc(&format!("{SCRIPT}-1"))),
        format!(
            "/console/lookup?email={}",
            enc(&format!("{IMG}0@example.com"))
        ),
        format!("/console/lookup?userId={}", enc(&format!("{SCRIPT}1"))),
        format!("/console/lookup?email={}&userId=x", enc(SCRIPT)),
        format!("/console/lookup?messageId={}", enc(IMG)),
        format!("/console/destinations/{}", enc(SCRIPT)),
    ];
    for key in [SCRIPT, IMG] {
        let a = format!("/console/destinations/prod/audiences/{}", enc(key));
        paths.push(a.clone());
        paths.push(format!("{a}?filter={}", enc(IMG)));
    }
    let mut escaped = 0;
    for path in paths {
        let html = fetch(&c, &h, &cookie, &path).await;
        if check(&path, &html) {
            escaped += 1;
        }
    }
    // Every page but the unknown destination shows a payload (escaped), so none was dropped.
    assert!(escaped >= 11, "only {escaped} pages showed the payloads");
}

async fn fetch(c: &Client, h: &Harness, cookie: &str, path: &str) -> String {
    let r = c
        .get(h.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .expect("send");
    r.text().await.expect("body")
}
