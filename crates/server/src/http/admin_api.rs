//! The JSON admin API, `/v1/admin/...`, behind [`Admin`] (bearer `admin_token`; loopback only
//! when none is set): GET for the views of [`crate::admin::read`], POST for the actions of
//! [`crate::admin::actions`] (their inputs in the query string; a body is ignored). Errors
//! answer `{"success": false, "message", "field"}` with [`AdminError::status`].
//!
//! [`routes`] lists every admin route with its method, the existing ones included: the router
//! registers them from it, and a test checks each is in the OpenAPI document
//! (`super::openapi`).

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post, put};
use hyper::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Uri};
use serde::Serialize;
use sync::{HoldAction, Identity};

use crate::admin::actions::{self, RetryTarget};
use crate::admin::params::{EventParams, PageParams, RejectedParams, UserParams};
use crate::admin::views::{
    ActionResult, AudienceView, DestinationView, ErrorBody, EventLookup, KeyCheck, Overview,
    RejectedPage, UserLookup, VerifyResult,
};
use crate::admin::{AdminError, read};
use crate::app::AppState;

use super::auth::Admin;
use super::params::{path_segment, query_param};
use super::reply::{Reply, json_reply, not_found, reply};
use super::{admin, audience, holds, metrics};

/// One admin route: its method, its path (as the router matches it and the OpenAPI document
/// names it), and its handler.
pub(crate) struct Route {
    pub method: Method,
    pub path: &'static str,
    pub handler: MethodRouter<Arc<AppState>>,
}

/// A `GET` endpoint: any other method, `HEAD` too, is answered as a path not served.
fn get_route(path: &'static str, handler: MethodRouter<Arc<AppState>>) -> Route {
    Route {
        method: Method::GET,
        path,
        handler: handler.head(not_found).fallback(not_found),
    }
}

fn post_route(path: &'static str, handler: MethodRouter<Arc<AppState>>) -> Route {
    Route {
        method: Method::POST,
        path,
        handler: handler.fallback(not_found),
    }
}

/// Every admin route of the main address.
pub(crate) fn routes() -> Vec<Route> {
    vec![
        get_route("/v1/status", get(admin::status)),
        get_route("/v1/events/{message_id}", get(admin::event)),
        get_route("/metrics", get(metrics::admin_metrics)),
        post_route("/v1/holds/release", post(holds::release)),
        post_route("/v1/holds/discard", post(holds::discard)),
        Route {
            method: Method::PUT,
            path: "/v1/audiences/{destination}/{audience}/members",
            handler: put(audience::put_members).fallback(not_found),
        },
        get_route("/v1/admin/overview", get(overview)),
        get_route("/v1/admin/destinations/{destination}", get(destination)),
        get_route(
            "/v1/admin/destinations/{destination}/audiences/{audience}",
            get(audience_view),
        ),
        get_route(
            "/v1/admin/destinations/{destination}/audiences/{audience}/rejected",
            get(rejected),
        ),
        get_route(
            "/v1/admin/destinations/{destination}/audiences/{audience}/rejected.csv",
            get(rejected_csv),
        ),
        get_route("/v1/admin/users", get(user)),
        get_route("/v1/admin/events/{message_id}", get(event)),
        post_route("/v1/admin/destinations/{destination}/pause", post(pause)),
        post_route("/v1/admin/destinations/{destination}/resume", post(resume)),
        post_route(
            "/v1/admin/destinations/{destination}/check-key",
            post(check_key),
        ),
        post_route(
            "/v1/admin/destinations/{destination}/audiences/{audience}/retry-rejected",
            post(retry_rejected),
        ),
        post_route(
            "/v1/admin/destinations/{destination}/audiences/{audience}/hold/release",
            post(release_hold),
        ),
        post_route(
            "/v1/admin/destinations/{destination}/audiences/{audience}/hold/discard",
            post(discard_hold),
        ),
        post_route(
            "/v1/admin/destinations/{destination}/audiences/{audience}/verify",
            post(verify),
        ),
    ]
}

