//! The service subcommands: `serve` runs the sync service, `demo` runs it beside an in-process
//! Iterable emulator, and `status` / `events show` read what the store knows.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use iterable_emulator::{Emulator, EmulatorConfig, ProjectConfig, ProjectType as EmuProjectType};
use server::app::{open_store_read_only, system_clock};
use server::config::{Config, Secrets, Storage};
use server::logs::LogFormat;
use server::status::{DestinationState, DestinationStatus, event_json, event_text, status_text};
use server::{RunningService, StartError};
use sync::Store;

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")
}

fn load(config: Option<&Path>) -> Result<Config> {
    Config::load(config).map_err(|e| anyhow!("{e}"))
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// How long in-flight work may take to finish after a shutdown signal.
const GRACE: Duration = Duration::from_secs(10);

/// Sends the logs to stderr in `format`, filtered by `RUST_LOG`.
fn install_logs(format: LogFormat) -> Result<()> {
    server::logs::install(format).map_err(|e| anyhow!("{e}"))
}

/// `serve`: runs until SIGTERM or Ctrl-C. The first stdout line is `listening on http://ADDR`;
/// logs go to stderr, in `log_format` (else the configuration's `[log] format`).
pub fn serve(config: Option<&Path>, log_format: Option<LogFormat>) -> Result<()> {
    let cfg = load(config)?;
    install_logs(log_format.unwrap_or(cfg.log_format))?;
    if cfg.destinations.is_empty() {
        tracing::warn!(
            "no destinations configured; events will be refused until one is (see README: \
             --config FILE, or ITERABLE_API_KEY and ITERABLE_LISTS_WRITE_KEYS)"
        );
    }
    // Every descriptor the process may have: the connection cap is derived from it.
    let files = listener::raise_open_file_limit();
    if let Err(e) = &files {
        tracing::warn!(error = %e, "cannot raise the open-file limit");
    }
    let rt = runtime()?;
    rt.block_on(async move {
        let svc = RunningService::start(cfg)
            .await
            .map_err(|e| anyhow!("{e}"))?;
        println!("listening on {}", svc.url());
        if let Some(a) = svc.metrics_addr() {
            println!("metrics on http://{a}/metrics");
        }
        let (cap, files) = (
            svc.connections().cap(),
            files.map_or_else(|_| "unknown".to_string(), |n| n.to_string()),
        );
        tracing::info!(
            max_connections = cap,
            open_file_limit = %files,
            "accepting up to {cap} connections (max_connections; open-file limit {files})"
        );
        let _ = std::io::stdout().flush();
        shutdown_signal().await;
        tracing::info!("shutting down: finishing in-flight requests and deliveries");
        svc.shutdown(GRACE).await;
        tracing::info!("stopped");
        Ok(())
    })
}

/// The configuration and the store of a command that only reads: the secrets may be unset,
/// and the database must exist (it is never created here).
pub(crate) fn open_for_reading(
    config: Option<&Path>,
) -> Result<(Config, Store, tokio::runtime::Runtime)> {
    let cfg = Config::load_with(config, Secrets::Optional).map_err(|e| anyhow!("{e}"))?;
    if let Storage::Sqlite { path } = &cfg.storage
        && matches!(path.try_exists(), Ok(false))
    {
        let shown = std::path::absolute(path).unwrap_or_else(|_| path.clone());
        let from = match config {
            Some(c) => format!(
                "the [storage] url of {}; a relative path there is relative to that file's \
                 directory",
                c.display()
            ),
            None => format!(
                "the default {}, relative to the working directory, as no --config was given",
                path.display()
            ),
        };
        bail!(
            "no database at {} ({from}). `iterable-lists serve` creates it when it starts: \
             check the path, or pass the --config FILE the service runs with",
            shown.display()
        );
    }
    let rt = runtime()?;
    let store = rt
        .block_on(open_store_read_only(&cfg))
        .map_err(|e| anyhow!("{e}"))?;
    Ok((cfg, store, rt))
}

/// `status`: each destination and audience, from the store.
pub fn status(config: Option<&Path>, json: bool) -> Result<()> {
    let (cfg, store, rt) = open_for_reading(config)?;
    let all = rt.block_on(async {
        let mut all = Vec::new();
        for d in &cfg.destinations {
            // The state the service stored: running, paused (a refused key) or degraded.
            let state = if d.enabled {
                let stored = store
                    .destination_state(&d.name)
                    .await
                    .map_err(|e| anyhow!("{e}"))?;
                Some(stored.unwrap_or(DestinationState::Running))
            } else {
                None
            };
            all.push(
                DestinationStatus::read(&store, &d.name, d.enabled, state)
                    .await
                    .map_err(|e| anyhow!("{e}"))?,
            );
        }
        Ok::<_, anyhow::Error>(all)
    })?;
    if json {
        let v: Vec<_> = all.iter().map(DestinationStatus::to_json).collect();
        println!("{}", serde_json::json!({ "destinations": v }));
    } else {
        print!("{}", status_text(&all, (system_clock())()));
    }
    Ok(())
}

/// `events show ID`: what happened to one event, in each audience.
pub fn event_show(
    config: Option<&Path>,
    message_id: &str,
    destination: Option<&str>,
    json: bool,
) -> Result<()> {
    let (cfg, store, rt) = open_for_reading(config)?;
    if let Some(d) = destination
        && !cfg.destinations.iter().any(|x| x.name == d)
    {
        bail!("no destination named {d:?} in the configuration");
    }
    let found = rt.block_on(async {
        let mut found = Vec::new();
        for d in &cfg.destinations {
            if destination.is_some_and(|n| n != d.name) {
                continue;
            }
            let r = store.event_status(&d.name, message_id).await;
            found.extend(r.map_err(|e| anyhow!("{e}"))?);
        }
        Ok::<_, anyhow::Error>(found)
    })?;
    if found.is_empty() {
        bail!("no event with messageId {message_id:?}");
    }
    for r in &found {
        if json {
            println!("{}", event_json(r));
        } else {
            print!("{}", event_text(r, (system_clock())()));
        }
    }
    Ok(())
}

const DEMO_KEY: &str = "0123456789abcdef0123456789abcdef";
const DEMO_WRITE_KEY: &str = "demo_write_key";

/// How to run this program again in a printed command: its name when it was found on the
/// `PATH` (installed), else its full path (e.g. under `target/` after `cargo run`).
fn program_name() -> String {
    let invoked = std::env::args_os().next().unwrap_or_default();
    if !invoked.is_empty() && Path::new(&invoked).components().count() == 1 {
        return Path::new(&invoked).display().to_string();
    }
    std::env::current_exe().map_or_else(
        |_| "iterable-lists".to_string(),
        |p| p.display().to_string(),
    )
}

/// Writes the demo's configuration, `iterable-lists.toml` in `dir`, and returns its path. The
/// database, `demo.db`, is named relative to the file, so the file works from any directory.
fn write_demo_config(dir: &Path, listen: SocketAddr, emulator_url: &str) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join("iterable-lists.toml");
    let text = format!(
        "# Written by `iterable-lists demo`: the configuration it runs with. Read it with\n\
         # `iterable-lists status --config FILE` or `iterable-lists events show ID --config FILE`.\n\
         listen = \"{listen}\"\n\
         [storage]\n\
         url = \"sqlite://demo.db\"   # relative to this file's directory\n\
         [[destination]]\n\
         name = \"demo\"\n\
         api_key = \"{DEMO_KEY}\"   # the emulator's demo project\n\
         project_type = \"hybrid\"\n\
         base_url = \"{emulator_url}\"\n\
         write_keys = [\"{DEMO_WRITE_KEY}\"]\n\
         [destination.delivery]\n\
         linger_ms = 200\n"
    );
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// What the demo prints once it runs: where things are, a curl call (with a messageId, unique
/// per run so that an event of an earlier run in the same --data-dir is not taken for its
/// duplicate), a Python snippet, and the commands that look the event up.
fn print_demo_instructions(url: &str, emulator_url: &str, dir: &Path, config: &Path) {
    let message_id = format!("demo-ann-{}", (system_clock())());
    let me = program_name();
    println!("listening on {url}");
    println!(
        "\niterable-lists demo: the sync service on {url}, an Iterable emulator on {} \
         (hybrid project), data in {}",
        emulator_url,
        dir.display()
    );
    println!("configuration: {}\n", config.display());
    println!("Send an Engage audience entry with curl:\n");
    println!(
        "curl -s -u {DEMO_WRITE_KEY}: {url}/v1/batch -H 'Content-Type: application/json' -d '{{\"batch\":[{{\"type\":\"identify\",\"messageId\":\"{message_id}\",\"userId\":\"ann\",\"traits\":{{\"email\":\"ann@example.com\",\"vip_users\":true}},\"context\":{{\"personas\":{{\"computation_key\":\"vip_users\",\"computation_class\":\"audience\"}}}}}}]}}'\n"
    );
    println!("Or from Python (pip install segment-analytics-python):\n");
    println!(
        "python3 -c 'import segment.analytics as a; a.write_key=\"{DEMO_WRITE_KEY}\"; a.host=\"{url}\"; \
         a.identify(\"bob\", {{\"email\": \"bob@example.com\", \"vip_users\": True}}, context={{\"personas\": {{\"computation_key\": \"vip_users\", \"computation_class\": \"audience\"}}}}); a.flush()'\n"
    );
    println!("Then look the curl's event up by its messageId, and every audience:\n");
    println!(
        "  {me} events show {message_id} --config {}",
        config.display()
    );
    println!("  {me} status --config {}", config.display());
    println!(
        "  curl -s {url}/v1/status   |   curl -s {}/_emulator/state\n",
        emulator_url
    );
}

/// `demo`: the service and an in-process emulator, with commands to paste; logs go to
/// stderr in `log_format`.
pub fn demo(listen: SocketAddr, data_dir: Option<&Path>, log_format: LogFormat) -> Result<()> {
    install_logs(log_format)?;
    let dir: PathBuf = match data_dir {
        Some(d) => d.to_path_buf(),
        None => std::env::temp_dir().join(format!("iterable-lists-demo-{}", std::process::id())),
    };
    let dir = std::path::absolute(&dir).unwrap_or(dir);
    let rt = runtime()?;
    rt.block_on(async move {
        let emu_cfg = EmulatorConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            projects: vec![ProjectConfig::new(EmuProjectType::Hybrid, DEMO_KEY)],
            ..EmulatorConfig::default()
        };
        let emu = Emulator::start(emu_cfg)
            .await
            .map_err(|e| anyhow!("cannot start the emulator: {e}"))?;
        let config = write_demo_config(&dir, listen, &emu.url())?;
        let mut cfg = load(Some(&config))?;
        // --listen wins over ITERABLE_LISTS_LISTEN here: it is what the demo was asked for.
        cfg.listen = listen;
        let svc = match RunningService::start(cfg).await {
            Ok(svc) => svc,
            Err(e @ StartError::Bind { .. }) => bail!(
                "{e}\nIs another program (or another demo) using it? Choose another address \
                 with --listen ADDR, e.g. --listen 127.0.0.1:8081 (or 127.0.0.1:0 for any free \
                 port)."
            ),
            Err(e) => bail!("{e}"),
        };
        let url = svc.url();
        print_demo_instructions(&url, &emu.url(), &dir, &config);
        println!("Lists in the emulator (updated as they change; Ctrl-C stops):");
        let mut last = String::new();
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        let stop = shutdown_signal();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = tick.tick() => {
                    let mut now = String::new();
                    for p in emu.state(true) {
                        for l in &p.lists {
                            let members: Vec<String> = l
                                .members
                                .iter()
                                .flatten()
                                .map(|m| m.email.clone().or_else(|| m.user_id.clone()).unwrap_or_default())
                                .collect();
                            now.push_str(&format!(
                                "  list {} {:?}: {} member(s) {}\n",
                                l.id,
                                l.name,
                                members.len(),
                                members.join(", ")
                            ));
                        }
                    }
                    if now != last {
                        print!("{now}");
                        let _ = std::io::stdout().flush();
                        last = now;
                    }
                }
            }
        }
        svc.shutdown(GRACE).await;
        Ok(())
    })
}
