//! Segment-side logic of iterable-lists: how Segment events are read and mapped.
//! Pure code with no I/O; today it holds the mapping-kit evaluator (`mapping`).

pub mod mapping;
