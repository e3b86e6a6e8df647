//! Behaviour over HTTP: authentication, regions, project privacy, and the list endpoints
//! (create, get, delete, size, getUsers, previewUsers) with Iterable's recorded answers.

mod support;

use serde_json::json;
use support::*;

#[tokio::test]
async fn both_key_headers_authenticate_and_bad_keys_get_bad_api_key() {
    let h = start().await;
    for header in ["Api-Key", "Api_Key", "api-key", "API_KEY"] {
        let r = h
            .send(h.http.get(h.url("/api/lists")).header(header, HYBRID_KEY))
            .await;
        assert_eq!(r.status, 200, "{header}: {}", r.text);
        assert_eq!(r.json(), json!({"lists": []}));
    }
    let missing = h.send(h.http.get(h.url("/api/lists"))).await;
    let unknown = h
        .get("0123456789abcdef0123456789abcdef", "/api/lists")
        .await;
    for r in [missing, unknown] {
        assert_eq!(r.status, 401);
        assert_eq!(r.content_type(), "application/json");
        assert_eq!(
            r.json(),
            json!({"msg": "Invalid API key", "code": "BadApiKey", "params": {"ip": "127.0.0.1", "endpoint": "/api/lists"}})
        );
        assert!(
            r.text.starts_with("{\"msg\""),
            "keys in Iterable's order: {}",
            r.text
        );
    }
}

#[tokio::test]
async fn keys_work_only_in_their_own_region() {
    let mut c = config();
    c.listen_eu = Some("127.0.0.1:0".parse().unwrap());
    let h = start_with(c).await;
    // The EU key on the US listener, and the US key sent to the EU host, are refused.
    assert_eq!(h.get(EU_KEY, "/api/lists").await.status, 401);
    let eu_host = |key| {
        h.http
            .get(h.url("/api/lists"))
            .header("Api-Key", key)
            .header("Host", "api.eu.iterable.com")
    };
    assert_eq!(h.send(eu_host(EU_KEY)).await.status, 200);
    assert_eq!(h.send(eu_host(HYBRID_KEY)).await.status, 401);
    // The EU listener acts as api.eu.iterable.com.
    let eu = h.emu.eu_url().expect("eu listener");
    let on_eu = |key| h.http.get(format!("{eu}/api/lists")).header("Api-Key", key);
    assert_eq!(h.send(on_eu(EU_KEY)).await.status, 200);
    assert_eq!(h.send(on_eu(HYBRID_KEY)).await.status, 401);
}

#[tokio::test]
async fn lists_are_private_to_their_project() {
    let h = start().await;
    let id = h.create_list(HYBRID_KEY, "mine").await;
    assert_eq!(
        h.get(USERID_KEY, "/api/lists").await.json(),
        json!({"lists": []})
    );
    let r = h
        .post(
            USERID_KEY,
            "/api/lists/subscribe",
            json!({"listId": id, "subscribers": [{"userId": "u1"}]}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["msg"], format!("error.lists.invalidListId({id})"));
    let r = h.delete(USERID_KEY, &format!("/api/lists/{id}")).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["msg"],
        format!("Unable to delete list {id} in Project {USERID_PID}, which does not exist.")
    );
    let r = h
        .get(USERID_KEY, &format!("/api/lists/getUsers?listId={id}"))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        h.get(HYBRID_KEY, "/api/lists").await.json()["lists"][0]["id"],
        id
    );
}

#[tokio::test]
async fn create_and_get_lists_newest_first_with_ms_timestamps() {
    let h = start().await;
    let a = h.create_list(HYBRID_KEY, "First").await;
    h.clock.advance(std::time::Duration::from_millis(1500));
    let r = h
        .post(
            HYBRID_KEY,
            "/api/lists",
            json!({"name": "First", "description": "again"}),
        )
        .await;
    let b = r.json()["listId"].as_i64().unwrap();
    assert!(b > a && a > 0, "ids grow: {a} then {b}");
    let r = h.get(HYBRID_KEY, "/api/lists").await;
    assert_eq!(r.content_type(), "application/json");
    assert_eq!(
        r.json(),
        json!({"lists": [
            {"id": b, "name": "First", "description": "again", "createdAt": 1_700_000_001_500i64, "listType": "Standard"},
            {"id": a, "name": "First", "createdAt": 1_700_000_000_000i64, "listType": "Standard"},
        ]}),
        "duplicate names are allowed; description absent when unset"
    );
}

#[tokio::test]
async fn create_list_rejects_bad_bodies_like_iterable() {
    let h = start().await;
    let cases = [
        ("{}", "obj.name", "error.path.missing"),
        (r#"{"name":null}"#, "obj.name", "error.expected.jsstring"),
        (r#"{"name":42}"#, "obj.name", "error.expected.jsstring"),
        (
            r#"{"name":"x","description":[]}"#,
            "obj.description",
            "error.expected.jsstring",
        ),
    ];
    for (body, path, msg) in cases {
        let r = h.post_raw(HYBRID_KEY, "/api/lists", body).await;
        assert_eq!(r.status, 400, "{body}");
        let v = r.json();
        assert_eq!(v["code"], "BadJsonBody", "{body}");
        assert_eq!(v["params"][path][0]["msg"], msg, "{body}: {v}");
        assert!(
            v["msg"]
                .as_str()
                .unwrap()
                .starts_with("[/api/lists] body: "),
            "{v}"
        );
    }
    let r = h.post_raw(HYBRID_KEY, "/api/lists", "{\"name\":").await;
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (400, Some("BadJsonBody"))
    );
    let r = h
        .post(HYBRID_KEY, "/api/lists", json!({"name": "  "}))
        .await;
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (400, Some("BadParams"))
    );
    assert_eq!(
        h.get(HYBRID_KEY, "/api/lists").await.json(),
        json!({"lists": []}),
        "nothing created"
    );
}

