//! The HTTP side of one listener, on axum: `/_emulator` calls go to `inspect`; every other call
//! is an Iterable API call, which gets the configured faults (latency, a body limit, dropped or
//! reset connections, injected 500/503/429), then `api` (which routes it as Iterable does:
//! an unknown path is Iterable's HTML 404, and rate limits are counted per endpoint), and is
//! logged. Every answer carries the headers Iterable's do.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Extension, Request, State};
use axum::response::IntoResponse;
use axum::routing::any;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Response;
use hyper::header::{
    CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HOST, HeaderMap, HeaderValue, RETRY_AFTER, SERVER,
    VARY,
};

use crate::config::{Faults, Region};
use crate::ratelimit::Decision;
use crate::reqlog::LoggedRequest;
use crate::server::{HARD_BODY_LIMIT, Reply, Shared, lock};
use crate::{api, inspect};

type Answer = Result<Response<Full<Bytes>>, ConnectionFault>;

/// What a listener's handlers share: the emulator, and the region the listener serves.
#[derive(Clone)]
struct Listener {
    shared: Arc<Shared>,
    region: Region,
}

/// The connection a request came on, put in its extensions by the accept loop.
#[derive(Clone)]
pub(crate) struct Client {
    pub peer: IpAddr,
    /// Set to end the connection with a reset instead of a clean close.
    pub reset: Arc<AtomicBool>,
}

/// Returned by a handler to make hyper drop the connection without answering: the accept loop
/// turns a response carrying it into an error of the connection's service.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("connection {0} injected by the emulator")]
pub(crate) struct ConnectionFault(pub &'static str);

impl IntoResponse for ConnectionFault {
    fn into_response(self) -> axum::response::Response {
        let mut r = axum::response::Response::default();
        r.extensions_mut().insert(self);
        r
    }
}

/// The routes of a listener serving `region`.
pub(crate) fn router(shared: Arc<Shared>, region: Region) -> Router {
    Router::new()
        .route("/_emulator", any(inspection))
        .route("/_emulator/", any(inspection))
        .route("/_emulator/{*rest}", any(inspection))
        .fallback(api_call)
        .with_state(Listener { shared, region })
}

/// The region a request was sent to: the Host header wins (`api.eu.iterable.com`), else the
/// listener's own region.
fn request_region(host: Option<&HeaderValue>, listener: Region) -> Region {
    match host.and_then(|h| h.to_str().ok()) {
        Some(h) if h.starts_with("api.eu.iterable.com") => Region::Eu,
        Some(h) if h.starts_with("api.iterable.com") => Region::Us,
        _ => listener,
    }
}

/// A request's body, read within `limit` bytes.
enum BodyRead {
    Ok(Bytes),
    TooLarge,
    Broken,
}

async fn read_body(req: Request, limit: usize) -> BodyRead {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return BodyRead::TooLarge;
    }
    match Limited::new(req.into_body(), limit).collect().await {
        Ok(c) => BodyRead::Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => BodyRead::TooLarge,
        Err(_) => BodyRead::Broken,
    }
}

fn too_large(limit: usize) -> Reply {
    crate::wire::ApiError::new(
        413,
        "BatchTooLarge",
        format!("(batch request) Payload Too Large: the body exceeds {limit} bytes"),
        serde_json::Value::Null,
    )
    .into()
}

/// `/_emulator/...`: inspection and control, with no faults and no log.
async fn inspection(State(l): State<Listener>, req: Request) -> Answer {
    let shared = &*l.shared;
    let call = Call::of(shared, &req);
    match read_body(req, HARD_BODY_LIMIT).await {
        BodyRead::Ok(body) => {
            let reply = inspect::handle(shared, &call.method, &call.path, call.query(), &body);
            Ok(respond(shared, reply, call.start))
        }
        BodyRead::TooLarge => Ok(closing(respond(
            shared,
            too_large(HARD_BODY_LIMIT),
            call.start,
        ))),
        BodyRead::Broken => Err(ConnectionFault("closed")),
    }
}

/// An Iterable API call, with the configured faults.
async fn api_call(
    State(l): State<Listener>,
    Extension(client): Extension<Client>,
    req: Request,
) -> Answer {
    let shared = &*l.shared;
    let call = Call::of(shared, &req);
    let region = request_region(req.headers().get(HOST), l.region);
    let decision = api::limit_on_arrival(
        shared,
        region,
        &call.method,
        &call.path,
        call.query(),
        req.headers(),
    );
    let faults = lock(&shared.faults).clone();
    let delay = faults.latency_ms + shared.rng.up_to(faults.latency_jitter_ms);
    if delay > 0 {
        shared.clock.sleep(Duration::from_millis(delay)).await;
    }
    let headers = req.headers().clone();
    let limit = faults
        .max_body_bytes
        .unwrap_or(HARD_BODY_LIMIT)
        .min(HARD_BODY_LIMIT);
    let body = match read_body(req, limit).await {
        BodyRead::Ok(b) => b,
        BodyRead::TooLarge => {
            let reply = too_large(limit);
            call.log(shared, None, reply.status, &Bytes::new(), None);
            return Ok(closing(respond(shared, reply, call.start)));
        }
        BodyRead::Broken => return Err(ConnectionFault("closed")),
    };
    let conn_fault = ConnFault::draw(shared, &faults);
    if let Some(f) = conn_fault.filter(|f| !f.after) {
        return Err(call.abort(shared, &client, f.name, None, &body));
    }
    let (reply, project, fault) = answer(
        shared, &faults, region, &client, &call, &headers, &body, decision,
    );
    if let Some(f) = conn_fault {
        return Err(call.abort(shared, &client, f.name, project, &body));
    }
    call.log(shared, project, reply.status, &body, fault);
    Ok(respond(shared, reply, call.start))
}

