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

use std::fmt;

use serde_json::{Map, Number, Value};
use thiserror::Error;

use crate::mapping::number_to_string;

/// The kind of a JSON value, named the way error messages need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JsonKind {
    Null,
    Boolean,
    Number,
    String,
    Array,
    Object,
}

impl JsonKind {
    /// The kind of `value`.
    pub fn of(value: &Value) -> Self {
        match value {
            Value::Null => JsonKind::Null,
            Value::Bool(_) => JsonKind::Boolean,
            Value::Number(_) => JsonKind::Number,
            Value::String(_) => JsonKind::String,
            Value::Array(_) => JsonKind::Array,
            Value::Object(_) => JsonKind::Object,
        }
    }

    /// The name with its article, e.g. `an array`.
    pub fn with_article(self) -> &'static str {
        match self {
            JsonKind::Null => "null",
            JsonKind::Boolean => "a boolean",
            JsonKind::Number => "a number",
            JsonKind::String => "a string",
            JsonKind::Array => "an array",
            JsonKind::Object => "an object",
        }
    }
}

impl fmt::Display for JsonKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.with_article())
    }
}

/// Segment's `type` field.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EventType {
    Identify,
    Track,
    Page,
    Screen,
    Group,
    Alias,
    /// Any other (non-empty) type, kept as sent.
    Other(String),
}

impl EventType {
    /// Reads a `type` value; the spelling must be exact (Segment's types are lower case).
    pub fn parse(name: &str) -> Self {
        match name {
            "identify" => EventType::Identify,
            "track" => EventType::Track,
            "page" => EventType::Page,
            "screen" => EventType::Screen,
            "group" => EventType::Group,
            "alias" => EventType::Alias,
            other => EventType::Other(other.to_owned()),
        }
    }

    /// The `type` value as Segment spells it.
    pub fn as_str(&self) -> &str {
        match self {
            EventType::Identify => "identify",
            EventType::Track => "track",
            EventType::Page => "page",
            EventType::Screen => "screen",
            EventType::Group => "group",
            EventType::Alias => "alias",
            EventType::Other(other) => other,
        }
    }

    /// Whether this destination acts on events of this type (identify and track only, like
    /// Segment's `type = "identify" or type = "track"` subscription).
    pub fn is_handled(&self) -> bool {
        matches!(self, EventType::Identify | EventType::Track)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `context.personas.computation_class`: what Engage computed. Compared exactly, as Segment does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ComputationClass<'a> {
    /// `audience`: an Engage audience (also Linked Audiences).
    Audience,
    /// `journey_step`: a Journeys step.
    JourneyStep,
    /// `trait`: a computed trait.
    Trait,
    /// Anything else, as sent.
    Other(&'a str),
}

impl<'a> ComputationClass<'a> {
    /// Reads a `computation_class` value.
    pub fn parse(name: &'a str) -> Self {
        match name {
            "audience" => ComputationClass::Audience,
            "journey_step" => ComputationClass::JourneyStep,
            "trait" => ComputationClass::Trait,
            other => ComputationClass::Other(other),
        }
    }

    /// The value as Segment spells it.
    pub fn as_str(self) -> &'a str {
        match self {
            ComputationClass::Audience => "audience",
            ComputationClass::JourneyStep => "journey_step",
            ComputationClass::Trait => "trait",
            ComputationClass::Other(other) => other,
        }
    }
}

impl fmt::Display for ComputationClass<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The four Segment timestamps, in the order [`Event::event_time`] tries them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeField {
    Timestamp,
    OriginalTimestamp,
    SentAt,
    ReceivedAt,
}

impl TimeField {
    /// All four, in order of preference.
    pub const PREFERENCE: [TimeField; 4] = [
        TimeField::Timestamp,
        TimeField::OriginalTimestamp,
        TimeField::SentAt,
        TimeField::ReceivedAt,
    ];

    /// The JSON member name.
    pub fn key(self) -> &'static str {
        match self {
            TimeField::Timestamp => "timestamp",
            TimeField::OriginalTimestamp => "originalTimestamp",
            TimeField::SentAt => "sentAt",
            TimeField::ReceivedAt => "receivedAt",
        }
    }
}

impl fmt::Display for TimeField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// An event's time and the field it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventTime {
    /// Milliseconds since 1970-01-01T00:00:00Z (negative before).
    pub ms: i64,
    /// Which field held it.
    pub field: TimeField,
}

