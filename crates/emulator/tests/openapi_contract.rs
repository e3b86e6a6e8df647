//! Contract tests: every list endpoint (and the user lookups) answers with the shapes of
//! Iterable's OpenAPI spec, vendored in `spec/`, over real HTTP; errors use `IterableApiResponse`.

mod support;

use serde_json::{Value, json};
use support::openapi::{response_schema, spec, validate};
use support::*;

/// Asserts `r` is JSON matching the spec's schema for the operation and status.
fn conforms(spec: &Value, method: &str, path: &str, r: &Resp) {
    assert!(
        r.content_type().starts_with("application/json"),
        "{method} {path}: {}",
        r.content_type()
    );
    let schema = response_schema(spec, method, path, r.status)
        .unwrap_or_else(|| panic!("spec has no {} schema for {method} {path}", r.status));
    let errors = validate(spec, schema, &r.json());
    assert!(
        errors.is_empty(),
        "{method} {path} {}: {errors:?}\n{}",
        r.status,
        r.text
    );
}

/// Asserts an error answer is an `IterableApiResponse`, with Iterable's headers.
fn is_envelope(spec: &Value, r: &Resp, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", r.text);
    let errors = validate(
        spec,
        &json!({"$ref": "#/definitions/IterableApiResponse"}),
        &r.json(),
    );
    let code_is_enum = errors.is_empty();
    // Iterable's own non-enum codes (e.g. "error.users.noUserWithIdExists") are allowed.
    assert!(
        code_is_enum || errors.iter().all(|e| e.contains(".code")),
        "{errors:?}"
    );
    assert_eq!(r.json()["code"], code);
    assert!(r.json()["msg"].is_string());
    headers_present(r);
}

fn headers_present(r: &Resp) {
    assert!(!r.content_type().is_empty());
    assert!(
        r.header("request-time")
            .and_then(|v| v.parse::<u64>().ok())
            .is_some()
    );
    let server = r.header("server").unwrap_or("");
    assert!(server.starts_with("iterable-ingress "), "{server}");
}

#[test]
fn the_validator_rejects_what_it_should() {
    let s = spec();
    let bulk = json!({"$ref": "#/definitions/UserBulkUpdateListResponse"});
    assert!(validate(&s, &bulk, &json!({"successCount": 1, "failCount": 0})).is_empty());
    let bad = [
        (json!({"successCount": 1}), "missing required failCount"),
        (
            json!({"successCount": "1", "failCount": 0}),
            "expected integer",
        ),
        (
            json!({"successCount": 1, "failCount": 0, "createdFields": ["a", "a"]}),
            "duplicate",
        ),
        (
            json!({"successCount": 1, "failCount": 0, "failedUpdates": {"invalidEmails": "x"}}),
            "expected array",
        ),
        (json!([]), "expected object"),
    ];
    for (v, want) in bad {
        let errors = validate(&s, &bulk, &v);
        assert!(errors.iter().any(|e| e.contains(want)), "{v}: {errors:?}");
    }
    let list = json!({"$ref": "#/definitions/ListDetails"});
    let errors = validate(
        &s,
        &list,
        &json!({"id": 1, "name": "x", "createdAt": 5, "listType": "Smart"}),
    );
    assert!(
        errors.iter().any(|e| e.contains("is not one of")),
        "{errors:?}"
    );
    let errors = validate(&s, &json!({"$ref": "#/definitions/Nope"}), &json!({}));
    assert!(
        errors.iter().any(|e| e.contains("unresolvable")),
        "{errors:?}"
    );
}

