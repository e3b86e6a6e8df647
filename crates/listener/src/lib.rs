//! The HTTP/1 edge shared by the iterable-lists service and the Iterable emulator: an accept
//! loop and per-connection supervision that keep a server answering when clients are slow,
//! idle or hostile.
//!
//! - **Timeouts** ([`Limits`]): a request header must arrive within `header_timeout`, a kept-
//!   alive connection may wait `keep_alive_timeout` for its next request, a body must keep an
//!   average of `body_min_rate` bytes per second after `body_grace`, and a response the client
//!   does not read is dropped after `write_timeout`. A connection closed after an answer that
//!   left the request's body unread lingers, reading and dropping the rest until the client
//!   closes its side ([`LINGER_TIMEOUT`], [`LINGER_TIME`]; [`LINGER_ON_SHUTDOWN`] once the
//!   server shuts down), so that the client, still sending, is not reset before it reads the
//!   answer.
//! - **A connection cap** ([`Connections`]): at the cap, a new connection closes another, the
//!   oldest of the first kind there is: one that has not sent a request yet (or is stalled in a
//!   header), one kept alive between requests, one stalled in a body or on an unread response.
//!   Only when every connection is being served is the new one refused (a `503` and a close, at
//!   once). So idle or slow clients, however many, cannot lock out a client that sends its
//!   request.
//! - **Descriptors**: [`raise_open_file_limit`] at start; the default cap is derived from the
//!   open-file limit ([`default_max_connections`]); an accept that fails for want of
//!   descriptors closes an idle connection and backs off, and is logged at most once every
//!   10 s, with a count.
//!
//! Handlers are plain async functions of a [`Request<Body>`](hyper::Request), so that routing
//! can change (to a framework, say) without touching this crate.

mod every;
mod guard;
mod limits;
mod serve;
mod track;

pub use every::LOG_INTERVAL;
pub use guard::Body;
pub use limits::{
    LINGER_ON_SHUTDOWN, LINGER_TIME, LINGER_TIMEOUT, Limits, MAX_DERIVED_CONNECTIONS,
    RESERVED_FILES, default_max_connections, open_file_limit, raise_open_file_limit,
};
pub use serve::{Connections, serve, serve_connection};
