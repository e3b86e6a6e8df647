//! Replies and errors: the JSON error body (`{"success":false,...}`), ingestion errors with
//! their status, the answers to unknown paths and wrong methods, and `Connection: close` on any
//! reply that leaves a request body unread.

use axum::extract::{OriginalUri, Request};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{
    CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue, TRANSFER_ENCODING,
    WWW_AUTHENTICATE,
};
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use crate::ingest::IngestError;

/// Every handler's answer.
pub(crate) type Reply = Response<Full<Bytes>>;

pub(crate) fn reply(status: u16, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

pub(crate) fn json_reply(status: u16, v: &Value) -> Reply {
    reply(status, "application/json", v.to_string())
}

pub(crate) fn error_reply(status: u16, message: impl Into<String>) -> Reply {
    json_reply(
        status,
        &json!({"success": false, "message": message.into()}),
    )
}

/// `503` with `Retry-After: 1`: too many requests wait for the paced endpoints.
pub(crate) fn busy() -> Reply {
    let mut r = error_reply(
        503,
        "too many requests for /metrics and /v1/status at once; retry in a second",
    );
    r.headers_mut().insert(
        hyper::header::RETRY_AFTER,
        hyper::header::HeaderValue::from_static("1"),
    );
    r
}

pub(crate) fn ingest_error(e: &IngestError) -> Reply {
    let mut r = reply(e.status(), "application/json", e.body());
    if let Some(challenge) = e.www_authenticate() {
        r.headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    }
    match e {
        // Refused before its body was read to the end (a declared size over the limit, or a
        // body cut short): the connection cannot carry another request.
        IngestError::BodyTooLarge { .. } | IngestError::Unreadable(_) => closing(r),
        _ => r,
    }
}

/// The reply with `Connection: close`, for a request whose body is left unread: the server
/// closes the connection after it, and says so, so that a client does not send its next
/// request on it (which would fail with a broken pipe).
pub(crate) fn closing<B>(mut r: Response<B>) -> Response<B> {
    r.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    r
}

/// Marks the reply of a handler that reads its request's body: it says itself whether the
/// body was left unread ([`ingest_error`]), so [`close_if_body_left`] leaves it as it is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyHandled;

pub(crate) fn body_handled(mut r: Reply) -> Reply {
    r.extensions_mut().insert(BodyHandled);
    r
}

/// The request declares a body (a non-zero length, or chunks).
fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(TRANSFER_ENCODING)
        || headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|n| n.trim() != "0")
}

/// Middleware over every route: the reply to a request that declares a body goes with
/// `Connection: close` unless its handler reads bodies ([`BodyHandled`]). hyper closes a
/// connection whose request body was not read, but does not say so in the reply.
pub(crate) async fn close_if_body_left(req: Request, next: Next) -> Response {
    let body_left = has_body(req.headers());
    let r = next.run(req).await;
    if body_left && r.extensions().get::<BodyHandled>().is_none() {
        closing(r)
    } else {
        r
    }
}

/// The path as the client sent it (before trailing slashes are trimmed for routing).
fn sent_path(req: &Request) -> &str {
    req.extensions()
        .get::<OriginalUri>()
        .map_or_else(|| req.uri().path(), |u| u.0.path())
}

/// 404 for any path (or method) the service does not serve.
pub(crate) async fn not_found(req: Request) -> Reply {
    error_reply(
        404,
        format!("no such endpoint: {} {}", req.method(), sent_path(&req)),
    )
}

/// 405 for an ingestion path with another method than POST.
pub(crate) async fn post_only(req: Request) -> Reply {
    not_allowed(req.method(), sent_path(&req), Method::POST)
}

/// 405 on the metrics address, for `/metrics` with another method than GET.
pub(crate) async fn metrics_get_only(req: Request) -> Reply {
    not_allowed(req.method(), sent_path(&req), Method::GET)
}

fn not_allowed(method: &Method, path: &str, allowed: Method) -> Reply {
    error_reply(
        405,
        format!("{method} is not allowed on {path}; use {allowed}"),
    )
}

/// 404 on the metrics address, which serves only `GET /metrics`.
pub(crate) async fn metrics_not_found(req: Request) -> Reply {
    error_reply(
        404,
        format!(
            "no such endpoint: {} {} (this address serves only GET /metrics)",
            req.method(),
            sent_path(&req)
        ),
    )
}
