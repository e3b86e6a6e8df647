//! Durable state of the sync service: what each list should hold, what Iterable confirmed,
//! what happened to every event, and which list each audience maps to.
//!
//! [`store::Store`] is the engine-neutral interface; [`sqlite::SqliteStore`] is the embedded
//! engine. A PostgreSQL engine is to implement the same trait and pass the same conformance
//! suite (`tests/store_conformance.rs`). [`reconciler::Reconciler`] delivers what the store
//! holds to Iterable, and [`metrics`] counts and renders what happened.

pub mod metrics;
pub mod reconciler;
pub mod sqlite;
pub mod store;

pub use metrics::{DestinationMetrics, DestinationSnapshot};
pub use reconciler::{
    DestinationState, EpochClock, PassReport, ReconcileError, Reconciler, ReconcilerConfig,
};
pub use sqlite::SqliteStore;
pub use store::{
    Applied, AudienceStatus, EventContent, EventCounts, EventRecord, Identity, ListCounts,
    MembershipChange, NewEvent, Outcome, OutcomeRow, PendingRow, Receipt, Recorded, Seq,
    StatusKind, Store, StoreError, StoreRegistry, Version,
};
