//! Iterable's wire shapes: request bodies, the `IterableApiResponse` error envelope, the
//! `UserBulkUpdateListResponse`, and Play-style `BadJsonBody` errors for bodies of the wrong shape.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// `POST /api/lists` body.
#[derive(Debug, Deserialize)]
pub struct CreateListRequest {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
}

/// One row of `POST /api/lists/subscribe` (`OptionalApiUser`).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscriber {
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub data_fields: Option<Map<String, Value>>,
    #[serde(default)]
    pub prefer_user_id: Option<bool>,
    #[serde(default)]
    pub merge_nested_objects: Option<bool>,
}

/// `POST /api/lists/subscribe` body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscribeRequest {
    pub list_id: i64,
    pub subscribers: Vec<Subscriber>,
    #[serde(default)]
    pub update_existing_users_only: Option<bool>,
}

/// One row of `POST /api/lists/unsubscribe` (`Unsubscriber`).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Unsubscriber {
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub user_id: Option<String>,
}

/// `POST /api/lists/unsubscribe` body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnsubscribeRequest {
    pub list_id: i64,
    pub subscribers: Vec<Unsubscriber>,
    #[serde(default)]
    pub campaign_id: Option<i64>,
    #[serde(default)]
    pub channel_unsubscribe: Option<bool>,
}

/// `POST /api/users/update` body (`ApiUserUpdateRequest`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateUserRequest {
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub data_fields: Option<Map<String, Value>>,
    #[serde(default)]
    pub prefer_user_id: Option<bool>,
    #[serde(default)]
    pub merge_nested_objects: Option<bool>,
    #[serde(default)]
    pub create_new_fields: Option<bool>,
}

/// `FailedUserUpdates`: every bucket is always present, empty when nothing failed there.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedUpdates {
    pub conflict_emails: Vec<String>,
    pub conflict_user_ids: Vec<String>,
    pub forgotten_emails: Vec<String>,
    pub forgotten_user_ids: Vec<String>,
    pub invalid_data_emails: Vec<String>,
    pub invalid_data_user_ids: Vec<String>,
    pub invalid_emails: Vec<String>,
    pub invalid_user_ids: Vec<String>,
    pub not_found_emails: Vec<String>,
    pub not_found_user_ids: Vec<String>,
}

/// `UserBulkUpdateListResponse`, the 200 body of subscribe and unsubscribe.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkResponse {
    pub success_count: u64,
    pub fail_count: u64,
    /// Deprecated: every email of a failed row.
    pub invalid_emails: Vec<String>,
    /// Deprecated: every userId of a failed row.
    pub invalid_user_ids: Vec<String>,
    pub failed_updates: FailedUpdates,
    pub created_fields: Vec<String>,
    pub filtered_out_fields: Vec<String>,
}

/// An error answer in Iterable's envelope `{"msg","code","params"}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub msg: String,
    /// Boxed: errors travel in `Result`s, and a JSON value is large.
    pub params: Box<Value>,
}

impl ApiError {
    pub fn new(status: u16, code: &str, msg: impl Into<String>, params: Value) -> Self {
        Self {
            status,
            code: code.to_string(),
            msg: msg.into(),
            params: Box::new(params),
        }
    }

    pub fn bad_params(msg: impl Into<String>) -> Self {
        Self::new(400, "BadParams", msg, Value::Null)
    }

    /// The body of the answer.
    pub fn body(&self) -> Value {
        serde_json::to_value(self.envelope()).unwrap_or(Value::Null)
    }

    /// The envelope in Iterable's key order (`msg`, `code`, `params`).
    pub fn envelope(&self) -> Envelope<'_> {
        Envelope {
            msg: &self.msg,
            code: &self.code,
            params: &self.params,
        }
    }
}

/// `IterableApiResponse` with its keys in the order Iterable sends them. Iterable sends
/// `"params":null` where it has none, but the spec types `params` as an object, so a null
/// `params` is left out: schema-checked clients accept the answer, lenient ones see no change.
#[derive(Debug, Serialize)]
pub struct Envelope<'a> {
    pub msg: &'a str,
    pub code: &'a str,
    #[serde(skip_serializing_if = "Value::is_null")]
    pub params: &'a Value,
}

/// A JSON type a field of a request body must have.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Str,
    Long,
    Bool,
    Object,
    /// An array whose items are objects of these fields.
    ArrayOf(&'static [Field]),
}

/// One field of a request body shape.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    pub kind: Kind,
    pub required: bool,
}

const fn req(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        kind,
        required: true,
    }
}

const fn opt(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        kind,
        required: false,
    }
}

