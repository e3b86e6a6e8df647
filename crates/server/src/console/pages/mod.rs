//! The console's pages, one file each (`overview`, `destination`, `audience`, `lookup`), the
//! rejected users' CSV export (`export`), the actions' POST handlers (`actions`), and the
//! pieces pages share (`widgets`).

pub(crate) mod actions;
pub(crate) mod audience;
pub(crate) mod destination;
pub(crate) mod export;
pub(crate) mod lookup;
pub(crate) mod overview;
pub(crate) mod snapshot;
mod widgets;

use axum::response::Response;

use crate::admin::AdminError;
use crate::admin::views::Point;

use super::guard::Operator;
use super::layout::message_page;
use super::respond::html;
use super::sessions::SessionView;

/// Rows of a paged list on one page: enough to work with, few enough to keep a page small.
pub(crate) const PAGE_ROWS: usize = 100;

/// A console path that is not a page (after sign-in, so that it does not tell what exists).
pub(crate) async fn not_found(op: Operator) -> Response {
    html(
        404,
        message_page(
            "Not found",
            "There is no such console page.",
            Some(&op.session),
        ),
    )
}

/// The page of an admin read that failed, with its status (404 for what does not exist).
pub(crate) fn admin_error(e: &AdminError, s: &SessionView) -> Response {
    let title = match e.status() {
        404 => "Not found",
        400 => "Bad request",
        _ => "Error",
    };
    html(e.status(), message_page(title, &e.to_string(), Some(s)))
}

/// A series' values, for a chart.
pub(crate) fn values(points: &[Point]) -> Vec<f64> {
    points.iter().map(|p| p.value as f64).collect()
}
