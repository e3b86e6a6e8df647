//! The service under test: `iterable-lists serve` in a child process, with one destination and
//! a fresh SQLite database (or a fresh schema on PostgreSQL), stopped with SIGTERM as an
//! operator would.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use crate::harness::{ADMIN, Setup, WRITE_KEY};

pub struct Service {
    child: Child,
    /// Where it listens, `http://127.0.0.1:PORT`.
    pub url: String,
    /// Its database.
    pub db: Db,
    /// Its configuration file.
    pub config: PathBuf,
}

/// Where a service stores.
#[derive(Debug, Clone)]
pub enum Db {
    Sqlite(PathBuf),
    /// A URL whose connections use a schema of their own.
    Postgres(String),
}

impl Db {
    /// The `[storage] url`.
    fn url(&self) -> String {
        match self {
            Db::Sqlite(p) => format!("sqlite://{}", p.display()),
            Db::Postgres(u) => u.clone(),
        }
    }
}

impl Service {
    /// Starts `serve` in `setup.dir/name` with one destination "bench" sending to `base_url`
    /// with `api_key`; `delivery` is the body of its `[destination.delivery]` table.
    pub fn start(
        setup: &Setup,
        name: &str,
        base_url: &str,
        api_key: &str,
        delivery: &str,
    ) -> Result<Self> {
        let db = Db::Sqlite(setup.dir.join(name).join("db.sqlite"));
        Self::start_on(setup, name, base_url, api_key, delivery, db)
    }

    /// [`Service::start`] storing in `db`.
    pub fn start_on(
        setup: &Setup,
        name: &str,
        base_url: &str,
        api_key: &str,
        delivery: &str,
        db: Db,
    ) -> Result<Self> {
        let run = setup.dir.join(name);
        let _ = std::fs::remove_dir_all(&run);
        std::fs::create_dir_all(&run)?;
        let config = run.join("iterable-lists.toml");
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:0\"\nadmin_token = \"{ADMIN}\"\n[storage]\nurl = \"{}\"\n\
                 [[destination]]\nname = \"bench\"\napi_key = \"{api_key}\"\nproject_type = \"hybrid\"\n\
                 base_url = \"{base_url}\"\nwrite_keys = [\"{WRITE_KEY}\"]\n[destination.delivery]\n{delivery}\n",
                db.url()
            ),
        )?;
        let mut child = Command::new(&setup.service_bin)
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", setup.service_bin.display()))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("no stdout from the service"))?;
        let mut lines = BufReader::new(stdout).lines();
        let first = lines
            .next()
            .transpose()?
            .ok_or_else(|| anyhow!("the service exited before listening"))?;
        let url = first
            .strip_prefix("listening on ")
            .ok_or_else(|| anyhow!("unexpected first line from the service: {first}"))?
            .to_string();
        // Keep draining its stdout so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.by_ref() {});
        Ok(Self {
            child,
            url,
            db,
            config,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM (graceful shutdown), then waits for the exit.
    pub fn stop(mut self) -> Result<()> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.child.kill()?;
                self.child.wait()?;
                bail!("the service did not stop within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
