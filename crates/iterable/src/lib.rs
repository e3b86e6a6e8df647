//! Iterable's list API as this project uses it: the typed client (regions, errors, rate limits,
//! retries), wire shapes tolerant of missing keys, and exactly-one-list resolution.

pub mod backoff;
pub mod client;
pub mod errors;
pub mod limiter;
pub mod lists;
pub mod resolve;
pub mod types;
