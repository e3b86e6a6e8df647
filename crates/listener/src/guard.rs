//! The probes that feed a connection's [`Track`]: a wrapper of its socket (bytes read, writes
//! refused by a full buffer) and of each request's body (the handler waiting for bytes), and the
//! [`Tracker`] they share with the connection's supervisor and the registry.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::track::Track;

/// One connection's state, shared by its socket, its bodies, its supervisor and the registry.
pub(crate) struct Tracker {
    track: Mutex<Track>,
    /// Wakes the supervisor when the deadline may have moved earlier.
    changed: Notify,
    /// Signalled once the connection's socket is closed.
    gone: Notify,
}

impl Tracker {
    pub fn new(now: Instant) -> Self {
        Self {
            track: Mutex::new(Track::new(now)),
            changed: Notify::new(),
            gone: Notify::new(),
        }
    }

    /// Says that the connection's socket is closed (to one waiter, now or later).
    pub fn set_gone(&self) {
        self.gone.notify_one();
    }

    /// Resolves once the connection's socket is closed.
    pub async fn gone(&self) {
        self.gone.notified().await;
    }

    /// The state; a poisoned lock (a panic elsewhere while holding it) still gives it.
    pub fn lock(&self) -> MutexGuard<'_, Track> {
        self.track.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies `f`; wakes the supervisor when it says the deadline changed.
    pub fn update(&self, f: impl FnOnce(&mut Track) -> bool) {
        if f(&mut self.lock()) {
            self.changed.notify_one();
        }
    }

    /// Closes the connection to make room for another.
    pub fn evict(&self) {
        self.update(|t| {
            t.evict();
            true
        });
    }

    /// Resolves when the state changed in a way that may bring the deadline forward.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// The server closed its side; true when the connection is to linger
    /// ([`Track::on_close`]).
    fn on_close(&self, now: Instant) -> bool {
        let linger = self.lock().on_close(now);
        if linger {
            self.changed.notify_one();
        }
        linger
    }
}

/// A connection's socket, reporting its reads and blocked writes; its shutdown lingers when a
/// request body was left unread ([`Track::on_close`]).
pub(crate) struct GuardedIo<IO> {
    inner: IO,
    tracker: Arc<Tracker>,
    /// The server's side is shut down, and what the client still sends is dropped.
    lingering: bool,
}

/// Reads dropped per poll while lingering, before yielding to other tasks.
const DISCARD_READS: usize = 16;

impl<IO> GuardedIo<IO> {
    pub fn new(inner: IO, tracker: Arc<Tracker>) -> Self {
        Self {
            inner,
            tracker,
            lingering: false,
        }
    }

    fn wrote<T>(&self, r: &Poll<io::Result<T>>) {
        let blocked = r.is_pending();
        self.tracker.update(|t| t.on_write(Instant::now(), blocked));
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for GuardedIo<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.tracker.update(|t| t.on_read(Instant::now()));
        }
        r
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncWrite for GuardedIo<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.wrote(&r);
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.wrote(&r);
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    /// Shuts the server's side down (the client reads the end of the answer), then, when the
    /// request's body was left unread, reads and drops what the client still sends until it
    /// closes its side (or the connection's supervisor gives up, see [`Track::deadline`]):
    /// closing a socket with unread bytes would reset the connection under a client still
    /// sending, before it read the answer.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.lingering {
            ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
            if !this.tracker.on_close(Instant::now()) {
                return Poll::Ready(Ok(()));
            }
            this.lingering = true;
        }
        let mut scratch = [0u8; 8192];
        for _ in 0..DISCARD_READS {
            let mut buf = ReadBuf::new(&mut scratch);
            match ready!(Pin::new(&mut this.inner).poll_read(cx, &mut buf)) {
                Ok(()) if !buf.filled().is_empty() => {
                    let now = Instant::now();
                    this.tracker.update(|t| {
                        t.on_discarded(now);
                        false
                    });
                }
                // The client closed its side (or reset the connection): nothing is lost now.
                Ok(()) | Err(_) => return Poll::Ready(Ok(())),
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// A request body as handlers receive it: hyper's, with its progress reported so that a
/// client sending it too slowly is cut off (see [`crate::Limits::body_min_rate`]). Read it like
/// any [`http_body::Body`](HttpBody), e.g. with `http_body_util::Limited` and `collect`.
pub struct Body {
    inner: Incoming,
    tracker: Arc<Tracker>,
}

impl Body {
    pub(crate) fn new(inner: Incoming, tracker: Arc<Tracker>) -> Self {
        Self { inner, tracker }
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Body").finish_non_exhaustive()
    }
}

impl HttpBody for Body {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_frame(cx);
        let now = Instant::now();
        match &r {
            Poll::Pending => this.tracker.update(|t| t.on_body_pending(now)),
            Poll::Ready(Some(Ok(frame))) => {
                let n = frame.data_ref().map_or(0, Bytes::len);
                this.tracker.update(|t| {
                    t.on_body_data(now, n);
                    false
                });
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => this.tracker.update(|t| {
                t.on_body_end();
                false
            }),
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
