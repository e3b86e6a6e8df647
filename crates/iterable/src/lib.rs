//! Iterable's list API as this project uses it: the typed client (regions, errors, rate limits,
//! retries), wire shapes tolerant of missing keys, and exactly-one-list resolution.

pub mod client;
pub mod limiter;
pub mod lists;
pub mod resolve;
pub mod types;

/// The retry policy's schedules (see the `retry` crate), where the client's users find them.
pub use retry::backoff;
/// The classification of Iterable's answers (see the `retry` crate).
pub use retry::class as errors;
