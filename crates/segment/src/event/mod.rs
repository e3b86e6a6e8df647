//! The Segment event model: any Segment event read leniently from JSON, with typed accessors
//! that borrow from the original object (kept whole for mapping-kit), and its event time.
//!
//! # What is checked, what is kept
//!
//! [`Event::from_value`] takes ownership of the parsed JSON and never copies it. It checks only
//! what this service relies on, and keeps every other member untouched (unknown fields, the
//! `integrations` object, `version`, …), so the mapping-kit sees the event as Segment sent it:
//!
//! | field | accepted | otherwise |
//! |---|---|---|
//! | the event itself | a JSON object | [`EventError::NotAnObject`] |
//! | `type` | a non-empty string; `identify`, `track`, `page`, `screen`, `group`, `alias` or anything else ([`EventType::Other`]) | [`EventError::Missing`], [`EventError::WrongType`], [`EventError::Empty`] |
//! | `userId`, `anonymousId`, `messageId`, `context.personas.computation_id`, `context.personas.external_audience_id` | a string, or a number, which is **rewritten in place as its string form** (Segment coerces numeric ids the same way, V16) | [`EventError::WrongType`] |
//! | `event`, `context.personas.{computation_class, computation_key, namespace, space_id}` | a string | [`EventError::WrongType`] |
//! | `traits`, `properties`, `context`, `context.traits`, `context.personas` | an object | [`EventError::WrongType`] |
//!
//! A member whose value is `null` counts as absent everywhere (it is still kept in the stored
//! event). `context.personas.audience_settings` is kept whatever its type: the destination
//! reads it leniently (a bad setting is ignored and reported, never fatal), and
//! [`Personas::audience_settings`] gives it only when it is an object. Only identify and track
//! events carry audience membership; the other types are accepted and reported by
//! [`Event::ensure_handled`] as not handled by this destination.
//!
//! # Event time
//!
//! [`Event::event_time`] reads the first of `timestamp`, `originalTimestamp`, `sentAt`,
//! `receivedAt` that is present (not absent, not `null`) and parses it with
//! [`parse_timestamp_ms`]. A present but unreadable field is an error naming that field; it does
//! not fall back to the next one, because a silently different time would reorder updates.
//! The timestamps are checked only there, so an event whose unused `sentAt` is odd still parses.
//!
//! # Timestamp syntax ([`parse_timestamp_ms`])
//!
//! RFC 3339 plus the relaxations of Segment's own ISO-8601 reader (`@segment/isodate`, used by
//! analytics.js and analytics-node):
//!
//! ```text
//! date       = YYYY "-" MM "-" DD                               ; alone: midnight UTC
//! date-time  = date ("T" | "t" | " ") hh ":" mm [":" ss [("." | ",") 1*DIGIT]] [offset]
//! offset     = "Z" | "z" | ("+" | "-") hh [[":"] mm]            ; none: UTC
//! ```
//!
//! Fractional digits beyond milliseconds are truncated (as Segment does), a leap second `:60`
//! reads as `:59.999`, years are 0000–9999 of the proleptic Gregorian calendar, and every field
//! is range-checked (month, day of that month, hour ≤ 23, minute ≤ 59, offset ≤ 23:59).
//! Anything else — surrounding spaces, a year alone, the basic `20240101` form, `24:00`, epoch
//! numbers — is rejected with the position and reason ([`TimestampError`]). After a space
//! separator Segment's reader ignores any offset and uses the *server's* local zone; we honour
//! the offset and read a missing one as UTC, which does not depend on where the service runs.
//!
//! # Where it is
//!
//! This file holds [`Event`] and its accessors; `checks`, what [`Event::from_value`] checks and
//! coerces; `time`, the event time; `timestamp`, the timestamp syntax, on `calendar`'s date
//! arithmetic; `json_kind`, `event_type`, `personas` and `error`, the types they give.

mod calendar;
mod checks;
mod error;
mod event_type;
mod json_kind;
mod personas;
mod time;
mod timestamp;

pub use error::EventError;
pub(crate) use error::abbreviate;
pub use event_type::EventType;
pub use json_kind::JsonKind;
pub use personas::{ComputationClass, Personas};
pub use time::{EventTime, TimeField};
pub use timestamp::{TimestampError, format_timestamp_ms, parse_timestamp_ms};

use serde_json::{Map, Value};

use checks::{check_context, check_kind, coerce_id, read_type};

