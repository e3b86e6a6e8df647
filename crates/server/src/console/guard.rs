//! Who may see the console: the [`Operator`] extractor. A request needs a live session (signed
//! in with the admin token); without one it is sent to the sign-in page. With no `admin_token`
//! configured, only loopback clients may sign in (the rule of the admin API's `Admin`), and
//! other clients get a 403 everywhere. State-changing forms also need the session's CSRF token
//! ([`Operator::csrf_ok`]).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::response::Response;
use hyper::Method;
use hyper::http::request::Parts;

use crate::http::Peer;

use super::Console;
use super::layout::{message_page, q};
use super::request::{Form, session_cookie};
use super::respond::{html, redirect};
use super::sessions::{SessionView, same_secret};

/// A signed-in operator's request.
#[derive(Debug)]
pub(crate) struct Operator {
    /// The session id (the cookie's value).
    pub id: String,
    pub session: SessionView,
    pub peer: IpAddr,
    /// The admin token's id (never the token), or `loopback` when none is configured.
    pub actor: String,
}

impl Operator {
    /// Who did it, for the action log: the token's id, the session's label and the client's
    /// address (never the token or the session id).
    pub(crate) fn who(&self) -> String {
        format!(
            "{} (console session {} from {})",
            self.actor, self.session.label, self.peer
        )
    }

    /// Whether the form carries this session's CSRF token (else answer [`forbidden_csrf`]).
    pub(crate) fn csrf_ok(&self, form: &Form) -> bool {
        form.get("csrf")
            .is_some_and(|t| same_secret(t, &self.session.csrf))
    }
}

/// The 403 of a form without the right CSRF token.
pub(crate) fn forbidden_csrf() -> Response {
    html(
        403,
        message_page(
            "Forbidden",
            "This form's security token is missing or wrong (the page may be from an earlier \
             session, or from another site). Reload the page and try again.",
            None,
        ),
    )
}

/// The client's address as the listener saw it; unspecified when the request came another way
/// (which is then not loopback).
pub(crate) fn peer_of(parts: &Parts) -> IpAddr {
    parts
        .extensions
        .get::<Peer>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| {
            p.0.ip().to_canonical()
        })
}

/// Whether the console answers `peer`: not when no `admin_token` is configured and the client
/// is not on loopback (else answer [`forbidden_remote`]).
pub(crate) fn reachable(console: &Console, peer: IpAddr) -> bool {
    console.app.config.admin_token.is_some() || peer.is_loopback()
}

/// The 403 of a remote client when no `admin_token` is configured.
pub(crate) fn forbidden_remote() -> Response {
    html(
        403,
        message_page(
            "Forbidden",
            "The console answers only local clients unless admin_token is configured.",
            None,
        ),
    )
}

impl FromRequestParts<Arc<Console>> for Operator {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        console: &Arc<Console>,
    ) -> Result<Self, Self::Rejection> {
        let peer = peer_of(parts);
        if !reachable(console, peer) {
            return Err(forbidden_remote());
        }
        let now = console.app.now_ms();
        let take_flash = parts.method == Method::GET;
        let found = session_cookie(&parts.headers)
            .and_then(|id| Some((id, console.sessions.find(id, now, take_flash)?)));
        match found {
            Some((id, session)) => Ok(Operator {
                id: id.to_owned(),
                session,
                peer,
                actor: match &console.app.config.admin_token {
                    Some(t) => crate::admin::token_id(t.expose()),
                    None => crate::admin::LOOPBACK.to_string(),
                },
            }),
            None if parts.method == Method::GET => {
                let next = parts
                    .uri
                    .path_and_query()
                    .map_or("/console", |p| p.as_str());
                Err(redirect(&format!("/console/signin?next={}", q(next))))
            }
            // A form posted after the session ended: sign in again.
            None => Err(redirect("/console/signin")),
        }
    }
}
