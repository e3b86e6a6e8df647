//! Contract tests: the emulator, driven over real HTTP, answers every list endpoint (and the
//! user calls a sync tool needs) as Iterable's official spec says. Each response is checked
//! against the schema the vendored spec (`spec/iterable-openapi.json`) gives for its
//! operation and status, looked up by path, method and status; error answers, which the spec
//! leaves without a schema, must be `IterableApiResponse` envelopes; every answer carries
//! Iterable's headers (iterable-api.md section 8).

mod support;

#[path = "support/schema.rs"]
mod schema;

use std::collections::BTreeSet;
use std::time::Duration;

use iterable_emulator::{
    Endpoint, Faults, ListType, RateLimit, SeedList, SeedRequest, SeedResult, SeedUser,
};
use schema::{Problem, SchemaError, Spec};
use serde_json::{Map, Value, json};
use support::*;

/// An operation as the spec names it: method and templated path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Op(&'static str, &'static str);

const GET_LISTS: Op = Op("GET", "/api/lists");
const CREATE_LIST: Op = Op("POST", "/api/lists");
const DELETE_LIST: Op = Op("DELETE", "/api/lists/{listId}");
const LIST_SIZE: Op = Op("GET", "/api/lists/{listId}/size");
const GET_USERS: Op = Op("GET", "/api/lists/getUsers");
const PREVIEW_USERS: Op = Op("GET", "/api/lists/previewUsers");
const SUBSCRIBE: Op = Op("POST", "/api/lists/subscribe");
const UNSUBSCRIBE: Op = Op("POST", "/api/lists/unsubscribe");
const GET_BY_EMAIL: Op = Op("GET", "/api/users/getByEmail");
const BY_USER_ID: Op = Op("GET", "/api/users/byUserId");
const UPDATE_USER: Op = Op("POST", "/api/users/update");

/// Every operation the emulator serves, with a concrete path for it.
const OPS: [(Op, &str); 11] = [
    (GET_LISTS, "/api/lists"),
    (CREATE_LIST, "/api/lists"),
    (DELETE_LIST, "/api/lists/1"),
    (LIST_SIZE, "/api/lists/1/size"),
    (GET_USERS, "/api/lists/getUsers?listId=1"),
    (PREVIEW_USERS, "/api/lists/previewUsers?listId=1"),
    (SUBSCRIBE, "/api/lists/subscribe"),
    (UNSUBSCRIBE, "/api/lists/unsubscribe"),
    (GET_BY_EMAIL, "/api/users/getByEmail?email=a@x.co"),
    (BY_USER_ID, "/api/users/byUserId?userId=a"),
    (UPDATE_USER, "/api/users/update"),
];

/// Statuses the spec lists for no operation but Iterable sends on any: 429 RateLimitExceeded
/// (iterable-api.md 5), 413 BatchTooLarge for oversized bodies (5, 9.8), 500 GenericError and
/// 503 (2).
const ANY_OPERATION: &[u16] = &[413, 429, 500, 503];

/// Error codes seen in Iterable's real traffic that the spec's enum lacks (iterable-api.md 7).
const RECORDED_NON_ENUM_CODES: &[&str] = &["error.users.noUserWithIdExists"];

/// The emulator and the spec, and a contract check on every answer.
struct Api {
    spec: Spec,
    h: Harness,
}

impl Api {
    async fn start() -> Api {
        Api::with(support::config()).await
    }

    async fn with(config: iterable_emulator::EmulatorConfig) -> Api {
        Api {
            spec: Spec::vendored(),
            h: start_with(config).await,
        }
    }

    /// Sends a request for `op` to `path` (concrete, with its query) and checks the answer
    /// against the contract, whatever its status.
    async fn call(&self, key: &str, op: Op, path: &str, body: Option<&str>) -> Resp {
        let Op(method, _) = op;
        let url = self.h.url(path);
        let req = match method {
            "GET" => self.h.http.get(url),
            "POST" => self.h.http.post(url),
            "DELETE" => self.h.http.delete(url),
            m => panic!("no method {m}"),
        };
        let req = match body {
            Some(b) => req
                .header("Content-Type", "application/json")
                .body(b.to_string()),
            None => req,
        };
        let r = self.h.send(req.header("Api-Key", key)).await;
        self.conforms(op, &r);
        r
    }

    /// A call without a body (GET, DELETE).
    async fn bare(&self, key: &str, op: Op, path: &str) -> Resp {
        self.call(key, op, path, None).await
    }

    async fn post(&self, key: &str, op: Op, body: Value) -> Resp {
        self.call(key, op, op.1, Some(&body.to_string())).await
    }

    /// A call to one of the 5-per-minute reads, a fifth of a minute after the last one so
    /// the documented limit never interferes (the clock is manual).
    async fn read(&self, key: &str, op: Op, path: &str) -> Resp {
        self.h.clock.advance(Duration::from_secs(12));
        self.bare(key, op, path).await
    }

    async fn create_list(&self, key: &str, name: &str) -> i64 {
        let r = self.post(key, CREATE_LIST, json!({ "name": name })).await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.json()["listId"].as_i64().expect("listId")
    }

    fn seed(&self, project: u64, users: Vec<SeedUser>, lists: Vec<SeedList>) -> SeedResult {
        self.h
            .emu
            .seed(&SeedRequest {
                project_id: Some(project),
                users,
                lists,
            })
            .expect("seeded")
    }

    /// The whole contract for one answer.
    fn conforms(&self, op: Op, r: &Resp) {
        check_contract(&self.spec, op, r);
    }
}

