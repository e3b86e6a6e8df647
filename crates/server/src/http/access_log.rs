//! One span per request, carrying its request id (the one the reply's `x-request-id` returns),
//! its method and its path (never the query, nor any header: no credential is ever logged), so
//! that every event logged while it is handled names it; and one line per request when it is
//! answered: at debug (status, duration), at warn for a refused credential (401), at info for
//! an admin call refused to a non-local client (403).

use std::time::Instant;

use axum::extract::{OriginalUri, Request};
use axum::middleware::Next;
use axum::response::Response;
use tower_http::request_id::RequestId;
use tracing::Instrument;

/// The longest path logged, in bytes; a longer one is cut (a hostile client chooses it).
const MAX_PATH_BYTES: usize = 200;

/// The path as sent (before slashes are trimmed), at most [`MAX_PATH_BYTES`].
fn logged_path(req: &Request) -> &str {
    let path = req
        .extensions()
        .get::<OriginalUri>()
        .map_or_else(|| req.uri().path(), |u| u.0.path());
    let mut end = path.len().min(MAX_PATH_BYTES);
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    &path[..end]
}

/// The middleware: runs the request inside its span and logs its answer.
pub(crate) async fn access_log(req: Request, next: Next) -> Response {
    let id = req
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .unwrap_or("-");
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %req.method(),
        path = %logged_path(&req),
    );
    let start = Instant::now();
    let response = next.run(req).instrument(span.clone()).await;
    let status = response.status().as_u16();
    // Whole microseconds, so that the number reads short (0.328, not 0.32800199999999996).
    let duration_ms = start.elapsed().as_micros() as f64 / 1000.0;
    let _in = span.enter();
    match status {
        401 => tracing::warn!(
            status,
            duration_ms,
            "request refused: missing or wrong credentials"
        ),
        403 => tracing::info!(status, duration_ms, "request refused: not a local client"),
        _ => tracing::debug!(status, duration_ms, "request answered"),
    }
    response
}
