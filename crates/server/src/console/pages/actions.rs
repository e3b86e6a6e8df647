//! The operator's actions, each a `POST` form with the session's CSRF token, answered with a
//! redirect back to the page it came from and a flash message saying what happened
//! (POST-redirect-GET). The actions themselves, and their log line with who did what, are the
//! admin module's ([`crate::admin::actions`]); this file reads the form and says the outcome.

use std::future::Future;
use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::response::Response;

use crate::admin::AdminError;
use crate::admin::actions::{self, RetryTarget};
use crate::app::AppState;
use sync::{HoldAction, Identity};

use super::super::Console;
use super::super::guard::{Operator, forbidden_csrf};
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
    if !op.csrf_ok(&form) {
        return forbidden_csrf();
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

/// A destination's name from the path, and the page to go back to.
fn destination_back(name: &str) -> String {
    destination_href(name)
}

/// `POST /console/destinations/{destination}/pause` (field `reason`, optional).
pub(crate) async fn pause(
    State(console): State<Arc<Console>>,
    op: Operator,
    Path(name): Path<String>,
    req: Request,
) -> Response {
    let back = destination_back(&name);
    act(console, op, req, back, |app, who, form| async move {
        let r = actions::pause(&app, &who, &name, form.get("reason")).await?;
        Ok(format!("Paused: {}", r.message))
    })
    .await
}

/// `POST /console/destinations/{destination}/resume`.
pub(crate) async fn resume(
    State(console): State<Arc<Console>>,
    op: Operator,
    Path(name): Path<String>,
    req: Request,
) -> Response {
    let back = destination_back(&name);
    act(console, op, req, back, |app, who, _| async move {
        let r = actions::resume(&app, &who, &name).await?;
        Ok(format!("Resumed: {}", r.message))
    })
    .await
}

/// `POST /console/destinations/{destination}/check-key`: the outcome is the flash message,
/// an error flash when Iterable refuses the key.
pub(crate) async fn check_key(
    State(console): State<Arc<Console>>,
    op: Operator,
    Path(name): Path<String>,
    req: Request,
) -> Response {
    let back = destination_back(&name);
    act(console, op, req, back, |app, who, _| async move {
        let k = actions::check_key(&app, &who, &name).await?;
        if k.ok {
            Ok(format!("The API key works: {}", k.message))
        } else {
            Err(AdminError::Iterable(k.message))
        }
    })
    .await
}

/// `POST /console/destinations/{destination}/audiences/{audience}/retry`: field `all`, or
/// `email` and/or `userId` of one rejected user.
pub(crate) async fn retry(
    State(console): State<Arc<Console>>,
    op: Operator,
    Path((name, audience)): Path<(String, String)>,
    req: Request,
) -> Response {
    let back = audience_href(&name, &audience);
    act(console, op, req, back, |app, who, form| async move {
        let field = |k| form.get(k).filter(|v| !v.is_empty()).map(str::to_owned);
        let target = if form.get("all").is_some() {
            RetryTarget::All
        } else {
            let (email, user_id) = (field("email"), field("userId"));
            if email.is_none() && user_id.is_none() {
                return Err(AdminError::bad(
                    "email",
                    "give the rejected user's email or userId",
                ));
            }
            RetryTarget::Key(Identity { email, user_id })
        };
        let r = actions::retry_rejected(&app, &who, &name, &audience, &target).await?;
        Ok(format!("Sent again: {}", r.message))
    })
    .await
}

/// `POST .../hold/release` and `.../hold/discard`.
async fn hold(
    console: Arc<Console>,
    op: Operator,
    name: String,
    audience: String,
    req: Request,
    action: HoldAction,
) -> Response {
    let back = audience_href(&name, &audience);
    act(console, op, req, back, |app, who, _| async move {
        let r = actions::resolve_hold(&app, &who, &name, &audience, action).await?;
        Ok(r.message)
    })
    .await
}

pub(crate) async fn hold_release(
    State(console): State<Arc<Console>>,
    op: Operator,
    Path((name, audience)): Path<(String, String)>,
    req: Request,
) -> Response {
    hold(console, op, name, audience, req, HoldAction::Release).await
}

pub(crate) async fn hold_discard(
    State(console): State<Arc<Console>>,
    op: Operator,
    Path((name, audience)): Path<(String, String)>,
    req: Request,
) -> Response {
    hold(console, op, name, audience, req, HoldAction::Discard).await
}

/// `POST .../verify` and `.../repair`: the live list against the store, and with repair the
/// missing members sent and the extra ones removed.
async fn verify(
    console: Arc<Console>,
    op: Operator,
    name: String,
    audience: String,
    req: Request,
    repair: bool,
) -> Response {
    let back = audience_href(&name, &audience);
    act(console, op, req, back, |app, who, _| async move {
        let v = actions::verify(&app, &who, &name, &audience, repair).await?;
        let mut text = if v.in_sync {
            format!("List {} is in sync with the store.", v.list_id)
        } else {
            format!(
                "List {}: {} missing, {} extra.",
                v.list_id, v.missing, v.extra
            )
        };
        if v.repaired {
            text.push_str(&format!(
                " Repaired: {} sent again, {} removed.",
                v.reopened, v.unsubscribes
            ));
        }
        Ok(text)
    })
    .await
}

pub(crate) async fn verify_only(
    State(console): State<Arc<Console>>,
    op: Operator,
    Path((name, audience)): Path<(String, String)>,
    req: Request,
) -> Response {
    verify(console, op, name, audience, req, false).await
}

pub(crate) async fn repair(
    State(console): State<Arc<Console>>,
    op: Operator,
    Path((name, audience)): Path<(String, String)>,
    req: Request,
) -> Response {
    verify(console, op, name, audience, req, true).await
}
