//! `iterable-lists`: the command-line entry point. Each subcommand is a thin shell over the
//! libraries: `serve` and `demo` run the service; `mapping eval` and `plan` preview offline;
//! `store copy` moves the state between databases; `audience sync` applies a full snapshot of an
//! audience, `audience hold` decides on the removals the mass-removal guard holds, and `audience
//! verify` compares a live list with the store and repairs drift.

mod audience_hold;
mod audience_sync;
mod audience_verify;
mod choose;
mod service;
mod store_copy;
mod verify_progress;

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, Subcommand};
use destination::plan::MAX_REQUEST_BYTES;
use destination::{ActionMapping, Limits, Planner, Refused, Settings};
use iterable::client::{Client, ClientConfig, ErrorKind};
use iterable::errors::ErrorClass;
use segment::mapping::Mapping;
use segment::membership::RetlSyncMode;
use serde_json::Value;
use server::config::{Config, Secrets};
use server::ingest::{IngestLimits, Item, read_events};
use server::logs::LogFormat;

/// mimalloc: the planner allocates many small JSON values; it runs 10-20% faster than glibc's.
/// Its settings (no transparent huge pages, a short purge delay: `allocator::configure`) keep
/// a long-running service's memory near what it uses.
#[global_allocator]
static GLOBAL: allocator::Allocator = allocator::Allocator;

/// Keeps Iterable static lists in sync with Segment audiences.
#[derive(Debug, Parser)]
#[command(name = "iterable-lists", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the sync service (Segment-compatible ingestion, delivery to Iterable).
    Serve {
        /// TOML configuration; without it, the embedded defaults (and ITERABLE_* variables).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// How log lines (stderr) are written: text or json; wins over `[log] format`.
        #[arg(long, value_name = "FORMAT")]
        log_format: Option<LogFormat>,
    },
    /// Run the service beside an in-process Iterable emulator, with commands to paste.
    Demo {
        /// Where the service listens ("127.0.0.1:0" picks a free port).
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Directory for the demo's database (default: a new temporary directory).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// How log lines (stderr) are written: text or json.
        #[arg(long, value_name = "FORMAT", default_value_t = LogFormat::Text)]
        log_format: LogFormat,
    },
    /// Each destination and audience: list id, members, pending changes, rejections.
    Status {
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Look up events in the event log.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Work with one audience: apply a full snapshot of it; the mass-removal guard's hold of
    /// its removals; its live Iterable list against the store.
    #[command(subcommand)]
    Audience(AudienceCommand),
    /// Work with Segment mappings.
    #[command(subcommand)]
    Mapping(MappingCommand),
    /// Work with the service's database.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Check the API key and region with one cheap call, and count the project's lists: of a
    /// destination of the service's configuration (--config; without it, the embedded
    /// defaults and ITERABLE_* variables), or of Segment-shaped settings (--settings).
    Check {
        /// The service's TOML configuration.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Which destination of the configuration (required when it has several).
        #[arg(long, value_name = "NAME")]
        destination: Option<String>,
        /// Destination settings in Segment's shape: {"apiKey":..,"iterableProjectType":..}.
        #[arg(long, value_name = "SETTINGS.json", conflicts_with_all = ["config", "destination"])]
        settings: Option<PathBuf>,
    },
    /// Print the Iterable requests a batch of events would produce, without any network call.
    Plan {
        /// Destination settings in Segment's shape: {"apiKey":..,"iterableProjectType":..}.
        #[arg(long, value_name = "SETTINGS.json")]
        settings: PathBuf,
        /// Field mappings overriding the defaults, in Segment's mapping shape.
        #[arg(long, value_name = "MAPPING.json")]
        mapping: Option<PathBuf>,
        /// Events, one JSON object per line ("-" reads standard input).
        #[arg(value_name = "EVENTS.ndjson")]
        events: PathBuf,
        /// Most subscribers per request.
        #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
        max_rows: u32,
        /// Most bytes of JSON body per request (the service's default `max_request_bytes`).
        #[arg(long, value_name = "BYTES", default_value_t = MAX_REQUEST_BYTES as u32, value_parser = clap::value_parser!(u32).range(256..))]
        max_bytes: u32,
        /// How reverse-ETL `new`/`updated`/`deleted` track events count: add, update, upsert,
        /// delete or mirror.
        #[arg(long, value_name = "MODE")]
        retl_sync_mode: Option<RetlSyncMode>,
    },
}

