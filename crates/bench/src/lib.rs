//! The whole-system benchmarks of BENCHMARKS.md and the side-by-side comparison with Segment's
//! own implementation, printed as a table and optionally written as JSON. The
//! `iterable-lists-bench` binary reads the command line and calls [`run`].
//!
//! A crate of its own, so the product binary carries none of it. The service under test is
//! the `iterable-lists` binary, `serve` in a child process, so its CPU time and peak memory are
//! its own; by default it is built by cargo before the parts run (see `product.rs`). The
//! Iterable emulator and the load generator run in this process.
//!
//! Where things are: `harness.rs` (what to run, the run), `parts/` (one file per measure),
//! `service.rs` (the child process), `load.rs` (senders and pollers), `emulator.rs`,
//! `events.rs` (the load's events), `procfs.rs` (CPU and memory), `report.rs` (table, JSON).
//! Errors are `anyhow`: this library is the binary's inside, and its errors are only printed.

mod emulator;
mod events;
mod harness;
mod load;
mod parts;
mod pg;
mod procfs;
mod product;
mod report;
mod service;

pub use harness::{BenchArgs, DEFAULT_POSTGRES, PARTS, run};