/// The method and path of every admin route (what [`routes`] registers).
pub fn route_table() -> Vec<(Method, &'static str)> {
    routes().into_iter().map(|r| (r.method, r.path)).collect()
}

/// The `i`th segment of the path (from 0, after `/`), percent-decoded. The router matched the
/// route, so the segment is there.
fn segment(uri: &Uri, i: usize) -> String {
    uri.path()
        .trim_matches('/')
        .split('/')
        .nth(i)
        .map(path_segment)
        .unwrap_or_default()
}

/// `(destination, audience)` of `/v1/admin/destinations/{destination}/audiences/{audience}/...`.
fn names(uri: &Uri) -> (String, String) {
    (segment(uri, 3), segment(uri, 5))
}

fn error(e: &AdminError) -> Reply {
    json_reply(
        e.status(),
        &serde_json::to_value(e.body()).unwrap_or_default(),
    )
}

fn answer<T: Serialize>(r: Result<T, AdminError>) -> Reply {
    match r.and_then(|v| {
        serde_json::to_value(v).map_err(|e| AdminError::Store(format!("serializing: {e}")))
    }) {
        Ok(v) => json_reply(200, &v),
        Err(e) => error(&e),
    }
}

/// `true` or `false` (absent: `false`), else a 400 naming the field.
fn flag(uri: &Uri, name: &str) -> Result<bool, AdminError> {
    match query_param(uri.query(), name).as_deref() {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(AdminError::bad(
            name,
            format!("must be true or false, got {other:?}"),
        )),
    }
}

#[utoipa::path(get, path = "/v1/admin/overview", tag = "admin",
    responses(
        (status = 200, description = "Every destination and the recent warnings", body = Overview),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
        (status = 403, description = "Not a loopback client and no admin_token configured", body = ErrorBody),
        (status = 503, description = "The store cannot be read", body = ErrorBody),
    ))]
pub(crate) async fn overview(_: Admin, State(state): State<Arc<AppState>>) -> Reply {
    answer(read::overview(&state).await)
}

#[utoipa::path(get, path = "/v1/admin/destinations/{destination}", tag = "admin",
    params(("destination" = String, Path, description = "The destination's name"), PageParams),
    responses(
        (status = 200, description = "The destination, its settings (no secret) and a page of audiences", body = DestinationView),
        (status = 400, description = "A bad parameter, named", body = ErrorBody),
        (status = 404, description = "No such destination", body = ErrorBody),
    ))]
pub(crate) async fn destination(_: Admin, State(state): State<Arc<AppState>>, uri: Uri) -> Reply {
    let r = match PageParams::from_query(uri.query()) {
        Ok(p) => read::destination(&state, &segment(&uri, 3), &p).await,
        Err(e) => Err(e),
    };
    answer(r)
}

#[utoipa::path(get, path = "/v1/admin/destinations/{destination}/audiences/{audience}", tag = "admin",
    params(
        ("destination" = String, Path, description = "The destination's name"),
        ("audience" = String, Path, description = "The audience key"),
    ),
    responses(
        (status = 200, description = "The audience, its figures over the last hour, its hold", body = AudienceView),
        (status = 404, description = "No such destination or audience", body = ErrorBody),
    ))]
pub(crate) async fn audience_view(_: Admin, State(state): State<Arc<AppState>>, uri: Uri) -> Reply {
    let (d, a) = names(&uri);
    answer(read::audience(&state, &d, &a).await)
}

#[utoipa::path(get, path = "/v1/admin/destinations/{destination}/audiences/{audience}/rejected", tag = "admin",
    params(
        ("destination" = String, Path, description = "The destination's name"),
        ("audience" = String, Path, description = "The audience key"),
        RejectedParams,
    ),
    responses(
        (status = 200, description = "A page of rejected users, in key order", body = RejectedPage),
        (status = 400, description = "A bad parameter, named", body = ErrorBody),
        (status = 404, description = "No such destination or audience", body = ErrorBody),
    ))]
