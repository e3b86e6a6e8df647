//! An event's time: which of its four timestamps holds it, read with [`parse_timestamp_ms`].

use std::fmt;

use serde_json::Value;

use super::{Event, EventError, JsonKind, abbreviate, parse_timestamp_ms};

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

impl Event {
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
