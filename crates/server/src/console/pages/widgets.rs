//! Pieces several pages show: a destination's state badge and reason, its queue, Iterable's
//! errors by class, a link to an audience, and the "next page" link of a paged list.

use maud::{Markup, html};

use crate::admin::views::{ErrorClassCount, OperatorPauseView, QueueView, StateView, StateWord};

use super::super::format::{count, duration_ms, maybe_time, relative_time};
use super::super::layout::{q, seg};

/// The state's word as shown and as a CSS class.
pub(crate) fn state_word(s: StateWord) -> &'static str {
    match s {
        StateWord::Running => "running",
        StateWord::Paused => "paused",
        StateWord::Degraded => "degraded",
        StateWord::Disabled => "disabled",
    }
}

/// The state badge, with the reason and since when, and an operator's pause.
pub(crate) fn state(s: &StateView, pause: Option<&OperatorPauseView>, now_ms: i64) -> Markup {
    let word = if pause.is_some() && s.state == StateWord::Running {
        "paused"
    } else {
        state_word(s.state)
    };
    html! {
        p.state-line {
            span class=(format!("state {word}")) data-state=(word) { (word) }
            @if let Some(r) = &s.reason {
                " " span.reason data-reason { (r) }
            }
            @if let Some(since) = s.since_ms {
                " " span.muted { "since " (relative_time(since, now_ms)) }
            }
        }
        @if let Some(p) = pause {
            p.state-line.operator-pause {
                "Paused by an operator (" (p.by) ") " (relative_time(p.since_ms, now_ms))
                @if !p.reason.is_empty() { ": " span.reason { (p.reason) } }
            }
        }
    }
}

/// The queue: pending keys, retrying events, the oldest one's age.
pub(crate) fn queue(qv: &QueueView, now_ms: i64) -> Markup {
    html! {
        dl.facts {
            dt { "Pending" } dd data-pending=(qv.pending) { (count(qv.pending)) }
            dt { "Retrying" } dd { (count(qv.retrying)) }
            dt { "Oldest pending" } dd {
                @match qv.age_ms {
                    Some(age) => { (duration_ms(age)) " (accepted " (maybe_time(qv.oldest_pending_ms, now_ms)) ")" }
                    None => { "–" }
                }
            }
        }
    }
}

/// Iterable's errors by status class.
pub(crate) fn errors(errors: &[ErrorClassCount]) -> Markup {
    html! {
        @if errors.iter().all(|e| e.count == 0) {
            p.muted { "No Iterable errors since this instance started." }
        } @else {
            table.errors {
                thead { tr { th { "Iterable errors" } th.num { "requests" } } }
                tbody {
                    @for e in errors.iter().filter(|e| e.count > 0) {
                        tr { td { (e.class) } td.num { (count(e.count)) } }
                    }
                }
            }
        }
    }
}

/// The console path of a destination.
pub(crate) fn destination_href(destination: &str) -> String {
    format!("/console/destinations/{}", seg(destination))
}

/// The console path of an audience.
pub(crate) fn audience_href(destination: &str, audience: &str) -> String {
    format!(
        "/console/destinations/{}/audiences/{}",
        seg(destination),
        seg(audience)
    )
}

/// The lookup page of an event.
pub(crate) fn event_href(message_id: &str) -> String {
    format!("/console/lookup?messageId={}", q(message_id))
}

/// The lookup page of a user.
pub(crate) fn user_href(email: Option<&str>, user_id: Option<&str>) -> String {
    match (email, user_id) {
        (Some(e), _) => format!("/console/lookup?email={}", q(e)),
        (None, Some(u)) => format!("/console/lookup?userId={}", q(u)),
        (None, None) => "/console/lookup".into(),
    }
}

/// "Next page" after `next_after`, keeping the other query parameters of `base` (a path with
/// `?` or not).
pub(crate) fn next_page(base: &str, next_after: Option<&str>, shown: usize) -> Markup {
    let sep = if base.contains('?') { '&' } else { '?' };
    html! {
        div.pager {
            span.muted { (count(shown as u64)) " shown" }
            @if let Some(after) = next_after {
                a.next href=(format!("{base}{sep}after={}", q(after))) { "Next page →" }
            }
        }
    }
}

/// An identity: email and/or userId.
pub(crate) fn identity(email: Option<&str>, user_id: Option<&str>) -> Markup {
    html! {
        @if let Some(e) = email { span.email { (e) } }
        @if email.is_some() && user_id.is_some() { br; }
        @if let Some(u) = user_id { span.userid.muted { "userId " (u) } }
    }
}
