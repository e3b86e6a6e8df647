//! `store copy --from URL --to URL`: copies a whole store into another, engine to engine
//! (`sync::copy`), with a progress bar on a terminal (plain lines otherwise), and prints the
//! rows per table on both sides. URLs are shown without their passwords.

use std::io::IsTerminal;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use server::config::Storage;
use sync::copy::{CopyOptions, CopyReport, Progress, copy_store};
use sync::postgres::{Access, PostgresStore, redact_url};
use sync::{SqliteStore, Store, StoreError};

/// How often a plain progress line is printed when standard error is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(2);

/// A store as the messages name it: a SQLite file by its path, anything else by its URL
/// without the password.
fn shown(url: &str, storage: &Storage) -> String {
    match storage {
        Storage::Sqlite { path } => std::path::absolute(path)
            .unwrap_or_else(|_| path.clone())
            .display()
            .to_string(),
        _ => redact_url(url),
    }
}

/// Reads `--from`/`--to`: the error names the flag, never the password.
fn parse(flag: &str, url: &str) -> Result<Storage> {
    let storage =
        Storage::parse_url(url).map_err(|e| anyhow!("{flag} {}: {e}", redact_url(url)))?;
    if matches!(storage, Storage::SqliteMemory) {
        bail!(
            "{flag}: an in-memory database (sqlite::memory:) exists only inside the process that \
             opened it; name a file (sqlite://PATH) or a PostgreSQL database"
        );
    }
    Ok(storage)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => std::path::absolute(a).ok() == std::path::absolute(b).ok(),
    }
}

/// Connections of a PostgreSQL pool: the export holds one, the counts take another.
const POOL_SIZE: usize = 2;

/// Opens the source to read it only: nothing is created or migrated, and an older schema is
/// refused (reading never migrates).
async fn open_source(storage: &Storage) -> Result<Store, StoreError> {
    match storage {
        Storage::Sqlite { path } => Ok(Store::sqlite(SqliteStore::open_read_only(path)?)),
        Storage::Postgres { url } => Ok(Store::postgres(
            PostgresStore::open(url.expose(), POOL_SIZE, Access::ReadOnly).await?,
        )),
        Storage::SqliteMemory => Err(memory()),
    }
}

/// Opens the target as the service does: created (SQLite) or migrated to this version.
async fn open_target(storage: &Storage) -> Result<Store, StoreError> {
    match storage {
        Storage::Sqlite { path } => Ok(Store::sqlite(SqliteStore::open(path)?)),
        Storage::Postgres { url } => Ok(Store::postgres(
            PostgresStore::open(url.expose(), POOL_SIZE, Access::ReadWrite).await?,
        )),
        Storage::SqliteMemory => Err(memory()),
    }
}

fn memory() -> StoreError {
    StoreError::Invalid {
        op: "open",
        message: "an in-memory database cannot be copied".into(),
    }
}

/// What `store copy` was asked.
pub struct CopyArgs<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub allow_non_empty: bool,
    pub batch_rows: usize,
}

