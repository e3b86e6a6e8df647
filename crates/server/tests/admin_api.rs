//! The JSON admin API as a user calls it: the service and the emulator on ephemeral ports,
//! events in through the ingestion API, then every view over HTTP with the admin token, the
//! actions (pause and resume, retry a rejected user after fixing its cause in the emulator),
//! the auth, and the OpenAPI document: every admin route in it with its method, and the
//! document valid for `openapi-spec-validator` (installed from PyPI into a venv, at the pins
//! of `tests/openapi/requirements.txt`, under `$CARGO_TARGET_TMPDIR/openapi`, on first use;
//! this needs `python3` with `venv`, and PyPI the first time).

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use iterable_emulator::inspect::{SeedRequest, SeedUser};
use serde_json::{Value, json};
use support::*;
use testkit::INSTALL_TIMEOUT;

const TOKEN: &str = "admin-token-for-the-admin-api-tests";
const OPENAPI_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/openapi");
const NEEDS: &str = "the OpenAPI validation test (crates/server/tests/admin_api.rs) needs python3 \
                     with the venv module on the PATH, and PyPI the first time";

async fn start() -> Harness {
    Harness::start_top(&format!("admin_token = \"{TOKEN}\""), "").await
}

async fn call(
    h: &Harness,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
) -> (u16, String) {
    let mut r = h.http.request(method, h.url(path));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let r = r.send().await.expect("send");
    let status = r.status().as_u16();
    (status, r.text().await.expect("body"))
}

async fn get(h: &Harness, path: &str) -> Value {
    let (s, t) = call(h, reqwest::Method::GET, path, Some(TOKEN)).await;
    assert_eq!(s, 200, "GET {path}: {t}");
    serde_json::from_str(&t).unwrap_or_else(|e| panic!("GET {path}: {e}: {t}"))
}

async fn post(h: &Harness, path: &str) -> Value {
    let (s, t) = call(h, reqwest::Method::POST, path, Some(TOKEN)).await;
    assert_eq!(s, 200, "POST {path}: {t}");
    serde_json::from_str(&t).unwrap_or_else(|e| panic!("POST {path}: {e}: {t}"))
}

