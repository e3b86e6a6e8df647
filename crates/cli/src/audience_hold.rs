//! `iterable-lists audience hold show|release|discard`: the mass-removal guard's hold of one
//! audience, from the store the service runs with (`--config`). `show` only reads; `release`
//! makes the held removals due (every instance sends them at its next look, within a second
//! or two) and `discard` settles them without sending (the users stay on the list; each
//! removal's event says the operator discarded it). The same as the admin endpoints
//! `POST /v1/holds/release|discard`, through the same code (`server::holds`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use clap::{Args, Subcommand};
use server::app::system_clock;
use server::config::{Config, Storage};
use server::holds::{resolve, resolved_json, show, shown_json};
use server::status::time_text;
use sync::postgres::Access;
use sync::sqlite::OpenOptions;
use sync::{HoldAction, PostgresStore, SqliteStore, Store};

use crate::service::open_for_reading;

#[derive(Debug, Subcommand)]
pub enum HoldCommand {
    /// Whether the audience's removals are held, since when, how many, and why.
    Show {
        #[command(flatten)]
        target: Target,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Send the held removals: they become due now and the guard lets them through.
    Release {
        #[command(flatten)]
        target: Target,
    },
    /// Do not send the held removals: the users stay on the list, and each removal's event
    /// says the operator discarded it.
    Discard {
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Debug, Args)]
pub struct Target {
    /// The service's TOML configuration.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The destination (required when the configuration has several).
    #[arg(long, value_name = "NAME")]
    destination: Option<String>,
    /// The audience key.
    #[arg(long, value_name = "KEY")]
    audience: String,
}

/// The store, for writing, without creating it (the service does that) and without the
/// integrity check (the service ran it at start).
async fn open_for_writing(cfg: &Config) -> Result<Store> {
    Ok(match &cfg.storage {
        Storage::Sqlite { path } => {
            let options = OpenOptions { quick_check: None };
            Store::sqlite(
                SqliteStore::open_with_options(path, &options).map_err(|e| anyhow!("{e}"))?,
            )
        }
        Storage::SqliteMemory => bail!(
            "an in-memory database (sqlite::memory:) exists only inside the running service; \
             ask it instead: POST /v1/holds/release or /v1/holds/discard"
        ),
        Storage::Postgres { url } => Store::postgres(
            PostgresStore::open(url.expose(), 2, Access::ReadWrite)
                .await
                .map_err(|e| anyhow!("{e}"))?,
        ),
    })
}

/// Who decided, as the store and the logs keep it.
fn actor() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    format!("the command line (user {user})")
}

pub fn run(cmd: &HoldCommand) -> Result<()> {
    match cmd {
        HoldCommand::Show { target, json } => show_hold(target, *json),
        HoldCommand::Release { target } => decide(target, HoldAction::Release),
        HoldCommand::Discard { target } => decide(target, HoldAction::Discard),
    }
}

fn show_hold(t: &Target, json: bool) -> Result<()> {
    let (cfg, store, rt) = open_for_reading(t.config.as_deref())?;
    let d = crate::choose::destination(
        &cfg,
        t.destination.as_deref(),
        &crate::choose::source_of(t.config.as_deref()),
    )?
    .name
    .clone();
    let (hold, last) = rt
        .block_on(async {
            let hold = show(&store, &d, &t.audience).await?;
            let last = store.last_hold_decision(&d, &t.audience).await?;
            Ok::<_, sync::StoreError>((hold, last))
        })
        .map_err(|e| anyhow!("{e}"))?;
    let now = (system_clock())();
    if json {
        let mut v = shown_json(&d, &t.audience, hold.as_ref());
        v["lastDecision"] = match &last {
            Some((what, at)) => serde_json::json!({"decision": what, "atMs": at}),
            None => serde_json::Value::Null,
        };
        println!("{v}");
        return Ok(());
    }
    let last = last.map_or_else(String::new, |(what, at)| {
        format!("\nlast decision: {what} ({})", time_text(at, now))
    });
    match hold {
        None => println!(
            "the removals of audience {} (destination {d}) are not held{last}",
            t.audience
        ),
        Some(h) => println!(
            "the removals of audience {} (destination {d}) are held since {}: {}; {} removal(s) \
             wait.\nSend them: iterable-lists audience hold release{} --destination {d} \
             --audience {}\nKeep the users on the list: iterable-lists audience hold discard ...",
            t.audience,
            time_text(h.since_ms, now),
            h.describe(),
            h.held,
            config_arg(t.config.as_deref()),
            t.audience
        ),
    }
    Ok(())
}

fn config_arg(config: Option<&Path>) -> String {
    config.map_or_else(String::new, |c| format!(" --config {}", c.display()))
}

fn decide(t: &Target, action: HoldAction) -> Result<()> {
    // The same checks as the reading commands (the database must exist), then a writable
    // handle on it.
    let (cfg, reader, rt) = open_for_reading(t.config.as_deref())?;
    drop(reader);
    let d = crate::choose::destination(
        &cfg,
        t.destination.as_deref(),
        &crate::choose::source_of(t.config.as_deref()),
    )?
    .name
    .clone();
    let n = rt.block_on(async {
        let store = open_for_writing(&cfg).await?;
        let now = (system_clock())();
        resolve(&store, &d, &t.audience, action, &actor(), now)
            .await
            .map_err(|e| anyhow!("{e}"))
    })?;
    println!("{}", resolved_json(&d, &t.audience, action, n));
    // Give the runtime a moment to close the store's connections cleanly.
    rt.shutdown_timeout(Duration::from_secs(2));
    Ok(())
}
