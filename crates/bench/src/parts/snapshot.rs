//! (snapshot) A full audience snapshot of `n` rows applied by `iterable-lists audience sync`
//! to a durable SQLite store: first into an empty audience (`n` entries), then a second
//! snapshot with 10% churn (`n/10` exits, `n/10` entries, the rest unchanged). Each run is the
//! binary in a child process, timed from start to exit (parse, stage, diff, write, commit),
//! with its peak RSS (`VmHWM`, sampled every 10 ms). Goal: under 10 s and under 200 MB each at
//! 1,000,000 rows.

use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::harness::{KEY, Setup, WRITE_KEY};
use crate::procfs::status_kib;
use crate::report::Report;

/// Writes a CSV snapshot of users `from..from + n` (email, userId, one data field).
fn write_csv(path: &Path, from: usize, n: usize) -> Result<()> {
    let f = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = BufWriter::new(f);
    writeln!(w, "email,userId,plan")?;
    for u in from..from + n {
        writeln!(
            w,
            "user{u}@example.com,u{u},{}",
            ["gold", "silver", "bronze"][u % 3]
        )?;
    }
    w.flush()?;
    Ok(())
}

/// Runs the command to its end; returns its wall time, its peak RSS (KiB) and its stdout.
///
/// The peak is the child's own `VmHWM`, sampled every 10 ms while it runs. (`wait4`'s
/// `ru_maxrss` is not: the kernel counts in it the high-water mark of the memory the child
/// started from, the harness's, before the child's `exec` replaced it: 768 MiB once the
/// harness held part (d)'s emulator.)
fn run_measured(cmd: &mut Command) -> Result<(Duration, u64, Vec<u8>)> {
    let started = Instant::now();
    let out_file = tempfile_path("snapshot-out");
    let out = std::fs::File::create(&out_file)?;
    let mut child = cmd
        .stdout(Stdio::from(out))
        .stderr(Stdio::inherit())
        .stdin(Stdio::null())
        .spawn()
        .context("starting audience sync")?;
    let pid = child.id();
    let mut peak = 0;
    let status = loop {
        if let Ok(kib) = status_kib(pid, "VmHWM:") {
            peak = peak.max(kib);
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let took = started.elapsed();
    let stdout = std::fs::read(&out_file)?;
    let _ = std::fs::remove_file(&out_file);
    if !status.success() {
        bail!(
            "audience sync failed ({status}): {}",
            String::from_utf8_lossy(&stdout)
        );
    }
    Ok((took, peak, stdout))
}

fn tempfile_path(tag: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("iterable-lists-bench-{tag}-{}", std::process::id()))
}

pub fn run(setup: &Setup, n: usize, report: &mut Report) -> Result<()> {
    let dir = setup.dir.join("snapshot");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let config = dir.join("iterable-lists.toml");
    std::fs::write(
        &config,
        format!(
            "[storage]\nurl = \"sqlite://{}\"\n[[destination]]\nname = \"bench\"\n\
             api_key = \"{KEY}\"\nbase_url = \"http://127.0.0.1:9\"\nwrite_keys = [\"{WRITE_KEY}\"]\n",
            dir.join("db.sqlite").display()
        ),
    )?;
    let churn = n / 10;
    let first = dir.join("first.csv");
    let second = dir.join("second.csv");
    write_csv(&first, 0, n)?;
    write_csv(&second, churn, n)?;
    let mut runs = Vec::new();
    for (label, file, adds, removes) in [
        ("initial", &first, n, 0),
        ("10% churn", &second, churn, churn),
    ] {
        let (took, peak_kib, stdout) = run_measured(
            Command::new(&setup.service_bin)
                .args(["audience", "sync", "--config"])
                .arg(&config)
                .args(["--audience", "bench_snapshot", "--json"])
                .arg(file),
        )?;
        let r: Value = serde_json::from_slice(&stdout).context("the report is not JSON")?;
        if r["adds"] != adds || r["removes"] != removes || r["applied"] != true {
            bail!("{label} snapshot: expected {adds} adds and {removes} removes, got {r}");
        }
        let secs = took.as_secs_f64();
        let mib = peak_kib as f64 / 1024.0;
        report.row(
            "snapshot",
            format!("{label} snapshot of {n} rows diffed and stored, seconds"),
            secs,
            "s",
        );
        report.target("under 10 s", secs < 10.0);
        report.row(
            "snapshot",
            format!("{label} snapshot of {n} rows, peak RSS"),
            mib,
            "MiB",
        );
        report.target("under 200 MB", mib * 1.048_576 < 200.0);
        runs.push(
            json!({"run": label, "rows": n, "adds": adds, "removes": removes,
                         "seconds": secs, "peak_rss_kib": peak_kib}),
        );
    }
    report.details.insert(
        "snapshot".into(),
        json!({"runs": runs, "file_bytes": std::fs::metadata(&first)?.len()}),
    );
    Ok(())
}
