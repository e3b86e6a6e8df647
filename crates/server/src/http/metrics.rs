//! `GET /metrics`: Prometheus text, behind [`Admin`] on the main address, open on the
//! `metrics_listen` one.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use sync::metrics::{DestinationSnapshot, render, render_holds, render_store};

use crate::app::AppState;
use crate::status;

use super::auth::Admin;
use super::reply::{Reply, busy, reply};

/// `GET /metrics` on the main address.
#[utoipa::path(get, path = "/metrics", tag = "admin (earlier)",
    responses(
        (status = 200, description = "Prometheus text", content_type = "text/plain; version=0.0.4", body = String),
        (status = 503, description = "Too many requests at once"),
    ))]
pub(crate) async fn admin_metrics(_: Admin, State(state): State<Arc<AppState>>) -> Reply {
    metrics_reply(&state).await
}

/// `GET /metrics` on the `metrics_listen` address (meant for a private network).
pub(crate) async fn open_metrics(State(state): State<Arc<AppState>>) -> Reply {
    metrics_reply(&state).await
}

/// `GET /metrics`: the counters, the live states, and the store's figures from the snapshot
/// (at most a second old: polling costs the store nothing more).
async fn metrics_reply(state: &AppState) -> Reply {
    if state.pace.turn().await.is_err() {
        return busy();
    }
    let figures = status::figures(state).await;
    // The store's gauges are left out if it cannot be read.
    let (lists, log_rows): (Vec<&[sync::ListCounts]>, Vec<Option<u64>>) = match &*figures {
        Ok(f) => f
            .iter()
            .map(|f| {
                let rows = sync::StatusKind::ALL.iter().map(|k| f.events.get(*k)).sum();
                (f.lists.as_slice(), Some(rows))
            })
            .unzip(),
        Err(_) => (
            vec![&[]; state.destinations.len()],
            vec![None; state.destinations.len()],
        ),
    };
    let now = state.now_ms();
    let snaps: Vec<DestinationSnapshot<'_>> = state
        .destinations
        .iter()
        .zip(lists.into_iter().zip(log_rows))
        .map(|(d, (lists, event_log_rows))| {
            let live = d.reconciler.as_ref().map(|r| r.state());
            DestinationSnapshot {
                name: &d.config.name,
                metrics: &d.metrics,
                paused: live.as_ref().is_some_and(|s| s.is_paused()),
                degraded: live.as_ref().is_some_and(|s| s.is_degraded()),
                lists,
                now_ms: now,
                event_log_rows,
            }
        })
        .collect();
    let mut out = String::new();
    render(&mut out, &snaps);
    if let Ok(f) = &*figures {
        let holds: Vec<(&str, &[sync::ListCounts], &[sync::RemovalHold])> = state
            .destinations
            .iter()
            .zip(f)
            .map(|(d, f)| {
                (
                    d.config.name.as_str(),
                    f.lists.as_slice(),
                    f.holds.as_slice(),
                )
            })
            .collect();
        render_holds(&mut out, &holds);
    }
    render_store(&mut out, state.store.write_failure().is_some());
    let _ = writeln!(out);
    reply(200, "text/plain; version=0.0.4; charset=utf-8", out)
}
