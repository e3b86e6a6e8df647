//! Why an event cannot be read or used; every error names the field at fault.

use serde_json::Value;
use thiserror::Error;

use super::{EventType, JsonKind, TimeField, TimestampError};

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

/// `value` as compact JSON, cut to 64 characters (for error messages).
pub(crate) fn abbreviate(value: &Value) -> String {
    const MAX: usize = 64;
    let text = value.to_string();
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abbreviate_cuts_long_values_on_a_character_boundary() {
        let long = Value::String("é".repeat(100));
        let short = abbreviate(&long);
        assert!(short.ends_with('…'));
        assert_eq!(short.chars().count(), 65);
        assert_eq!(abbreviate(&Value::Bool(true)), "true");
    }
}
