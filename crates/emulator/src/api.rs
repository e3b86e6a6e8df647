//! The `/api` endpoints: authentication, rate limits, and each list and user operation, with
//! Iterable's status codes, envelopes and messages as recorded.

use std::net::IpAddr;

use hyper::HeaderMap;
use percent_encoding::percent_decode_str;
use serde_json::{Value, json};

use crate::config::Region;
use crate::endpoint::{Endpoint, Route};
use crate::project::{ListProblem, ListType, Project, RowError, UserWrite};
use crate::ratelimit::Decision;
use crate::server::{HTML, JSON, Reply, Shared, TEXT, lock};
use crate::wire::{
    self, ApiError, CreateListRequest, SubscribeRequest, UnsubscribeRequest, UpdateUserRequest,
};

impl From<ApiError> for Reply {
    fn from(e: ApiError) -> Self {
        Reply::json(e.status, &e.envelope())
    }
}

/// `500 GenericError`, as Iterable answers an internal failure.
pub(crate) fn generic_error() -> Reply {
    ApiError::new(
        500,
        "GenericError",
        "An unexpected error occurred. Please try again later.",
        Value::Null,
    )
    .into()
}

/// `503`, as the heavy endpoints document it.
pub(crate) fn unavailable() -> Reply {
    ApiError::new(
        503,
        "GenericError",
        "Request timeout.  Try again later.",
        Value::Null,
    )
    .into()
}

/// `429 RateLimitExceeded`, worded as recorded (with its trailing space).
pub(crate) fn rate_limited(path: &str, project: Option<u64>) -> Reply {
    let project = project.map_or_else(String::new, |p| p.to_string());
    ApiError::new(
        429,
        "RateLimitExceeded",
        format!("Exceeded rate limit for endpoint: {path}, project: {project} "),
        json!({}),
    )
    .into()
}

fn not_found_page() -> Reply {
    Reply::raw(
        404,
        HTML,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head><title>Action not found</title></head>\n<body><h1>Action not found</h1></body>\n</html>\n",
    )
}

fn bad_api_key(peer: IpAddr, path: &str) -> Reply {
    ApiError::new(
        401,
        "BadApiKey",
        "Invalid API key",
        json!({"ip": peer.to_string(), "endpoint": path}),
    )
    .into()
}

/// Decoded `application/x-www-form-urlencoded` query pairs.
pub(crate) fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (form_decode(k), form_decode(v))
        })
        .collect()
}

/// A form-encoded key or value: `+` is a space, then `%XX` escapes (an invalid one is kept as
/// it is; bytes that are not UTF-8 become U+FFFD).
fn form_decode(s: &str) -> String {
    let spaced = s.replace('+', " ");
    percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Finds the project of the request's key: `Api-Key` or `Api_Key` header, or the legacy
/// `api_key` query parameter. A key of the other data center is as bad as an unknown one.
fn authenticate(
    shared: &Shared,
    headers: &HeaderMap,
    pairs: &[(String, String)],
    region: Region,
) -> Option<usize> {
    let key = headers
        .get("api-key")
        .or_else(|| headers.get("api_key"))
        .and_then(|v| v.to_str().ok())
        .or_else(|| param(pairs, "api_key"))?;
    let idx = *shared.keys.get(key.trim())?;
    (lock(&shared.projects[idx]).region == region).then_some(idx)
}

fn parse_list_id(raw: Option<&str>, name: &str) -> Result<i64, ApiError> {
    let raw = raw.ok_or_else(|| ApiError::bad_params(format!("Missing parameter: {name}")))?;
    raw.trim().parse::<i64>().map_err(|_| {
        ApiError::bad_params(format!("Cannot parse parameter {name} as Long: {raw:?}"))
    })
}

fn parse_bool(raw: Option<&str>, name: &str) -> Result<bool, ApiError> {
    match raw {
        None => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(v) => Err(ApiError::bad_params(format!(
            "Cannot parse parameter {name} as Boolean: {v:?}"
        ))),
    }
}

/// The rate limiter's decision on a request, taken as its head arrives, before its body is
/// read (as a gateway in front of the API decides): the limiter sees requests in the order
/// and at the spacing they were sent with, not in the order their bodies finished arriving,
/// which on a busy machine can differ by more than a slot. `None` for a request that is not
/// routed or not authenticated ([`handle`] answers it).
pub(crate) fn limit_on_arrival(
    shared: &Shared,
    region: Region,
    method: &str,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Option<Decision> {
    let route = Endpoint::route(method, path)?;
    let idx = authenticate(shared, headers, &query_pairs(query), region)?;
    let project_id = lock(&shared.projects[idx]).id;
    Some(lock(&shared.limiter).check(project_id, route.endpoint, shared.clock.now_nanos()))
}

/// Handles one `/api` request; returns the answer and the project it was for, when known.
/// `decision` is the limiter's, taken on arrival ([`limit_on_arrival`]); without one, the
/// limiter is asked now.
#[allow(clippy::too_many_arguments)]
pub(crate) fn handle(
    shared: &Shared,
    region: Region,
    peer: IpAddr,
    method: &str,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
    decision: Option<Decision>,
) -> (Reply, Option<u64>) {
    let Some(route) = Endpoint::route(method, path) else {
        return (not_found_page(), None);
    };
    let pairs = query_pairs(query);
    let Some(idx) = authenticate(shared, headers, &pairs, region) else {
        return (bad_api_key(peer, path), None);
    };
    let project_id = lock(&shared.projects[idx]).id;
    let decision = decision.unwrap_or_else(|| {
        lock(&shared.limiter).check(project_id, route.endpoint, shared.clock.now_nanos())
    });
    if let Decision::Deny { retry_after } = decision {
        let mut r = rate_limited(path, Some(project_id));
        if shared.retry_after {
            r.retry_after = Some(retry_after.as_secs_f64().ceil().max(1.0) as u64);
        }
        return (r, Some(project_id));
    }
    let reply = match dispatch(shared, idx, &route, path, &pairs, body) {
        Ok(r) => r,
        Err(e) => e.into(),
    };
    (reply, Some(project_id))
}

/// One authenticated, admitted `/api` call, as its handler sees it.
struct Call<'r> {
    shared: &'r Shared,
    /// The project's index in `shared.projects`.
    idx: usize,
    route: &'r Route,
    path: &'r str,
    pairs: &'r [(String, String)],
    body: &'r [u8],
    /// The emulated clock, in milliseconds, when the call was dispatched.
    now: u64,
}

impl Call<'_> {
    fn project(&self) -> std::sync::MutexGuard<'_, Project> {
        lock(&self.shared.projects[self.idx])
    }

    fn param(&self, name: &str) -> Option<&str> {
        param(self.pairs, name)
    }

    /// The `{listId}` path segment.
    fn list_id_segment(&self) -> Result<i64, ApiError> {
        parse_list_id(self.route.list_id_segment.as_deref(), "listId")
    }
}

