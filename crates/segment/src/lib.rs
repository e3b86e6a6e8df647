//! Segment-side logic of iterable-lists: how Segment events are read and mapped.
//! Pure code with no I/O: the event model (`event`), the mapping-kit (`mapping`), membership.

pub mod event;
pub mod mapping;
pub mod membership;
