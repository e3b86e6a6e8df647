//! `mapping` of a destination: Segment's mapping shape written as a TOML table (a top-level
//! `false` unmaps a field, as `null` does in JSON) or as a string holding the JSON. The table
//! becomes JSON as it is read; a value with no JSON equivalent (a date, NaN, a number beyond
//! `i64`) is refused at its own span, so the message names it (`mapping.dataFields.at`).

use std::fmt;

use destination::fields::ActionMapping;
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Unexpected, Visitor};
use serde_json::{Map, Number, Value};
use toml::Spanned;
use toml_datetime::de::VisitMap;

use super::error::{Place, R};
use super::values::TOO_LARGE;

/// `mapping` as written.
pub(super) enum Mapping {
    /// A string: JSON, parsed when read.
    Json(String),
    /// A table, already JSON.
    Fields(Map<String, Value>),
}

impl Place {
    /// `mapping`, checked with [`ActionMapping::new`].
    pub(super) fn mapping(&self, raw: Option<&Spanned<Mapping>>) -> R<Option<Value>> {
        let Some(raw) = raw else {
            return Ok(None);
        };
        let value = match raw.get_ref() {
            Mapping::Json(json) => serde_json::from_str::<Value>(json)
                .map_err(|e| self.fail("mapping", raw.span(), format!("not JSON: {e}")))?,
            Mapping::Fields(fields) => Value::Object(fields.clone()),
        };
        ActionMapping::new(Some(&value)).map_err(|e| self.fail("mapping", raw.span(), e))?;
        Ok(Some(value))
    }
}

impl<'de> Deserialize<'de> for Mapping {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(MappingVisitor)
    }
}

struct MappingVisitor;

impl<'de> Visitor<'de> for MappingVisitor {
    type Value = Mapping;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a table (or a JSON string)")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Mapping, E> {
        Ok(Mapping::Json(v.to_owned()))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Mapping, A::Error> {
        let first = match VisitMap::next_key_seed(&mut map)? {
            None => return Ok(Mapping::Fields(Map::new())),
            Some(VisitMap::Datetime(_)) => {
                return Err(de::Error::invalid_type(Unexpected::Other("a date"), &self));
            }
            Some(VisitMap::Key(key)) => key.into_owned(),
        };
        let top = Json { top: true };
        let mut out = Map::new();
        out.insert(first, map.next_value_seed(top)?);
        while let Some(key) = map.next_key::<String>()? {
            out.insert(key, map.next_value_seed(top)?);
        }
        Ok(Mapping::Fields(out))
    }
}

/// Reads any TOML value as JSON; `top`: a mapping's own field, where `false` is `null`.
#[derive(Clone, Copy)]
struct Json {
    top: bool,
}

impl<'de> DeserializeSeed<'de> for Json {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Json {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value with a JSON equivalent")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(if self.top && !v {
            Value::Null
        } else {
            Value::Bool(v)
        })
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        i64::try_from(v)
            .map(Value::from)
            .map_err(|_| E::custom(TOO_LARGE))
    }

    fn visit_i128<E: de::Error>(self, _: i128) -> Result<Value, E> {
        Err(E::custom(TOO_LARGE))
    }

    fn visit_u128<E: de::Error>(self, _: u128) -> Result<Value, E> {
        Err(E::custom(TOO_LARGE))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom(NOT_FINITE))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(v) = seq.next_element_seed(Json { top: false })? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let first = match VisitMap::next_key_seed(&mut map)? {
            None => return Ok(Value::Object(Map::new())),
            Some(VisitMap::Datetime(_)) => {
                return Err(de::Error::custom(
                    "a TOML date has no JSON equivalent; write it as a string",
                ));
            }
            Some(VisitMap::Key(key)) => key.into_owned(),
        };
        let nested = Json { top: false };
        let mut out = Map::new();
        out.insert(first, map.next_value_seed(nested)?);
        while let Some(key) = map.next_key::<String>()? {
            out.insert(key, map.next_value_seed(nested)?);
        }
        Ok(Value::Object(out))
    }
}

/// What a float with no JSON equivalent is refused with.
pub(super) const NOT_FINITE: &str = "infinite and NaN numbers have no JSON equivalent";
