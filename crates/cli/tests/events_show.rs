//! `iterable-lists events show` as a user runs it against a running service's store: an entry
//! whose audience settings hold an unusable campaignId is delivered, and both the text and the
//! JSON output name the ignored setting, its value and why.

use std::process::Command;
use std::time::{Duration, Instant};

use iterable_emulator::{Emulator, EmulatorConfig, ProjectConfig, ProjectType};
use serde_json::{Value, json};
use server::{Config, RunningService};

const BIN: &str = env!("CARGO_BIN_EXE_iterable-lists");
const KEY: &str = "0123456789abcdef0123456789abcdef";
const WRITE_KEY: &str = "wk_events_show";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_show_names_the_ignored_setting() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut c =
        EmulatorConfig::default().with_project(ProjectConfig::new(ProjectType::Hybrid, KEY));
    c.listen = "127.0.0.1:0".parse().expect("addr");
    let emu = Emulator::start(c).await.expect("emulator");
    let dir = std::env::temp_dir().join(format!("il-events-show-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let config = format!(
        r#"listen = "127.0.0.1:0"
[storage]
url = "sqlite://{}"
[[destination]]
name = "prod"
api_key = "{KEY}"
base_url = "{}"
write_keys = ["{WRITE_KEY}"]
[destination.delivery]
linger_ms = 20
"#,
        dir.join("db.sqlite").display(),
        emu.url()
    );
    let config_file = dir.join("iterable-lists.toml");
    std::fs::write(&config_file, &config).expect("write config");
    let svc = RunningService::start(Config::parse(&config, &|_| None).expect("config"))
        .await
        .expect("service");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let event = json!({
        "type": "identify",
        "messageId": "bad-campaign",
        "userId": "ann",
        "traits": {"vip": true, "email": "ann@example.com"},
        "context": {"personas": {
            "computation_class": "audience",
            "computation_key": "vip",
            "audience_settings": {"campaignId": 1.5}
        }}
    });
    let r = http
        .post(format!("{}/v1/batch", svc.url()))
        .basic_auth(WRITE_KEY, Some(""))
        .header("Content-Type", "application/json")
        .body(json!({"batch": [event]}).to_string())
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 200);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v: Value = http
            .get(format!("{}/v1/events/bad-campaign", svc.url()))
            .send()
            .await
            .expect("get")
            .text()
            .await
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null);
        if v["events"][0]["audiences"][0]["status"] == "delivered" {
            break;
        }
        assert!(Instant::now() < deadline, "never delivered: {v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let run = |json: bool| {
        let mut cmd = Command::new(BIN);
        cmd.args(["events", "show", "bad-campaign", "--config"])
            .arg(&config_file);
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output().expect("run events show");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("UTF-8")
    };
    let text = run(false);
    assert!(text.contains("delivered"), "{text}");
    assert!(
        text.contains(
            "audience setting campaignId = 1.5 ignored: must be a whole positive number but it was a number"
        ),
        "{text}"
    );
    let v: Value = serde_json::from_str(run(true).trim()).expect("JSON");
    assert_eq!(
        v["ignoredSettings"],
        json!([{"setting": "campaignId", "value": "1.5", "reason": "must be a whole positive number but it was a number"}]),
        "{v}"
    );
    svc.shutdown(Duration::from_secs(10)).await;
    let _ = std::fs::remove_dir_all(&dir);
}
