//! An audience: its figures and their last hour (a chart), the mass-removal guard's hold with
//! release and discard, verify and repair against the live list, and its rejected users with
//! Iterable's reason (a page at a time, filtered, exportable as CSV), each retried alone or all
//! at once.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use maud::{Markup, html};

use crate::admin::params::RejectedParams;
use crate::admin::views::{AudienceView, HoldView, RejectedPage};

use super::super::Console;
use super::super::chart::{Series, line_chart};
use super::super::format::{count, duration_ms, maybe_time, relative_time};
use super::super::guard::Operator;
use super::super::layout::{Nav, action_button, page, q};
use super::super::respond::html;
use super::super::sessions::SessionView;
use super::widgets::{audience_href, destination_href, identity, next_page, user_href};
use super::{PAGE_ROWS, admin_error};

/// `GET /console/destinations/{destination}/audiences/{audience}[?filter=&after=]`.
pub(crate) async fn get(
    State(console): State<Arc<Console>>,
    op: Operator,
    Path((destination, audience)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let params = match RejectedParams::from_query(query.as_deref()) {
        Ok(p) => RejectedParams {
            limit: Some(PAGE_ROWS),
            ..p
        },
        Err(e) => return admin_error(&e, &op.session),
    };
    let app = &console.app;
    let view = crate::admin::read::audience(app, &destination, &audience).await;
    let rejected = crate::admin::read::rejected(app, &destination, &audience, &params).await;
    match (view, rejected) {
        (Ok(v), Ok(r)) => html(200, render(&v, &r, &op.session)),
        (Err(e), _) | (_, Err(e)) => admin_error(&e, &op.session),
    }
}

pub(crate) fn render(v: &AudienceView, r: &RejectedPage, s: &SessionView) -> Markup {
    let a = &v.audience;
    let href = audience_href(&v.destination, &a.audience_key);
    let members: Vec<f64> = v.series.iter().map(|p| p.members as f64).collect();
    let pending: Vec<f64> = v.series.iter().map(|p| p.pending as f64).collect();
    let rejected: Vec<f64> = v.series.iter().map(|p| p.rejected as f64).collect();
    let body = html! {
        section.card {
            dl.facts {
                dt { "List id" } dd { @if let Some(id) = a.list_id { (id) } @else { "none yet" } }
                dt { "Members" } dd data-members=(a.members) { (count(a.members)) }
                dt { "Pending" } dd { (count(a.pending)) " (" (count(a.retrying)) " retrying)" }
                dt { "Rejected" } dd data-rejected=(a.rejected) { (count(a.rejected)) }
                dt { "Lag" } dd { (a.lag_ms.map_or_else(|| "–".into(), duration_ms)) }
                dt { "Last delivery" } dd { (maybe_time(a.last_delivery_ms, v.now_ms)) }
            }
            (line_chart("members, pending and rejected, last hour", &[
                Series { name: "members", points: &members },
                Series { name: "pending", points: &pending },
                Series { name: "rejected", points: &rejected },
            ]))
        }
        h2 { "Removal hold" }
        @match &a.hold {
            Some(h) => (hold(h, &href, s, v.now_ms)),
            None => p.muted { "The mass-removal guard holds nothing in this audience." },
        }
        @if let Some(d) = &v.last_hold_decision {
            p.muted { "Last decision " (relative_time(d.at_ms, v.now_ms)) ": " (d.decision) }
        }
        h2 { "Verify against the live list" }
        @match &v.last_verify {
            Some(vv) => @match &vv.error {
                Some(e) => p { "Last verify " (relative_time(vv.verified_ms, v.now_ms)) " failed: " (e) },
                None => p { "Last verified " (relative_time(vv.verified_ms, v.now_ms)) ": "
                    span data-missing=(vv.missing) { (count(vv.missing)) " missing" } ", "
                    span data-extra=(vv.extra) { (count(vv.extra)) " extra" } },
            },
            None => p.muted { "Never verified." },
        }
        div.actions {
            (action_button(s, &format!("{href}/verify"), "Verify", &[], None))
            (action_button(s, &format!("{href}/repair"), "Repair", &[], Some("Send the missing members to the list and remove the extra ones?")))
        }
        h2 { "Rejected users" }
        (rejected_users(v, r, &href, s))
        h2 { "Upload a full snapshot" }
        (super::snapshot::form(&v.destination, &a.audience_key, s))
    };
    page(
        &a.audience_key,
        Nav::Overview,
        Some(s),
        &[
            ("Overview", "/console".into()),
            (&v.destination, destination_href(&v.destination)),
        ],
        body,
    )
}

fn hold(h: &HoldView, href: &str, s: &SessionView, now_ms: i64) -> Markup {
    html! {
        section.card.hold {
            p.reason { (h.reason) }
            dl.facts {
                dt { "Held removals" } dd data-held=(h.held) { (count(h.held)) }
                dt { "Since" } dd { (relative_time(h.since_ms, now_ms)) }
                dt { "Members" } dd { (count(h.members)) }
                dt { "Removed in the window" } dd { (count(h.removed_in_window)) }
                dt { "Limit" } dd { (format!("{:.0}%", h.max_removal_ratio * 100.0)) }
            }
            div.actions {
                (action_button(s, &format!("{href}/hold/release"), "Release (send the removals)", &[], Some("Send the held removals to Iterable?")))
                (action_button(s, &format!("{href}/hold/discard"), "Discard (keep the members)", &[], Some("Drop the held removals?")))
            }
        }
    }
}

fn rejected_users(v: &AudienceView, r: &RejectedPage, href: &str, s: &SessionView) -> Markup {
    let filter = r.filter.as_deref().unwrap_or_default();
    let base = if filter.is_empty() {
        href.to_string()
    } else {
        format!("{href}?filter={}", q(filter))
    };
    let csv = if filter.is_empty() {
        format!("{href}/rejected.csv")
    } else {
        format!("{href}/rejected.csv?filter={}", q(filter))
    };
    html! {
        form.search method="get" action=(href) {
            input type="search" name="filter" value=(filter) placeholder="email, userId or reason";
            button type="submit" { "Filter" }
            a href=(csv) download { "Export CSV" }
        }
        @if v.audience.rejected > 0 {
            div.actions {
                (action_button(s, &format!("{href}/retry"), "Retry all rejected", &[("all", "1")], Some("Send every rejected user of this audience again?")))
            }
        }
        @if r.rows.is_empty() {
            p.muted { "No rejected user" @if !filter.is_empty() { " matches" } "." }
        } @else {
            table.rejected {
                thead { tr {
                    th { "User" } th { "Change" } th { "Iterable's reason" } th { "Accepted" }
                    th { "Rejected" } th {}
                } }
                tbody {
                    @for row in &r.rows {
                        tr data-email=[row.email.as_deref()] data-user-id=[row.user_id.as_deref()] {
                            td.wrap { a href=(user_href(row.email.as_deref(), row.user_id.as_deref())) {
                                (identity(row.email.as_deref(), row.user_id.as_deref())) } }
                            td { @if row.member { "add" } @else { "remove" } }
                            td.reason { (row.reason.as_deref().unwrap_or("–")) }
                            td { (relative_time(row.accepted_ms, v.now_ms)) }
                            td { (maybe_time(row.rejected_ms, v.now_ms)) }
                            td { (action_button(s, &format!("{href}/retry"), "Retry",
                                &[("email", row.email.as_deref().unwrap_or_default()),
                                  ("userId", row.user_id.as_deref().unwrap_or_default())], None)) }
                        }
                    }
                }
            }
        }
        (next_page(&base, r.next_after.as_deref(), r.rows.len()))
    }
}
