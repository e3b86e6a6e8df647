//! An event read from its JSON text into a typed, borrowed view: strings borrowed from the
//! text (copied only when they hold escapes), members the action does not read skipped without
//! being built, and the default mapping applied to the view.
//!
//! Each view only accepts JSON objects (never arrays in their place), and a member that appears
//! twice keeps its last value, as a parsed event does. What the view cannot decide exactly as
//! the general path would, it gives up on ([`TextEvent::prepare`] returns `None`).

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use segment::event::{ComputationClass, EventType, parse_timestamp_ms};
use segment::membership::MembershipContext;
use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::plan::Planner;
use crate::prepare::{Fields, Prepared, finish};

/// A string, borrowed from the text when it holds no escape.
#[derive(Debug, Clone, PartialEq)]
pub struct Text<'a>(pub Cow<'a, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(s)))
            }
        }
        d.deserialize_str(V)
    }
}

/// A member of a view ([`view!`]) read as `Option<Self>`: absent or `null` is `None`.
trait Nullable<'de>: Sized {
    fn nullable<D: Deserializer<'de>>(d: D) -> Result<Option<Self>, D::Error>;
}

/// A string or `null`, read in one step (the parser looks at the value's first byte once,
/// where `Option<Text>` would look for `null` first, then for a string); anything else is an
/// error, as it is for `Option<Text>`.
impl<'de> Nullable<'de> for Text<'de> {
    fn nullable<D: Deserializer<'de>>(d: D) -> Result<Option<Self>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Option<Text<'de>>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or null")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(Some(Text(Cow::Borrowed(s))))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                Ok(Some(Text(Cow::Owned(s.to_owned()))))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Self::Value, E> {
                Ok(Some(Text(Cow::Owned(s))))
            }
        }
        d.deserialize_any(V)
    }
}

/// The views, their member lists and `audience_settings`: as `Option<T>` reads them.
macro_rules! nullable_as_option {
    ($($ty:ty),*) => {
        $(impl<'de> Nullable<'de> for $ty {
            fn nullable<D: Deserializer<'de>>(d: D) -> Result<Option<Self>, D::Error> {
                Option::<Self>::deserialize(d)
            }
        })*
    };
}

nullable_as_option!(Members<'de>, Personas<'de>, Context<'de>, Value);

/// Reads a view's member with [`Nullable::nullable`].
struct NullableSeed<T>(PhantomData<T>);

impl<'de, T: Nullable<'de>> DeserializeSeed<'de> for NullableSeed<T> {
    type Value = Option<T>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<T>, D::Error> {
        T::nullable(d)
    }
}

/// A member of `traits` or `properties`, as far as the action reads it.
#[derive(Debug, Clone, PartialEq)]
enum Member<'a> {
    Str(Text<'a>),
    Bool(bool),
    Null,
    /// A number, an array or an object: skipped, not built.
    Other,
}

impl<'de> Deserialize<'de> for Member<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Member<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(Member::Str(Text(Cow::Borrowed(s))))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                Ok(Member::Str(Text(Cow::Owned(s.to_owned()))))
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<Self::Value, E> {
                Ok(Member::Bool(b))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Member::Null)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Member::Other)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Member::Other)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Member::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<Skip>()?.is_some() {}
                Ok(Member::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<Skip, Skip>()?.is_some() {}
                Ok(Member::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// An object's members in order (`traits`, `properties`, `context.traits`).
#[derive(Debug, Clone, PartialEq, Default)]
struct Members<'a>(Vec<(Text<'a>, Member<'a>)>);

impl<'a> Members<'a> {
    /// The member's last value, as a parsed object keeps it.
    fn get(&self, key: &str) -> Option<&Member<'a>> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k.0 == key)
            .map(|(_, v)| v)
    }

    /// A member that is present and not `null`: what the mapping's `exists` tests.
    fn present(&self, key: &str) -> Option<&Member<'a>> {
        self.get(key).filter(|m| **m != Member::Null)
    }
}

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(4));
                while let Some(key) = map.next_key::<Text<'de>>()? {
                    let value = map.next_value::<Member<'de>>()?;
                    out.push((key, value));
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// A view of an object with the listed members, each `Option<T>` (absent or `null` is `None`,
/// read with [`Nullable`]),
/// the last of a repeated member winning; other members are skipped ([`Skip`]). Only an object is read:
/// an array in its place is an error (serde's derived structs would read it by position).
macro_rules! view {
    ($(#[$doc:meta])* $name:ident { $($field:ident: $ty:ty = $key:literal,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Default)]
        struct $name<'a> {
            $($field: Option<$ty>,)*
            _text: std::marker::PhantomData<&'a str>,
        }

        impl<'de> Deserialize<'de> for $name<'de> {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = $name<'de>;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str("an object")
                    }
                    fn visit_map<A: MapAccess<'de>>(
                        self,
                        mut map: A,
                    ) -> Result<Self::Value, A::Error> {
                        let mut out = $name::default();
                        while let Some(key) = map.next_key::<Text<'de>>()? {
                            match key.0.as_ref() {
                                $($key => {
                                    out.$field = map.next_value_seed(NullableSeed(PhantomData))?
                                })*
                                _ => {
                                    map.next_value::<Skip>()?;
                                }
                            }
                        }
                        Ok(out)
                    }
                }
                d.deserialize_map(V)
            }
        }
    };
}

