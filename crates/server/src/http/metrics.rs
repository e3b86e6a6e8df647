//! `GET /metrics`: Prometheus text, behind [`Admin`] on the main address, open on the
//! `metrics_listen` one.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use sync::metrics::{DestinationSnapshot, render};

use crate::app::AppState;
use crate::status;

use super::auth::Admin;
use super::reply::{Reply, reply};

/// `GET /metrics` on the main address.
pub(crate) async fn admin_metrics(_: Admin, State(state): State<Arc<AppState>>) -> Reply {
    metrics_reply(&state).await
}

/// `GET /metrics` on the `metrics_listen` address (meant for a private network).
pub(crate) async fn open_metrics(State(state): State<Arc<AppState>>) -> Reply {
    metrics_reply(&state).await
}

async fn metrics_reply(state: &AppState) -> Reply {
    let names: Vec<String> = state
        .destinations
        .iter()
        .map(|d| d.config.name.clone())
        .collect();
    // One trip to the store for all destinations; gauges are left out if it fails.
    let counts = status::blocking(&state.store, move |s| {
        names.iter().map(|n| s.list_counts(n)).collect()
    })
    .await
    .unwrap_or_else(|_| vec![Vec::new(); state.destinations.len()]);
    let now = state.now_ms();
    let snaps: Vec<DestinationSnapshot<'_>> = state
        .destinations
        .iter()
        .zip(&counts)
        .map(|(d, c)| DestinationSnapshot {
            name: &d.config.name,
            metrics: &d.metrics,
            paused: d.reconciler.as_ref().is_some_and(|r| r.state().is_paused()),
            lists: c,
            now_ms: now,
        })
        .collect();
    let mut out = String::new();
    render(&mut out, &snaps);
    let _ = writeln!(out);
    reply(200, "text/plain; version=0.0.4; charset=utf-8", out)
}
