//! `audience sync --config F --destination D --audience KEY FILE`: applies a full snapshot of
//! an audience (`sync::snapshot`) to the service's store, with a progress bar on a terminal
//! (plain lines otherwise), `--dry-run`, `--diff-out` and the mass-removal guard. Ctrl-C stops
//! it with nothing applied (the snapshot is one transaction).

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Read};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use server::config::{Config, Secrets, Storage};
use server::snapshot::{SnapshotOptions, snapshot_spec};
use sync::postgres::{Access, PostgresStore};
use sync::snapshot::{DiffSink, Format, NdjsonDiff, Progress, RunError, run_snapshot};
use sync::{SqliteStore, Store};

/// How often a plain progress line is printed when standard error is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(2);

/// What `audience sync` was asked.
pub struct SyncArgs<'a> {
    pub config: Option<&'a Path>,
    pub destination: Option<&'a str>,
    pub audience: &'a str,
    pub file: &'a Path,
    pub format: Option<Format>,
    pub options: SnapshotOptions,
    pub diff_out: Option<&'a Path>,
    pub json: bool,
}

/// Parses `--as-of`: epoch milliseconds or an ISO 8601 time.
pub fn parse_time(text: &str) -> Result<i64, String> {
    if let Ok(ms) = text.trim().parse::<i64>() {
        return Ok(ms);
    }
    segment::event::parse_timestamp_ms(text.trim()).map_err(|e| {
        format!("expected epoch milliseconds or an ISO 8601 time (2025-06-01T12:00:00Z): {e}")
    })
}

/// Parses `--format`.
pub fn parse_format(text: &str) -> Result<Format, String> {
    match text.to_ascii_lowercase().as_str() {
        "csv" => Ok(Format::Csv),
        "ndjson" | "jsonl" => Ok(Format::Ndjson),
        _ => Err(format!("expected csv or ndjson, got {text:?}")),
    }
}

