//! The HTTP front: the listeners (accepting and supervising connections is the `listener`
//! crate's), and the routes (Segment ingestion, webhook, admin status, health and metrics).

use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use destination::SettingName;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{
    AUTHORIZATION, CONNECTION, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue,
    TRANSFER_ENCODING,
};
use hyper::{Method, Request, Response, StatusCode};
use listener::{Body, Connections};
use serde_json::{Value, json};
use sync::metrics::{DestinationSnapshot, render, render_store};
use sync::{EventContent, NewEvent, Receipt};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::app::{AppState, DestinationRuntime};
use crate::ingest::{self, CallKind, IngestError, Item, Parsed};
use crate::intake::Intake;
use crate::status;

type Reply = Response<Full<Bytes>>;
type Req = Request<Body>;

/// Serves every endpoint on `listener` until `shutdown` turns true, then lets open connections
/// finish the request they are serving and returns when all are closed.
pub async fn serve(
    listener: TcpListener,
    conns: Arc<Connections>,
    state: Arc<AppState>,
    shutdown: watch::Receiver<bool>,
) {
    listener::serve(listener, conns, shutdown, move |stream, peer| {
        let state = state.clone();
        let handler = move |req: Req| {
            let state = state.clone();
            async move { Ok::<_, Infallible>(route(&state, peer.ip(), req).await) }
        };
        (stream, handler)
    })
    .await;
}

/// Serves only `GET /metrics`, to anyone who reaches `listener` (the `metrics_listen` address,
/// meant for a private network).
pub async fn serve_metrics(
    listener: TcpListener,
    conns: Arc<Connections>,
    state: Arc<AppState>,
    shutdown: watch::Receiver<bool>,
) {
    listener::serve(listener, conns, shutdown, move |stream, _peer| {
        let state = state.clone();
        let handler = move |req: Req| {
            let state = state.clone();
            async move { Ok::<_, Infallible>(route_metrics(&state, req).await) }
        };
        (stream, handler)
    })
    .await;
}

async fn route_metrics(state: &AppState, req: Req) -> Reply {
    let body_left = has_body(&req);
    let r = match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => metrics_reply(state).await,
        (_, "/metrics") => error_reply(
            405,
            format!("{} is not allowed on /metrics; use GET", req.method()),
        ),
        (m, p) => error_reply(
            404,
            format!("no such endpoint: {m} {p} (this address serves only GET /metrics)"),
        ),
    };
    if body_left { closing(r) } else { r }
}

