//! Who may call the admin endpoints (`/v1/events`, `/v1/status`, `/metrics` on the main
//! address): the [`Admin`] extractor. With `admin_token` configured, a request needs
//! `Authorization: Bearer <admin_token>`; without one, only loopback clients are answered.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use hyper::header::{AUTHORIZATION, HeaderValue, WWW_AUTHENTICATE};
use hyper::http::request::Parts;

use crate::app::AppState;

use super::reply::{Reply, error_reply};

/// The address of the client, put in each request's extensions by the listener adapter.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer(pub SocketAddr);

/// Proof that a request may use the admin endpoints; its rejection is the 401 or 403 reply.
/// `who` names the caller in the log of admin actions: the token's id
/// ([`crate::admin::token_id`], never the token), or `loopback` when no token is configured.
#[derive(Debug)]
pub(crate) struct Admin {
    pub who: String,
}

impl FromRequestParts<Arc<AppState>> for Admin {
    type Rejection = Reply;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        // A request that came some other way than through the listener is not local. A
        // dual-stack listener (`[::]`) sees a local IPv4 client as `::ffff:127.0.0.1`.
        let loopback = parts
            .extensions
            .get::<Peer>()
            .is_some_and(|p| p.0.ip().to_canonical().is_loopback());
        let authorization = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        match &state.config.admin_token {
            None if loopback => Ok(Admin {
                who: crate::admin::LOOPBACK.to_string(),
            }),
            None => Err(error_reply(
                403,
                "admin endpoints answer only local clients unless admin_token is configured",
            )),
            Some(token) => match bearer_token(authorization) {
                Some(g) if token.matches(g.as_bytes()) => Ok(Admin {
                    who: crate::admin::token_id(token.expose()),
                }),
                Some(_) => Err(challenge(error_reply(401, "the admin token is wrong"))),
                None => Err(challenge(error_reply(
                    401,
                    "admin endpoints need Authorization: Bearer <admin_token>",
                ))),
            },
        }
    }
}

/// A 401 with the scheme that would be accepted (HTTP requires `WWW-Authenticate` on a 401).
fn challenge(mut r: Reply) -> Reply {
    r.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"iterable-lists admin\""),
    );
    r
}

/// The token of an `Authorization: Bearer <token>` header; the scheme is case-insensitive
/// (RFC 9110), and spaces or tabs around the token are ignored.
fn bearer_token(authorization: Option<&str>) -> Option<&str> {
    let (scheme, token) = authorization?.trim().split_once([' ', '\t'])?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens() {
        let cases = [
            (Some("Bearer t0k"), Some("t0k")),
            (Some("bearer t0k"), Some("t0k")),
            (Some("  BEARER \t t0k  "), Some("t0k")),
            (Some("Bearer"), None),
            (Some("Bearer   "), None),
            (Some("Basic t0k"), None),
            (Some("Bearert0k"), None),
            (None, None),
        ];
        for (header, want) in cases {
            assert_eq!(bearer_token(header), want, "{header:?}");
        }
    }
}