/// The whole contract for one answer to `op`: panics on the first breach.
fn check_contract(spec: &Spec, Op(method, path): Op, r: &Resp) {
    let what = format!("{method} {path} -> {} {:?}", r.status, r.text);
    has_iterable_headers(r, &what);
    if (200..300).contains(&r.status) {
        let documented = spec.response(method, path, r.status);
        assert!(documented.is_some(), "status not in the spec: {what}");
        let schema = spec
            .response_schema(method, path, r.status)
            .unwrap_or_else(|| panic!("the spec gives no schema: {what}"));
        if spec
            .produces(method, path)
            .iter()
            .any(|p| p == "text/plain")
        {
            is_text_lines(schema, r, &what);
        } else if schema == &json!({"type": "string"}) {
            is_bare_count(r, &what);
        } else {
            is_json(r, &what);
            let errors = spec.validate(schema, &r.json());
            assert!(errors.is_empty(), "{}\n{what}", show(&errors));
        }
    } else {
        let documented = spec.response(method, path, r.status).is_some();
        assert!(
            documented || ANY_OPERATION.contains(&r.status),
            "status neither in the spec for this operation nor sent on any: {what}"
        );
        // Should the spec ever give an error status a schema, that schema applies.
        let schema = spec
            .response_schema(method, path, r.status)
            .cloned()
            .unwrap_or_else(|| json!({"$ref": "#/definitions/IterableApiResponse"}));
        is_json(r, &what);
        let v = r.json();
        let errors: Vec<SchemaError> = spec
            .validate(&schema, &v)
            .into_iter()
            .filter(|e| !recorded_non_enum_code(e, &v))
            .collect();
        assert!(errors.is_empty(), "{}\n{what}", show(&errors));
        assert!(v["code"].is_string() && v["msg"].is_string(), "{what}");
    }
}

/// The one allowed departure from `IterableApiResponse`: a code Iterable was recorded sending
/// that is not in the spec's enum.
fn recorded_non_enum_code(e: &SchemaError, v: &Value) -> bool {
    e.path == "$.code"
        && matches!(e.problem, Problem::NotInEnum(_))
        && v["code"]
            .as_str()
            .is_some_and(|c| RECORDED_NON_ENUM_CODES.contains(&c))
}

