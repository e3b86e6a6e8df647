//! Iterable's list API as this project uses it: request and response shapes tolerant of every
//! key being absent, list choice for an audience, and error classification.

pub mod backoff;
pub mod errors;
pub mod limiter;
pub mod lists;
pub mod types;
