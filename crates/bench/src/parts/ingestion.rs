//! (b) HTTP ingestion into durable SQLite, and (e) the service's memory with those changes
//! pending: one audience of `n` members is sent while delivery is paused (the destination's
//! key is refused with a 401), then the service must report exactly `n` pending changes.
//! Peak RSS (`VmHWM`) covers the ingestion and one `/v1/status` query that scans them all.

use std::sync::Arc;

use anyhow::{Result, bail};
use serde_json::json;

use crate::emulator::emulator;
use crate::events::big_bodies;
use crate::harness::{BATCH, SENDERS, Setup, WRONG_KEY};
use crate::load::{pending_changes, send_all};
use crate::procfs::status_kib;
use crate::report::Report;
use crate::service::Service;

pub async fn run(setup: &Setup, n: usize, report: &mut Report) -> Result<()> {
    let emu = emulator(None).await?;
    let bodies = Arc::new(big_bodies(n, 0));
    let svc = Service::start(setup, "ingest", &emu.url(), WRONG_KEY, "")?;
    let took = send_all(&svc.url, bodies).await?;
    let peak = status_kib(svc.pid(), "VmHWM:")?;
    let rss = status_kib(svc.pid(), "VmRSS:")?;
    let pending = pending_changes(&svc.url).await?;
    let peak_after = status_kib(svc.pid(), "VmHWM:")?;
    svc.stop()?;
    if pending != n as u64 {
        bail!("expected {n} pending changes after ingestion, the service reports {pending}");
    }
    let eps = n as f64 / took.as_secs_f64();
    report.row(
        "b",
        format!("HTTP ingestion into durable SQLite ({n} events), events/s"),
        eps,
        "events/s",
    );
    // The peak over ingestion and one status query.
    let mib = peak.max(peak_after) as f64 / 1024.0;
    report.row(
        "e",
        format!("peak RSS of the service with {pending} pending changes"),
        mib,
        "MiB",
    );
    report.target("under 150 MB", mib * 1.048_576 < 150.0);
    report.details.insert(
        "b_e".into(),
        json!({"events": n, "ingest_s": took.as_secs_f64(), "batch": BATCH, "senders": SENDERS,
               "peak_rss_kib": peak, "rss_after_ingest_kib": rss,
               "peak_rss_after_status_query_kib": peak_after, "pending": pending}),
    );
    Ok(())
}
