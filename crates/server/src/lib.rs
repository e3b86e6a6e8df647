//! The iterable-lists service: configuration, Segment-compatible ingestion, the admin and
//! metrics endpoints, and the wiring that runs stores and reconcilers behind them.

pub mod admin;
pub mod app;
pub mod config;
mod console;
pub mod figures;
pub mod holds;
pub mod http;
pub mod ingest;
pub mod intake;
pub mod logs;
pub mod snapshot;
pub mod status;

pub use app::{RunningService, StartError};
pub use config::Config;
