//! The HTTP side: listeners (accepting and supervising connections is the `listener` crate's),
//! fault injection, common headers and the request log. `/api` calls go to `api`, `/_emulator`
//! calls to `inspect`.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{
    CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HOST, HeaderValue, RETRY_AFTER, SERVER, VARY,
};
use hyper::{Request, Response};
use listener::{Body, Connections};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clock::{Clock, SystemClock};
use crate::config::{ConfigError, EmulatorConfig, Faults, Region};
use crate::project::{MemberView, Project, ProjectView};
use crate::ratelimit::RateLimiter;
use crate::reqlog::{LogQuery, LoggedRequest, RequestLog};
use crate::rng::Rng;
use crate::{api, inspect};

/// Bodies larger than this are refused even with no `max_body_bytes` fault set.
pub const HARD_BODY_LIMIT: usize = 64 * 1024 * 1024;

/// The first list id handed out; ids grow from here with small gaps, as Iterable's shared
/// counter does.
const FIRST_LIST_ID: i64 = 1_000_001;

/// An answer before headers common to every response are added.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Bytes,
    pub retry_after: Option<u64>,
}

pub(crate) const JSON: &str = "application/json";
pub(crate) const TEXT: &str = "text/plain; charset=utf-8";
pub(crate) const HTML: &str = "text/html; charset=utf-8";

impl Reply {
    pub fn json(status: u16, v: &impl serde::Serialize) -> Self {
        let body = serde_json::to_vec(v).unwrap_or_else(|e| {
            format!("{{\"msg\":\"serialization failed: {e}\",\"code\":\"GenericError\",\"params\":null}}")
                .into_bytes()
        });
        Self {
            status,
            content_type: JSON,
            body: Bytes::from(body),
            retry_after: None,
        }
    }

    pub fn raw(status: u16, content_type: &'static str, body: impl Into<Bytes>) -> Self {
        Self {
            status,
            content_type,
            body: body.into(),
            retry_after: None,
        }
    }
}

/// State shared by every connection.
pub(crate) struct Shared {
    pub clock: Arc<dyn Clock>,
    pub rng: Rng,
    /// API key → index into `projects`.
    pub keys: HashMap<String, usize>,
    pub projects: Vec<Mutex<Project>>,
    pub next_list_id: AtomicI64,
    pub limiter: Mutex<RateLimiter>,
    pub log: Mutex<RequestLog>,
    pub faults: Mutex<Faults>,
    pub retry_after: bool,
    pub server_header: HeaderValue,
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn new(config: &EmulatorConfig, clock: Arc<dyn Clock>) -> Result<Self, ConfigError> {
        let limits = config.validate()?;
        let rng = config.seed.map_or_else(Rng::from_entropy, Rng::new);
        let mut keys = HashMap::new();
        let mut projects = Vec::new();
        let mut next_id = 10_001;
        for (i, p) in config.projects.iter().enumerate() {
            let id = p.id.unwrap_or_else(|| {
                while config.projects.iter().any(|q| q.id == Some(next_id)) {
                    next_id += 1;
                }
                next_id += 1;
                next_id - 1
            });
            for k in &p.api_keys {
                keys.insert(k.expose().to_string(), i);
            }
            projects.push(Mutex::new(Project::new(id, p.project_type, p.region)));
        }
        let node = rng.next_u64() & 0xffff;
        let server_header = HeaderValue::from_str(&format!("iterable-ingress {node:04x}"))
            .unwrap_or_else(|_| HeaderValue::from_static("iterable-ingress"));
        Ok(Self {
            clock,
            rng,
            keys,
            projects,
            next_list_id: AtomicI64::new(FIRST_LIST_ID),
            limiter: Mutex::new(RateLimiter::new(limits)),
            log: Mutex::new(RequestLog::new(config.request_log.clone())),
            faults: Mutex::new(config.faults.clone()),
            retry_after: config.retry_after,
            server_header,
        })
    }

    /// A new list id: increasing, with the occasional gap.
    pub fn new_list_id(&self) -> i64 {
        let step = 1 + self.rng.up_to(2) as i64;
        self.next_list_id.fetch_add(step, Ordering::Relaxed)
    }

    /// A placeholder address for email-based projects, as Iterable generates them.
    pub fn placeholder_email(&self) -> String {
        format!(
            "{:016x}{:016x}@placeholder.email",
            self.rng.next_u64(),
            self.rng.next_u64()
        )
    }

