//! `audience verify` as an operator runs it beside the service: drift made by hand in the
//! (emulated) Iterable project, members removed and added directly through its API, is found
//! (text and `--json`, exit 1) and fixed by `--repair` (the service sends the corrections; the
//! list ends equal to the audience), on SQLite and PostgreSQL, by email or by userId; a second
//! `verify` finds nothing; with `verify_every` and `verify_repair`, the service does it by
//! itself and shows it in its metrics.

mod drift_support;
mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use drift_support::*;
use iterable_emulator::{Emulator, EmulatorConfig, ProjectConfig, ProjectType, RunningEmulator};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_made_by_hand_is_found_and_repaired() {
    drift_found_and_repaired(None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_made_by_hand_is_found_and_repaired_on_postgres() {
    let schema = testkit::postgres::PgSchema::create("verify");
    drift_found_and_repaired(Some(schema.url())).await
}

/// The drift test, on SQLite or on the PostgreSQL database `postgres`.
async fn drift_found_and_repaired(postgres: Option<String>) {
    let emu = emulator().await;
    let dir = support::temp_dir();
    std::fs::create_dir_all(&dir).expect("dir");
    let cfg = match &postgres {
        Some(url) => config_on(&dir, url, &emu.url(), ""),
        None => config(&dir, &emu.url()),
    };
    let (child, url) = support::start(&cfg, &dir.join("serve.log"));
    let _svc = Running(child);

    let audience = [
        "a@example.com",
        "b@example.com",
        "c@example.com",
        "d@example.com",
    ];
    let mut events: Vec<(&str, bool)> = audience.iter().map(|e| (*e, true)).collect();
    events.extend([("f@example.com", true), ("f@example.com", false)]);
    send(&url, &events).await;
    let list_id = until_list(&emu, &set(&audience)).await;

    // In sync: exit 0.
    let o = verify(&cfg, &[]);
    assert!(
        o.status.success(),
        "{} {}",
        text(&o.stdout),
        text(&o.stderr)
    );
    assert!(text(&o.stdout).contains("in sync"), "{}", text(&o.stdout));

    // By hand in Iterable: two members removed, the leaver and a stranger added.
    by_hand(
        &emu,
        "unsubscribe",
        list_id,
        &["b@example.com", "c@example.com"],
    )
    .await;
    by_hand(
        &emu,
        "subscribe",
        list_id,
        &["f@example.com", "zed@example.com"],
    )
    .await;

    let o = verify(&cfg, &["--json"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "drift exits 1: {}",
        text(&o.stderr)
    );
    let v: Value = serde_json::from_slice(&o.stdout).expect("json report");
    assert_eq!(
        (
            &v["list_id"],
            &v["in_iterable"],
            &v["acknowledged"],
            &v["missing"],
            &v["extra"],
            &v["extra_unknown"],
            &v["in_sync"]
        ),
        (
            &json!(list_id),
            &json!(4),
            &json!(4),
            &json!(2),
            &json!(2),
            &json!(1),
            &json!(false)
        ),
        "{v}"
    );
    let samples = |k: &str| -> BTreeSet<String> {
        v[k].as_array()
            .expect("samples")
            .iter()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect()
    };
    assert_eq!(
        samples("missing_samples"),
        set(&["b@example.com", "c@example.com"])
    );
    assert_eq!(
        samples("extra_samples"),
        set(&["f@example.com", "zed@example.com"])
    );
    // Progress as JSON lines on stderr.
    let progress: Vec<Value> = text(&o.stderr)
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: a JSON progress line: {l:?}"))
        })
        .collect();
    assert!(
        progress
            .iter()
            .any(|p| p["phase"] == "reading" && p["done"] == 4),
        "{progress:?}"
    );
    assert_eq!(
        until_list(
            &emu,
            &set(&[
                "a@example.com",
                "d@example.com",
                "f@example.com",
                "zed@example.com"
            ])
        )
        .await,
        list_id,
        "verify alone changes nothing"
    );

    // Repair: the running service sends the corrections.
    let o = verify(&cfg, &["--repair"]);
    assert!(
        o.status.success(),
        "{} {}",
        text(&o.stdout),
        text(&o.stderr)
    );
    let out = text(&o.stdout);
    assert!(
        out.contains("repaired: 3 keys pending again, 1 unsubscribes stored"),
        "{out}"
    );
    assert!(
        text(&o.stderr).contains("audience verify: reading: 4/4 identifiers (100%)"),
        "plain progress lines when not a terminal: {}",
        text(&o.stderr)
    );
    assert_eq!(until_list(&emu, &set(&audience)).await, list_id);
    assert_eq!(lists(&emu, "vip").len(), 1, "one list per audience");
    // The service's status shows that verify: when, with repair, what it found and did.
    let st: Value = http()
        .get(format!("{url}/v1/status"))
        .send()
        .await
        .expect("status")
        .text()
        .await
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .expect("status json");
    let vip = st["destinations"][0]["audiences"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["audience"] == "vip"))
        .unwrap_or_else(|| panic!("vip in {st}"));
    let last = &vip["lastVerify"];
    assert_eq!(
        (
            &last["repair"],
            &last["inSync"],
            &last["missing"],
            &last["extra"],
            &last["reopened"],
            &last["unsubscribes"],
            &last["error"]
        ),
        (
            &json!(true),
            &json!(false),
            &json!(2),
            &json!(2),
            &json!(3),
            &json!(1),
            &Value::Null
        ),
        "{vip}"
    );
    assert!(
        last["at"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{last}"
    );

    let o = verify(&cfg, &[]);
    assert!(
        o.status.success(),
        "{} {}",
        text(&o.stdout),
        text(&o.stderr)
    );
    assert!(text(&o.stdout).contains("in sync"), "{}", text(&o.stdout));
    // `status` shows the last one: in sync now.
    let o = std::process::Command::new(BIN)
        .args(["status", "--config"])
        .arg(&cfg)
        .output()
        .expect("run status");
    let out = text(&o.stdout);
    assert!(o.status.success(), "{out} {}", text(&o.stderr));
    assert!(
        out.lines().any(|l| l.contains("last verify of vip:")
            && l.contains("in sync (4 in Iterable, 4 acknowledged)")),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_audience_or_destination_is_named() {
    let emu = emulator().await;
    let dir = support::temp_dir();
    std::fs::create_dir_all(&dir).expect("dir");
    let cfg = config(&dir, &emu.url());
    // The database exists once the service ran.
    let (child, _url) = support::start(&cfg, &dir.join("serve.log"));
    drop(Running(child));
    let o = verify(&cfg, &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("audience \"vip\" of destination \"prod\" has no list yet"),
        "{}",
        text(&o.stderr)
    );
    let memory = config_on(&dir, "sqlite::memory:", &emu.url(), "");
    let o = verify(&memory, &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("in-memory database"),
        "{}",
        text(&o.stderr)
    );
    let cfg = config(&dir, &emu.url());
    let o = verify(&cfg, &["--destination", "nope"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("--destination: no destination named \"nope\""),
        "{}",
        text(&o.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_verify_repairs_drift_and_reports_it_in_the_metrics() {
    let emu = emulator().await;
    let dir = support::temp_dir();
    std::fs::create_dir_all(&dir).expect("dir");
    let cfg = config_with(
        &dir,
        &emu.url(),
        "verify_every = \"1s\"\nverify_repair = true\n",
    );
    let log = dir.join("serve.log");
    let (child, url) = support::start(&cfg, &log);
    let _svc = Running(child);
    let audience = ["a@example.com", "b@example.com"];
    let events: Vec<(&str, bool)> = audience.iter().map(|e| (*e, true)).collect();
    send(&url, &events).await;
    let list_id = until_list(&emu, &set(&audience)).await;

    by_hand(&emu, "unsubscribe", list_id, &["b@example.com"]).await;
    by_hand(&emu, "subscribe", list_id, &["zed@example.com"]).await;
    // Found, and repaired, by the service alone.
    assert_eq!(until_list(&emu, &set(&audience)).await, list_id);
    let logged = std::fs::read_to_string(&log).expect("log");
    // Found as one drift, or two if a verify ran between the two changes by hand.
    assert!(
        logged.contains("the Iterable list drifted from the audience: "),
        "{logged}"
    );
    let mut metrics = String::new();
    for _ in 0..200 {
        metrics = http()
            .get(format!("{url}/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text");
        if metrics.contains(
            r#"iterable_lists_drift_members{destination="prod",audience="vip",kind="missing"} 0"#,
        ) && metrics.contains(
            r#"iterable_lists_drift_members{destination="prod",audience="vip",kind="extra"} 0"#,
        ) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        metrics.contains(
            r#"iterable_lists_drift_members{destination="prod",audience="vip",kind="missing"} 0"#
        ),
        "the next verify finds it in sync: {metrics}"
    );
    assert!(
        metrics.contains(
            r#"iterable_lists_drift_verified_timestamp_seconds{destination="prod",audience="vip"} "#
        ),
        "{metrics}"
    );
    // The scheduled verify is the audience's last verify in the status, with repair.
    let st: Value = http()
        .get(format!("{url}/v1/status"))
        .send()
        .await
        .expect("status")
        .text()
        .await
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .expect("status json");
    let last = &st["destinations"][0]["audiences"][0]["lastVerify"];
    assert_eq!(
        (&last["repair"], &last["error"]),
        (&json!(true), &Value::Null),
        "{st}"
    );
    assert!(last["atMs"].as_i64().is_some_and(|t| t > 0), "{st}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The userIds of the one list named `vip`, once it holds exactly `want`.
async fn until_user_ids(emu: &RunningEmulator, want: &BTreeSet<String>) -> i64 {
    let mut last = Vec::new();
    for _ in 0..600 {
        last = emu
            .state(true)
            .iter()
            .flat_map(|p| p.lists.iter())
            .filter(|l| l.name == "vip")
            .map(|l| {
                let ids: BTreeSet<String> = l
                    .members
                    .iter()
                    .flatten()
                    .filter_map(|m| m.user_id.clone())
                    .collect();
                (l.id, ids)
            })
            .collect();
        if let [(id, ids)] = last.as_slice()
            && ids == want
        {
            return *id;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the list never held {want:?}; lists: {last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_id_project_is_verified_by_user_id() {
    let mut c =
        EmulatorConfig::default().with_project(ProjectConfig::new(ProjectType::UserId, KEY));
    c.listen = "127.0.0.1:0".parse().expect("addr");
    let emu = Emulator::start(c).await.expect("emulator");
    let dir = support::temp_dir();
    std::fs::create_dir_all(&dir).expect("dir");
    let cfg = config_with(&dir, &emu.url(), "project_type = \"userId\"\n");
    let (child, url) = support::start(&cfg, &dir.join("serve.log"));
    let _svc = Running(child);
    let batch: Vec<Value> = ["u1", "u2", "u3"]
        .iter()
        .enumerate()
        .map(|(i, u)| {
            json!({"type": "identify", "messageId": format!("id-{u}"), "userId": u,
                   "timestamp": format!("2026-12-01T00:00:0{i}.000Z"),
                   "traits": {"vip": true},
                   "context": {"personas": {"computation_key": "vip",
                                            "computation_class": "audience"}}})
        })
        .collect();
    let r = http()
        .post(format!("{url}/v1/batch"))
        .basic_auth(WRITE_KEY, Some(""))
        .header("Content-Type", "application/json")
        .body(json!({ "batch": batch }).to_string())
        .send()
        .await
        .expect("send");
    assert!(r.status().is_success());
    let all = set(&["u1", "u2", "u3"]);
    let list_id = until_user_ids(&emu, &all).await;

    // By hand: u2 removed, u9 added.
    for (path, user) in [("unsubscribe", "u2"), ("subscribe", "u9")] {
        let r = http()
            .post(format!("{}/api/lists/{path}", emu.url()))
            .header("Api-Key", KEY)
            .header("Content-Type", "application/json")
            .body(json!({"listId": list_id, "subscribers": [{"userId": user}]}).to_string())
            .send()
            .await
            .expect("by hand");
        assert!(r.status().is_success(), "{:?}", r.text().await);
    }
    let o = verify(&cfg, &["--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(
        (
            &v["missing_samples"],
            &v["extra_samples"],
            &v["extra_unknown"]
        ),
        (&json!(["u2"]), &json!(["u9"]), &json!(1)),
        "{v}"
    );
    let o = verify(&cfg, &["--repair"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(until_user_ids(&emu, &all).await, list_id);
    let _ = std::fs::remove_dir_all(&dir);
}
