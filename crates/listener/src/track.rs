//! What one connection is doing, as far as its timeouts and its eviction are concerned: a small
//! state machine fed by the connection's reads and writes, its request handler and its body,
//! with the deadline it must meet and how readily it gives way to a new connection (pure).

use std::time::Duration;

use tokio::time::Instant;

use crate::limits::{LINGER_ON_SHUTDOWN, LINGER_TIME, LINGER_TIMEOUT, Limits};

/// Where a connection is in its request cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Waiting for a request to begin: a new connection (`first`), or one kept alive after a
    /// response, since `since`.
    Waiting { since: Instant, first: bool },
    /// Part of a request header has arrived; the header began at `since` (for the first
    /// request, when the connection was opened).
    Header { since: Instant },
    /// A handler works on a request and is not waiting for its body.
    Working,
    /// A handler reads the request body: it began at `started`, `bytes` have arrived, and since
    /// `waiting` (when set) the handler waits for more.
    Body {
        started: Instant,
        bytes: u64,
        waiting: Option<Instant>,
    },
    /// Answered and closed on the server's side (since `since`), the request's body left
    /// unread: what the client still sends is read and dropped until it closes its side, so
    /// that it is not reset while sending (and loses the answer); the last bytes came at
    /// `last`.
    Lingering { since: Instant, last: Instant },
}

/// How readily a connection is closed to make room for a new one: the lowest first, then the
/// one waiting the longest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Evictable {
    /// Waiting for its first request, or stalled inside a header: it has sent nothing useful
    /// yet, and nothing of a request is lost. Or answered and lingering: nothing is lost either.
    Unproven(Instant),
    /// Kept alive after a response, waiting for the next request: its client reconnects.
    KeptAlive(Instant),
    /// Stalled inside a body, or on a response the client does not read: a request in
    /// progress is lost, so only when no idle connection is left.
    Stalled(Instant),
}

/// The state of one connection.
#[derive(Debug, Clone)]
pub(crate) struct Track {
    phase: Phase,
    /// Since when a response write has been refused by a full socket buffer.
    write_blocked: Option<Instant>,
    /// Closed to make room for another connection.
    evicted: bool,
    /// The current request has a body that has not been read to its end.
    body_left: bool,
    /// The server began to shut down (at): a lingering connection gives up sooner.
    draining: Option<Instant>,
}

impl Track {
    /// A connection opened at `now`.
    pub fn new(now: Instant) -> Self {
        Self {
            phase: Phase::Waiting {
                since: now,
                first: true,
            },
            write_blocked: None,
            evicted: false,
            body_left: false,
            draining: None,
        }
    }

    #[cfg(test)]
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Bytes arrived from the client. True when the deadline changed.
    pub fn on_read(&mut self, now: Instant) -> bool {
        match self.phase {
            Phase::Waiting { since, first } => {
                let since = if first { since } else { now };
                self.phase = Phase::Header { since };
                true
            }
            _ => false,
        }
    }

    /// A complete request header was read and its handler called.
    pub fn on_request(&mut self) {
        self.phase = Phase::Working;
        self.body_left = false;
    }

    /// The request being handled has a body (until [`Track::on_body_end`]).
    pub fn on_request_body(&mut self) {
        self.body_left = true;
    }

    /// The handler waits for body bytes that have not arrived. True when the deadline changed.
    pub fn on_body_pending(&mut self, now: Instant) -> bool {
        match &mut self.phase {
            Phase::Working => {
                self.phase = Phase::Body {
                    started: now,
                    bytes: 0,
                    waiting: Some(now),
                };
                true
            }
            Phase::Body { waiting, .. } if waiting.is_none() => {
                *waiting = Some(now);
                true
            }
            _ => false,
        }
    }

    /// `n` body bytes reached the handler.
    pub fn on_body_data(&mut self, now: Instant, n: usize) {
        let n = n as u64;
        match &mut self.phase {
            Phase::Working => {
                self.phase = Phase::Body {
                    started: now,
                    bytes: n,
                    waiting: None,
                }
            }
            Phase::Body { bytes, waiting, .. } => {
                *bytes = bytes.saturating_add(n);
                *waiting = None;
            }
            _ => {}
        }
    }

    /// The body ended (or failed): the handler works on.
    pub fn on_body_end(&mut self) {
        self.body_left = false;
        if matches!(self.phase, Phase::Body { .. }) {
            self.phase = Phase::Working;
        }
    }

