//! What [`Event::from_value`](super::Event::from_value) checks, member by member, and the ids
//! it rewrites in place: a numeric id becomes its string form, as Segment coerces it.

use serde_json::{Number, Value};

use super::{EventError, EventType, JsonKind};
use crate::mapping::number_to_string;

pub(super) fn read_type(value: &Value) -> Result<EventType, EventError> {
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

pub(super) fn check_context(context: &mut Value) -> Result<(), EventError> {
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
pub(super) fn coerce_id(value: &mut Value, field: &'static str) -> Result<(), EventError> {
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
pub(super) fn check_kind(
    value: &Value,
    field: &'static str,
    kind: JsonKind,
) -> Result<(), EventError> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
