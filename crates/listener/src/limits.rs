//! The limits a listener enforces (timeouts, minimum body rate, connection cap), their
//! defaults, and the process's open-file limit the default cap is derived from.

use std::io;
use std::time::Duration;

/// What every connection of a listener is held to.
///
/// A connection is closed when it:
/// - has not sent a complete request header `header_timeout` after it was opened, or after the
///   first byte of a later request;
/// - waits longer than `keep_alive_timeout` for its next request after a response;
/// - sends a request body more slowly than `body_min_rate` bytes per second, averaged from the
///   moment the handler began reading it, after a free `body_grace`;
/// - leaves a response unread (no byte written) for `write_timeout`.
///
/// While a handler works on a request (storing it, say), no timeout applies.
///
/// A connection closed after an answer that left the request's body unread (refused by its
/// declared size, say) lingers: what the client still sends is read and dropped until it
/// closes its side, for at most [`LINGER_TIMEOUT`] without a byte and [`LINGER_TIME`] in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Time to send a full request header. Default 10 s.
    pub header_timeout: Duration,
    /// Time a connection may wait for its next request. Default 75 s.
    pub keep_alive_timeout: Duration,
    /// Lowest average body rate, in bytes per second, after [`Limits::body_grace`]. Default 1024.
    pub body_min_rate: u64,
    /// Time a body may take before [`Limits::body_min_rate`] applies. Default 5 s.
    pub body_grace: Duration,
    /// Time a response write may make no progress. Default 30 s.
    pub write_timeout: Duration,
    /// Most open connections; `None` derives it from the open-file limit
    /// ([`default_max_connections`]).
    pub max_connections: Option<usize>,
}

/// The longest a lingering connection waits for the client's next bytes (or its close).
///
/// Closing a socket with unread bytes resets the connection, and a client still sending its
/// body then fails on its next write, before it reads the answer that says why (HTTP clients
/// report a broken pipe, not the `400`). So the answer is followed by the server's half of the
/// close, and the rest of the body is read and dropped until the client closes its half.
pub const LINGER_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest a connection lingers in all, however steadily the client keeps sending.
pub const LINGER_TIME: Duration = Duration::from_secs(30);

/// The longest a connection lingers once the server shuts down, so that a client still sending
/// cannot hold up the shutdown.
pub const LINGER_ON_SHUTDOWN: Duration = Duration::from_secs(1);

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(75),
            body_min_rate: 1024,
            body_grace: Duration::from_secs(5),
            write_timeout: Duration::from_secs(30),
            max_connections: None,
        }
    }
}

impl Limits {
    /// The connection cap in force: [`Limits::max_connections`], or the one derived from the
    /// process's current open-file limit.
    pub fn connection_cap(&self) -> usize {
        self.max_connections
            .unwrap_or_else(|| default_max_connections(open_file_limit()))
            .max(1)
    }
}

/// Descriptors always left to the rest of the process: the store's files (SQLite keeps the
/// database, its WAL and shared memory open for each of its connections), outbound
/// connections to Iterable, the runtime's own descriptors, standard streams.
pub const RESERVED_FILES: u64 = 64;

/// The largest derived cap: past it, memory (a connection's buffers) rather than descriptors
/// is what runs out first, and no legitimate sender of this service needs more.
pub const MAX_DERIVED_CONNECTIONS: usize = 4096;

/// The cap derived from an open-file limit: the limit less [`RESERVED_FILES`] and an eighth
/// (room for the store and for outbound connections growing with the machine), at least 16 and
/// at most [`MAX_DERIVED_CONNECTIONS`]; 1024 when the limit is unknown.
///
/// 256 files give 160 connections, 1024 give 832, 4096 or more give 4096.
pub fn default_max_connections(open_files: Option<u64>) -> usize {
    let Some(limit) = open_files else {
        return 1024;
    };
    let room = limit
        .saturating_sub(RESERVED_FILES)
        .saturating_sub(limit / 8);
    usize::try_from(room)
        .unwrap_or(usize::MAX)
        .clamp(16, MAX_DERIVED_CONNECTIONS)
}

/// The process's soft limit of open files, when the platform has one.
pub fn open_file_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        rlimit::Resource::NOFILE
            .get()
            .ok()
            .map(|(soft, _hard)| soft)
            .filter(|soft| *soft != rlimit::INFINITY)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Raises the soft limit of open files to the hard limit, so that the process gets every
/// descriptor it is allowed (the soft limit is often 1,024 while the hard one is far higher).
/// Returns the soft limit now in force.
pub fn raise_open_file_limit() -> io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_caps() {
        let cases = [
            (None, 1024),
            (Some(0), 16),
            (Some(64), 16),
            (Some(100), 24),
            (Some(256), 160),
            (Some(1024), 832),
            (Some(4096), 3520),
            (Some(5000), 4096),
            (Some(1 << 20), 4096),
            (Some(u64::MAX), 4096),
        ];
        for (files, cap) in cases {
            assert_eq!(default_max_connections(files), cap, "{files:?}");
        }
    }

    #[test]
    fn configured_cap_wins_and_is_at_least_one() {
        let l = Limits {
            max_connections: Some(7),
            ..Limits::default()
        };
        assert_eq!(l.connection_cap(), 7);
        let l = Limits {
            max_connections: Some(0),
            ..Limits::default()
        };
        assert_eq!(l.connection_cap(), 1);
    }
}