    /// The server closed its side of the connection after an answer. True when the request's
    /// body was left unread: the connection lingers (see [`Phase::Lingering`]), and its
    /// deadline changed.
    pub fn on_close(&mut self, now: Instant) -> bool {
        if !self.body_left {
            return false;
        }
        self.phase = Phase::Lingering {
            since: now,
            last: now,
        };
        true
    }

    /// The server began to shut down: from now, lingering lasts at most [`LINGER_ON_SHUTDOWN`].
    pub fn on_drain(&mut self, now: Instant) {
        self.draining.get_or_insert(now);
    }

    /// Bytes arrived while lingering, and were dropped.
    pub fn on_discarded(&mut self, now: Instant) {
        if let Phase::Lingering { last, .. } = &mut self.phase {
            *last = now;
        }
    }

    /// The handler answered: the connection waits for its next request. True when the deadline
    /// changed.
    pub fn on_response(&mut self, now: Instant) -> bool {
        self.phase = Phase::Waiting {
            since: now,
            first: false,
        };
        true
    }

    /// A write was refused by a full socket buffer (`blocked`) or went through. True when the
    /// deadline changed.
    pub fn on_write(&mut self, now: Instant, blocked: bool) -> bool {
        match (blocked, self.write_blocked) {
            (true, None) => {
                self.write_blocked = Some(now);
                true
            }
            (false, Some(_)) => {
                self.write_blocked = None;
                false
            }
            _ => false,
        }
    }

    /// Marks the connection as closed to make room for another.
    pub fn evict(&mut self) {
        self.evicted = true;
    }

    pub fn is_evicted(&self) -> bool {
        self.evicted
    }

