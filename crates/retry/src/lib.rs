//! The retry policy of iterable-lists, as pure logic (no I/O, no clock, no randomness of its
//! own): how Iterable's answers are classified ([`class`], from the wire crate `iterable-api`),
//! how retries are spaced, with one
//! jitter formula ([`backoff`]), and what each answer means for a row: delivered, rejected,
//! retried at a given time, or the destination pauses ([`decide`]). The HTTP client and the
//! reconciler both call it.

pub mod backoff;
/// How Iterable's answers are classified: part of Iterable's API, kept in `iterable-api`.
pub use iterable_api::errors as class;
pub mod decide;

pub use backoff::{Backoff, Schedule, jitter, parse_retry_after, random_fraction};
pub use class::{Envelope, ErrorClass, classify_status};
pub use decide::{Answer, Call, Failure, Origin, Policy, Verdict, again, decide};
