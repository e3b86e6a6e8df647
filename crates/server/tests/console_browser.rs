//! The console in a real browser: headless Chromium (Debian's `chromium`, driven through
//! `chromedriver` with fantoccini; testkit installs them when missing) against the service and
//! the Iterable emulator. Signs in (a wrong token is refused), opens every page, and acts as an
//! operator would, checking what the page shows and what the emulator ends up with: pause then
//! resume (deliveries stop, then go on), a user and an event looked up, a rejected user retried
//! after it was fixed in the emulator, and a destination whose API key Iterable refuses read as
//! paused with the reason. Each page is screenshotted; with `UPDATE_SCREENSHOTS=1` the PNGs are
//! written to `docs/console/` (the README shows them).
//!
//! One test, one browser: starting Chromium costs more than the steps.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};
use iterable_emulator::{SeedRequest, SeedUser};
use serde_json::{Value, json};
use support::{Harness, identify};
use testkit::browser::Browser;

const TOKEN: &str = "browser-test-admin-token";
const BAD_WRITE_KEY: &str = "wk_refused";

/// A second destination whose API key the emulator does not know: it pauses on Iterable's 401.
fn refused_destination() -> String {
    format!(
        "[[destination]]\nname = \"refused\"\napi_key = \"{}\"\nproject_type = \"hybrid\"\n\
         base_url = \"BASE\"\nwrite_keys = [\"{BAD_WRITE_KEY}\"]",
        "f".repeat(32)
    )
}

async fn start() -> Harness {
    // The second destination's base URL is the emulator's, known once it runs: the harness
    // starts the emulator first, so build the configuration around its URL.
    let emu = support::emulator(Default::default()).await;
    let dir = support::temp_dir("console-browser");
    let extra = refused_destination().replace("BASE", &emu.url());
    let config = format!(
        "admin_token = \"{TOKEN}\"\n{}\n{extra}\n[destination.delivery]\nlinger_ms = 20\n",
        support::config_text(
            &dir.join("db.sqlite"),
            &emu.url(),
            // The mass-removal guard watches this small audience too.
            "max_removal_ratio = 0.5\nremoval_guard_min_members = 1",
        )
    );
    let cfg = server::Config::parse(&config, &|_| None).expect("config");
    let svc = server::RunningService::start(cfg).await.expect("service");
    Harness {
        emu,
        svc: Some(svc),
        dir,
        http: support::http(),
        config,
        pg: None,
    }
}

/// Where screenshots go: `docs/console/` with `UPDATE_SCREENSHOTS=1`, else a scratch dir.
fn shots_dir() -> PathBuf {
    if std::env::var("UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/console")
    } else {
        support::temp_dir("console-shots")
    }
}

async fn shot(c: &Client, dir: &std::path::Path, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    assert!(
        png.len() > 2000 && png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{name}: not a PNG ({} bytes)",
        png.len()
    );
    std::fs::create_dir_all(dir).expect("screenshot dir");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
}

async fn text(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .expect("text")
}

