mod support;
use fantoccini::Locator;
use serde_json::json;
use support::{Harness, identify};
use testkit::browser::Browser;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe() {
    let h = Harness::start_top("admin_token = \"tok-123\"", "").await;
    let (s, _) = h.post("/v1/batch", &json!({"batch": [
        identify("m-jane", "u-jane", Some("jane@example.com"), "vip", true),
        identify("m-bob", "u-bob", Some("bob@example.c0m"), "vip", true),
        identify("m-x", "u-x", Some("x@example.com"), "newsletter", true),
    ]})).await;
    assert_eq!(s, 200);
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let b = Browser::start(1280, 900).await.expect("browser");
    let c = &b.client;
    c.goto(&h.url("/console")).await.expect("goto");
    c.find(Locator::Css("#token")).await.expect("token").send_keys("tok-123").await.expect("keys");
    c.find(Locator::Css("form.signin button")).await.expect("btn").click().await.expect("click");
    for (name, path) in [("overview", "/console"), ("dest", "/console/destinations/prod"), ("aud", "/console/destinations/prod/audiences/vip"), ("user", "/console/lookup?email=jane@example.com"), ("event", "/console/lookup?messageId=m-bob")] {
        c.goto(&h.url(path)).await.expect("goto");
        let png = c.screenshot().await.expect("shot");
        std::fs::write(format!("/tmp/probe-{name}.png"), &png).unwrap();
        let src = c.source().await.unwrap();
        std::fs::write(format!("/tmp/probe-{name}.html"), &src).unwrap();
    }
    b.close().await;
}
