//! The HTTP front, on axum. Accepting and supervising connections (timeouts, the connection
//! cap, eviction, the minimum body rate) is the `listener` crate's; from each request on, it is
//! this module's:
//!
//! - `serve`: from the listener to the router, with request ids (`request_id`);
//! - `access_log`: a span per request with its id, and a log line per answer;
//! - `router`: the routes of the main and the metrics address, and the state they share;
//! - `ingestion`: the tracking API and webhook endpoints (`webhook`: whose webhook it is);
//! - `admin`: `/v1/events/{messageId}` and `/v1/status`, behind `auth`'s `Admin` extractor;
//! - `admin_api`: the JSON admin API `/v1/admin/...` and the list of every admin route;
//!   `openapi`: its OpenAPI 3.1 document, `GET /v1/openapi.json` (public);
//! - `audience`: `PUT /v1/audiences/{destination}/{audience}/members`, a full snapshot (admin);
//! - `health`: `/healthz` and `/readyz`; `metrics`: `/metrics`;
//! - `pace`: `/metrics` and `/v1/status` answered at most 20 times a second in all;
//! - `reply`: replies and errors, and `Connection: close` when a body is left unread;
//! - `params`: path segments and query values, percent-decoded.
//!
//! tower-http is used for request ids and for trimming slashes. Its body limit is not: each
//! ingestion endpoint has its own limit, refused with a 400 and Segment's JSON error body (its
//! layer answers 413 in plain text), and the limit applies to the body after gzip decoding as
//! well. Nor its compression: ingestion answers are a few bytes.

mod access_log;
mod admin;
mod admin_api;
mod audience;
mod auth;
mod health;
mod holds;
mod ingestion;
mod metrics;
mod openapi;
mod pace;
mod params;
mod reply;
mod request_id;
mod router;
mod serve;
mod webhook;

pub use admin_api::route_table as admin_route_table;
pub use audience::MAX_RUNNING as MAX_SNAPSHOTS;
pub(crate) use auth::Peer;
pub use openapi::document as openapi_document;
pub use pace::Pace;
pub(crate) use params::query_param;
pub(crate) use reply::json_reply;
pub use serve::{serve, serve_metrics};
