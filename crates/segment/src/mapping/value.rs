//! Values met while resolving a mapping: JSON borrowed from the event or the mapping, owned
//! results, and JavaScript's `undefined`, kept apart from `null` until the final clean-up.

use std::borrow::Cow;
use std::collections::HashMap;

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::{Map, Number, Value};

use super::error::JsType;
use super::js;

/// A resolved value. `Ref` borrows JSON (which never holds `undefined`); the other variants are
/// built during resolution and may hold `Undef` anywhere, as a JavaScript value would.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val<'a> {
    Undef,
    Ref(&'a Value),
    Null,
    Bool(bool),
    Num(Number),
    Str(String),
    Arr(Vec<Val<'a>>),
    Obj(Obj<'a>),
}

/// An object built during resolution, in insertion order, keys unique.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Obj<'a> {
    pub(crate) entries: Vec<(Cow<'a, str>, Val<'a>)>,
}

impl<'a> Obj<'a> {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            entries: Vec::with_capacity(capacity),
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<&Val<'a>> {
        self.entries
            .iter()
            .find(|(k, _)| k.as_ref() == key)
            .map(|(_, v)| v)
    }

    /// Appends a key the caller knows to be new.
    pub(crate) fn push(&mut self, key: Cow<'a, str>, value: Val<'a>) {
        self.entries.push((key, value));
    }
}

/// Builds an object by JavaScript assignment: an existing key keeps its place and takes the new
/// value. Large objects get a hash index.
pub(crate) struct ObjBuilder<'a> {
    obj: Obj<'a>,
    index: Option<HashMap<String, usize>>,
}

const INDEX_FROM: usize = 16;

impl<'a> ObjBuilder<'a> {
    pub(crate) fn new() -> Self {
        Self {
            obj: Obj::default(),
            index: None,
        }
    }

    pub(crate) fn assign(&mut self, key: Cow<'a, str>, value: Val<'a>) {
        if self.index.is_none() && self.obj.entries.len() >= INDEX_FROM {
            let index = self
                .obj
                .entries
                .iter()
                .enumerate()
                .map(|(i, (k, _))| (k.to_string(), i))
                .collect();
            self.index = Some(index);
        }
        match &mut self.index {
            Some(index) => {
                if let Some(&i) = index.get(key.as_ref()) {
                    self.obj.entries[i].1 = value;
                } else {
                    index.insert(key.to_string(), self.obj.entries.len());
                    self.obj.entries.push((key, value));
                }
            }
            None => {
                if let Some(slot) = self
                    .obj
                    .entries
                    .iter_mut()
                    .find(|(k, _)| k.as_ref() == key.as_ref())
                {
                    slot.1 = value;
                } else {
                    self.obj.entries.push((key, value));
                }
            }
        }
    }

    pub(crate) fn finish(self) -> Obj<'a> {
        self.obj
    }
}

/// The scalar content and kind of a value, for tests and conversions.
#[derive(Debug, Clone, Copy)]
pub(crate) enum View<'s> {
    Undef,
    Null,
    Bool(bool),
    Num(f64),
    Str(&'s str),
    Array,
    Object,
}

impl View<'_> {
    /// JavaScript truthiness.
    pub(crate) fn truthy(self) -> bool {
        match self {
            View::Undef | View::Null => false,
            View::Bool(b) => b,
            View::Num(n) => n != 0.0 && !n.is_nan(),
            View::Str(s) => !s.is_empty(),
            View::Array | View::Object => true,
        }
    }

    pub(crate) fn is_nullish(self) -> bool {
        matches!(self, View::Undef | View::Null)
    }

    /// mapping-kit's `realTypeOf`.
    pub(crate) fn js_type(self) -> JsType {
        match self {
            View::Undef => JsType::Undefined,
            View::Null => JsType::Null,
            View::Bool(_) => JsType::Boolean,
            View::Num(_) => JsType::Number,
            View::Str(_) => JsType::String,
            View::Array => JsType::Array,
            View::Object => JsType::Object,
        }
    }
}

pub(crate) fn number_f64(n: &Number) -> f64 {
    n.as_f64().unwrap_or(f64::NAN)
}

/// A value seen in place: borrowed JSON, or a value built during resolution.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Handle<'s, 'a> {
    Json(&'a Value),
    Val(&'s Val<'a>),
}

/// A key while walking an object or an array.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Key<'s, 'a> {
    Json(&'a str),
    Built(&'s Cow<'a, str>),
    Index(usize),
}