pub(crate) async fn rejected(_: Admin, State(state): State<Arc<AppState>>, uri: Uri) -> Reply {
    let (d, a) = names(&uri);
    let r = match RejectedParams::from_query(uri.query()) {
        Ok(p) => read::rejected(&state, &d, &a, &p).await,
        Err(e) => Err(e),
    };
    answer(r)
}

#[utoipa::path(get, path = "/v1/admin/destinations/{destination}/audiences/{audience}/rejected.csv", tag = "admin",
    params(
        ("destination" = String, Path, description = "The destination's name"),
        ("audience" = String, Path, description = "The audience key"),
        ("filter" = Option<String>, Query, description = "Only users whose email or userId contains this"),
    ),
    responses(
        (status = 200, description = "Every rejected user as CSV (email, userId, change, reason, seq, accepted, rejected), streamed", content_type = "text/csv", body = String),
        (status = 404, description = "No such destination or audience", body = ErrorBody),
    ))]
pub(crate) async fn rejected_csv(
    _: Admin,
    State(state): State<Arc<AppState>>,
    uri: Uri,
) -> Response {
    let (d, a) = names(&uri);
    let filter = query_param(uri.query(), "filter").filter(|f| !f.is_empty());
    match read::rejected_csv(state.clone(), &d, &a, filter).await {
        Ok(stream) => {
            let mut r = Response::new(axum::body::Body::new(stream));
            let h = r.headers_mut();
            h.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            );
            h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            h.insert(
                CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"rejected.csv\""),
            );
            r
        }
        Err(e) => error(&e).into_response(),
    }
}

#[utoipa::path(get, path = "/v1/admin/users", tag = "admin",
    params(UserParams),
    responses(
        (status = 200, description = "The user in every audience: desired and acknowledged state, and the events that set them", body = UserLookup),
        (status = 400, description = "Neither or both of email and userId", body = ErrorBody),
    ))]
pub(crate) async fn user(_: Admin, State(state): State<Arc<AppState>>, uri: Uri) -> Reply {
    let r = match UserParams::from_query(uri.query()) {
        Ok(p) => read::user(&state, &p).await,
        Err(e) => Err(e),
    };
    answer(r)
}

#[utoipa::path(get, path = "/v1/admin/events/{message_id}", tag = "admin", operation_id = "admin_event",
    params(("message_id" = String, Path, description = "The event's messageId"), EventParams),
    responses(
        (status = 200, description = "What became of the event in each audience", body = EventLookup),
        (status = 404, description = "No such event or destination", body = ErrorBody),
    ))]
pub(crate) async fn event(_: Admin, State(state): State<Arc<AppState>>, uri: Uri) -> Reply {
    let r = match EventParams::from_query(uri.query()) {
        Ok(p) => read::event(&state, &segment(&uri, 3), &p).await,
        Err(e) => Err(e),
    };
    answer(r)
}

#[utoipa::path(post, path = "/v1/admin/destinations/{destination}/pause", tag = "admin actions",
    params(
        ("destination" = String, Path, description = "The destination's name"),
        ("reason" = Option<String>, Query, description = "Why (at most 500 characters)"),
    ),
    responses(
        (status = 200, description = "Paused for every instance until resumed", body = ActionResult),
        (status = 404, description = "No such destination", body = ErrorBody),
        (status = 409, description = "The destination is disabled", body = ErrorBody),
    ))]
pub(crate) async fn pause(admin: Admin, State(state): State<Arc<AppState>>, uri: Uri) -> Reply {
    let reason = query_param(uri.query(), "reason");
    answer(actions::pause(&state, &admin.who, &segment(&uri, 3), reason.as_deref()).await)
}