fn show(errors: &[SchemaError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// `Content-Type`, `Request-Time` (integer milliseconds), `Server: iterable-ingress <4 hex>`
/// and `Vary: Origin`, as on every recorded reply.
fn has_iterable_headers(r: &Resp, what: &str) {
    assert!(!r.content_type().is_empty(), "no Content-Type: {what}");
    let rt = r.header("request-time").unwrap_or("");
    assert!(
        !rt.is_empty() && rt.bytes().all(|b| b.is_ascii_digit()),
        "Request-Time {rt:?}: {what}"
    );
    let server = r.header("server").unwrap_or("");
    let node = server.strip_prefix("iterable-ingress ").unwrap_or("");
    assert!(
        node.len() == 4
            && node
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "Server {server:?}: {what}"
    );
    assert_eq!(r.header("vary"), Some("Origin"), "{what}");
}

fn is_json(r: &Resp, what: &str) {
    assert!(
        r.content_type().starts_with("application/json"),
        "Content-Type {:?}: {what}",
        r.content_type()
    );
    assert!(
        serde_json::from_str::<Value>(&r.text).is_ok(),
        "not JSON: {what}"
    );
}

/// `produces: text/plain` with schema `type: string`: one identifier a line, each line ended
/// by `\n` (so an empty list is an empty body).
fn is_text_lines(schema: &Value, r: &Resp, what: &str) {
    assert_eq!(schema, &json!({"type": "string"}), "{what}");
    assert!(
        r.content_type().starts_with("text/plain"),
        "Content-Type {:?}: {what}",
        r.content_type()
    );
    assert!(
        r.text.is_empty() || r.text.ends_with('\n'),
        "last line unterminated: {what}"
    );
    assert!(
        r.text.split_terminator('\n').all(|l| !l.trim().is_empty()),
        "blank line: {what}"
    );
    assert!(!r.text.contains('\r'), "CR in body: {what}");
}

/// `/size`, schema `type: string`: the count as a bare decimal integer.
fn is_bare_count(r: &Resp, what: &str) {
    let n: u64 = r
        .text
        .parse()
        .unwrap_or_else(|_| panic!("not a bare count: {what}"));
    assert_eq!(n.to_string(), r.text, "not canonical decimal: {what}");
}

fn lines(r: &Resp) -> Vec<&str> {
    r.text.lines().collect()
}

/// Asserts the error status and code.
fn is_error(r: &Resp, status: u16, code: &str) {
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (status, Some(code)),
        "{}",
        r.text
    );
}

fn user(email: Option<&str>, user_id: Option<&str>) -> SeedUser {
    SeedUser {
        email: email.map(str::to_string),
        user_id: user_id.map(str::to_string),
        ..Default::default()
    }
}

fn forgotten(email: Option<&str>, user_id: Option<&str>) -> SeedUser {
    SeedUser {
        forgotten: true,
        ..user(email, user_id)
    }
}

fn seed_list(name: &str, list_type: ListType) -> SeedList {
    SeedList {
        name: name.into(),
        list_type,
        ..Default::default()
    }
}

/// A 200 `UserBulkUpdateListResponse` with the expected counts, every `FailedUserUpdates`
/// bucket the spec defines present, each `(bucket, identifier)` reported where expected, and
/// every failed identifier mirrored in the deprecated top-level arrays.
fn bulk_outcome(spec: &Spec, r: &Resp, success: u64, fail: u64, failed: &[(&str, &str)]) {
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert_eq!(v["successCount"], success, "{v}");
    assert_eq!(v["failCount"], fail, "{v}");
    let buckets = spec.definition("FailedUserUpdates").expect("defined")["properties"]
        .as_object()
        .expect("properties")
        .keys()
        .cloned()
        .collect::<Vec<_>>();
    let fu = v["failedUpdates"].as_object().expect("failedUpdates");
    for b in &buckets {
        assert!(fu.get(b).is_some_and(Value::is_array), "{b} missing: {v}");
    }
    for (bucket, id) in failed {
        assert!(buckets.iter().any(|b| b == bucket), "no bucket {bucket}");
        let has = |arr: &Value| arr.as_array().is_some_and(|a| a.contains(&json!(id)));
        assert!(has(&fu[*bucket]), "{id} not in {bucket}: {v}");
        let deprecated = if bucket.ends_with("Emails") {
            "invalidEmails"
        } else {
            "invalidUserIds"
        };
        assert!(has(&v[deprecated]), "{id} not in {deprecated}: {v}");
    }
    let reported: usize = fu.values().map(|a| a.as_array().map_or(0, Vec::len)).sum();
    assert_eq!(reported, failed.len(), "unexpected extra failures: {v}");
}

// ---- the spec and the emulator agree on what is served ------------------------------------

#[test]
fn every_emulated_endpoint_is_a_spec_operation_with_a_200_schema() {
    let spec = Spec::vendored();
    let mut routed = BTreeSet::new();
    for (Op(method, template), concrete) in OPS {
        let path = concrete.split('?').next().unwrap_or(concrete);
        let route = Endpoint::route(method, path).unwrap_or_else(|| panic!("{method} {path}"));
        routed.insert(route.endpoint);
        assert!(
            spec.response_schema(method, template, 200).is_some(),
            "{method} {template}"
        );
        for status in [400, 401] {
            assert!(
                spec.response(method, template, status).is_some(),
                "{method} {template} {status}"
            );
        }
    }
    assert_eq!(routed, Endpoint::ALL.into_iter().collect::<BTreeSet<_>>());
}

// ---- lists ----------------------------------------------------------------------------------

#[tokio::test]
async fn get_lists_is_a_get_lists_response() {
    let api = Api::start().await;
    let r = api.bare(HYBRID_KEY, GET_LISTS, "/api/lists").await;
    assert_eq!((r.status, r.json()), (200, json!({"lists": []})));

    let plain = api.create_list(HYBRID_KEY, "plain").await;
    let r = api
        .post(
            HYBRID_KEY,
            CREATE_LIST,
            json!({"name": "described", "description": "d"}),
        )
        .await;
    let described = r.json()["listId"].as_i64().unwrap();
    api.seed(
        HYBRID_PID,
        vec![],
        vec![
            seed_list("dynamic", ListType::Dynamic),
            seed_list("suppression", ListType::Suppression),
            seed_list("internal", ListType::Internal),
        ],
    );
    let r = api.bare(HYBRID_KEY, GET_LISTS, "/api/lists").await;
    assert_eq!(r.status, 200);
    let lists = r.json()["lists"].as_array().unwrap().clone();
    assert_eq!(lists.len(), 5);
    let by_name = |n: &str| lists.iter().find(|l| l["name"] == n).unwrap().clone();
    assert_eq!(by_name("plain")["id"], plain);
    assert_eq!(by_name("described")["id"], described);
    assert_eq!(by_name("described")["description"], "d");
    // Recorded (3.1): description absent when unset, isGlobalSuppressionEnabled only on
    // Suppression lists, createdAt in epoch milliseconds (beyond int32: the documented case).
    assert!(by_name("plain").get("description").is_none());
    for l in &lists {
        let suppression = l["listType"] == "Suppression";
        assert_eq!(
            l.get("isGlobalSuppressionEnabled").is_some(),
            suppression,
            "{l}"
        );
        assert!(
            l["createdAt"].as_i64().unwrap() > i64::from(i32::MAX),
            "{l}"
        );
    }
    let types: BTreeSet<&str> = lists
        .iter()
        .filter_map(|l| l["listType"].as_str())
        .collect();
    assert_eq!(
        types,
        BTreeSet::from(["Dynamic", "Internal", "Standard", "Suppression"])
    );
    // Newest first.
    let ids: Vec<i64> = lists.iter().map(|l| l["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");
}

#[tokio::test]
async fn create_list_is_a_create_list_response_and_bad_bodies_are_bad_json_body() {
    let api = Api::start().await;
    let a = api.create_list(HYBRID_KEY, "a").await;
    let b = api.create_list(USERID_KEY, "a").await;
    assert!(b > a && a > 0);

    for body in [
        r#"{}"#,
        r#"{"name":null}"#,
        r#"{"name":5}"#,
        r#"{"name":"#,
        "[]",
    ] {
        let r = api
            .call(HYBRID_KEY, CREATE_LIST, "/api/lists", Some(body))
            .await;
        is_error(&r, 400, "BadJsonBody");
    }
    let r = api
        .call(HYBRID_KEY, CREATE_LIST, "/api/lists", Some("{}"))
        .await;
    assert_eq!(
        r.json()["params"],
        json!({"obj.name": [{"msg": "error.path.missing", "args": []}]})
    );
}

#[tokio::test]
async fn delete_list_is_an_iterable_api_response() {
    let api = Api::start().await;
    let id = api.create_list(HYBRID_KEY, "doomed").await;
    let path = format!("/api/lists/{id}");
    let r = api.bare(HYBRID_KEY, DELETE_LIST, &path).await;
    assert_eq!(
        (r.status, r.json()),
        (
            200,
            json!({"msg": format!("List {id} in Project {HYBRID_PID} was successfully deleted."),
                   "code": "Success"})
        )
    );
    // Deleted, foreign or malformed ids: 400 BadParams (3.3).
    let r = api.bare(HYBRID_KEY, DELETE_LIST, &path).await;
    is_error(&r, 400, "BadParams");
    assert_eq!(
        r.json()["msg"],
        format!("Unable to delete list {id} in Project {HYBRID_PID}, which does not exist.")
    );
    let foreign = api.create_list(EMAIL_KEY, "foreign").await;
    let r = api
        .bare(HYBRID_KEY, DELETE_LIST, &format!("/api/lists/{foreign}"))
        .await;
    is_error(&r, 400, "BadParams");
    let r = api.bare(HYBRID_KEY, DELETE_LIST, "/api/lists/abc").await;
    is_error(&r, 400, "BadParams");
    // A list in use: the spec's 409.
    let seeded = api.seed(
        HYBRID_PID,
        vec![],
        vec![SeedList {
            in_use: true,
            ..seed_list("in use", ListType::Standard)
        }],
    );
    let used = seeded.lists[0].id;
    let r = api
        .bare(HYBRID_KEY, DELETE_LIST, &format!("/api/lists/{used}"))
        .await;
    assert_eq!(r.status, 409, "{}", r.text);
}

#[tokio::test]
async fn list_size_is_a_bare_decimal_count() {
    let api = Api::start().await;
    let id = api.create_list(HYBRID_KEY, "sized").await;
    let path = format!("/api/lists/{id}/size");
    let r = api.read(HYBRID_KEY, LIST_SIZE, &path).await;
    assert_eq!((r.status, r.text.as_str()), (200, "0"));
    let rows = json!([{"email": "a@x.co"}, {"userId": "b"}, {"email": "c@x.co", "userId": "c"}]);
    let r = api
        .post(
            HYBRID_KEY,
            SUBSCRIBE,
            json!({"listId": id, "subscribers": rows}),
        )
        .await;
    bulk_outcome(&api.spec, &r, 3, 0, &[]);
    let r = api.read(HYBRID_KEY, LIST_SIZE, &path).await;
    assert_eq!((r.status, r.text.as_str()), (200, "3"));

    let r = api.read(HYBRID_KEY, LIST_SIZE, "/api/lists/1/size").await;
    is_error(&r, 400, "BadParams");
    assert_eq!(
        r.json(),
        json!({"msg": "Invalid email list id", "code": "BadParams",
               "params": {"projectId": HYBRID_PID.to_string(), "listId": "1"}})
    );
    let foreign = api.create_list(USERID_KEY, "foreign").await;
    let r = api
        .read(HYBRID_KEY, LIST_SIZE, &format!("/api/lists/{foreign}/size"))
        .await;
    is_error(&r, 400, "BadParams");
    let r = api.read(HYBRID_KEY, LIST_SIZE, "/api/lists/abc/size").await;
    is_error(&r, 400, "BadParams");
}

#[tokio::test]
async fn get_users_and_preview_users_are_newline_terminated_text() {
    let api = Api::start().await;
    let id = api.create_list(HYBRID_KEY, "members").await;
    let get_users = format!("/api/lists/getUsers?listId={id}");
    let r = api.read(HYBRID_KEY, GET_USERS, &get_users).await;
    assert_eq!((r.status, r.text.as_str()), (200, ""));
    let r = api
        .read(
            HYBRID_KEY,
            PREVIEW_USERS,
            &format!("/api/lists/previewUsers?listId={id}"),
        )
        .await;
    assert_eq!((r.status, r.text.as_str()), (200, ""));

    let rows =
        json!([{"email": "Mixed@X.co", "userId": "m"}, {"email": "e@x.co"}, {"userId": "u-only"}]);
    let r = api
        .post(
            HYBRID_KEY,
            SUBSCRIBE,
            json!({"listId": id, "subscribers": rows}),
        )
        .await;
    bulk_outcome(&api.spec, &r, 3, 0, &[]);
    let sorted = |r: &Resp| {
        let mut l: Vec<String> = lines(r).into_iter().map(str::to_string).collect();
        l.sort();
        l
    };
    let r = api.read(HYBRID_KEY, GET_USERS, &get_users).await;
    assert_eq!(sorted(&r), ["e@x.co", "mixed@x.co", "u-only"]);
    let r = api
        .read(
            HYBRID_KEY,
            GET_USERS,
            &format!("{get_users}&preferUserId=true"),
        )
        .await;
    assert_eq!(sorted(&r), ["e@x.co", "m", "u-only"]);

    let preview = format!("/api/lists/previewUsers?listId={id}");
    let r = api.read(HYBRID_KEY, PREVIEW_USERS, &preview).await;
    assert_eq!(sorted(&r), ["e@x.co", "mixed@x.co", "u-only"]);
    let r = api
        .read(HYBRID_KEY, PREVIEW_USERS, &format!("{preview}&size=1"))
        .await;
    assert_eq!(lines(&r).len(), 1, "{:?}", r.text);
    for bad in ["size=0", "size=5001", "size=x"] {
        let r = api
            .read(HYBRID_KEY, PREVIEW_USERS, &format!("{preview}&{bad}"))
            .await;
        is_error(&r, 400, "BadParams");
    }

    // Unknown, foreign, malformed and missing list ids.
    let foreign = api.create_list(EMAIL_KEY, "foreign").await;
    for (op, path) in [
        (GET_USERS, "/api/lists/getUsers?listId=1".to_string()),
        (GET_USERS, format!("/api/lists/getUsers?listId={foreign}")),
        (GET_USERS, "/api/lists/getUsers?listId=abc".to_string()),
        (GET_USERS, "/api/lists/getUsers".to_string()),
        (GET_USERS, format!("{get_users}&preferUserId=maybe")),
        (
            PREVIEW_USERS,
            "/api/lists/previewUsers?listId=1".to_string(),
        ),
    ] {
        let r = api.read(HYBRID_KEY, op, &path).await;
        is_error(&r, 400, "BadParams");
    }
    let r = api
        .read(HYBRID_KEY, GET_USERS, "/api/lists/getUsers?listId=1")
        .await;
    assert_eq!(
        r.json(),
        json!({"msg": "Invalid email list id", "code": "BadParams",
               "params": {"projectId": HYBRID_PID.to_string(), "listId": "1"}})
    );

    // userID-based project: members without email print their userId.
    let uid_list = api.create_list(USERID_KEY, "uids").await;
    let r = api
        .post(
            USERID_KEY,
            SUBSCRIBE,
            json!({"listId": uid_list, "subscribers": [{"userId": "x"}, {"userId": "y"}]}),
        )
        .await;
    bulk_outcome(&api.spec, &r, 2, 0, &[]);
    let r = api
        .read(
            USERID_KEY,
            GET_USERS,
            &format!("/api/lists/getUsers?listId={uid_list}"),
        )
        .await;
    assert_eq!(sorted(&r), ["x", "y"]);
}

// ---- subscribe and unsubscribe, per project type ----------------------------------------------

#[tokio::test]
async fn subscribe_and_unsubscribe_in_a_hybrid_project() {
    let api = Api::start().await;
    let mut typed = user(Some("typed-owner@x.co"), Some("typed-owner"));
    typed.data_fields = Some(Map::from_iter([("age".to_string(), json!(30))]));
    api.seed(
        HYBRID_PID,
        vec![
            user(Some("taken@x.co"), Some("taken")),
            user(Some("other@x.co"), Some("other")),
            typed,
            forgotten(Some("gone@x.co"), None),
            forgotten(None, Some("gone-id")),
        ],
        vec![],
    );
    let id = api.create_list(HYBRID_KEY, "hybrid").await;

    let r = api
        .post(
            HYBRID_KEY,
            SUBSCRIBE,
            json!({"listId": id, "subscribers": [
                {"email": "New@X.co", "userId": "new", "dataFields": {"plan": "pro"}},
                {"email": "taken@x.co"},
                {"email": "bad@"},
                {"userId": "trailing "},
                {"email": "taken@x.co", "userId": "other"},
                {"email": "gone@x.co"},
                {"userId": "gone-id"},
                {"email": "typed@x.co", "dataFields": {"age": "old"}}
            ]}),
        )
        .await;
    bulk_outcome(
        &api.spec,
        &r,
        2,
        6,
        &[
            ("invalidEmails", "bad@"),
            ("invalidUserIds", "trailing "),
            ("conflictEmails", "taken@x.co"),
            ("forgottenEmails", "gone@x.co"),
            ("forgottenUserIds", "gone-id"),
            ("invalidDataEmails", "typed@x.co"),
        ],
    );
    assert_eq!(r.json()["createdFields"], json!(["plan"]));

    // updateExistingUsersOnly is honoured: unknown identities are notFound.
    let r = api
        .post(
            HYBRID_KEY,
            SUBSCRIBE,
            json!({"listId": id, "updateExistingUsersOnly": true, "subscribers": [
                {"email": "nobody@x.co"}, {"userId": "nobody"}, {"userId": "taken"}
            ]}),
        )
        .await;
    bulk_outcome(
        &api.spec,
        &r,
        1,
        2,
        &[
            ("notFoundEmails", "nobody@x.co"),
            ("notFoundUserIds", "nobody"),
        ],
    );
    // An empty batch is a 200 with zero counts (recorded 2017).
    let r = api
        .post(
            HYBRID_KEY,
            SUBSCRIBE,
            json!({"listId": id, "subscribers": []}),
        )
        .await;
    bulk_outcome(&api.spec, &r, 0, 0, &[]);

    let r = api
        .post(
            HYBRID_KEY,
            UNSUBSCRIBE,
            json!({"listId": id, "campaignId": 7, "channelUnsubscribe": false, "subscribers": [
                {"email": "taken@x.co"},
                {"email": "new@x.co"},
                {"email": "other@x.co"},
                {"email": "nobody@x.co"},
                {"userId": "gone-id"},
                {"email": "bad@"}
            ]}),
        )
        .await;
    bulk_outcome(
        &api.spec,
        &r,
        3,
        3,
        &[
            ("notFoundEmails", "nobody@x.co"),
            ("forgottenUserIds", "gone-id"),
            ("invalidEmails", "bad@"),
        ],
    );
    assert!(api.h.members(id).is_empty());
}

#[tokio::test]
async fn subscribe_and_unsubscribe_in_a_user_id_project() {
    let api = Api::start().await;
    api.seed(
        USERID_PID,
        vec![user(None, Some("known")), forgotten(None, Some("gone-id"))],
        vec![],
    );
    let id = api.create_list(USERID_KEY, "userId").await;
    let too_long = "x".repeat(53);
    let r = api
        .post(
            USERID_KEY,
            SUBSCRIBE,
            json!({"listId": id, "subscribers": [
                {"userId": "u1"},
                {"userId": "known", "email": "k@x.co"},
                {"email": "only@x.co"},
                {"userId": ""},
                {"userId": "gone-id"},
                {"userId": too_long}
            ]}),
        )
        .await;
    bulk_outcome(
        &api.spec,
        &r,
        2,
        4,
        &[
            ("notFoundEmails", "only@x.co"),
            ("invalidUserIds", ""),
            ("forgottenUserIds", "gone-id"),
            ("invalidUserIds", &too_long),
        ],
    );
    let r = api
        .post(
            USERID_KEY,
            SUBSCRIBE,
            json!({"listId": id, "updateExistingUsersOnly": true,
                   "subscribers": [{"userId": "ghost"}, {"userId": "u1"}]}),
        )
        .await;
    bulk_outcome(&api.spec, &r, 1, 1, &[("notFoundUserIds", "ghost")]);

    let r = api
        .post(
            USERID_KEY,
            UNSUBSCRIBE,
            json!({"listId": id, "subscribers": [
                {"userId": "u1"}, {"userId": "ghost"}, {"email": "only@x.co"}
            ]}),
        )
        .await;
    bulk_outcome(
        &api.spec,
        &r,
        1,
        2,
        &[
            ("notFoundUserIds", "ghost"),
            ("notFoundEmails", "only@x.co"),
        ],
    );
}

#[tokio::test]
async fn subscribe_and_unsubscribe_in_an_email_project() {
    let api = Api::start().await;
    api.seed(
        EMAIL_PID,
        vec![
            user(Some("known@x.co"), Some("k")),
            forgotten(Some("gone@x.co"), None),
        ],
        vec![],
    );
    let id = api.create_list(EMAIL_KEY, "email").await;
    let r = api
        .post(
            EMAIL_KEY,
            SUBSCRIBE,
            json!({"listId": id, "subscribers": [
                {"email": "e@x.co"},
                {"userId": "k"},
                {"userId": "ghost"},
                {"userId": "made", "preferUserId": true},
                {"email": "bad@"},
                {"email": "gone@x.co"}
            ]}),
        )
        .await;
    bulk_outcome(
        &api.spec,
        &r,
        3,
        3,
        &[
            ("notFoundUserIds", "ghost"),
            ("invalidEmails", "bad@"),
            ("forgottenEmails", "gone@x.co"),
        ],
    );
    // updateExistingUsersOnly is ignored in email-based projects: the user is created.
    let r = api
        .post(
            EMAIL_KEY,
            SUBSCRIBE,
            json!({"listId": id, "updateExistingUsersOnly": true,
                   "subscribers": [{"email": "brand-new@x.co"}]}),
        )
        .await;
    bulk_outcome(&api.spec, &r, 1, 0, &[]);
    let r = api
        .read(
            EMAIL_KEY,
            GET_USERS,
            &format!("/api/lists/getUsers?listId={id}"),
        )
        .await;
    let got = lines(&r);
    assert_eq!(got.len(), 4, "{got:?}");
    for want in ["e@x.co", "known@x.co", "brand-new@x.co"] {
        assert!(got.contains(&want), "{got:?}");
    }
    assert!(
        got.iter().any(|l| l.ends_with("@placeholder.email")),
        "{got:?}"
    );

    let r = api
        .post(
            EMAIL_KEY,
            UNSUBSCRIBE,
            json!({"listId": id, "subscribers": [
                {"email": "e@x.co"}, {"userId": "made"}, {"email": "nobody@x.co"}
            ]}),
        )
        .await;
    bulk_outcome(&api.spec, &r, 2, 1, &[("notFoundEmails", "nobody@x.co")]);
}

#[tokio::test]
async fn subscribe_and_unsubscribe_refusals_are_envelopes() {
    let mut config = support::config();
    config.faults.new_list_invisible_ms = 2_000;
    let api = Api::with(config).await;
    let id = api.create_list(HYBRID_KEY, "fresh").await;
    let foreign = api.create_list(EMAIL_KEY, "foreign").await;
    let seeded = api.seed(
        HYBRID_PID,
        vec![],
        vec![seed_list("dynamic", ListType::Dynamic)],
    );
    let dynamic = seeded.lists[0].id;

    for op in [SUBSCRIBE, UNSUBSCRIBE] {
        // A list just created, another project's, or no list: 400 with code "Success" (3.7).
        for list in [id, foreign, 42] {
            let r = api
                .post(
                    HYBRID_KEY,
                    op,
                    json!({"listId": list, "subscribers": [{"email": "a@x.co"}]}),
                )
                .await;
            is_error(&r, 400, "Success");
            assert_eq!(
                r.json(),
                json!({"msg": format!("error.lists.invalidListId({list})"), "code": "Success",
                       "params": {"projectId": HYBRID_PID, "listId": list}})
            );
        }
        // Not a static list: whether Iterable refuses is unknown today (it accepted in 2017,
        // iterable-api.md 6.6), so either answer is fine as long as it is in the contract.
        let r = api
            .post(
                HYBRID_KEY,
                op,
                json!({"listId": dynamic, "subscribers": [{"email": "a@x.co"}]}),
            )
            .await;
        assert!(matches!(r.status, 200 | 400), "{}", r.text);
        for body in [
            r#"{"listId":"1","subscribers":[]}"#,
            r#"{"listId":1}"#,
            r#"{"subscribers":[]}"#,
            r#"{"listId":1,"subscribers":[{"email":5}]}"#,
            r#"{"listId":1,"subscribers":{}}"#,
            r#"{"listId":1,"subscribers":["#,
            "",
        ] {
            let r = api.call(HYBRID_KEY, op, op.1, Some(body)).await;
            is_error(&r, 400, "BadJsonBody");
        }
    }
    // Once the list has propagated, the same call is a 200.
    api.h.clock.advance(Duration::from_secs(3));
    let r = api
        .post(
            HYBRID_KEY,
            SUBSCRIBE,
            json!({"listId": id, "subscribers": [{"email": "a@x.co"}]}),
        )
        .await;
    bulk_outcome(&api.spec, &r, 1, 0, &[]);
}

// ---- users ------------------------------------------------------------------------------------

#[tokio::test]
async fn user_calls_match_the_spec() {
    let api = Api::start().await;
    let r = api
        .post(
            HYBRID_KEY,
            UPDATE_USER,
            json!({"email": "U@x.co", "userId": "u", "dataFields": {"a": [1], "n": 2}}),
        )
        .await;
    assert_eq!(
        (r.status, r.json()),
        (200, json!({"msg": "", "code": "Success"}))
    );
    let r = api
        .bare(
            HYBRID_KEY,
            GET_BY_EMAIL,
            "/api/users/getByEmail?email=u@x.co",
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["user"]["email"], "u@x.co");
    assert_eq!(r.json()["user"]["userId"], "u");
    assert_eq!(r.json()["user"]["dataFields"]["n"], 2);
    // Unknown email: 200 {} (recorded 2021).
    let r = api
        .bare(
            HYBRID_KEY,
            GET_BY_EMAIL,
            "/api/users/getByEmail?email=none@x.co",
        )
        .await;
    assert_eq!((r.status, r.json()), (200, json!({})));
    let r = api
        .bare(HYBRID_KEY, BY_USER_ID, "/api/users/byUserId?userId=u")
        .await;
    assert_eq!(
        (r.status, r.json()["user"]["email"].as_str()),
        (200, Some("u@x.co"))
    );
    // Unknown userId: 400 with the recorded non-enum code.
    let r = api
        .bare(HYBRID_KEY, BY_USER_ID, "/api/users/byUserId?userId=none")
        .await;
    is_error(&r, 400, "error.users.noUserWithIdExists");
    let r = api
        .bare(HYBRID_KEY, GET_BY_EMAIL, "/api/users/getByEmail")
        .await;
    is_error(&r, 400, "BadParams");
    let r = api
        .bare(HYBRID_KEY, BY_USER_ID, "/api/users/byUserId")
        .await;
    is_error(&r, 400, "BadParams");

    // Email-based project: a userId-only write with preferUserId gets a placeholder email.
    let r = api
        .post(
            EMAIL_KEY,
            UPDATE_USER,
            json!({"userId": "p", "preferUserId": true}),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = api
        .bare(EMAIL_KEY, BY_USER_ID, "/api/users/byUserId?userId=p")
        .await;
    assert!(
        r.json()["user"]["email"]
            .as_str()
            .is_some_and(|e| e.ends_with("@placeholder.email")),
        "{}",
        r.text
    );
    let r = api
        .post(EMAIL_KEY, UPDATE_USER, json!({"userId": "ghost"}))
        .await;
    is_error(&r, 400, "UnknownUserIdError");
}

/// `ApiResponseUser` requires `email`, yet in a userID-based project a profile may have none.
/// The emulator's documented choice (README, "the emulator chooses"): the `user` object leaves
/// `email` out rather than invent one; everything else in the answer follows the spec.
#[tokio::test]
async fn by_user_id_in_a_user_id_project_without_email() {
    let api = Api::start().await;
    let r = api
        .post(USERID_KEY, UPDATE_USER, json!({"userId": "no-email"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // Sent without the contract check of `bare`, which would flag the missing email.
    let url = api.h.url("/api/users/byUserId?userId=no-email");
    let r = api
        .h
        .send(api.h.http.get(url).header("Api-Key", USERID_KEY))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mut body = r.json();
    assert_eq!(body["user"]["userId"], "no-email", "{}", r.text);
    assert!(body["user"].get("email").is_none(), "{}", r.text);
    // Apart from the email, the answer is the spec's.
    body["user"]["email"] = json!("");
    let schema = api
        .spec
        .response_schema("GET", BY_USER_ID.1, 200)
        .expect("byUserId has a 200 schema");
    let errors = api.spec.validate(schema, &body);
    assert!(errors.is_empty(), "{}", show(&errors));
}

#[tokio::test]
async fn users_update_refusals_are_envelopes() {
    let api = Api::start().await;
    api.seed(
        HYBRID_PID,
        vec![
            user(Some("a@x.co"), Some("a")),
            user(Some("b@x.co"), Some("b")),
            forgotten(Some("gone@x.co"), None),
        ],
        vec![],
    );
    let r = api
        .post(
            HYBRID_KEY,
            UPDATE_USER,
            json!({"email": "n@x.co", "dataFields": {"n": 1}}),
        )
        .await;
    assert_eq!(r.status, 200);
    let cases = [
        (json!({"email": "000"}), 400, "InvalidEmailAddressError"),
        (json!({"userId": "bad "}), 400, "InvalidUserIdError"),
        (json!({}), 400, "BadParams"),
        (json!({"email": "gone@x.co"}), 409, "ForgottenUserError"),
        (
            json!({"email": "a@x.co", "userId": "b"}),
            409,
            "EmailAlreadyExists",
        ),
        (
            json!({"email": "n@x.co", "dataFields": {"n": "one"}}),
            400,
            "RequestFieldsTypesMismatched",
        ),
        (json!({"email": 5}), 400, "BadJsonBody"),
        (
            json!({"email": "c@x.co", "dataFields": []}),
            400,
            "BadJsonBody",
        ),
    ];
    for (body, status, code) in cases {
        let r = api.post(HYBRID_KEY, UPDATE_USER, body).await;
        is_error(&r, status, code);
    }
    let r = api
        .call(HYBRID_KEY, UPDATE_USER, UPDATE_USER.1, Some("{"))
        .await;
    is_error(&r, 400, "BadJsonBody");
    let r = api
        .post(HYBRID_KEY, UPDATE_USER, json!({"email": "000"}))
        .await;
    assert_eq!(r.json()["msg"], "Invalid email: 000");
}

// ---- auth, rate limits, faults ----------------------------------------------------------------

#[tokio::test]
async fn bad_keys_get_401_bad_api_key_on_every_endpoint() {
    let api = Api::start().await;
    for (op, path) in OPS {
        let body = (op.0 == "POST").then_some("{}");
        for key in ["00000000000000000000000000000000", EU_KEY, ""] {
            let r = api.call(key, op, path, body).await;
            is_error(&r, 401, "BadApiKey");
            assert_eq!(r.json()["msg"], "Invalid API key");
            let bare_path = path.split('?').next().unwrap_or(path);
            assert_eq!(
                r.json()["params"],
                json!({"ip": "127.0.0.1", "endpoint": bare_path})
            );
        }
        // No key at all.
        let url = api.h.url(path);
        let req = match op.0 {
            "GET" => api.h.http.get(url),
            "POST" => api.h.http.post(url).body("{}"),
            _ => api.h.http.delete(url),
        };
        let r = api.h.send(req).await;
        api.conforms(op, &r);
        is_error(&r, 401, "BadApiKey");
    }
}

#[tokio::test]
async fn per_minute_reads_answer_429_rate_limit_exceeded() {
    let api = Api::start().await;
    let id = api.create_list(HYBRID_KEY, "limited").await;
    for (op, path) in [
        (LIST_SIZE, format!("/api/lists/{id}/size")),
        (GET_USERS, format!("/api/lists/getUsers?listId={id}")),
        (
            PREVIEW_USERS,
            format!("/api/lists/previewUsers?listId={id}"),
        ),
    ] {
        // The documented 5 per minute: the sixth call within the minute is refused.
        for _ in 0..5 {
            let r = api.bare(HYBRID_KEY, op, &path).await;
            assert_eq!(r.status, 200, "{path}: {}", r.text);
        }
        let r = api.bare(HYBRID_KEY, op, &path).await;
        is_error(&r, 429, "RateLimitExceeded");
        let bare_path = path.split('?').next().unwrap_or(&path);
        assert_eq!(
            r.json(),
            json!({"msg": format!("Exceeded rate limit for endpoint: {bare_path}, project: {HYBRID_PID} "),
                   "code": "RateLimitExceeded", "params": {}})
        );
        // Never seen from Iterable, so off by default.
        assert_eq!(r.header("retry-after"), None);
        // Another project has its own bucket.
        let r = api
            .bare(USERID_KEY, op, &path.replace(&id.to_string(), "1"))
            .await;
        assert_ne!(r.status, 429, "{}", r.text);
    }
    // The bucket drains.
    api.h.clock.advance(Duration::from_secs(12));
    let r = api
        .bare(HYBRID_KEY, LIST_SIZE, &format!("/api/lists/{id}/size"))
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn configured_limits_answer_429_with_optional_retry_after() {
    let mut config = support::config()
        .with_limit(Endpoint::Subscribe, Some(RateLimit::per_second(1)))
        .with_limit(Endpoint::CreateList, Some(RateLimit::per_second(1)));
    config.retry_after = true;
    let api = Api::with(config).await;
    let id = api.create_list(HYBRID_KEY, "one").await;
    let r = api
        .post(HYBRID_KEY, CREATE_LIST, json!({"name": "two"}))
        .await;
    is_error(&r, 429, "RateLimitExceeded");
    let body = json!({"listId": id, "subscribers": [{"email": "a@x.co"}]});
    let r = api.post(HYBRID_KEY, SUBSCRIBE, body.clone()).await;
    bulk_outcome(&api.spec, &r, 1, 0, &[]);
    let r = api.post(HYBRID_KEY, SUBSCRIBE, body.clone()).await;
    is_error(&r, 429, "RateLimitExceeded");
    let retry: u64 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in whole seconds");
    assert!(retry >= 1);
}

#[tokio::test]
async fn injected_faults_are_envelopes() {
    let api = Api::start().await;
    let id = api.create_list(HYBRID_KEY, "faulty").await;
    api.h
        .emu
        .set_faults(Faults {
            error_500: 1.0,
            ..Faults::default()
        })
        .unwrap();
    let r = api.bare(HYBRID_KEY, GET_LISTS, "/api/lists").await;
    is_error(&r, 500, "GenericError");
    api.h
        .emu
        .set_faults(Faults {
            error_503: 1.0,
            ..Faults::default()
        })
        .unwrap();
    let r = api
        .bare(HYBRID_KEY, LIST_SIZE, &format!("/api/lists/{id}/size"))
        .await;
    assert_eq!(r.status, 503);
    assert!(api.spec.response(LIST_SIZE.0, LIST_SIZE.1, 503).is_some());
    api.h
        .emu
        .set_faults(Faults {
            max_body_bytes: Some(64),
            ..Faults::default()
        })
        .unwrap();
    let rows: Vec<Value> = (0..10)
        .map(|i| json!({"email": format!("user{i}@x.co")}))
        .collect();
    let r = api
        .post(
            HYBRID_KEY,
            SUBSCRIBE,
            json!({"listId": id, "subscribers": rows}),
        )
        .await;
    is_error(&r, 413, "BatchTooLarge");
}

// ---- the contract check itself can fail ------------------------------------------------------

/// A response as the emulator would send it, with Iterable's headers.
fn fake(status: u16, content_type: &str, text: &str) -> Resp {
    let mut headers = reqwest::header::HeaderMap::new();
    for (k, v) in [
        ("content-type", content_type),
        ("request-time", "3"),
        ("server", "iterable-ingress b886"),
        ("vary", "Origin"),
    ] {
        headers.insert(k, v.parse().expect("header value"));
    }
    Resp {
        status,
        headers,
        text: text.to_string(),
    }
}

fn breaches(spec: &Spec, op: Op, r: &Resp) -> bool {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check_contract(spec, op, r))).is_err()
}

#[test]
fn the_contract_check_accepts_conforming_answers() {
    let spec = Spec::vendored();
    let json_ct = "application/json";
    let ok = [
        (GET_LISTS, fake(200, json_ct, r#"{"lists":[]}"#)),
        (LIST_SIZE, fake(200, json_ct, "12")),
        (LIST_SIZE, fake(200, "text/plain", "0")),
        (
            GET_USERS,
            fake(200, "text/plain; charset=utf-8", "a@x.co\nb\n"),
        ),
        (PREVIEW_USERS, fake(200, "text/plain", "")),
        (
            SUBSCRIBE,
            fake(
                400,
                json_ct,
                r#"{"msg":"error.lists.invalidListId(4)","code":"Success","params":{}}"#,
            ),
        ),
        (
            BY_USER_ID,
            fake(
                400,
                json_ct,
                r#"{"msg":"x","code":"error.users.noUserWithIdExists"}"#,
            ),
        ),
        (
            GET_LISTS,
            fake(
                429,
                json_ct,
                r#"{"msg":"x","code":"RateLimitExceeded","params":{}}"#,
            ),
        ),
    ];
    for (op, r) in ok {
        assert!(!breaches(&spec, op, &r), "{op:?} {r:?}");
    }
}

#[test]
fn the_contract_check_rejects_breaches() {
    let spec = Spec::vendored();
    let json_ct = "application/json";
    let envelope = r#"{"msg":"x","code":"BadParams"}"#;
    let mut bad = vec![
        // Bodies that break the 200 schema.
        (GET_LISTS, fake(200, json_ct, r#"{"lists":[{"id":1}]}"#)),
        (CREATE_LIST, fake(200, json_ct, r#"{"listId":"1"}"#)),
        (SUBSCRIBE, fake(200, json_ct, r#"{"successCount":1}"#)),
        (
            DELETE_LIST,
            fake(200, json_ct, r#"{"msg":"","code":"Success","params":null}"#),
        ),
        (
            GET_BY_EMAIL,
            fake(200, json_ct, r#"{"user":{"userId":"u"}}"#),
        ),
        (GET_LISTS, fake(200, "text/plain", r#"{"lists":[]}"#)),
        (GET_LISTS, fake(200, json_ct, "not json")),
        // Text and counts.
        (GET_USERS, fake(200, "text/plain", "a\nb")),
        (GET_USERS, fake(200, "text/plain", "a\n\nb\n")),
        (GET_USERS, fake(200, json_ct, "a\n")),
        (LIST_SIZE, fake(200, json_ct, "1.0")),
        (LIST_SIZE, fake(200, json_ct, "01")),
        (LIST_SIZE, fake(200, json_ct, "")),
        (LIST_SIZE, fake(200, json_ct, r#""3""#)),
        // Statuses and envelopes.
        (GET_LISTS, fake(201, json_ct, r#"{"lists":[]}"#)),
        (SUBSCRIBE, fake(418, json_ct, envelope)),
        (SUBSCRIBE, fake(400, json_ct, r#"{"msg":"x"}"#)),
        (
            SUBSCRIBE,
            fake(400, json_ct, r#"{"msg":"x","code":"Whatever"}"#),
        ),
        (
            SUBSCRIBE,
            fake(
                400,
                json_ct,
                r#"{"msg":"x","code":"BadParams","params":[]}"#,
            ),
        ),
        (SUBSCRIBE, fake(400, "text/plain", envelope)),
        (SUBSCRIBE, fake(400, "text/html", "<html></html>")),
    ];
    // Headers.
    for (name, value) in [
        ("server", "iterable-ingress B886"),
        ("server", "iterable-ingress b88"),
        ("server", "nginx"),
        ("request-time", "12ms"),
        ("request-time", ""),
        ("vary", "Accept-Encoding"),
    ] {
        let mut r = fake(400, json_ct, envelope);
        r.headers.insert(name, value.parse().unwrap());
        bad.push((GET_LISTS, r));
    }
    for name in ["server", "request-time", "content-type"] {
        let mut r = fake(400, json_ct, envelope);
        r.headers.remove(name);
        bad.push((GET_LISTS, r));
    }
    for (op, r) in bad {
        assert!(breaches(&spec, op, &r), "{op:?} {r:?} passed");
    }
}
