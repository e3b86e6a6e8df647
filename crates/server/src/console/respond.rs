//! The console's answers: an HTML page with its status, a redirect after a POST (303, so the
//! browser GETs the page again: POST-redirect-GET), the session cookie, and the headers every
//! console answer carries (a strict Content-Security-Policy, no sniffing, no referrer, no
//! caching of pages).

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper::StatusCode;
use hyper::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, HeaderValue, LOCATION, REFERRER_POLICY,
    SET_COOKIE, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use maud::Markup;

use super::request::COOKIE_NAME;
use super::sessions::MAX_AGE_MS;

/// The console's Content-Security-Policy: its own stylesheet and script only, no inline script
/// or style, images only from itself or `data:`, forms posting only to itself, never framed.
pub(crate) const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; \
     img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A page with its status.
pub(crate) fn html(status: u16, page: Markup) -> Response {
    let mut r = (
        [(CONTENT_TYPE, "text/html; charset=utf-8")],
        page.into_string(),
    )
        .into_response();
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r
}

/// `303 See Other` to a console path.
pub(crate) fn redirect(location: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(LOCATION, v);
    }
    r
}

/// Sets the session cookie (`id`), or clears it (`None`): `HttpOnly` (no script reads it),
/// `SameSite=Strict` (no other site's page sends it), `Path=/console`, and `Secure` when the
/// browser came over TLS.
pub(crate) fn set_cookie(r: &mut Response, id: Option<&str>, secure: bool) {
    let (value, max_age) = match id {
        Some(id) => (id, MAX_AGE_MS / 1000),
        None => ("", 0),
    };
    let secure = if secure { "; Secure" } else { "" };
    let cookie = format!(
        "{COOKIE_NAME}={value}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().append(SET_COOKIE, v);
    }
}

/// Adds the security headers to every console answer; pages (all but the assets, which set
/// their own caching) are not stored by the browser or a proxy.
pub(crate) async fn security_headers(req: Request, next: Next) -> Response {
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(CACHE_CONTROL) {
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}
