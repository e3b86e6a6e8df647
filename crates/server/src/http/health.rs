//! The probes: `GET /healthz` (the process answers) and `GET /readyz` (it takes events: 503
//! while shutting down or while the store cannot write). Open to anyone.

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
    } else if let Some(why) = state.store.write_failure() {
        let text = format!("not ready: the store cannot write: {why}\n");
        reply(503, "text/plain; charset=utf-8", text)
    } else {
        reply(200, "text/plain; charset=utf-8", "ready\n")
    }
}
