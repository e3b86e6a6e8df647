//! Durable state of the sync service: what each list should hold, what Iterable confirmed,
//! what happened to every event, and which list each audience maps to.
//!
//! [`store::Store`] is the engine-neutral interface; [`sqlite::SqliteStore`] is the embedded
//! engine. A PostgreSQL engine is to implement the same trait and pass the same conformance
//! suite (`tests/store_conformance.rs`).

pub mod sqlite;
pub mod store;

pub use sqlite::SqliteStore;
pub use store::{
    Applied, AudienceStatus, EventContent, EventCounts, EventRecord, Identity, ListCounts,
    MembershipChange, NewEvent, Outcome, OutcomeRow, PendingRow, Receipt, Recorded, Seq,
    StatusKind, Store, StoreError, StoreRegistry, Version,
};
