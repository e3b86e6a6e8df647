//! `deploy/` as an operator uses it: the systemd unit's ExecStart, run as written (the binary
//! and the unit's directories moved under a temporary directory), with the example config and
//! the example secrets file as its environment, serves: `/healthz` and `/readyz` answer, an
//! event sent with the example's write key is accepted and reaches the list in Iterable (the
//! emulator), the admin token of the secrets opens `/v1/status`, and SIGTERM stops it cleanly;
//! `check --config` passes on the same config. The unit keeps its hardening and limits.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use iterable_emulator::{Emulator, EmulatorConfig, ProjectConfig, ProjectType};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_iterable-lists");

fn deploy(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The unit's `[Service]` settings: key to values, in order (a key may repeat).
fn unit_settings(unit: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in unit.lines().map(str::trim) {
        if line.starts_with('#') || line.starts_with('[') || line.is_empty() {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            out.entry(k.trim().to_string())
                .or_default()
                .push(v.trim().to_string());
        }
    }
    out
}

/// `KEY=VALUE` lines of an environment file (comments and blank lines skipped).
fn env_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').expect("KEY=VALUE");
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// Kills the service if the test ends before it stopped.
struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_unit_runs_as_an_unprivileged_hardened_service() {
    let s = unit_settings(&deploy("iterable-lists.service"));
    let one = |k: &str| {
        s.get(k)
            .and_then(|v| v.last())
            .unwrap_or_else(|| panic!("the unit has no {k}="))
            .as_str()
    };
    assert!(!["root", "0"].contains(&one("User")), "runs as root");
    assert_eq!(one("Restart"), "on-failure");
    assert_eq!(one("LimitNOFILE"), "65536");
    assert_eq!(one("NoNewPrivileges"), "yes");
    assert_eq!(one("ProtectSystem"), "strict");
    assert_eq!(one("ReadWritePaths"), "/var/lib/iterable-lists");
    assert_eq!(one("StateDirectory"), "iterable-lists");
    assert_eq!(one("EnvironmentFile"), "/etc/iterable-lists/secrets.env");
    assert_eq!(one("CapabilityBoundingSet"), "");
    // The config stores the database where the unit lets the service write.
    let config = deploy("config.toml");
    assert!(
        config.contains("url = \"sqlite:///var/lib/iterable-lists/"),
        "{config}"
    );
    // Every secret of the config comes from a variable that the secrets file sets.
    let secrets: Vec<String> = env_file(&deploy("secrets.env.example"))
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    for line in config.lines().filter(|l| !l.trim_start().starts_with('#')) {
        if let Some((k, v)) = line.split_once('=')
            && k.trim().ends_with("_env")
        {
            let var = v.trim().trim_matches('"');
            assert!(
                secrets.iter().any(|s| s == var),
                "{var} is not in secrets.env"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_unit_command_line_serves_with_the_example_config() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // The example's secrets, but for the API key: the emulator's project has its own, in
    // Iterable's format (32 hex characters), as the operator puts the project's there.
    let mut secrets = env_file(&deploy("secrets.env.example"));
    for (k, v) in &mut secrets {
        if k == "ITERABLE_API_KEY" {
            *v = "0123456789abcdef0123456789abcdef".into();
        }
    }
    let secret = |name: &str| {
        secrets
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{name} is not in secrets.env.example"))
    };
    let mut c = EmulatorConfig::default().with_project(ProjectConfig::new(
        ProjectType::Hybrid,
        secret("ITERABLE_API_KEY"),
    ));
    c.listen = "127.0.0.1:0".parse().expect("addr");
    let emu = Emulator::start(c).await.expect("emulator");

    // The unit's directories under a temporary one.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let root = std::env::temp_dir().join(format!("il-deploy-{}-{nanos}", std::process::id()));
    let (etc, state) = (root.join("etc"), root.join("state"));
    std::fs::create_dir_all(&etc).expect("etc");
    std::fs::create_dir_all(&state).expect("state");
    let moved = |text: &str| {
        text.replace("/etc/iterable-lists", &etc.display().to_string())
            .replace("/var/lib/iterable-lists", &state.display().to_string())
    };
    // The example config as it is, but for the paths and Iterable's address (the emulator's).
    let config = moved(&deploy("config.toml"));
    assert_eq!(config.matches("\nregion = \"us\"\n").count(), 1, "{config}");
    let config = config.replace(
        "\nregion = \"us\"\n",
        &format!("\nbase_url = \"{}\"\n", emu.url()),
    );
    let config_path = etc.join("config.toml");
    std::fs::write(&config_path, &config).expect("config");

    // ExecStart, word by word, with the binary and the directories moved.
    let unit = unit_settings(&deploy("iterable-lists.service"));
    let exec = unit["ExecStart"].last().expect("ExecStart").clone();
    let words: Vec<String> = moved(&exec)
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert_eq!(words[0], "/usr/local/bin/iterable-lists", "{exec}");
    assert_eq!(
        words[1..],
        ["serve", "--config", &config_path.display().to_string()]
    );
    let workdir = PathBuf::from(moved(&unit["WorkingDirectory"][0]));
    let env = |cmd: &mut Command| {
        cmd.current_dir(&workdir)
            .env_remove("ITERABLE_LISTS_STORAGE_URL")
            // A free port instead of the config's 8080.
            .env("ITERABLE_LISTS_LISTEN", "127.0.0.1:0");
        for (k, v) in &secrets {
            cmd.env(k, v);
        }
    };
    let mut cmd = Command::new(BIN);
    cmd.args(&words[1..])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    env(&mut cmd);
    let mut svc = Service(cmd.spawn().expect("start the service"));
    let stdout = svc.0.stdout.take().expect("stdout");
    let first = BufReader::new(stdout)
        .lines()
        .next()
        .expect("a line")
        .expect("read");
    let url = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("{first}"))
        .to_string();

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    for (path, want) in [("/healthz", "ok\n"), ("/readyz", "ready\n")] {
        let r = http.get(format!("{url}{path}")).send().await.expect(path);
        assert_eq!(r.status().as_u16(), 200, "{path}");
        assert_eq!(r.text().await.expect("body"), want);
    }
    let write_key = secret("ITERABLE_LISTS_WRITE_KEYS");
    let event = json!({
        "type": "identify",
        "messageId": "deploy-1",
        "userId": "ann",
        "traits": {"email": "ann@example.com", "vip_users": true},
        "context": {"personas": {"computation_key": "vip_users", "computation_class": "audience"}}
    });
    let r = http
        .post(format!("{url}/v1/batch"))
        .basic_auth(&write_key, Some(""))
        .header("Content-Type", "application/json")
        .body(json!({ "batch": [event] }).to_string())
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 200, "{:?}", r.text().await);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let members: Vec<String> = emu
            .state(true)
            .iter()
            .flat_map(|p| p.lists.iter())
            .filter(|l| l.name == "vip_users")
            .flat_map(|l| l.members.iter().flatten())
            .filter_map(|m| m.email.clone())
            .collect();
        if members == ["ann@example.com"] {
            break;
        }
        assert!(Instant::now() < deadline, "never delivered: {members:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The admin token of the secrets opens the admin endpoints; without it, they are closed
    // even to loopback.
    let status = http
        .get(format!("{url}/v1/status"))
        .bearer_auth(secret("ITERABLE_LISTS_ADMIN_TOKEN"))
        .send()
        .await
        .expect("status");
    assert_eq!(status.status().as_u16(), 200);
    let anonymous = http
        .get(format!("{url}/v1/status"))
        .send()
        .await
        .expect("status");
    assert_eq!(anonymous.status().as_u16(), 401);

    // systemd stops it with SIGTERM.
    let pid = svc.0.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let stop_by = Instant::now() + Duration::from_secs(30);
    let code = loop {
        if let Some(code) = svc.0.try_wait().expect("wait") {
            break code;
        }
        assert!(Instant::now() < stop_by, "did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(code.success(), "{code:?}");
    assert!(state.join("iterable-lists.db").exists());

    // `check` on the same config and secrets.
    let mut check = Command::new(BIN);
    check.args(["check", "--config", &config_path.display().to_string()]);
    env(&mut check);
    let out = check.output().expect("check");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("ok: destination \"prod\""), "{text}");
    drop(svc);
    let _ = std::fs::remove_dir_all(&root);
}
