//! Behaviour over HTTP: the `/_emulator` inspection endpoints (state, request log, seed,
//! reset, faults), and that API keys never reach them.

mod support;

use serde_json::json;
use support::*;

#[tokio::test]
async fn state_has_the_documented_shape() {
    let h = start().await;
    let id = h.create_list(HYBRID_KEY, "aud").await;
    h.subscribe(
        HYBRID_KEY,
        id,
        json!([{"email": "b@x.co"}, {"email": "a@x.co", "userId": "a"}]),
    )
    .await;
    let r = h.send(h.http.get(h.url("/_emulator/state"))).await;
    assert_eq!(r.status, 200);
    let v = r.json();
    let projects = v["projects"].as_array().unwrap();
    assert_eq!(projects.len(), 4);
    assert_eq!(projects[0]["type"], "hybrid");
    assert_eq!(projects[1]["type"], "userId");
    assert_eq!(projects[2]["type"], "email");
    assert_eq!(projects[3]["region"], "eu");
    let list = &projects[0]["lists"][0];
    assert_eq!(
        (
            list["id"].as_i64(),
            list["name"].as_str(),
            list["listType"].as_str()
        ),
        (Some(id), Some("aud"), Some("Standard"))
    );
    assert_eq!(
        list["members"],
        json!([{"email": "a@x.co", "userId": "a"}, {"email": "b@x.co", "userId": null}])
    );
    let v = h
        .send(h.http.get(h.url(&format!(
            "/_emulator/state?members=false&projectId={HYBRID_PID}"
        ))))
        .await
        .json();
    assert_eq!(v["projects"].as_array().unwrap().len(), 1);
    assert!(v["projects"][0]["lists"][0].get("members").is_none());
    assert_eq!(v["projects"][0]["lists"][0]["size"], 2);
    for key in [HYBRID_KEY, USERID_KEY, EMAIL_KEY, EU_KEY] {
        assert!(!r.text.contains(key));
    }
}

#[tokio::test]
async fn request_log_records_calls_without_keys() {
    let h = start().await;
    let id = h.create_list(HYBRID_KEY, "aud").await;
    h.get(
        HYBRID_KEY,
        &format!("/api/lists/getUsers?listId={id}&api_key={HYBRID_KEY}"),
    )
    .await;
    let r = h.send(h.http.get(h.url("/_emulator/requests"))).await;
    let v = r.json();
    let reqs = v["requests"].as_array().unwrap();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0]["method"], "POST");
    assert_eq!(reqs[0]["path"], "/api/lists");
    assert_eq!(reqs[0]["status"], 200);
    assert_eq!(reqs[0]["body"], r#"{"name":"aud"}"#);
    assert_eq!(reqs[0]["timestamp"], 1_700_000_000_000u64);
    assert_eq!(reqs[0]["projectId"], HYBRID_PID);
    assert_eq!(reqs[1]["path"], "/api/lists/getUsers");
    let v = h
        .send(
            h.http
                .get(h.url("/_emulator/requests?since=1&path=/api/lists/getUsers")),
        )
        .await
        .json();
    assert_eq!(v["requests"].as_array().unwrap().len(), 1);
    // The legacy api_key query parameter is accepted but never logged.
    assert!(!r.text.contains(HYBRID_KEY), "{}", r.text);
    assert!(r.text.contains("api_key=<redacted>"), "{}", r.text);
}

#[tokio::test]
async fn seed_and_reset_over_http() {
    let h = start().await;
    let body = json!({
        "projectId": HYBRID_PID,
        "users": [{"email": "seeded@x.co", "userId": "s1", "dataFields": {"tier": "gold"}}, {"email": "gdpr@x.co", "forgotten": true}],
        "lists": [{"name": "Imported", "listType": "Dynamic", "members": [{"email": "seeded@x.co"}, {"userId": "s2"}]}]
    });
    let r = h
        .send(h.http.post(h.url("/_emulator/seed")).body(body.to_string()))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert_eq!(
        (v["users"].as_u64(), v["forgotten"].as_u64()),
        (Some(1), Some(1))
    );
    let list = v["lists"][0]["id"].as_i64().unwrap();
    assert_eq!(
        h.members(list),
        vec![m(None, Some("s2")), m(Some("seeded@x.co"), Some("s1"))]
    );
    let lists = h.get(HYBRID_KEY, "/api/lists").await.json();
    assert_eq!(lists["lists"][0]["listType"], "Dynamic");
    let user = h
        .get(HYBRID_KEY, "/api/users/getByEmail?email=seeded@x.co")
        .await
        .json();
    assert_eq!(user["user"]["dataFields"]["tier"], "gold");

    for (bad, field) in [
        (json!({"users": []}), "projectId"),
        (json!({"projectId": 1, "users": []}), "projectId"),
        (
            json!({"projectId": HYBRID_PID, "users": [{"email": "nope"}]}),
            "users[0]",
        ),
        (json!({"projectId": HYBRID_PID, "bogus": 1}), "bogus"),
    ] {
        let r = h
            .send(h.http.post(h.url("/_emulator/seed")).body(bad.to_string()))
            .await;
        assert_eq!(r.status, 400, "{bad}");
        assert!(
            r.json()["error"].as_str().unwrap().contains(field),
            "{}",
            r.text
        );
    }

    let r = h.send(h.http.post(h.url("/_emulator/reset"))).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        h.get(HYBRID_KEY, "/api/lists").await.json(),
        json!({"lists": []})
    );
    let v = h
        .send(h.http.get(h.url("/_emulator/requests")))
        .await
        .json();
    assert_eq!(
        v["requests"].as_array().unwrap().len(),
        1,
        "only the call after reset"
    );
    // Forgotten identifiers are cleared too.
    let id = h.create_list(HYBRID_KEY, "again").await;
    assert_eq!(
        h.subscribe(HYBRID_KEY, id, json!([{"email": "gdpr@x.co"}]))
            .await["successCount"],
        1
    );
}

#[tokio::test]
async fn faults_can_be_read_and_changed_at_runtime() {
    let h = start().await;
    let r = h
        .send(
            h.http
                .put(h.url("/_emulator/faults"))
                .body(json!({"error_500": 1.0}).to_string()),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(h.get(HYBRID_KEY, "/api/lists").await.status, 500);
    let r = h
        .send(
            h.http
                .put(h.url("/_emulator/faults"))
                .body(json!({"error_500": 2.0}).to_string()),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("faults.error_500")
    );
    let r = h
        .send(h.http.put(h.url("/_emulator/faults")).body("{}"))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(h.get(HYBRID_KEY, "/api/lists").await.status, 200);
    let r = h.send(h.http.get(h.url("/_emulator/faults"))).await;
    assert_eq!(r.json()["error_500"], 0.0);
    let r = h.send(h.http.get(h.url("/_emulator/nothing"))).await;
    assert_eq!(r.status, 404);
}
