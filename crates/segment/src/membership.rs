//! The membership resolver: decides whether an event adds its user to the audience's list or
//! removes them, and rejects, with a reason, every value that does not clearly say which.
//!
//! # Input
//!
//! The value found in the mapped `traitsOrProperties` object at the audience key (`None` when
//! the key, or the object, is missing), plus a [`MembershipContext`]: the event type, the track
//! event name, `context.personas.computation_class`, and the reverse-ETL sync mode configured
//! for the destination, if any.
//!
//! # Rules, applied in this order
//!
//! 1. Only identify and track events carry membership; any other type is
//!    [`MembershipError::NotHandled`].
//! 2. **Reverse ETL.** When a sync mode is configured, the event is a track event, it is not an
//!    Engage computation (its class is neither `audience` nor `journey_step`) and its name is
//!    `new`, `updated` or `deleted`, the sync mode alone decides (the value is not read), as in
//!    Segment's `retlAudienceMembership` (`packages/core/src/audience-membership.ts`):
//!
//!    | sync mode | `new` | `updated` | `deleted` |
//!    |---|---|---|---|
//!    | `add` | add | – | – |
//!    | `update` | – | add | – |
//!    | `upsert` | add | add | – |
//!    | `delete` | – | – | remove |
//!    | `mirror` | add | add | remove |
//!
//!    A `–` pair is [`MembershipError::RetlNotSynced`] (Segment's `undefined`): the row is not
//!    part of what the sync mode syncs, so it changes nothing.
//! 3. **Flags.** JSON `true` and the string `"true"` add; JSON `false` and the string `"false"`
//!    remove. The strings are compared ignoring ASCII case (`"TRUE"`, `"False"`: warehouses and
//!    Python export booleans that way) but nothing else: no trimming, no other spellings.
//!    This holds whatever the computation class (a boolean the mapping points at is explicit).
//! 4. **Journeys steps.** A `journey_step` event with no value (key missing, or `null`) adds:
//!    Journeys step events carry no membership flag and only ever mean "entered"; Journeys never
//!    removes anyone (Segment's e2e helpers and its `legacyJourneysAudienceMembership` say so).
//! 5. **Everything else is rejected**, never read as an exit: a missing value
//!    ([`MembershipError::Missing`]), `null` ([`MembershipError::Null`]), and numbers, other
//!    strings (`"yes"`, `"1"`, `""`, `" true"`), objects and arrays
//!    ([`MembershipError::NotAFlag`], naming the value).
//!
//! # Where this differs from Segment (V29, V30, V31, F.8)
//!
//! Segment's NEW destination subscribes when `traitsOrProperties[key]` is JavaScript-truthy and
//! unsubscribes otherwise; LEGACY subscribes only on `=== true`. Neither reads the class or a
//! sync mode. So Segment NEW subscribes on `"false"`, `1`, `"yes"`, `{}` and `[]`, and
//! unsubscribes on `0`, `""`, `null` and a missing key, which removes Journeys users who just
//! entered a step (V30) and turns a track entry into an exit when a stray empty `traits` hides
//! `properties` (V31). Here `"false"` removes, Journeys steps add, and every ambiguous value is
//! an error the operator can see, so a mapping mistake never silently empties a list.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

use crate::event::{ComputationClass, Event, EventType, JsonKind, abbreviate};

/// The outcome: put the user on the list, or take them off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Membership {
    Add,
    Remove,
}

impl Membership {
    /// Whether the user should be on the list.
    pub fn is_member(self) -> bool {
        matches!(self, Membership::Add)
    }

    /// `add` or `remove`.
    pub fn as_str(self) -> &'static str {
        match self {
            Membership::Add => "add",
            Membership::Remove => "remove",
        }
    }
}

impl fmt::Display for Membership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A reverse-ETL sync mode (Segment's `SyncMode`): which warehouse row changes the destination
/// syncs, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RetlSyncMode {
    /// New rows add.
    Add,
    /// Updated rows add.
    Update,
    /// New and updated rows add.
    Upsert,
    /// Deleted rows remove.
    Delete,
    /// New and updated rows add, deleted rows remove.
    Mirror,
}

impl RetlSyncMode {
    /// Every mode.
    pub const ALL: [RetlSyncMode; 5] = [
        RetlSyncMode::Add,
        RetlSyncMode::Update,
        RetlSyncMode::Upsert,
        RetlSyncMode::Delete,
        RetlSyncMode::Mirror,
    ];

