//! The admin layer under the JSON admin API (`/v1/admin/...`, [`crate::http`]) and the operator
//! console: typed views of what the service holds ([`views`]), the functions that build them
//! cheaply ([`read`]: the figures snapshot, pages, keyset pagination and indexed lookups,
//! never a scan of the event log), what an operator may do ([`actions`]), the query
//! parameters they take ([`params`]) and their one error type ([`AdminError`]).
//!
//! Two histories live in this instance's memory only: the per-minute series of the last hour
//! ([`history`], sampled every minute) and the last WARN and ERROR log events ([`warnings`]).

pub mod error;
pub mod history;
pub mod params;
pub mod read;
pub mod views;
pub mod warnings;

pub use error::AdminError;