#[derive(Debug, Subcommand)]
enum AudienceCommand {
    /// The mass-removal guard's hold of an audience: show it, release the held removals
    /// (send them) or discard them (keep the users on the list).
    #[command(subcommand)]
    Hold(audience_hold::HoldCommand),
    /// Compare an audience's live Iterable list with the acknowledged state: members missing
    /// from the list, identifiers in it that should not be, and counts. With --repair, the
    /// differences are stored as pending and the service sends them. Exits 1 on drift that
    /// was not repaired.
    Verify(audience_verify::VerifyArgs),
    /// Apply a full snapshot of an audience (every member, one per row) to the service's
    /// store: members not yet in the audience enter, members missing from the file exit,
    /// with the snapshot's time as their version. A CSV file with a header naming `email`
    /// and/or `userId` (other columns are data fields), or NDJSON; gzip is recognised.
    Sync {
        /// The service's TOML configuration (its store and destinations).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Which destination (required when the configuration has several).
        #[arg(long, value_name = "NAME")]
        destination: Option<String>,
        /// The audience key (the list is named after it).
        #[arg(long, value_name = "KEY")]
        audience: String,
        /// The snapshot: CSV or NDJSON, possibly gzipped; "-" reads standard input.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// csv or ndjson (default: from the file name, else from the first byte).
        #[arg(long, value_name = "FORMAT", value_parser = audience_sync::parse_format)]
        format: Option<sync::snapshot::Format>,
        /// Print the counts of adds, removes, unchanged and bad rows with examples; write
        /// nothing to the store.
        #[arg(long)]
        dry_run: bool,
        /// Write the full diff (adds, removes, kept newer changes, bad rows) as NDJSON.
        #[arg(long, value_name = "FILE")]
        diff_out: Option<PathBuf>,
        /// Apply even if it removes more than the destination's max_removal_ratio of the
        /// audience's current members.
        #[arg(long)]
        allow_mass_removal: bool,
        /// The largest share of bad rows (0 to 1) the snapshot may have and still apply.
        #[arg(long, value_name = "SHARE", default_value_t = sync::snapshot::DEFAULT_MAX_BAD_RATIO)]
        max_bad_ratio: f64,
        /// The snapshot's time (epoch ms or ISO 8601; default: now): live changes later
        /// than it win over it.
        #[arg(long, value_name = "TIME", value_parser = audience_sync::parse_time)]
        as_of: Option<i64>,
        /// Print the final report as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum EventsCommand {
    /// What happened to one event (by messageId) in each audience.
    Show {
        #[arg(value_name = "MESSAGE_ID")]
        message_id: String,
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Only this destination.
        #[arg(long, value_name = "NAME")]
        destination: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum StoreCommand {
    /// Copy everything the service stores (list registry, desired and acknowledged state,
    /// destination states, the event log) into another database, e.g. from SQLite to
    /// PostgreSQL. Stop the service first. The source is only read; the target is created
    /// (SQLite) or migrated, must be empty, and holds the same rows afterwards (verified).
    Copy {
        /// The database to copy: sqlite://PATH or postgres://USER@HOST/DB.
        #[arg(long, value_name = "URL")]
        from: String,
        /// The database to copy into: sqlite://PATH or postgres://USER@HOST/DB.
        #[arg(long, value_name = "URL")]
        to: String,
        /// Copy into a target that holds rows already (e.g. to finish an interrupted copy):
        /// rows of the same key are replaced, others kept.
        #[arg(long)]
        allow_non_empty: bool,
        /// Rows per batch and transaction.
        #[arg(long, value_name = "N", default_value_t = sync::copy::DEFAULT_BATCH_ROWS as u32, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        batch_rows: u32,
    },
}

#[derive(Debug, Subcommand)]
enum MappingCommand {
    /// Resolve a mapping against one event and print the mapped JSON.
    Eval {
        #[arg(long, value_name = "MAPPING.json")]
        mapping: PathBuf,
        #[arg(long, value_name = "EVENT.json")]
        event: PathBuf,
    },
}

fn read_text(path: &Path) -> Result<String> {
    if path == Path::new("-") {
        let mut s = String::new();
        io::stdin()
            .read_to_string(&mut s)
            .context("cannot read standard input")?;
        return Ok(s);
    }
    fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

fn read_json(path: &Path) -> Result<Value> {
    let text = read_text(path)?;
    serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))
}

fn mapping_eval(mapping: &Path, event: &Path) -> Result<()> {
    let m = read_json(mapping)?;
    let e = read_json(event)?;
    let compiled = Mapping::compile(&m)
        .with_context(|| format!("invalid mapping in {}", mapping.display()))?;
    let out = compiled
        .resolve_value(&e)
        .with_context(|| format!("cannot resolve the mapping against {}", event.display()))?
        .unwrap_or_else(|| Value::Object(Default::default()));
    println!("{out}");
    Ok(())
}

/// Options of `plan` besides its files.
struct PlanOptions {
    limits: Limits,
    retl: Option<RetlSyncMode>,
}

fn plan(settings: &Path, mapping: Option<&Path>, events: &Path, opts: PlanOptions) -> Result<()> {
    let s = Settings::from_json(&read_json(settings)?)
        .with_context(|| format!("invalid settings in {}", settings.display()))?;
    let overrides = mapping.map(read_json).transpose()?;
    let m = ActionMapping::new(overrides.as_ref()).with_context(|| {
        format!(
            "invalid mapping in {}",
            mapping.map_or_else(|| "the defaults".into(), |p| p.display().to_string())
        )
    })?;
    let text = read_text(events)?;
    // Each line is one event, read as `serve` reads a request body (lone surrogates, numeric
    // messageIds kept as written).
    let lines: Vec<(usize, &[u8])> = text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| (n, line.as_bytes()))
        .collect();
    if lines.is_empty() {
        bail!("{} holds no events", events.display());
    }
    let texts: Vec<&[u8]> = lines.iter().map(|(_, t)| *t).collect();
    let items = read_events(&texts, &IngestLimits::default()).map_err(|(i, e)| {
        anyhow!(
            "{} line {}: not valid JSON: {}",
            events.display(),
            lines[i].0 + 1,
            e
        )
    })?;
    let mut planner = Planner::new(s.project_type, m);
    planner.limits = opts.limits;
    planner.retl = opts.retl;
    // The events are read as `serve` reads one batch request (the same refusals, the same
    // messageIds), so the plan is what the service would send for them.
    let inputs = items
        .into_iter()
        .map(|item| match item {
            Item::Event { event, .. } => event.into_value().map_err(|e| Refused {
                message_id: None,
                reason: format!("malformed JSON: {e}"),
            }),
            Item::Invalid {
                message_id, reason, ..
            } => Err(Refused { message_id, reason }),
        })
        .collect();
    println!("{}", planner.plan_inputs(inputs).to_json());
    Ok(())
}

/// What `check` checks: a base URL and key, and how to name them in messages.
struct CheckTarget {
    /// `destination "prod": ` or empty.
    label: String,
    base_url: String,
    api_key: iterable::client::ApiKey,
    /// How to choose the region in this kind of input.
    region_hint: &'static str,
}

/// The target of `check --settings FILE`.
fn check_target_of_settings(settings: &Path) -> Result<CheckTarget> {
    let s = Settings::from_json(&read_json(settings)?)
        .with_context(|| format!("invalid settings in {}", settings.display()))?;
    Ok(CheckTarget {
        label: String::new(),
        base_url: s.base_url,
        api_key: s.api_key,
        region_hint: "\"region\": \"eu\"",
    })
}

/// The target of `check [--config FILE] [--destination NAME]`. Only the chosen destination's
/// API key needs to be set.
fn check_target_of_config(config: Option<&Path>, name: Option<&str>) -> Result<CheckTarget> {
    let cfg = Config::load_with(config, Secrets::Optional).map_err(|e| anyhow::anyhow!("{e}"))?;
    let source = choose::source_of(config);
    let d = choose::destination(&cfg, name, &source)?;
    let label = format!("destination {:?}: ", d.name);
    if d.api_key.expose().is_empty() {
        match config {
            Some(_) => bail!(
                "{label}no API key: the environment variable its api_key_env names is not set \
                 or is empty"
            ),
            None => bail!(
                "nothing to check: {} is not set. Set it, or pass --config FILE (the service's \
                 configuration) or --settings SETTINGS.json",
                server::config::API_KEY_ENV
            ),
        }
    }
    Ok(CheckTarget {
        label,
        base_url: d.base_url.clone(),
        api_key: d.api_key.clone(),
        region_hint: "region = \"eu\"",
    })
}

/// `check`: Segment's testAuthentication, with messages that say what to fix.
fn check(target: CheckTarget) -> Result<()> {
    let s = target;
    let label = &s.label;
    let mut cfg = ClientConfig::new(s.base_url.clone(), s.api_key.clone());
    cfg.timeout = std::time::Duration::from_secs(15);
    cfg.backoff.max_attempts = 3;
    let client = Client::new(cfg).map_err(|e| anyhow::anyhow!("{e}"))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    match rt.block_on(client.get_lists()) {
        Ok(lists) => {
            let standard = lists.iter().filter(|l| l.is_standard()).count();
            println!(
                "ok: {label}{} answered; the key works and reaches {} lists ({} of them static)",
                s.base_url,
                lists.len(),
                standard
            );
            Ok(())
        }
        Err(e) if e.class == ErrorClass::Authentication => bail!(
            "{label}{e}\nThe API key was refused by {}. Check that it is a server-side key of \
             this project, and that the project lives in this data center: an EU project needs \
             {} (keys work only in their own region).",
            s.base_url,
            s.region_hint
        ),
        Err(e)
            if matches!(
                e.kind,
                ErrorKind::Connect | ErrorKind::Timeout | ErrorKind::Transport
            ) =>
        {
            bail!(
                "{label}{e}\nCannot reach {}: check the base URL or region and the network.",
                s.base_url
            )
        }
        Err(e) => bail!("{label}{e}"),
    }
}

fn main() -> ExitCode {
    allocator::configure();
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Serve { config, log_format } => service::serve(config.as_deref(), *log_format),
        Command::Demo {
            listen,
            data_dir,
            log_format,
        } => service::demo(*listen, data_dir.as_deref(), *log_format),
        Command::Status { config, json } => service::status(config.as_deref(), *json),
        Command::Events(EventsCommand::Show {
            message_id,
            config,
            destination,
            json,
        }) => service::event_show(config.as_deref(), message_id, destination.as_deref(), *json),
        Command::Audience(AudienceCommand::Hold(cmd)) => audience_hold::run(cmd),
        Command::Check {
            config,
            destination,
            settings,
        } => match settings {
            Some(s) => check_target_of_settings(s),
            None => check_target_of_config(config.as_deref(), destination.as_deref()),
        }
        .and_then(check),
        Command::Mapping(MappingCommand::Eval { mapping, event }) => mapping_eval(mapping, event),
        Command::Audience(AudienceCommand::Verify(args)) => match audience_verify::run(args) {
            Ok(code) => return code,
            Err(e) => Err(e),
        },
        Command::Audience(AudienceCommand::Sync {
            config,
            destination,
            audience,
            file,
            format,
            dry_run,
            diff_out,
            allow_mass_removal,
            max_bad_ratio,
            as_of,
            json,
        }) => audience_sync::audience_sync(&audience_sync::SyncArgs {
            config: config.as_deref(),
            destination: destination.as_deref(),
            audience,
            file,
            format: *format,
            options: server::snapshot::SnapshotOptions {
                dry_run: *dry_run,
                allow_mass_removal: *allow_mass_removal,
                max_bad_ratio: *max_bad_ratio,
                time_ms: *as_of,
            },
            diff_out: diff_out.as_deref(),
            json: *json,
        }),
        Command::Store(StoreCommand::Copy {
            from,
            to,
            allow_non_empty,
            batch_rows,
        }) => store_copy::store_copy(&store_copy::CopyArgs {
            from,
            to,
            allow_non_empty: *allow_non_empty,
            batch_rows: *batch_rows as usize,
        }),
        Command::Plan {
            settings,
            mapping,
            events,
            max_rows,
            max_bytes,
            retl_sync_mode,
        } => plan(
            settings,
            mapping.as_deref(),
            events,
            PlanOptions {
                limits: Limits {
                    max_rows: *max_rows as usize,
                    max_bytes: *max_bytes as usize,
                },
                retl: *retl_sync_mode,
            },
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