#[tokio::test]
async fn list_endpoints_match_the_spec() {
    let s = spec();
    let h = start().await;
    let r = h
        .post(
            HYBRID_KEY,
            "/api/lists",
            json!({"name": "contract", "description": "d"}),
        )
        .await;
    conforms(&s, "POST", "/api/lists", &r);
    let id = r.json()["listId"].as_i64().unwrap();
    h.emu
        .seed(&iterable_emulator::SeedRequest {
            project_id: Some(HYBRID_PID),
            lists: vec![iterable_emulator::SeedList {
                name: "suppressed".into(),
                list_type: iterable_emulator::ListType::Suppression,
                ..Default::default()
            }],
            ..Default::default()
        })
        .unwrap();
    let r = h.get(HYBRID_KEY, "/api/lists").await;
    conforms(&s, "GET", "/api/lists", &r);
    assert_eq!(r.json()["lists"][0]["isGlobalSuppressionEnabled"], false);

    for (key, rows) in [
        (
            HYBRID_KEY,
            json!([{"email": "a@x.co", "userId": "a", "dataFields": {"n": 1}}, {"email": "bad@"}, {"userId": "x "}]),
        ),
        (
            USERID_KEY,
            json!([{"userId": "u1", "preferUserId": true}, {"email": "only@x.co"}]),
        ),
        (
            EMAIL_KEY,
            json!([{"email": "e@x.co"}, {"userId": "ghost"}, {"userId": "made", "preferUserId": true}]),
        ),
    ] {
        let list = if key == HYBRID_KEY {
            id
        } else {
            h.create_list(key, "contract").await
        };
        let r = h
            .post(
                key,
                "/api/lists/subscribe",
                json!({"listId": list, "subscribers": rows}),
            )
            .await;
        conforms(&s, "POST", "/api/lists/subscribe", &r);
        assert!(r.json()["failCount"].as_u64().unwrap() >= 1);
        let r = h
            .post(key, "/api/lists/unsubscribe", json!({"listId": list, "subscribers": [{"email": "nobody@x.co"}, {"userId": "u1"}], "campaignId": 1, "channelUnsubscribe": false}))
            .await;
        conforms(&s, "POST", "/api/lists/unsubscribe", &r);
    }

    // text/plain reads and the bare count.
    for path in [
        format!("/api/lists/getUsers?listId={id}"),
        format!("/api/lists/previewUsers?listId={id}&size=10"),
    ] {
        let r = h.get(HYBRID_KEY, &path).await;
        assert_eq!(r.status, 200);
        assert!(r.content_type().starts_with("text/plain"), "{path}");
        assert!(r.text.is_empty() || r.text.ends_with('\n'));
        assert_eq!(r.text.lines().count(), 1, "{path}: {:?}", r.text);
        headers_present(&r);
    }
    let r = h.get(HYBRID_KEY, &format!("/api/lists/{id}/size")).await;
    assert_eq!((r.status, r.text.as_str()), (200, "1"));
    assert!(
        response_schema(&s, "GET", "/api/lists/{listId}/size", 200)
            .is_some_and(|x| x["type"] == "string")
    );

    let r = h.delete(HYBRID_KEY, &format!("/api/lists/{id}")).await;
    conforms(&s, "DELETE", "/api/lists/{listId}", &r);
}

#[tokio::test]
async fn user_endpoints_match_the_spec() {
    let s = spec();
    let h = start().await;
    let r = h
        .post(
            HYBRID_KEY,
            "/api/users/update",
            json!({"email": "u@x.co", "userId": "u", "dataFields": {"a": [1]}}),
        )
        .await;
    conforms(&s, "POST", "/api/users/update", &r);
    let r = h
        .get(HYBRID_KEY, "/api/users/getByEmail?email=u@x.co")
        .await;
    conforms(&s, "GET", "/api/users/getByEmail", &r);
    let r = h
        .get(HYBRID_KEY, "/api/users/getByEmail?email=none@x.co")
        .await;
    conforms(&s, "GET", "/api/users/getByEmail", &r);
    let r = h.get(HYBRID_KEY, "/api/users/byUserId?userId=u").await;
    conforms(&s, "GET", "/api/users/byUserId", &r);
}

#[tokio::test]
async fn errors_are_iterable_api_responses() {
    let s = spec();
    let mut c = config().with_limit(
        iterable_emulator::Endpoint::Subscribe,
        Some(iterable_emulator::RateLimit::per_second(1)),
    );
    c.retry_after = false;
    let h = start_with(c).await;
    let r = h
        .post(
            HYBRID_KEY,
            "/api/lists/subscribe",
            json!({"listId": 42, "subscribers": []}),
        )
        .await;
    is_envelope(&s, &r, 400, "Success");
    let r = h
        .post(
            HYBRID_KEY,
            "/api/lists/subscribe",
            json!({"listId": 42, "subscribers": []}),
        )
        .await;
    is_envelope(&s, &r, 429, "RateLimitExceeded");
    let r = h.post_raw(HYBRID_KEY, "/api/lists", "{").await;
    is_envelope(&s, &r, 400, "BadJsonBody");
    let r = h
        .get("00000000000000000000000000000000", "/api/lists")
        .await;
    is_envelope(&s, &r, 401, "BadApiKey");
    let r = h.delete(HYBRID_KEY, "/api/lists/1").await;
    is_envelope(&s, &r, 400, "BadParams");
    let r = h.get(HYBRID_KEY, "/api/lists/getUsers?listId=1").await;
    is_envelope(&s, &r, 400, "BadParams");
    let r = h.get(HYBRID_KEY, "/api/lists/1/size").await;
    is_envelope(&s, &r, 400, "BadParams");
    let r = h.get(HYBRID_KEY, "/api/users/byUserId?userId=none").await;
    is_envelope(&s, &r, 400, "error.users.noUserWithIdExists");
    let r = h
        .post(HYBRID_KEY, "/api/users/update", json!({"email": "000"}))
        .await;
    is_envelope(&s, &r, 400, "InvalidEmailAddressError");
}
