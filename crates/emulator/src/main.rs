//! `iterable-emulator`: runs the Iterable API emulator until Ctrl-C or SIGTERM.
//! Configure by flags, a TOML file (`--config`), or both; flags win.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use iterable_emulator::config::LimitValue;
use iterable_emulator::{Emulator, EmulatorConfig, ProjectConfig};

/// An emulator of Iterable's list API, for tests, demos and benchmarks.
#[derive(Debug, Parser)]
#[command(name = "iterable-emulator", version)]
struct Args {
    /// TOML configuration file; flags override what it sets.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address of the main (US) listener; port 0 picks a free port.
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Address of a second listener that acts as the EU data center.
    #[arg(long, value_name = "ADDR")]
    listen_eu: Option<SocketAddr>,
    /// A project: TYPE:KEY[,KEY...][:REGION], TYPE is hybrid, userId or email, REGION us or eu.
    /// (Parsed after clap, so that a bad value is never echoed: it holds an API key.)
    #[arg(long = "project", value_name = "TYPE:KEY[:REGION]")]
    projects: Vec<String>,
    /// A rate limit: ENDPOINT=N/s or N/min [,burst=B], or ENDPOINT=off; ENDPOINT may be "all".
    #[arg(long = "limit", value_name = "ENDPOINT=SPEC")]
    limits: Vec<String>,
    /// Send Retry-After with 429 answers.
    #[arg(long)]
    retry_after: bool,
    /// Seed for fault injection and generated ids.
    #[arg(long)]
    seed: Option<u64>,
    /// Probability of 500 GenericError.
    #[arg(long, value_name = "P")]
    fail_500: Option<f64>,
    /// Probability of 503.
    #[arg(long, value_name = "P")]
    fail_503: Option<f64>,
    /// Probability of 429 RateLimitExceeded.
    #[arg(long, value_name = "P")]
    fail_429: Option<f64>,
    /// Fixed latency added to each /api request.
    #[arg(long, value_name = "MS")]
    latency_ms: Option<u64>,
    /// Extra latency drawn from 0 to MS.
    #[arg(long, value_name = "MS")]
    latency_jitter_ms: Option<u64>,
    /// Probability of closing the connection without answering.
    #[arg(long, value_name = "P")]
    drop_connections: Option<f64>,
    /// Probability of resetting the connection (TCP RST) without answering.
    #[arg(long, value_name = "P")]
    reset_connections: Option<f64>,
    /// How long a new list still answers invalidListId to subscribe and unsubscribe.
    #[arg(long, value_name = "MS")]
    new_list_invisible_ms: Option<u64>,
    /// Bodies above this size get 413.
    #[arg(long, value_name = "BYTES")]
    max_body_bytes: Option<usize>,
    /// How many requests the inspection log keeps.
    #[arg(long, value_name = "N")]
    request_log_capacity: Option<usize>,
    /// Worker threads (default: one per core).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Most open connections; at the cap a new one closes an idle or stalled one (default: from
    /// the open-file limit, which is raised to the hard limit at start).
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    /// Time a client has to send a full request header (default 10000).
    #[arg(long, value_name = "MS")]
    header_timeout_ms: Option<u64>,
    /// Time a connection may wait for its next request (default 75000).
    #[arg(long, value_name = "MS")]
    keep_alive_timeout_ms: Option<u64>,
    /// Lowest average request body rate after the grace period, bytes/s (default 1024).
    #[arg(long, value_name = "BYTES")]
    body_min_rate: Option<u64>,
    /// Time a body may take before the minimum rate applies (default 5000).
    #[arg(long, value_name = "MS")]
    body_grace_ms: Option<u64>,
    /// Time a response the client does not read is kept (default 30000).
    #[arg(long, value_name = "MS")]
    write_timeout_ms: Option<u64>,
}

fn build_config(args: Args) -> Result<EmulatorConfig> {
    let mut c = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read --config {}", path.display()))?;
            EmulatorConfig::from_toml(&text).with_context(|| format!("in {}", path.display()))?
        }
        None => EmulatorConfig::default(),
    };
    if let Some(a) = args.listen {
        c.listen = a;
    }
    if args.listen_eu.is_some() {
        c.listen_eu = args.listen_eu;
    }
    for (i, p) in args.projects.iter().enumerate() {
        let project: ProjectConfig = p
            .parse()
            .with_context(|| format!("--project (occurrence {})", i + 1))?;
        c.projects.push(project);
    }
    for l in &args.limits {
        let (name, spec) = l.split_once('=').with_context(|| {
            format!("--limit {l:?}: expected ENDPOINT=SPEC, e.g. subscribe=20/s")
        })?;
        let setting = spec.parse().with_context(|| format!("--limit {l:?}"))?;
        c.limits.insert(name.to_string(), LimitValue(setting));
    }
    c.retry_after |= args.retry_after;
    if args.seed.is_some() {
        c.seed = args.seed;
    }
    let f = &mut c.faults;
    macro_rules! set {
        ($($flag:ident => $field:ident),*) => {$( if let Some(v) = args.$flag { f.$field = v; } )*};
    }
    set!(fail_500 => error_500, fail_503 => error_503, fail_429 => error_429,
         latency_ms => latency_ms, latency_jitter_ms => latency_jitter_ms,
         drop_connections => drop_connection, reset_connections => reset_connection,
         new_list_invisible_ms => new_list_invisible_ms);
    if args.max_body_bytes.is_some() {
        f.max_body_bytes = args.max_body_bytes;
    }
    if let Some(n) = args.request_log_capacity {
        c.request_log.capacity = n;
    }
    let h = &mut c.http;
    if args.max_connections.is_some() {
        h.max_connections = args.max_connections;
    }
    macro_rules! set_http {
        ($($flag:ident),*) => {$( if let Some(v) = args.$flag { h.$flag = v; } )*};
    }
    set_http!(
        header_timeout_ms,
        keep_alive_timeout_ms,
        body_min_rate,
        body_grace_ms,
        write_timeout_ms
    );
    Ok(c)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    if let Err(e) = listener::raise_open_file_limit() {
        eprintln!("iterable-emulator: cannot raise the open-file limit: {e}");
    }
    let threads = args.threads;
    let config = build_config(args)?;
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(n) = threads {
        rt.worker_threads(n.max(1));
    }
    rt.build()
        .context("cannot start the runtime")?
        .block_on(run(config))
}

async fn run(config: EmulatorConfig) -> Result<()> {
    let emu = Emulator::start(config).await?;
    println!("listening on {}", emu.url());
    if let Some(eu) = emu.eu_url() {
        println!("listening (eu) on {eu}");
    }
    for (view, id) in emu.state(false).iter().zip(emu.project_ids()) {
        eprintln!("project {id}: {} ({})", view.project_type, view.region);
    }
    shutdown_signal().await;
    eprintln!("shutting down");
    emu.shutdown().await;
    Ok(())
}

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