pub const CREATE_LIST_SHAPE: &[Field] = &[req("name", Kind::Str), opt("description", Kind::Str)];
const SUBSCRIBER_SHAPE: &[Field] = &[
    opt("email", Kind::Str),
    opt("userId", Kind::Str),
    opt("dataFields", Kind::Object),
    opt("preferUserId", Kind::Bool),
    opt("mergeNestedObjects", Kind::Bool),
];
pub const SUBSCRIBE_SHAPE: &[Field] = &[
    req("listId", Kind::Long),
    req("subscribers", Kind::ArrayOf(SUBSCRIBER_SHAPE)),
    opt("updateExistingUsersOnly", Kind::Bool),
];
const UNSUBSCRIBER_SHAPE: &[Field] = &[opt("email", Kind::Str), opt("userId", Kind::Str)];
pub const UNSUBSCRIBE_SHAPE: &[Field] = &[
    req("listId", Kind::Long),
    req("subscribers", Kind::ArrayOf(UNSUBSCRIBER_SHAPE)),
    opt("campaignId", Kind::Long),
    opt("channelUnsubscribe", Kind::Bool),
];
pub const UPDATE_USER_SHAPE: &[Field] = &[
    opt("email", Kind::Str),
    opt("userId", Kind::Str),
    opt("dataFields", Kind::Object),
    opt("preferUserId", Kind::Bool),
    opt("mergeNestedObjects", Kind::Bool),
    opt("createNewFields", Kind::Bool),
];

fn check_kind(v: &Value, kind: Kind, path: &str, errors: &mut Map<String, Value>) {
    let problem = match (kind, v) {
        (Kind::Str, Value::String(_)) | (Kind::Bool, Value::Bool(_)) => None,
        (Kind::Object, Value::Object(_)) => None,
        (Kind::Long, Value::Number(n)) => (!n.is_i64()).then_some("error.expected.long"),
        (Kind::ArrayOf(fields), Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let item_path = format!("{path}[{i}]");
                match item {
                    Value::Object(_) => check_fields(item, fields, &item_path, errors),
                    _ => add_error(errors, &item_path, "error.expected.jsobject"),
                }
            }
            None
        }
        (Kind::Str, _) => Some("error.expected.jsstring"),
        (Kind::Long, _) => Some("error.expected.jsnumber"),
        (Kind::Bool, _) => Some("error.expected.jsboolean"),
        (Kind::Object, _) => Some("error.expected.jsobject"),
        (Kind::ArrayOf(_), _) => Some("error.expected.jsarray"),
    };
    if let Some(p) = problem {
        add_error(errors, path, p);
    }
}

fn add_error(errors: &mut Map<String, Value>, path: &str, msg: &str) {
    let entry = errors
        .entry(path.to_string())
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(a) = entry {
        a.push(json!({"msg": msg, "args": []}));
    }
}

fn check_fields(v: &Value, fields: &[Field], path: &str, errors: &mut Map<String, Value>) {
    for f in fields {
        let field_path = format!("{path}.{}", f.name);
        match v.get(f.name) {
            None | Some(Value::Null) if f.required => {
                let msg = if v.get(f.name).is_none() {
                    "error.path.missing"
                } else {
                    expected_name(f.kind)
                };
                add_error(errors, &field_path, msg);
            }
            None | Some(Value::Null) => {}
            Some(x) => check_kind(x, f.kind, &field_path, errors),
        }
    }
}

fn expected_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Str => "error.expected.jsstring",
        Kind::Long => "error.expected.jsnumber",
        Kind::Bool => "error.expected.jsboolean",
        Kind::Object => "error.expected.jsobject",
        Kind::ArrayOf(_) => "error.expected.jsarray",
    }
}

/// Play's per-path validation errors for `body` against `shape`, keyed like `obj.subscribers[0].email`.
pub fn shape_errors(body: &Value, shape: &[Field]) -> Map<String, Value> {
    let mut errors = Map::new();
    match body {
        Value::Object(_) => check_fields(body, shape, "obj", &mut errors),
        _ => add_error(&mut errors, "obj", "error.expected.jsobject"),
    }
    errors
}

/// The longest part of a body echoed back in a `BadJsonBody` message.
const ECHO_LIMIT: usize = 512;