/// Routes an admitted call to the handler of its endpoint.
fn dispatch(
    shared: &Shared,
    idx: usize,
    route: &Route,
    path: &str,
    pairs: &[(String, String)],
    body: &[u8],
) -> Result<Reply, ApiError> {
    let call = Call {
        shared,
        idx,
        route,
        path,
        pairs,
        body,
        now: shared.clock.now_millis(),
    };
    match route.endpoint {
        Endpoint::GetLists => get_lists(&call),
        Endpoint::CreateList => create_list(&call),
        Endpoint::DeleteList => delete_list(&call),
        Endpoint::ListSize => list_size(&call),
        Endpoint::GetUsers => list_members(&call, false),
        Endpoint::PreviewUsers => list_members(&call, true),
        Endpoint::Subscribe => subscribe(&call),
        Endpoint::Unsubscribe => unsubscribe(&call),
        Endpoint::GetUserByEmail => user_by_email(&call),
        Endpoint::GetUserById => user_by_id(&call),
        Endpoint::UpdateUser => update_user(&call),
    }
}

/// `GET /api/lists`: every list, newest first.
fn get_lists(call: &Call) -> Result<Reply, ApiError> {
    let p = call.project();
    let lists: Vec<Value> = p.lists().rev().map(list_details).collect();
    Ok(Reply::json(200, &json!({ "lists": lists })))
}

/// `POST /api/lists`: a new standard list (invisible to reads for the configured delay).
fn create_list(call: &Call) -> Result<Reply, ApiError> {
    let req: CreateListRequest = wire::decode(call.path, call.body, wire::CREATE_LIST_SHAPE)?;
    if req.name.trim().is_empty() {
        return Err(ApiError::bad_params("List name must not be empty"));
    }
    let invisible = lock(&call.shared.faults).new_list_invisible_ms;
    let id = call.shared.new_list_id();
    call.project().create_list(
        id,
        req.name,
        req.description,
        ListType::Standard,
        call.now,
        invisible,
    );
    Ok(Reply::json(200, &json!({ "listId": id })))
}

/// `DELETE /api/lists/{listId}`: refused for a missing list or one in use.
fn delete_list(call: &Call) -> Result<Reply, ApiError> {
    let id = call.list_id_segment()?;
    let mut p = call.project();
    let pid = p.id;
    match p.list(id) {
        None => Err(ApiError::bad_params(format!(
            "Unable to delete list {id} in Project {pid}, which does not exist."
        ))),
        Some(l) if l.in_use => Err(ApiError::new(
            409,
            "BadParams",
            format!("List {id} in Project {pid} is in use and cannot be deleted."),
            Value::Null,
        )),
        Some(_) => {
            p.delete_list(id);
            Ok(success(format!(
                "List {id} in Project {pid} was successfully deleted."
            )))
        }
    }
}

