//! Durable state of the sync service and its delivery: what each list should hold, what
//! Iterable confirmed, what happened to every event, and which list each audience maps to.
//!
//! - [`store`]: the engine-neutral seam ([`store::Engine`]) and the handle the service holds
//!   ([`Store`]).
//! - [`sqlite`]: the embedded engine; [`postgres`]: the engine on a database that several
//!   instances share. Both pass the same conformance suite (`tests/store_conformance.rs`).
//! - [`reconciler`]: delivers what the store holds to Iterable.
//! - [`metrics`]: counts and renders what happened.
//! - [`copy`]: copies a whole store into another, engine to engine (`store copy`).

pub mod copy;
pub mod drift;
pub mod metrics;
mod planned;
pub mod postgres;
pub mod reconciler;
pub mod retention;
pub mod snapshot;
pub mod sqlite;
pub mod store;

pub use metrics::{DestinationMetrics, DestinationSnapshot};
pub use postgres::PostgresStore;
pub use reconciler::{
    DestinationState, EpochClock, PassReport, ReconcileError, Reconciler, ReconcilerConfig,
    RemovalGuard, StoreRegistry, hold_commands,
};
pub use sqlite::SqliteStore;
pub use store::{
    Applied, AudienceKey, AudienceStatus, ChangeSettings, CopyBatch, EVENT_AUDIENCES_SHOWN, Engine,
    EventContent, EventCounts, EventRecord, Export, GuardVerdict, HoldAction, Identity, Lease,
    ListCounts, MembershipChange, NewEvent, Outcome, OutcomeRow, PendingRow, RateCut, Receipt,
    Recorded, RemovalFigures, RemovalHold, RemovalPolicy, Seq, StatusKind, Store, StoreError,
    StoreFuture, TableCounts, VerifyRecord, Version,
};
pub use store::{OperatorPause, RejectedKey, UserKey, UserQuery, UserState, VersionEvent};
