//! The console's paths: pages are `GET`, actions `POST` forms answered with a redirect
//! (POST-redirect-GET). Every answer carries the security headers of [`super::respond`].

use std::sync::Arc;

use axum::Router;
use axum::middleware::from_fn;
use axum::routing::{get, post};

use crate::app::AppState;

use super::pages::actions;
use super::respond::security_headers;
use super::{Console, assets, pages, signin};

/// The console's routes, for the main router to merge.
pub(crate) fn router<S>(app: Arc<AppState>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let console = Arc::new(Console::new(app));
    Router::new()
        .route("/console", get(pages::overview::get))
        .route("/console/lookup", get(pages::lookup::get))
        .route(
            "/console/destinations/{destination}",
            get(pages::destination::get),
        )
        .route(
            "/console/destinations/{destination}/audiences/{audience}",
            get(pages::audience::get),
        )
        .route(
            "/console/destinations/{destination}/audiences/{audience}/rejected.csv",
            get(pages::export::rejected_csv),
        )
        .route(
            "/console/destinations/{destination}/pause",
            post(actions::pause),
        )
        .route(
            "/console/destinations/{destination}/resume",
            post(actions::resume),
        )
        .route(
            "/console/destinations/{destination}/check-key",
            post(actions::check_key),
        )
        .route(
            "/console/destinations/{destination}/audiences/{audience}/retry",
            post(actions::retry),
        )
        .route(
            "/console/destinations/{destination}/audiences/{audience}/hold/release",
            post(actions::hold_release),
        )
        .route(
            "/console/destinations/{destination}/audiences/{audience}/hold/discard",
            post(actions::hold_discard),
        )
        .route(
            "/console/destinations/{destination}/audiences/{audience}/verify",
            post(actions::verify_only),
        )
        .route(
            "/console/destinations/{destination}/audiences/{audience}/repair",
            post(actions::repair),
        )
        .route(
            "/console/destinations/{destination}/audiences/{audience}/snapshot",
            post(pages::snapshot::post),
        )
        .route("/console/signin", get(signin::form).post(signin::submit))
        .route("/console/signout", post(signin::signout))
        .route("/console/assets/console.css", get(assets::css))
        .route("/console/assets/console.js", get(assets::js))
        .route(
            "/console/{*rest}",
            get(pages::not_found).post(pages::not_found),
        )
        .layer(from_fn(security_headers))
        .with_state(console)
}
