//! The payload as liquid-rust sees it: [`Js`] values viewed in place, so objects keep
//! JavaScript's key order (integer keys first, then as written) where liquid-rust's own objects
//! are hash maps, arrays take negative indexes as LiquidJS's do, and values print as LiquidJS
//! prints them.

use std::fmt;

use liquid_core::model::DisplayCow;
use liquid_core::model::{ArrayView, KStringCow, ObjectView, ScalarCow, State, Value, ValueView};

use super::super::js;
use super::jsval::{Js, Text};

/// `type_name` of a payload object, told apart from liquid-rust's own (whose key order is
/// lost) when filters read it.
pub(crate) const PAYLOAD_OBJECT: &str = "payload object";

impl ValueView for Js {
    fn as_debug(&self) -> &dyn fmt::Debug {
        self
    }
    fn render(&self) -> DisplayCow<'_> {
        DisplayCow::Owned(Box::new(self.string()))
    }
    fn source(&self) -> DisplayCow<'_> {
        DisplayCow::Owned(Box::new(self.string()))
    }
    fn type_name(&self) -> &'static str {
        match self {
            Js::Undefined | Js::Nil => "nil",
            Js::Bool(_) => "boolean",
            Js::Num(_) => "number",
            Js::Str(_) | Js::Text(_) => "string",
            Js::Arr(_) => "array",
            Js::Obj(_) => PAYLOAD_OBJECT,
        }
    }
    fn query_state(&self, state: State) -> bool {
        match state {
            State::Truthy => !matches!(self, Js::Undefined | Js::Nil | Js::Bool(false)),
            State::DefaultValue | State::Empty | State::Blank => match self {
                Js::Undefined | Js::Nil => true,
                Js::Str(s) => s.is_empty(),
                Js::Text(t) => t.s.is_empty(),
                Js::Arr(items) => items.is_empty(),
                Js::Obj(entries) => entries.is_empty(),
                _ => false,
            },
        }
    }
    fn to_kstr(&self) -> KStringCow<'_> {
        KStringCow::from_string(self.string())
    }
    fn to_value(&self) -> Value {
        self.clone().into_value()
    }
    fn as_scalar(&self) -> Option<ScalarCow<'_>> {
        match self {
            Js::Bool(b) => Some(ScalarCow::new(*b)),
            Js::Num(n) if n.fract() == 0.0 && n.abs() <= 9_007_199_254_740_991.0 => {
                Some(ScalarCow::new(*n as i64))
            }
            Js::Num(n) => Some(ScalarCow::new(*n)),
            Js::Str(s) => Some(ScalarCow::new(s.as_str())),
            Js::Text(t) => Some(ScalarCow::new(t.s.as_str())),
            _ => None,
        }
    }
    fn as_array(&self) -> Option<&dyn ArrayView> {
        match self {
            Js::Arr(_) => Some(self),
            _ => None,
        }
    }
    /// A payload string answers `size`, `length` and indexes (in UTF-16 units) as LiquidJS's
    /// property reads do; liquid-rust would count bytes and index nothing.
    fn as_object(&self) -> Option<&dyn ObjectView> {
        match self {
            Js::Obj(_) | Js::Text(_) => Some(self),
            _ => None,
        }
    }
    fn as_state(&self) -> Option<State> {
        match self {
            Js::Undefined => Some(State::DefaultValue),
            _ => None,
        }
    }
    fn is_nil(&self) -> bool {
        matches!(self, Js::Undefined | Js::Nil)
    }
}

fn items(js: &Js) -> &[Js] {
    match js {
        Js::Arr(items) => items,
        _ => &[],
    }
}

fn entries(js: &Js) -> &[(String, Js)] {
    match js {
        Js::Obj(entries) => entries,
        _ => &[],
    }
}

impl ArrayView for Js {
    fn as_value(&self) -> &dyn ValueView {
        self
    }
    fn size(&self) -> i64 {
        items(self).len() as i64
    }
    fn values<'k>(&'k self) -> Box<dyn Iterator<Item = &'k dyn ValueView> + 'k> {
        Box::new(items(self).iter().map(|v| v as &dyn ValueView))
    }
    fn contains_key(&self, index: i64) -> bool {
        ArrayView::get(self, index).is_some()
    }
    /// A negative index counts from the end, as in LiquidJS.
    fn get(&self, index: i64) -> Option<&dyn ValueView> {
        let items = items(self);
        let i = if index < 0 {
            items.len() as i64 + index
        } else {
            index
        };
        usize::try_from(i)
            .ok()
            .and_then(|i| items.get(i))
            .map(|v| v as &dyn ValueView)
    }
}

impl ObjectView for Js {
    fn as_value(&self) -> &dyn ValueView {
        self
    }
    fn size(&self) -> i64 {
        entries(self).len() as i64
    }
    fn keys<'k>(&'k self) -> Box<dyn Iterator<Item = KStringCow<'k>> + 'k> {
        Box::new(entries(self).iter().map(|(k, _)| KStringCow::from_ref(k)))
    }
    fn values<'k>(&'k self) -> Box<dyn Iterator<Item = &'k dyn ValueView> + 'k> {
        Box::new(entries(self).iter().map(|(_, v)| v as &dyn ValueView))
    }
    fn iter<'k>(&'k self) -> Box<dyn Iterator<Item = (KStringCow<'k>, &'k dyn ValueView)> + 'k> {
        Box::new(
            entries(self)
                .iter()
                .map(|(k, v)| (KStringCow::from_ref(k), v as &dyn ValueView)),
        )
    }
    fn contains_key(&self, index: &str) -> bool {
        entries(self).iter().any(|(k, _)| k == index)
    }
    fn get<'s>(&'s self, index: &str) -> Option<&'s dyn ValueView> {
        if let Js::Text(t) = self {
            return text_property(t, index);
        }
        entries(self)
            .iter()
            .find(|(k, _)| k == index)
            .map(|(_, v)| v as &dyn ValueView)
    }
}

fn text_property<'s>(t: &'s Text, key: &str) -> Option<&'s dyn ValueView> {
    if key == "size" || key == "length" {
        let size = t.size.get_or_init(|| Js::Num(js::utf16_len(&t.s) as f64));
        return Some(size as &dyn ValueView);
    }
    let index = js::array_index(key)? as usize;
    let units = t
        .units
        .get_or_init(|| js::utf16_units(&t.s).map(Js::Str).collect());
    units.as_slice().get(index).map(|u| u as &dyn ValueView)
}