    /// The name Segment uses.
    pub fn as_str(self) -> &'static str {
        match self {
            RetlSyncMode::Add => "add",
            RetlSyncMode::Update => "update",
            RetlSyncMode::Upsert => "upsert",
            RetlSyncMode::Delete => "delete",
            RetlSyncMode::Mirror => "mirror",
        }
    }

    /// What a row change means in this mode; `None` when the mode does not sync it.
    pub fn membership(self, operation: RetlOperation) -> Option<Membership> {
        use RetlOperation::{Deleted, New, Updated};
        match (self, operation) {
            (RetlSyncMode::Add, New)
            | (RetlSyncMode::Update, Updated)
            | (RetlSyncMode::Upsert | RetlSyncMode::Mirror, New | Updated) => Some(Membership::Add),
            (RetlSyncMode::Delete | RetlSyncMode::Mirror, Deleted) => Some(Membership::Remove),
            _ => None,
        }
    }

    /// The rows this mode syncs, for messages.
    pub fn synced_rows(self) -> &'static str {
        match self {
            RetlSyncMode::Add => "only `new` rows",
            RetlSyncMode::Update => "only `updated` rows",
            RetlSyncMode::Upsert => "only `new` and `updated` rows",
            RetlSyncMode::Delete => "only `deleted` rows",
            RetlSyncMode::Mirror => "`new`, `updated` and `deleted` rows",
        }
    }
}

impl fmt::Display for RetlSyncMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A sync-mode name that is not one of `add`, `update`, `upsert`, `delete`, `mirror`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown reverse-ETL sync mode {0:?}; expected add, update, upsert, delete or mirror")]
pub struct UnknownSyncMode(pub String);

impl FromStr for RetlSyncMode {
    type Err = UnknownSyncMode;

    /// Exact, lower-case names, as Segment stores them.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        RetlSyncMode::ALL
            .into_iter()
            .find(|mode| mode.as_str() == name)
            .ok_or_else(|| UnknownSyncMode(name.to_owned()))
    }
}

/// A reverse-ETL row change, named by the track event's `event`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RetlOperation {
    New,
    Updated,
    Deleted,
}

impl RetlOperation {
    /// Reads an event name; exact, as Segment compares it.
    pub fn from_event_name(name: &str) -> Option<Self> {
        match name {
            "new" => Some(RetlOperation::New),
            "updated" => Some(RetlOperation::Updated),
            "deleted" => Some(RetlOperation::Deleted),
            _ => None,
        }
    }

    /// The event name.
    pub fn as_str(self) -> &'static str {
        match self {
            RetlOperation::New => "new",
            RetlOperation::Updated => "updated",
            RetlOperation::Deleted => "deleted",
        }
    }
}

impl fmt::Display for RetlOperation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the resolver needs to know about the event besides the value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MembershipContext<'a> {
    /// `context.personas.computation_class`.
    pub computation_class: Option<ComputationClass<'a>>,
    /// The event's `type`.
    pub event_type: &'a EventType,
    /// The track event's `event`.
    pub event_name: Option<&'a str>,
    /// The destination's reverse-ETL sync mode, if it syncs reverse-ETL models.
    pub retl_sync_mode: Option<RetlSyncMode>,
}

impl<'a> MembershipContext<'a> {
    /// The context of `event`, borrowed from it.
    pub fn of_event(event: &'a Event, retl_sync_mode: Option<RetlSyncMode>) -> Self {
        MembershipContext {
            computation_class: event.computation_class(),
            event_type: event.event_type(),
            event_name: event.event_name(),
            retl_sync_mode,
        }
    }
}

/// Why no membership could be decided. The messages are meant for operators.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MembershipError {
    #[error(
        "a `{event_type}` event carries no audience membership (only identify and track events do)"
    )]
    NotHandled { event_type: EventType },
    #[error(
        "reverse-ETL sync mode `{mode}` does not sync `{operation}` rows (it syncs {synced})",
        synced = .mode.synced_rows()
    )]
    RetlNotSynced {
        mode: RetlSyncMode,
        operation: RetlOperation,
    },
    #[error(
        "no membership value at the audience key{class}; expected true or false",
        class = describe_class(.computation_class.as_deref())
    )]
    Missing { computation_class: Option<String> },
    #[error("the membership value is null; expected true or false")]
    Null,
    #[error(
        "the membership value {value} ({found}) is not a membership flag; expected true, false, \"true\" or \"false\""
    )]
    NotAFlag {
        /// The value as JSON, cut to 64 characters.
        value: String,
        found: JsonKind,
    },
}

fn describe_class(class: Option<&str>) -> String {
    match class {
        Some(class) => format!(" (computation class `{class}`)"),
        None => String::new(),
    }
}

