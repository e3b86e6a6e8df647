//! The overview: every destination with its state, its traffic over the last hour, its queue,
//! Iterable's errors by class and its recent warnings.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use maud::html;

use super::super::Console;
use super::super::guard::Operator;
use super::super::layout::{Nav, page};
use super::super::respond::html;

/// `GET /console`.
pub(crate) async fn get(State(console): State<Arc<Console>>, op: Operator) -> Response {
    let body = html! {
        div.cards {
            @for d in &console.app.destinations {
                section.card { h2 { (d.config.name) } }
            }
        }
    };
    html(200, page("Overview", Nav::Overview, Some(&op.session), &[], body))
}
