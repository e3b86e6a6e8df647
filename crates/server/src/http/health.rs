//! The probes: `GET /healthz` (the process answers) and `GET /readyz` (it takes events: 503
//! while shutting down). Open to anyone.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::State;

use crate::app::AppState;

use super::reply::{Reply, reply};

/// `GET /healthz`.
pub(crate) async fn healthz() -> Reply {
    reply(200, "text/plain; charset=utf-8", "ok\n")
}

/// `GET /readyz`.
pub(crate) async fn readyz(State(state): State<Arc<AppState>>) -> Reply {
    if state.shutting_down.load(Ordering::SeqCst) {
        reply(503, "text/plain; charset=utf-8", "shutting down\n")
    } else {
        reply(200, "text/plain; charset=utf-8", "ready\n")
    }
}