fn reply(status: u16, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

pub(crate) fn json_reply(status: u16, v: &Value) -> Reply {
    reply(status, "application/json", v.to_string())
}

fn error_reply(status: u16, message: impl Into<String>) -> Reply {
    json_reply(
        status,
        &json!({"success": false, "message": message.into()}),
    )
}

fn ingest_error(e: &IngestError) -> Reply {
    let r = reply(e.status(), "application/json", e.body());
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
fn closing(mut r: Reply) -> Reply {
    r.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    r
}

/// The request declares a body (a non-zero length, or chunks).
fn has_body(req: &Req) -> bool {
    req.headers().contains_key(TRANSFER_ENCODING)
        || header(req, CONTENT_LENGTH).is_some_and(|n| n.trim() != "0")
}

async fn route(state: &AppState, peer: IpAddr, req: Req) -> Reply {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    // The ingestion endpoints read request bodies (and close the connection when they stop
    // early, see [`ingest_error`]); any other answer to a request with a body closes it.
    match (&method, segments.as_slice()) {
        (&Method::POST, ["v1", "batch"]) => ingest_tracking(state, CallKind::Batch, req).await,
        (&Method::POST, ["v1", "identify"]) => {
            ingest_tracking(state, CallKind::Identify, req).await
        }
        (&Method::POST, ["v1", "track"]) => ingest_tracking(state, CallKind::Track, req).await,
        (&Method::POST, ["v1", "webhook", name]) => {
            let name = (*name).to_string();
            ingest_webhook(state, &name, req).await
        }
        _ => {
            let body_left = has_body(&req);
            let r = answer(state, peer, req, &method, &path, &segments).await;
            if body_left { closing(r) } else { r }
        }
    }
}

/// The endpoints that read no body.
async fn answer(
    state: &AppState,
    peer: IpAddr,
    req: Req,
    method: &Method,
    path: &str,
    segments: &[&str],
) -> Reply {
    match (method, segments) {
        (&Method::GET, ["v1", "events", id]) => {
            if let Some(r) = admin_denied(state, peer, &req) {
                return r;
            }
            let id = percent_decode(id);
            let dest = query_param(req.uri().query(), "destination");
            status::event_reply(state, &id, dest.as_deref()).await
        }
        (&Method::GET, ["v1", "status"]) => {
            if let Some(r) = admin_denied(state, peer, &req) {
                return r;
            }
            status::status_reply(state).await
        }
        (&Method::GET, ["healthz"]) => reply(200, "text/plain; charset=utf-8", "ok\n"),
        (&Method::GET, ["readyz"]) => {
            if state.shutting_down.load(Ordering::SeqCst) {
                reply(503, "text/plain; charset=utf-8", "shutting down\n")
            } else if let Some(why) = state.store.write_failure() {
                let text = format!("not ready: the store cannot write: {why}\n");
                reply(503, "text/plain; charset=utf-8", text)
            } else {
                reply(200, "text/plain; charset=utf-8", "ready\n")
            }
        }
        (&Method::GET, ["metrics"]) => {
            if let Some(r) = admin_denied(state, peer, &req) {
                return r;
            }
            metrics_reply(state).await
        }
        (_, ["v1", "batch" | "identify" | "track"]) | (_, ["v1", "webhook", _]) => {
            error_reply(405, format!("{method} is not allowed on {path}; use POST"))
        }
        _ => error_reply(404, format!("no such endpoint: {method} {path}")),
    }
}

/// Admin endpoints (and `/metrics`) need `Authorization: Bearer <admin_token>`; without a
/// configured token they answer only to loopback clients.
fn admin_denied(state: &AppState, peer: IpAddr, req: &Req) -> Option<Reply> {
    match &state.config.admin_token {
        None if peer.is_loopback() => None,
        None => Some(error_reply(
            403,
            "admin endpoints answer only local clients unless admin_token is configured",
        )),
        Some(token) => match bearer_token(header(req, AUTHORIZATION)) {
            Some(g) if token.matches(g.as_bytes()) => None,
            Some(_) => Some(error_reply(401, "the admin token is wrong")),
            None => Some(error_reply(
                401,
                "admin endpoints need Authorization: Bearer <admin_token>",
            )),
        },
    }
}

/// The token of an `Authorization: Bearer <token>` header; the scheme is case-insensitive
/// (RFC 9110), and spaces or tabs around the token are ignored.
fn bearer_token(authorization: Option<&str>) -> Option<&str> {
    let (scheme, token) = authorization?.trim().split_once([' ', '\t'])?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then(|| percent_decode(v))
    })
}

/// Decodes `%XX` escapes and `+`; invalid escapes are kept as they are.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads the raw body within `limit` bytes (a gzipped body is never larger than its content,
/// so the decoded limit bounds the raw one too).
async fn read_body(req: Req, limit: usize) -> Result<Bytes, IngestError> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared
        && n > limit as u64
    {
        return Err(IngestError::too_large(n as usize, limit));
    }
    match Limited::new(req.into_body(), limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(IngestError::too_large(limit + 1, limit))
        }
        Err(e) => Err(IngestError::unreadable(e.to_string())),
    }
}