/// `GET /api/lists/{listId}/size`: the member count as a bare number.
fn list_size(call: &Call) -> Result<Reply, ApiError> {
    let id = call.list_id_segment()?;
    let p = call.project();
    let l = p.list(id).ok_or_else(|| invalid_email_list(p.id, id))?;
    Ok(Reply::raw(200, JSON, l.len().to_string()))
}

/// The `size` parameter of `previewUsers`: 1 to 5000, 1000 when absent.
fn preview_size(call: &Call) -> Result<usize, ApiError> {
    let size = match call.param("size") {
        None => 1000,
        Some(s) => s.trim().parse::<i64>().map_err(|_| {
            ApiError::bad_params(format!("Cannot parse parameter size as Int: {s:?}"))
        })?,
    };
    if !(1..=5000).contains(&size) {
        return Err(ApiError::bad_params(format!(
            "size must be between 1 and 5000, got {size}"
        )));
    }
    Ok(size as usize)
}

/// `getUsers` and `previewUsers`: the list's members, one per line (a preview at most `size`).
fn list_members(call: &Call, preview: bool) -> Result<Reply, ApiError> {
    let id = parse_list_id(call.param("listId"), "listId")?;
    let prefer = parse_bool(call.param("preferUserId"), "preferUserId")?;
    let limit = if preview {
        Some(preview_size(call)?)
    } else {
        None
    };
    let p = call.project();
    let l = p.list(id).ok_or_else(|| invalid_email_list(p.id, id))?;
    Ok(Reply::raw(200, TEXT, p.member_lines(l, prefer, limit)))
}

/// `POST /api/lists/subscribe`.
fn subscribe(call: &Call) -> Result<Reply, ApiError> {
    let req: SubscribeRequest = wire::decode(call.path, call.body, wire::SUBSCRIBE_SHAPE)?;
    let existing_only = req.update_existing_users_only.unwrap_or(false);
    let mut placeholder = || call.shared.placeholder_email();
    let mut p = call.project();
    let pid = p.id;
    p.subscribe(
        req.list_id,
        &req.subscribers,
        existing_only,
        call.now,
        &mut placeholder,
    )
    .map(|r| Reply::json(200, &r))
    .map_err(|e| list_problem(pid, req.list_id, e))
}

/// `POST /api/lists/unsubscribe`.
fn unsubscribe(call: &Call) -> Result<Reply, ApiError> {
    let req: UnsubscribeRequest = wire::decode(call.path, call.body, wire::UNSUBSCRIBE_SHAPE)?;
    let mut p = call.project();
    let pid = p.id;
    p.unsubscribe(
        req.list_id,
        &req.subscribers,
        req.channel_unsubscribe.unwrap_or(false),
        call.now,
    )
    .map(|r| Reply::json(200, &r))
    .map_err(|e| list_problem(pid, req.list_id, e))
}

/// `GET /api/users/getByEmail`: `{}` when there is no such user.
fn user_by_email(call: &Call) -> Result<Reply, ApiError> {
    let email = call
        .param("email")
        .ok_or_else(|| ApiError::bad_params("Missing parameter: email"))?;
    let p = call.project();
    Ok(match p.user_json(Some(email), None) {
        Some(u) => Reply::json(200, &json!({ "user": u })),
        None => Reply::json(200, &json!({})),
    })
}

/// `GET /api/users/byUserId`: an error when there is no such user.
fn user_by_id(call: &Call) -> Result<Reply, ApiError> {
    let uid = call
        .param("userId")
        .ok_or_else(|| ApiError::bad_params("Missing parameter: userId"))?;
    let p = call.project();
    match p.user_json(None, Some(uid)) {
        Some(u) => Ok(Reply::json(200, &json!({ "user": u }))),
        None => Err(ApiError::new(
            400,
            "error.users.noUserWithIdExists",
            "No user with that id exists!",
            Value::Null,
        )),
    }
}

/// `POST /api/users/update`.
fn update_user(call: &Call) -> Result<Reply, ApiError> {
    let req: UpdateUserRequest = wire::decode(call.path, call.body, wire::UPDATE_USER_SHAPE)?;
    let w = UserWrite {
        email: req.email.as_deref(),
        user_id: req.user_id.as_deref(),
        data_fields: req.data_fields.as_ref(),
        prefer_user_id: req.prefer_user_id.unwrap_or(false),
        merge_nested: req.merge_nested_objects.unwrap_or(false),
        existing_only: false,
    };
    let mut placeholder = || call.shared.placeholder_email();
    let mut p = call.project();
    match p.write_user(&w, &mut placeholder) {
        Ok(_) => Ok(success(String::new())),
        Err(e) => Err(update_error(&p, &w, e)),
    }
}

