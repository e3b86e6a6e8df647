//! The emulator's listeners against idle and slow clients: timeouts close them, and at the
//! connection cap (shared by the US and EU listeners) a real client's request still gets
//! through, closing an idle connection.

mod support;

use std::time::Duration;

use iterable_emulator::{Emulator, EmulatorConfig, HttpConfig};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a test waits for something that should happen soon (generous: a loaded machine
/// may be slow, and nothing here is timed).
const PATIENCE: Duration = Duration::from_secs(30);

/// Reads until the server closes the connection (a reset counts as a close).
async fn wait_closed(s: &mut TcpStream) {
    let r = tokio::time::timeout(PATIENCE, async {
        let mut buf = [0u8; 1024];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(r.is_ok(), "the emulator did not close the connection");
}

async fn wait_open(emu: &iterable_emulator::RunningEmulator, n: usize) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while emu.open_connections() != n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} open, want {n}",
            emu.open_connections()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn with_http(http: HttpConfig) -> EmulatorConfig {
    let mut c = config();
    c.listen_eu = Some("127.0.0.1:0".parse().expect("address"));
    c.http = http;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_half_header_and_stalled_body_connections_are_closed() {
    let emu = Emulator::start(with_http(HttpConfig {
        header_timeout_ms: 200,
        body_grace_ms: 200,
        ..HttpConfig::default()
    }))
    .await
    .expect("emulator");
    let addr = emu.addr();
    let mut silent = TcpStream::connect(addr).await.expect("connect");
    let mut half = TcpStream::connect(addr).await.expect("connect");
    half.write_all(b"POST /api/lists HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let mut body = TcpStream::connect(addr).await.expect("connect");
    body.write_all(
        format!(
            "POST /api/lists HTTP/1.1\r\nHost: x\r\nApi-Key: {HYBRID_KEY}\r\n\
             Content-Length: 100\r\n\r\n{{"
        )
        .as_bytes(),
    )
    .await
    .expect("write");
    for s in [&mut silent, &mut half, &mut body] {
        wait_closed(s).await;
    }
    wait_open(&emu, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_cap_a_client_request_closes_the_connection_idle_the_longest() {
    let emu = Emulator::start(with_http(HttpConfig {
        max_connections: Some(3),
        ..HttpConfig::default()
    }))
    .await
    .expect("emulator");
    assert_eq!(emu.max_connections(), 3);
    let mut idle = Vec::new();
    for i in 1..=3 {
        idle.push(TcpStream::connect(emu.addr()).await.expect("connect"));
        wait_open(&emu, i).await;
    }
    // The cap counts both listeners: a request to the EU one closes the oldest US connection.
    let eu = emu.eu_url().expect("eu listener");
    // One client, whose EU connection stays open (kept alive) while it calls the US listener.
    let client = http();
    let r = client
        .get(format!("{eu}/api/lists"))
        .header("Api-Key", EU_KEY)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    wait_closed(&mut idle[0]).await;
    let r = client
        .post(format!("{}/api/lists", emu.url()))
        .header("Api-Key", HYBRID_KEY)
        .body(r#"{"name":"through"}"#)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    wait_closed(&mut idle[1]).await;
    assert_eq!(emu.state(false)[0].lists.len(), 1);
}

#[test]
fn http_settings_from_toml_and_their_errors() {
    let c = EmulatorConfig::from_toml(
        "[http]\nmax_connections = 50\nheader_timeout_ms = 2000\nbody_min_rate = 10\n",
    )
    .expect("toml");
    let l = c.http.limits().expect("limits");
    assert_eq!(l.max_connections, Some(50));
    assert_eq!(l.header_timeout, Duration::from_secs(2));
    assert_eq!(l.body_min_rate, 10);
    assert_eq!(l.keep_alive_timeout, Duration::from_secs(75));
    let err = EmulatorConfig::from_toml("[http]\nread_timeout_ms = 5").expect_err("unknown");
    assert!(err.reason.contains("read_timeout_ms"), "{err}");
    for (http, field) in [
        (
            HttpConfig {
                header_timeout_ms: 0,
                ..HttpConfig::default()
            },
            "http.header_timeout_ms",
        ),
        (
            HttpConfig {
                write_timeout_ms: 86_400_001,
                ..HttpConfig::default()
            },
            "http.write_timeout_ms",
        ),
        (
            HttpConfig {
                body_min_rate: 0,
                ..HttpConfig::default()
            },
            "http.body_min_rate",
        ),
        (
            HttpConfig {
                max_connections: Some(0),
                ..HttpConfig::default()
            },
            "http.max_connections",
        ),
    ] {
        let mut c = config();
        c.http = http;
        assert_eq!(c.validate().expect_err(field).field, field);
    }
}

#[test]
fn http_flags_are_read_and_checked() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_iterable-emulator"))
        .args(["--project", &format!("hybrid:{HYBRID_KEY}")])
        .args(["--listen", "127.0.0.1:0", "--keep-alive-timeout-ms", "0"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("http.keep_alive_timeout_ms"), "{err}");
}