/// Clicks a link or a form's button and waits for the page it leads to: every click in
/// this test navigates, and WebDriver's click may return before a form's submission has
/// replaced the page (the next `find` would then read the old one).
async fn click(c: &Client, css: &str) {
    let old = c.find(Locator::Css("html")).await.expect("the page's html");
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(30);
    // The old document's element goes stale once the new page replaced it.
    while old.tag_name().await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "click {css}: the page did not change"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    loop {
        let ready = c
            .execute("return document.readyState", Vec::new())
            .await
            .ok();
        if ready.as_ref().and_then(Value::as_str) == Some("complete") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "click {css}: the page did not load"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Clicks a button that asks first (`data-confirm`), checks the question holds `question`,
/// accepts it, and waits for a flash message holding `flash`.
async fn confirm_click(c: &Client, css: &str, question: &str, flash: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
    let asked = c.get_alert_text().await.expect("the action asks first");
    assert!(asked.contains(question), "{asked}");
    c.accept_alert().await.expect("accept");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = match c.find(Locator::Css(".flash.ok")).await {
            Ok(el) => el.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if !got.is_empty() && got.contains(flash) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{css}: no flash holding {flash:?}: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn fill(c: &Client, css: &str, value: &str) {
    let el = c
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"));
    el.clear().await.expect("clear");
    el.send_keys(value).await.expect("type");
}

/// Reloads `url` until `css` holds `want` (pages show the store's figures, refreshed once a
/// second).
async fn wait_text(c: &Client, url: &str, css: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        c.goto(url).await.expect("goto");
        let got = match c.find(Locator::Css(css)).await {
            Ok(el) => el.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if got.contains(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{url} {css}: {got:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A change made by hand in the emulated Iterable project, through its API.
async fn by_hand(h: &Harness, path: &str, list_id: i64, email: &str) {
    let r = h
        .http
        .post(format!("{}/api/lists/{path}", h.emu.url()))
        .header("Api-Key", support::KEY)
        .header("Content-Type", "application/json")
        .body(json!({"listId": list_id, "subscribers": [{"email": email}]}).to_string())
        .send()
        .await
        .expect("by hand");
    assert!(r.status().is_success(), "{:?}", r.text().await);
}

async fn post_as(h: &Harness, write_key: &str, body: &Value) {
    let r = h
        .http
        .post(h.url("/v1/batch"))
        .basic_auth(write_key, Some(""))
        .header("content-type", "application/json")
        .body(json!({ "batch": [body] }).to_string())
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_in_a_browser() {
    let started = Instant::now();
    let h = start().await;
    let shots = shots_dir();
    let browser = Browser::start(1280, 1000).await.expect("browser");
    let c = &browser.client;
    let base = h.url("");

    // Deliveries to look at: two members of "vip", one refused (an existing-users-only
    // subscribe of a user Iterable does not know), and an event for the refused destination.
    let (s, _) = h
        .post(
            "/v1/batch",
            &json!({"batch": [
                identify("m-jane", "u-jane", Some("jane@example.com"), "vip", true),
                identify("m-bob", "u-bob", Some("bob@example.com"), "vip", true),
            ]}),
        )
        .await;
    assert_eq!(s, 200);
    let mut ghost = identify("m-ghost", "u-ghost", Some("ghost@example.com"), "vip", true);
    ghost["context"]["personas"]["audience_settings"] = json!({"updateExistingUsersOnly": true});
    let (s, _) = h.post("/v1/batch", &json!({"batch": [ghost]})).await;
    assert_eq!(s, 200);
    post_as(
        &h,
        BAD_WRITE_KEY,
        &identify("m-x", "u-x", Some("x@example.com"), "vip", true),
    )
    .await;
    h.wait_list("vip", &["bob@example.com", "jane@example.com"])
        .await;
    let ghost_event = h.wait_final_as(Some(TOKEN), "m-ghost").await;
    assert_eq!(
        ghost_event["audiences"][0]["status"], "rejected",
        "{ghost_event}"
    );

    // Sign-in: a wrong token is refused, the right one lets in.
    c.goto(&format!("{base}/console")).await.expect("goto");
    assert!(
        c.current_url()
            .await
            .expect("url")
            .path()
            .ends_with("/console/signin")
    );
    shot(c, &shots, "signin").await;
    fill(c, "#token", "not-the-token").await;
    click(c, "form.signin button").await;
    assert!(
        text(c, ".flash.error")
            .await
            .contains("The admin token is wrong")
    );
    fill(c, "#token", TOKEN).await;
    click(c, "form.signin button").await;
    assert_eq!(c.current_url().await.expect("url").path(), "/console");

    // The overview: prod running, refused paused with Iterable's 401.
    wait_text(
        c,
        &format!("{base}/console"),
        "[data-destination=refused] .state",
        "paused",
    )
    .await;
    let reason = text(c, "[data-destination=refused] [data-reason]").await;
    assert!(reason.contains("401"), "{reason}");
    assert_eq!(text(c, "[data-destination=prod] .state").await, "running");
    shot(c, &shots, "overview").await;

    // The destination page, its audiences and settings (secrets hidden).
    click(c, "[data-destination=prod] h2 a").await;
    assert_eq!(
        c.current_url().await.expect("url").path(),
        "/console/destinations/prod"
    );
    let row = text(c, "tr[data-audience=vip]").await;
    assert!(row.contains('2'), "{row}");
    let page = c.source().await.expect("source");
    assert!(!page.contains(support::KEY) && !page.contains(support::WRITE_KEY));
    shot(c, &shots, "destination").await;

    // Pause: deliveries stop (a new member stays pending); resume: it is delivered.
    fill(c, "form.pause input[name=reason]", "maintenance window").await;
    click(c, "form.pause button").await;
    assert!(text(c, ".flash.ok").await.to_lowercase().contains("paused"));
    assert!(
        text(c, ".operator-pause")
            .await
            .contains("maintenance window")
    );
    let (s, _) = h
        .post(
            "/v1/batch",
            &json!({"batch": [
                identify("m-carol", "u-carol", Some("carol@example.com"), "vip", true),
            ]}),
        )
        .await;
    assert_eq!(s, 200);
    wait_text(
        c,
        &format!("{base}/console/lookup?messageId=m-carol"),
        "tr[data-audience=vip]",
        "add",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let row = text(c, "tr[data-audience=vip]").await;
    assert!(
        row.contains("accepted") || row.contains("pending"),
        "not delivered while paused: {row}"
    );
    assert_eq!(
        h.list("vip").map(|l| l.len()),
        Some(2),
        "nothing is delivered while paused"
    );
    c.goto(&format!("{base}/console/destinations/prod"))
        .await
        .expect("goto");
    click(c, "form.action[action$='/resume'] button").await;
    assert!(
        text(c, ".flash.ok")
            .await
            .to_lowercase()
            .contains("resumed")
    );
    h.wait_list(
        "vip",
        &["bob@example.com", "carol@example.com", "jane@example.com"],
    )
    .await;

    // Look up a user, then the event that set its membership.
    click(c, "header nav a[href='/console/lookup']").await;
    fill(c, "#email", "jane@example.com").await;
    click(c, "form.user button").await;
    let row = text(c, "tr[data-audience=vip]").await;
    assert!(row.contains("delivered") && row.contains("m-jane"), "{row}");
    shot(c, &shots, "lookup-user").await;
    click(c, "tr[data-audience=vip] a.event").await;
    let row = text(c, "tr[data-audience=vip]").await;
    assert!(row.contains("delivered") && row.contains("add"), "{row}");
    shot(c, &shots, "lookup-event").await;

    // The rejected user: shown with Iterable's reason; fixed in the emulator (the user now
    // exists), retried from the console, and on the list.
    c.goto(&format!("{base}/console/destinations/prod/audiences/vip"))
        .await
        .expect("goto");
    let row = text(c, "tr[data-email='ghost@example.com']").await;
    assert!(row.contains("notFound"), "{row}");
    shot(c, &shots, "audience").await;
    h.emu
        .seed(&SeedRequest {
            project_id: None,
            users: vec![SeedUser {
                email: Some("ghost@example.com".into()),
                ..Default::default()
            }],
            lists: vec![],
        })
        .expect("seed");
    click(c, "tr[data-email='ghost@example.com'] form.action button").await;
    assert!(text(c, ".flash.ok").await.contains("again"));
    h.wait_list(
        "vip",
        &[
            "bob@example.com",
            "carol@example.com",
            "ghost@example.com",
            "jane@example.com",
        ],
    )
    .await;

    // Drift made by hand in Iterable (a member removed, a stranger added) is found by Verify
    // and mended by Repair, which asks first.
    let list_id = h
        .emu
        .state(false)
        .into_iter()
        .flat_map(|p| p.lists)
        .find(|l| l.name == "vip")
        .expect("the vip list")
        .id;
    by_hand(&h, "unsubscribe", list_id, "jane@example.com").await;
    by_hand(&h, "subscribe", list_id, "zed@example.com").await;
    click(c, "form.action[action$='/verify'] button").await;
    let flash = text(c, ".flash.ok").await;
    assert!(flash.contains("1 missing, 1 extra"), "{flash}");
    confirm_click(
        c,
        "form.action[action$='/repair'] button",
        "missing members",
        "Repaired",
    )
    .await;
    let verified = text(c, "main").await;
    assert!(verified.contains("Last verified"), "{verified}");
    h.wait_list(
        "vip",
        &[
            "bob@example.com",
            "carol@example.com",
            "ghost@example.com",
            "jane@example.com",
        ],
    )
    .await;

    // A storm of exits (three of the four members) is held by the mass-removal guard: the
    // page shows the hold, the list keeps its members; Release sends the removals.
    let exits: Vec<Value> = ["bob", "carol", "ghost"]
        .iter()
        .map(|n| {
            identify(
                &format!("m-{n}-leaves"),
                &format!("u-{n}"),
                Some(&format!("{n}@example.com")),
                "vip",
                false,
            )
        })
        .collect();
    let (s, _) = h.post("/v1/batch", &json!({ "batch": exits })).await;
    assert_eq!(s, 200);
    wait_text(
        c,
        &format!("{base}/console/destinations/prod/audiences/vip"),
        "section.hold",
        "Held removals",
    )
    .await;
    assert_eq!(
        c.find(Locator::Css("section.hold [data-held]"))
            .await
            .expect("held count")
            .attr("data-held")
            .await
            .expect("attr")
            .as_deref(),
        Some("3")
    );
    assert_eq!(
        h.list("vip").map(|l| l.len()),
        Some(4),
        "nothing removed while held"
    );
    shot(c, &shots, "audience-hold").await;
    confirm_click(
        c,
        "form.action[action$='/hold/release'] button",
        "held removals",
        "",
    )
    .await;
    h.wait_list("vip", &["jane@example.com"]).await;

    // Check the refused destination's key from its page: still refused, said so.
    c.goto(&format!("{base}/console/destinations/refused"))
        .await
        .expect("goto");
    click(c, "form.action[action$='/check-key'] button").await;
    assert!(text(c, ".flash.error").await.contains("401"));
    shot(c, &shots, "destination-paused").await;

    // Sign out: the pages need signing in again.
    click(c, "form.signout button").await;
    c.goto(&format!("{base}/console")).await.expect("goto");
    assert!(
        c.current_url()
            .await
            .expect("url")
            .path()
            .ends_with("/console/signin")
    );

    browser.close().await;
    eprintln!(
        "console browser test: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