/// A dropped or reset connection, drawn for a call.
#[derive(Clone, Copy)]
struct ConnFault {
    name: &'static str,
    /// Strikes after the call took effect (the lost-response case a client must survive
    /// without duplicating work), else before.
    after: bool,
}

impl ConnFault {
    /// Connection faults strike before or after the request takes effect, half each.
    fn draw(shared: &Shared, faults: &Faults) -> Option<Self> {
        let rng = &shared.rng;
        let name = if rng.chance(faults.drop_connection) {
            "drop"
        } else if rng.chance(faults.reset_connection) {
            "reset"
        } else {
            return None;
        };
        Some(Self {
            name,
            after: rng.chance(0.5),
        })
    }
}

/// The call's answer: an injected error, or the API's own. With the project it was for, when
/// known, and the fault injected.
#[allow(clippy::too_many_arguments)]
fn answer(
    shared: &Shared,
    faults: &Faults,
    region: Region,
    client: &Client,
    call: &Call,
    headers: &HeaderMap,
    body: &Bytes,
    decision: Option<Decision>,
) -> (Reply, Option<u64>, Option<&'static str>) {
    let rng = &shared.rng;
    if rng.chance(faults.error_500) {
        (api::generic_error(), None, Some("500"))
    } else if rng.chance(faults.error_503) {
        (api::unavailable(), None, Some("503"))
    } else if rng.chance(faults.error_429) {
        let mut r = api::rate_limited(&call.path, None);
        if shared.retry_after {
            r.retry_after = Some(1);
        }
        (r, None, Some("429"))
    } else {
        let (reply, project) = api::handle(
            shared,
            region,
            client.peer,
            &call.method,
            &call.path,
            call.query(),
            headers,
            body,
            decision,
        );
        (reply, project, None)
    }
}

/// What the log and the answer need of a request, taken when it arrives.
struct Call {
    /// The clock's nanoseconds on arrival.
    start: u64,
    method: String,
    path: String,
    query: Option<String>,
}

impl Call {
    fn of(shared: &Shared, req: &Request) -> Self {
        Self {
            start: shared.clock.now_nanos(),
            method: req.method().as_str().to_string(),
            path: req.uri().path().to_string(),
            query: req.uri().query().map(str::to_string),
        }
    }

    fn query(&self) -> Option<&str> {
        self.query.as_deref()
    }

    fn log(
        &self,
        shared: &Shared,
        project_id: Option<u64>,
        status: u16,
        body: &Bytes,
        fault: Option<&'static str>,
    ) {
        let entry = LoggedRequest {
            seq: 0,
            timestamp: self.start / 1_000_000,
            method: self.method.clone(),
            path: self.path.clone(),
            query: self.query.as_deref().map(redact_query),
            project_id,
            status,
            body: String::new(),
            fault,
        };
        lock(&shared.log).push(entry, body.clone());
    }

    /// Logs the call as failed by a connection fault, and says how the connection ends.
    fn abort(
        &self,
        shared: &Shared,
        client: &Client,
        fault: &'static str,
        project: Option<u64>,
        body: &Bytes,
    ) -> ConnectionFault {
        self.log(shared, project, 0, body, Some(fault));
        if fault == "reset" {
            client.reset.store(true, Ordering::Relaxed);
        }
        ConnectionFault(fault)
    }
}

/// The query string with the value of any `api_key` parameter replaced, so keys sent the
/// legacy way never reach the request log.
fn redact_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("api_key") => format!("{k}=<redacted>"),
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// A response to a request whose body was left unread (refused by size): the connection
/// closes after it, and the response says so, so that the client opens a new one.
fn closing(mut r: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    r.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    r
}

/// The answer with the headers common to every response.
fn respond(shared: &Shared, reply: Reply, start: u64) -> Response<Full<Bytes>> {
    let elapsed_ms = shared.clock.now_nanos().saturating_sub(start) / 1_000_000;
    let mut b = Response::builder()
        .status(reply.status)
        .header(CONTENT_TYPE, reply.content_type)
        .header("Request-Time", elapsed_ms)
        .header(SERVER, shared.server_header.clone())
        .header(VARY, "Origin");
    if let Some(s) = reply.retry_after {
        b = b.header(RETRY_AFTER, s);
    }
    b.body(Full::new(reply.body))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_in_queries_are_redacted() {
        assert_eq!(
            redact_query("listId=1&api_key=0123456789abcdef0123456789abcdef&x=2"),
            "listId=1&api_key=<redacted>&x=2"
        );
        assert_eq!(redact_query("API_KEY=k"), "API_KEY=<redacted>");
        assert_eq!(redact_query("listId=1"), "listId=1");
    }

    #[test]
    fn host_header_picks_the_region() {
        let h = |s: &'static str| HeaderValue::from_static(s);
        assert_eq!(
            request_region(Some(&h("api.eu.iterable.com")), Region::Us),
            Region::Eu
        );
        assert_eq!(
            request_region(Some(&h("api.iterable.com:443")), Region::Eu),
            Region::Us
        );
        assert_eq!(
            request_region(Some(&h("127.0.0.1:8787")), Region::Eu),
            Region::Eu
        );
        assert_eq!(request_region(None, Region::Us), Region::Us);
    }
}