view! {
    /// `context.personas`.
    Personas {
        computation_id: Text<'a> = "computation_id",
        external_audience_id: Text<'a> = "external_audience_id",
        computation_class: Text<'a> = "computation_class",
        computation_key: Text<'a> = "computation_key",
        namespace: Text<'a> = "namespace",
        space_id: Text<'a> = "space_id",
        audience_settings: Value = "audience_settings",
    }
}

view! {
    /// `context`.
    Context {
        traits: Members<'a> = "traits",
        personas: Personas<'a> = "personas",
    }
}

view! {
    /// The members of an event that the event checks and the default mapping read.
    TextEvent {
        event_type: Text<'a> = "type",
        user_id: Text<'a> = "userId",
        anonymous_id: Text<'a> = "anonymousId",
        message_id: Text<'a> = "messageId",
        event: Text<'a> = "event",
        traits: Members<'a> = "traits",
        properties: Members<'a> = "properties",
        context: Context<'a> = "context",
        timestamp: Text<'a> = "timestamp",
        original_timestamp: Text<'a> = "originalTimestamp",
        sent_at: Text<'a> = "sentAt",
        received_at: Text<'a> = "receivedAt",
    }
}

/// A string field as the action reads it when no coercion is needed: `None` when empty.
fn non_empty(text: Option<&Text<'_>>) -> Option<String> {
    text.filter(|t| !t.0.is_empty())
        .map(|t| t.0.clone().into_owned())
}

/// A member read as a string field: `Err` when it would need a coercion.
fn member_string(m: Option<&Member<'_>>) -> Result<Option<String>, ()> {
    match m {
        None | Some(Member::Null) => Ok(None),
        Some(Member::Str(t)) => Ok(non_empty(Some(t))),
        Some(_) => Err(()),
    }
}