    /// When the connection is to be closed unless something changes first; `None` while a
    /// handler works (or reads a body that is flowing) and nothing waits on the client.
    pub fn deadline(&self, limits: &Limits) -> Option<Instant> {
        // A deadline too far to represent is none.
        let phase = match self.phase {
            Phase::Waiting { since, first: true } | Phase::Header { since } => {
                since.checked_add(limits.header_timeout)
            }
            Phase::Waiting {
                since,
                first: false,
            } => since.checked_add(limits.keep_alive_timeout),
            Phase::Working => None,
            Phase::Body {
                started,
                bytes,
                waiting: Some(_),
            } => started
                .checked_add(limits.body_grace)
                .and_then(|t| t.checked_add(time_for(bytes, limits.body_min_rate))),
            Phase::Body { waiting: None, .. } => None,
            Phase::Lingering { since, last } => [
                since.checked_add(LINGER_TIME),
                last.checked_add(LINGER_TIMEOUT),
                self.draining
                    .and_then(|t| t.checked_add(LINGER_ON_SHUTDOWN)),
            ]
            .into_iter()
            .flatten()
            .min(),
        };
        let write = self
            .write_blocked
            .and_then(|t| t.checked_add(limits.write_timeout));
        match (phase, write) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether the connection is to be closed at `now`.
    pub fn expired(&self, now: Instant, limits: &Limits) -> bool {
        self.evicted || self.deadline(limits).is_some_and(|d| now >= d)
    }

    /// How readily the connection gives way to a new one; `None` while a handler works and
    /// nothing waits on the client.
    pub fn evictable(&self) -> Option<Evictable> {
        match self.phase {
            Phase::Waiting { since, first: true }
            | Phase::Header { since }
            | Phase::Lingering { since, .. } => Some(Evictable::Unproven(since)),
            Phase::Waiting {
                since,
                first: false,
            } => Some(Evictable::KeptAlive(since)),
            Phase::Body {
                waiting: Some(since),
                ..
            } => Some(Evictable::Stalled(since)),
            Phase::Working | Phase::Body { waiting: None, .. } => {
                self.write_blocked.map(Evictable::Stalled)
            }
        }
    }
}

/// How long `bytes` take at `rate` bytes per second.
fn time_for(bytes: u64, rate: u64) -> Duration {
    let rate = u128::from(rate.max(1));
    let nanos = u128::from(bytes) * 1_000_000_000 / rate;
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            header_timeout: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(75),
            body_min_rate: 1000,
            body_grace: Duration::from_secs(5),
            write_timeout: Duration::from_secs(30),
            max_connections: None,
        }
    }

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn a_new_connection_must_send_its_header_in_time_counted_from_the_open() {
        let t0 = Instant::now();
        let mut t = Track::new(t0);
        assert_eq!(t.deadline(&limits()), Some(t0 + s(10)));
        assert!(t.on_read(t0 + s(4)));
        assert_eq!(t.phase(), Phase::Header { since: t0 });
        assert_eq!(t.deadline(&limits()), Some(t0 + s(10)));
        // More header bytes change nothing: a dripped header does not buy time.
        assert!(!t.on_read(t0 + s(9)));
        assert!(!t.expired(t0 + s(9), &limits()));
        assert!(t.expired(t0 + s(10), &limits()));
    }

    #[test]
    fn keep_alive_then_a_new_header() {
        let t0 = Instant::now();
        let mut t = Track::new(t0);
        t.on_read(t0);
        t.on_request();
        assert_eq!(
            t.deadline(&limits()),
            None,
            "a working handler has no deadline"
        );
        assert!(!t.expired(t0 + s(1000), &limits()));
        assert!(t.on_response(t0 + s(2)));
        assert_eq!(t.deadline(&limits()), Some(t0 + s(77)));
        // The next request's header is timed from its first byte.
        assert!(t.on_read(t0 + s(50)));
        assert_eq!(t.deadline(&limits()), Some(t0 + s(60)));
    }

    #[test]
    fn a_body_must_keep_the_minimum_rate_after_the_grace() {
        let t0 = Instant::now();
        let mut t = Track::new(t0);
        t.on_read(t0);
        t.on_request();
        assert!(t.on_body_pending(t0 + s(1)));
        // Started at 1 s, nothing yet: 5 s of grace.
        assert_eq!(t.deadline(&limits()), Some(t0 + s(6)));
        // One byte buys a millisecond at 1000 B/s.
        t.on_body_data(t0 + s(2), 1);
        assert_eq!(t.deadline(&limits()), None, "flowing");
        assert!(t.on_body_pending(t0 + s(2)));
        assert_eq!(
            t.deadline(&limits()),
            Some(t0 + s(6) + Duration::from_millis(1))
        );
        // A byte every few seconds does not keep the connection.
        t.on_body_data(t0 + s(5), 1);
        t.on_body_pending(t0 + s(5));
        assert!(t.expired(t0 + s(7), &limits()));
        // 10,000 bytes buy 10 s more.
        t.on_body_data(t0 + s(5), 9_998);
        t.on_body_pending(t0 + s(5));
        assert_eq!(t.deadline(&limits()), Some(t0 + s(16)));
        t.on_body_end();
        assert_eq!(t.phase(), Phase::Working);
        assert_eq!(t.deadline(&limits()), None);
    }

    #[test]
    fn a_body_that_arrives_at_once_is_timed_from_its_first_data() {
        let t0 = Instant::now();
        let mut t = Track::new(t0);
        t.on_request();
        t.on_body_data(t0 + s(3), 10);
        assert_eq!(
            t.phase(),
            Phase::Body {
                started: t0 + s(3),
                bytes: 10,
                waiting: None
            }
        );
        // Pending while not working on a body is ignored.
        let mut idle = Track::new(t0);
        assert!(!idle.on_body_pending(t0));
        idle.on_body_data(t0, 5);
        idle.on_body_end();
        assert_eq!(
            idle.phase(),
            Phase::Waiting {
                since: t0,
                first: true
            }
        );
    }

    #[test]
    fn an_unread_response_times_out() {
        let t0 = Instant::now();
        let mut t = Track::new(t0);
        t.on_request();
        assert!(t.on_write(t0 + s(1), true));
        assert!(!t.on_write(t0 + s(2), true), "already blocked");
        assert_eq!(t.deadline(&limits()), Some(t0 + s(31)));
        assert_eq!(t.evictable(), Some(Evictable::Stalled(t0 + s(1))));
        assert!(!t.on_write(t0 + s(3), false));
        assert_eq!(t.deadline(&limits()), None);
        assert_eq!(t.evictable(), None);
        // Blocked after the response: the earlier of the two deadlines.
        t.on_response(t0 + s(4));
        t.on_write(t0 + s(4), true);
        assert_eq!(t.deadline(&limits()), Some(t0 + s(34)));
    }

    #[test]
    fn what_gives_way_first() {
        let t0 = Instant::now();
        let fresh = Track::new(t0 + s(3));
        let mut header = Track::new(t0 + s(1));
        header.on_read(t0 + s(2));
        let mut kept = Track::new(t0);
        kept.on_request();
        kept.on_response(t0 + s(5));
        let mut working = Track::new(t0);
        working.on_request();
        let mut body = Track::new(t0);
        body.on_request();
        body.on_body_pending(t0 + s(9));
        let mut flowing = body.clone();
        flowing.on_body_data(t0 + s(9), 3);

        let mut second_header = kept.clone();
        second_header.on_read(t0 + s(6));

        assert_eq!(fresh.evictable(), Some(Evictable::Unproven(t0 + s(3))));
        assert_eq!(header.evictable(), Some(Evictable::Unproven(t0 + s(1))));
        assert_eq!(kept.evictable(), Some(Evictable::KeptAlive(t0 + s(5))));
        assert_eq!(
            second_header.evictable(),
            Some(Evictable::Unproven(t0 + s(6)))
        );
        assert_eq!(working.evictable(), None);
        assert_eq!(body.evictable(), Some(Evictable::Stalled(t0 + s(9))));
        assert_eq!(flowing.evictable(), None);
        // A connection that never sent a request goes before one kept alive, and any idle
        // connection before a stalled body, however recent; within a kind, the oldest first.
        assert!(Evictable::Unproven(t0 + s(100)) < Evictable::KeptAlive(t0));
        assert!(Evictable::KeptAlive(t0 + s(100)) < Evictable::Stalled(t0));
        assert!(Evictable::Unproven(t0) < Evictable::Unproven(t0 + s(1)));

        let mut e = Track::new(t0);
        assert!(!e.expired(t0, &limits()));
        e.evict();
        assert!(e.is_evicted() && e.expired(t0, &limits()));
    }

    #[test]
    fn a_close_lingers_only_after_a_body_left_unread() {
        let t0 = Instant::now();
        let mut t = Track::new(t0);
        // No body, or a body read to its end: the close is at once.
        t.on_request();
        assert!(!t.on_close(t0));
        t.on_request();
        t.on_request_body();
        t.on_body_data(t0, 10);
        t.on_body_end();
        assert!(!t.on_close(t0));
        // A body left unread: the connection lingers, first to give way.
        t.on_request();
        t.on_request_body();
        t.on_response(t0 + s(1));
        assert!(t.on_close(t0 + s(1)));
        assert_eq!(t.evictable(), Some(Evictable::Unproven(t0 + s(1))));
        assert_eq!(t.deadline(&limits()), Some(t0 + s(1) + LINGER_TIMEOUT));
        // Bytes keep it for LINGER_TIMEOUT more, up to LINGER_TIME in all.
        t.on_discarded(t0 + s(4));
        assert_eq!(t.deadline(&limits()), Some(t0 + s(4) + LINGER_TIMEOUT));
        t.on_discarded(t0 + s(1) + LINGER_TIME);
        assert_eq!(t.deadline(&limits()), Some(t0 + s(1) + LINGER_TIME));
        assert!(t.expired(t0 + s(1) + LINGER_TIME, &limits()));
        // Once the server shuts down, lingering ends within LINGER_ON_SHUTDOWN.
        let mut t = Track::new(t0);
        t.on_request();
        t.on_request_body();
        t.on_response(t0);
        assert!(t.on_close(t0));
        t.on_drain(t0 + s(2));
        t.on_discarded(t0 + s(2));
        assert_eq!(t.deadline(&limits()), Some(t0 + s(2) + LINGER_ON_SHUTDOWN));
    }

    #[test]
    fn body_time_does_not_overflow() {
        assert_eq!(time_for(0, 0), Duration::ZERO);
        assert_eq!(time_for(1000, 1000), s(1));
        assert_eq!(time_for(5, 0), Duration::from_secs(5));
        assert!(time_for(u64::MAX, 1) >= Duration::from_secs(u64::MAX / 1_000_000_000));
        let t0 = Instant::now();
        let mut t = Track::new(t0);
        t.on_request();
        t.on_body_data(t0, usize::MAX);
        t.on_body_pending(t0);
        let slow = Limits {
            body_min_rate: 1,
            ..limits()
        };
        assert!(!t.expired(t0 + s(1_000_000), &slow));
        let forever = Limits {
            keep_alive_timeout: Duration::MAX,
            ..limits()
        };
        t.on_response(t0);
        assert_eq!(t.deadline(&forever), None);
    }
}