async fn open_store(storage: &Storage) -> Result<Store> {
    Ok(match storage {
        Storage::Sqlite { path } => {
            Store::sqlite(SqliteStore::open(path).map_err(|e| anyhow!("{e}"))?)
        }
        Storage::Postgres { url } => Store::postgres(
            PostgresStore::open(url.expose(), 2, Access::ReadWrite)
                .await
                .map_err(|e| anyhow!("{e}"))?,
        ),
        Storage::SqliteMemory => bail!(
            "the configuration's store is in memory (sqlite::memory:), inside the running \
             service only: send the snapshot to it instead (PUT \
             /v1/audiences/{{destination}}/{{audience}}/members)"
        ),
    })
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// `audience sync`.
pub fn audience_sync(args: &SyncArgs<'_>) -> Result<()> {
    let cfg = Config::load_with(args.config, Secrets::Optional).map_err(|e| anyhow!("{e}"))?;
    let source = crate::choose::source_of(args.config);
    let d = crate::choose::destination(&cfg, args.destination, &source)?;
    let spec =
        snapshot_spec(d, args.audience, args.options, now_ms()).map_err(|e| anyhow!("{e}"))?;
    let stdin = args.file == Path::new("-");
    let (input, total): (Box<dyn Read + Send>, Option<u64>) = if stdin {
        (Box::new(std::io::stdin()), None)
    } else {
        let f = File::open(args.file)
            .with_context(|| format!("cannot open {}", args.file.display()))?;
        let len = f.metadata().ok().map(|m| m.len());
        (Box::new(f), len)
    };
    let format = args
        .format
        .unwrap_or_else(|| Format::of_name(&args.file.to_string_lossy()));
    let diff: Option<Box<dyn DiffSink>> = match args.diff_out {
        Some(p) => {
            let f = File::create(p).with_context(|| format!("cannot create {}", p.display()))?;
            Some(Box::new(NdjsonDiff(BufWriter::new(f))))
        }
        None => None,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let store = rt.block_on(open_store(&cfg.storage))?;
    let progress = Arc::new(Progress::default());
    let cancel = Arc::new(AtomicBool::new(false));
    let mut shower = Shower::new(total);
    let started = Instant::now();
    let result = rt.block_on(async {
        let run = run_snapshot(
            &store,
            spec,
            input,
            format,
            diff,
            progress.clone(),
            cancel.clone(),
        );
        tokio::pin!(run);
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        let mut interrupted = false;
        loop {
            tokio::select! {
                r = &mut run => break r,
                _ = tick.tick() => shower.show(&progress, started.elapsed()),
                _ = tokio::signal::ctrl_c(), if !interrupted => {
                    interrupted = true;
                    cancel.store(true, Ordering::Relaxed);
                    if progress.read_all.load(Ordering::Relaxed) {
                        eprintln!(
                            "interrupted while the snapshot is written: its transaction ends \
                             whole (committed or rolled back), never half applied"
                        );
                    } else {
                        eprintln!("interrupted: stopping; nothing of the snapshot is applied");
                    }
                }
            }
        }
    });
    shower.finish(&progress, started.elapsed());
    let report = match result {
        Ok(r) => r,
        Err(RunError::Cancelled) => bail!("cancelled: nothing was applied"),
        Err(e) => bail!("{}: {e}", args.file.display()),
    };
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    if let Some(r) = &report.diff.refused
        && !report.dry_run
    {
        bail!("{r}");
    }
    Ok(())
}

/// Shows progress on standard error: a bar (by bytes of a file) or a spinner (standard input)
/// on a terminal, a line every [`PLAIN_EVERY`] otherwise.
enum Shower {
    Bar(ProgressBar),
    Plain {
        last: Option<Instant>,
        total: Option<u64>,
    },
}

impl Shower {
    fn new(total: Option<u64>) -> Self {
        if !std::io::stderr().is_terminal() {
            return Shower::Plain { last: None, total };
        }
        let bar = match total {
            Some(n) => {
                let b = ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr());
                if let Ok(style) = ProgressStyle::with_template(
                    "{msg:>24} [{bar:30}] {bytes}/{total_bytes}, {bytes_per_sec}, ETA {eta}",
                ) {
                    b.set_style(style.progress_chars("=> "));
                }
                b
            }
            None => {
                let b = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
                if let Ok(style) =
                    ProgressStyle::with_template("{spinner} {msg} {bytes} read, {bytes_per_sec}")
                {
                    b.set_style(style);
                }
                b
            }
        };
        Shower::Bar(bar)
    }

    fn show(&mut self, p: &Progress, elapsed: Duration) {
        let rows = p.rows.load(Ordering::Relaxed);
        let bytes = p.bytes.load(Ordering::Relaxed);
        let read_all = p.read_all.load(Ordering::Relaxed);
        match self {
            Shower::Bar(b) => {
                b.set_position(bytes);
                b.set_message(if read_all {
                    format!("{rows} rows; diffing")
                } else {
                    format!("{rows} rows")
                });
            }
            Shower::Plain { last, total } => {
                if last.is_some_and(|t| t.elapsed() < PLAIN_EVERY) {
                    return;
                }
                *last = Some(Instant::now());
                eprintln!("{}", plain_line(rows, bytes, *total, read_all, elapsed));
            }
        }
    }

    fn finish(&mut self, p: &Progress, elapsed: Duration) {
        match self {
            Shower::Bar(b) => b.finish_and_clear(),
            Shower::Plain { total, .. } => {
                let (rows, bytes) = (
                    p.rows.load(Ordering::Relaxed),
                    p.bytes.load(Ordering::Relaxed),
                );
                eprintln!("{}", plain_line(rows, bytes, *total, true, elapsed));
            }
        }
    }
}

/// `audience sync: 120000 rows, 4.1 MB of 33.0 MB (12%), 45000 rows/s, ETA 20 s`.
fn plain_line(
    rows: u64,
    bytes: u64,
    total: Option<u64>,
    read_all: bool,
    elapsed: Duration,
) -> String {
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 { rows as f64 / secs } else { 0.0 };
    let mb = |b: u64| b as f64 / 1e6;
    let mut out = format!("audience sync: {rows} rows, {:.1} MB", mb(bytes));
    if let Some(t) = total {
        let percent = (bytes * 100).checked_div(t).unwrap_or(100);
        out.push_str(&format!(" of {:.1} MB ({percent}%)", mb(t)));
    }
    out.push_str(&format!(", {rate:.0} rows/s"));
    if read_all {
        out.push_str(", every row read");
    } else if let Some(t) = total
        && bytes > 0
        && secs > 0.0
    {
        let left = t.saturating_sub(bytes) as f64 / (bytes as f64 / secs);
        out.push_str(&format!(", ETA {left:.0} s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_say_rows_rate_and_eta() {
        let cases = [
            (
                (1000, 2_000_000, Some(8_000_000), false, 2),
                "audience sync: 1000 rows, 2.0 MB of 8.0 MB (25%), 500 rows/s, ETA 6 s",
            ),
            (
                (10, 100, None, true, 1),
                "audience sync: 10 rows, 0.0 MB, 10 rows/s, every row read",
            ),
        ];
        for ((rows, bytes, total, all, secs), want) in cases {
            assert_eq!(
                plain_line(rows, bytes, total, all, Duration::from_secs(secs)),
                want
            );
        }
    }

    #[test]
    fn times_and_formats_parse() {
        assert_eq!(parse_time("1700000000000"), Ok(1_700_000_000_000));
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Ok(1_700_000_000_000));
        assert!(parse_time("yesterday").is_err());
        assert_eq!(parse_format("CSV"), Ok(Format::Csv));
        assert_eq!(parse_format("jsonl"), Ok(Format::Ndjson));
        assert!(parse_format("xml").is_err());
    }
}
