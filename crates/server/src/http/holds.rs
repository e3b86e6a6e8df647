//! `POST /v1/holds/release` and `POST /v1/holds/discard` (`?destination=NAME&audience=KEY`):
//! an operator's decision on the removals the mass-removal guard holds (see
//! [`crate::holds`]). Admin only; the call is logged with the client's address.

use std::sync::Arc;

use axum::extract::State;
use hyper::Uri;
use hyper::http::request::Parts;
use serde_json::json;
use sync::HoldAction;

use crate::app::AppState;
use crate::holds::{HoldError, resolve, resolved_json};

use super::auth::{Admin, Peer};
use super::params::query_param;
use super::reply::{Reply, json_reply};

#[utoipa::path(post, path = "/v1/holds/release", tag = "admin (earlier)",
    params(
        ("destination" = String, Query, description = "The destination's name"),
        ("audience" = String, Query, description = "The audience key"),
    ),
    responses(
        (status = 200, description = "Sends the removals the mass-removal guard holds", body = Object),
        (status = 400, description = "destination or audience missing"),
        (status = 404, description = "No such destination, or the removals are not held"),
    ))]
pub(crate) async fn release(
    admin: Admin,
    State(state): State<Arc<AppState>>,
    parts: Parts,
) -> Reply {
    tracing::info!(who = %admin.who, what = "release-hold", "admin action");
    decide(&state, &parts.uri, peer(&parts), HoldAction::Release).await
}

#[utoipa::path(post, path = "/v1/holds/discard", tag = "admin (earlier)",
    params(
        ("destination" = String, Query, description = "The destination's name"),
        ("audience" = String, Query, description = "The audience key"),
    ),
    responses(
        (status = 200, description = "Drops the held removals; the users stay on the list", body = Object),
        (status = 400, description = "destination or audience missing"),
        (status = 404, description = "No such destination, or the removals are not held"),
    ))]
pub(crate) async fn discard(
    admin: Admin,
    State(state): State<Arc<AppState>>,
    parts: Parts,
) -> Reply {
    tracing::info!(who = %admin.who, what = "discard-hold", "admin action");
    decide(&state, &parts.uri, peer(&parts), HoldAction::Discard).await
}

fn peer(parts: &Parts) -> String {
    parts
        .extensions
        .get::<Peer>()
        .map_or_else(|| "unknown".into(), |p| p.0.to_string())
}

fn refuse(status: u16, message: String) -> Reply {
    json_reply(status, &json!({"success": false, "message": message}))
}

async fn decide(state: &AppState, uri: &Uri, peer: String, action: HoldAction) -> Reply {
    let (Some(destination), Some(audience)) = (
        query_param(uri.query(), "destination"),
        query_param(uri.query(), "audience"),
    ) else {
        return refuse(
            400,
            "destination and audience are required: ?destination=NAME&audience=KEY".into(),
        );
    };
    let Some(d) = state.destination(&destination) else {
        return refuse(404, HoldError::UnknownDestination(destination).to_string());
    };
    let actor = format!("the admin API (client {peer})");
    match resolve(
        &state.store,
        &destination,
        &audience,
        action,
        &actor,
        state.now_ms(),
    )
    .await
    {
        Ok(n) => {
            // Released removals are due now: look at once.
            d.waker.notify_one();
            json_reply(200, &resolved_json(&destination, &audience, action, n))
        }
        Err(e @ HoldError::NotHeld { .. }) => refuse(404, e.to_string()),
        Err(e) => refuse(503, e.to_string()),
    }
}