/// Why an event cannot be read (or used). Every variant names the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EventError {
    #[error("the event must be a JSON object but it was {found}")]
    NotAnObject { found: JsonKind },
    #[error("the event has no `{field}`")]
    Missing { field: &'static str },
    #[error("`{field}` must be {expected} but it was {found}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
        found: JsonKind,
    },
    #[error("`{field}` is empty")]
    Empty { field: &'static str },
    #[error("`{field}` must be an ISO-8601 timestamp string but it was {found}")]
    TimestampNotString { field: TimeField, found: JsonKind },
    #[error("`{field}` is not a valid timestamp ({value}): {reason}")]
    BadTimestamp {
        field: TimeField,
        /// The value as JSON, cut to 64 characters.
        value: String,
        reason: TimestampError,
    },
    #[error(
        "`type` is `{event_type}`, which this destination does not handle (only identify and track events carry audience membership)"
    )]
    NotHandled { event_type: EventType },
}

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

    /// The raw value of one of the four timestamp fields, if present (not `null`).
    pub fn time_field(&self, field: TimeField) -> Option<&Value> {
        self.get(field.key())
    }

    /// The event time: the first present of `timestamp`, `originalTimestamp`, `sentAt`,
    /// `receivedAt`, parsed; `Ok(None)` when none is present. A present field that is not a
    /// valid timestamp is an error naming it (no fallback to the next field).
    pub fn event_time(&self) -> Result<Option<EventTime>, EventError> {
        for field in TimeField::PREFERENCE {
            let Some(value) = self.time_field(field) else {
                continue;
            };
            let Value::String(text) = value else {
                return Err(EventError::TimestampNotString {
                    field,
                    found: JsonKind::of(value),
                });
            };
            return match parse_timestamp_ms(text) {
                Ok(ms) => Ok(Some(EventTime { ms, field })),
                Err(reason) => Err(EventError::BadTimestamp {
                    field,
                    value: abbreviate(value),
                    reason,
                }),
            };
        }
        Ok(None)
    }

    /// [`Event::event_time`] as epoch milliseconds.
    pub fn event_time_ms(&self) -> Result<Option<i64>, EventError> {
        Ok(self.event_time()?.map(|time| time.ms))
    }
}

/// A borrowed view of `context.personas`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Personas<'a> {
    map: &'a Map<String, Value>,
}

impl<'a> Personas<'a> {
    /// The whole `context.personas` object.
    pub fn as_map(self) -> &'a Map<String, Value> {
        self.map
    }

    fn str_field(self, key: &str) -> Option<&'a str> {
        present(self.map.get(key)).and_then(Value::as_str)
    }

    /// `computation_class`.
    pub fn computation_class(self) -> Option<ComputationClass<'a>> {
        self.str_field("computation_class")
            .map(ComputationClass::parse)
    }

    /// `computation_id` (e.g. `aud_…`).
    pub fn computation_id(self) -> Option<&'a str> {
        self.str_field("computation_id")
    }

    /// `computation_key`: the audience key (the Iterable list name).
    pub fn computation_key(self) -> Option<&'a str> {
        self.str_field("computation_key")
    }

    /// `namespace`.
    pub fn namespace(self) -> Option<&'a str> {
        self.str_field("namespace")
    }

    /// `space_id`.
    pub fn space_id(self) -> Option<&'a str> {
        self.str_field("space_id")
    }

    /// `external_audience_id`: the Iterable list id Engage stored at audience creation.
    pub fn external_audience_id(self) -> Option<&'a str> {
        self.str_field("external_audience_id")
    }

    /// `audience_settings`: the per-audience settings object.
    pub fn audience_settings(self) -> Option<&'a Map<String, Value>> {
        present(self.map.get("audience_settings")).and_then(Value::as_object)
    }
}

fn present(value: Option<&Value>) -> Option<&Value> {
    value.filter(|value| !value.is_null())
}

fn read_type(value: &Value) -> Result<EventType, EventError> {
    match value {
        Value::Null => Err(EventError::Missing { field: "type" }),
        Value::String(name) if name.is_empty() => Err(EventError::Empty { field: "type" }),
        Value::String(name) => Ok(EventType::parse(name)),
        other => Err(EventError::WrongType {
            field: "type",
            expected: "a string",
            found: JsonKind::of(other),
        }),
    }
}

