//! An event read from its JSON text into a typed, borrowed view, in one pass of the
//! [`Cursor`]: strings borrowed from the text (copied only when they hold escapes), members the
//! action does not read checked and skipped without being built, and the default mapping
//! applied to the view.
//!
//! Each view only accepts JSON objects (never arrays in their place), and a member that appears
//! twice keeps its last value, as a parsed event does. What the view cannot decide exactly as
//! the general path would, it gives up on ([`TextEvent::prepare`] returns `None`).

use std::borrow::Cow;

use segment::event::{ComputationClass, EventType, parse_timestamp_ms};
use segment::membership::MembershipContext;
use serde_json::Value;

use super::cursor::Cursor;
use crate::plan::Planner;
use crate::prepare::{Fields, Prepared, finish};

/// A string, borrowed from the text when it holds no escape.
#[derive(Debug, Clone, PartialEq)]
struct Text<'a>(Cow<'a, str>);

/// A member of a view ([`view!`]): read from the cursor, `None` when the text is not JSON or the
/// value is of a kind the view does not take (the general path decides then).
trait Read<'a>: Sized {
    fn read(c: &mut Cursor<'a>) -> Option<Self>;

    /// The value, or `null` (read as `Some(None)`).
    fn nullable(c: &mut Cursor<'a>) -> Option<Option<Self>> {
        if c.null()? {
            return Some(None);
        }
        Self::read(c).map(Some)
    }

    /// [`Read::nullable`] into `slot` (the views fill theirs in place, with no copy).
    fn nullable_into(c: &mut Cursor<'a>, slot: &mut Option<Self>) -> Option<()> {
        *slot = Self::nullable(c)?;
        Some(())
    }
}

impl<'a> Read<'a> for Text<'a> {
    fn read(c: &mut Cursor<'a>) -> Option<Self> {
        c.string().map(Text)
    }

    fn nullable(c: &mut Cursor<'a>) -> Option<Option<Self>> {
        c.string_or_null().map(|s| s.map(Text))
    }
}

