//! The fast path of the default mapping: the action's fields read straight from the event,
//! borrowed, with no mapping evaluator and no resolved JSON tree.
//!
//! - `cursor`: a one-pass JSON reader over a text, which accepts only what a JSON tree accepts
//!   (the server's `/v1/batch` fast path reads bodies with it too);
//! - `value`: over an event already parsed into JSON (what [`crate::ActionMapping::payload`]
//!   does first when the mapping is the default);
//! - `text`: from the event's JSON text into a typed, borrowed view, with no JSON tree but for
//!   `audience_settings` ([`crate::Planner::prepare_text`], [`crate::Planner::plan_texts`]).
//!
//! The two views (`value`, `text`) cover the common case only: every member the default mapping and the event checks read
//! is absent, `null` where that means absent, or of the type the action expects (strings,
//! objects, booleans for the membership flag). For anything else (a number or an array where a
//! string is expected, an empty audience key, a timestamp that does not parse, a member
//! repeated with a value of another type) they give up, and the general path decides, with Segment's
//! messages. The property test `tests/fast_path.rs` checks that all paths plan the same bytes
//! and the same outcomes on random events.

mod cursor;
mod text;
mod value;

pub use cursor::Cursor;
pub(crate) use cursor::plain_len;
pub(crate) use text::{ContextMemo, ReadText, read_text};
pub(crate) use value::{default_payload, member};
