//! The overview: every destination with its state, its traffic over the last hour (a chart of
//! events ingested and rows delivered per minute), its queue, Iterable's errors by class, and
//! the recent warnings of the log.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use maud::{Markup, html};

use crate::admin::views::{DestinationSummary, Overview, Warning};

use super::super::Console;
use super::super::chart::{Series, line_chart};
use super::super::format::{clip, count, relative_time};
use super::super::guard::Operator;
use super::super::layout::{Nav, page};
use super::super::respond::html;
use super::super::sessions::SessionView;
use super::widgets::{destination_href, errors, queue, state};
use super::{admin_error, values};

/// Warnings shown at most (the view keeps 100).
const MAX_WARNINGS: usize = 50;

/// `GET /console`.
pub(crate) async fn get(State(console): State<Arc<Console>>, op: Operator) -> Response {
    match crate::admin::read::overview(&console.app).await {
        Ok(v) => html(200, render(&v, &op.session)),
        Err(e) => admin_error(&e, &op.session),
    }
}

pub(crate) fn render(v: &Overview, s: &SessionView) -> Markup {
    let body = html! {
        @if v.destinations.is_empty() {
            p.muted { "No destination is configured." }
        }
        div.cards {
            @for d in &v.destinations { (card(d, v.now_ms)) }
        }
        h2 { "Recent warnings" }
        (warnings(&v.warnings, v.now_ms))
    };
    page("Overview", Nav::Overview, Some(s), &[], body)
}

fn card(d: &DestinationSummary, now_ms: i64) -> Markup {
    let ingested = values(&d.ingested_per_minute);
    let delivered = values(&d.delivered_per_minute);
    let rejected = values(&d.rejected_per_minute);
    html! {
        section.card.destination data-destination=(d.name) {
            h2 { a href=(destination_href(&d.name)) { (d.name) } }
            (state(&d.state, d.operator_pause.as_ref(), now_ms))
            (line_chart("per minute, last hour", &[
                Series { name: "ingested", points: &ingested },
                Series { name: "delivered", points: &delivered },
                Series { name: "rejected", points: &rejected },
            ]))
            (queue(&d.queue, now_ms))
            dl.facts {
                dt { "Audiences" } dd { (count(d.audiences)) }
                dt { "Members" } dd { (count(d.members)) }
                dt { "Rejected" } dd { (count(d.rejected)) }
                @if !d.held_audiences.is_empty() {
                    dt { "Removals held" } dd.reason { (d.held_audiences.join(", ")) }
                }
            }
            (errors(&d.errors))
        }
    }
}

fn warnings(ws: &[Warning], now_ms: i64) -> Markup {
    html! {
        @if ws.is_empty() {
            p.muted { "No warnings since this instance started." }
        } @else {
            ul.warnings {
                @for w in ws.iter().take(MAX_WARNINGS) {
                    li {
                        span class=(if w.level == "ERROR" { "state error" } else { "state paused" }) { (w.level) }
                        " " span.muted { (relative_time(w.at_ms, now_ms)) " · " (w.target) }
                        " " (clip(&w.message, 300))
                        @for f in w.fields.iter().take(8) {
                            " " span.muted { (f.name) "=" } (clip(&f.value, 200))
                        }
                    }
                }
            }
        }
    }
}
