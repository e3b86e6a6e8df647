//! The inspection commands as a new user runs them, from a fresh directory: `status` and
//! `events show` read the database the config file names (a relative path is relative to that
//! file), never create one, need none of the destination's secrets and print times as ISO 8601
//! or relative; `check --config`; `demo` writes the config it runs with; `plan --max-bytes`
//! defaults to the service's `max_request_bytes`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use iterable_emulator::{Emulator, EmulatorConfig, ProjectConfig, ProjectType, RunningEmulator};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_iterable-lists");
const KEY: &str = "0123456789abcdef0123456789abcd11";
const OTHER_KEY: &str = "0123456789abcdef0123456789abcd12";
/// Variables named by the test configs; the tests set them only for `serve`.
const KEY_VAR: &str = "IL_INSPECT_TEST_API_KEY";
const WRITE_KEYS_VAR: &str = "IL_INSPECT_TEST_WRITE_KEYS";
const WRITE_KEY: &str = "wk_inspect";

/// A fresh directory, removed at the end.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let p = std::env::temp_dir().join(format!("il-inspect-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("temp dir");
        Dir(p)
    }

    /// Writes `text` to `name` (creating directories) and returns its path.
    fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("dirs");
        std::fs::write(&p, text).expect("write");
        p
    }

    fn sub(&self, name: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::create_dir_all(&p).expect("dir");
        p
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process, killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the binary in `cwd` without the test variables, as a shell without them would.
fn run_in(cwd: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .env_remove(KEY_VAR)
        .env_remove(WRITE_KEYS_VAR)
        .env_remove("ITERABLE_API_KEY")
        .env_remove("ITERABLE_LISTS_WRITE_KEYS")
        .env_remove("ITERABLE_LISTS_LISTEN")
        .output()
        .expect("run iterable-lists")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Whether `s` holds a run of 12 or more digits: an epoch-milliseconds time.
fn has_epoch_ms(s: &str) -> bool {
    let mut run = 0;
    for c in s.chars() {
        run = if c.is_ascii_digit() { run + 1 } else { 0 };
        if run >= 12 {
            return true;
        }
    }
    false
}

/// Whether `s` holds an ISO 8601 UTC time like `2025-01-02T03:04:05.678Z`.
fn has_iso_time(s: &str) -> bool {
    let b = s.as_bytes();
    b.windows(24).any(|w| {
        let shape = b"dddd-dd-ddTdd:dd:dd.dddZ";
        w.iter().zip(shape).all(|(c, s)| {
            if *s == b'd' {
                c.is_ascii_digit()
            } else {
                c == s
            }
        })
    })
}

async fn emulator() -> RunningEmulator {
    let mut c = EmulatorConfig::default()
        .with_project(ProjectConfig::new(ProjectType::Hybrid, KEY))
        .with_project(ProjectConfig::new(ProjectType::Hybrid, OTHER_KEY));
    c.listen = "127.0.0.1:0".parse().expect("addr");
    Emulator::start(c).await.expect("emulator")
}

/// A config whose secrets come from [`KEY_VAR`] and [`WRITE_KEYS_VAR`], and whose database is
/// `url`.
fn config_text(url: &str, base_url: &str) -> String {
    format!(
        "listen = \"127.0.0.1:0\"\n[storage]\nurl = \"{url}\"\n[[destination]]\nname = \"prod\"\n\
         api_key_env = \"{KEY_VAR}\"\nwrite_keys_env = \"{WRITE_KEYS_VAR}\"\nbase_url = \"{base_url}\"\n\
         [destination.delivery]\nlinger_ms = 20\n"
    )
}

/// Lines of a child's stdout, read on a thread (so a silent child cannot hang the test).
fn lines_of(stdout: ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

fn next_line(lines: &mpsc::Receiver<String>, what: &str) -> String {
    lines
        .recv_timeout(Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("no {what} line: {e}"))
}

/// Starts `serve --config CONFIG` in `cwd` with the secrets set; returns it and its URL.
fn serve(config: &Path, cwd: &Path) -> (Running, String) {
    let mut child = Command::new(BIN)
        .arg("serve")
        .arg("--config")
        .arg(config)
        .current_dir(cwd)
        .env(KEY_VAR, KEY)
        .env(WRITE_KEYS_VAR, WRITE_KEY)
        .env_remove("ITERABLE_LISTS_LISTEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn serve");
    let lines = lines_of(child.stdout.take().expect("stdout"));
    let running = Running(child);
    let first = next_line(&lines, "listening");
    let url = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("first line {first:?}"))
        .to_string();
    (running, url)
}

/// One Engage audience entry of `ann` into `vip`, with `message_id`.
fn entry(message_id: &str) -> String {
    format!(
        r#"{{"batch":[{{"type":"identify","messageId":"{message_id}","userId":"ann","traits":{{"email":"ann@example.com","vip":true}},"context":{{"personas":{{"computation_key":"vip","computation_class":"audience"}}}}}}]}}"#
    )
}

async fn send(url: &str, write_key: &str, body: String) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let r = reqwest::Client::new()
        .post(format!("{url}/v1/batch"))
        .basic_auth(write_key, Some(""))
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .expect("send");
    assert!(r.status().is_success(), "{:?}", r.text().await);
}

/// Runs `events show ID --config CONFIG --json` in `cwd` until the event's first audience has
/// `status`; returns the last text output.
async fn until_status(cwd: &Path, config: &Path, id: &str, status: &str) -> String {
    let config = config.to_string_lossy().into_owned();
    for _ in 0..600 {
        let o = run_in(cwd, &["events", "show", id, "--config", &config, "--json"]);
        if o.status.success() {
            let v: Value = serde_json::from_slice(&o.stdout).expect("json");
            if v["audiences"][0]["status"] == status {
                let o = run_in(cwd, &["events", "show", id, "--config", &config]);
                assert!(o.status.success(), "{:?}", text(&o));
                return text(&o).0;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("event {id} never reached {status}");
}

/// A config in another directory names its database relative to itself; `serve`, `status`
/// and `events show` find the same file from any working directory, without the secrets;
/// human output has ISO 8601 and relative times, never epoch milliseconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_elsewhere_names_its_database_relative_to_itself() {
    let emu = emulator().await;
    let d = Dir::new("relative");
    d.file(
        "etc/il/iterable-lists.toml",
        &config_text("sqlite://state/lists.db", &emu.url()),
    );
    let elsewhere = d.sub("work");
    let (svc, url) = serve(
        &Path::new("..").join("etc/il/iterable-lists.toml"),
        &elsewhere,
    );
    send(&url, WRITE_KEY, entry("rel-1")).await;
    assert!(d.0.join("etc/il/state/lists.db").exists());
    assert!(!elsewhere.join("state").exists(), "created beside the cwd");

    // Another working directory, the config named relatively, no secret in the environment.
    let third = d.sub("third");
    let story = until_status(
        &third,
        &Path::new("..").join("etc/il/iterable-lists.toml"),
        "rel-1",
        "delivered",
    )
    .await;
    assert!(
        story.contains("vip: add ann@example.com / ann: delivered"),
        "{story}"
    );
    assert!(
        has_iso_time(&story) && (story.contains(" ago)") || story.contains("(now)")),
        "{story}"
    );
    assert!(!has_epoch_ms(&story), "epoch ms in {story}");
    let o = run_in(
        &third,
        &[
            "events",
            "show",
            "rel-1",
            "--config",
            "../etc/il/iterable-lists.toml",
            "--json",
        ],
    );
    let v: Value = serde_json::from_slice(&o.stdout).expect("json");
    assert!(v["receivedMs"].as_i64().is_some(), "{v}");

    let o = run_in(
        &third,
        &["status", "--config", "../etc/il/iterable-lists.toml"],
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.contains("destination prod (running)"), "{out}");
    let vip = out
        .lines()
        .find(|l| l.trim_start().starts_with("vip "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(vip.ends_with(" ago") || vip.ends_with("now"), "{vip}");
    assert!(!has_epoch_ms(&out), "epoch ms in {out}");
    let o = run_in(
        &third,
        &[
            "status",
            "--config",
            "../etc/il/iterable-lists.toml",
            "--json",
        ],
    );
    let v: Value = serde_json::from_slice(&o.stdout).expect("json");
    assert!(
        v["destinations"][0]["audiences"][0]["lastDeliveryMs"]
            .as_i64()
            .is_some(),
        "{v}"
    );

    // The service itself still needs its secrets, and says which.
    drop(svc);
    let o = run_in(
        &third,
        &["serve", "--config", "../etc/il/iterable-lists.toml"],
    );
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(
        err.contains(&format!(
            "api_key_env: environment variable {KEY_VAR} is not set"
        )),
        "{err}"
    );
    assert!(!d.0.join("third/state").exists() && !d.0.join("work/state").exists());
}

/// `status` and `events show` never create a database: a missing one is an error naming it,
/// and nothing appears on disk.
#[test]
fn a_missing_database_is_an_error_that_names_it() {
    let d = Dir::new("missing");
    let config = d.file(
        "conf/iterable-lists.toml",
        &config_text("sqlite://nothing/here.db", "http://127.0.0.1:9"),
    );
    let config_arg = config.to_string_lossy().into_owned();
    let cwd = d.sub("cwd");
    let want = d.0.join("conf/nothing/here.db").display().to_string();
    for args in [
        vec!["status", "--config", &config_arg],
        vec!["status", "--config", &config_arg, "--json"],
        vec!["events", "show", "m1", "--config", &config_arg],
    ] {
        let o = run_in(&cwd, &args);
        let (out, err) = text(&o);
        assert!(!o.status.success(), "{args:?}: {out}");
        assert!(
            err.contains(&format!("no database at {want}")),
            "{args:?}: {err}"
        );
        assert!(!d.0.join("conf/nothing").exists(), "{args:?} created it");
    }
    // Without --config: the default path, relative to the working directory.
    for args in [vec!["status"], vec!["events", "show", "m1"]] {
        let o = run_in(&cwd, &args);
        let (_, err) = text(&o);
        assert!(!o.status.success(), "{args:?}");
        let want = cwd.join("data/iterable-lists.db").display().to_string();
        assert!(err.contains(&format!("no database at {want}")), "{err}");
        assert!(err.contains("no --config"), "{err}");
        assert!(!cwd.join("data").exists(), "{args:?} created it");
    }
    // An in-memory store can only be read by the service that holds it.
    let memory = d.file(
        "mem.toml",
        &config_text("sqlite::memory:", "http://127.0.0.1:9"),
    );
    let o = run_in(&cwd, &["status", "--config", &memory.to_string_lossy()]);
    assert!(!o.status.success());
    assert!(text(&o).1.contains("GET /v1/status"), "{:?}", text(&o));
    // A file that is not this program's database is refused, and left as it was.
    let other = d.file("other.db", "");
    let cfg = d.file(
        "other.toml",
        &config_text(
            &format!("sqlite://{}", other.display()),
            "http://127.0.0.1:9",
        ),
    );
    let o = run_in(&cwd, &["status", "--config", &cfg.to_string_lossy()]);
    assert!(!o.status.success());
    assert!(
        text(&o).1.contains("not an iterable-lists database"),
        "{:?}",
        text(&o)
    );
    assert_eq!(std::fs::metadata(&other).expect("other").len(), 0);
}

/// `check --config FILE [--destination NAME]` checks a destination of the service's config;
/// only that destination's key needs to be set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_takes_the_service_config() {
    let emu = emulator().await;
    let d = Dir::new("check");
    let url = emu.url();
    let two = d.file(
        "two.toml",
        &format!(
            "[[destination]]\nname = \"good\"\napi_key = \"{KEY}\"\nbase_url = \"{url}\"\nwrite_keys = [\"a\"]\n\
             [[destination]]\nname = \"bad\"\napi_key = \"ffffffffffffffffffffffffffffffff\"\nbase_url = \"{url}\"\nwrite_keys = [\"b\"]\n\
             [[destination]]\nname = \"unset\"\napi_key_env = \"{KEY_VAR}\"\nwrite_keys_env = \"{WRITE_KEYS_VAR}\"\nbase_url = \"{url}\"\n"
        ),
    );
    let one = d.file(
        "one.toml",
        &format!(
            "[[destination]]\nname = \"solo\"\napi_key = \"{OTHER_KEY}\"\nbase_url = \"{url}\"\nwrite_keys = [\"a\"]\n"
        ),
    );
    let (two, one) = (
        two.to_string_lossy().into_owned(),
        one.to_string_lossy().into_owned(),
    );
    let cases: Vec<(Vec<&str>, bool, &str)> = vec![
        (vec!["--config", &one], true, "ok: destination \"solo\": "),
        (
            vec!["--config", &two, "--destination", "good"],
            true,
            "reaches 0 lists",
        ),
        (
            vec!["--config", &two, "--destination", "bad"],
            false,
            "The API key was refused",
        ),
        (
            vec!["--config", &two, "--destination", "bad"],
            false,
            "region = \"eu\"",
        ),
        (
            vec!["--config", &two],
            false,
            "several destinations (\"good\", \"bad\", \"unset\"); choose one with --destination NAME",
        ),
        (
            vec!["--config", &two, "--destination", "nope"],
            false,
            "no destination named \"nope\"",
        ),
        (
            vec!["--config", &two, "--destination", "unset"],
            false,
            "destination \"unset\": no API key",
        ),
        (
            vec!["--settings", "s.json", "--config", &two],
            false,
            "cannot be used with",
        ),
        (
            vec!["--settings", "s.json", "--destination", "good"],
            false,
            "cannot be used with",
        ),
        (
            vec![],
            false,
            "nothing to check: ITERABLE_API_KEY is not set",
        ),
    ];
    for (args, ok, needle) in cases {
        let cwd = d.0.clone();
        let mut all = vec!["check".to_string()];
        all.extend(args.iter().map(|a| a.to_string()));
        let o = tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = all.iter().map(String::as_str).collect();
            run_in(&cwd, &refs)
        })
        .await
        .expect("join");
        let (out, err) = text(&o);
        assert_eq!(o.status.success(), ok, "{args:?}: {out}{err}");
        assert!(
            format!("{out}{err}").contains(needle),
            "{args:?}: {out}{err}"
        );
        for key in [KEY, OTHER_KEY, "ffffffffffffffffffffffffffffffff"] {
            assert!(
                !out.contains(key) && !err.contains(key),
                "key printed: {out}{err}"
            );
        }
    }
}

/// The demo writes the config it runs with and prints how to use it: the printed curl (with
/// its messageId) works, and the printed `events show` and `status` commands read what it
/// did. A second demo on the same address names --listen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_writes_its_config_and_says_how_to_look_events_up() {
    let d = Dir::new("demo");
    let data = d.0.join("data");
    let mut child = Command::new(BIN)
        .args(["demo", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .current_dir(&d.0)
        .env_remove("ITERABLE_LISTS_LISTEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn demo");
    let lines = lines_of(child.stdout.take().expect("stdout"));
    let demo = Running(child);
    let mut printed = Vec::new();
    loop {
        let line = next_line(&lines, "demo output");
        let done = line.starts_with("Lists in the emulator");
        printed.push(line);
        if done {
            break;
        }
    }
    let all = printed.join("\n");
    let find = |prefix: &str| {
        printed
            .iter()
            .find_map(|l| l.trim_start().strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no line starting {prefix:?} in:\n{all}"))
            .to_string()
    };
    let url = find("listening on ");
    let config = PathBuf::from(find("configuration: "));
    assert_eq!(config, data.join("iterable-lists.toml"), "{all}");
    assert!(
        std::fs::read_to_string(&config)
            .expect("config")
            .contains("[[destination]]")
    );

    // The curl as printed: its body carries a messageId.
    let curl = find("curl -s -u ");
    let body = curl
        .split_once("-d '")
        .and_then(|(_, rest)| rest.strip_suffix('\''))
        .unwrap_or_else(|| panic!("no body in {curl}"));
    let v: Value = serde_json::from_str(body).expect("curl body is JSON");
    let id = v["batch"][0]["messageId"]
        .as_str()
        .expect("messageId")
        .to_string();
    let (write_key, _) = curl.split_once(": ").expect("write key");
    send(&url, write_key, body.to_string()).await;

    // The printed lookup, as printed.
    let lookup = printed
        .iter()
        .find(|l| l.contains(" events show "))
        .unwrap_or_else(|| panic!("no events show line in:\n{all}"));
    let want_tail = format!(
        "iterable-lists events show {id} --config {}",
        config.display()
    );
    assert!(
        lookup.trim().ends_with(&want_tail),
        "{lookup:?} vs {want_tail:?}"
    );
    let story = until_status(&d.0, &config, &id, "delivered").await;
    assert!(
        story.contains("vip_users: add ann@example.com / ann: delivered"),
        "{story}"
    );
    let status = printed
        .iter()
        .find(|l| l.contains(" status --config "))
        .unwrap_or_else(|| panic!("no status line in:\n{all}"));
    let mut words = status.split_whitespace();
    let program = words.next().expect("program");
    assert!(program.ends_with("iterable-lists"), "{status}");
    let args: Vec<&str> = words.collect();
    let o = run_in(&d.0, &args);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        out.contains("destination demo (running)") && out.contains("vip_users"),
        "{out}"
    );

    // A second demo on the same address.
    let addr = url.strip_prefix("http://").expect("http");
    let o = run_in(
        &d.0,
        &[
            "demo",
            "--listen",
            addr,
            "--data-dir",
            &d.0.join("second").to_string_lossy(),
        ],
    );
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(
        err.contains(&format!("cannot listen on {addr}")) && err.contains("--listen"),
        "{err}"
    );
    drop(demo);
}

/// `plan --max-bytes` defaults to the service's `max_request_bytes` default.
#[test]
fn plan_max_bytes_defaults_to_the_service_default() {
    let service = server::config::Delivery::default().max_request_bytes;
    assert_eq!(service, destination::plan::MAX_REQUEST_BYTES);
    assert_eq!(destination::Limits::default().max_bytes, service);
    let o = Command::new(BIN)
        .args(["plan", "--help"])
        .output()
        .expect("help");
    let help = String::from_utf8_lossy(&o.stdout);
    assert!(help.contains(&format!("[default: {service}]")), "{help}");
}