impl<'a> Key<'_, 'a> {
    pub(crate) fn to_cow(self) -> Cow<'a, str> {
        match self {
            Key::Json(s) => Cow::Borrowed(s),
            Key::Built(Cow::Borrowed(s)) => Cow::Borrowed(s),
            Key::Built(Cow::Owned(s)) => Cow::Owned(s.clone()),
            Key::Index(i) => Cow::Owned(i.to_string()),
        }
    }

    pub(crate) fn push_to(self, out: &mut String) {
        match self {
            Key::Json(s) => out.push_str(s),
            Key::Built(s) => out.push_str(s),
            Key::Index(i) => out.push_str(&i.to_string()),
        }
    }

    fn array_index(self) -> Option<u32> {
        match self {
            Key::Json(s) => js::array_index(s),
            Key::Built(s) => js::array_index(s),
            Key::Index(i) => u32::try_from(i).ok(),
        }
    }
}

/// What a property read produced: a value in place, or one made on the spot (a string's
/// `length` or character, or `undefined`).
#[derive(Debug, Clone)]
pub(crate) enum Found<'s, 'a> {
    At(Handle<'s, 'a>),
    Made(Val<'a>),
}

impl<'a> Found<'_, 'a> {
    pub(crate) fn handle(&self) -> Handle<'_, 'a> {
        match self {
            Found::At(h) => *h,
            Found::Made(v) => Handle::of(v),
        }
    }

    pub(crate) fn into_val(self) -> Val<'a> {
        match self {
            Found::At(h) => h.to_val(),
            Found::Made(v) => v,
        }
    }
}

/// Items of an array, in place.
pub(crate) enum Items<'s, 'a> {
    Json(std::slice::Iter<'a, Value>),
    Val(std::slice::Iter<'s, Val<'a>>),
}

impl<'s, 'a> Iterator for Items<'s, 'a> {
    type Item = Handle<'s, 'a>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Items::Json(it) => it.next().map(Handle::Json),
            Items::Val(it) => it.next().map(Handle::of),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            Items::Json(it) => it.size_hint(),
            Items::Val(it) => it.size_hint(),
        }
    }
}

impl<'s, 'a> Handle<'s, 'a> {
    pub(crate) fn of(v: &'s Val<'a>) -> Self {
        match v {
            Val::Ref(r) => Handle::Json(r),
            other => Handle::Val(other),
        }
    }

