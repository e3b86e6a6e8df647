//! What to run and how big, the constants every part shares, and the run itself: the parts
//! selected, in order, then the table and the JSON file.
//!
//! Measures: (a) parse, map and plan per core; (b) HTTP ingestion into durable SQLite; (c) end
//! to end, (c-pg) the same on PostgreSQL; (d) a 1,000,000-member audience against the emulator's rate limit,
//! (d-fast) the same with every limit off; (sustained) (c)'s load for minutes, memory and
//! latency over time; (e) peak RSS
//! with 1,000,000 pending changes; (snapshot) a 1,000,000-row audience snapshot diffed and
//! stored by `audience sync`; (console) the operator console's pages over 1,000 audiences and
//! 1,000,000 events; (verify) `audience verify` of a 1,000,000-member list; and the
//! comparison with `@segment/action-destinations`
//! (`bench/segment`, run with Node) on the same events and the same emulator.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};

use crate::parts::{compare, console, end_to_end, ingestion, plan, rate_limit, snapshot, verify};
use crate::product;
use crate::report::Report;

pub const KEY: &str = "0123456789abcdef0123456789abcdef";
/// A key the emulator does not know: every call answers 401, so delivery pauses and every
/// accepted change stays pending.
pub const WRONG_KEY: &str = "ffffffffffffffffffffffffffffffff";
pub const WRITE_KEY: &str = "wk_bench";
pub const ADMIN: &str = "bench-admin-token";
/// Events per HTTP batch, and concurrent senders (Segment delivers with many workers).
pub const BATCH: usize = 500;
pub const SENDERS: usize = 8;
/// Audiences of the end-to-end and comparison runs.
pub const AUDIENCES: usize = 20;

/// The parts `--only` names.
pub const PARTS: [&str; 15] = [
    "a",
    "b",
    "c",
    "c-pg",
    "c-pg3",
    "d",
    "d-fast",
    "d-pg3",
    "e",
    "sustained",
    "snapshot",
    "verify",
    "console",
    "compare",
    "admin",
];
/// Audiences and events of (console), and how many times each page is fetched.
pub const CONSOLE_AUDIENCES: usize = 1000;
pub const CONSOLE_EVENTS: usize = 1_000_000;
pub const CONSOLE_FETCHES: usize = 50;
/// Instances of the multi-instance parts (c-pg3, d-pg3).
pub const INSTANCES: usize = 3;

/// The PostgreSQL server of (c-pg) when none is given.
pub const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

/// What to run and how big.
#[derive(Debug, Clone)]
pub struct BenchArgs {
    pub only: Vec<String>,
    pub json: Option<PathBuf>,
    /// Events of (a) and (c).
    pub events: usize,
    /// Members of the big audience of (b), (d), (d-fast) and (e).
    pub members: usize,
    /// Events of (sustained).
    pub sustained_events: usize,
    /// The emulator's subscribe limit in (d), requests per second.
    pub rate: u32,
    /// Events of the comparison.
    pub compare_events: usize,
    /// The Node side of the comparison.
    pub node_dir: PathBuf,
    /// Where databases and event files go (a new temporary directory by default).
    pub work_dir: Option<PathBuf>,
    /// Clients polling `/metrics` and `/v1/status` in a loop during (c).
    pub pollers: usize,
    /// The service binary to measure; `None` builds this workspace's with cargo.
    pub service_bin: Option<PathBuf>,
    /// The PostgreSQL server of (c-pg) (a schema of its own is created and dropped).
    pub postgres: String,
}

impl BenchArgs {
    fn wants(&self, part: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| o == part)
    }
}

/// What the parts that run the service need.
pub struct Setup {
    /// Where databases and event files go.
    pub dir: PathBuf,
    /// The `iterable-lists` binary under test.
    pub service_bin: PathBuf,
}

