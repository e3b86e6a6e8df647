//! The rejected users of an audience as CSV (`rejected.csv`, with the page's filter), streamed
//! a page at a time by the admin module, so that its cost does not grow with the audience in
//! memory.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use hyper::header::{CONTENT_DISPOSITION, CONTENT_TYPE};

use crate::admin::params::RejectedParams;

use super::super::Console;
use super::super::guard::Operator;
use super::admin_error;

/// `GET /console/destinations/{destination}/audiences/{audience}/rejected.csv[?filter=]`.
pub(crate) async fn rejected_csv(
    State(console): State<Arc<Console>>,
    op: Operator,
    Path((destination, audience)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let filter = match RejectedParams::from_query(query.as_deref()) {
        Ok(p) => p.filter,
        Err(e) => return admin_error(&e, &op.session),
    };
    match crate::admin::read::rejected_csv(console.app.clone(), &destination, &audience, filter)
        .await
    {
        Ok(stream) => (
            [
                (CONTENT_TYPE, "text/csv; charset=utf-8"),
                (CONTENT_DISPOSITION, "attachment; filename=\"rejected.csv\""),
            ],
            Body::new(stream),
        )
            .into_response(),
        Err(e) => admin_error(&e, &op.session),
    }
}
