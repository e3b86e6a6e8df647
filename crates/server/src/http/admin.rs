//! The admin endpoints that read the store: `GET /v1/events/{messageId}[?destination=]` and
//! `GET /v1/status` (their JSON is [`crate::status`]'s). Both need [`Admin`].

use std::sync::Arc;

use axum::extract::State;
use hyper::Uri;

use crate::app::AppState;
use crate::status;

use super::auth::Admin;
use super::params::{last_segment, path_segment, query_param};
use super::reply::{Reply, busy};

/// `GET /v1/events/{messageId}[?destination=NAME]`: what became of the event.
#[utoipa::path(get, path = "/v1/events/{message_id}", tag = "admin (earlier)",
    params(
        ("message_id" = String, Path, description = "The event's messageId"),
        ("destination" = Option<String>, Query, description = "Only this destination's event"),
    ),
    responses(
        (status = 200, description = "What became of the event in each audience", body = crate::admin::views::EventLookup),
        (status = 404, description = "No such event or destination"),
    ))]
pub(crate) async fn event(_: Admin, State(state): State<Arc<AppState>>, uri: Uri) -> Reply {
    let id = path_segment(last_segment(&uri));
    let dest = query_param(uri.query(), "destination");
    status::event_reply(&state, &id, dest.as_deref()).await
}

/// `GET /v1/status`: every destination and audience.
#[utoipa::path(get, path = "/v1/status", tag = "admin (earlier)",
    responses(
        (status = 200, description = "Every destination with its state, event counts and audiences", body = Object),
        (status = 503, description = "The store cannot be read, or too many requests at once"),
    ))]
pub(crate) async fn status(_: Admin, State(state): State<Arc<AppState>>) -> Reply {
    if state.pace.turn().await.is_err() {
        return busy();
    }
    status::status_reply(&state).await
}
