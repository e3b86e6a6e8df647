//! The storage seam: desired and acknowledged membership per (destination, audience,
//! identity), the append-only event log with a status per event and audience, the list
//! registry and each destination's state.
//!
//! Nothing here names an engine, the planner or the client. [`Engine`] is what an engine
//! implements; [`Store`] is the handle callers hold (see `handle`). The conformance suite (`tests/store_conformance.rs`) runs through [`Store`], so
//! the same cases check every engine.
//!
//! **Why an object-safe trait of boxed futures.** The engines differ in how they wait: SQLite is
//! an in-process blocking library, PostgreSQL has an async driver. An async trait lets each
//! wait its own way: the PostgreSQL engine awaits its driver on the caller's task, with no
//! thread hop; the SQLite engine hands each operation to its own threads: tokio's blocking
//! pool (the one `spawn_blocking` of the service's store calls), and for ingestion a queue and
//! thread that group concurrent requests (`crate::sqlite::engine`). Boxed futures keep the
//! trait object safe, so the engine is chosen at run time from the configuration and held as
//! `Arc<dyn Engine>`; one allocation per operation is nothing next to a transaction. An enum
//! of engines behind the handle was the other way: it avoids the box but makes every
//! operation a `match` over the engines in this crate, and a test engine (or a wrapper that
//! injects failures) impossible outside it.
//!
//! Vocabulary:
//! - **seq**: the arrival sequence the store gives each new event (strictly increasing, never
//!   reused, survives restarts). A change's [`Version`] is (event time, seq).
//! - **desired**: the latest change per key by version. An older change arriving late is
//!   *stale*: it is logged as skipped and changes nothing. A change older than the last
//!   snapshot of its audience (its *snapshot floor*, see [`crate::snapshot::Floor`]) is
//!   logged as superseded by that snapshot and changes nothing either, whatever its key.
//! - **acknowledged**: the last version Iterable confirmed for the key.
//! - **pending**: the desired version is neither acknowledged nor settled otherwise (rejected by
//!   Iterable, or superseded by the reconciler) and its next attempt is due.

pub mod admin;
mod coordination;
mod engine;
mod error;
mod handle;
pub mod holds;
mod rows;
mod state;
pub(crate) mod transfer;
mod verifies;

pub use admin::{
    MAX_ADMIN_ROWS, OperatorPause, RETRIED_REASON, RejectedKey, UserKey, UserQuery, UserState,
    VersionEvent,
};
pub(crate) use coordination::slots_after;
pub use coordination::{Lease, RateCut};
pub use engine::{Engine, StoreFuture};
pub use error::StoreError;
pub use handle::Store;
pub use holds::{
    GuardVerdict, HELD_MS, HELD_REASON, HoldAction, RemovalFigures, RemovalHold, RemovalPolicy,
};
pub(crate) use rows::EVENT_AUDIENCES_READ;
pub use rows::{
    Applied, AudienceKey, AudienceStatus, ChangeSettings, EVENT_AUDIENCES_SHOWN, EventContent,
    EventCounts, EventRecord, Identity, ListCounts, MembershipChange, NewEvent, Outcome,
    OutcomeRow, PendingRow, RECREATED, Receipt, Recorded, Seq, StatusKind, Version,
};
pub use state::DestinationState;
pub use transfer::{
    Acknowledged, CopyBatch, DesiredEntry, Export, KeyState, ListEntry, LoggedChange, LoggedEvent,
    StoredState, TableCounts,
};
pub use verifies::VerifyRecord;

/// An event that joins one user (by email) to one audience, for the engines' unit tests.
#[cfg(test)]
pub(crate) fn joining_event(
    destination: &str,
    message_id: &str,
    audience_key: &str,
    email: &str,
) -> NewEvent {
    NewEvent {
        destination: destination.into(),
        message_id: message_id.into(),
        received_ms: 1,
        content: EventContent::Changes(vec![MembershipChange {
            audience_key: audience_key.into(),
            list_id: None,
            identity: Identity::new(Some(email), None),
            member: true,
            data_fields: None,
            settings: ChangeSettings::default(),
            time_ms: Some(1),
        }]),
        ignored_settings: Vec::new(),
    }
}
