//! (sustained) Part (c)'s load at a size that runs for minutes (3,000,000 events by default):
//! the service's memory over the whole run and its latency window by window, so that "RSS
//! stays under 250 MB and no p99 is above 2 s" can be judged from one run.
//!
//! Memory is `/proc/PID/status` sampled every 100 ms (`VmRSS`, split into `RssAnon` and
//! `RssFile`) and the kernel's own peak (`VmHWM`) read before the service stops. Latency is
//! each key's acceptance to acknowledgement, read from the stopped service's database as in
//! (c), and cut into windows of 10 s of acceptance time: each window's p99 must stay under
//! the target, not only the whole run's. The bodies are written as they are sent (millions of
//! them would not be held in memory beforehand).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde_json::{Value, json};

use super::end_to_end::UNLIMITED;
use crate::emulator::{emulator, wait_members};
use crate::events::{audiences, spread_body};
use crate::harness::{AUDIENCES, BATCH, KEY, SENDERS, Setup};
use crate::load::send_made;
use crate::procfs::{Resident, resident, usage};
use crate::report::Report;
use crate::service::Service;

/// The targets: peak RSS in bytes (250 MB), and the highest p99 of any window, seconds.
const RSS_TARGET_BYTES: f64 = 250e6;
const P99_TARGET_S: f64 = 2.0;
/// Latency windows, in milliseconds of acceptance time.
const WINDOW_MS: i64 = 10_000;
/// How often memory is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// One memory sample: seconds since the load started, and the memory then.
type Sample = (f64, Resident);

pub async fn run(setup: &Setup, n: usize, report: &mut Report) -> Result<()> {
    let emu = emulator(None).await?;
    let svc = Service::start(setup, "sustained", &emu.url(), KEY, UNLIMITED)?;
    let pid = svc.pid();
    let at_start = resident(pid)?;
    let used0 = usage(pid)?;
    let start = Instant::now();
    let (stop_sampling, stop) = tokio::sync::watch::channel(false);
    let sampler = tokio::spawn(sample_memory(pid, start, stop));
    let lists = Arc::new(audiences());
    let ingest = send_made(
        std::slice::from_ref(&svc.url),
        n.div_ceil(BATCH),
        move |b| {
            let first = b * BATCH;
            spread_body(first, BATCH.min(n - first), &lists)
        },
    )
    .await?;
    let done = wait_members(&emu, n, Duration::from_secs(3600)).await?;
    let e2e = (done - start).as_secs_f64();
    let used = usage(pid)?;
    let (user, system) = (used.user_s - used0.user_s, used.system_s - used0.system_s);
    let cpu = user + system;
    let faults = used.minor_faults - used0.minor_faults;
    // The last outcomes are recorded right after the emulator's answer.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let at_end = resident(pid)?;
    let _ = stop_sampling.send(true);
    let samples = sampler.await??;
    let db = match &svc.db {
        crate::service::Db::Sqlite(p) => p.clone(),
        crate::service::Db::Postgres(_) => bail!("the sustained part runs on SQLite"),
    };
    svc.stop()?;
    let keys = acceptances(&db)?;
    if keys.len() != n {
        bail!(
            "{} of {n} keys are acknowledged in the service's store",
            keys.len()
        );
    }
    let windows = latency_windows(&keys, WINDOW_MS);
    let mut all: Vec<f64> = keys.iter().map(|k| k.1).collect();
    all.sort_by(f64::total_cmp);
    let sampled_max = samples.iter().map(|s| s.1.rss).max().unwrap_or(0);
    let peak_kib = at_end.peak.max(sampled_max);
    let worst = windows
        .iter()
        .max_by(|a, b| a.p99.total_cmp(&b.p99))
        .cloned()
        .unwrap_or_default();

    let eps = n as f64 / e2e;
    report.row(
        "sustained",
        format!("sustained load ({n} events, {AUDIENCES} audiences), events/s"),
        eps,
        "events/s",
    );
    let peak_mib = peak_kib as f64 / 1024.0;
    report.row(
        "sustained",
        "peak RSS of the service (VmHWM)",
        peak_mib,
        "MiB",
    );
    report.target("under 250 MB", peak_kib as f64 * 1024.0 < RSS_TARGET_BYTES);
    report.row(
        "sustained",
        "RSS at the end of the run",
        at_end.rss as f64 / 1024.0,
        "MiB",
    );
    report.row(
        "sustained",
        "latency acceptance to acknowledgement, p99 of the run",
        percentile(&all, 0.99),
        "s",
    );
    report.target("under 2 s", percentile(&all, 0.99) <= P99_TARGET_S);
    report.row(
        "sustained",
        format!("highest p99 of a 10 s window (from {:.0} s)", worst.from_s),
        worst.p99,
        "s",
    );
    report.target(
        "none over 2 s",
        windows.iter().all(|w| w.p99 <= P99_TARGET_S),
    );
    report.row(
        "sustained",
        "service CPU per event",
        cpu / n as f64 * 1e6,
        "µs",
    );
    report.details.insert(
        "sustained".into(),
        json!({"events": n, "audiences": AUDIENCES, "batch": BATCH, "senders": SENDERS,
               "ingest_s": ingest.as_secs_f64(), "e2e_s": e2e, "service_cpu_s": cpu,
               "service_user_s": user, "service_system_s": system, "minor_faults": faults,
               "peak_rss_kib": peak_kib, "vmhwm_kib": at_end.peak,
               "sampled_max_rss_kib": sampled_max,
               "rss_at_start_kib": at_start.rss, "rss_at_end": resident_json(&at_end),
               "p50_s": percentile(&all, 0.5), "p99_s": percentile(&all, 0.99),
               "max_s": percentile(&all, 1.0),
               "latency_windows": windows.iter().map(Window::to_json).collect::<Vec<_>>(),
               "memory_windows": memory_windows(&samples, WINDOW_MS as f64 / 1000.0)}),
    );
    Ok(())
}