/// `store copy`.
pub fn store_copy(args: &CopyArgs<'_>) -> Result<()> {
    let (from, to) = (parse("--from", args.from)?, parse("--to", args.to)?);
    let (from_shown, to_shown) = (shown(args.from, &from), shown(args.to, &to));
    if let (Storage::Sqlite { path: a }, Storage::Sqlite { path: b }) = (&from, &to)
        && same_file(a, b)
    {
        bail!("--from and --to name the same database ({from_shown})");
    }
    if let (Storage::Postgres { url: a }, Storage::Postgres { url: b }) = (&from, &to)
        && a.expose().trim() == b.expose().trim()
    {
        bail!("--from and --to name the same database ({from_shown})");
    }
    if let Storage::Sqlite { path } = &from
        && matches!(path.try_exists(), Ok(false))
    {
        bail!("no database at {from_shown} (--from): check the path");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let source = rt
        .block_on(open_source(&from))
        .map_err(|e| anyhow!("cannot open the source {from_shown}: {e}"))?;
    let target = rt
        .block_on(open_target(&to))
        .map_err(|e| anyhow!("cannot open the target {to_shown}: {e}"))?;
    let options = CopyOptions {
        batch_rows: args.batch_rows,
        allow_non_empty: args.allow_non_empty,
    };
    eprintln!("copying {from_shown} to {to_shown}");
    let started = Instant::now();
    let mut shower = Shower::new();
    let result = rt.block_on(copy_store(&source, &target, options, &mut |p| {
        shower.show(p)
    }));
    shower.finish();
    let report = result.map_err(|e| anyhow!("copy from {from_shown} to {to_shown}: {e}"))?;
    print!(
        "{}",
        report_text(&report, &from_shown, &to_shown, started.elapsed())
    );
    Ok(())
}

/// The result: rows per table on both sides, and the rate.
fn report_text(r: &CopyReport, from: &str, to: &str, took: Duration) -> String {
    let rows = r.source.batch_rows();
    let secs = took.as_secs_f64().max(0.001);
    let mut out = format!(
        "copied {from} to {to}: {rows} rows in {:.1} s ({:.0} rows/s); counts verified\n",
        secs,
        rows as f64 / secs
    );
    out.push_str(&format!(
        "{:<20} {:>12} {:>12}\n",
        "table", "source", "target"
    ));
    for ((table, s), (_, t)) in r.source.tables().into_iter().zip(r.target_after.tables()) {
        out.push_str(&format!("{table:<20} {s:>12} {t:>12}\n"));
    }
    if !r.target_before.is_empty() {
        out.push_str(&format!(
            "the target held {} before\n",
            sync::copy::describe(&r.target_before)
        ));
    }
    out
}

/// A plain progress line: `events: 120000/1000000 rows (12%), 45000 rows/s, ETA 20 s`.
fn plain_line(p: &Progress, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        p.done as f64 / secs
    } else {
        0.0
    };
    let percent = (p.done * 100).checked_div(p.total).unwrap_or(100);
    let eta = if rate > 0.0 {
        format!("{:.0} s", p.total.saturating_sub(p.done) as f64 / rate)
    } else {
        "unknown".into()
    };
    format!(
        "store copy: {}: {}/{} rows ({percent}%), {rate:.0} rows/s, ETA {eta}",
        p.table, p.done, p.total
    )
}

/// Whether the last batch was written (what remains: the figures and the counts).
fn all_written(p: &Progress) -> bool {
    p.total > 0 && p.done == p.total
}

/// Shows progress on standard error: a bar on a terminal, a line every [`PLAIN_EVERY`]
/// (and at the end) otherwise.
enum Shower {
    Bar(Option<ProgressBar>),
    Plain {
        started: Instant,
        last: Option<Instant>,
        /// The latest progress and when it came.
        latest: Option<(Progress, Duration)>,
    },
}

impl Shower {
    fn new() -> Self {
        if std::io::stderr().is_terminal() {
            Shower::Bar(None)
        } else {
            Shower::Plain {
                started: Instant::now(),
                last: None,
                latest: None,
            }
        }
    }

    fn show(&mut self, p: Progress) {
        match self {
            Shower::Bar(bar) => {
                let bar = bar.get_or_insert_with(|| {
                    let b =
                        ProgressBar::with_draw_target(Some(p.total), ProgressDrawTarget::stderr());
                    if let Ok(style) = ProgressStyle::with_template(
                        "{msg:>18} [{bar:30}] {human_pos}/{human_len} rows, {per_sec:0}, ETA {eta}",
                    ) {
                        b.set_style(style.progress_chars("=> "));
                    }
                    b
                });
                bar.set_message(if all_written(&p) { "counting" } else { p.table });
                bar.set_position(p.done);
            }
            Shower::Plain {
                started,
                last,
                latest,
            } => {
                *latest = Some((p, started.elapsed()));
                let due = last.is_none_or(|t| t.elapsed() >= PLAIN_EVERY);
                if due || all_written(&p) {
                    *last = Some(Instant::now());
                    eprintln!("{}", plain_line(&p, started.elapsed()));
                }
                if all_written(&p) {
                    *latest = None;
                    eprintln!(
                        "store copy: every row written; rebuilding the target's figures and \
                         counting the rows on both sides"
                    );
                }
            }
        }
    }

    fn finish(&mut self) {
        match self {
            Shower::Bar(bar) => {
                if let Some(b) = bar.take() {
                    b.finish();
                }
            }
            Shower::Plain { latest, .. } => {
                if let Some((p, at)) = latest.take() {
                    eprintln!("{}", plain_line(&p, at));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_say_rate_and_eta() {
        let p = Progress {
            table: "events",
            done: 250,
            total: 1000,
        };
        assert_eq!(
            plain_line(&p, Duration::from_secs(5)),
            "store copy: events: 250/1000 rows (25%), 50 rows/s, ETA 15 s"
        );
        let empty = Progress {
            table: "lists",
            done: 0,
            total: 0,
        };
        assert_eq!(
            plain_line(&empty, Duration::ZERO),
            "store copy: lists: 0/0 rows (100%), 0 rows/s, ETA unknown"
        );
    }
}