fn check_context(context: &mut Value) -> Result<(), EventError> {
    check_kind(context, "context", JsonKind::Object)?;
    let Value::Object(context) = context else {
        return Ok(()); // null
    };
    for (key, value) in context.iter_mut() {
        match key.as_str() {
            "traits" => check_kind(value, "context.traits", JsonKind::Object)?,
            "personas" => check_personas(value)?,
            _ => {}
        }
    }
    Ok(())
}

fn check_personas(personas: &mut Value) -> Result<(), EventError> {
    check_kind(personas, "context.personas", JsonKind::Object)?;
    let Value::Object(personas) = personas else {
        return Ok(()); // null
    };
    for (key, value) in personas.iter_mut() {
        match key.as_str() {
            "computation_id" => coerce_id(value, "context.personas.computation_id")?,
            "external_audience_id" => {
                coerce_id(value, "context.personas.external_audience_id")?;
            }
            "computation_class" => {
                check_kind(
                    value,
                    "context.personas.computation_class",
                    JsonKind::String,
                )?;
            }
            "computation_key" => {
                check_kind(value, "context.personas.computation_key", JsonKind::String)?;
            }
            "namespace" => check_kind(value, "context.personas.namespace", JsonKind::String)?,
            "space_id" => check_kind(value, "context.personas.space_id", JsonKind::String)?,
            // `audience_settings` is not checked: a bad setting must never make the event
            // unusable; the destination ignores what it cannot use and reports it.
            _ => {}
        }
    }
    Ok(())
}

/// A string stays, a number becomes its string form, `null` is fine.
fn coerce_id(value: &mut Value, field: &'static str) -> Result<(), EventError> {
    match value {
        Value::Null | Value::String(_) => Ok(()),
        Value::Number(number) => {
            let text = id_from_number(number);
            *value = Value::String(text);
            Ok(())
        }
        other => Err(EventError::WrongType {
            field,
            expected: "a string or a number",
            found: JsonKind::of(other),
        }),
    }
}

/// Integers exactly as written; other numbers as JavaScript's `String(n)` writes them.
fn id_from_number(number: &Number) -> String {
    if let Some(n) = number.as_i64() {
        n.to_string()
    } else if let Some(n) = number.as_u64() {
        n.to_string()
    } else {
        number_to_string(number.as_f64().unwrap_or(f64::NAN))
    }
}

/// `value` is `null` or of `kind`.
fn check_kind(value: &Value, field: &'static str, kind: JsonKind) -> Result<(), EventError> {
    let found = JsonKind::of(value);
    if found == kind || found == JsonKind::Null {
        return Ok(());
    }
    Err(EventError::WrongType {
        field,
        expected: kind.with_article(),
        found,
    })
}