/// Samples the memory of `pid` every [`SAMPLE_EVERY`] until `stop` turns true.
async fn sample_memory(
    pid: u32,
    start: Instant,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<Vec<Sample>> {
    let mut samples = Vec::new();
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    while !*stop.borrow() {
        tick.tick().await;
        samples.push((start.elapsed().as_secs_f64(), resident(pid)?));
    }
    Ok(samples)
}

fn resident_json(r: &Resident) -> Value {
    json!({"rss_kib": r.rss, "anon_kib": r.anon, "file_kib": r.file, "vmhwm_kib": r.peak})
}

/// The highest sampled memory in each window of `secs` seconds of the run.
fn memory_windows(samples: &[Sample], secs: f64) -> Vec<Value> {
    let mut out: Vec<(usize, Resident)> = Vec::new();
    for (t, r) in samples {
        let w = (t / secs) as usize;
        match out.last_mut() {
            Some((last, m)) if *last == w => {
                m.rss = m.rss.max(r.rss);
                m.anon = m.anon.max(r.anon);
                m.file = m.file.max(r.file);
                m.peak = m.peak.max(r.peak);
            }
            _ => out.push((w, *r)),
        }
    }
    out.iter()
        .map(|(w, m)| {
            json!({"from_s": *w as f64 * secs, "max_rss_kib": m.rss, "max_anon_kib": m.anon,
                   "max_file_kib": m.file})
        })
        .collect()
}

/// Each acknowledged key's acceptance (epoch ms) and latency in seconds, from the stopped
/// service's database.
fn acceptances(db: &Path) -> Result<Vec<(i64, f64)>> {
    let conn = rusqlite::Connection::open(db)?;
    let mut stmt = conn.prepare(
        "SELECT accepted_ms, ack_ms - accepted_ms FROM desired WHERE ack_ms IS NOT NULL",
    )?;
    let v = stmt
        .query_map([], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)? as f64 / 1000.0))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(v)
}

/// The latencies of the keys accepted in one window.
#[derive(Debug, Clone, Default, PartialEq)]
struct Window {
    /// Seconds from the first acceptance to the window's start.
    from_s: f64,
    keys: usize,
    p50: f64,
    p99: f64,
    max: f64,
}

impl Window {
    fn to_json(&self) -> Value {
        json!({"from_s": self.from_s, "keys": self.keys, "p50_s": self.p50, "p99_s": self.p99,
               "max_s": self.max})
    }
}

/// The keys cut into windows of `ms` milliseconds of acceptance time from the first one;
/// windows without keys are left out.
fn latency_windows(keys: &[(i64, f64)], ms: i64) -> Vec<Window> {
    let Some(first) = keys.iter().map(|k| k.0).min() else {
        return Vec::new();
    };
    let mut by_window: std::collections::BTreeMap<i64, Vec<f64>> = Default::default();
    for &(accepted, latency) in keys {
        by_window
            .entry((accepted - first) / ms)
            .or_default()
            .push(latency);
    }
    by_window
        .into_iter()
        .map(|(w, mut v)| {
            v.sort_by(f64::total_cmp);
            Window {
                from_s: (w * ms) as f64 / 1000.0,
                keys: v.len(),
                p50: percentile(&v, 0.5),
                p99: percentile(&v, 0.99),
                max: percentile(&v, 1.0),
            }
        })
        .collect()
}

/// The `q` quantile of sorted values (nearest rank); 0 for none.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    super::end_to_end::percentile(sorted, q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_are_cut_into_windows_of_acceptance_time() {
        // 100 keys accepted in the first 10 s with latencies 0.01..=1.00, and 3 in the third
        // window (none in the second).
        let mut keys: Vec<(i64, f64)> = (1..=100)
            .map(|i| (1_000_000 + i * 99, f64::from(i as u32) / 100.0))
            .collect();
        keys.extend([(1_020_500, 3.0), (1_029_999, 1.0), (1_025_000, 2.0)]);
        let w = latency_windows(&keys, 10_000);
        assert_eq!(w.len(), 2, "{w:?}");
        assert_eq!((w[0].from_s, w[0].keys), (0.0, 100));
        assert_eq!((w[0].p50, w[0].p99, w[0].max), (0.5, 0.99, 1.0));
        assert_eq!((w[1].from_s, w[1].keys), (20.0, 3));
        assert_eq!((w[1].p50, w[1].p99, w[1].max), (2.0, 3.0, 3.0));
        assert!(latency_windows(&[], 10_000).is_empty());
    }

    #[test]
    fn memory_windows_keep_the_highest_sample() {
        let r = |rss, anon, file| Resident {
            rss,
            anon,
            file,
            peak: rss,
        };
        let samples = [
            (0.1, r(100, 60, 40)),
            (9.9, r(300, 200, 100)),
            (10.0, r(250, 240, 10)),
            (35.0, r(50, 40, 10)),
        ];
        let w = memory_windows(&samples, 10.0);
        assert_eq!(
            w,
            vec![
                json!({"from_s": 0.0, "max_rss_kib": 300, "max_anon_kib": 200, "max_file_kib": 100}),
                json!({"from_s": 10.0, "max_rss_kib": 250, "max_anon_kib": 240, "max_file_kib": 10}),
                json!({"from_s": 30.0, "max_rss_kib": 50, "max_anon_kib": 40, "max_file_kib": 10}),
            ]
        );
    }
}
