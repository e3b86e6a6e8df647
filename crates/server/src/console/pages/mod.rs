//! The console's pages, one file each.

pub(crate) mod overview;

use axum::response::Response;

use super::guard::Operator;
use super::layout::message_page;
use super::respond::html;

/// A console path that is not a page (after sign-in, so that it does not tell what exists).
pub(crate) async fn not_found(op: Operator) -> Response {
    html(
        404,
        message_page("Not found", "There is no such console page.", Some(&op.session)),
    )
}
