//! The accept loop and each connection's supervisor: admission under the connection cap (a new
//! connection closes an idle or stalled one rather than being refused), the timeouts of
//! [`Limits`], back-off when descriptors run out, and graceful shutdown.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hyper::body::{Body as HttpBody, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::every::{Every, LOG_INTERVAL};
use crate::guard::{Body, GuardedIo, Tracker};
use crate::limits::Limits;

type BoxError = Box<dyn StdError + Send + Sync>;

/// What a connection refused at the cap is told before it is closed.
const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\n\
content-length: 36\r\nretry-after: 1\r\nconnection: close\r\n\r\ntoo many connections; retry shortly\n";

/// The open connections of one or more listeners, under one cap. Share it between the
/// listeners of a process (the service's main and metrics listeners, the emulator's US and EU
/// ones) so that the cap bounds them together.
pub struct Connections {
    name: &'static str,
    limits: Limits,
    cap: usize,
    open: Mutex<Registry>,
    logs: Mutex<Logs>,
}

#[derive(Default)]
struct Registry {
    next: u64,
    open: HashMap<u64, Arc<Tracker>>,
}

struct Logs {
    evicted: Every,
    refused: Every,
    accept: Every,
}

impl Connections {
    /// Connections held to `limits`; `name` begins every log line (`iterable-lists`). The cap
    /// is [`Limits::connection_cap`], taken now: raise the open-file limit before.
    pub fn new(name: &'static str, limits: Limits) -> Arc<Self> {
        let files = crate::limits::open_file_limit();
        if let (Some(cap), Some(files)) = (limits.max_connections, files)
            && cap > crate::limits::default_max_connections(Some(files))
        {
            tracing::warn!(
                server = name,
                "max_connections = {cap} leaves too few of the {files} files this process may \
                 open for the store and outbound connections; accepts will fail with \"too many \
                 open files\" first (then idle connections are closed)"
            );
        }
        Arc::new(Self {
            name,
            limits,
            cap: limits.connection_cap(),
            open: Mutex::new(Registry::default()),
            logs: Mutex::new(Logs {
                evicted: Every::new(LOG_INTERVAL),
                refused: Every::new(LOG_INTERVAL),
                accept: Every::new(LOG_INTERVAL),
            }),
        })
    }