fn header(req: &Req, name: hyper::header::HeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// What every ingestion request carries, read once: the write key of its Authorization
/// header, the signature headers and the decoded body.
struct Received {
    header_key: Option<String>,
    /// `X-Segment-Signature`: Segment's newer header, over the whole body.
    segment_signature: Option<String>,
    /// `X-Signature`: over the body, or over the first event of a batched Webhooks (Actions)
    /// delivery (what Segment sends).
    signature: Option<String>,
    body: Bytes,
}

async fn receive(req: Req, limit: usize) -> Result<Received, IngestError> {
    let header_key = ingest::basic_auth_user(header(&req, AUTHORIZATION))?;
    let text = |name: &str| header_text(&req, name);
    let (segment_signature, signature) = (text("x-segment-signature"), text("x-signature"));
    let encoding = text(CONTENT_ENCODING.as_str());
    let raw = read_body(req, limit).await?;
    let body = ingest::decode_body(encoding.as_deref(), raw, limit)?;
    Ok(Received {
        header_key,
        segment_signature,
        signature,
        body,
    })
}

fn header_text(req: &Req, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn shutting_down(state: &AppState) -> Option<Reply> {
    state
        .shutting_down
        .load(Ordering::SeqCst)
        .then(|| error_reply(503, "the service is shutting down; retry"))
}

async fn ingest_tracking(state: &AppState, kind: CallKind, req: Req) -> Reply {
    if let Some(r) = shutting_down(state) {
        return r;
    }
    match tracking(state, kind, req).await {
        Ok((dest, parsed)) => store_items(state, dest, parsed).await,
        Err(e) => ingest_error(&e),
    }
}

async fn tracking(
    state: &AppState,
    kind: CallKind,
    req: Req,
) -> Result<(&DestinationRuntime, Parsed), IngestError> {
    let limits = &state.config.ingest;
    let limit = match kind {
        CallKind::Identify | CallKind::Track => limits.max_call_bytes,
        _ => limits.max_batch_bytes,
    };
    let r = receive(req, limit).await?;
    let parsed = ingest::parse_tracking(kind, &r.body, limits)?;
    let key = r
        .header_key
        .or_else(|| parsed.write_key.clone())
        .ok_or(IngestError::MissingWriteKey)?;
    let dest = state
        .destination_for_key(&key)
        .ok_or(IngestError::UnknownWriteKey)?;
    Ok((dest, parsed))
}

async fn ingest_webhook(state: &AppState, name: &str, req: Req) -> Reply {
    if let Some(r) = shutting_down(state) {
        return r;
    }
    match webhook(state, name, req).await {
        Ok((dest, parsed)) => store_items(state, dest, parsed).await,
        Err(e) => ingest_error(&e),
    }
}

/// A webhook's destination and credentials are checked after its body is read (a signature
/// covers the body). An unknown destination and a refused credential get the same answer
/// ([`IngestError::WebhookRefused`]), so that the endpoint does not tell which destinations
/// exist; only a signature genuine for the first event of a larger array gets its own answer
/// ([`IngestError::PartialSignature`]), since it takes the destination's secret to make one.
async fn webhook<'s>(
    state: &'s AppState,
    name: &str,
    req: Req,
) -> Result<(&'s DestinationRuntime, Parsed), IngestError> {
    let limits = &state.config.ingest;
    let r = receive(req, limits.max_batch_bytes).await?;
    let Some(dest) = state.destination(name) else {
        return Err(IngestError::WebhookRefused);
    };
    match webhook_authentic(dest, &r) {
        Ok(()) => Ok((dest, ingest::parse_webhook(&r.body, limits)?)),
        Err(e @ IngestError::PartialSignature) => Err(e),
        Err(_) => Err(IngestError::WebhookRefused),
    }
}

/// Whether a webhook's credentials cover its whole body:
/// - a write key in the Authorization header (HTTP Basic), when sent, must be one of the
///   destination's, and covers the whole body;
/// - with a shared secret, `X-Segment-Signature` (when sent; `X-Signature` is then not read)
///   must sign the whole body, else `X-Signature` (when sent) must sign the whole body or, as
///   Webhooks (Actions) signs a batch, its first event: that covers an array of that one event
///   only, and a longer array needs the write key as well ([`IngestError::PartialSignature`]).
///   The signature checked must match, even when a write key would do.
/// - without any credential, the request is refused.
fn webhook_authentic(dest: &DestinationRuntime, r: &Received) -> Result<(), IngestError> {
    let keyed = match &r.header_key {
        Some(k)
            if dest
                .config
                .write_keys
                .iter()
                .any(|w| w.matches(k.as_bytes())) =>
        {
            true
        }
        Some(_) => return Err(IngestError::UnknownWriteKey),
        None => false,
    };
    let Some(secret) = &dest.config.webhook_secret else {
        return if keyed {
            Ok(())
        } else {
            Err(IngestError::MissingWriteKey)
        };
    };
    let key = secret.expose().as_bytes();
    let signed = match (&r.segment_signature, &r.signature) {
        (Some(sig), _) => match ingest::verify_signature(key, &r.body, Some(sig))? {
            ingest::Signed::Body => ingest::Signed::Body,
            ingest::Signed::FirstEvent | ingest::Signed::SoleEvent => {
                return Err(IngestError::BadSignature);
            }
        },
        (None, Some(sig)) => ingest::verify_signature(key, &r.body, Some(sig))?,
        (None, None) if keyed => return Ok(()),
        (None, None) => return Err(IngestError::MissingSignature),
    };
    match signed {
        ingest::Signed::Body | ingest::Signed::SoleEvent => Ok(()),
        ingest::Signed::FirstEvent if keyed => Ok(()),
        ingest::Signed::FirstEvent => Err(IngestError::PartialSignature),
    }
}

/// Turns the items into store rows, stores them durably (grouped with concurrent requests),
/// counts them, and answers 200 only once they are on disk.
async fn store_items(state: &AppState, dest: &DestinationRuntime, parsed: Parsed) -> Reply {
    let now = state.now_ms();
    let req_no = state.request_seq.fetch_add(1, Ordering::Relaxed);
    let fallback = format!("invalid-{now}-{req_no}");
    let intake = Intake {
        config: &dest.config,
        planner: &dest.planner,
    };
    let events: Vec<NewEvent> = parsed
        .items
        .into_iter()
        .map(|item: Item| intake.to_new_event(item, now, &fallback))
        .collect();
    if events.is_empty() {
        return reply(200, "application/json", ingest::success_body());
    }
    // Ignored audience settings are counted once their event is stored (not for duplicates).
    let ignored: Vec<(usize, SettingName)> = events
        .iter()
        .enumerate()
        .flat_map(|(i, e)| e.ignored_settings.iter().map(move |s| (i, s.setting)))
        .collect();
    let kinds: Vec<u8> = events
        .iter()
        .map(|e| match &e.content {
            EventContent::Changes(_) => 0,
            EventContent::Rejected(_) => 1,
            EventContent::Skipped(_) => 2,
        })
        .collect();
    match state.store.accept(events).await {
        Ok(receipts) => {
            for (r, k) in receipts.iter().zip(kinds) {
                match (r, k) {
                    (Receipt::Duplicate { .. }, _) => dest.metrics.ingested_duplicate(),
                    (_, 0) => dest.metrics.ingested_accepted(),
                    (_, 1) => dest.metrics.ingested_rejected(),
                    _ => dest.metrics.ingested_skipped(),
                }
            }
            for (i, setting) in ignored {
                if matches!(receipts.get(i), Some(Receipt::Accepted { .. })) {
                    dest.metrics.setting_ignored(setting);
                }
            }
            reply(200, "application/json", ingest::success_body())
        }
        Err(e) => {
            eprintln!("iterable-lists: storing events failed: {e}");
            let mut r = error_reply(
                503,
                format!("the events could not be stored ({e}); nothing was kept, retry"),
            );
            r.headers_mut()
                .insert("retry-after", HeaderValue::from_static("1"));
            r
        }
    }
}

/// `GET /metrics`: the counters, the live states, and the store's figures from the snapshot
/// (at most a second old: polling costs the store nothing more).
async fn metrics_reply(state: &AppState) -> Reply {
    let figures = status::figures(state).await;
    // The store's gauges are left out if it cannot be read.
    let lists: Vec<&[sync::ListCounts]> = match &*figures {
        Ok(f) => f.iter().map(|f| f.lists.as_slice()).collect(),
        Err(_) => vec![&[]; state.destinations.len()],
    };
    let now = state.now_ms();
    let snaps: Vec<DestinationSnapshot<'_>> = state
        .destinations
        .iter()
        .zip(lists)
        .map(|(d, lists)| {
            let live = d.reconciler.as_ref().map(|r| r.state());
            DestinationSnapshot {
                name: &d.config.name,
                metrics: &d.metrics,
                paused: live.as_ref().is_some_and(|s| s.is_paused()),
                degraded: live.as_ref().is_some_and(|s| s.is_degraded()),
                lists,
                now_ms: now,
            }
        })
        .collect();
    let mut out = String::new();
    render(&mut out, &snaps);
    render_store(&mut out, state.store.write_failure().is_some());
    let _ = writeln!(out);
    reply(200, "text/plain; version=0.0.4; charset=utf-8", out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_and_percent_decoding() {
        assert_eq!(
            query_param(Some("a=1&destination=pr%6Fd"), "destination").as_deref(),
            Some("prod")
        );
        assert_eq!(query_param(Some("a=1"), "destination"), None);
        assert_eq!(query_param(None, "destination"), None);
        assert_eq!(percent_decode("a%2Fb+c%zz%"), "a/b c%zz%");
    }
}