/// `audience_settings`: kept as a JSON tree, as the general path reads it.
impl<'a> Read<'a> for Value {
    fn read(c: &mut Cursor<'a>) -> Option<Self> {
        c.tree()
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

impl<'a> Read<'a> for Member<'a> {
    fn read(c: &mut Cursor<'a>) -> Option<Self> {
        Some(match c.peek()? {
            b'"' => Member::Str(Text::read(c)?),
            b't' | b'f' => Member::Bool(c.boolean()?),
            b'n' => c.null()?.then_some(Member::Null)?,
            _ => {
                c.skip()?;
                Member::Other
            }
        })
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

impl<'a> Read<'a> for Members<'a> {
    fn read(c: &mut Cursor<'a>) -> Option<Self> {
        let mut out = Vec::with_capacity(4);
        c.object(|c, key| {
            out.push((Text(key), Member::read(c)?));
            Some(())
        })?;
        Some(Members(out))
    }
}

/// A view of an object with the listed members, each `Option<T>` (absent or `null` is `None`),
/// the last of a repeated member winning; other members are skipped, checked as they are. Only
/// an object is read: anything else in its place gives up.
macro_rules! view {
    ($(#[$doc:meta])* $name:ident { $($field:ident: $ty:ty = $key:literal,)* }
     $(also { $($(#[$xdoc:meta])* $xfield:ident: $xty:ty,)* })?) => {
        $(#[$doc])*
        #[derive(Debug, Default)]
        struct $name<'a> {
            $($field: Option<$ty>,)*
            $($($(#[$xdoc])* $xfield: $xty,)*)?
            _text: std::marker::PhantomData<&'a str>,
        }

        impl<'a> $name<'a> {
            /// Fills `out`, which is empty, from the object at the cursor.
            #[allow(dead_code)]
            fn fill(c: &mut Cursor<'a>, out: &mut Self) -> Option<()> {
                c.object(|c, key| {
                    if !Self::member(c, out, &key)? {
                        c.skip()?;
                    }
                    Some(())
                })
            }

            /// Reads the value at the cursor into `out` if `key` is one of the view's members
            /// (`Some(true)`); `Some(false)`, with nothing read, if it is not.
            #[inline]
            fn member(c: &mut Cursor<'a>, out: &mut Self, key: &str) -> Option<bool> {
                match key {
                    $($key => Read::nullable_into(c, &mut out.$field)?,)*
                    _ => return Some(false),
                }
                Some(true)
            }
        }

        impl<'a> Read<'a> for $name<'a> {
            fn read(c: &mut Cursor<'a>) -> Option<Self> {
                let mut out = $name::default();
                Self::fill(c, &mut out)?;
                Some(out)
            }

            fn nullable_into(c: &mut Cursor<'a>, slot: &mut Option<Self>) -> Option<()> {
                if c.null()? {
                    *slot = None;
                    return Some(());
                }
                Self::fill(c, slot.insert($name::default()))
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
        timestamp: Text<'a> = "timestamp",
        original_timestamp: Text<'a> = "originalTimestamp",
        sent_at: Text<'a> = "sentAt",
        received_at: Text<'a> = "receivedAt",
    }
    also {
        /// `context`, read from this event's text (see [`TextEvent::read_context`]).
        context: Option<Context<'a>>,
        /// The text `context` was read from, to be remembered for the next event.
        context_text: Option<&'a str>,
        /// `context` is the one the [`ContextMemo`] keeps in this slot.
        context_remembered: Option<usize>,
    }
}

/// The last contexts read in a batch of texts: each one's text and view. The events of one
/// audience carry byte-identical contexts (the personas of the audience, the library), and a
/// batch holds a few audiences' events, interleaved or in runs. An event whose `context` text
/// is one of these takes its view instead of reading it again. The same bytes read at the same
/// depth are the same value, and an object (or `null`) that starts the rest of the text is
/// that value whole, as an object ends at its closing brace.
///
/// A lookup compares the text with each kept one (a mismatch mostly ends within a few bytes);
/// a batch whose lookups mostly miss stops looking after [`MEMO_TRIAL`] of them.
#[derive(Default)]
pub(crate) struct ContextMemo<'a> {
    slots: Vec<(&'a str, Option<Context<'a>>)>,
    /// The slot to replace next once all are taken (the oldest).
    next: usize,
    hits: usize,
    misses: usize,
}

/// Contexts kept at once: more than the audiences a batch usually mixes.
const MEMO_SLOTS: usize = 32;
/// Lookups after which a batch that missed more than it hit stops looking.
const MEMO_TRIAL: usize = 2 * MEMO_SLOTS;

impl<'a> ContextMemo<'a> {
    /// The slot whose text is at the cursor, the cursor moved past it.
    fn find(&mut self, c: &mut Cursor<'a>) -> Option<usize> {
        if self.slots.is_empty()
            || (self.hits + self.misses >= MEMO_TRIAL && self.misses > self.hits)
        {
            return None;
        }
        let found = self.slots.iter().position(|(text, _)| c.eat_text(text));
        match found {
            Some(_) => self.hits += 1,
            None => self.misses += 1,
        }
        found
    }

    /// Keeps a context read from `text`, in place of the oldest when all slots are taken.
    fn keep(&mut self, text: &'a str, view: Option<Context<'a>>) {
        if text.is_empty() {
            return;
        }
        if self.slots.len() < MEMO_SLOTS {
            self.slots.push((text, view));
        } else if let Some(slot) = self.slots.get_mut(self.next) {
            *slot = (text, view);
            self.next = (self.next + 1) % MEMO_SLOTS;
        }
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

    /// `context`: a remembered one when its text is the same, else read (and its text kept).
    fn read_context(&mut self, c: &mut Cursor<'a>, memo: &mut ContextMemo<'a>) -> Option<()> {
        c.peek()?;
        if let Some(slot) = memo.find(c) {
            self.context = None;
            self.context_text = None;
            self.context_remembered = Some(slot);
            return Some(());
        }
        let start = c.offset();
        Read::nullable_into(c, &mut self.context)?;
        self.context_text = c.since(start);
        self.context_remembered = None;
        Some(())
    }

    /// The event's `context`: its own, or the remembered one.
    fn context<'m>(&'m self, memo: &'m ContextMemo<'a>) -> Option<&'m Context<'a>> {
        match self.context_remembered {
            Some(slot) => memo.slots.get(slot).and_then(|(_, view)| view.as_ref()),
            None => self.context.as_ref(),
        }
    }

    /// What the general path makes of this event, or `None` when it has to decide.
    fn prepare(&self, planner: &Planner, seq: u64, memo: &ContextMemo<'a>) -> Option<Prepared> {
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
        let context = self.context(memo);
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
            // Not blank: an ASCII letter or digit first settles it without walking the text.
            .filter(|id| {
                id.as_bytes().first().is_some_and(u8::is_ascii_alphanumeric)
                    || !id.trim().is_empty()
            });
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

impl<'a> TextEvent<'a> {
    /// The event's whole text read into this view, a default one: `None` when it is not JSON,
    /// or when the view gives up on it (the view is then partly filled). Filled in place, not
    /// returned: the view is a few hundred bytes, and a returned one was copied (callgrind).
    fn read_whole(&mut self, text: &'a str, memo: &mut ContextMemo<'a>) -> Option<()> {
        let mut c = Cursor::new(text);
        c.object(|c, key| {
            if key == "context" {
                self.read_context(c, memo)
            } else if Self::member(c, self, &key)? {
                Some(())
            } else {
                c.skip()
            }
        })?;
        c.end()
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

/// Reads one event's JSON text: on the fast path when the mapping is the default and the event
/// is of the common shapes, else parsed into JSON for the general path. `memo` carries the
/// contexts read from one text of a batch to the next ([`ContextMemo`]).
pub(crate) fn read_text<'a>(
    planner: &Planner,
    text: &'a str,
    seq: u64,
    memo: &mut ContextMemo<'a>,
) -> ReadText<'a> {
    if planner.mapping.is_default() {
        let mut event = TextEvent::default();
        if event.read_whole(text, memo).is_some() {
            let prepared = event.prepare(planner, seq, memo);
            if let Some(text) = event.context_text.take() {
                memo.keep(text, event.context.take());
            }
            if let Some(prepared) = prepared {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// An event whose context text is one read before in the batch takes the remembered view;
    /// an event whose context differs reads its own, which is then remembered too.
    #[test]
    fn a_context_seen_before_is_not_read_again() {
        let a = r#"{"personas":{"computation_key":"vip"},"library":{"name":"x"}}"#;
        let b = r#"{"personas":{"computation_key":"vip"},"library":{"name":"y"}}"#;
        let event = |ctx: &str| format!(r#"{{"type":"identify","context":{ctx}}}"#);
        let texts = [
            event(a),
            event(b),
            event(a),
            event(b),
            event(&format!("{a} ")),
        ];
        let mut memo = ContextMemo::default();
        let mut seen = Vec::new();
        for text in &texts {
            let mut e = TextEvent::default();
            e.read_whole(text, &mut memo).expect("read");
            let key = e
                .context(&memo)
                .and_then(|c| c.personas.as_ref())
                .and_then(|p| p.computation_key.as_ref())
                .map(|k| k.0.to_string());
            seen.push((e.context_remembered, e.context_text, key));
            if let Some(text) = e.context_text.take() {
                memo.keep(text, e.context.take());
            }
        }
        let vip = Some("vip".to_string());
        assert_eq!(
            seen,
            [
                (None, Some(a), vip.clone()),
                (None, Some(b), vip.clone()),
                (Some(0), None, vip.clone()),
                (Some(1), None, vip.clone()),
                (Some(0), None, vip.clone()),
            ]
        );
    }

    /// A batch whose contexts all differ stops looking them up after a trial, and keeps
    /// at most [`MEMO_SLOTS`] of them.
    #[test]
    fn a_batch_of_distinct_contexts_stops_looking() {
        let texts: Vec<String> = (0..200)
            .map(|i| format!(r#"{{"type":"identify","context":{{"ip":"10.0.0.{i}"}}}}"#))
            .collect();
        let mut memo = ContextMemo::default();
        for text in &texts {
            let mut e = TextEvent::default();
            e.read_whole(text, &mut memo).expect("read");
            assert_eq!(e.context_remembered, None);
            if let Some(text) = e.context_text.take() {
                memo.keep(text, e.context.take());
            }
        }
        assert_eq!(memo.slots.len(), MEMO_SLOTS);
        assert_eq!((memo.hits, memo.misses), (0, MEMO_TRIAL));
    }
}
