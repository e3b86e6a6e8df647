//! The iterable-lists service: configuration, Segment-compatible ingestion, the admin and
//! metrics endpoints, and the wiring that runs stores and reconcilers behind them.

pub mod config;
pub mod ingest;
