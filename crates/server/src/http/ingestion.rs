//! The ingestion endpoints: Segment's tracking API (`POST /v1/batch`, `/v1/identify`,
//! `/v1/track`) and webhook (`POST /v1/webhook/{destination}`). Each reads its body within its
//! limit, has it decoded and parsed by [`crate::ingest`], finds the destination, and answers
//! 200 only once the events are stored.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{Request, State};
use bytes::Bytes;
use destination::SettingName;
use http_body_util::{BodyExt, Limited};
use hyper::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_LENGTH, HeaderName, HeaderValue};
use sync::{EventContent, NewEvent, Receipt};

use crate::app::{AppState, DestinationRuntime};
use crate::ingest::{self, CallKind, IngestError, Parsed};
use crate::intake::Intake;

use super::params::last_segment;
use super::reply::{Reply, body_handled, error_reply, ingest_error, reply};
use super::webhook::webhook_authentic;

/// `POST /v1/batch`.
pub(crate) async fn batch(State(state): State<Arc<AppState>>, req: Request) -> Reply {
    body_handled(ingest_tracking(&state, CallKind::Batch, req).await)
}

/// `POST /v1/identify`.
pub(crate) async fn identify(State(state): State<Arc<AppState>>, req: Request) -> Reply {
    body_handled(ingest_tracking(&state, CallKind::Identify, req).await)
}

/// `POST /v1/track`.
pub(crate) async fn track(State(state): State<Arc<AppState>>, req: Request) -> Reply {
    body_handled(ingest_tracking(&state, CallKind::Track, req).await)
}

/// `POST /v1/webhook/{destination}`. The destination's name is taken as sent (not decoded):
/// names are made of characters that need no escape.
pub(crate) async fn webhook(State(state): State<Arc<AppState>>, req: Request) -> Reply {
    let name = last_segment(req.uri()).to_string();
    body_handled(ingest_webhook(&state, &name, req).await)
}

/// Reads the raw body within `limit` bytes (a gzipped body is never larger than its content,
/// so the decoded limit bounds the raw one too).
async fn read_body(req: Request, limit: usize) -> Result<Bytes, IngestError> {
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

/// What every ingestion request carries, read once: the write key of its Authorization
/// header, the signature headers and the decoded body.
pub(crate) struct Received {
    pub header_key: Option<String>,
    /// `X-Segment-Signature`: Segment's newer header, over the whole body.
    pub segment_signature: Option<String>,
    /// `X-Signature`: over the body, or over the first event of a batched Webhooks (Actions)
    /// delivery (what Segment sends).
    pub signature: Option<String>,
    pub body: Bytes,
}

async fn receive(req: Request, limit: usize) -> Result<Received, IngestError> {
    // Read before the body; a borrow of the request (whose body is not `Sync`) must not live
    // across an await.
    let (header_key, segment_signature, signature, encoding) = {
        let text = |name: &str| header_text(&req, name);
        (
            ingest::basic_auth_user(header(&req, AUTHORIZATION)),
            text("x-segment-signature"),
            text("x-signature"),
            text(CONTENT_ENCODING.as_str()),
        )
    };
    // An unreadable Authorization header is answered once the body is read: a body left
    // unread would have the connection closed under the answer (the client's next request on
    // it failing with a broken pipe).
    let raw = read_body(req, limit).await?;
    let header_key = header_key?;
    let body = ingest::decode_body(encoding.as_deref(), raw, limit)?;
    Ok(Received {
        header_key,
        segment_signature,
        signature,
        body,
    })
}

fn header(req: &Request, name: HeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

fn header_text(req: &Request, name: &str) -> Option<String> {
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

async fn ingest_tracking(state: &AppState, kind: CallKind, req: Request) -> Reply {
    if let Some(r) = shutting_down(state) {
        return r;
    }
    match tracking(state, kind, req).await {
        Ok((dest, parsed)) => store_items(state, dest, parsed).await,
        Err(e) => ingest_error(&e),
    }
}

/// A tracking call's decision, in order: its Authorization header and body, read within the
/// endpoint's limit and decoded; the body's shape; its write key (the header's, else the
/// body's); the destination that key belongs to.
async fn tracking(
    state: &AppState,
    kind: CallKind,
    req: Request,
) -> Result<(&DestinationRuntime, Parsed), IngestError> {
    let limits = &state.config.ingest;
    let r = receive(req, kind.max_body_bytes(limits)).await?;
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

async fn ingest_webhook(state: &AppState, name: &str, req: Request) -> Reply {
    if let Some(r) = shutting_down(state) {
        return r;
    }
    match webhook_request(state, name, req).await {
        Ok((dest, parsed)) => store_items(state, dest, parsed).await,
        Err(e) => ingest_error(&e),
    }
}

/// A webhook's destination and credentials are checked after its body is read (a signature
/// covers the body). An unknown destination and a refused credential get the same answer
/// ([`IngestError::WebhookRefused`]), so that the endpoint does not tell which destinations
/// exist; only a signature genuine for the first event of a larger array gets its own answer
/// ([`IngestError::PartialSignature`]), since it takes the destination's secret to make one.
async fn webhook_request<'s>(
    state: &'s AppState,
    name: &str,
    req: Request,
) -> Result<(&'s DestinationRuntime, Parsed), IngestError> {
    let limits = &state.config.ingest;
    let r = receive(req, CallKind::Webhook.max_body_bytes(limits)).await?;
    let Some(dest) = state.destination(name) else {
        return Err(IngestError::WebhookRefused);
    };
    match webhook_authentic(dest, &r) {
        Ok(()) => Ok((dest, ingest::parse_webhook(&r.body, limits)?)),
        Err(e @ IngestError::PartialSignature) => Err(e),
        Err(_) => Err(IngestError::WebhookRefused),
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
    let events: Vec<NewEvent> = intake.to_new_events(parsed.items, now, &fallback);
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
            tracing::error!(error = %e, "storing events failed; answered 503");
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