/// Runs the selected benchmarks; fails if one could not run (a missed target is reported,
/// not an error).
pub fn run(args: &BenchArgs) -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let needs_service = PARTS[1..].iter().any(|p| args.wants(p));
    // Before any measure, so that a build does not run beside one.
    let service_bin = if needs_service {
        Some(product::service_binary(args.service_bin.as_deref())?)
    } else {
        None
    };
    let dir = match &args.work_dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("iterable-lists-bench-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut report = Report::default();
    let started = Instant::now();
    if args.wants("a") {
        eprintln!(
            "(a) parse, map and plan on one core, {} events ...",
            args.events
        );
        plan::run(args.events, &mut report)?;
    }
    if let Some(service_bin) = service_bin {
        let setup = Setup {
            dir: dir.clone(),
            service_bin,
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        rt.block_on(service_parts(&setup, args, &mut report))?;
    }
    report.print();
    println!("({:.0} s in all)", started.elapsed().as_secs_f64());
    if let Some(p) = &args.json {
        std::fs::write(p, serde_json::to_string_pretty(&report.to_json())?)
            .with_context(|| format!("writing {}", p.display()))?;
        println!("results written to {}", p.display());
    }
    if args.work_dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

/// The parts that run the service, in the order of the table.
async fn service_parts(setup: &Setup, args: &BenchArgs, report: &mut Report) -> Result<()> {
    if args.wants("b") || args.wants("e") {
        eprintln!(
            "(b, e) ingestion of {} changes into durable SQLite, delivery paused ...",
            args.members
        );
        ingestion::run(setup, args.members, report).await?;
    }
    if args.wants("c") {
        eprintln!(
            "(c) end to end, {} events over {AUDIENCES} audiences, {} pollers ...",
            args.events, args.pollers
        );
        end_to_end::run(setup, args.events, args.pollers, report).await?;
    }
    if args.wants("c-pg") {
        eprintln!(
            "(c-pg) end to end on PostgreSQL, {} events over {AUDIENCES} audiences ...",
            args.events
        );
        end_to_end::run_postgres(setup, args.events, &args.postgres, 1, report).await?;
    }
    if args.wants("c-pg3") {
        eprintln!(
            "(c-pg3) end to end on PostgreSQL, {INSTANCES} instances, {} events over {AUDIENCES} audiences ...",
            args.events
        );
        end_to_end::run_postgres(setup, args.events, &args.postgres, INSTANCES, report).await?;
    }
    if args.wants("d") {
        eprintln!(
            "(d) a {}-member audience at {}/s subscribe requests ...",
            args.members, args.rate
        );
        rate_limit::run(setup, args.members, args.rate, report).await?;
    }
    if args.wants("d-fast") {
        eprintln!(
            "(d-fast) a {}-member audience with rate limits off ...",
            args.members
        );
        crate::parts::unlimited::run(setup, args.members, report).await?;
    }
    if args.wants("sustained") {
        eprintln!(
            "(sustained) {} events over {AUDIENCES} audiences: memory and latency over time ...",
            args.sustained_events
        );
        crate::parts::sustained::run(setup, args.sustained_events, report).await?;
    }
    if args.wants("snapshot") {
        eprintln!(
            "(snapshot) audience sync of a {}-row snapshot, then one with 10% churn ...",
            args.members
        );
        snapshot::run(setup, args.members, report)?;
    }
    if args.wants("d-pg3") {
        eprintln!(
            "(d-pg3) a {}-member audience at {}/s subscribe requests, {INSTANCES} instances on PostgreSQL ...",
            args.members, args.rate
        );
        rate_limit::run_postgres(
            setup,
            args.members,
            args.rate,
            &args.postgres,
            INSTANCES,
            report,
        )
        .await?;
    }
    if args.wants("verify") {
        eprintln!(
            "(verify) audience verify of a {}-member list ...",
            args.members
        );
        verify::run(setup, args.members, report).await?;
    }
    if args.wants("console") {
        eprintln!(
            "(console) the console's pages with {CONSOLE_EVENTS} events over {CONSOLE_AUDIENCES} audiences ..."
        );
        console::run(
            setup,
            CONSOLE_EVENTS,
            CONSOLE_AUDIENCES,
            CONSOLE_FETCHES,
            report,
        )
        .await?;
    }
    if args.wants("admin") {
        eprintln!(
            "(admin) the admin API's views with {} events over {} audiences stored ...",
            args.members,
            crate::parts::admin::ADMIN_AUDIENCES
        );
        crate::parts::admin::run(setup, args.members, report).await?;
    }
    if args.wants("compare") {
        eprintln!(
            "(compare) {} events through this code and through @segment/action-destinations ...",
            args.compare_events
        );
        compare::run(setup, args.compare_events, &args.node_dir, report).await?;
    }
    Ok(())
}
