//! The measures, one file per part of BENCHMARKS.md: (a) [`plan`], (b) and (e) [`ingestion`]
//! (memory is read during the ingestion run, with its changes pending), (c) [`end_to_end`],
//! (d) [`rate_limit`], (d-fast) [`unlimited`] (the same audience with every limit off),
//! (sustained) [`sustained`] (part (c)'s load for minutes: memory and latency over time), (snapshot) [`snapshot`] (a full audience snapshot applied by `audience
//! sync`), (verify) [`verify`] (`audience verify` of a big list), (admin) [`admin`] (the admin
//! API's views on a big store), (console) [`console`] (the operator console's pages on a big
//! store), and the comparison with
//! Segment's code ([`compare`], whose Node side
//! [`segment`] runs).

pub mod admin;
pub mod compare;
pub mod console;
pub mod end_to_end;
pub mod ingestion;
pub mod plan;
pub mod rate_limit;
mod segment;
pub mod snapshot;
pub mod sustained;
pub mod unlimited;
pub mod verify;