/// A Segment event: the original JSON object, plus its type read once.
///
/// Accessors borrow from the stored JSON; nothing is copied. Use [`Event::as_value`] to resolve
/// a mapping against the event.
///
/// ```
/// use segment::event::{Event, EventType};
/// use serde_json::json;
///
/// let event = Event::from_value(json!({
///     "type": "identify",
///     "userId": 42,
///     "traits": {"vip": true},
///     "timestamp": "2024-02-29T12:00:00.5+01:00",
///     "context": {"personas": {"computation_class": "audience", "computation_key": "vip"}}
/// }))?;
/// assert_eq!(event.event_type(), &EventType::Identify);
/// assert_eq!(event.user_id(), Some("42"));
/// assert_eq!(event.event_time_ms()?, Some(1_709_204_400_500));
/// assert_eq!(event.personas().and_then(|p| p.computation_key()), Some("vip"));
/// # Ok::<(), segment::event::EventError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    raw: Value,
    event_type: EventType,
}

impl Event {
    /// Reads an event, checking and normalising only the fields listed in the module docs.
    pub fn from_value(mut raw: Value) -> Result<Event, EventError> {
        let Value::Object(map) = &mut raw else {
            return Err(EventError::NotAnObject {
                found: JsonKind::of(&raw),
            });
        };

        // One pass over the members (cheaper than a hashed lookup per known field).
        let mut event_type = None;
        for (key, value) in map.iter_mut() {
            match key.as_str() {
                "type" => event_type = Some(read_type(value)?),
                "userId" => coerce_id(value, "userId")?,
                "anonymousId" => coerce_id(value, "anonymousId")?,
                "messageId" => coerce_id(value, "messageId")?,
                "event" => check_kind(value, "event", JsonKind::String)?,
                "traits" => check_kind(value, "traits", JsonKind::Object)?,
                "properties" => check_kind(value, "properties", JsonKind::Object)?,
                "context" => check_context(value)?,
                _ => {}
            }
        }
        let event_type = event_type.ok_or(EventError::Missing { field: "type" })?;

        Ok(Event { raw, event_type })
    }

    /// The whole event as received (after id coercion); resolve mappings against this.
    pub fn as_value(&self) -> &Value {
        &self.raw
    }

    /// Gives the stored JSON back.
    pub fn into_value(self) -> Value {
        self.raw
    }

    /// The event's `type`.
    pub fn event_type(&self) -> &EventType {
        &self.event_type
    }

    /// `Ok` for identify and track events, else [`EventError::NotHandled`].
    pub fn ensure_handled(&self) -> Result<(), EventError> {
        if self.event_type.is_handled() {
            Ok(())
        } else {
            Err(EventError::NotHandled {
                event_type: self.event_type.clone(),
            })
        }
    }

    /// A top-level member that is present and not `null`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        present(self.raw.get(key))
    }

    /// `userId` (a number was turned into its string form). May be empty.
    pub fn user_id(&self) -> Option<&str> {
        self.get("userId").and_then(Value::as_str)
    }

    /// `anonymousId` (a number was turned into its string form). May be empty.
    pub fn anonymous_id(&self) -> Option<&str> {
        self.get("anonymousId").and_then(Value::as_str)
    }

    /// `messageId`, Segment's de-duplication key.
    pub fn message_id(&self) -> Option<&str> {
        self.get("messageId").and_then(Value::as_str)
    }

    /// `event`: the name of a track event (`Audience Entered`, or `new`/`updated`/`deleted`
    /// for reverse-ETL rows).
    pub fn event_name(&self) -> Option<&str> {
        self.get("event").and_then(Value::as_str)
    }

    /// Top-level `traits` (identify events).
    pub fn traits(&self) -> Option<&Map<String, Value>> {
        self.get("traits").and_then(Value::as_object)
    }

    /// `properties` (track events).
    pub fn properties(&self) -> Option<&Map<String, Value>> {
        self.get("properties").and_then(Value::as_object)
    }

    /// `context`.
    pub fn context(&self) -> Option<&Map<String, Value>> {
        self.get("context").and_then(Value::as_object)
    }

    /// `context.traits` (where Engage puts the email on track events).
    pub fn context_traits(&self) -> Option<&Map<String, Value>> {
        self.context()
            .and_then(|context| present(context.get("traits")))
            .and_then(Value::as_object)
    }

    /// `context.personas`, the Engage computation that produced this event.
    pub fn personas(&self) -> Option<Personas<'_>> {
        self.context()
            .and_then(|context| present(context.get("personas")))
            .and_then(Value::as_object)
            .map(|map| Personas { map })
    }

    /// `context.personas.computation_class`, if any.
    pub fn computation_class(&self) -> Option<ComputationClass<'_>> {
        self.personas()
            .and_then(|personas| personas.computation_class())
    }
}

fn present(value: Option<&Value>) -> Option<&Value> {
    value.filter(|value| !value.is_null())
}
