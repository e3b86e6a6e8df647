//! A list deleted in Iterable, as an operator meets it beside the service: it is created
//! again and refilled, one list per audience, and `audience verify` finds the new one in sync;
//! with `on_list_deleted = "pause"` it is not created again.

mod drift_support;
mod support;

use std::process::Command;
use std::time::Duration;

use drift_support::*;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_deleted_in_iterable_is_created_again_and_refilled() {
    let emu = emulator().await;
    let dir = support::temp_dir();
    std::fs::create_dir_all(&dir).expect("dir");
    let seeded = seed_vip(&emu);
    let cfg = config(&dir, &emu.url());
    let log = dir.join("serve.log");
    let (child, url) = support::start(&cfg, &log);
    let _svc = Running(child);
    let audience = ["a@example.com", "b@example.com", "c@example.com"];
    let mut events: Vec<(&str, bool)> = audience.iter().map(|e| (*e, true)).collect();
    events.extend([("f@example.com", true), ("f@example.com", false)]);
    send(&url, &events).await;
    let old = until_list(&emu, &set(&audience)).await;
    assert_eq!(old, seeded);

    delete_list(&emu, old).await;
    // The next change of the audience meets the deleted list.
    send_from(&url, &[("e@example.com", true)], 10).await;
    let all = set(&[
        "a@example.com",
        "b@example.com",
        "c@example.com",
        "e@example.com",
    ]);
    let new = until_list(&emu, &all).await;
    assert_ne!(new, old, "a new list");
    assert_eq!(lists(&emu, "vip").len(), 1, "one list per audience");
    let logged = std::fs::read_to_string(&log).expect("log");
    assert!(
        logged.contains(&format!(
            "list {old} was deleted in Iterable: created list {new}"
        )),
        "{logged}"
    );
    // The new list is the registry's: verify reads it and finds it in sync.
    let o = verify(&cfg, &["--json"]);
    assert!(
        o.status.success(),
        "{} {}",
        text(&o.stdout),
        text(&o.stderr)
    );
    let v: Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(
        (&v["list_id"], &v["in_iterable"]),
        (&json!(new), &json!(4)),
        "{v}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_pause_a_deleted_list_is_not_created_again() {
    let emu = emulator().await;
    let dir = support::temp_dir();
    std::fs::create_dir_all(&dir).expect("dir");
    let seeded = seed_vip(&emu);
    let cfg = config_with(&dir, &emu.url(), "on_list_deleted = \"pause\"\n");
    let (child, url) = support::start(&cfg, &dir.join("serve.log"));
    let _svc = Running(child);
    send(&url, &[("a@example.com", true)]).await;
    let old = until_list(&emu, &set(&["a@example.com"])).await;
    assert_eq!(old, seeded);
    delete_list(&emu, old).await;
    send_from(&url, &[("e@example.com", true)], 10).await;
    // The event waits, its last error Iterable's answer; no list comes back.
    let mut last = Value::Null;
    for _ in 0..600 {
        let o = Command::new(BIN)
            .args(["events", "show", "m-e@example.com-10", "--json", "--config"])
            .arg(&cfg)
            .output()
            .expect("events show");
        if o.status.success() {
            last = serde_json::from_slice(&o.stdout).expect("json");
            let reason = last["audiences"][0]["reason"].as_str().unwrap_or("");
            if last["audiences"][0]["status"] == "pending"
                && reason.contains("invalidListId")
                && !reason.contains("created moments ago")
            {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(last["audiences"][0]["status"], "pending", "{last}");
    let reason = last["audiences"][0]["reason"].as_str().unwrap_or("");
    assert!(
        reason.contains("invalidListId") && !reason.contains("created moments ago"),
        "{last}"
    );
    assert!(lists(&emu, "vip").is_empty(), "not re-created");
    let _ = std::fs::remove_dir_all(&dir);
}
