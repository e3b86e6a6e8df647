//! The `syncAudience` action's fields: their default mapping (with the email fallback to
//! `context.traits.email`), user overrides, and the typed payload with Segment's AJV coercions.

use std::borrow::Cow;

use segment::mapping::{Mapping, MappingError, Resolved, number_to_string};
use serde_json::{Map, Value, json};

use crate::settings::json_type;

/// The action's fields, in Segment's order, with their labels.
pub const FIELDS: [(&str, &str); 6] = [
    ("email", "Email"),
    ("userId", "User ID"),
    ("dataFields", "Additional traits or identifiers"),
    ("traitsOrProperties", "Traits or Properties"),
    ("segmentAudienceKey", "Segment Audience Key"),
    ("segmentAudienceId", "Segment External Audience ID"),
];

/// The default mapping. It differs from Segment's in one place, a fix: the email falls back to
/// `context.traits.email` (where Engage puts it on track events). `traitsOrProperties` is
/// Segment's, but while it is left at this default, track events read their `properties`
/// ([`ActionMapping::payload`]), so a stray empty `traits` no longer hides the membership flag.
pub fn default_mapping() -> Value {
    json!({
        "email": {"@if": {
            "exists": {"@path": "$.traits.email"},
            "then": {"@path": "$.traits.email"},
            "else": {"@if": {
                "exists": {"@path": "$.properties.email"},
                "then": {"@path": "$.properties.email"},
                "else": {"@path": "$.context.traits.email"}
            }}
        }},
        "userId": {"@path": "$.userId"},
        "traitsOrProperties": {"@if": {
            "exists": {"@path": "$.traits"},
            "then": {"@path": "$.traits"},
            "else": {"@path": "$.properties"}
        }},
        "segmentAudienceKey": {"@path": "$.context.personas.computation_key"},
        "segmentAudienceId": {"@path": "$.context.personas.external_audience_id"}
    })
}

/// A mapping that cannot be used, found before any event is processed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FieldsError {
    #[error("the mapping must be a JSON object of field names, but it was {0}")]
    NotAnObject(&'static str),
    #[error(
        "mapping key {0:?} is not a field of Sync To Iterable Lists; expected one of email, userId, dataFields, traitsOrProperties, segmentAudienceKey, segmentAudienceId"
    )]
    UnknownField(String),
    #[error("invalid mapping: {0}")]
    Mapping(#[from] MappingError),
}

/// The compiled mapping of the action: defaults, overridden field by field.
#[derive(Debug, Clone)]
pub struct ActionMapping {
    mapping: Mapping,
    source: Value,
    /// `traitsOrProperties` is left at its default.
    default_tp: bool,
    /// The whole mapping is the default: [`crate::fast`] reads it straight from the event.
    compiled_default: bool,
}

impl ActionMapping {
    /// Compiles the default mapping with `overrides` laid over it (Segment's mapping shape:
    /// field name → mapping). A `null` override unmaps the field.
    pub fn new(overrides: Option<&Value>) -> Result<Self, FieldsError> {
        let mut source = default_mapping();
        if let Some(o) = overrides {
            let o = o
                .as_object()
                .ok_or(FieldsError::NotAnObject(json_type(o)))?;
            let Value::Object(base) = &mut source else {
                return Err(FieldsError::NotAnObject("not an object"));
            };
            for (k, v) in o {
                if !FIELDS.iter().any(|(name, _)| name == k) {
                    return Err(FieldsError::UnknownField(k.clone()));
                }
                if v.is_null() {
                    base.shift_remove(k);
                } else {
                    base.insert(k.clone(), v.clone());
                }
            }
        }
        let default_tp =
            source.get("traitsOrProperties") == default_mapping().get("traitsOrProperties");
        let compiled_default = source == default_mapping();
        Ok(Self {
            mapping: Mapping::compile(&source)?,
            source,
            default_tp,
            compiled_default,
        })
    }

