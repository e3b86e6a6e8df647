//! The operator's actions, each a `POST` form with the session's CSRF token, answered with a
//! redirect back to the page it came from and a flash message saying what happened
//! (POST-redirect-GET). The actions themselves, and their log line with who did what, are the
//! admin module's ([`crate::admin::actions`]); this file reads the form and says the outcome.

use std::future::Future;
use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::response::Response;

use crate::admin::AdminError;
use crate::app::AppState;

use super::super::Console;
use super::super::guard::Operator;
use super::super::layout::message_page;
use super::super::request::{Form, read_form};
use super::super::respond::{html, redirect};
use super::super::sessions::Flash;
use super::widgets::{audience_href, destination_href};

/// Reads the form, checks its CSRF token, runs `action` and goes back to `back` with its
/// outcome as the flash message.
async fn act<F, Fut>(
    console: Arc<Console>,
    op: Operator,
    req: Request,
    back: String,
    action: F,
) -> Response
where
    F: FnOnce(Arc<AppState>, String, Form) -> Fut,
    Fut: Future<Output = Result<String, AdminError>>,
{
    let form = match read_form(req.into_body()).await {
        Ok(f) => f,
        Err(e) => {
            return html(
                400,
                message_page("Bad request", &e.to_string(), Some(&op.session)),
            );
        }
    };
    if let Err(r) = op.check_csrf(&form) {
        return r;
    }
    let flash = match action(console.app.clone(), op.who(), form).await {
        Ok(text) => Flash { ok: true, text },
        Err(e) => Flash {
            ok: false,
            text: e.to_string(),
        },
    };
    console.sessions.flash(&op.id, flash);
    redirect(&back)
}
