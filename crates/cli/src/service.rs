//! The service subcommands: `serve` runs the sync service, `demo` runs it beside an in-process
//! Iterable emulator, and `status` / `events show` read what the store knows.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use iterable_emulator::{Emulator, EmulatorConfig, ProjectConfig, ProjectType as EmuProjectType};
use server::RunningService;
use server::app::{open_store, system_clock};
use server::config::Config;
use server::status::{DestinationState, DestinationStatus, event_json, event_text, status_text};

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

/// `serve`: runs until SIGTERM or Ctrl-C. The first stdout line is `listening on http://ADDR`.
pub fn serve(config: Option<&Path>) -> Result<()> {
    let cfg = load(config)?;
    if cfg.destinations.is_empty() {
        eprintln!(
            "warning: no destinations configured; events will be refused until one is \
             (see README: --config FILE, or ITERABLE_API_KEY and ITERABLE_LISTS_WRITE_KEYS)"
        );
    }
    let rt = runtime()?;
    rt.block_on(async move {
        let svc = RunningService::start(cfg)
            .await
            .map_err(|e| anyhow!("{e}"))?;
        println!("listening on {}", svc.url());
        let _ = std::io::stdout().flush();
        shutdown_signal().await;
        eprintln!("shutting down: finishing in-flight requests and deliveries");
        svc.shutdown(GRACE).await;
        eprintln!("stopped");
        Ok(())
    })
}

/// `status`: each destination and audience, from the store.
pub fn status(config: Option<&Path>, json: bool) -> Result<()> {
    let cfg = load(config)?;
    let store = open_store(&cfg.storage).map_err(|e| anyhow!("{e}"))?;
    let mut all = Vec::new();
    for d in &cfg.destinations {
        // The state the service stored: running, paused (a refused key) or degraded.
        let state = if d.enabled {
            let stored = store
                .destination_state(&d.name)
                .map_err(|e| anyhow!("{e}"))?;
            Some(stored.unwrap_or(DestinationState::Running))
        } else {
            None
        };
        all.push(
            DestinationStatus::read(store.as_ref(), &d.name, d.enabled, state)
                .map_err(|e| anyhow!("{e}"))?,
        );
    }
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
    let cfg = load(config)?;
    if let Some(d) = destination
        && !cfg.destinations.iter().any(|x| x.name == d)
    {
        bail!("no destination named {d:?} in the configuration");
    }
    let store = open_store(&cfg.storage).map_err(|e| anyhow!("{e}"))?;
    let mut found = Vec::new();
    for d in &cfg.destinations {
        if destination.is_some_and(|n| n != d.name) {
            continue;
        }
        if let Some(r) = store
            .event_status(&d.name, message_id)
            .map_err(|e| anyhow!("{e}"))?
        {
            found.push(r);
        }
    }
    if found.is_empty() {
        bail!("no event with messageId {message_id:?}");
    }
    for r in &found {
        if json {
            println!("{}", event_json(r));
        } else {
            print!("{}", event_text(r));
        }
    }
    Ok(())
}

const DEMO_KEY: &str = "0123456789abcdef0123456789abcdef";
const DEMO_WRITE_KEY: &str = "demo_write_key";

/// `demo`: the service and an in-process emulator, with commands to paste.
pub fn demo(listen: &str, data_dir: Option<&Path>) -> Result<()> {
    let rt = runtime()?;
    rt.block_on(async move {
        let emu_cfg = EmulatorConfig {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            projects: vec![ProjectConfig::new(EmuProjectType::Hybrid, DEMO_KEY)],
            ..EmulatorConfig::default()
        };
        let emu = Emulator::start(emu_cfg)
            .await
            .map_err(|e| anyhow!("cannot start the emulator: {e}"))?;
        let dir: PathBuf = match data_dir {
            Some(d) => d.to_path_buf(),
            None => std::env::temp_dir().join(format!("iterable-lists-demo-{}", std::process::id())),
        };
        let db = dir.join("demo.db");
        let text = format!(
            "listen = {listen:?}\n[storage]\nurl = \"sqlite://{}\"\n[[destination]]\nname = \"demo\"\n\
             api_key = \"{DEMO_KEY}\"\nproject_type = \"hybrid\"\nbase_url = \"{}\"\n\
             write_keys = [\"{DEMO_WRITE_KEY}\"]\n[destination.delivery]\nlinger_ms = 200\n",
            db.display(),
            emu.url()
        );
        let cfg = Config::parse(&text, &|_| None).map_err(|e| anyhow!("{e}"))?;
        let svc = RunningService::start(cfg)
            .await
            .map_err(|e| anyhow!("{e}"))?;
        let url = svc.url();
        println!("listening on {url}");
        println!(
            "\niterable-lists demo: the sync service on {url}, an Iterable emulator on {} \
             (hybrid project), data in {}\n",
            emu.url(),
            dir.display()
        );
        println!("Send an Engage audience entry with curl:\n");
        println!(
            "curl -s -u {DEMO_WRITE_KEY}: {url}/v1/batch -H 'Content-Type: application/json' -d '{{\"batch\":[{{\"type\":\"identify\",\"userId\":\"ann\",\"traits\":{{\"email\":\"ann@example.com\",\"vip_users\":true}},\"context\":{{\"personas\":{{\"computation_key\":\"vip_users\",\"computation_class\":\"audience\"}}}}}}]}}'\n"
        );
        println!("Or from Python (pip install segment-analytics-python):\n");
        println!(
            "python3 -c 'import segment.analytics as a; a.write_key=\"{DEMO_WRITE_KEY}\"; a.host=\"{url}\"; \
             a.identify(\"bob\", {{\"email\": \"bob@example.com\", \"vip_users\": True}}, context={{\"personas\": {{\"computation_key\": \"vip_users\", \"computation_class\": \"audience\"}}}}); a.flush()'\n"
        );
        println!("Then look:  curl -s {url}/v1/status   |   curl -s {}/_emulator/state\n", emu.url());
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