    pub fn reset(&self) {
        for p in &self.projects {
            lock(p).clear();
        }
        lock(&self.limiter).reset();
        lock(&self.log).clear();
    }
}

/// Why the emulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
}

/// Starts emulators.
pub struct Emulator;

impl Emulator {
    /// Starts listening with the real clock. Must be called inside a Tokio runtime.
    pub async fn start(config: EmulatorConfig) -> Result<RunningEmulator, StartError> {
        Self::start_with_clock(config, Arc::new(SystemClock::new())).await
    }

    /// Starts listening with the given clock (tests pass a `ManualClock`).
    pub async fn start_with_clock(
        config: EmulatorConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<RunningEmulator, StartError> {
        let shared = Arc::new(Shared::new(&config, clock)?);
        let conns = Connections::new("iterable-emulator", config.http.limits()?);
        let conns_handle = conns.clone();
        let (tx, rx) = watch::channel(false);
        let bind = |addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Bind { addr, source })
        };
        let us = bind(config.listen).await?;
        let addr = us.local_addr().map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
        let mut tasks = vec![tokio::spawn(accept_loop(
            us,
            conns.clone(),
            shared.clone(),
            Region::Us,
            rx.clone(),
        ))];
        let mut eu_addr = None;
        if let Some(eu) = config.listen_eu {
            let l = bind(eu).await?;
            eu_addr = Some(
                l.local_addr()
                    .map_err(|source| StartError::Bind { addr: eu, source })?,
            );
            tasks.push(tokio::spawn(accept_loop(
                l,
                conns,
                shared.clone(),
                Region::Eu,
                rx,
            )));
        }
        Ok(RunningEmulator {
            addr,
            eu_addr,
            connections: conns_handle,
            shared,
            shutdown: tx,
            tasks,
        })
    }
}

/// A running emulator. Dropping it stops the listeners.
pub struct RunningEmulator {
    addr: SocketAddr,
    eu_addr: Option<SocketAddr>,
    connections: Arc<Connections>,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningEmulator {
    /// The address of the main (US) listener.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`, the base URL to give a client in place of `https://api.iterable.com`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The base URL of the EU listener, when one was configured.
    pub fn eu_url(&self) -> Option<String> {
        self.eu_addr.map(|a| format!("http://{a}"))
    }

    /// How many connections both listeners hold open now.
    pub fn open_connections(&self) -> usize {
        self.connections.open()
    }

    /// The most connections both listeners keep open at once.
    pub fn max_connections(&self) -> usize {
        self.connections.cap()
    }

    /// Ids of the configured projects, in configuration order.
    pub fn project_ids(&self) -> Vec<u64> {
        self.shared.projects.iter().map(|p| lock(p).id).collect()
    }

    /// The state of every project, with members when asked.
    pub fn state(&self, with_members: bool) -> Vec<ProjectView> {
        self.shared
            .projects
            .iter()
            .map(|p| lock(p).view(with_members))
            .collect()
    }

    /// The sorted members of a list, whichever project holds it.
    pub fn members(&self, list_id: i64) -> Option<Vec<MemberView>> {
        self.shared
            .projects
            .iter()
            .find_map(|p| lock(p).members(list_id))
    }

    /// The logged requests matching `q`.
    pub fn requests(&self, q: &LogQuery) -> Vec<LoggedRequest> {
        lock(&self.shared.log).query(q)
    }

    /// Seeds users, forgotten users and lists, as `POST /_emulator/seed` does.
    pub fn seed(&self, req: &inspect::SeedRequest) -> Result<inspect::SeedResult, String> {
        inspect::seed(&self.shared, req)
    }

    /// Replaces the fault settings.
    pub fn set_faults(&self, faults: Faults) -> Result<(), ConfigError> {
        faults.validate()?;
        *lock(&self.shared.faults) = faults;
        Ok(())
    }

    /// Clears users, lists, buckets and the request log; projects and faults stay.
    pub fn reset(&self) {
        self.shared.reset();
    }

    /// Stops accepting, lets in-flight requests finish, and waits for the listeners to end.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    conns: Arc<Connections>,
    shared: Arc<Shared>,
    region: Region,
    shutdown: watch::Receiver<bool>,
) {
    listener::serve(listener, conns, shutdown, move |stream, peer| {
        let reset = Arc::new(AtomicBool::new(false));
        let io = FaultyStream {
            inner: stream,
            reset: reset.clone(),
        };
        let shared = shared.clone();
        let handler = move |req: Request<Body>| {
            let shared = shared.clone();
            let reset = reset.clone();
            async move { handle(&shared, region, peer.ip(), req, &reset).await }
        };
        (io, handler)
    })
    .await;
}

/// A TCP stream that can be told to end with a reset instead of a clean close.
struct FaultyStream {
    inner: TcpStream,
    reset: Arc<AtomicBool>,
}

impl Drop for FaultyStream {
    fn drop(&mut self) {
        if self.reset.load(Ordering::Relaxed) {
            let _ = socket2::SockRef::from(&self.inner).set_linger(Some(Duration::ZERO));
        }
    }
}

impl AsyncRead for FaultyStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for FaultyStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Returned by the service to make hyper drop the connection without answering.
#[derive(Debug, thiserror::Error)]
#[error("connection {0} injected by the emulator")]
struct ConnectionFault(&'static str);

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

async fn read_body(req: Request<Body>, limit: usize) -> BodyRead {
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

async fn handle(
    shared: &Shared,
    listener_region: Region,
    peer: IpAddr,
    req: Request<Body>,
    reset: &AtomicBool,
) -> Result<Response<Full<Bytes>>, ConnectionFault> {
    let start = shared.clock.now_nanos();
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);

    if path == "/_emulator" || path.starts_with("/_emulator/") {
        let reply = match read_body(req, HARD_BODY_LIMIT).await {
            BodyRead::Ok(body) => inspect::handle(shared, &method, &path, query.as_deref(), &body),
            BodyRead::TooLarge => {
                return Ok(closing(respond(shared, too_large(HARD_BODY_LIMIT), start)));
            }
            BodyRead::Broken => return Err(ConnectionFault("closed")),
        };
        return Ok(respond(shared, reply, start));
    }

    let region = request_region(req.headers().get(HOST), listener_region);
    let faults = lock(&shared.faults).clone();
    let rng = &shared.rng;
    let delay = faults.latency_ms + rng.up_to(faults.latency_jitter_ms);
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
            log(
                shared,
                start,
                &method,
                &path,
                &query,
                None,
                reply.status,
                &Bytes::new(),
                None,
            );
            return Ok(closing(respond(shared, reply, start)));
        }
        BodyRead::Broken => return Err(ConnectionFault("closed")),
    };

