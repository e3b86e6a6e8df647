//! Segment's `type` field: the six types it defines, and any other kept as sent.

use std::fmt;

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
