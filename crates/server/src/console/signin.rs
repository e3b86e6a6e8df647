//! Signing in and out. `POST /console/signin` takes the admin token from a form, compares it
//! in constant time (as the admin API does), and on success starts a session and sets its
//! cookie; failures are limited per client and in all ([`super::throttle`]), and each waits a
//! moment before its answer. With no `admin_token` configured, a loopback client signs in with
//! the button alone. `POST /console/signout` ends the session (CSRF-checked).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::response::Response;
use hyper::header::{HeaderValue, RETRY_AFTER};
use maud::html;

use super::Console;
use super::guard::{Operator, forbidden_csrf, forbidden_remote, peer_of, reachable};
use super::layout::{Nav, message_page, page};
use super::request::{over_tls, read_form, session_cookie};
use super::respond::{html, redirect, set_cookie};
use super::sessions::Flash;

/// How long a wrong token waits for its answer.
const WRONG_TOKEN_DELAY: Duration = Duration::from_millis(300);

/// `GET /console/signin[?next=PATH]`.
pub(crate) async fn form(State(console): State<Arc<Console>>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    let peer = peer_of(&parts);
    if !reachable(&console, peer) {
        return forbidden_remote();
    }
    let next = crate::http::query_param(parts.uri.query(), "next");
    let now = console.app.now_ms();
    if session_cookie(&parts.headers)
        .is_some_and(|id| console.sessions.find(id, now, false).is_some())
    {
        return redirect(safe_next(next.as_deref()));
    }
    html(200, signin_page(&console, next.as_deref(), None))
}

/// `POST /console/signin`: the token (field `token`) and where to go next (`next`).
pub(crate) async fn submit(State(console): State<Arc<Console>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let peer = peer_of(&parts);
    if !reachable(&console, peer) {
        return forbidden_remote();
    }
    let now = console.app.now_ms();
    if let Err(wait) = console.throttle.check(peer, now) {
        let mut r = html(
            429,
            message_page(
                "Too many sign-in attempts",
                &format!("Too many wrong tokens were tried; wait {wait} s and try again."),
                None,
            ),
        );
        r.headers_mut().insert(RETRY_AFTER, HeaderValue::from(wait));
        return r;
    }
    let form = match read_form(body).await {
        Ok(f) => f,
        Err(e) => return html(400, message_page("Bad request", &e.to_string(), None)),
    };
    let next = form.get("next").map(str::to_owned);
    let accepted = match &console.app.config.admin_token {
        // `reachable` let only loopback clients this far.
        None => true,
        Some(token) => token.matches(form.get("token").unwrap_or_default().as_bytes()),
    };
    if !accepted {
        console.throttle.failed(peer, now);
        tracing::warn!(target: "console", peer = %peer, "console sign-in with a wrong token");
        tokio::time::sleep(WRONG_TOKEN_DELAY).await;
        return html(
            401,
            signin_page(&console, next.as_deref(), Some("The admin token is wrong.")),
        );
    }
    let (id, session) = match console.sessions.create(now) {
        Ok(s) => s,
        Err(e) => return html(500, message_page("Sign-in failed", &e.to_string(), None)),
    };
    tracing::info!(target: "console", session = %session.label, peer = %peer, "console sign-in");
    let mut r = redirect(safe_next(next.as_deref()));
    set_cookie(&mut r, Some(&id), over_tls(&parts.headers));
    r
}

/// `POST /console/signout`.
pub(crate) async fn signout(
    State(console): State<Arc<Console>>,
    op: Operator,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let form = match read_form(body).await {
        Ok(f) => f,
        Err(e) => return html(400, message_page("Bad request", &e.to_string(), None)),
    };
    if !op.csrf_ok(&form) {
        return forbidden_csrf();
    }
    console.sessions.remove(&op.id);
    tracing::info!(target: "console", session = %op.session.label, peer = %op.peer, "console sign-out");
    let mut r = redirect("/console/signin");
    set_cookie(&mut r, None, over_tls(&parts.headers));
    r
}

/// Where to go after sign-in: a console path only (never another site: `//host`, `/\host`).
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if (n == "/console" || n.starts_with("/console/") || n.starts_with("/console?"))
                && !n.contains('\\')
                && !n.contains("//") =>
        {
            n
        }
        _ => "/console",
    }
}

fn signin_page(console: &Console, next: Option<&str>, error: Option<&str>) -> maud::Markup {
    let open = console.app.config.admin_token.is_none();
    let error = error.map(|text| Flash {
        ok: false,
        text: text.into(),
    });
    page(
        "Sign in",
        Nav::None,
        None,
        &[],
        html! {
            @if let Some(f) = &error {
                p.flash.error role="alert" { (f.text) }
            }
            form.signin method="post" action="/console/signin" {
                input type="hidden" name="next" value=(safe_next(next));
                @if open {
                    p { "No admin_token is configured: the console answers this machine only." }
                } @else {
                    label for="token" { "Admin token" }
                    input #token type="password" name="token" autocomplete="current-password" required autofocus;
                }
                button type="submit" { "Sign in" }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn only_console_paths_are_followed() {
        assert_eq!(
            safe_next(Some("/console/lookup?q=a")),
            "/console/lookup?q=a"
        );
        assert_eq!(safe_next(Some("/console")), "/console");
        for bad in [
            "//evil.example",
            "/console//evil",
            "https://x",
            "/v1/status",
            "/console\\x",
            "/consolex",
        ] {
            assert_eq!(safe_next(Some(bad)), "/console", "{bad}");
        }
        assert_eq!(safe_next(None), "/console");
    }
}
