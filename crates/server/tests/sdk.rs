//! Real clients: the official Segment SDKs for Python (`segment-analytics-python`) and Node
//! (`@segment/analytics-node`), pointed at the service, deliver Engage identify and track
//! audience events; the emulator's lists end up exactly right.
//!
//! The senders are `tests/sdk/send.py` and `tests/sdk/send.mjs`; both send the events of
//! `tests/sdk/scenario.json`. The SDKs are installed on first use, at the versions pinned in
//! `tests/sdk/requirements.txt` and `tests/sdk/package.json` (+ `package-lock.json`), into
//! `$CARGO_TARGET_TMPDIR/sdk/{py,node}`, and reused while the pins, the interpreter and the
//! lock file are unchanged. This needs `python3` (with `venv`), `node` >= 20 and `npm` on the
//! PATH, and PyPI and the npm registry the first time; without them the tests fail, saying so.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use support::{Harness, KEY, WRITE_KEY};
use testkit::INSTALL_TIMEOUT;

const SDK_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk");
const NEEDS: &str = "the SDK tests (crates/server/tests/sdk.rs) need python3 with the venv \
                     module, node >= 20 and npm on the PATH";
const SEND_TIMEOUT: Duration = Duration::from_secs(120);

const VIP: &str = "sdk_vip_users";
const CART: &str = "sdk_cart_abandoners";
/// What scenario.json leaves: cy exits the VIPs; hal exits (never having entered), then enters;
/// eve enters, exits and enters the cart abandoners again; gus enters and exits. Fay's email
/// arrives as `Fay@Example.COM`.
const VIP_MEMBERS: &[&str] = &[
    "ann@example.com",
    "bob@example.com",
    "fay@example.com",
    "hal@example.com",
];
const CART_MEMBERS: &[&str] = &["ann@example.com", "dee@example.com", "eve@example.com"];
/// The identify's trait `name` goes to Iterable as the data field `name`, so the test can read
/// what the service made of it from the emulator.
const NAME_MAPPING: &str = r#"mapping = '{"dataFields": {"name": {"@path": "$.traits.name"}}}'"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_fills_the_lists() {
    python_run(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_with_gzip_fills_the_lists() {
    python_run(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_sdk_fills_the_lists() {
    let node_prefix = tokio::task::spawn_blocking(node_sdk)
        .await
        .expect("install task");
    let h = Harness::start(NAME_MAPPING).await;
    let mut cmd = Command::new("node");
    cmd.arg(Path::new(SDK_DIR).join("send.mjs"))
        .args(["--host", &h.svc().url(), "--write-key", WRITE_KEY])
        .env("SDK_NODE_PREFIX", node_prefix);
    let ids = send(cmd, "node send.mjs").await;
    check(&h, &ids).await;
}

async fn python_run(gzip: bool) {
    let venv = tokio::task::spawn_blocking(python_sdk)
        .await
        .expect("install task");
    let h = Harness::start(NAME_MAPPING).await;
    let mut cmd = Command::new(venv.join("bin").join("python"));
    cmd.arg(Path::new(SDK_DIR).join("send.py")).args([
        "--host",
        &h.svc().url(),
        "--write-key",
        WRITE_KEY,
    ]);
    if gzip {
        cmd.arg("--gzip");
    }
    let ids = send(cmd, "send.py").await;
    check(&h, &ids).await;
}

#[derive(Deserialize)]
struct Scenario {
    steps: Vec<Step>,
}

/// A step of scenario.json. Its `name` is not read here: it may hold a lone surrogate, which
/// serde_json refuses in a string it keeps (and skips in one it ignores).
#[derive(Deserialize)]
struct Step {
    call: String,
    user: String,
    audience: String,
    member: bool,
    stored_name: Option<String>,
}

fn steps() -> Vec<Step> {
    let path = Path::new(SDK_DIR).join("scenario.json");
    let text = fs::read_to_string(&path).expect("scenario.json");
    let scenario: Scenario = serde_json::from_str(&text).expect("scenario.json has its shape");
    scenario.steps
}

/// The scenario's steps: (call, user, audience, member).
fn scenario() -> Vec<(String, String, String, bool)> {
    steps()
        .into_iter()
        .map(|s| (s.call, s.user, s.audience, s.member))
        .collect()
}

/// Runs a sender to completion; asserts it exited 0 and returns the messageId of each step,
/// from its stdout lines `{"step": i, "messageId": "..."}`.
async fn send(cmd: Command, what: &'static str) -> BTreeMap<usize, String> {
    let out = tokio::task::spawn_blocking(move || testkit::run(cmd, SEND_TIMEOUT, what, NEEDS))
        .await
        .expect("sender task")
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.ok,
        "{what} failed ({}):\n--- stderr ---\n{}\n--- stdout ---\n{}",
        out.status, out.stderr, out.stdout
    );
    let mut ids = BTreeMap::new();
    for line in out.stdout.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{what}: stdout line {line:?} is not JSON: {e}"));
        let step = v["step"].as_u64().expect("step") as usize;
        let id = v["messageId"].as_str().expect("messageId").to_string();
        assert!(ids.insert(step, id).is_none(), "{what}: step {step} twice");
    }
    let steps = scenario().len();
    assert_eq!(
        ids.len(),
        steps,
        "{what} reported {} of {steps} events sent:\n{}\n--- stderr ---\n{}",
        ids.len(),
        out.stdout,
        out.stderr
    );
    ids
}

/// The lists hold exactly the expected members, each list exists once, and every event has a
/// final status: the last event of each user and audience delivered, none rejected.
async fn check(h: &Harness, ids: &BTreeMap<usize, String>) {
    h.wait_list(VIP, VIP_MEMBERS).await;
    h.wait_list(CART, CART_MEMBERS).await;
    assert_eq!(h.lists_named(VIP), 1, "lists named {VIP}");
    assert_eq!(h.lists_named(CART), 1, "lists named {CART}");

    let steps = scenario();
    let mut last = BTreeMap::new();
    for (i, (_, user, audience, _)) in steps.iter().enumerate() {
        last.insert((user.clone(), audience.clone()), i);
    }
    for (i, (call, user, audience, member)) in steps.iter().enumerate() {
        let ev = h.wait_final(&ids[&i]).await;
        let audiences = ev["audiences"].as_array().expect("audiences");
        assert_eq!(audiences.len(), 1, "step {i} ({call} {user}): {ev}");
        let status = audiences[0]["status"].as_str().unwrap_or_default();
        let is_last = last[&(user.clone(), audience.clone())] == i;
        let ok = if is_last {
            status == "delivered"
        } else {
            matches!(status, "delivered" | "superseded" | "skipped")
        };
        assert!(
            ok,
            "step {i} ({call} {user} {audience} member={member}, last of its user: {is_last}): {ev}"
        );
    }
    check_names(h).await;
    // With every event final nothing is left to send: the lists stay as they are.
    for (name, want) in [(VIP, VIP_MEMBERS), (CART, CART_MEMBERS)] {
        let want = want.iter().map(|m| m.to_string()).collect();
        assert_eq!(
            h.list(name),
            Some(want),
            "list {name} after the final statuses"
        );
        assert_eq!(h.lists_named(name), 1, "lists named {name}");
    }
}

/// Each named user's profile in the emulator has the data field `name` the scenario expects:
/// the SDK wrote a lone surrogate as a `\u` escape, and its batch was accepted with the
/// surrogate read as U+FFFD (the check above saw every event of that batch delivered).
async fn check_names(h: &Harness) {
    let named: Vec<Step> = steps()
        .into_iter()
        .filter(|s| s.stored_name.is_some())
        .collect();
    assert!(!named.is_empty(), "scenario.json names someone");
    for step in named {
        let url = format!("{}/api/users/byUserId?userId={}", h.emu.url(), step.user);
        let r = h.http.get(url).header("Api-Key", KEY).send().await;
        let text = r.expect("emulator").text().await.expect("body");
        let v: Value = serde_json::from_str(&text).expect("JSON");
        let name = &v["user"]["dataFields"]["name"];
        assert_eq!(
            name.as_str(),
            step.stored_name.as_deref(),
            "{}: {v}",
            step.user
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Installing the SDKs, once per process (OnceLock) and once per cache (testkit's marker and lock).

/// `$CARGO_TARGET_TMPDIR/sdk/py`, a venv with requirements.txt installed.
fn python_sdk() -> PathBuf {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DIR.get_or_init(install_python)
        .clone()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// `$CARGO_TARGET_TMPDIR/sdk/node`, holding node_modules from package-lock.json.
fn node_sdk() -> PathBuf {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DIR.get_or_init(|| {
        testkit::npm_ci(
            Path::new(SDK_DIR),
            &cache_root()?.join("node"),
            "Node SDK",
            20,
            NEEDS,
        )
    })
    .clone()
    .unwrap_or_else(|e| panic!("{e}"))
}

fn cache_root() -> Result<PathBuf, String> {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sdk");
    fs::create_dir_all(&root).map_err(|e| format!("create {}: {e}", root.display()))?;
    Ok(root)
}

fn install_python() -> Result<PathBuf, String> {
    let python = testkit::version_of("python3", &["--version"], NEEDS)?;
    let requirements_path = Path::new(SDK_DIR).join("requirements.txt");
    let requirements = fs::read_to_string(&requirements_path)
        .map_err(|e| format!("read {}: {e}", requirements_path.display()))?;
    let dir = cache_root()?.join("py");
    let marker = format!("{python}\n{requirements}");
    testkit::cached_install(&dir, &marker, "Python SDK", || {
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
