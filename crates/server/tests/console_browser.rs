mod support;
use fantoccini::Locator;
use support::Harness;
use testkit::browser::Browser;

#[tokio::test]
async fn probe() {
    let h = Harness::start_top("admin_token = \"tok-123\"", "").await;
    let b = Browser::start(1280, 900).await.expect("browser");
    let c = &b.client;
    c.goto(&h.url("/console")).await.expect("goto");
    let url = c.current_url().await.expect("url");
    assert!(url.path().ends_with("/console/signin"), "{url}");
    c.find(Locator::Css("#token")).await.expect("token").send_keys("tok-123").await.expect("keys");
    c.find(Locator::Css("form.signin button")).await.expect("btn").click().await.expect("click");
    let src = c.source().await.expect("src");
    assert!(src.contains("prod"), "{src}");
    let png = c.screenshot().await.expect("shot");
    std::fs::write("/tmp/probe.png", &png).unwrap();
    b.close().await;
}