impl<'a> TextEvent<'a> {
    /// The event's `messageId` as the planner keys it (a non-empty string), taken out of the
    /// view: borrowed from the text unless it holds escapes.
    fn take_message_id(&mut self) -> Option<Cow<'a, str>> {
        self.message_id
            .take()
            .map(|t| t.0)
            .filter(|id| !id.is_empty())
    }

    /// The event time: the first of the four time fields present, parsed. `Err` when it does
    /// not parse (the general path says why).
    fn time_ms(&self) -> Result<Option<i64>, ()> {
        let first = [
            &self.timestamp,
            &self.original_timestamp,
            &self.sent_at,
            &self.received_at,
        ]
        .into_iter()
        .find_map(Option::as_ref);
        match first {
            None => Ok(None),
            Some(t) => parse_timestamp_ms(&t.0).map(Some).map_err(|_| ()),
        }
    }

    /// What the general path makes of this event, or `None` when it has to decide.
    fn prepare(&self, planner: &Planner, seq: u64) -> Option<Prepared> {
        let event_type = EventType::parse(
            self.event_type
                .as_ref()
                .filter(|t| !t.0.is_empty())?
                .0
                .as_ref(),
        );
        if !matches!(event_type, EventType::Identify | EventType::Track) {
            return Some(Prepared::Skipped(format!(
                "{} events are not handled by this destination",
                event_type.as_str()
            )));
        }
        let time_ms = self.time_ms().ok()?;
        let context = self.context.as_ref();
        let personas = context.and_then(|c| c.personas.as_ref());
        let context_traits = context.and_then(|c| c.traits.as_ref());
        let (traits, properties) = (self.traits.as_ref(), self.properties.as_ref());
        let email = match traits.and_then(|t| t.present("email")) {
            Some(m) => Some(m),
            None => properties
                .and_then(|p| p.present("email"))
                .or_else(|| context_traits.and_then(|c| c.present("email"))),
        };
        let email = member_string(email).ok()?;
        let tp = match (traits, properties) {
            (_, Some(p)) if event_type == EventType::Track => p,
            (Some(t), _) => t,
            (None, Some(p)) => p,
            (None, None) => return None,
        };
        let audience_key = non_empty(personas?.computation_key.as_ref())?;
        let audience_id = personas?
            .external_audience_id
            .as_ref()
            .map(|id| id.0.as_ref())
            .filter(|id| !id.trim().is_empty());
        let value = match tp.get(&audience_key) {
            None => None,
            Some(Member::Str(s)) => Some(Value::String(s.0.clone().into_owned())),
            Some(Member::Bool(b)) => Some(Value::Bool(*b)),
            Some(Member::Null) => Some(Value::Null),
            Some(Member::Other) => return None,
        };
        let ctx = MembershipContext {
            computation_class: personas
                .and_then(|p| p.computation_class.as_ref())
                .map(|c| ComputationClass::parse(c.0.as_ref())),
            event_type: &event_type,
            event_name: self.event.as_ref().map(|e| e.0.as_ref()),
            retl_sync_mode: planner.retl,
        };
        let fields = Fields {
            email,
            user_id: non_empty(self.user_id.as_ref()),
            data_fields: None,
            audience_key,
            audience_id,
        };
        let settings = personas.and_then(|p| p.audience_settings.as_ref());
        Some(finish(
            planner,
            fields,
            settings,
            value.as_ref(),
            &ctx,
            time_ms,
            seq,
        ))
    }
}

/// One event's text, read for the planner.
pub(crate) enum ReadText<'a> {
    /// Prepared on the fast path; its `messageId`, borrowed from the text when it can be.
    Fast {
        message_id: Option<Cow<'a, str>>,
        prepared: Prepared,
    },
    /// Parsed into JSON for the general path.
    General(Value),
    /// Not JSON: why.
    Malformed(String),
}

/// A JSON value read and dropped, with every check a JSON tree makes (numbers within f64's
/// range, serde_json's nesting limit, no lone surrogate in a string) but nothing built: strings
/// are borrowed, numbers read into registers. serde's `IgnoredAny` skips without those checks,
/// so a text it accepts could be one a JSON tree refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Skip;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Skip, E> {
                Ok(Skip)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Skip, E> {
                Ok(Skip)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Skip, E> {
                Ok(Skip)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Skip, E> {
                Ok(Skip)
            }
            fn visit_borrowed_str<E: de::Error>(self, _: &'de str) -> Result<Skip, E> {
                Ok(Skip)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Skip, E> {
                Ok(Skip)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Skip, E> {
                Ok(Skip)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Skip, A::Error> {
                while seq.next_element::<Skip>()?.is_some() {}
                Ok(Skip)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Skip, A::Error> {
                while map.next_entry::<Skip, Skip>()?.is_some() {}
                Ok(Skip)
            }
        }
        d.deserialize_any(V)
    }
}

/// Reads one event's JSON text: on the fast path when the mapping is the default and the event
/// is of the common shapes, else parsed into JSON for the general path.
pub(crate) fn read_text<'a>(planner: &Planner, text: &'a str, seq: u64) -> ReadText<'a> {
    if planner.mapping.is_default() {
        if let Ok(mut event) = serde_json::from_str::<TextEvent<'a>>(text) {
            if let Some(prepared) = event.prepare(planner, seq) {
                return ReadText::Fast {
                    message_id: event.take_message_id(),
                    prepared,
                };
            }
        }
    }
    match serde_json::from_str::<Value>(text) {
        Ok(value) => ReadText::General(value),
        Err(e) => ReadText::Malformed(format!("malformed JSON: {e}")),
    }
}