    /// The same mapping with the compiled default path off, so that every event goes through
    /// the general evaluator: for tests and measurements that compare the two.
    pub fn general(mut self) -> Self {
        self.compiled_default = false;
        self
    }

    /// Maps and validates one event. With the default `traitsOrProperties`, a track event
    /// that has a `properties` object reads it, whatever `traits` holds (Segment read a stray
    /// empty `traits` instead and turned the entry into an exit, V31); identify events read
    /// `traits` as in Segment.
    pub fn payload<'a>(&'a self, event: &'a Value) -> Result<SyncPayload<'a>, String> {
        if self.compiled_default
            && let Some(payload) = crate::fast::default_payload(event)
        {
            return Ok(payload);
        }
        let resolved = self.mapping.resolve(event).map_err(|e| e.to_string())?;
        let mut payload = SyncPayload::from_resolved(resolved)?;
        if self.default_tp
            && event.get("type").and_then(Value::as_str) == Some("track")
            && let Some(props) = event.get("properties").and_then(Value::as_object)
        {
            payload.traits_or_properties = Cow::Borrowed(props);
        }
        Ok(payload)
    }

    /// Whether [`ActionMapping::payload`] reads this event's fields straight from it (the
    /// default mapping on an event of the common shapes) rather than through the evaluator.
    pub fn reads_directly(&self, event: &Value) -> bool {
        self.compiled_default && crate::fast::default_payload(event).is_some()
    }

    /// The whole mapping is the default, and its fast path is on.
    pub(crate) fn is_default(&self) -> bool {
        self.compiled_default
    }

    /// The mapping as JSON, defaults included.
    pub fn source(&self) -> &Value {
        &self.source
    }

    pub fn mapping(&self) -> &Mapping {
        &self.mapping
    }
}

/// The mapped, validated fields of one event. `traits_or_properties` borrows from the event
/// when the mapping points straight into it (the default), so it is never copied.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncPayload<'a> {
    /// Absent when unmapped, null or empty.
    pub email: Option<String>,
    pub user_id: Option<String>,
    pub data_fields: Option<Map<String, Value>>,
    pub traits_or_properties: Cow<'a, Map<String, Value>>,
    pub audience_key: String,
    pub audience_id: Option<String>,
}

fn label(field: &str) -> &'static str {
    FIELDS
        .iter()
        .find(|(name, _)| *name == field)
        .map_or("Field", |(_, l)| l)
}

/// A mapped field: owned JSON, or JSON borrowed from the event.
enum FieldVal<'a> {
    Owned(Value),
    Borrowed(&'a Value),
}

impl FieldVal<'_> {
    fn get(&self) -> &Value {
        match self {
            FieldVal::Owned(v) => v,
            FieldVal::Borrowed(v) => v,
        }
    }
}

/// AJV's `coerceTypes: "array"` for a string field: numbers and booleans become strings, a
/// one-element array is unwrapped, null is absent.
fn string_field(v: Option<FieldVal<'_>>, field: &str, errors: &mut Vec<String>) -> Option<String> {
    let v = v?;
    let v = match v.get() {
        Value::Array(a) if a.len() == 1 => &a[0],
        other => other,
    };
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i.to_string(),
            (_, Some(u)) => u.to_string(),
            _ => number_to_string(n.as_f64().unwrap_or(f64::NAN)),
        }),
        other => {
            errors.push(format!(
                "{} must be a string but it was {}.",
                label(field),
                json_type(other)
            ));
            None
        }
    }
}

fn object_field<'a>(
    v: Option<FieldVal<'a>>,
    field: &str,
    errors: &mut Vec<String>,
) -> Option<Cow<'a, Map<String, Value>>> {
    match v? {
        FieldVal::Borrowed(Value::Object(o)) => Some(Cow::Borrowed(o)),
        FieldVal::Owned(Value::Object(o)) => Some(Cow::Owned(o)),
        other => match other.get() {
            Value::Null => None,
            v => {
                errors.push(format!(
                    "{} must be an object but it was {}.",
                    label(field),
                    json_type(v)
                ));
                None
            }
        },
    }
}

