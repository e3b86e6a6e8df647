//! From the listener to the router: each request the `listener` crate accepts (its body still
//! held to the minimum rate) goes through the request-id layers and, on the main address, the
//! slash trimming, into the axum [`Router`](axum::Router).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::OriginalUri;
use axum::response::Response;
use hyper::Request;
use listener::Connections;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::{Service, ServiceExt};
use tower_http::normalize_path::NormalizePath;

use crate::app::AppState;

use super::auth::Peer;
use super::request_id::{drop_unusable_client_id, with_request_ids};
use super::router::{main_router, metrics_router};

/// Serves every endpoint on `listener` until `shutdown` turns true, then lets open connections
/// finish the request they are serving and returns when all are closed.
///
/// Leading and trailing slashes of a path are trimmed before routing (`/v1/batch/` is
/// `/v1/batch`), as the service has always matched them.
pub async fn serve(
    listener: TcpListener,
    conns: Arc<Connections>,
    state: Arc<AppState>,
    shutdown: watch::Receiver<bool>,
) {
    let app = with_request_ids(NormalizePath::trim_trailing_slash(main_router(state)));
    run(listener, conns, shutdown, app).await;
}

/// Serves only `GET /metrics`, to anyone who reaches `listener` (the `metrics_listen` address,
/// meant for a private network).
pub async fn serve_metrics(
    listener: TcpListener,
    conns: Arc<Connections>,
    state: Arc<AppState>,
    shutdown: watch::Receiver<bool>,
) {
    let app = with_request_ids(metrics_router(state));
    run(listener, conns, shutdown, app).await;
}

/// The listener's accept loop, each request handed to `app`.
async fn run<S>(
    listener: TcpListener,
    conns: Arc<Connections>,
    shutdown: watch::Receiver<bool>,
    app: S,
) where
    S: Service<axum::extract::Request, Response = Response, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send,
{
    listener::serve(listener, conns, shutdown, move |stream, peer| {
        let app = app.clone();
        let handler = move |req: Request<listener::Body>| app.clone().oneshot(to_axum(req, peer));
        (stream, handler)
    })
    .await;
}

/// The request as the router takes it: the listener's body boxed as axum's, the client's
/// address ([`Peer`]) and the path as sent ([`OriginalUri`], before slashes are trimmed) in its
/// extensions, and an unusable `x-request-id` dropped.
fn to_axum(req: Request<listener::Body>, peer: SocketAddr) -> axum::extract::Request {
    let mut req = req.map(axum::body::Body::new);
    let uri = OriginalUri(req.uri().clone());
    req.extensions_mut().insert(uri);
    req.extensions_mut().insert(Peer(peer));
    drop_unusable_client_id(req.headers_mut());
    req
}
