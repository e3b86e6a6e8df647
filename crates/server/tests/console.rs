//! The console's shell over real HTTP: sign-in with the admin token (wrong refused, limited;
//! right gives an HttpOnly, SameSite=Strict session cookie), pages only with a session, CSRF
//! tokens on forms, sign-out, the security headers, and the loopback rule without a token.

mod support;

use reqwest::redirect::Policy;
use reqwest::{Client, Response};
use support::Harness;

const TOKEN: &str = "console-test-token-0123456789";

fn client() -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("client")
}

fn header<'a>(r: &'a Response, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

async fn sign_in(h: &Harness, c: &Client, token: &str) -> Response {
    c.post(h.url("/console/signin"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={token}&next=%2Fconsole%2Flookup"))
        .send()
        .await
        .expect("send")
}

/// The session cookie's `name=value` from a sign-in answer.
fn cookie_of(r: &Response) -> String {
    header(r, "set-cookie")
        .split(';')
        .next()
        .expect("cookie")
        .to_string()
}

/// The CSRF token in a page's forms.
fn csrf_of(page: &str) -> String {
    let at = page.find(r#"name="csrf" value=""#).expect("csrf field") + 19;
    page[at..at + 64].to_string()
}

#[tokio::test]
async fn sign_in_sessions_csrf_and_headers() {
    let h = Harness::start_top(&format!("admin_token = \"{TOKEN}\""), "").await;
    let c = client();

    let r = c.get(h.url("/console")).send().await.expect("send");
    assert_eq!(r.status(), 303);
    assert_eq!(header(&r, "location"), "/console/signin?next=%2Fconsole");

    let r = c.get(h.url("/console/signin")).send().await.expect("send");
    assert_eq!(r.status(), 200);
    assert!(header(&r, "content-security-policy").starts_with("default-src 'none'"));
    assert!(header(&r, "content-security-policy").contains("frame-ancestors 'none'"));
    assert_eq!(header(&r, "x-content-type-options"), "nosniff");
    assert_eq!(header(&r, "referrer-policy"), "no-referrer");
    assert_eq!(header(&r, "cache-control"), "no-store");
    let page = r.text().await.expect("body");
    assert!(page.contains(r#"type="password" name="token""#), "{page}");

    let r = sign_in(&h, &c, "wrong").await;
    assert_eq!(r.status(), 401);
    assert!(header(&r, "set-cookie").is_empty());
    assert!(
        r.text()
            .await
            .expect("body")
            .contains("The admin token is wrong.")
    );

    let r = sign_in(&h, &c, TOKEN).await;
    assert_eq!(r.status(), 303);
    assert_eq!(header(&r, "location"), "/console/lookup");
    let set = header(&r, "set-cookie").to_string();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(set.contains(part), "{set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP: {set}");
    let cookie = cookie_of(&r);

    let r = c
        .get(h.url("/console"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "cache-control"), "no-store");
    let page = r.text().await.expect("body");
    assert!(page.contains("prod"), "{page}");
    let csrf = csrf_of(&page);

    // A stylesheet and a script of its own, nothing from elsewhere.
    let r = c
        .get(h.url("/console/assets/console.css"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    assert!(header(&r, "content-type").starts_with("text/css"));
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "{page}"
    );

    // Sign-out needs the token of the session.
    for body in [
        String::new(),
        "csrf=0000".into(),
        format!("csrf={}", "a".repeat(64)),
    ] {
        let r = c
            .post(h.url("/console/signout"))
            .header("cookie", &cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.clone())
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 403, "{body}");
    }
    let r = c
        .post(h.url("/console/signout"))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 303);
    assert!(header(&r, "set-cookie").contains("Max-Age=0"));
    let r = c
        .get(h.url("/console"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 303, "the session ended");

    // Behind a TLS proxy the cookie is Secure.
    let r = c
        .post(h.url("/console/signin"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-forwarded-proto", "https")
        .body(format!("token={TOKEN}"))
        .send()
        .await
        .expect("send");
    assert!(header(&r, "set-cookie").contains("; Secure"));

    // A made-up cookie is no session.
    let r = c
        .get(h.url("/console/lookup"))
        .header("cookie", format!("il_console={}", "0".repeat(64)))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 303);
}

#[tokio::test]
async fn wrong_tokens_are_limited() {
    let h = Harness::start_top(&format!("admin_token = \"{TOKEN}\""), "").await;
    let c = client();
    for i in 0..5 {
        assert_eq!(sign_in(&h, &c, "guess").await.status(), 401, "try {i}");
    }
    let r = sign_in(&h, &c, TOKEN).await;
    assert_eq!(r.status(), 429, "even the right token waits");
    assert!(
        header(&r, "retry-after")
            .parse::<u64>()
            .is_ok_and(|s| (1..=60).contains(&s))
    );
}

#[tokio::test]
async fn without_a_token_loopback_signs_in_with_the_button() {
    let h = Harness::start("").await;
    let c = client();
    let page = c
        .get(h.url("/console/signin"))
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("body");
    assert!(page.contains("No admin_token is configured"), "{page}");
    assert!(!page.contains(r#"name="token""#), "{page}");
    let r = c
        .post(h.url("/console/signin"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("next=%2Fconsole")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 303);
    let r = c
        .get(h.url("/console"))
        .header("cookie", cookie_of(&r))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
}

async fn signed_in(h: &Harness, c: &Client) -> String {
    let r = sign_in(h, c, TOKEN).await;
    assert_eq!(r.status(), 303);
    cookie_of(&r)
}

async fn page(h: &Harness, c: &Client, cookie: &str, path: &str) -> (u16, String) {
    let r = c
        .get(h.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .expect("send");
    (r.status().as_u16(), r.text().await.expect("body"))
}

async fn post_form(h: &Harness, c: &Client, cookie: &str, path: &str, body: &str) -> Response {
    c.post(h.url(path))
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_string())
        .send()
        .await
        .expect("send")
}

fn form_value(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[tokio::test]
async fn a_snapshot_is_previewed_then_applied() {
    let h = Harness::start_top(&format!("admin_token = \"{TOKEN}\""), "").await;
    let c = client();
    let (s, _) = h
        .post(
            "/v1/batch",
            &serde_json::json!({"batch": [
                support::identify("m1", "u1", Some("jane@example.com"), "vip", true),
                support::identify("m2", "u2", Some("bob@example.com"), "vip", true),
            ]}),
        )
        .await;
    assert_eq!(s, 200);
    h.wait_list("vip", &["bob@example.com", "jane@example.com"])
        .await;
    let cookie = signed_in(&h, &c).await;
    let audience = "/console/destinations/prod/audiences/vip";
    let (status, html) = page(&h, &c, &cookie, audience).await;
    assert_eq!(status, 200);
    assert!(html.contains("Preview (dry run)"), "{html}");
    let csrf = csrf_of(&html);
    // Bob leaves (half the audience: more than the guard allows, so the operator says so).
    let members = format!(
        "{}&allow_mass_removal=true",
        form_value("email,userId\njane@example.com,u1\nnew@example.com,u3\n")
    );

    // Without the token: refused, nothing read.
    let r = post_form(
        &h,
        &c,
        &cookie,
        &format!("{audience}/snapshot"),
        &format!("mode=apply&members={members}"),
    )
    .await;
    assert_eq!(r.status(), 403);

    // The preview says what would change and changes nothing.
    let r = post_form(
        &h,
        &c,
        &cookie,
        &format!("{audience}/snapshot"),
        &format!("csrf={csrf}&mode=preview&members={members}"),
    )
    .await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.expect("body");
    assert!(html.contains(r#"data-adds="1""#), "{html}");
    assert!(html.contains(r#"data-removes="1""#), "{html}");
    assert!(html.contains("Apply this snapshot"), "{html}");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        h.list("vip").map(|l| l.len()),
        Some(2),
        "a preview applies nothing"
    );

    // Apply: back to the audience page with the outcome, and the list follows.
    let r = post_form(
        &h,
        &c,
        &cookie,
        &format!("{audience}/snapshot"),
        &format!("csrf={csrf}&mode=apply&members={members}"),
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(header(&r, "location"), audience);
    let (_, html) = page(&h, &c, &cookie, audience).await;
    assert!(
        html.contains("Snapshot applied: 1 to add, 1 to remove"),
        "{html}"
    );
    h.wait_list("vip", &["jane@example.com", "new@example.com"])
        .await;
}

#[tokio::test]
async fn actions_need_the_session_and_its_csrf_token() {
    let h = Harness::start_top(&format!("admin_token = \"{TOKEN}\""), "").await;
    let c = client();
    let cookie = signed_in(&h, &c).await;
    let other = signed_in(&h, &c).await;
    let (_, html) = page(&h, &c, &other, "/console/destinations/prod").await;
    let other_csrf = csrf_of(&html);
    let pause = "/console/destinations/prod/pause";

    // No session: to the sign-in page. Another session's token, or none: 403.
    let r = post_form(&h, &c, "x=1", pause, &format!("csrf={other_csrf}")).await;
    assert_eq!(r.status(), 303);
    assert_eq!(header(&r, "location"), "/console/signin");
    for body in [String::new(), format!("csrf={other_csrf}&reason=x")] {
        let r = post_form(&h, &c, &cookie, pause, &body).await;
        assert_eq!(r.status(), 403, "{body}");
    }
    let (_, html) = page(&h, &c, &cookie, "/console/destinations/prod").await;
    assert!(!html.contains("operator-pause"), "not paused: {html}");

    // With its own token: done, back to the page, said once.
    let csrf = csrf_of(&html);
    let r = post_form(
        &h,
        &c,
        &cookie,
        pause,
        &format!("csrf={csrf}&reason=deploy"),
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(header(&r, "location"), "/console/destinations/prod");
    let (_, html) = page(&h, &c, &cookie, "/console/destinations/prod").await;
    assert!(html.contains("flash ok"), "{html}");
    assert!(
        html.contains("operator-pause") && html.contains("deploy"),
        "{html}"
    );
    let (_, html) = page(&h, &c, &cookie, "/console/destinations/prod").await;
    assert!(!html.contains("flash ok"), "the message is shown once");

    // An action on what does not exist: said in the flash, not a crash.
    let r = post_form(
        &h,
        &c,
        &cookie,
        "/console/destinations/prod/audiences/none/retry",
        &format!("csrf={csrf}&all=1"),
    )
    .await;
    assert_eq!(r.status(), 303);
    let (_, html) = page(&h, &c, &cookie, "/console/destinations/prod/audiences/none").await;
    assert!(
        html.contains("flash error") || html.contains("Not found"),
        "{html}"
    );

    // The rejected users' CSV, and an unknown page.
    let r = c
        .get(h.url("/console/destinations/prod/audiences/none/rejected.csv"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 404);
    let (status, _) = page(&h, &c, &cookie, "/console/nothing/here").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_user_in_many_audiences_is_shown_a_page_at_a_time() {
    let h = Harness::start_top(&format!("admin_token = \"{TOKEN}\""), "").await;
    let c = client();
    let events: Vec<serde_json::Value> = (0..101)
        .map(|i| {
            support::identify(
                &format!("m{i}"),
                "u-many",
                Some("many@example.com"),
                &format!("aud_{i:03}"),
                true,
            )
        })
        .collect();
    let (s, v) = h
        .post("/v1/batch", &serde_json::json!({ "batch": events }))
        .await;
    assert_eq!(s, 200, "{v}");
    let cookie = signed_in(&h, &c).await;
    let (status, html) = page(&h, &c, &cookie, "/console/lookup?userId=u-many").await;
    assert_eq!(status, 200);
    assert_eq!(html.matches("<tr data-audience=").count(), 100);
    let at = html.find(r#"<a class="next" href=""#).expect("a next page") + 22;
    let next = html[at..]
        .split('"')
        .next()
        .expect("href")
        .replace("&amp;", "&");
    assert!(
        next.starts_with("/console/lookup?userId=u-many&after="),
        "{next}"
    );
    let (_, html) = page(&h, &c, &cookie, &next).await;
    assert_eq!(html.matches("<tr data-audience=").count(), 1, "{html}");
    assert!(html.contains(r#"data-audience="aud_100""#), "{html}");
    assert!(!html.contains("Next page"), "{html}");
}
