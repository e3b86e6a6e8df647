//! (d-fast) Part (d)'s load with every rate limit off: a 1,000,000-member audience, timed
//! from the first HTTP request until the emulator's list holds every member, with the
//! emulator's limits off and the service told `subscribe = "off"`. What bounds it is then the
//! service itself (ingestion, the store, the delivery loop), not Iterable's limit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::json;

use super::end_to_end::UNLIMITED;
use crate::emulator::{emulator, wait_members};
use crate::events::big_bodies;
use crate::harness::{BATCH, KEY, SENDERS, Setup};
use crate::load::{counters, send_all};
use crate::procfs::{cpu_seconds, status_kib};
use crate::report::Report;
use crate::service::Service;

/// The target, seconds from the first request to the last member in the emulator.
const TARGET_S: f64 = 10.0;

pub async fn run(setup: &Setup, n: usize, report: &mut Report) -> Result<()> {
    let emu = emulator(None).await?;
    let bodies = Arc::new(big_bodies(n, 20_000_000));
    let svc = Service::start(setup, "big-fast", &emu.url(), KEY, UNLIMITED)?;
    let pid = svc.pid().to_string();
    // The harness's own process too (the senders and the emulator share the two cores with
    // the service): what the wall time is made of.
    let me = std::process::id().to_string();
    let (cpu0, harness0) = (cpu_seconds(&pid)?, cpu_seconds(&me)?);
    let start = Instant::now();
    let ingest = send_all(&svc.url, bodies).await?;
    let done = wait_members(&emu, n, Duration::from_secs(3600)).await?;
    let took = (done - start).as_secs_f64();
    let cpu = cpu_seconds(&pid)? - cpu0;
    let harness_cpu = cpu_seconds(&me)? - harness0;
    let peak = status_kib(svc.pid(), "VmHWM:")?;
    let counted = counters(&svc.url).await?;
    svc.stop()?;
    report.row(
        "d-fast",
        format!("{n}-member audience pushed, rate limits off"),
        took,
        "s",
    );
    report.target("under 10 s", took < TARGET_S);
    report.row(
        "d-fast",
        "  of which HTTP ingestion (last batch acknowledged)",
        ingest.as_secs_f64(),
        "s",
    );
    report.row(
        "d-fast",
        "  service CPU per member",
        cpu / n as f64 * 1e6,
        "µs",
    );
    report.row(
        "d-fast",
        "  the harness's CPU per member (senders and emulator)",
        harness_cpu / n as f64 * 1e6,
        "µs",
    );
    report.details.insert(
        "d-fast".into(),
        json!({"members": n, "took_s": took, "ingest_s": ingest.as_secs_f64(),
               "service_cpu_s": cpu, "harness_cpu_s": harness_cpu, "peak_rss_kib": peak, "batch": BATCH, "senders": SENDERS,
               "target_s": TARGET_S, "service_counters": counted}),
    );
    Ok(())
}
