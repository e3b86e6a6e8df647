//! The admin layer under the JSON admin API (`/v1/admin/...`, [`crate::http`]) and the operator
//! console: typed views of what the service holds ([`views`]), the functions that build them
//! cheaply ([`read`]: the figures snapshot, pages, keyset pagination and indexed lookups,
//! never a scan of the event log; [`csv`]: the rejected users as CSV, streamed), what an
//! operator may do ([`actions`]), the query parameters they take ([`params`]) and their one
//! error type ([`AdminError`]).
//!
//! Two histories live in this instance's memory only: the per-minute series of the last hour
//! ([`history`], sampled every minute) and the last WARN and ERROR log events ([`warnings`]).

pub mod actions;
pub mod csv;
pub mod error;
pub mod history;
pub mod params;
pub mod read;
pub mod views;
pub mod warnings;

pub use error::AdminError;

/// Who acted, when no admin token is configured (only loopback clients are answered then).
pub const LOOPBACK: &str = "loopback";

/// The id of an admin token in the log of admin actions: the first 8 hex digits of its
/// SHA-256, which tells tokens apart without telling anything of the token.
pub fn token_id(token: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    d.as_ref()[..4].iter().map(|b| format!("{b:02x}")).collect()
}
