//! The `iterable-emulator` binary as a user starts it: the documented command line, the first
//! stdout line, a real client call, and clear errors for bad flags.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_iterable-emulator");
const K1: &str = "0123456789abcdef0123456789abcdef";
const K2: &str = "fedcba9876543210fedcba9876543210";

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn documented_command_starts_and_answers() {
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0"])
        .args(["--project", &format!("hybrid:{K1}")])
        .args(["--project", &format!("userId:{K2}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn emulator");
    let stdout = child.stdout.take().expect("stdout");
    let _guard = Running(child);
    let mut first = String::new();
    BufReader::new(stdout)
        .read_line(&mut first)
        .expect("first line");
    let url = first
        .trim_end()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("first line: {first:?}"))
        .to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{url}/api/lists"))
        .header("Api-Key", K2)
        .body(r#"{"name":"from the cli"}"#)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
    let body = r.text().await.expect("body");
    assert!(body.starts_with("{\"listId\":"), "{body}");
    let r = http
        .get(format!("{url}/api/lists"))
        .header("Api-Key", K1)
        .send()
        .await
        .expect("request");
    assert_eq!(
        r.text().await.expect("body"),
        r#"{"lists":[]}"#,
        "projects are separate"
    );
}

#[test]
fn bad_flags_fail_with_a_message_naming_the_problem() {
    let cases: &[(&[&str], &str)] = &[
        (&["--listen", "127.0.0.1:0"], "project"),
        (&["--project", "hybrid:short"], "api_keys"),
        (
            &["--project", "weird:0123456789abcdef0123456789abcdef"],
            "weird",
        ),
        (
            &[
                "--project",
                "hybrid:0123456789abcdef0123456789abcdef",
                "--fail-500",
                "3",
            ],
            "error_500",
        ),
        (
            &[
                "--project",
                "hybrid:0123456789abcdef0123456789abcdef",
                "--limit",
                "subscribe=fast",
            ],
            "subscribe=fast",
        ),
        (
            &[
                "--project",
                "hybrid:0123456789abcdef0123456789abcdef",
                "--limit",
                "nothing=1/s",
            ],
            "nothing",
        ),
        (
            &["--config", "/nonexistent/emulator.toml"],
            "/nonexistent/emulator.toml",
        ),
    ];
    for (args, needle) in cases {
        let out = Command::new(BIN).args(*args).output().expect("run");
        assert!(!out.status.success(), "{args:?} should fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains(K1), "keys are never printed: {err}");
    }
}

#[test]
fn config_file_is_read() {
    let dir = std::env::temp_dir().join(format!("emu-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let path = dir.join("emulator.toml");
    std::fs::write(
        &path,
        "listen = \"127.0.0.1:0\"\n[faults]\nerror_500 = 7.0\n",
    )
    .expect("write");
    let out = Command::new(BIN)
        .args([
            "--config",
            path.to_str().expect("utf8"),
            "--project",
            &format!("hybrid:{K1}"),
        ])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("faults.error_500"), "{err}");
    assert!(!err.contains(K1), "keys are never printed: {err}");
    let _ = std::fs::remove_dir_all(&dir);
}