/// Polls `path` (up to 30 s) until `done` holds for its answer; returns it.
async fn wait_for(h: &Harness, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = get(h, path).await;
        if done(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "GET {path} never got there: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the event has a final status in every audience; returns its JSON.
async fn wait_final(h: &Harness, message_id: &str) -> Value {
    let v = wait_for(h, &format!("/v1/admin/events/{message_id}"), |v| {
        v["events"][0]["audiences"].as_array().is_some_and(|a| {
            a.iter()
                .all(|x| !matches!(x["status"].as_str(), Some("accepted" | "pending")))
        })
    })
    .await;
    v["events"][0].clone()
}

async fn ingest(h: &Harness, events: Vec<Value>) {
    let (s, v) = h.post("/v1/batch", &json!({ "batch": events })).await;
    assert_eq!(s, 200, "{v}");
}

const VIP: &str = "vip_users";
const AUD: &str = "/v1/admin/destinations/prod/audiences/vip_users";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_show_the_numbers_and_a_rejected_user_is_retried_once_fixed() {
    let h = start().await;
    // gone@ is GDPR-forgotten in Iterable: its subscribe is rejected.
    h.emu
        .seed(&SeedRequest {
            users: vec![SeedUser {
                email: Some("gone@example.com".into()),
                forgotten: true,
                ..SeedUser::default()
            }],
            ..SeedRequest::default()
        })
        .expect("seed");
    let mut events: Vec<Value> = ["ann", "bob", "cy"]
        .iter()
        .map(|n| {
            identify(
                &format!("m-{n}"),
                n,
                Some(&format!("{n}@example.com")),
                VIP,
                true,
            )
        })
        .collect();
    events.push(identify(
        "m-gone",
        "gone",
        Some("gone@example.com"),
        VIP,
        true,
    ));
    ingest(&h, events).await;
    h.wait_list(
        VIP,
        &["ann@example.com", "bob@example.com", "cy@example.com"],
    )
    .await;
    let gone = wait_final(&h, "m-gone").await;
    assert_eq!(gone["audiences"][0]["status"], "rejected", "{gone}");

    // The overview: the figures snapshot is at most a second old.
    let o = wait_for(&h, "/v1/admin/overview", |v| {
        v["destinations"][0]["members"] == 3 && v["destinations"][0]["rejected"] == 1
    })
    .await;
    let d = &o["destinations"][0];
    assert_eq!(d["name"], "prod");
    assert_eq!(d["state"]["state"], "running");
    assert_eq!(d["audiences"], 1);
    assert_eq!(d["queue"]["pending"], 0);
    assert!(d["operatorPause"].is_null());
    assert!(d["ingestedPerMinute"].is_array() && d["errors"].is_array());
    assert!(o["warnings"].is_array());

    let v = get(&h, "/v1/admin/destinations/prod").await;
    let row = &v["audiences"]["rows"][0];
    assert_eq!(
        (&row["audienceKey"], &row["members"], &row["rejected"]),
        (&json!(VIP), &json!(3), &json!(1))
    );
    assert!(row["listId"].is_i64());
    assert_eq!(v["audiences"]["total"], 1);
    assert_eq!(v["settings"]["apiKeySet"], true);
    let text = v.to_string();
    for secret in [KEY, WRITE_KEY, TOKEN] {
        assert!(!text.contains(secret), "a secret in the destination view");
    }

    let a = get(&h, AUD).await;
    assert_eq!(a["audience"]["members"], 3);
    assert_eq!(a["destination"], "prod");

    let page = get(&h, &format!("{AUD}/rejected?limit=10")).await;
    let rows = page["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 1, "{page}");
    assert_eq!(rows[0]["email"], "gone@example.com");
    assert!(
        rows[0]["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "Iterable's reason: {page}"
    );
    assert!(page["nextAfter"].is_null());
    let none = get(&h, &format!("{AUD}/rejected?filter=nobody")).await;
    assert_eq!(none["rows"], json!([]));

    let (s, csv) = call(
        &h,
        reqwest::Method::GET,
        &format!("{AUD}/rejected.csv"),
        Some(TOKEN),
    )
    .await;
    assert_eq!(s, 200);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "email,userId,change,reason,seq,accepted,rejected");
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(lines[1].starts_with("gone@example.com,gone,add,"), "{csv}");

    let u = get(&h, "/v1/admin/users?email=Bob@Example.com").await;
    let ua = &u["audiences"][0];
    assert_eq!(
        (&ua["state"], &ua["member"]),
        (&json!("delivered"), &json!(true))
    );
    assert_eq!(ua["desiredBy"]["messageId"], "m-bob");
    assert_eq!(ua["acknowledgedBy"]["messageId"], "m-bob");
    assert_eq!(ua["acknowledgedMember"], true);
    assert!(u["nextAfter"].is_null(), "one audience, one page: {u}");
    let u = get(&h, "/v1/admin/users?userId=gone").await;
    assert_eq!(u["audiences"][0]["state"], "rejected");

    let e = get(&h, "/v1/admin/events/m-ann").await;
    assert_eq!(e["events"][0]["audiences"][0]["status"], "delivered");
    assert_eq!(e["events"][0]["messageId"], "m-ann");

    // Errors name what is wrong.
    let bad_cursor = format!("{AUD}/rejected?after=%25%25");
    let cases: [(&str, u16, Option<&str>); 6] = [
        ("/v1/admin/destinations/nope", 404, None),
        ("/v1/admin/destinations/prod/audiences/nope", 404, None),
        ("/v1/admin/events/nope", 404, None),
        ("/v1/admin/destinations/prod?limit=0", 400, Some("limit")),
        ("/v1/admin/users", 400, Some("email")),
        (&bad_cursor, 400, Some("after")),
    ];
    for (path, status, field) in cases {
        let (s, t) = call(&h, reqwest::Method::GET, path, Some(TOKEN)).await;
        assert_eq!(s, status, "{path}: {t}");
        let v: Value = serde_json::from_str(&t).expect("json");
        assert_eq!(v["success"], false);
        assert_eq!(v["field"].as_str(), field, "{path}: {t}");
    }

    // Fixed in Iterable; then sent again, one user: the list gets it.
    h.emu.unforget(Some("gone@example.com"), None);
    let r = post(&h, &format!("{AUD}/retry-rejected?email=gone@example.com")).await;
    assert_eq!(r["count"], 1, "{r}");
    h.wait_list(
        VIP,
        &[
            "ann@example.com",
            "bob@example.com",
            "cy@example.com",
            "gone@example.com",
        ],
    )
    .await;
    let gone = wait_final(&h, "m-gone").await;
    assert_eq!(gone["audiences"][0]["status"], "delivered", "{gone}");
    let page = wait_for(&h, &format!("{AUD}/rejected"), |v| v["rows"] == json!([])).await;
    assert!(page["nextAfter"].is_null());
    // Nothing is left to retry.
    let r = post(&h, &format!("{AUD}/retry-rejected?all=true")).await;
    assert_eq!(r["count"], 0, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_destination_sends_nothing_until_resumed() {
    let h = start().await;
    ingest(
        &h,
        vec![identify("p1", "ann", Some("ann@example.com"), VIP, true)],
    )
    .await;
    h.wait_list(VIP, &["ann@example.com"]).await;

    let r = post(&h, "/v1/admin/destinations/prod/pause?reason=list+cleanup").await;
    let who = server::admin::token_id(TOKEN);
    assert_eq!(r["operatorPause"]["by"], who.as_str());
    assert_eq!(r["operatorPause"]["reason"], "list cleanup");
    let o = wait_for(&h, "/v1/admin/overview", |v| {
        !v["destinations"][0]["operatorPause"].is_null()
    })
    .await;
    assert_eq!(o["destinations"][0]["operatorPause"]["by"], who.as_str());

    ingest(
        &h,
        vec![identify("p2", "bob", Some("bob@example.com"), VIP, true)],
    )
    .await;
    // Stored and pending; nothing reaches Iterable while paused (the loop looks for work as
    // soon as events are stored, and every coordination tick, which is well within this).
    wait_for(&h, "/v1/admin/users?email=bob@example.com", |v| {
        v["audiences"][0]["state"] == "pending"
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        h.list(VIP),
        Some(["ann@example.com".to_string()].into_iter().collect()),
        "nothing sent while paused"
    );
    let e = get(&h, "/v1/admin/events/p2").await;
    assert_eq!(e["events"][0]["audiences"][0]["status"], "accepted", "{e}");

    let r = post(&h, "/v1/admin/destinations/prod/resume").await;
    assert!(r["operatorPause"].is_null(), "{r}");
    assert_eq!(r["state"]["state"], "running");
    h.wait_list(VIP, &["ann@example.com", "bob@example.com"])
        .await;

    let k = post(&h, "/v1/admin/destinations/prod/check-key").await;
    assert_eq!(k["ok"], true, "{k}");
    assert_eq!(k["lists"], 1, "{k}");

    // Verify against the live list: in sync; a member removed by hand is found missing, and
    // the repair sends it again.
    let v = post(&h, &format!("{AUD}/verify")).await;
    assert_eq!(
        (&v["inSync"], &v["missing"]),
        (&json!(true), &json!(0)),
        "{v}"
    );
    let list = h
        .emu
        .state(false)
        .into_iter()
        .flat_map(|p| p.lists)
        .find(|l| l.name == VIP)
        .expect("list")
        .id;
    let c = reqwest::Client::new();
    let r = c
        .post(format!("{}/api/lists/unsubscribe", h.emu.url()))
        .header("Api-Key", KEY)
        .header("Content-Type", "application/json")
        .body(json!({"listId": list, "subscribers": [{"email": "bob@example.com"}]}).to_string())
        .send()
        .await
        .expect("unsubscribe by hand");
    assert!(r.status().is_success());
    h.wait_list(VIP, &["ann@example.com"]).await;
    let v = post(&h, &format!("{AUD}/verify?repair=true")).await;
    assert_eq!(
        (&v["missing"], &v["reopened"]),
        (&json!(1), &json!(1)),
        "{v}"
    );
    h.wait_list(VIP, &["ann@example.com", "bob@example.com"])
        .await;
    let a = get(&h, AUD).await;
    assert_eq!(a["lastVerify"]["missing"], 1, "{a}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_key_shows_as_a_pause_with_its_reason() {
    let emu = emulator(iterable_emulator::Faults::default()).await;
    let dir = temp_dir("admin-401");
    let config = format!(
        "admin_token = \"{TOKEN}\"\n{}",
        config_text(&dir.join("db.sqlite"), &emu.url(), "")
    )
    .replace(KEY, "ffffffffffffffffffffffffffffffff");
    let cfg = server::Config::parse(&config, &|_| None).expect("config");
    let svc = server::RunningService::start(cfg).await.expect("service");
    let h = Harness {
        emu,
        svc: Some(svc),
        dir,
        http: http(),
        config,
        pg: None,
    };
    ingest(
        &h,
        vec![identify("k1", "ann", Some("ann@example.com"), VIP, true)],
    )
    .await;
    let o = wait_for(&h, "/v1/admin/overview", |v| {
        v["destinations"][0]["state"]["state"] == "paused"
    })
    .await;
    let state = &o["destinations"][0]["state"];
    assert!(
        state["reason"].as_str().is_some_and(|r| r.contains("401")),
        "{state}"
    );
    assert!(state["sinceMs"].is_i64());
    assert!(
        o["destinations"][0]["errors"][0]["count"].as_u64() >= Some(1),
        "{o}"
    );
    // Resume checks the key now: still refused, still paused, and it says so.
    let r = post(&h, "/v1/admin/destinations/prod/resume").await;
    assert_eq!(r["state"]["state"], "paused", "{r}");
    assert!(
        r["message"]
            .as_str()
            .is_some_and(|m| m.contains("still refuses")),
        "{r}"
    );
    let k = post(&h, "/v1/admin/destinations/prod/check-key").await;
    assert_eq!(k["ok"], false);
    assert!(
        k["message"].as_str().is_some_and(|m| m.contains("refused")),
        "{k}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_needs_the_token() {
    let h = start().await;
    for (method, path) in [
        (reqwest::Method::GET, "/v1/admin/overview"),
        (reqwest::Method::GET, "/v1/admin/destinations/prod"),
        (reqwest::Method::POST, "/v1/admin/destinations/prod/pause"),
        (reqwest::Method::GET, &format!("{AUD}/rejected.csv") as &str),
    ] {
        for token in [None, Some("wrong-token")] {
            let (s, t) = call(&h, method.clone(), path, token).await;
            assert_eq!(s, 401, "{method} {path} with {token:?}: {t}");
        }
    }
    // Nothing was paused by the refused calls.
    let o = get(&h, "/v1/admin/overview").await;
    assert!(o["destinations"][0]["operatorPause"].is_null());
    // The document is public: it describes the API and holds no data.
    let (s, _) = call(&h, reqwest::Method::GET, "/v1/openapi.json", None).await;
    assert_eq!(s, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_route_is_in_the_openapi_document_with_its_method() {
    let h = start().await;
    let (s, text) = call(&h, reqwest::Method::GET, "/v1/openapi.json", None).await;
    assert_eq!(s, 200);
    let doc: Value = serde_json::from_str(&text).expect("json");
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "{}",
        doc["openapi"]
    );
    let routes = server::http::admin_route_table();
    assert!(routes.len() >= 20, "{routes:?}");
    let mut missing = Vec::new();
    for (method, path) in &routes {
        let m = method.as_str().to_lowercase();
        if !doc["paths"][*path][&m].is_object() {
            missing.push(format!("{method} {path}"));
        }
    }
    assert!(missing.is_empty(), "not in the document: {missing:?}");
    // And every GET route is served (not the 404 of a path not served) with the token.
    for (method, path) in &routes {
        if *method != reqwest::Method::GET {
            continue;
        }
        let concrete = path
            .replace("{destination}", "prod")
            .replace("{audience}", "nope")
            .replace("{message_id}", "nope");
        let (s, t) = call(&h, method.clone(), &concrete, Some(TOKEN)).await;
        assert!(
            matches!(s, 200 | 400 | 404) && !t.contains("no such endpoint"),
            "{method} {concrete}: {s} {t}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_validates() {
    let doc = server::http::openapi_document()
        .to_pretty_json()
        .expect("json");
    let dir = temp_dir("openapi");
    fs::create_dir_all(&dir).expect("dir");
    let good = dir.join("openapi.json");
    fs::write(&good, &doc).expect("write");
    let venv = tokio::task::spawn_blocking(validator)
        .await
        .expect("install");
    let (ok, out) = validate(&venv, &good);
    assert!(
        ok && out.trim() == "OK",
        "the document does not validate:\n{out}"
    );
    // The validator does find faults: a path item with an unknown key fails.
    let mut broken: Value = serde_json::from_str(&doc).expect("json");
    broken["paths"]["/v1/admin/overview"]["get"]["responses"] = json!("none");
    let bad = dir.join("broken.json");
    fs::write(&bad, broken.to_string()).expect("write");
    let (ok, out) = validate(&venv, &bad);
    assert!(!ok, "a broken document passed: {out}");
    let _ = fs::remove_dir_all(&dir);
}

fn validate(venv: &Path, doc: &Path) -> (bool, String) {
    let mut cmd = Command::new(venv.join("bin").join("python"));
    cmd.arg(Path::new(OPENAPI_DIR).join("validate.py")).arg(doc);
    let out = testkit::run(cmd, Duration::from_secs(120), "validate.py", NEEDS)
        .unwrap_or_else(|e| panic!("{e}"));
    (out.ok, format!("{}{}", out.stdout, out.stderr))
}

/// `$CARGO_TARGET_TMPDIR/openapi/venv`, a venv with requirements.txt installed.
fn validator() -> PathBuf {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DIR.get_or_init(install_validator)
        .clone()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn install_validator() -> Result<PathBuf, String> {
    let python = testkit::version_of("python3", &["--version"], NEEDS)?;
    let requirements_path = Path::new(OPENAPI_DIR).join("requirements.txt");
    let requirements = fs::read_to_string(&requirements_path)
        .map_err(|e| format!("read {}: {e}", requirements_path.display()))?;
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("openapi");
    fs::create_dir_all(&root).map_err(|e| format!("create {}: {e}", root.display()))?;
    let dir = root.join("venv");
    let marker = format!("{python}\n{requirements}");
    testkit::cached_install(&dir, &marker, "OpenAPI validator", || {
        let mut venv = Command::new("python3");
        venv.args(["-m", "venv"]).arg(&dir);
        testkit::expect_success(
            testkit::run(venv, INSTALL_TIMEOUT, "python3 -m venv", NEEDS)?,
            "python3 -m venv (on Debian, the python3-venv package provides it)",
        )?;
        let mut pip = Command::new(dir.join("bin").join("python"));
        pip.args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--quiet",
            "-r",
        ])
        .arg(&requirements_path);
        testkit::expect_success(
            testkit::run(pip, INSTALL_TIMEOUT, "pip install", NEEDS)?,
            "pip install",
        )
    })?;
    Ok(dir)
}
