//! The logs of the real `iterable-lists serve` process, as an operator reads them: with
//! `RUST_LOG=debug --log-format json`, a key Iterable refuses (the destination pauses), a list
//! deleted in Iterable, a storm of 429s and requests with wrong credentials are each logged,
//! named once, without a flood and without any secret; every line is JSON, and the lines of a
//! request carry its request id. Then the text format, and the configuration's `[log] format`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use iterable_emulator::{
    Emulator, EmulatorConfig, Faults, LogQuery, ProjectConfig, ProjectType, RunningEmulator,
};
use serde_json::{Value, json};

/// The emulator's project key, and one it does not know (refused with 401).
const KEY: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
const REFUSED_KEY: &str = "ffffeeeeddddccccbbbbaaaa99998888";
const WRITE_KEY: &str = "wk_good_SECRET_1";
const REFUSED_WRITE_KEY: &str = "wk_refused_SECRET_2";
const ADMIN_TOKEN: &str = "admin_SECRET_3";
const WEBHOOK_SECRET: &str = "hook_SECRET_4";
/// Credentials a client sends wrongly: not logged either.
const WRONG_WRITE_KEY: &str = "wk_wrong_SECRET_5";
const WRONG_ADMIN_TOKEN: &str = "admin_wrong_SECRET_6";

/// The audiences of the 429 storm: one request each, in flight at once.
const STORM: usize = 4;

