//! A headless Chromium driven through `chromedriver` (Debian's `chromium` and
//! `chromium-driver` packages), for the console's browser tests: [`Browser::start`] installs
//! the packages with apt-get when they are missing and the tests run as root (once, under a
//! lock, however many tests ask at the same time), else fails saying how to install them; then
//! starts `chromedriver` on a free port and opens a WebDriver session with headless Chromium.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use serde_json::{Map, Value, json};

use crate::install::{INSTALL_TIMEOUT, InstallLock};
use crate::process::{expect_success, run};

/// Where Debian puts the browser and its driver.
pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

const HOW: &str = "the console's browser tests need Debian's chromium and chromium-driver \
                   packages: run `apt-get install -y chromium chromium-driver` as root";

/// Makes sure Chromium and chromedriver are installed: installs them with apt-get when missing
/// and running as root; else an error saying how to install them.
pub fn ensure_installed() -> Result<(), String> {
    let present = || Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists();
    if present() {
        return Ok(());
    }
    if !is_root() {
        return Err(format!("{CHROMIUM} or {CHROMEDRIVER} is missing; {HOW}"));
    }
    let _lock = InstallLock::acquire(&std::env::temp_dir().join("iterable-lists-chromium.lock"))?;
    if present() {
        return Ok(());
    }
    eprintln!("installing chromium and chromium-driver with apt-get");
    let apt = |args: &[&str]| -> Result<(), String> {
        let mut cmd = Command::new("apt-get");
        cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        let what = format!("apt-get {}", args.join(" "));
        expect_success(run(cmd, INSTALL_TIMEOUT, &what, HOW)?, &what)
    };
    apt(&["update"])?;
    apt(&[
        "install",
        "-y",
        "--no-install-recommends",
        "chromium",
        "chromium-driver",
    ])?;
    if present() {
        Ok(())
    } else {
        Err(format!(
            "apt-get installed the packages but {CHROMIUM} or {CHROMEDRIVER} is still missing; {HOW}"
        ))
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A running chromedriver and a WebDriver session with headless Chromium; both end on drop
/// (call [`Browser::close`] to end the session cleanly first).
pub struct Browser {
    pub client: Client,
    driver: Child,
}

impl Browser {
    /// Installs what is missing (see [`ensure_installed`]), starts chromedriver and a headless
    /// Chromium with a window of `width`×`height`.
    pub async fn start(width: u32, height: u32) -> Result<Browser, String> {
        tokio::task::spawn_blocking(ensure_installed)
            .await
            .map_err(|e| format!("install task: {e}"))??;
        let port = free_port()?;
        let mut driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("start {CHROMEDRIVER}: {e}; {HOW}"))?;
        if let Err(e) = wait_listening(port, &mut driver).await {
            let _ = driver.kill();
            let _ = driver.wait();
            return Err(e);
        }
        let mut caps = Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu",
                    "--disable-dev-shm-usage", "--no-first-run", "--hide-scrollbars",
                    format!("--window-size={width},{height}"),
                ],
            }),
        );
        caps.insert("pageLoadStrategy".into(), Value::from("normal"));
        let client = ClientBuilder::new(hyper_connector())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await;
        match client {
            Ok(client) => Ok(Browser { client, driver }),
            Err(e) => {
                let _ = driver.kill();
                let _ = driver.wait();
                Err(format!("open a Chromium session through chromedriver: {e}"))
            }
        }
    }

    /// Ends the WebDriver session (Chromium exits) and chromedriver.
    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn hyper_connector() -> hyper_util::client::legacy::connect::HttpConnector {
    hyper_util::client::legacy::connect::HttpConnector::new()
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("find a free port: {e}"))
}

async fn wait_listening(port: u16, driver: &mut Child) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return Ok(());
        }
        if let Ok(Some(status)) = driver.try_wait() {
            return Err(format!("chromedriver exited at start ({status})"));
        }
        if Instant::now() > deadline {
            return Err("chromedriver did not listen within 30 s".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