/// `200` with the `Success` envelope.
fn success(msg: String) -> Reply {
    ApiError::new(200, "Success", msg, Value::Null).into()
}

fn list_details(l: &crate::project::List) -> Value {
    let mut v = json!({
        "id": l.id,
        "name": l.name,
        "createdAt": l.created_at,
        "listType": l.list_type,
    });
    if let Some(d) = &l.description {
        v["description"] = json!(d);
    }
    if l.list_type == ListType::Suppression {
        v["isGlobalSuppressionEnabled"] = json!(false);
    }
    v
}

/// getUsers / previewUsers / size on an unknown list, as recorded.
fn invalid_email_list(project: u64, list: i64) -> ApiError {
    ApiError::new(
        400,
        "BadParams",
        "Invalid email list id",
        json!({"projectId": project.to_string(), "listId": list.to_string()}),
    )
}

/// subscribe / unsubscribe on a list they cannot use. Note Iterable's `code: "Success"`.
fn list_problem(project: u64, list: i64, e: ListProblem) -> ApiError {
    match e {
        ListProblem::Unknown => ApiError::new(
            400,
            "Success",
            format!("error.lists.invalidListId({list})"),
            json!({"projectId": project, "listId": list}),
        ),
        ListProblem::NotStandard(t) => ApiError::bad_params(format!(
            "List {list} is a {t:?} list; only Standard (static) lists accept subscribe and unsubscribe"
        )),
    }
}

fn update_error(p: &Project, w: &UserWrite<'_>, e: RowError) -> ApiError {
    match e {
        RowError::NoIdentifier => ApiError::bad_params("Must provide email or userId"),
        RowError::Invalid { email: Some(e), .. } => ApiError::new(
            400,
            "InvalidEmailAddressError",
            format!("Invalid email: {e}"),
            Value::Null,
        ),
        RowError::Invalid {
            user_id: Some((u, why)),
            ..
        } => ApiError::new(
            400,
            "InvalidUserIdError",
            format!("Invalid userId: {u:?} {why}"),
            Value::Null,
        ),
        RowError::Invalid { .. } => ApiError::bad_params("Invalid identifier"),
        RowError::Forgotten { .. } => ApiError::new(
            409,
            "ForgottenUserError",
            "Contact is GDPR forgotten",
            Value::Null,
        ),
        RowError::Conflict { email, .. } => ApiError::new(
            409,
            if email {
                "EmailAlreadyExists"
            } else {
                "UserIdAlreadyExists"
            },
            "Email/userId conflict",
            Value::Null,
        ),
        RowError::NotFound { .. } => ApiError::new(
            400,
            "UnknownUserIdError",
            format!(
                "No user exists with userId {:?} in project {}; set preferUserId to create one",
                w.user_id.unwrap_or(""),
                p.id
            ),
            Value::Null,
        ),
        RowError::FieldType {
            field,
            expected,
            incoming,
        } => {
            let offending = w
                .data_fields
                .and_then(|d| d.get(&field))
                .cloned()
                .unwrap_or(Value::Null);
            ApiError::new(
                400,
                "RequestFieldsTypesMismatched",
                format!("Project {} has type mismatches for fields: {field}", p.id),
                json!({"validationErrors": {field: {
                    "incomingTypes": [incoming],
                    "expectedType": expected,
                    "category": "user",
                    "offendingValue": offending,
                    "_type": "UnexpectedType"
                }}}),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding() {
        let p = query_pairs(Some(
            "listId=12&email=a%2Bb%40c.co&x=hello+world&bad=%zz&empty",
        ));
        assert_eq!(param(&p, "listId"), Some("12"));
        assert_eq!(param(&p, "email"), Some("a+b@c.co"));
        assert_eq!(param(&p, "x"), Some("hello world"));
        assert_eq!(param(&p, "bad"), Some("%zz"));
        assert_eq!(param(&p, "empty"), Some(""));
        assert_eq!(param(&query_pairs(Some("a=%4")), "a"), Some("%4"));
        assert!(query_pairs(None).is_empty());
    }

    #[test]
    fn rate_limited_wording_keeps_the_trailing_space() {
        let r = rate_limited("/api/lists/getUsers", Some(10216));
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            v["msg"],
            "Exceeded rate limit for endpoint: /api/lists/getUsers, project: 10216 "
        );
        assert_eq!(v["code"], "RateLimitExceeded");
        assert_eq!(v["params"], json!({}));
        assert_eq!(r.status, 429);
    }
}