impl<'a> SyncPayload<'a> {
    /// Validates a mapped event the way Segment's schema does, with Segment's messages
    /// (sentences joined by a space). `segmentAudienceId` is optional here: without it the
    /// list is found by the audience key.
    pub fn from_mapped(mapped: Option<Value>) -> Result<SyncPayload<'static>, String> {
        let mut fields: [Option<FieldVal<'static>>; 6] = std::array::from_fn(|_| None);
        if let Some(Value::Object(o)) = mapped {
            for (k, v) in o {
                if let Some(i) = FIELDS.iter().position(|(n, _)| *n == k) {
                    fields[i] = Some(FieldVal::Owned(v));
                }
            }
        }
        SyncPayload::build(fields)
    }

    /// As [`SyncPayload::from_mapped`], from a borrowed resolution: nothing the event holds
    /// is copied unless it is kept.
    pub fn from_resolved(resolved: Resolved<'a>) -> Result<SyncPayload<'a>, String> {
        let mut fields: [Option<FieldVal<'a>>; 6] = std::array::from_fn(|_| None);
        for (k, v) in resolved.into_fields().unwrap_or_default() {
            if let Some(i) = FIELDS.iter().position(|(n, _)| *n == k) {
                fields[i] = match v.as_borrowed() {
                    Some(b) => Some(FieldVal::Borrowed(b)),
                    None => v.into_value().map(FieldVal::Owned),
                };
            }
        }
        SyncPayload::build(fields)
    }

    fn build(fields: [Option<FieldVal<'a>>; 6]) -> Result<SyncPayload<'a>, String> {
        let [email, user_id, data_fields, tp, key, audience_id] = fields;
        let mut errors = Vec::new();
        let email = string_field(email, "email", &mut errors).filter(|s| !s.is_empty());
        let user_id = string_field(user_id, "userId", &mut errors).filter(|s| !s.is_empty());
        let data_fields = object_field(data_fields, "dataFields", &mut errors).map(Cow::into_owned);
        let tp = object_field(tp, "traitsOrProperties", &mut errors);
        let key = string_field(key, "segmentAudienceKey", &mut errors);
        let audience_id = string_field(audience_id, "segmentAudienceId", &mut errors);
        let mut missing = Vec::new();
        if tp.is_none()
            && errors
                .iter()
                .all(|e| !e.starts_with(label("traitsOrProperties")))
        {
            missing.push(
                "The root value is missing the required field 'traitsOrProperties'.".to_string(),
            );
        }
        if key.is_none()
            && errors
                .iter()
                .all(|e| !e.starts_with(label("segmentAudienceKey")))
        {
            missing.push(
                "The root value is missing the required field 'segmentAudienceKey'.".to_string(),
            );
        }
        if key.as_deref() == Some("") {
            errors.push("Segment Audience Key must not be empty.".to_string());
        }
        missing.extend(errors);
        match (tp, key) {
            (Some(tp), Some(key)) if missing.is_empty() => Ok(SyncPayload {
                email,
                user_id,
                data_fields,
                traits_or_properties: tp,
                audience_key: key,
                audience_id: audience_id.filter(|s| !s.trim().is_empty()),
            }),
            _ => Err(missing.join(" ")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(mapped: Value) -> Result<SyncPayload<'static>, String> {
        SyncPayload::from_mapped(Some(mapped))
    }

    #[test]
    fn default_mapping_on_engage_shapes() {
        let m = ActionMapping::new(None).unwrap();
        let cases = [
            // identify: traits carry email and membership
            (
                json!({"type": "identify", "userId": "u1", "traits": {"vip": true, "email": "a@x.com"}, "context": {"personas": {"computation_key": "vip", "external_audience_id": "12345"}}}),
                (
                    Some("a@x.com"),
                    Some("u1"),
                    json!({"vip": true, "email": "a@x.com"}),
                ),
            ),
            // track: email only in context.traits (Segment loses it: V10/V11)
            (
                json!({"type": "track", "userId": "u1", "properties": {"audience_key": "vip", "vip": true}, "context": {"traits": {"email": "a@x.com"}, "personas": {"computation_key": "vip", "external_audience_id": "12345"}}}),
                (
                    Some("a@x.com"),
                    Some("u1"),
                    json!({"audience_key": "vip", "vip": true}),
                ),
            ),
            // track with a stray empty traits object still reads properties (V31)
            (
                json!({"type": "track", "userId": "u1", "traits": {}, "properties": {"vip": true}, "context": {"personas": {"computation_key": "vip"}}}),
                (None, Some("u1"), json!({"vip": true})),
            ),
            // an empty traits.email blocks the fallback, as in Segment (V32)
            (
                json!({"type": "identify", "userId": "u1", "traits": {"vip": true, "email": ""}, "properties": {"email": "b@x.com"}, "context": {"personas": {"computation_key": "vip"}}}),
                (None, Some("u1"), json!({"vip": true, "email": ""})),
            ),
        ];
        for (event, (email, uid, tp)) in cases {
            let p = m.payload(&event).unwrap();
            assert_eq!(
                (p.email.as_deref(), p.user_id.as_deref()),
                (email, uid),
                "{event}"
            );
            assert_eq!(
                Value::Object(p.traits_or_properties.into_owned()),
                tp,
                "{event}"
            );
            assert_eq!(p.audience_key, "vip");
        }
    }

    #[test]
    fn overrides_replace_fields_and_unknown_keys_fail() {
        let m = ActionMapping::new(Some(
            &json!({"dataFields": {"plan": {"@path": "$.traits.plan"}}, "segmentAudienceId": null}),
        ))
        .unwrap();
        assert!(m.source().get("segmentAudienceId").is_none());
        assert_eq!(m.source()["dataFields"]["plan"]["@path"], "$.traits.plan");
        let err =
            ActionMapping::new(Some(&json!({"emial": {"@path": "$.traits.email"}}))).unwrap_err();
        assert!(err.to_string().contains("\"emial\""), "{err}");
        let err = ActionMapping::new(Some(&json!({"email": {"@foo": 1}}))).unwrap_err();
        assert!(err.to_string().contains("@foo"), "{err}");
        assert!(matches!(
            ActionMapping::new(Some(&json!([]))),
            Err(FieldsError::NotAnObject("an array"))
        ));
    }

    #[test]
    fn payload_coercions_and_messages() {
        let base = json!({"traitsOrProperties": {}, "segmentAudienceKey": "vip"});
        let with = |k: &str, v: Value| {
            let mut b = base.clone();
            b[k] = v;
            payload(b)
        };
        // V16: numbers coerce to strings; V33: one-element arrays unwrap.
        let p = with("userId", json!(42)).unwrap();
        assert_eq!(p.user_id.as_deref(), Some("42"));
        assert_eq!(
            with("segmentAudienceId", json!(12345))
                .unwrap()
                .audience_id
                .as_deref(),
            Some("12345")
        );
        assert_eq!(
            with("email", json!(["a@x.com"])).unwrap().email.as_deref(),
            Some("a@x.com")
        );
        assert_eq!(with("email", json!("")).unwrap().email, None);
        assert_eq!(with("email", json!(null)).unwrap().email, None);
        let errs = [
            (
                with("email", json!(["a@x.com", "b@x.com"])),
                "Email must be a string but it was an array.",
            ),
            (
                with("dataFields", json!("Ann")),
                "Additional traits or identifiers must be an object but it was a string.",
            ),
            (
                with("traitsOrProperties", json!([1])),
                "Traits or Properties must be an object but it was an array.",
            ),
            (
                payload(json!({})),
                "The root value is missing the required field 'traitsOrProperties'. The root value is missing the required field 'segmentAudienceKey'.",
            ),
            (
                payload(json!({"traitsOrProperties": {}})),
                "The root value is missing the required field 'segmentAudienceKey'.",
            ),
        ];
        for (got, want) in errs {
            assert_eq!(got.unwrap_err(), want);
        }
    }
}