fn echo(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    if text.len() <= ECHO_LIMIT {
        return text.into_owned();
    }
    let mut end = ECHO_LIMIT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

/// Decodes a request body, or answers as Iterable does: `400 BadJsonBody`, with a message that
/// echoes the route and body (never the headers, which hold the API key) and per-path errors.
pub fn decode<T: DeserializeOwned>(
    route: &str,
    body: &[u8],
    shape: &[Field],
) -> Result<T, ApiError> {
    let typed_err = match serde_json::from_slice::<T>(body) {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return Err(ApiError::new(
                400,
                "BadJsonBody",
                format!("[{route}] Invalid Json: {e}, body: {}", echo(body)),
                json!({"obj": [{"msg": "error.invalid.json", "args": [e.to_string()]}]}),
            ));
        }
    };
    let mut errors = shape_errors(&value, shape);
    if errors.is_empty() {
        add_error(&mut errors, "obj", &typed_err.to_string());
    }
    Err(ApiError::new(
        400,
        "BadJsonBody",
        format!("[{route}] body: {}", echo(body)),
        Value::Object(errors),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errs(body: &str) -> Value {
        decode::<SubscribeRequest>("/api/lists/subscribe", body.as_bytes(), SUBSCRIBE_SHAPE)
            .unwrap_err()
            .params
            .as_ref()
            .clone()
    }

    #[test]
    fn good_bodies_decode() {
        let r: SubscribeRequest = decode(
            "/api/lists/subscribe",
            br#"{"listId":5,"subscribers":[{"email":"a@b.co","dataFields":{"x":1},"extra":true}],"updateExistingUsersOnly":null}"#,
            SUBSCRIBE_SHAPE,
        )
        .unwrap();
        assert_eq!(r.list_id, 5);
        assert_eq!(r.subscribers[0].email.as_deref(), Some("a@b.co"));
        assert_eq!(r.update_existing_users_only, None);
    }

    #[test]
    fn shape_errors_name_each_path() {
        let cases: &[(&str, &str, &str)] = &[
            (r#"{"subscribers":[]}"#, "obj.listId", "error.path.missing"),
            (
                r#"{"listId":null,"subscribers":[]}"#,
                "obj.listId",
                "error.expected.jsnumber",
            ),
            (
                r#"{"listId":"5","subscribers":[]}"#,
                "obj.listId",
                "error.expected.jsnumber",
            ),
            (
                r#"{"listId":1.5,"subscribers":[]}"#,
                "obj.listId",
                "error.expected.long",
            ),
            (r#"{"listId":5}"#, "obj.subscribers", "error.path.missing"),
            (
                r#"{"listId":5,"subscribers":{}}"#,
                "obj.subscribers",
                "error.expected.jsarray",
            ),
            (
                r#"{"listId":5,"subscribers":[5]}"#,
                "obj.subscribers[0]",
                "error.expected.jsobject",
            ),
            (
                r#"{"listId":5,"subscribers":[{},{"email":5}]}"#,
                "obj.subscribers[1].email",
                "error.expected.jsstring",
            ),
            (
                r#"{"listId":5,"subscribers":[{"dataFields":[]}]}"#,
                "obj.subscribers[0].dataFields",
                "error.expected.jsobject",
            ),
            (
                r#"{"listId":5,"subscribers":[{"preferUserId":"yes"}]}"#,
                "obj.subscribers[0].preferUserId",
                "error.expected.jsboolean",
            ),
            (
                r#"{"listId":5,"subscribers":[],"updateExistingUsersOnly":1}"#,
                "obj.updateExistingUsersOnly",
                "error.expected.jsboolean",
            ),
            (r#"[1,2]"#, "obj", "error.expected.jsobject"),
        ];
        for (body, path, msg) in cases {
            let p = errs(body);
            assert_eq!(p[path][0]["msg"], *msg, "{body} -> {p}");
        }
    }

    #[test]
    fn malformed_json_is_bad_json_body() {
        let e =
            decode::<SubscribeRequest>("/api/lists/subscribe", b"{\"listId\":", SUBSCRIBE_SHAPE)
                .unwrap_err();
        assert_eq!((e.status, e.code.as_str()), (400, "BadJsonBody"));
        assert!(
            e.msg.starts_with("[/api/lists/subscribe] Invalid Json"),
            "{}",
            e.msg
        );
    }

    #[test]
    fn create_list_missing_name_matches_recording() {
        let e = decode::<CreateListRequest>("/api/lists", b"{}", CREATE_LIST_SHAPE).unwrap_err();
        assert_eq!(e.msg, "[/api/lists] body: {}");
        assert_eq!(
            e.body(),
            json!({"msg":"[/api/lists] body: {}","code":"BadJsonBody","params":{"obj.name":[{"msg":"error.path.missing","args":[]}]}})
        );
        let e = decode::<CreateListRequest>("/api/lists", br#"{"name":null}"#, CREATE_LIST_SHAPE)
            .unwrap_err();
        assert_eq!(e.params["obj.name"][0]["msg"], "error.expected.jsstring");
    }

    #[test]
    fn long_bodies_are_truncated_in_messages() {
        let body = format!(r#"{{"name":{}}}"#, "1".repeat(5000));
        let e = decode::<CreateListRequest>("/api/lists", body.as_bytes(), CREATE_LIST_SHAPE)
            .unwrap_err();
        assert!(e.msg.len() < 600, "{}", e.msg.len());
    }

    #[test]
    fn bulk_response_has_every_bucket() {
        let v = serde_json::to_value(BulkResponse::default()).unwrap();
        let fu = v["failedUpdates"].as_object().unwrap();
        assert_eq!(fu.len(), 10);
        for k in [
            "successCount",
            "failCount",
            "invalidEmails",
            "invalidUserIds",
            "createdFields",
            "filteredOutFields",
        ] {
            assert!(v.get(k).is_some(), "{k}");
        }
    }
}