    /// The most connections kept open at once.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// The limits every connection is held to.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// How many connections are open now.
    pub fn open(&self) -> usize {
        self.registry().open.len()
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn logs(&self) -> MutexGuard<'_, Logs> {
        self.logs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a new connection, closing another if the cap is reached (the one that gives way
    /// first, see [`crate::track::Evictable`]; returned, to wait until its socket is closed).
    /// `None` when every open connection is being served: the new one is refused.
    fn admit(&self, now: Instant) -> Option<Admitted> {
        let mut reg = self.registry();
        let mut victim = None;
        if reg.open.len() >= self.cap {
            victim = evict_one(&mut reg);
            if victim.is_none() {
                drop(reg);
                if let Some(n) = self.logs().refused.record(now) {
                    tracing::warn!(
                        server = self.name,
                        refused = n,
                        "refused {n} connection(s) since the last report: all {} connections \
                         (max_connections) are busy serving requests",
                        self.cap
                    );
                }
                return None;
            }
            if let Some(n) = self.logs().evicted.record(now) {
                tracing::warn!(
                    server = self.name,
                    closed = n,
                    "closed {n} idle or stalled connection(s) since the last report to admit \
                     new ones: {} connections (max_connections) are open",
                    self.cap
                );
            }
        }
        let id = reg.next;
        reg.next += 1;
        let tracker = Arc::new(Tracker::new(now));
        reg.open.insert(id, tracker.clone());
        Some(Admitted {
            id,
            tracker,
            victim,
        })
    }

    fn close(&self, id: u64) {
        self.registry().open.remove(&id);
    }

    /// An accept failed. Out of descriptors: closes the connection that gives way first, and
    /// waits until its descriptor is free; with none to close, or on any other failure of the
    /// listener, waits a little longer each time. A failure of one incoming connection
    /// (aborted before it was accepted) is skipped.
    async fn accept_failed(&self, e: &io::Error, backoff: &mut Duration) {
        if is_connection_error(e) {
            return;
        }
        let out_of_files = is_out_of_files(e);
        let victim = if out_of_files {
            evict_one(&mut self.registry())
        } else {
            None
        };
        if let Some(n) = self.logs().accept.record(Instant::now()) {
            let action = if out_of_files {
                "closing an idle or stalled connection to free a descriptor"
            } else {
                "backing off"
            };
            tracing::warn!(
                server = self.name,
                failures = n,
                "accept failed {n} time(s) since the last report: {e}; {action}"
            );
        }
        match victim {
            Some(v) => wait_gone(&v).await,
            None => {
                tokio::time::sleep(*backoff).await;
                *backoff = (*backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// A connection let in, and the one it displaced.
struct Admitted {
    id: u64,
    tracker: Arc<Tracker>,
    victim: Option<Arc<Tracker>>,
}

/// The longest the accept loop waits for an evicted connection's socket to close.
const EVICTION_WAIT: Duration = Duration::from_millis(250);

/// Waits (a little at most) until an evicted connection's socket is closed, so that the
/// descriptors in use never exceed the cap by more than the connection being admitted: the
/// accept loop would otherwise evict faster than the evicted tasks run, and run out of files.
async fn wait_gone(victim: &Tracker) {
    let _ = tokio::time::timeout(EVICTION_WAIT, victim.gone()).await;
}

const MIN_BACKOFF: Duration = Duration::from_millis(5);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Closes the connection that gives way first (see [`crate::track::Evictable`]) and returns
/// it; `None` when none can.
fn evict_one(reg: &mut Registry) -> Option<Arc<Tracker>> {
    let (_, id) = reg
        .open
        .iter()
        .filter_map(|(id, t)| t.lock().evictable().map(|e| (e, *id)))
        .min()?;
    let t = reg.open.remove(&id)?;
    t.evict();
    Some(t)
}

/// The process or the system has no descriptor (or buffer) left for a new socket.
fn is_out_of_files(e: &io::Error) -> bool {
    #[cfg(unix)]
    {
        matches!(
            e.raw_os_error(),
            Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
        )
    }
    #[cfg(not(unix))]
    {
        let _ = e;
        false
    }
}

/// The incoming connection failed before it was accepted; the listener is fine.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// Removes a connection from the registry when its task ends, however it ends (its socket is
/// closed by then), and says so to whoever evicted it.
struct Registered {
    conns: Arc<Connections>,
    id: u64,
    tracker: Arc<Tracker>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.conns.close(self.id);
        self.tracker.set_gone();
    }
}

/// Accepts connections on `listener` until `shutdown` changes, then lets open connections
/// finish the request they are serving and returns when all are closed.
///
/// `open` is called for each accepted connection with its socket and peer address, and gives
/// the stream to serve (the socket, or a wrapper of it) and the connection's request handler.
/// Handlers get [`Body`] bodies.
pub async fn serve<F, IO, H, Fut, B, E>(
    listener: TcpListener,
    conns: Arc<Connections>,
    mut shutdown: watch::Receiver<bool>,
    open: F,
) where
    F: Fn(TcpStream, SocketAddr) -> (IO, H),
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Fn(Request<Body>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<B>, E>> + Send + 'static,
    B: HttpBody + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
    E: Into<BoxError>,
{
    let mut tasks = JoinSet::new();
    let mut backoff = MIN_BACKOFF;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    backoff = MIN_BACKOFF;
                    let Some(Admitted { id, tracker, victim }) = conns.admit(Instant::now()) else {
                        let _ = stream.try_write(REFUSED);
                        continue;
                    };
                    let registered = Registered { conns: conns.clone(), id, tracker: tracker.clone() };
                    let _ = stream.set_nodelay(true);
                    let (io, handler) = open(stream, peer);
                    let limits = conns.limits;
                    let shutdown = shutdown.clone();
                    tasks.spawn(async move {
                        // Declared first, dropped last: after the socket is closed.
                        let _registered = registered;
                        run_connection(io, tracker, limits, handler, shutdown).await;
                    });
                    if let Some(v) = victim {
                        wait_gone(&v).await;
                    }
                }
                Err(e) => conns.accept_failed(&e, &mut backoff).await,
            },
            _ = shutdown.changed() => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    drop(listener);
    while tasks.join_next().await.is_some() {}
}

/// Serves one connection (any byte stream) under `limits`, outside any registry: what
/// [`serve`] does for each accepted socket, for tests and other transports.
pub async fn serve_connection<IO, H, Fut, B, E>(
    io: IO,
    limits: Limits,
    handler: H,
    shutdown: watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Fn(Request<Body>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<B>, E>> + Send + 'static,
    B: HttpBody + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
    E: Into<BoxError>,
{
    let tracker = Arc::new(Tracker::new(Instant::now()));
    run_connection(io, tracker, limits, handler, shutdown).await;
}

/// Serves HTTP/1 on `io` and closes it when a deadline of its [`crate::track::Track`] passes,
/// when it is evicted, or, after `shutdown` changes, once its current request is answered.
async fn run_connection<IO, H, Fut, B, E>(
    io: IO,
    tracker: Arc<Tracker>,
    limits: Limits,
    handler: H,
    mut shutdown: watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Fn(Request<Body>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<B>, E>> + Send + 'static,
    B: HttpBody + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
    E: Into<BoxError>,
{
    let t = tracker.clone();
    let svc = service_fn(move |req: Request<Incoming>| {
        {
            let mut track = t.lock();
            track.on_request();
            if !req.body().is_end_stream() {
                track.on_request_body();
            }
        }
        let t = t.clone();
        let fut = handler(req.map(|b| Body::new(b, t.clone())));
        async move {
            let r = fut.await;
            t.update(|s| s.on_response(Instant::now()));
            r
        }
    });
    let io = TokioIo::new(GuardedIo::new(io, tracker.clone()));
    let conn = http1::Builder::new()
        .keep_alive(true)
        .serve_connection(io, svc);
    tokio::pin!(conn);
    let mut draining = false;
    loop {
        let deadline = {
            let track = tracker.lock();
            if track.is_evicted() {
                return;
            }
            track.deadline(&limits)
        };
        let expiry = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = conn.as_mut() => return,
            () = tracker.changed() => {}
            () = expiry => {
                if tracker.lock().expired(Instant::now(), &limits) {
                    return;
                }
            }
            _ = shutdown.changed(), if !draining => {
                draining = true;
                tracker.lock().on_drain(Instant::now());
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}