/// `value` as compact JSON, cut to 64 characters (for error messages).
pub(crate) fn abbreviate(value: &Value) -> String {
    const MAX: usize = 64;
    let text = value.to_string();
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

// ---------------------------------------------------------------------------------------------
// Timestamps
// ---------------------------------------------------------------------------------------------

/// Why a timestamp string was rejected; positions are byte offsets into the string.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TimestampError {
    #[error("the timestamp is empty")]
    Empty,
    #[error("expected {expected} at position {at}")]
    Syntax { at: usize, expected: &'static str },
    #[error("unexpected text at position {at} after the timestamp")]
    Trailing { at: usize },
    #[error("{part} {value} is out of range")]
    OutOfRange { part: &'static str, value: u32 },
    #[error("day {day} does not exist in {year:04}-{month:02}")]
    NoSuchDay { year: u32, month: u32, day: u32 },
}

const MS_PER_MINUTE: i64 = 60_000;
const MS_PER_DAY: i64 = 86_400_000;

/// Parses an ISO-8601 / RFC 3339 timestamp (syntax in the module docs) into epoch milliseconds.
pub fn parse_timestamp_ms(text: &str) -> Result<i64, TimestampError> {
    if text.is_empty() {
        return Err(TimestampError::Empty);
    }
    let mut cursor = Cursor {
        bytes: text.as_bytes(),
        at: 0,
    };

    let year = cursor.digits(4, "a four-digit year")?;
    cursor.expect(b'-', "'-' after the year")?;
    let month = cursor.digits(2, "a two-digit month")?;
    cursor.expect(b'-', "'-' after the month")?;
    let day = cursor.digits(2, "a two-digit day")?;
    check_range("month", month, 1, 12)?;
    if day < 1 || day > days_in_month(year, month) {
        return Err(TimestampError::NoSuchDay { year, month, day });
    }
    let days = days_from_civil(i64::from(year), month, day);

    if cursor.done() {
        return Ok(days * MS_PER_DAY);
    }
    match cursor.peek() {
        Some(b'T' | b't' | b' ') => cursor.at += 1,
        _ => return Err(cursor.syntax("'T' or the end after the date")),
    }

    let hour = cursor.digits(2, "a two-digit hour")?;
    cursor.expect(b':', "':' after the hour")?;
    let minute = cursor.digits(2, "a two-digit minute")?;
    check_range("hour", hour, 0, 23)?;
    check_range("minute", minute, 0, 59)?;

    let (mut second, mut millis) = (0, 0);
    if cursor.peek() == Some(b':') {
        cursor.at += 1;
        second = cursor.digits(2, "two-digit seconds")?;
        check_range("second", second, 0, 60)?;
        if matches!(cursor.peek(), Some(b'.' | b',')) {
            cursor.at += 1;
            millis = cursor.fraction_millis()?;
        }
        if second == 60 {
            // A leap second: the last instant before the next minute.
            second = 59;
            millis = 999;
        }
    }

    let offset_minutes = match cursor.peek() {
        None => 0,
        Some(b'Z' | b'z') => {
            cursor.at += 1;
            0
        }
        Some(sign @ (b'+' | b'-')) => {
            cursor.at += 1;
            let hours = cursor.digits(2, "a two-digit offset hour")?;
            check_range("offset hour", hours, 0, 23)?;
            let minutes = match cursor.peek() {
                Some(b':') => {
                    cursor.at += 1;
                    cursor.digits(2, "two-digit offset minutes")?
                }
                Some(b'0'..=b'9') => cursor.digits(2, "two-digit offset minutes")?,
                _ => 0,
            };
            check_range("offset minute", minutes, 0, 59)?;
            let total = i64::from(hours * 60 + minutes);
            if sign == b'-' { -total } else { total }
        }
        Some(_) => return Err(cursor.syntax("'Z', '+hh:mm', '-hh:mm' or the end")),
    };
    if !cursor.done() {
        return Err(TimestampError::Trailing { at: cursor.at });
    }

    let time_ms = i64::from(hour) * 3_600_000
        + i64::from(minute) * MS_PER_MINUTE
        + i64::from(second) * 1_000
        + i64::from(millis);
    Ok(days * MS_PER_DAY + time_ms - offset_minutes * MS_PER_MINUTE)
}

/// Formats epoch milliseconds the way JavaScript's `Date.prototype.toISOString` does:
/// `YYYY-MM-DDTHH:MM:SS.mmmZ`. Years outside 0000–9999 use JavaScript's expanded form
/// (`+YYYYYY`/`-YYYYYY`), which [`parse_timestamp_ms`] does not accept.
pub fn format_timestamp_ms(ms: i64) -> String {
    let days = ms.div_euclid(MS_PER_DAY);
    let in_day = ms.rem_euclid(MS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    let hour = in_day / 3_600_000;
    let minute = in_day / MS_PER_MINUTE % 60;
    let second = in_day / 1_000 % 60;
    let millis = in_day % 1_000;
    let year = if (0..=9999).contains(&year) {
        format!("{year:04}")
    } else if year < 0 {
        format!("-{:06}", -year)
    } else {
        format!("+{year:06}")
    };
    format!("{year}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{millis:03}Z")
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn done(&self) -> bool {
        self.at >= self.bytes.len()
    }

    fn syntax(&self, expected: &'static str) -> TimestampError {
        TimestampError::Syntax {
            at: self.at,
            expected,
        }
    }

    fn expect(&mut self, byte: u8, expected: &'static str) -> Result<(), TimestampError> {
        if self.peek() == Some(byte) {
            self.at += 1;
            Ok(())
        } else {
            Err(self.syntax(expected))
        }
    }

    /// Exactly `count` ASCII digits.
    fn digits(&mut self, count: usize, expected: &'static str) -> Result<u32, TimestampError> {
        let mut value = 0;
        for _ in 0..count {
            match self.peek() {
                Some(digit @ b'0'..=b'9') => {
                    value = value * 10 + u32::from(digit - b'0');
                    self.at += 1;
                }
                _ => return Err(self.syntax(expected)),
            }
        }
        Ok(value)
    }

    /// One or more digits of a fraction of a second, truncated to milliseconds.
    fn fraction_millis(&mut self) -> Result<u32, TimestampError> {
        let start = self.at;
        let mut millis = 0;
        while let Some(digit @ b'0'..=b'9') = self.peek() {
            if self.at - start < 3 {
                millis = millis * 10 + u32::from(digit - b'0');
            }
            self.at += 1;
        }
        match self.at - start {
            0 => Err(self.syntax("a digit of the fraction of a second")),
            1 => Ok(millis * 100),
            2 => Ok(millis * 10),
            _ => Ok(millis),
        }
    }
}

fn check_range(part: &'static str, value: u32, min: u32, max: u32) -> Result<(), TimestampError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(TimestampError::OutOfRange { part, value })
    }
}

fn is_leap_year(year: u32) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date. Counts in 400-year eras that start on
/// 1 March, so the leap day is the last day of its era-year.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let month = i64::from(month);
    let day = i64::from(day);
    // Years starting in March: January and February belong to the previous year.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y.rem_euclid(400);
    let shifted_month = (month + 9) % 12; // March = 0 … February = 11
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    // 719_468 days separate 0000-03-01 from 1970-01-01.
    era * 146_097 + day_of_era - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    // Both are small and positive by construction (1..=31, 1..=12).
    (year, month as u32, day as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference: the number of days before `year`-`month`-01 counted one day at a time.
    fn naive_days(year: u32, month: u32, day: u32) -> i64 {
        let mut days: i64 = 0;
        if year >= 1970 {
            for y in 1970..year {
                days += if is_leap_year(y) { 366 } else { 365 };
            }
        } else {
            for y in year..1970 {
                days -= if is_leap_year(y) { 366 } else { 365 };
            }
        }
        for m in 1..month {
            days += i64::from(days_in_month(year, m));
        }
        days + i64::from(day) - 1
    }

    #[test]
    fn civil_day_arithmetic_matches_counting() {
        for (year, month, day) in [
            (1970, 1, 1),
            (1969, 12, 31),
            (2000, 2, 29),
            (2000, 3, 1),
            (1900, 2, 28),
            (1900, 3, 1),
            (2024, 2, 29),
            (2100, 12, 31),
            (1, 1, 1),
            (0, 1, 1),
            (0, 2, 29),
            (9999, 12, 31),
            (1600, 2, 29),
        ] {
            let days = days_from_civil(i64::from(year), month, day);
            assert_eq!(days, naive_days(year, month, day), "{year}-{month}-{day}");
            assert_eq!(
                civil_from_days(days),
                (i64::from(year), month, day),
                "{year}-{month}-{day}"
            );
        }
    }

    #[test]
    fn every_day_of_four_centuries_round_trips() {
        let start = days_from_civil(1900, 1, 1);
        let mut expected = (1900_i64, 1_u32, 1_u32);
        for days in start..start + 146_097 {
            assert_eq!(civil_from_days(days), expected);
            assert_eq!(days_from_civil(expected.0, expected.1, expected.2), days);
            let (y, m, d) = expected;
            expected = if d < days_in_month(y as u32, m) {
                (y, m, d + 1)
            } else if m < 12 {
                (y, m + 1, 1)
            } else {
                (y + 1, 1, 1)
            };
        }
    }

    #[test]
    fn leap_years() {
        for (year, leap) in [
            (1900, false),
            (2000, true),
            (2023, false),
            (2024, true),
            (2100, false),
            (2400, true),
            (0, true),
        ] {
            assert_eq!(is_leap_year(year), leap, "{year}");
        }
    }

    #[test]
    fn abbreviate_cuts_long_values_on_a_character_boundary() {
        let long = Value::String("é".repeat(100));
        let short = abbreviate(&long);
        assert!(short.ends_with('…'));
        assert_eq!(short.chars().count(), 65);
        assert_eq!(abbreviate(&Value::Bool(true)), "true");
    }

    #[test]
    fn id_numbers_keep_integers_exact() {
        let cases: [(Value, &str); 5] = [
            (serde_json::json!(42), "42"),
            (serde_json::json!(-7), "-7"),
            (
                serde_json::json!(18_446_744_073_709_551_615_u64),
                "18446744073709551615",
            ),
            (serde_json::json!(1.5), "1.5"),
            (serde_json::json!(1e21), "1e+21"),
        ];
        for (value, expected) in cases {
            let Value::Number(number) = &value else {
                panic!("not a number: {value}");
            };
            assert_eq!(id_from_number(number), expected);
        }
    }
}
