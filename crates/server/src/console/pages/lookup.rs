//! Lookup: a user by email or userId (in every audience, 100 a page: the membership the service
//! wants and the event that set it, what Iterable acknowledged and its event, the delivery
//! state), and an event by messageId (what became of it in each audience).

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::response::Response;
use maud::{Markup, html};

use crate::admin::AdminError;
use crate::admin::params::{EventParams, UserParams};
use crate::admin::views::{EventLookup, EventRef, EventView, UserAudience, UserLookup};
use crate::http::query_param;

use super::super::Console;
use super::super::format::{maybe_time, relative_time};
use super::super::guard::Operator;
use super::super::layout::{Nav, page};
use super::super::respond::html;
use super::super::sessions::SessionView;
use super::widgets::{audience_href, event_href, identity, next_page, user_href};
use super::{PAGE_ROWS, admin_error};

/// What the lookup page was asked.
#[derive(Debug, Default)]
pub(crate) struct Asked {
    pub email: Option<String>,
    pub user_id: Option<String>,
    pub message_id: Option<String>,
    /// Where the page of the user's audiences starts (the `nextAfter` of the page before).
    pub after: Option<String>,
}

/// What it found.
pub(crate) enum Found {
    Nothing,
    User(UserLookup),
    Event(EventLookup),
    /// The question was refused, with why.
    Refused(String),
}

/// `GET /console/lookup[?email=|userId=|messageId=]`.
pub(crate) async fn get(
    State(console): State<Arc<Console>>,
    op: Operator,
    RawQuery(query): RawQuery,
) -> Response {
    let param = |name| query_param(query.as_deref(), name).filter(|v| !v.trim().is_empty());
    let asked = Asked {
        email: param("email"),
        user_id: param("userId"),
        message_id: param("messageId"),
        after: param("after"),
    };
    let app = &console.app;
    let found = if let Some(id) = &asked.message_id {
        crate::admin::read::event(app, id, &EventParams::default())
            .await
            .map(Found::Event)
    } else if asked.email.is_some() || asked.user_id.is_some() {
        let params = UserParams {
            email: asked.email.clone(),
            user_id: asked.user_id.clone(),
            after: asked.after.clone(),
            limit: Some(PAGE_ROWS),
        };
        crate::admin::read::user(app, &params)
            .await
            .map(Found::User)
    } else {
        Ok(Found::Nothing)
    };
    let found = match found {
        Ok(found) => found,
        // No such event is an answer of the lookup, not an error page.
        Err(AdminError::UnknownEvent(_)) => Found::Event(EventLookup { events: vec![] }),
        // A question the lookup cannot take is said on the page, with the form to fix it.
        Err(e @ AdminError::BadParam { .. }) => Found::Refused(e.to_string()),
        Err(e) => return admin_error(&e, &op.session),
    };
    html(200, render(&asked, &found, app.now_ms(), &op.session))
}

pub(crate) fn render(asked: &Asked, found: &Found, now_ms: i64, s: &SessionView) -> Markup {
    let body = html! {
        form.search.user method="get" action="/console/lookup" {
            label for="email" { "User" }
            input #email type="search" name="email" placeholder="email" value=[asked.email.as_deref()];
            input #userId type="search" name="userId" placeholder="userId" value=[asked.user_id.as_deref()];
            button type="submit" { "Look up the user" }
        }
        form.search.event method="get" action="/console/lookup" {
            label for="messageId" { "Event" }
            input #messageId type="search" name="messageId" placeholder="messageId" value=[asked.message_id.as_deref()];
            button type="submit" { "Look up the event" }
        }
        @match found {
            Found::Nothing => p.muted { "Look up a user by email or userId, or an event by its messageId." },
            Found::User(u) => (user(u, now_ms)),
            Found::Event(e) => (event(e, asked.message_id.as_deref().unwrap_or_default(), now_ms)),
            Found::Refused(why) => p.flash.error role="alert" { (why) },
        }
    };
    page("Lookup", Nav::Lookup, Some(s), &[], body)
}

fn event_ref(r: &EventRef, now_ms: i64) -> Markup {
    html! {
        @match &r.message_id {
            Some(id) => a.event href=(event_href(id)) { (id) },
            None => span.muted { "event #" (r.seq) " (pruned)" },
        }
        @if let Some(t) = r.time_ms { br; span.muted { "event time " (relative_time(t, now_ms)) } }
    }
}