    pub(crate) fn view(self) -> View<'s> {
        match self {
            Handle::Json(v) => match v {
                Value::Null => View::Null,
                Value::Bool(b) => View::Bool(*b),
                Value::Number(n) => View::Num(number_f64(n)),
                Value::String(s) => View::Str(s),
                Value::Array(_) => View::Array,
                Value::Object(_) => View::Object,
            },
            Handle::Val(v) => match v {
                Val::Undef => View::Undef,
                Val::Ref(r) => Handle::Json(r).view(),
                Val::Null => View::Null,
                Val::Bool(b) => View::Bool(*b),
                Val::Num(n) => View::Num(number_f64(n)),
                Val::Str(s) => View::Str(s),
                Val::Arr(_) => View::Array,
                Val::Obj(_) => View::Object,
            },
        }
    }

    /// The value as an owned resolution result (borrowed JSON stays borrowed).
    pub(crate) fn to_val(self) -> Val<'a> {
        match self {
            Handle::Json(v) => Val::Ref(v),
            Handle::Val(v) => v.clone(),
        }
    }

    pub(crate) fn items(self) -> Option<Items<'s, 'a>> {
        match self {
            Handle::Json(Value::Array(items)) => Some(Items::Json(items.iter())),
            Handle::Val(Val::Arr(items)) => Some(Items::Val(items.iter())),
            Handle::Val(Val::Ref(r)) => Handle::Json(r).items(),
            _ => None,
        }
    }

    /// Own properties of an object in JavaScript's order: integer-like keys ascending first,
    /// then the others in stored order.
    pub(crate) fn entries(self) -> Option<Vec<(Key<'s, 'a>, Handle<'s, 'a>)>> {
        let mut entries: Vec<(Key<'s, 'a>, Handle<'s, 'a>)> = match self {
            Handle::Json(Value::Object(map)) => map
                .iter()
                .map(|(k, v)| (Key::Json(k.as_str()), Handle::Json(v)))
                .collect(),
            Handle::Val(Val::Obj(obj)) => obj
                .entries
                .iter()
                .map(|(k, v)| (Key::Built(k), Handle::of(v)))
                .collect(),
            Handle::Val(Val::Ref(r)) => return Handle::Json(r).entries(),
            _ => return None,
        };
        if entries.iter().any(|(k, _)| k.array_index().is_some()) {
            entries.sort_by_key(|(k, _)| match k.array_index() {
                Some(i) => (0u8, i),
                None => (1u8, 0),
            });
        }
        Some(entries)
    }

    /// `value[key]` for a truthy value, reading own properties only (plus `length` of strings
    /// and arrays).
    pub(crate) fn property(self, key: &str) -> Found<'s, 'a> {
        match self {
            Handle::Json(v) => match v {
                Value::Object(map) => match map.get(key) {
                    Some(child) => Found::At(Handle::Json(child)),
                    None => Found::Made(Val::Undef),
                },
                Value::Array(items) => {
                    if key == "length" {
                        Found::Made(Val::Num(Number::from(items.len())))
                    } else {
                        match js::array_index(key).and_then(|i| items.get(i as usize)) {
                            Some(child) => Found::At(Handle::Json(child)),
                            None => Found::Made(Val::Undef),
                        }
                    }
                }
                Value::String(s) => Found::Made(string_property(s, key)),
                _ => Found::Made(Val::Undef),
            },
            Handle::Val(v) => match v {
                Val::Ref(r) => Handle::Json(r).property(key),
                Val::Obj(obj) => match obj.get(key) {
                    Some(child) => Found::At(Handle::of(child)),
                    None => Found::Made(Val::Undef),
                },
                Val::Arr(items) => {
                    if key == "length" {
                        Found::Made(Val::Num(Number::from(items.len())))
                    } else {
                        match js::array_index(key).and_then(|i| items.get(i as usize)) {
                            Some(child) => Found::At(Handle::of(child)),
                            None => Found::Made(Val::Undef),
                        }
                    }
                }
                Val::Str(s) => Found::Made(string_property(s, key)),
                _ => Found::Made(Val::Undef),
            },
        }
    }
}

/// `string[key]`: `length` in UTF-16 units, or the UTF-16 unit at an index.
pub(crate) fn string_property<'a>(s: &str, key: &str) -> Val<'a> {
    if key == "length" {
        return Val::Num(Number::from(js::utf16_len(s)));
    }
    match js::array_index(key).and_then(|i| js::utf16_unit_at(s, i as usize)) {
        Some(unit) => Val::Str(unit),
        None => Val::Undef,
    }
}

impl<'a> Val<'a> {
    pub(crate) fn view(&self) -> View<'_> {
        Handle::of(self).view()
    }

    /// Converts parsed JSON into an owned value.
    pub(crate) fn from_owned_json(value: Value) -> Val<'a> {
        match value {
            Value::Null => Val::Null,
            Value::Bool(b) => Val::Bool(b),
            Value::Number(n) => Val::Num(n),
            Value::String(s) => Val::Str(s),
            Value::Array(items) => Val::Arr(items.into_iter().map(Val::from_owned_json).collect()),
            Value::Object(map) => Val::Obj(Obj {
                entries: map
                    .into_iter()
                    .map(|(k, v)| (Cow::Owned(k), Val::from_owned_json(v)))
                    .collect(),
            }),
        }
    }

    /// mapping-kit's `removeUndefined`: drops `undefined` members of objects, recursively;
    /// arrays keep their `undefined` items.
    pub(crate) fn remove_undefined(self) -> Val<'a> {
        match self {
            Val::Obj(obj) => Val::Obj(Obj {
                entries: obj
                    .entries
                    .into_iter()
                    .filter(|(_, v)| !matches!(v, Val::Undef))
                    .map(|(k, v)| (k, v.remove_undefined()))
                    .collect(),
            }),
            Val::Arr(items) => Val::Arr(items.into_iter().map(Val::remove_undefined).collect()),
            other => other,
        }
    }

    /// The JSON form after `removeUndefined`: `undefined` members vanish, `undefined` items
    /// become `null`. `None` for a top-level `undefined`.
    pub(crate) fn to_json(&self) -> Option<Value> {
        match self {
            Val::Undef => None,
            other => Some(other.to_json_inner()),
        }
    }

    fn to_json_inner(&self) -> Value {
        match self {
            Val::Undef | Val::Null => Value::Null,
            Val::Ref(v) => (*v).clone(),
            Val::Bool(b) => Value::Bool(*b),
            Val::Num(n) => Value::Number(n.clone()),
            Val::Str(s) => Value::String(s.clone()),
            Val::Arr(items) => Value::Array(items.iter().map(Val::to_json_inner).collect()),
            Val::Obj(obj) => Value::Object(
                obj.entries
                    .iter()
                    .filter(|(_, v)| !matches!(v, Val::Undef))
                    .map(|(k, v)| (k.to_string(), v.to_json_inner()))
                    .collect::<Map<String, Value>>(),
            ),
        }
    }

    /// As `to_json`, moving owned parts instead of copying them.
    pub(crate) fn into_json(self) -> Option<Value> {
        match self {
            Val::Undef => None,
            other => Some(other.into_json_inner()),
        }
    }

    fn into_json_inner(self) -> Value {
        match self {
            Val::Undef | Val::Null => Value::Null,
            Val::Ref(v) => v.clone(),
            Val::Bool(b) => Value::Bool(b),
            Val::Num(n) => Value::Number(n),
            Val::Str(s) => Value::String(s),
            Val::Arr(items) => Value::Array(items.into_iter().map(Val::into_json_inner).collect()),
            Val::Obj(obj) => Value::Object(
                obj.entries
                    .into_iter()
                    .filter(|(_, v)| !matches!(v, Val::Undef))
                    .map(|(k, v)| (k.into_owned(), v.into_json_inner()))
                    .collect::<Map<String, Value>>(),
            ),
        }
    }
}

