//! The routes of the two addresses, and the state their handlers share ([`AppState`]): every
//! endpoint on the main address (the operator console's `/console` pages from
//! [`crate::console`]), `GET /metrics` alone on `metrics_listen`.

use std::sync::Arc;

use axum::Router;
use axum::handler::Handler;
use axum::middleware::from_fn;
use axum::routing::{MethodRouter, get, post};

use crate::app::AppState;

use super::access_log::access_log;
use super::reply::{close_if_body_left, metrics_get_only, metrics_not_found, not_found, post_only};
use super::{admin_api, health, ingestion, metrics};

/// Every endpoint of the main address. Paths are matched with their leading and trailing
/// slashes trimmed (see [`super::serve`]); a path not served is a 404, and another method
/// than the endpoint's is a 405 on the ingestion paths, a 404 elsewhere (`HEAD` included).
pub(crate) fn main_router(state: Arc<AppState>) -> Router {
    let mut router = Router::new();
    // Every admin route, from the one list the OpenAPI document is checked against.
    for r in admin_api::routes() {
        router = router.route(r.path, r.handler);
    }
    router
        .route("/v1/batch", post(ingestion::batch).fallback(post_only))
        .route(
            "/v1/identify",
            post(ingestion::identify).fallback(post_only),
        )
        .route("/v1/track", post(ingestion::track).fallback(post_only))
        .route(
            "/v1/webhook/{destination}",
            post(ingestion::webhook).fallback(post_only),
        )
        .route("/v1/openapi.json", get_only(admin_api::openapi_json))
        .route("/healthz", get_only(health::healthz))
        .merge(crate::console::router(state.clone()))
        .route("/readyz", get_only(health::readyz))
        .fallback(not_found)
        .layer(from_fn(close_if_body_left))
        .layer(from_fn(access_log))
        .with_state(state)
}

/// `GET /metrics` and nothing else, for the `metrics_listen` address; paths are matched as
/// sent.
pub(crate) fn metrics_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(metrics::open_metrics)
                .head(metrics_get_only)
                .fallback(metrics_get_only),
        )
        .fallback(metrics_not_found)
        .layer(from_fn(close_if_body_left))
        .layer(from_fn(access_log))
        .with_state(state)
}

/// A `GET` endpoint: any other method, `HEAD` too, is answered as a path not served.
fn get_only<H, T>(handler: H) -> MethodRouter<Arc<AppState>>
where
    H: Handler<T, Arc<AppState>>,
    T: 'static,
{
    get(handler).head(not_found).fallback(not_found)
}
