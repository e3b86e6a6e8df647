//! `context.personas`: the Engage computation behind an event, read from the event as a
//! borrowed view.

use std::fmt;

use serde_json::{Map, Value};

use super::present;

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

/// A borrowed view of `context.personas`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Personas<'a> {
    pub(super) map: &'a Map<String, Value>,
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