    // Connection faults strike before or after the request takes effect, half each: the
    // second is the lost-response case a client must survive without duplicating work.
    let conn_fault = if rng.chance(faults.drop_connection) {
        Some("drop")
    } else if rng.chance(faults.reset_connection) {
        Some("reset")
    } else {
        None
    };
    let fault_after = conn_fault.is_some() && rng.chance(0.5);
    let abort = |fault: &'static str, project: Option<u64>| {
        log(
            shared,
            start,
            &method,
            &path,
            &query,
            project,
            0,
            &body,
            Some(fault),
        );
        if fault == "reset" {
            reset.store(true, Ordering::Relaxed);
        }
        Err(ConnectionFault(fault))
    };
    if let (Some(f), false) = (conn_fault, fault_after) {
        return abort(f, None);
    }

    let (reply, project, fault) = if rng.chance(faults.error_500) {
        (api::generic_error(), None, Some("500"))
    } else if rng.chance(faults.error_503) {
        (api::unavailable(), None, Some("503"))
    } else if rng.chance(faults.error_429) {
        let mut r = api::rate_limited(&path, None);
        if shared.retry_after {
            r.retry_after = Some(1);
        }
        (r, None, Some("429"))
    } else {
        let (reply, project) = api::handle(
            shared,
            region,
            peer,
            &method,
            &path,
            query.as_deref(),
            &headers,
            &body,
        );
        (reply, project, None)
    };
    if let Some(f) = conn_fault {
        return abort(f, project);
    }
    log(
        shared,
        start,
        &method,
        &path,
        &query,
        project,
        reply.status,
        &body,
        fault,
    );
    Ok(respond(shared, reply, start))
}

#[allow(clippy::too_many_arguments)]
fn log(
    shared: &Shared,
    start: u64,
    method: &str,
    path: &str,
    query: &Option<String>,
    project_id: Option<u64>,
    status: u16,
    body: &Bytes,
    fault: Option<&'static str>,
) {
    let entry = LoggedRequest {
        seq: 0,
        timestamp: start / 1_000_000,
        method: method.to_string(),
        path: path.to_string(),
        query: query.as_deref().map(redact_query),
        project_id,
        status,
        body: String::new(),
        fault,
    };
    lock(&shared.log).push(entry, body.clone());
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
