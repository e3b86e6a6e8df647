//! Segment's mapping-kit, re-implemented: compile a mapping once (rejecting an invalid one with
//! the field and directive at fault), then resolve it against any number of events.

mod compile;
mod directives;
mod error;
mod eval;
mod js;
mod liquid;
mod objects;
mod path;
mod replace;
mod template;
mod validate;
mod value;

use std::borrow::Cow;

use serde::ser::{Serialize, Serializer};
use serde_json::Value;

pub use error::{EvalError, Expected, JsType, Location, MappingError, Reason, Segment};
pub use js::number_to_string;

use value::{Handle, Val, View};

/// A mapping, validated and compiled; cheap to resolve many times.
///
/// ```
/// use segment::mapping::Mapping;
/// use serde_json::json;
///
/// let mapping = Mapping::compile(&json!({
///     "email": {"@if": {
///         "exists": {"@path": "$.traits.email"},
///         "then": {"@path": "$.traits.email"},
///         "else": {"@path": "$.properties.email"}
///     }},
///     "userId": {"@path": "$.userId"},
///     "greeting": {"@template": "Hi {{traits.name}}"}
/// }))?;
/// let event = json!({"userId": "u1", "traits": {"email": "a@b.co", "name": "Ann"}});
/// assert_eq!(
///     mapping.resolve_value(&event)?,
///     Some(json!({"email": "a@b.co", "userId": "u1", "greeting": "Hi Ann"}))
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Values that resolve to JavaScript's `undefined` (a missing path, an `@if` with no branch
/// taken, …) are dropped from objects at the end, exactly as mapping-kit's `removeUndefined`
/// drops them; `null` is kept.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    root: compile::Node,
}

impl Mapping {
    /// Validates and compiles a mapping. Fails with the first problem found where mapping-kit's
    /// validation rejects the mapping (and so every event). What mapping-kit's runtime throws on
    /// (an `@if` without condition, an unknown `@case` operator met with a string, a `@liquid`
    /// template that does not parse, …) fails [`Mapping::resolve`] instead, for the events that
    /// reach it, as in mapping-kit.
    pub fn compile(mapping: &Value) -> Result<Self, MappingError> {
        let (root, errors) = compile::compile(mapping);
        match errors.into_iter().next() {
            Some(first) => Err(first),
            None => Ok(Self { root }),
        }
    }

    /// Every validation problem in a mapping, in key order (empty when it compiles).
    pub fn problems(mapping: &Value) -> Vec<MappingError> {
        compile::compile(mapping).1
    }

    /// Resolves the mapping against an event (mapping-kit's `transform`). The result borrows
    /// from both; see [`Resolved`].
    pub fn resolve<'a>(&'a self, event: &'a Value) -> Result<Resolved<'a>, EvalError> {
        let payload = Handle::Json(event);
        let kind = payload.view();
        if !matches!(kind, View::Object) {
            return Err(EvalError::PayloadNotObject {
                at: Location::root(),
                found: kind.js_type(),
            });
        }
        Ok(Resolved(self.root.eval(payload)?))
    }

    /// Resolves the mapping and returns owned JSON; `None` when the whole mapping resolved to
    /// `undefined` (only possible for a mapping that is itself a directive).
    pub fn resolve_value(&self, event: &Value) -> Result<Option<Value>, EvalError> {
        Ok(self.resolve(event)?.into_value())
    }
}

/// The result of resolving a mapping. It may still hold JavaScript `undefined`s; they are
/// dropped (object members) or written as `null` (array items) when the result is turned into
/// JSON or serialised.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved<'a>(Val<'a>);

impl<'a> Resolved<'a> {
    /// The members of a resolved object, `undefined` ones dropped, without copying what is
    /// borrowed from the event; `None` when the result is not an object.
    pub fn into_fields(self) -> Option<Vec<(Cow<'a, str>, Resolved<'a>)>> {
        match self.0 {
            Val::Obj(obj) => Some(
                obj.entries
                    .into_iter()
                    .filter(|(_, v)| !matches!(v, Val::Undef))
                    .map(|(k, v)| (k, Resolved(v)))
                    .collect(),
            ),
            Val::Ref(Value::Object(map)) => Some(
                map.iter()
                    .map(|(k, v)| (Cow::Borrowed(k.as_str()), Resolved(Val::Ref(v))))
                    .collect(),
            ),
            _ => None,
        }
    }

    /// The JSON this result borrows from the event or mapping, when it is such a reference.
    pub fn as_borrowed(&self) -> Option<&'a Value> {
        match self.0 {
            Val::Ref(v) => Some(v),
            _ => None,
        }
    }

    /// Whether the whole result is `undefined` (a missing value).
    pub fn is_undefined(&self) -> bool {
        matches!(self.0, Val::Undef)
    }

    /// The result as JSON, or `None` when it is `undefined`.
    pub fn to_value(&self) -> Option<Value> {
        self.0.to_json()
    }

    /// As [`Resolved::to_value`], moving what the result owns.
    pub fn into_value(self) -> Option<Value> {
        self.0.into_json()
    }
}

/// Serialises without copying; a top-level `undefined` is written as `null`.
impl Serialize for Resolved<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}
