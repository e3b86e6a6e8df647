//! Behaviour over HTTP: subscribe and unsubscribe with each project type's identity rules,
//! per-user failure buckets, forgotten users, data fields, and the users endpoints.

mod support;

use iterable_emulator::{SeedRequest, SeedUser};
use serde_json::{Value, json};
use support::*;

fn seed(h: &Harness, project: u64, users: Vec<SeedUser>) {
    h.emu
        .seed(&SeedRequest {
            project_id: Some(project),
            users,
            ..Default::default()
        })
        .expect("seeded");
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

/// The non-empty failure buckets of a bulk response.
fn failed(v: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for (k, arr) in v["failedUpdates"].as_object().expect("failedUpdates") {
        if arr.as_array().is_some_and(|a| !a.is_empty()) {
            out.insert(k.clone(), arr.clone());
        }
    }
    Value::Object(out)
}

fn counts(v: &Value) -> (u64, u64) {
    (
        v["successCount"].as_u64().unwrap(),
        v["failCount"].as_u64().unwrap(),
    )
}

#[tokio::test]
async fn hybrid_creates_by_either_id_lowercases_and_is_idempotent() {
    let h = start().await;
    let id = h.create_list(HYBRID_KEY, "a").await;
    let rows = json!([
        {"email": "Mixed.Case@Example.COM", "userId": "u1"},
        {"email": "email-only@example.com"},
        {"userId": "id-only"}
    ]);
    let v = h.subscribe(HYBRID_KEY, id, rows.clone()).await;
    assert_eq!(counts(&v), (3, 0));
    assert_eq!(failed(&v), json!({}));
    assert_eq!(v["invalidEmails"], json!([]));
    // Subscribing members again succeeds and changes nothing.
    let v = h.subscribe(HYBRID_KEY, id, rows).await;
    assert_eq!(counts(&v), (3, 0));
    assert_eq!(
        h.members(id),
        vec![
            m(None, Some("id-only")),
            m(Some("email-only@example.com"), None),
            m(Some("mixed.case@example.com"), Some("u1")),
        ]
    );
    // The email later attaches to the userId-only profile instead of creating another.
    h.subscribe(
        HYBRID_KEY,
        id,
        json!([{"email": "late@example.com", "userId": "id-only"}]),
    )
    .await;
    assert_eq!(h.emu.state(false)[0].users, 3);
}

#[tokio::test]
async fn invalid_identifiers_land_in_invalid_buckets() {
    let h = start().await;
    let id = h.create_list(HYBRID_KEY, "a").await;
    let long = "x".repeat(53);
    let v = h
        .subscribe(
            HYBRID_KEY,
            id,
            json!([
                {"email": "user@"},
                {"email": "user @example.com"},
                {"userId": long},
                {"userId": "trailing "},
                {"userId": "tab\tid"},
                {"userId": ""},
                {"email": "ok@example.com", "userId": "fine"},
                {}
            ]),
        )
        .await;
    assert_eq!(counts(&v), (1, 7));
    assert_eq!(
        failed(&v),
        json!({
            "invalidEmails": ["user@", "user @example.com"],
            "invalidUserIds": [long, "trailing ", "tab\tid", ""]
        })
    );
    assert_eq!(
        v["invalidEmails"],
        json!(["user@", "user @example.com"]),
        "deprecated mirror"
    );
    assert_eq!(
        v["invalidUserIds"],
        json!([long, "trailing ", "tab\tid", ""])
    );
    assert_eq!(h.members(id), vec![m(Some("ok@example.com"), Some("fine"))]);
}

#[tokio::test]
async fn hybrid_conflicts_when_ids_belong_to_different_profiles() {
    let h = start().await;
    seed(
        &h,
        HYBRID_PID,
        vec![
            user(Some("a@x.co"), Some("u1")),
            user(Some("b@x.co"), Some("u2")),
            user(Some("c@x.co"), Some("u3")),
        ],
    );
    let id = h.create_list(HYBRID_KEY, "a").await;
    let v = h
        .subscribe(
            HYBRID_KEY,
            id,
            json!([
                {"email": "a@x.co", "userId": "u2"},
                {"email": "c@x.co", "userId": "u-new"},
                {"email": "b@x.co", "userId": "u2"}
            ]),
        )
        .await;
    assert_eq!(counts(&v), (1, 2));
    assert_eq!(
        failed(&v),
        json!({"conflictEmails": ["a@x.co"], "conflictUserIds": ["u-new"]})
    );
    assert_eq!(v["invalidEmails"], json!(["a@x.co", "c@x.co"]));
    assert_eq!(v["invalidUserIds"], json!(["u2", "u-new"]));
    assert_eq!(h.members(id), vec![m(Some("b@x.co"), Some("u2"))]);
}

#[tokio::test]
async fn update_existing_users_only_reports_not_found() {
    let h = start().await;
    seed(&h, HYBRID_PID, vec![user(Some("known@x.co"), None)]);
    seed(&h, USERID_PID, vec![user(None, Some("known"))]);
    for (key, rows, want_failed, want_member) in [
        (
            HYBRID_KEY,
            json!([{"email": "known@x.co"}, {"email": "new@x.co", "userId": "n1"}]),
            json!({"notFoundEmails": ["new@x.co"], "notFoundUserIds": ["n1"]}),
            m(Some("known@x.co"), None),
        ),
        (
            USERID_KEY,
            json!([{"userId": "known"}, {"userId": "stranger"}]),
            json!({"notFoundUserIds": ["stranger"]}),
            m(None, Some("known")),
        ),
    ] {
        let id = h.create_list(key, "a").await;
        let r = h
            .post(
                key,
                "/api/lists/subscribe",
                json!({"listId": id, "subscribers": rows, "updateExistingUsersOnly": true}),
            )
            .await;
        let v = r.json();
        assert_eq!(counts(&v), (1, 1), "{v}");
        assert_eq!(failed(&v), want_failed);
        assert_eq!(h.members(id), vec![want_member]);
    }
}

#[tokio::test]
async fn user_id_projects_identify_by_user_id_only() {
    let h = start().await;
    let id = h.create_list(USERID_KEY, "a").await;
    let v = h
        .subscribe(
            USERID_KEY,
            id,
            json!([{"email": "noid@x.co"}, {"userId": "u1", "email": "Shared@x.co"}, {"userId": "u2", "email": "shared@x.co"}]),
        )
        .await;
    assert_eq!(counts(&v), (2, 1));
    assert_eq!(failed(&v), json!({"notFoundEmails": ["noid@x.co"]}));
    assert_eq!(
        h.members(id),
        vec![
            m(Some("shared@x.co"), Some("u1")),
            m(Some("shared@x.co"), Some("u2"))
        ],
        "email is not unique in userID-based projects"
    );
}

#[tokio::test]
async fn email_projects_use_placeholders_only_with_prefer_user_id() {
    let h = start().await;
    let id = h.create_list(EMAIL_KEY, "a").await;
    let r = h
        .post(
            EMAIL_KEY,
            "/api/lists/subscribe",
            json!({"listId": id, "updateExistingUsersOnly": true, "subscribers": [
                {"email": "new@x.co", "userId": "dup"},
                {"email": "other@x.co", "userId": "dup"},
                {"userId": "ghost"},
                {"userId": "made", "preferUserId": true}
            ]}),
        )
        .await;
    let v = r.json();
    assert_eq!(
        counts(&v),
        (3, 1),
        "updateExistingUsersOnly is ignored here: {v}"
    );
    assert_eq!(failed(&v), json!({"notFoundUserIds": ["ghost"]}));
    let members = h.members(id);
    assert_eq!(members.len(), 3);
    assert!(members.contains(&m(Some("new@x.co"), Some("dup"))));
    assert!(
        members.contains(&m(Some("other@x.co"), Some("dup"))),
        "userId is not unique here"
    );
    let made = members
        .iter()
        .find(|x| x.1.as_deref() == Some("made"))
        .unwrap();
    let email = made.0.as_deref().unwrap();
    assert!(email.ends_with("@placeholder.email"), "{email}");
    // An existing userId is found without preferUserId.
    let v = h
        .subscribe(EMAIL_KEY, id, json!([{"userId": "made"}]))
        .await;
    assert_eq!(counts(&v), (1, 0));
}

#[tokio::test]
async fn forgotten_users_are_refused_and_never_created() {
    let h = start().await;
    seed(&h, HYBRID_PID, vec![user(Some("gone@x.co"), Some("g1"))]);
    let id = h.create_list(HYBRID_KEY, "a").await;
    h.subscribe(HYBRID_KEY, id, json!([{"email": "gone@x.co"}]))
        .await;
    seed(
        &h,
        HYBRID_PID,
        vec![
            forgotten(Some("gone@x.co"), Some("g1")),
            forgotten(None, Some("g2")),
        ],
    );
    assert_eq!(
        h.members(id),
        vec![],
        "forgetting removes the profile from lists"
    );
    let v = h
        .subscribe(HYBRID_KEY, id, json!([{"email": "Gone@x.co"}, {"userId": "g2"}, {"userId": "g1", "email": "fresh@x.co"}]))
        .await;
    assert_eq!(counts(&v), (0, 3));
    assert_eq!(
        failed(&v),
        json!({"forgottenEmails": ["gone@x.co"], "forgottenUserIds": ["g2", "g1"]})
    );
    let r = h
        .post(
            HYBRID_KEY,
            "/api/lists/unsubscribe",
            json!({"listId": id, "subscribers": [{"email": "gone@x.co"}]}),
        )
        .await;
    assert_eq!(failed(&r.json()), json!({"forgottenEmails": ["gone@x.co"]}));
    assert_eq!(h.emu.state(false)[0].users, 0);
}

#[tokio::test]
async fn data_fields_merge_create_fields_and_reject_type_changes() {
    let h = start().await;
    let id = h.create_list(HYBRID_KEY, "a").await;
    let v = h
        .subscribe(
            HYBRID_KEY,
            id,
            json!([
                {"email": "a@x.co", "dataFields": {"plan": "pro", "seats": 3, "prefs": {"sms": true}}},
                {"email": "b@x.co", "dataFields": {"plan": "free", "trial": true}}
            ]),
        )
        .await;
    assert_eq!(
        v["createdFields"],
        json!(["plan", "seats", "prefs", "trial"]),
        "new fields in the order they arrived"
    );
    let v = h
        .subscribe(
            HYBRID_KEY,
            id,
            json!([
                {"email": "a@x.co", "dataFields": {"prefs": {"email": false}}, "mergeNestedObjects": true},
                {"email": "c@x.co", "userId": "c1", "dataFields": {"seats": "three"}}
            ]),
        )
        .await;
    assert_eq!(counts(&v), (1, 1));
    assert_eq!(v["createdFields"], json!([]));
    assert_eq!(
        failed(&v),
        json!({"invalidDataEmails": ["c@x.co"], "invalidDataUserIds": ["c1"]})
    );
    let r = h
        .get(HYBRID_KEY, "/api/users/getByEmail?email=A%40x.co")
        .await;
    let d = &r.json()["user"]["dataFields"];
    assert_eq!(d["plan"], "pro");
    assert_eq!(d["seats"], 3);
    assert_eq!(d["prefs"], json!({"sms": true, "email": false}));
    assert_eq!(d["userListIds"], json!([id]));
    assert_eq!(h.members(id).len(), 2, "the rejected row was not added");
}

#[tokio::test]
async fn subscribe_edge_cases() {
    let h = start().await;
    let r = h
        .post(
            HYBRID_KEY,
            "/api/lists/subscribe",
            json!({"listId": 77, "subscribers": [{"email": "a@x.co"}]}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        json!({"msg": "error.lists.invalidListId(77)", "code": "Success", "params": {"projectId": HYBRID_PID, "listId": 77}})
    );
    let id = h.create_list(HYBRID_KEY, "a").await;
    let v = h.subscribe(HYBRID_KEY, id, json!([])).await;
    assert_eq!(counts(&v), (0, 0));
    let r = h
        .post_raw(
            HYBRID_KEY,
            "/api/lists/subscribe",
            &format!(r#"{{"listId":{id},"subscribers":[{{"email":7}}]}}"#),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["code"], "BadJsonBody");
    assert_eq!(
        r.json()["params"]["obj.subscribers[0].email"][0]["msg"],
        "error.expected.jsstring"
    );
    let r = h
        .post_raw(HYBRID_KEY, "/api/lists/subscribe", "not json")
        .await;
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (400, Some("BadJsonBody"))
    );
    // Only static lists accept subscribers.
    let seeded = h
        .emu
        .seed(&SeedRequest {
            project_id: Some(HYBRID_PID),
            lists: vec![iterable_emulator::SeedList {
                name: "dyn".into(),
                list_type: iterable_emulator::ListType::Dynamic,
                ..Default::default()
            }],
            ..Default::default()
        })
        .unwrap();
    let r = h
        .post(
            HYBRID_KEY,
            "/api/lists/subscribe",
            json!({"listId": seeded.lists[0].id, "subscribers": [{"email": "a@x.co"}]}),
        )
        .await;
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (400, Some("BadParams"))
    );
}

#[tokio::test]
async fn unsubscribe_removes_and_reports_unknown_users() {
    let h = start().await;
    seed(&h, HYBRID_PID, vec![user(Some("outsider@x.co"), None)]);
    let id = h.create_list(HYBRID_KEY, "a").await;
    h.subscribe(
        HYBRID_KEY,
        id,
        json!([{"email": "a@x.co", "userId": "a"}, {"email": "b@x.co"}]),
    )
    .await;
    let r = h
        .post(
            HYBRID_KEY,
            "/api/lists/unsubscribe",
            json!({"listId": id, "subscribers": [
                {"userId": "a"}, {"email": "outsider@x.co"}, {"email": "nobody@x.co"}, {"userId": "nobody"}, {"email": "bad@"}
            ]}),
        )
        .await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(
        counts(&v),
        (2, 3),
        "a non-member who exists is a success: {v}"
    );
    assert_eq!(
        failed(&v),
        json!({"notFoundEmails": ["nobody@x.co"], "notFoundUserIds": ["nobody"], "invalidEmails": ["bad@"]})
    );
    assert_eq!(h.members(id), vec![m(Some("b@x.co"), None)]);
    // Exit then enter again leaves the user on the list.
    h.subscribe(HYBRID_KEY, id, json!([{"userId": "a"}])).await;
    assert_eq!(
        h.members(id),
        vec![m(Some("a@x.co"), Some("a")), m(Some("b@x.co"), None)]
    );
    let r = h
        .post(
            HYBRID_KEY,
            "/api/lists/unsubscribe",
            json!({"listId": 99, "subscribers": []}),
        )
        .await;
    assert_eq!(
        (r.status, r.json()["msg"].as_str()),
        (400, Some("error.lists.invalidListId(99)"))
    );
    let r = h
        .post(
            HYBRID_KEY,
            "/api/lists/unsubscribe",
            json!({"listId": id, "subscribers": [{"email": "b@x.co"}], "campaignId": "x"}),
        )
        .await;
    assert_eq!(
        r.json()["params"]["obj.campaignId"][0]["msg"],
        "error.expected.jsnumber"
    );
}

#[tokio::test]
async fn channel_unsubscribe_opts_the_user_out_of_the_channel() {
    let h = start().await;
    let id = h.create_list(HYBRID_KEY, "a").await;
    h.subscribe(
        HYBRID_KEY,
        id,
        json!([{"email": "a@x.co"}, {"email": "b@x.co"}]),
    )
    .await;
    let r = h
        .post(
            HYBRID_KEY,
            "/api/lists/unsubscribe",
            json!({"listId": id, "subscribers": [{"email": "a@x.co"}], "channelUnsubscribe": true, "campaignId": 123}),
        )
        .await;
    assert_eq!(counts(&r.json()), (1, 0));
    let a = h
        .get(HYBRID_KEY, "/api/users/getByEmail?email=a@x.co")
        .await
        .json();
    assert_eq!(
        a["user"]["dataFields"]["unsubscribedChannelIds"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let b = h
        .get(HYBRID_KEY, "/api/users/getByEmail?email=b@x.co")
        .await
        .json();
    assert!(
        b["user"]["dataFields"]
            .get("unsubscribedChannelIds")
            .is_none()
    );
}

#[tokio::test]
async fn users_endpoints_inspect_and_seed_profiles() {
    let h = start().await;
    assert_eq!(
        h.get(HYBRID_KEY, "/api/users/getByEmail?email=none@x.co")
            .await
            .json(),
        json!({})
    );
    let r = h.get(HYBRID_KEY, "/api/users/byUserId?userId=none").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["msg"], "No user with that id exists!");

    let ok = h
        .post(
            HYBRID_KEY,
            "/api/users/update",
            json!({"email": "P@x.co", "userId": "p1", "dataFields": {"n": 1}}),
        )
        .await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.text, r#"{"msg":"","code":"Success"}"#);
    let v = h
        .get(HYBRID_KEY, "/api/users/byUserId?userId=p1")
        .await
        .json();
    assert_eq!(v["user"]["email"], "p@x.co");
    assert_eq!(v["user"]["dataFields"]["n"], 1);
    assert_eq!(v["user"]["dataFields"]["userListIds"], json!([]));

    let cases = [
        (
            json!({"email": "000"}),
            400,
            "InvalidEmailAddressError",
            "Invalid email: 000",
        ),
        (
            json!({"userId": "p1", "dataFields": {"n": "one"}}),
            400,
            "RequestFieldsTypesMismatched",
            "",
        ),
        (
            json!({"email": "p@x.co", "userId": "other"}),
            409,
            "UserIdAlreadyExists",
            "Email/userId conflict",
        ),
        (
            json!({"dataFields": {}}),
            400,
            "BadParams",
            "Must provide email or userId",
        ),
    ];
    for (body, status, code, msg) in cases {
        let r = h.post(HYBRID_KEY, "/api/users/update", body.clone()).await;
        assert_eq!(
            (r.status, r.json()["code"].as_str()),
            (status, Some(code)),
            "{body}"
        );
        if !msg.is_empty() {
            assert_eq!(r.json()["msg"], msg);
        }
    }
    seed(&h, HYBRID_PID, vec![forgotten(Some("f@x.co"), None)]);
    let r = h
        .post(HYBRID_KEY, "/api/users/update", json!({"email": "f@x.co"}))
        .await;
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (409, Some("ForgottenUserError"))
    );
    let r = h
        .post(
            HYBRID_KEY,
            "/api/users/update",
            json!({"userId": "p1", "dataFields": {"n": "one"}}),
        )
        .await;
    assert_eq!(
        r.json()["params"]["validationErrors"]["n"]["expectedType"],
        "number"
    );
}
