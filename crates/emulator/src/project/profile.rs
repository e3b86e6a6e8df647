//! A stored user profile, its data fields kept as serialized JSON, and the JSON type each data
//! field keeps once written.

use serde_json::{Map, Value};

/// A user profile. Data fields are kept serialized, which is compact for a million profiles.
#[derive(Debug, Clone, Default)]
pub(super) struct User {
    pub(super) email: Option<Box<str>>,
    pub(super) user_id: Option<Box<str>>,
    pub(super) data: Option<Box<str>>,
}

/// The JSON type of a data field, which later writes must keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FieldType {
    String,
    Number,
    Boolean,
    Object,
    Array,
}

impl FieldType {
    pub(super) fn of(v: &Value) -> Option<FieldType> {
        match v {
            Value::Null => None,
            Value::String(_) => Some(FieldType::String),
            Value::Number(_) => Some(FieldType::Number),
            Value::Bool(_) => Some(FieldType::Boolean),
            Value::Object(_) => Some(FieldType::Object),
            Value::Array(_) => Some(FieldType::Array),
        }
    }
    pub(super) fn name(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Number => "number",
            FieldType::Boolean => "boolean",
            FieldType::Object => "object",
            FieldType::Array => "array",
        }
    }
}

pub(super) fn parse_data(data: Option<&str>) -> Map<String, Value> {
    data.and_then(|d| serde_json::from_str(d).ok())
        .unwrap_or_default()
}

/// Merges incoming data fields into stored ones: top-level keys are replaced, or merged one
/// level deep when both sides are objects and `merge_nested` is set.
pub(super) fn merge_data(
    existing: Option<&str>,
    incoming: &Map<String, Value>,
    merge_nested: bool,
) -> Box<str> {
    let merged = match existing {
        None => {
            return serde_json::to_string(incoming)
                .unwrap_or_else(|_| "{}".to_string())
                .into_boxed_str();
        }
        Some(old) => {
            let mut data = parse_data(Some(old));
            for (k, v) in incoming {
                match (data.get_mut(k), v) {
                    (Some(Value::Object(old)), Value::Object(new)) if merge_nested => {
                        for (nk, nv) in new {
                            old.insert(nk.clone(), nv.clone());
                        }
                    }
                    _ => {
                        data.insert(k.clone(), v.clone());
                    }
                }
            }
            Value::Object(data)
        }
    };
    merged.to_string().into_boxed_str()
}
