//! Iterable's list API as this project uses it: the typed client (regions, errors, rate limits,
//! retries), wire shapes tolerant of missing keys, and exactly-one-list resolution.

pub mod client;
pub mod limiter;
pub mod resolve;

// The wire types, error classes and list choice live in the pure `iterable-api` crate (so
// `destination` builds without I/O); they stay reachable at their old paths here.
pub use iterable_api::{errors, lists, types};

/// The retry policy's schedules (see the `retry` crate), where the client's users find them.
pub use retry::backoff;