#[tokio::test]
async fn delete_list_messages_as_recorded() {
    let h = start().await;
    let id = h.create_list(HYBRID_KEY, "gone").await;
    let r = h.delete(HYBRID_KEY, &format!("/api/lists/{id}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        json!({"msg": format!("List {id} in Project {HYBRID_PID} was successfully deleted."), "code": "Success"})
    );
    let r = h.delete(HYBRID_KEY, &format!("/api/lists/{id}")).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        json!({"msg": format!("Unable to delete list {id} in Project {HYBRID_PID}, which does not exist."), "code": "BadParams"})
    );
    let r = h.delete(HYBRID_KEY, "/api/lists/abc").await;
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (400, Some("BadParams"))
    );
    // A list referenced by a campaign cannot be deleted.
    let seeded = h
        .emu
        .seed(&iterable_emulator::SeedRequest {
            project_id: Some(HYBRID_PID),
            lists: vec![iterable_emulator::SeedList {
                name: "used".into(),
                in_use: true,
                ..Default::default()
            }],
            ..Default::default()
        })
        .unwrap();
    let r = h
        .delete(HYBRID_KEY, &format!("/api/lists/{}", seeded.lists[0].id))
        .await;
    assert_eq!(r.status, 409, "{}", r.text);
    // An unknown route is Iterable's HTML 404.
    let r = h.delete(HYBRID_KEY, "/api/lists/").await;
    assert_eq!(r.status, 404);
    assert!(r.content_type().starts_with("text/html"));
    assert!(r.text.contains("Action not found"));
}

#[tokio::test]
async fn size_get_users_and_preview_users() {
    let h = start().await;
    let id = h.create_list(HYBRID_KEY, "readers").await;
    let r = h
        .get(HYBRID_KEY, &format!("/api/lists/getUsers?listId={id}"))
        .await;
    assert_eq!(
        (r.status, r.text.as_str()),
        (200, ""),
        "an empty list has an empty body"
    );
    h.subscribe(
        HYBRID_KEY,
        id,
        json!([{"email": "Both@Example.com", "userId": "both"}, {"email": "only@example.com"}, {"userId": "solo"}]),
    )
    .await;

    let r = h.get(HYBRID_KEY, &format!("/api/lists/{id}/size")).await;
    assert_eq!((r.status, r.text.as_str()), (200, "3"));

    let lines = |text: &str| {
        assert!(text.ends_with('\n'), "each line ends with \\n: {text:?}");
        let mut v: Vec<String> = text.lines().map(str::to_string).collect();
        v.sort();
        v
    };
    let r = h
        .get(HYBRID_KEY, &format!("/api/lists/getUsers?listId={id}"))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type(), "text/plain; charset=utf-8");
    assert_eq!(
        lines(&r.text),
        ["both@example.com", "only@example.com", "solo"]
    );
    let r = h
        .get(
            HYBRID_KEY,
            &format!("/api/lists/getUsers?listId={id}&preferUserId=true"),
        )
        .await;
    assert_eq!(lines(&r.text), ["both", "only@example.com", "solo"]);

    let r = h
        .get(
            HYBRID_KEY,
            &format!("/api/lists/previewUsers?listId={id}&size=2"),
        )
        .await;
    assert_eq!((r.status, r.text.lines().count()), (200, 2));
    assert!(r.content_type().starts_with("text/plain"));
    let r = h
        .get(
            HYBRID_KEY,
            &format!("/api/lists/previewUsers?listId={id}&size=5001"),
        )
        .await;
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (400, Some("BadParams"))
    );
}

#[tokio::test]
async fn reads_of_unknown_lists_and_bad_parameters() {
    let h = start().await;
    let r = h.get(HYBRID_KEY, "/api/lists/getUsers?listId=42").await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        json!({"msg": "Invalid email list id", "code": "BadParams", "params": {"projectId": HYBRID_PID.to_string(), "listId": "42"}})
    );
    let r = h.get(HYBRID_KEY, "/api/lists/42/size").await;
    assert_eq!(r.status, 400);
    let r = h.get(HYBRID_KEY, "/api/lists/getUsers").await;
    assert_eq!(r.status, 400);
    assert!(r.json()["msg"].as_str().unwrap().contains("listId"));
    let r = h.get(HYBRID_KEY, "/api/lists/getUsers?listId=x").await;
    assert!(r.json()["msg"].as_str().unwrap().contains("listId"));
}

#[tokio::test]
async fn every_answer_carries_iterable_headers() {
    let h = start().await;
    let answers = [
        h.get(HYBRID_KEY, "/api/lists").await,
        h.get("nope", "/api/lists").await,
        h.get(HYBRID_KEY, "/api/nothing").await,
        h.get(HYBRID_KEY, "/api/lists/getUsers?listId=1").await,
    ];
    let mut servers = std::collections::HashSet::new();
    for r in &answers {
        assert!(!r.content_type().is_empty());
        let rt = r.header("request-time").expect("Request-Time");
        assert!(rt.parse::<u64>().is_ok(), "{rt}");
        let server = r.header("server").expect("Server");
        let suffix = server.strip_prefix("iterable-ingress ").expect(server);
        assert!(
            suffix.len() == 4 && suffix.chars().all(|c| c.is_ascii_hexdigit()),
            "{server}"
        );
        servers.insert(server.to_string());
    }
    assert_eq!(servers.len(), 1, "one node per emulator");
}