#[utoipa::path(post, path = "/v1/admin/destinations/{destination}/resume", tag = "admin actions",
    params(("destination" = String, Path, description = "The destination's name")),
    responses(
        (status = 200, description = "The operator's pause ended; a destination paused by a refused key had its key checked", body = ActionResult),
        (status = 404, description = "No such destination", body = ErrorBody),
    ))]
pub(crate) async fn resume(admin: Admin, State(state): State<Arc<AppState>>, uri: Uri) -> Reply {
    answer(actions::resume(&state, &admin.who, &segment(&uri, 3)).await)
}

#[utoipa::path(post, path = "/v1/admin/destinations/{destination}/check-key", tag = "admin actions",
    params(("destination" = String, Path, description = "The destination's name")),
    responses(
        (status = 200, description = "What the check found (ok or not, and what to fix)", body = KeyCheck),
        (status = 404, description = "No such destination", body = ErrorBody),
    ))]
pub(crate) async fn check_key(admin: Admin, State(state): State<Arc<AppState>>, uri: Uri) -> Reply {
    answer(actions::check_key(&state, &admin.who, &segment(&uri, 3)).await)
}

#[utoipa::path(post, path = "/v1/admin/destinations/{destination}/audiences/{audience}/retry-rejected", tag = "admin actions",
    params(
        ("destination" = String, Path, description = "The destination's name"),
        ("audience" = String, Path, description = "The audience key"),
        ("email" = Option<String>, Query, description = "The rejected user's email"),
        ("userId" = Option<String>, Query, description = "The rejected user's userId"),
        ("all" = Option<bool>, Query, description = "Every rejected user of the audience"),
    ),
    responses(
        (status = 200, description = "The users are pending again and sent at once", body = ActionResult),
        (status = 400, description = "Neither a user nor all", body = ErrorBody),
    ))]
pub(crate) async fn retry_rejected(
    admin: Admin,
    State(state): State<Arc<AppState>>,
    uri: Uri,
) -> Reply {
    let (d, a) = names(&uri);
    let q = uri.query();
    let email = query_param(q, "email").filter(|v| !v.is_empty());
    let user_id = query_param(q, "userId").filter(|v| !v.is_empty());
    let target = match (flag(&uri, "all"), email, user_id) {
        (Err(e), _, _) => return error(&e),
        (Ok(true), None, None) => RetryTarget::All,
        (Ok(true), _, _) => {
            return error(&AdminError::bad(
                "all",
                "give all=true or a user (email, userId), not both",
            ));
        }
        (Ok(false), None, None) => {
            return error(&AdminError::bad(
                "email",
                "give a user (email and/or userId) or all=true",
            ));
        }
        (Ok(false), e, u) => RetryTarget::Key(Identity::new(e.as_deref(), u.as_deref())),
    };
    answer(actions::retry_rejected(&state, &admin.who, &d, &a, &target).await)
}

#[utoipa::path(post, path = "/v1/admin/destinations/{destination}/audiences/{audience}/hold/release", tag = "admin actions",
    params(
        ("destination" = String, Path, description = "The destination's name"),
        ("audience" = String, Path, description = "The audience key"),
    ),
    responses(
        (status = 200, description = "The held removals are sent", body = ActionResult),
        (status = 409, description = "The audience's removals are not held", body = ErrorBody),
    ))]
pub(crate) async fn release_hold(
    admin: Admin,
    State(state): State<Arc<AppState>>,
    uri: Uri,
) -> Reply {
    let (d, a) = names(&uri);
    answer(actions::resolve_hold(&state, &admin.who, &d, &a, HoldAction::Release).await)
}

#[utoipa::path(post, path = "/v1/admin/destinations/{destination}/audiences/{audience}/hold/discard", tag = "admin actions",
    params(
        ("destination" = String, Path, description = "The destination's name"),
        ("audience" = String, Path, description = "The audience key"),
    ),
    responses(
        (status = 200, description = "The held removals are dropped; the users stay on the list", body = ActionResult),
        (status = 409, description = "The audience's removals are not held", body = ErrorBody),
    ))]