/// Decides the membership an event expresses; the rules are in the module docs.
///
/// ```
/// use segment::event::{ComputationClass, EventType};
/// use segment::membership::{Membership, MembershipContext, resolve_membership};
/// use serde_json::json;
///
/// let context = MembershipContext {
///     computation_class: Some(ComputationClass::Audience),
///     event_type: &EventType::Identify,
///     event_name: None,
///     retl_sync_mode: None,
/// };
/// assert_eq!(resolve_membership(Some(&json!("False")), &context), Ok(Membership::Remove));
/// assert!(resolve_membership(Some(&json!(0)), &context).is_err());
/// ```
pub fn resolve_membership(
    value: Option<&Value>,
    context: &MembershipContext<'_>,
) -> Result<Membership, MembershipError> {
    if !context.event_type.is_handled() {
        return Err(MembershipError::NotHandled {
            event_type: context.event_type.clone(),
        });
    }

    if let Some((mode, operation)) = retl_change(context) {
        return mode
            .membership(operation)
            .ok_or(MembershipError::RetlNotSynced { mode, operation });
    }

    match value {
        Some(Value::Bool(true)) => Ok(Membership::Add),
        Some(Value::Bool(false)) => Ok(Membership::Remove),
        Some(Value::String(text)) if text.eq_ignore_ascii_case("true") => Ok(Membership::Add),
        Some(Value::String(text)) if text.eq_ignore_ascii_case("false") => Ok(Membership::Remove),
        None | Some(Value::Null)
            if context.computation_class == Some(ComputationClass::JourneyStep) =>
        {
            Ok(Membership::Add)
        }
        None => Err(MembershipError::Missing {
            computation_class: context
                .computation_class
                .map(|class| class.as_str().to_owned()),
        }),
        Some(Value::Null) => Err(MembershipError::Null),
        Some(other) => Err(MembershipError::NotAFlag {
            value: abbreviate(other),
            found: JsonKind::of(other),
        }),
    }
}

/// The sync mode and the row change of a reverse-ETL track event; `None` when no sync mode is
/// configured, for other events, and for Engage computations.
fn retl_change(context: &MembershipContext<'_>) -> Option<(RetlSyncMode, RetlOperation)> {
    let mode = context.retl_sync_mode?;
    if *context.event_type != EventType::Track
        || matches!(
            context.computation_class,
            Some(ComputationClass::Audience | ComputationClass::JourneyStep)
        )
    {
        return None;
    }
    let operation = context
        .event_name
        .and_then(RetlOperation::from_event_name)?;
    Some((mode, operation))
}

#[cfg(test)]
mod tests {
    use super::*;
    use RetlOperation::{Deleted, New, Updated};

    /// The whole sync-mode matrix, cell by cell (the `–` cells of the module table are `None`).
    #[test]
    fn retl_matrix() {
        let add = Some(Membership::Add);
        let remove = Some(Membership::Remove);
        let cases = [
            (RetlSyncMode::Add, [add, None, None]),
            (RetlSyncMode::Update, [None, add, None]),
            (RetlSyncMode::Upsert, [add, add, None]),
            (RetlSyncMode::Delete, [None, None, remove]),
            (RetlSyncMode::Mirror, [add, add, remove]),
        ];
        for (mode, expected) in cases {
            for (operation, want) in [New, Updated, Deleted].into_iter().zip(expected) {
                assert_eq!(mode.membership(operation), want, "{mode} × {operation}");
            }
        }
    }

    #[test]
    fn sync_mode_names_round_trip_and_reject_others() {
        for mode in RetlSyncMode::ALL {
            assert_eq!(mode.as_str().parse::<RetlSyncMode>(), Ok(mode));
            let json = serde_json::to_value(mode).map_err(|e| e.to_string());
            assert_eq!(json, Ok(Value::String(mode.as_str().to_owned())));
        }
        for bad in ["", "Add", "MIRROR", "sync", " add"] {
            assert_eq!(
                bad.parse::<RetlSyncMode>(),
                Err(UnknownSyncMode(bad.to_owned()))
            );
        }
    }

    #[test]
    fn retl_operations_are_exact() {
        assert_eq!(RetlOperation::from_event_name("new"), Some(New));
        assert_eq!(RetlOperation::from_event_name("updated"), Some(Updated));
        assert_eq!(RetlOperation::from_event_name("deleted"), Some(Deleted));
        for other in ["New", "delete", "", "Audience Entered"] {
            assert_eq!(RetlOperation::from_event_name(other), None, "{other}");
        }
    }

    #[test]
    fn messages_name_the_value_and_the_reason() {
        let cases = [
            (
                MembershipError::NotAFlag {
                    value: "\"yes\"".into(),
                    found: JsonKind::String,
                },
                "the membership value \"yes\" (a string) is not a membership flag; expected true, false, \"true\" or \"false\"",
            ),
            (
                MembershipError::Missing {
                    computation_class: Some("audience".into()),
                },
                "no membership value at the audience key (computation class `audience`); expected true or false",
            ),
            (
                MembershipError::Missing {
                    computation_class: None,
                },
                "no membership value at the audience key; expected true or false",
            ),
            (
                MembershipError::RetlNotSynced {
                    mode: RetlSyncMode::Add,
                    operation: Deleted,
                },
                "reverse-ETL sync mode `add` does not sync `deleted` rows (it syncs only `new` rows)",
            ),
            (
                MembershipError::NotHandled {
                    event_type: EventType::Page,
                },
                "a `page` event carries no audience membership (only identify and track events do)",
            ),
        ];
        for (error, message) in cases {
            assert_eq!(error.to_string(), message);
        }
    }
}