/// The service process, killed when dropped.
struct Service {
    child: Child,
    url: String,
    stderr: PathBuf,
    dir: PathBuf,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn temp_dir(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = std::env::temp_dir().join(format!(
        "iterable-lists-logs-{tag}-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// The configuration: `good` delivers to the emulator's project, `refused` has a key the
/// emulator does not know. `extra` is top-level text.
fn write_config(dir: &Path, emu: &RunningEmulator, extra: &str) -> PathBuf {
    let path = dir.join("config.toml");
    let text = format!(
        "listen = \"127.0.0.1:0\"\nadmin_token = \"{ADMIN_TOKEN}\"\n{extra}\n\
         [storage]\nurl = \"sqlite://{db}\"\n\
         [[destination]]\nname = \"good\"\napi_key = \"{KEY}\"\nbase_url = \"{url}\"\n\
         write_keys = [\"{WRITE_KEY}\"]\nwebhook_secret = \"{WEBHOOK_SECRET}\"\n\
         on_list_deleted = \"pause\"\n[destination.delivery]\nlinger_ms = 20\n\
         [[destination]]\nname = \"refused\"\napi_key = \"{REFUSED_KEY}\"\nbase_url = \"{url}\"\n\
         write_keys = [\"{REFUSED_WRITE_KEY}\"]\n[destination.delivery]\nlinger_ms = 20\n",
        db = dir.join("db.sqlite").display(),
        url = emu.url(),
    );
    std::fs::write(&path, text).expect("config");
    path
}

impl Service {
    /// Starts `iterable-lists serve --config FILE ARGS` with `RUST_LOG` as given (unset when
    /// `None`), stderr to a file; returns once it printed its address.
    fn start(dir: PathBuf, config: &Path, args: &[&str], rust_log: Option<&str>) -> Service {
        let stderr = dir.join("stderr.log");
        let log = std::fs::File::create(&stderr).expect("log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_iterable-lists"));
        cmd.arg("serve")
            .arg("--config")
            .arg(config)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(log);
        match rust_log {
            Some(v) => cmd.env("RUST_LOG", v),
            None => cmd.env_remove("RUST_LOG"),
        };
        let mut child = cmd.spawn().expect("spawn iterable-lists serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("first line");
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| {
                panic!(
                    "unexpected first line {line:?}; stderr: {}",
                    std::fs::read_to_string(&stderr).unwrap_or_default()
                )
            })
            .to_string();
        Service {
            child,
            url,
            stderr,
            dir,
        }
    }

    fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Stops the service with SIGTERM (as an operator would) and returns its stderr.
    fn stop(mut self) -> String {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.child.try_wait().expect("wait").is_none() {
            assert!(Instant::now() < deadline, "the service did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stderr_text()
    }

    /// Waits until a line of stderr satisfies `pred`.
    async fn wait_line(&self, what: &str, pred: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self.stderr_text().lines().any(&pred) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no line for {what}: {}",
                self.stderr_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

async fn emulator() -> RunningEmulator {
    let mut c =
        EmulatorConfig::default().with_project(ProjectConfig::new(ProjectType::Hybrid, KEY));
    c.listen = "127.0.0.1:0".parse().expect("addr");
    Emulator::start(c).await.expect("emulator")
}

/// Sends `user` into `audience` with `write_key`; it must be taken.
async fn send(http: &reqwest::Client, svc: &Service, write_key: &str, user: &str, audience: &str) {
    let body = json!({"batch": [{
        "type": "identify", "messageId": format!("{audience}-{user}"), "userId": user,
        "traits": {"email": format!("{user}@example.com"), audience: true},
        "context": {"personas": {"computation_key": audience, "computation_class": "audience"}}
    }]});
    let r = http
        .post(format!("{}/v1/batch", svc.url))
        .basic_auth(write_key, Some(""))
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 200, "{user} into {audience}");
}

async fn wait_member(emu: &RunningEmulator, list: &str, user: &str) {
    let email = format!("{user}@example.com");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found = emu.state(true).iter().flat_map(|p| &p.lists).any(|l| {
            l.name == list
                && l.members
                    .iter()
                    .flatten()
                    .any(|m| m.email.as_deref() == Some(email.as_str()))
        });
        if found {
            return;
        }
        assert!(Instant::now() < deadline, "{email} never reached {list}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Iterable's API, called as the operator would (to create and delete a list).
async fn iterable_api(
    http: &reqwest::Client,
    emu: &RunningEmulator,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    let mut req = http
        .request(method, format!("{}{path}", emu.url()))
        .header("Api-Key", KEY);
    if let Some(b) = body {
        req = req
            .header("Content-Type", "application/json")
            .body(b.to_string());
    }
    let r = req.send().await.expect("Iterable API");
    assert_eq!(r.status().as_u16(), 200, "{path}");
    let text = r.text().await.expect("body");
    serde_json::from_str(&text).expect("JSON")
}

/// Answers `429` the emulator gave.
fn answers_429(emu: &RunningEmulator) -> usize {
    emu.requests(&LogQuery::default())
        .iter()
        .filter(|r| r.status == 429)
        .count()
}

/// Each line as JSON, with its message and level; fails on a line that is not JSON.
fn parse_lines(log: &str) -> Vec<Value> {
    log.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}"));
            assert!(v["level"].is_string(), "no level: {l}");
            assert!(v["fields"]["message"].is_string(), "no message: {l}");
            assert!(v["timestamp"].is_string(), "no timestamp: {l}");
            v
        })
        .collect()
}

fn message(v: &Value) -> &str {
    v["fields"]["message"].as_str().unwrap_or_default()
}

/// A key Iterable refuses: the destination pauses.
async fn refused_key(http: &reqwest::Client, svc: &Service) {
    send(http, svc, REFUSED_WRITE_KEY, "ann", "refused_aud").await;
    svc.wait_line("the pause", |l| l.contains("destination paused"))
        .await;
}

/// List `gone` is found for its audience, then deleted in Iterable; two more users come for
/// it (two requests answered `invalidListId`). The destination has `on_list_deleted =
/// "pause"`: the list is not created again, so both requests meet the deleted one.
async fn deleted_list(http: &reqwest::Client, emu: &RunningEmulator, svc: &Service, gone: i64) {
    send(http, svc, WRITE_KEY, "bob", "gone_aud").await;
    wait_member(emu, "gone_aud", "bob").await;
    let path = format!("/api/lists/{gone}");
    iterable_api(http, emu, reqwest::Method::DELETE, &path, None).await;
    send(http, svc, WRITE_KEY, "cat", "gone_aud").await;
    svc.wait_line("the deleted list", |l| l.contains("no longer exists"))
        .await;
    send(http, svc, WRITE_KEY, "dan", "gone_aud").await;
    let invalid = |log: &str| {
        log.lines()
            .filter(|l| l.contains("\"invalidListId\""))
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while invalid(&svc.stderr_text()) < 2 {
        assert!(Instant::now() < deadline, "{}", svc.stderr_text());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A storm of 429s over [`STORM`] requests in flight at once (their lists resolved before),
/// until at least three answers each; then Iterable answers again and they are delivered.
/// Returns the 429s answered.
async fn storm(http: &reqwest::Client, emu: &RunningEmulator, svc: &Service) -> usize {
    for i in 0..STORM {
        send(http, svc, WRITE_KEY, "pre", &format!("storm_{i}")).await;
    }
    for i in 0..STORM {
        wait_member(emu, &format!("storm_{i}"), "pre").await;
    }
    let storm = Faults {
        error_429: 1.0,
        ..Faults::default()
    };
    emu.set_faults(storm).expect("faults");
    for i in 0..STORM {
        send(http, svc, WRITE_KEY, "eve", &format!("storm_{i}")).await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while answers_429(emu) < 3 * STORM {
        assert!(Instant::now() < deadline, "too few 429s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    emu.set_faults(Faults::default()).expect("faults");
    let answered = answers_429(emu);
    for i in 0..STORM {
        wait_member(emu, &format!("storm_{i}"), "eve").await;
    }
    answered
}

/// A wrong write key (with the client's request id) and a wrong admin token, both 401, then
/// a good admin call. Returns the request id of the wrong admin call.
async fn wrong_credentials(http: &reqwest::Client, svc: &Service) -> String {
    let r = http
        .post(format!("{}/v1/batch", svc.url))
        .basic_auth(WRONG_WRITE_KEY, Some(""))
        .header("x-request-id", "client-req-401")
        .body("{\"batch\":[]}")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(r.headers()["x-request-id"], "client-req-401");
    let r = http
        .get(format!("{}/v1/status?token={WRONG_ADMIN_TOKEN}", svc.url))
        .bearer_auth(WRONG_ADMIN_TOKEN)
        .send()
        .await
        .expect("status");
    assert_eq!(r.status().as_u16(), 401);
    let admin_id = r.headers()["x-request-id"]
        .to_str()
        .expect("id")
        .to_string();
    let r = http
        .get(format!("{}/v1/status", svc.url))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("status");
    assert_eq!(r.status().as_u16(), 200);
    svc.wait_line("the admin 401", |l| l.contains(&admin_id))
        .await;
    admin_id
}

/// How many lines satisfy `pred`.
fn count(lines: &[Value], pred: impl Fn(&Value) -> bool) -> usize {
    lines.iter().filter(|v| pred(v)).count()
}

/// The lines in a request's span carry its id; the access lines are all in one.
fn check_request_lines(lines: &[Value]) {
    let in_request: Vec<&Value> = lines
        .iter()
        .filter(|v| v["span"]["name"] == "request")
        .collect();
    for v in &in_request {
        let id = v["span"]["request_id"].as_str().unwrap_or_default();
        assert!(!id.is_empty() && id != "-", "no request id: {v}");
    }
    let access: Vec<&Value> = lines
        .iter()
        .filter(|v| v["target"] == "server::http::access_log")
        .collect();
    assert!(
        access.iter().all(|v| v["span"]["name"] == "request"),
        "every access line is in its request's span"
    );
    // Each request taken has its debug line with a status and a duration (13 sent).
    let taken = count(lines, |v| {
        v["span"]["name"] == "request"
            && v["fields"]["status"] == 200
            && v["fields"]["duration_ms"].is_number()
    });
    assert!(taken >= 2 * STORM + 4, "{taken}");
}

/// The start, the pause and the lists: each named once.
fn check_named_once(lines: &[Value], emu_url: &str, gone: i64) {
    let starting = count(lines, |v| {
        message(v) == "iterable-lists starting"
            && v["fields"]["version"].is_string()
            && v["fields"]["storage"]
                .as_str()
                .is_some_and(|s| s.starts_with("sqlite://"))
    });
    assert_eq!(starting, 1);
    let configured = count(lines, |v| {
        message(v) == "destination configured"
            && v["fields"]["base_url"] == emu_url
            && v["fields"]["project_type"] == "hybrid"
    });
    assert_eq!(configured, 2);
    let paused = |v: &Value| message(v).starts_with("destination paused");
    assert_eq!(count(lines, paused), 1, "one pause line");
    let named = count(lines, |v| {
        paused(v)
            && v["level"] == "INFO"
            && v["fields"]["destination"] == "refused"
            && v["fields"]["reason"]
                .as_str()
                .is_some_and(|r| r.contains("401"))
    });
    assert_eq!(named, 1);
    let found = count(lines, |v| {
        message(v) == "list found in Iterable"
            && v["fields"]["audience"] == "gone_aud"
            && v["fields"]["list_id"] == gone
    });
    assert_eq!(found, 1);
    let created = count(lines, |v| message(v) == "list created in Iterable");
    assert_eq!(created, STORM, "one per storm audience");
    let gone_lines = |v: &Value| message(v).contains("no longer exists");
    assert_eq!(
        count(lines, gone_lines),
        1,
        "the deleted list is named once"
    );
    let named = count(lines, |v| {
        gone_lines(v) && v["fields"]["audience"] == "gone_aud" && v["fields"]["list_id"] == gone
    });
    assert_eq!(named, 1);
}

/// The storm: one 429 line and at most a few other warnings from the deliveries, whatever
/// the number of answers; its tries show at debug.
fn check_storm(lines: &[Value], answers: usize) {
    assert!(answers >= 3 * STORM, "{answers}");
    let rate_limited = count(lines, |v| {
        message(v).starts_with("Iterable is rate limiting") && v["level"] == "WARN"
    });
    assert_eq!(rate_limited, 1);
    let warnings = count(lines, |v| {
        v["level"] == "WARN" && v["target"].as_str().is_some_and(|t| t.starts_with("sync"))
    });
    assert!(
        warnings <= 3,
        "{warnings} warnings for {answers} answers 429"
    );
    let tries = count(lines, |v| message(v) == "a try failed");
    assert!(tries >= 3 * STORM, "the tries show at debug: {tries}");
}

/// The refused credentials: one warn line each, in the request's span.
fn check_refused(lines: &[Value], admin_id: &str) {
    let refused: Vec<&Value> = lines
        .iter()
        .filter(|v| v["span"]["name"] == "request" && v["fields"]["status"] == 401)
        .collect();
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(refused.iter().all(|v| v["level"] == "WARN"));
    assert!(refused.iter().any(|v| {
        v["span"]["request_id"] == "client-req-401"
            && v["span"]["path"] == "/v1/batch"
            && v["span"]["method"] == "POST"
    }));
    assert!(
        refused
            .iter()
            .any(|v| v["span"]["request_id"] == admin_id && v["span"]["path"] == "/v1/status")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_name_each_situation_once_and_never_a_secret() {
    let emu = emulator().await;
    let http = client();
    let dir = temp_dir("json");
    let config = write_config(&dir, &emu, "");
    // The audience whose list the operator made (and deletes later).
    let body = Some(json!({"name": "gone_aud"}));
    let made = iterable_api(&http, &emu, reqwest::Method::POST, "/api/lists", body).await;
    let gone = made["listId"].as_i64().expect("listId");
    let svc = Service::start(dir, &config, &["--log-format", "json"], Some("debug"));

    refused_key(&http, &svc).await;
    deleted_list(&http, &emu, &svc, gone).await;
    let answers = storm(&http, &emu, &svc).await;
    let admin_id = wrong_credentials(&http, &svc).await;

    let log = svc.stop();
    eprintln!("--- stderr of the service ---\n{log}");
    // (a) No secret anywhere.
    for secret in [
        KEY,
        REFUSED_KEY,
        WRITE_KEY,
        REFUSED_WRITE_KEY,
        ADMIN_TOKEN,
        WEBHOOK_SECRET,
        WRONG_WRITE_KEY,
        WRONG_ADMIN_TOKEN,
    ] {
        assert!(!log.contains(secret), "{secret} is in the log");
    }
    // (c) Every line is JSON with a level and a message; a request's lines carry its id.
    let lines = parse_lines(&log);
    check_request_lines(&lines);
    // (b) Each situation is named once, without a flood.
    check_named_once(&lines, &emu.url(), gone);
    check_storm(&lines, answers);
    check_refused(&lines, &admin_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_logs_and_the_configured_format() {
    let emu = emulator().await;
    let http = client();

    // The file says json; --log-format text wins. RUST_LOG unset: info.
    let dir = temp_dir("text");
    let config = write_config(&dir, &emu, "[log]\nformat = \"json\"");
    let svc = Service::start(dir, &config, &["--log-format", "text"], None);
    let r = http
        .post(format!("{}/v1/track", svc.url))
        .basic_auth(WRONG_WRITE_KEY, Some(""))
        .header("x-request-id", "smoke-1")
        .body("{}")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 401);
    svc.wait_line("the 401", |l| l.contains("smoke-1")).await;
    let log = svc.stop();
    assert!(
        !log.contains(WRONG_WRITE_KEY) && !log.contains(KEY),
        "{log}"
    );
    assert!(log.lines().all(|l| !l.starts_with('{')), "{log}");
    assert!(
        log.lines()
            .any(|l| l.contains("INFO") && l.contains("iterable-lists starting")),
        "{log}"
    );
    let refused = log
        .lines()
        .find(|l| l.contains("request_id=smoke-1"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        refused.contains("WARN") && refused.contains("status=401"),
        "{refused}"
    );
    assert!(!log.contains("DEBUG"), "info by default: {log}");

    // Without the flag, the file's format.
    let dir = temp_dir("conf");
    let config = write_config(&dir, &emu, "[log]\nformat = \"json\"");
    let svc = Service::start(dir, &config, &[], Some("info"));
    let log = svc.stop();
    let lines = parse_lines(&log);
    assert!(
        lines
            .iter()
            .any(|v| message(v) == "iterable-lists starting"),
        "{log}"
    );

    // A filter RUST_LOG cannot read stops the start with a message naming it.
    let dir = temp_dir("bad");
    let config = write_config(&dir, &emu, "");
    let out = Command::new(env!("CARGO_BIN_EXE_iterable-lists"))
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "sync=[")
        .output()
        .expect("run");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("RUST_LOG: \"sync=[\""), "{err}");
    assert!(out.stdout.is_empty());
}