pub(crate) async fn discard_hold(
    admin: Admin,
    State(state): State<Arc<AppState>>,
    uri: Uri,
) -> Reply {
    let (d, a) = names(&uri);
    answer(actions::resolve_hold(&state, &admin.who, &d, &a, HoldAction::Discard).await)
}

#[utoipa::path(post, path = "/v1/admin/destinations/{destination}/audiences/{audience}/verify", tag = "admin actions",
    params(
        ("destination" = String, Path, description = "The destination's name"),
        ("audience" = String, Path, description = "The audience key"),
        ("repair" = Option<bool>, Query, description = "Store the corrections (the service then sends them)"),
    ),
    responses(
        (status = 200, description = "The live list compared with the store", body = VerifyResult),
        (status = 404, description = "No such destination, or the audience has no list yet", body = ErrorBody),
        (status = 409, description = "Another verify runs on this instance", body = ErrorBody),
        (status = 502, description = "Iterable failed", body = ErrorBody),
    ))]
pub(crate) async fn verify(admin: Admin, State(state): State<Arc<AppState>>, uri: Uri) -> Reply {
    let (d, a) = names(&uri);
    let repair = match flag(&uri, "repair") {
        Ok(r) => r,
        Err(e) => return error(&e),
    };
    answer(actions::verify(&state, &admin.who, &d, &a, repair).await)
}

/// `GET /v1/openapi.json`: the OpenAPI 3.1 document of the admin API (public: it describes the
/// API, it holds no data). Built once.
pub(crate) async fn openapi_json() -> Reply {
    static DOC: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| super::openapi::document().to_json().unwrap_or_default());
    reply(200, "application/json", DOC.as_str())
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use hyper::Request;
    use tower::ServiceExt;

    use super::super::auth::Peer;
    use super::super::router::main_router;
    use crate::{Config, RunningService};

    /// Without `admin_token`, the admin API answers loopback clients only: a client from
    /// another address gets 403 (tested through the router, with the peer address the
    /// listener would have put on the request).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn without_a_token_only_loopback_clients_are_answered() {
        let cfg = Config::parse(
            "listen = \"127.0.0.1:0\"\n[storage]\nurl = \"sqlite::memory:\"\n\
             [[destination]]\nname = \"prod\"\nenabled = false\n\
             api_key = \"0123456789abcdef0123456789abcdef\"\n\
             base_url = \"http://127.0.0.1:9\"\nwrite_keys = [\"wk_test\"]\n",
            &|_| None,
        )
        .expect("config");
        let svc = RunningService::start(cfg).await.expect("service");
        let router = main_router(svc.state().clone());
        for (peer, path, want) in [
            ("10.1.2.3:4444", "/v1/admin/overview", 403),
            ("[2001:db8::1]:4444", "/v1/admin/destinations/prod", 403),
            ("10.1.2.3:4444", "/v1/status", 403),
            ("127.0.0.1:4444", "/v1/admin/overview", 200),
            (
                "[::ffff:127.0.0.1]:4444",
                "/v1/admin/destinations/prod",
                200,
            ),
            ("[::1]:4444", "/v1/admin/overview", 200),
        ] {
            let mut req = Request::get(path).body(Body::empty()).expect("request");
            req.extensions_mut()
                .insert(Peer(peer.parse().expect("address")));
            let r = router.clone().oneshot(req).await.expect("answer");
            assert_eq!(r.status().as_u16(), want, "{peer} {path}");
        }
        let mut req = Request::post("/v1/admin/destinations/prod/pause")
            .body(Body::empty())
            .expect("request");
        req.extensions_mut()
            .insert(Peer("10.1.2.3:4444".parse().expect("address")));
        let r = router.clone().oneshot(req).await.expect("answer");
        assert_eq!(r.status().as_u16(), 403);
        assert_eq!(
            svc.state()
                .store
                .operator_pause("prod")
                .await
                .expect("read"),
            None,
            "a refused call changes nothing"
        );
    }
}
