//! Per-event preparation: parse the Segment event, map it, validate it with Segment's
//! messages, read audience settings and membership, and produce one [`Change`] or a reason.
//! An unusable audience setting never stops an event: it is left unset and reported with the
//! change ([`Prepared::Change::ignored`]).

use iterable_api::types::ListRef;
use segment::event::{Event, EventType};
use segment::membership::{Membership, MembershipContext, MembershipError, resolve_membership};
use serde_json::{Map, Value};

use crate::audience::{AudienceSettings, IgnoredSetting};
use crate::fast::member;
use crate::plan::{Change, Planner};
use crate::settings::ProjectType;

/// What one event becomes.
#[derive(Debug, Clone, PartialEq)]
pub enum Prepared {
    /// The change the event asks for, and the audience settings it carried that could not be
    /// used (left unset for it; usually none).
    Change {
        change: Box<Change>,
        ignored: Vec<IgnoredSetting>,
    },
    /// Unusable for this destination; the message says why (Segment's words where it has them).
    Rejected(String),
    /// Not an event this destination handles (page, screen, group, alias).
    Skipped(String),
}

/// Reads an external audience id as a list id: a positive decimal integer, surrounding spaces
/// allowed. Segment's `Number()` also took `"0x10"` or `""` (as list 0); those are refused here.
pub fn parse_list_id(raw: &str) -> Option<i64> {
    // An id as Engage sends it is bare digits: nothing to trim (`trim` walks Unicode spaces).
    let bytes = raw.as_bytes();
    let bare = bytes.first().is_some_and(u8::is_ascii_digit)
        && bytes.last().is_some_and(u8::is_ascii_digit);
    let t = if bare { raw } else { raw.trim() };
    if t.is_empty() {
        return None;
    }
    let mut n: i64 = 0;
    for b in t.bytes() {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(i64::from(digit))?;
    }
    (n > 0).then_some(n)
}

pub(crate) fn prepare(planner: &Planner, raw: Value, seq: u64) -> Prepared {
    let event = match Event::from_value(raw) {
        Ok(e) => e,
        Err(e) => return Prepared::Rejected(e.to_string()),
    };
    match event.event_type() {
        EventType::Identify | EventType::Track => {}
        other => {
            return Prepared::Skipped(format!(
                "{} events are not handled by this destination",
                other.as_str()
            ));
        }
    }
    let time_ms = match event.event_time_ms() {
        Ok(t) => t,
        Err(e) => return Prepared::Rejected(e.to_string()),
    };
    let payload = match planner.payload(event.as_value()) {
        Ok(p) => p,
        Err(m) => return Prepared::Rejected(m),
    };
    let raw_settings = event
        .personas()
        .and_then(|p| member(p.as_map(), "audience_settings"));
    let ctx = MembershipContext::of_event(&event, planner.retl);
    let value = member(&payload.traits_or_properties, &payload.audience_key);
    let fields = Fields {
        email: payload.email,
        user_id: payload.user_id,
        data_fields: payload.data_fields,
        audience_key: payload.audience_key,
        audience_id: payload.audience_id.as_deref(),
    };
    finish(planner, fields, raw_settings, value, &ctx, time_ms, seq)
}

/// The mapped fields of an event that [`finish`] turns into a change. The audience id is only
/// read (as the list id), so it stays borrowed from the payload or the event's text.
pub(crate) struct Fields<'a> {
    pub(crate) email: Option<String>,
    pub(crate) user_id: Option<String>,
    pub(crate) data_fields: Option<Map<String, Value>>,
    pub(crate) audience_key: String,
    pub(crate) audience_id: Option<&'a str>,
}

/// The checks after mapping, shared by the general path and the text path ([`crate::fast`]):
/// the list, the identifiers the project needs, the audience settings and the membership.
pub(crate) fn finish(
    planner: &Planner,
    f: Fields<'_>,
    raw_settings: Option<&Value>,
    membership_value: Option<&Value>,
    ctx: &MembershipContext<'_>,
    time_ms: Option<i64>,
    seq: u64,
) -> Prepared {
    let list = match f.audience_id {
        None => ListRef::for_audience(&f.audience_key),
        Some(id) => match parse_list_id(id) {
            Some(n) => ListRef::Id(n),
            None => return Prepared::Rejected("Invalid or missing Segment Audience ID".into()),
        },
    };
    match planner.project_type {
        ProjectType::UserId if f.user_id.is_none() => {
            return Prepared::Rejected(
                "User ID is required when Iterable Project Type = User ID".into(),
            );
        }
        _ if f.user_id.is_none() && f.email.is_none() => {
            return Prepared::Rejected(
                "Either User ID or Email is required when Iterable Project Type = Hybrid".into(),
            );
        }
        _ => {}
    }
    let (settings, ignored) = AudienceSettings::read(raw_settings);
    let member = match resolve_membership(membership_value, ctx) {
        Ok(Membership::Add) => true,
        Ok(Membership::Remove) => false,
        Err(e @ MembershipError::RetlNotSynced { .. }) => return Prepared::Skipped(e.to_string()),
        Err(e) => return Prepared::Rejected(format!("audience {:?}: {e}", f.audience_key)),
    };
    let change = Box::new(Change {
        audience_key: f.audience_key,
        list,
        // As the service stores it (and Iterable does): one spelling per user.
        email: f.email.map(|e| {
            if e.is_ascii() && !e.bytes().any(|b| b.is_ascii_uppercase()) {
                e
            } else {
                e.to_lowercase()
            }
        }),
        user_id: f.user_id,
        member,
        data_fields: f.data_fields,
        settings,
        time_ms,
        seq,
    });
    Prepared::Change { change, ignored }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_ids() {
        for (raw, want) in [
            ("12345", Some(12345)),
            (" 77 ", Some(77)),
            ("0", None),
            ("", None),
            ("abc", None),
            ("0x10", None),
            ("1e3", None),
            ("-5", None),
            ("99999999999999999999", None),
            ("9223372036854775807", Some(i64::MAX)),
            ("9223372036854775808", None),
            ("0000", None),
            ("007", Some(7)),
            ("7\u{3000}", Some(7)),
        ] {
            assert_eq!(parse_list_id(raw), want, "{raw:?}");
        }
    }

    proptest::proptest! {
        /// The same ids as trimming, checking every byte is a digit, then parsing as `i64` (the
        /// reading this one replaced), on any text and on texts of digits and spaces.
        #[test]
        fn list_ids_read_as_trim_then_parse_reads_them(
            raw in proptest::prop_oneof![
                proptest::prelude::any::<String>(),
                "[ \\t\u{a0}\u{3000}]{0,2}[0-9]{0,20}[ \\t\u{a0}x]{0,2}",
            ]
        ) {
            let t = raw.trim();
            let want = (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
                .then(|| t.parse::<i64>().ok().filter(|&n| n > 0))
                .flatten();
            proptest::prop_assert_eq!(parse_list_id(&raw), want, "{:?}", raw);
        }
    }
}
