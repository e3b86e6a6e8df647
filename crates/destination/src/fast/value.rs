//! The default mapping over a parsed event: the action's fields read straight from the
//! event's members, borrowed, with no mapping evaluator, no resolved JSON tree and no copy of
//! `traits` (see the module above for what it covers).

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::fields::SyncPayload;

/// A member of `object` that is present and not `null`: what the mapping's `exists` tests.
fn present<'a>(object: Option<&'a Map<String, Value>>, key: &str) -> Option<&'a Value> {
    member(object?, key).filter(|v| !v.is_null())
}

/// `object[key]`. An event's objects hold a few members: comparing their keys is cheaper than
/// hashing `key` with the map's SipHash, and finds the same member (keys are unique).
pub(crate) fn member<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    if object.len() <= 12 {
        object
            .iter()
            .find(|(k, _)| k.as_str() == key)
            .map(|(_, v)| v)
    } else {
        object.get(key)
    }
}

/// An object member, or `None` when it is absent or `null`. `Err` when it is something else
/// (the general path reports it).
fn object(value: Option<&Value>) -> Result<Option<&Map<String, Value>>, ()> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(_) => Err(()),
    }
}

/// A string field as the action's schema reads it when no coercion is needed: absent or `null`
/// is `None`, as is the empty string (Segment treats it as unset). `Err` for any other type.
fn string(value: Option<&Value>) -> Result<Option<String>, ()> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(()),
    }
}

/// The default mapping's fields of `event`, or `None` when the event needs the general path.
pub(crate) fn default_payload(event: &Value) -> Option<SyncPayload<'_>> {
    read(event).ok()
}

fn read(event: &Value) -> Result<SyncPayload<'_>, ()> {
    let raw = event.as_object().ok_or(())?;
    let track = match member(raw, "type") {
        Some(Value::String(t)) => t == "track",
        _ => return Err(()),
    };
    let traits = object(member(raw, "traits"))?;
    let properties = object(member(raw, "properties"))?;
    let context = object(member(raw, "context"))?;
    let context_traits = object(context.and_then(|c| member(c, "traits")))?;
    let personas = object(context.and_then(|c| member(c, "personas")))?;

    // email: traits.email if it exists, else properties.email if it exists, else
    // context.traits.email.
    let email = match present(traits, "email") {
        Some(v) => Some(v),
        None => present(properties, "email").or_else(|| present(context_traits, "email")),
    };
    let email = string(email)?;
    let user_id = string(member(raw, "userId"))?;

    // traitsOrProperties: traits if they exist, else properties; a track event with a
    // properties object reads it whatever traits hold (the default's fix, V31).
    let tp = match (traits, properties) {
        (_, Some(p)) if track => p,
        (Some(t), _) => t,
        (None, Some(p)) => p,
        (None, None) => return Err(()),
    };
    let audience_key = match personas.and_then(|p| member(p, "computation_key")) {
        Some(Value::String(k)) if !k.is_empty() => k.clone(),
        _ => return Err(()),
    };
    let audience_id = match personas.and_then(|p| member(p, "external_audience_id")) {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) if id.trim().is_empty() => None,
        Some(Value::String(id)) => Some(id.clone()),
        Some(_) => return Err(()),
    };
    Ok(SyncPayload {
        email,
        user_id,
        data_fields: None,
        traits_or_properties: Cow::Borrowed(tp),
        audience_key,
        audience_id,
    })
}
