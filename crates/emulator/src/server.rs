//! The emulator's state and its listeners: the projects, rate limiter, request log and faults
//! every connection shares, starting and stopping, and the connections (accepting and
//! supervising them is the `listener` crate's; each request goes to [`routes`]).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::Request;
use hyper::header::HeaderValue;
use listener::{Body, Connections};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower::ServiceExt;

use crate::clock::{Clock, SystemClock};
use crate::config::{ConfigError, EmulatorConfig, Faults, Region};
use crate::inspect;
use crate::project::{MemberView, Project, ProjectView};
use crate::ratelimit::RateLimiter;
use crate::reqlog::{LogQuery, LoggedRequest, RequestLog};
use crate::rng::Rng;
use crate::routes::{self, Client, ConnectionFault};

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

    /// Lifts a GDPR forget of these identifiers in every project (as Iterable's support can):
    /// later writes of them are taken again. The forgotten profile stays deleted.
    pub fn unforget(&self, email: Option<&str>, user_id: Option<&str>) {
        for p in &self.shared.projects {
            lock(p).unforget(email, user_id);
        }
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

/// Serves `region` on `listener`: the listener crate accepts and supervises the connections,
/// and hands each request to the router with the connection's [`Client`] in its extensions.
async fn accept_loop(
    listener: TcpListener,
    conns: Arc<Connections>,
    shared: Arc<Shared>,
    region: Region,
    shutdown: watch::Receiver<bool>,
) {
    let app = routes::router(shared, region);
    listener::serve(listener, conns, shutdown, move |stream, peer| {
        let reset = Arc::new(AtomicBool::new(false));
        let io = FaultyStream {
            inner: stream,
            reset: reset.clone(),
        };
        let client = Client {
            peer: peer.ip(),
            reset,
        };
        let app = app.clone();
        let handler = move |req: Request<Body>| {
            let mut req = req.map(axum::body::Body::new);
            req.extensions_mut().insert(client.clone());
            let answer = app.clone().oneshot(req);
            async move {
                let r = match answer.await {
                    Ok(r) => r,
                    Err(never) => match never {},
                };
                match r.extensions().get::<ConnectionFault>() {
                    Some(fault) => Err(*fault),
                    None => Ok(r),
                }
            }
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
