//! The Iterable Lists destination as pure logic, with no I/O: settings, the action's fields
//! and mapping, per-event validation, planning into requests, and response classification.
//!
//! It reproduces Segment's "Iterable Lists (Actions)" destination behaviour by behaviour and
//! fixes its weaknesses; the README lists each deliberate difference.

pub mod audience;
mod body;
pub mod classify;
pub mod fast;
pub mod fields;
pub mod plan;
pub mod prepare;
pub mod settings;

pub use audience::{AudienceSettings, IgnoredSetting, SettingName};
pub use classify::{Classified, RowOutcome, SentRow, classify};
pub use fields::{ActionMapping, FieldsError, SyncPayload};
pub use plan::{
    Change, EventOutcome, EventStatus, Limits, Operation, Plan, PlannedRequest, Planner, Refused,
};
pub use prepare::Prepared;
pub use settings::{ApiKey, ProjectType, Region, Settings, SettingsError};
