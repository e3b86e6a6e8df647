//! The console's stylesheet and script, compiled into the binary (`include_str!`): the console
//! needs no network, no CDN, and no file beside the binary.

use axum::response::{IntoResponse, Response};
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE};

pub(crate) const CSS_PATH: &str = "/console/assets/console.css";
pub(crate) const JS_PATH: &str = "/console/assets/console.js";

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

/// `GET /console/assets/console.css`.
pub(crate) async fn css() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

/// `GET /console/assets/console.js`.
pub(crate) async fn js() -> Response {
    asset("text/javascript; charset=utf-8", JS)
}

/// An asset may be cached for an hour (it changes only with the binary); they hold no data.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (CONTENT_TYPE, content_type),
            (CACHE_CONTROL, "private, max-age=3600"),
        ],
        body,
    )
        .into_response()
}