/// Serialises like `to_json` (a top-level `undefined` as `null`) without copying.
impl Serialize for Val<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Val::Undef | Val::Null => serializer.serialize_unit(),
            Val::Ref(v) => v.serialize(serializer),
            Val::Bool(b) => serializer.serialize_bool(*b),
            Val::Num(n) => n.serialize(serializer),
            Val::Str(s) => serializer.serialize_str(s),
            Val::Arr(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Val::Obj(obj) => {
                let len = obj
                    .entries
                    .iter()
                    .filter(|(_, v)| !matches!(v, Val::Undef))
                    .count();
                let mut map = serializer.serialize_map(Some(len))?;
                for (k, v) in &obj.entries {
                    if !matches!(v, Val::Undef) {
                        map.serialize_entry(k.as_ref(), v)?;
                    }
                }
                map.end()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builder_assign_keeps_first_position_and_last_value() {
        for n in [3usize, 40] {
            let mut b = ObjBuilder::new();
            for i in 0..n {
                b.assign(Cow::Owned(format!("k{i}")), Val::Num(Number::from(i)));
            }
            b.assign(Cow::Borrowed("k1"), Val::Str("new".into()));
            let obj = b.finish();
            assert_eq!(obj.entries.len(), n, "n={n}");
            assert_eq!(obj.entries[1].0, "k1");
            assert_eq!(obj.entries[1].1, Val::Str("new".into()));
        }
    }

    #[test]
    fn entries_put_integer_keys_first() {
        // Written in sorted order so the test holds with or without serde_json's preserve_order.
        let v = json!({"01": 5, "10": 2, "2": 4, "a": 3, "b": 1});
        let keys: Vec<String> = Handle::Json(&v)
            .entries()
            .unwrap_or_default()
            .into_iter()
            .map(|(k, _)| {
                let mut s = String::new();
                k.push_to(&mut s);
                s
            })
            .collect();
        // "01" is not an array index, so it keeps its stored place.
        assert_eq!(keys, ["2", "10", "01", "a", "b"]);
    }

    #[test]
    fn undefined_members_vanish_and_undefined_items_become_null() {
        let v = Val::Obj(Obj {
            entries: vec![
                (Cow::Borrowed("gone"), Val::Undef),
                (Cow::Borrowed("kept"), Val::Null),
                (
                    Cow::Borrowed("arr"),
                    Val::Arr(vec![Val::Undef, Val::Bool(true)]),
                ),
            ],
        });
        let expected = json!({"kept": null, "arr": [null, true]});
        assert_eq!(v.to_json(), Some(expected.clone()));
        assert_eq!(serde_json::to_value(&v).ok(), Some(expected.clone()));
        assert_eq!(v.into_json(), Some(expected));
        assert_eq!(Val::Undef.to_json(), None);
    }
}