fn membership(m: Option<bool>) -> &'static str {
    match m {
        Some(true) => "member",
        Some(false) => "not a member",
        None => "–",
    }
}

fn user(u: &UserLookup, now_ms: i64) -> Markup {
    html! {
        h2 { "User " (identity(u.email.as_deref(), u.user_id.as_deref())) }
        @if u.audiences.is_empty() {
            p.muted.none { "No audience has this user." }
        } @else {
            table.user {
                thead { tr {
                    th { "Audience" } th { "Identity" } th { "Wanted" } th { "Set by" }
                    th { "Iterable has" } th { "Acknowledged by" } th { "State" } th { "Last answer" }
                } }
                tbody { @for a in &u.audiences { (user_row(a, now_ms)) } }
            }
        }
        (next_page(&user_href(u.email.as_deref(), u.user_id.as_deref()), u.next_after.as_deref(), u.audiences.len()))
    }
}

fn user_row(a: &UserAudience, now_ms: i64) -> Markup {
    html! {
        tr data-audience=(a.audience_key) data-state=(a.state) {
            td.wrap {
                a href=(audience_href(&a.destination, &a.audience_key)) { (a.audience_key) }
                br; span.muted { (a.destination) @if let Some(id) = a.list_id { " · list " (id) } }
            }
            td.wrap { (identity(a.email.as_deref(), a.user_id.as_deref())) }
            td { (membership(Some(a.member))) }
            td.wrap { (event_ref(&a.desired_by, now_ms)) }
            td { (membership(a.acknowledged_member)) }
            td.wrap { @if let Some(r) = &a.acknowledged_by { (event_ref(r, now_ms)) } @else { "–" } }
            td {
                span class=(format!("state {}", a.state)) { (a.state) }
                @if let Some(r) = &a.reason { br; span.reason { (r) } }
                @if a.attempts > 0 { br; span.muted { (a.attempts) " attempts" } }
                @if let Some(n) = a.next_attempt_ms { br; span.muted { "next " (relative_time(n, now_ms)) } }
            }
            td { (maybe_time(a.last_answer_ms, now_ms)) }
        }
    }
}

fn event(e: &EventLookup, message_id: &str, now_ms: i64) -> Markup {
    html! {
        @if e.events.is_empty() {
            p.muted.none { "No event with messageId " code { (message_id) } " is stored." }
        }
        @for ev in &e.events { (event_view(ev, now_ms)) }
    }
}

fn event_view(ev: &EventView, now_ms: i64) -> Markup {
    html! {
        section.card.event data-destination=(ev.destination) {
            h2 { "Event " code { (ev.message_id) } " in " (ev.destination) }
            p.muted { "Received " (relative_time(ev.received_ms, now_ms)) " · #" (ev.seq) }
            table.event {
                thead { tr {
                    th { "Audience" } th { "Identity" } th { "Change" } th { "Status" }
                    th { "Attempts" } th { "Updated" }
                } }
                tbody {
                    @for a in &ev.audiences {
                        tr data-audience=(a.audience) data-status=(a.status) {
                            td.wrap { @if a.audience.is_empty() { span.muted { "none" } } @else {
                                a href=(audience_href(&ev.destination, &a.audience)) { (a.audience) } } }
                            td.wrap { (identity(a.email.as_deref(), a.user_id.as_deref())) }
                            td { @match a.member { Some(true) => "add", Some(false) => "remove", None => "–" } }
                            td {
                                span class=(format!("state {}", a.status)) { (a.status) }
                                @if let Some(r) = &a.reason { br; span.reason { (r) } }
                            }
                            td.num { (a.attempts)
                                @if let Some(n) = a.next_attempt_ms { br; span.muted { "next " (relative_time(n, now_ms)) } } }
                            td { (relative_time(a.updated_ms, now_ms)) }
                        }
                    }
                }
            }
            @if ev.more_audiences {
                p.muted.more { "Only its first " (ev.audiences.len()) " audience rows are shown: it names more (a snapshot names each key of its audience)." }
            }
            @if !ev.ignored_settings.is_empty() {
                h2 { "Ignored audience settings" }
                ul { @for i in &ev.ignored_settings { li { code { (i.setting) } " = " code { (i.value) } ": " (i.reason) } } }
            }
        }
    }
}
