//! `iterable-lists-bench`: the whole-system benchmarks of BENCHMARKS.md and the comparison with
//! Segment's own code. This file reads the command line; the library runs the parts.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use iterable_lists_bench::{BenchArgs, DEFAULT_POSTGRES, PARTS, run};

/// The same allocator as the `iterable-lists` binary, with the same settings (`main` applies
/// them), so that the parts measured in this process (parse, map and plan; our side of the
/// comparison) run as they would in the service.
#[global_allocator]
static GLOBAL: allocator::Allocator = allocator::Allocator;

/// Run the benchmarks of BENCHMARKS.md: ingestion, end to end, a 1,000,000-member audience
/// against the rate limit, memory, and the comparison with Segment's code.
#[derive(Debug, Parser)]
#[command(name = "iterable-lists-bench", version)]
struct Cli {
    /// Only these parts (repeatable): a, b, c, c-pg, c-pg3, d, d-fast, d-pg3, e, sustained,
    /// snapshot, verify, console, compare, admin.
    #[arg(long, value_name = "PART", value_parser = PARTS)]
    only: Vec<String>,
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Events of (a) and (c).
    #[arg(long, value_name = "N", default_value_t = 200_000, value_parser = clap::value_parser!(u32).range(1000..))]
    events: u32,
    /// Members of the big audience of (b), (d), (d-fast), (e) and (verify), rows of the
    /// snapshot, and events of (admin).
    #[arg(long, value_name = "N", default_value_t = 1_000_000, value_parser = clap::value_parser!(u32).range(1000..))]
    members: u32,
    /// Events of (sustained): part (c)'s load, long enough to judge memory and latency over
    /// time.
    #[arg(long, value_name = "N", default_value_t = 3_000_000, value_parser = clap::value_parser!(u32).range(1000..))]
    sustained_events: u32,
    /// The emulator's subscribe limit in (d), requests per second.
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    rate: u32,
    /// Events of the comparison with Segment's code.
    #[arg(long, value_name = "N", default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1000..))]
    compare_events: u32,
    /// The Node side of the comparison.
    #[arg(long, value_name = "DIR", default_value = "bench/segment")]
    node_dir: PathBuf,
    /// Keep databases and event files here (default: a temporary directory, removed).
    #[arg(long, value_name = "DIR")]
    work_dir: Option<PathBuf>,
    /// Clients polling /metrics and /v1/status in a loop during (c).
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=256))]
    pollers: u16,
    /// The service binary to measure (default: this workspace's `iterable-lists`, built with
    /// cargo in the same profile as this program, `--release` for a release build).
    #[arg(long, value_name = "FILE")]
    service_bin: Option<PathBuf>,
    /// The PostgreSQL server of (c-pg, c-pg3, d-pg3): each run gets a schema of its own there,
    /// dropped after.
    #[arg(long, value_name = "URL", default_value = DEFAULT_POSTGRES)]
    postgres: String,
}

fn main() -> ExitCode {
    allocator::configure();
    let cli = Cli::parse();
    let args = BenchArgs {
        only: cli.only,
        json: cli.json,
        events: cli.events as usize,
        members: cli.members as usize,
        sustained_events: cli.sustained_events as usize,
        rate: cli.rate,
        compare_events: cli.compare_events as usize,
        node_dir: cli.node_dir,
        work_dir: cli.work_dir,
        pollers: usize::from(cli.pollers),
        service_bin: cli.service_bin,
        postgres: cli.postgres,
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
