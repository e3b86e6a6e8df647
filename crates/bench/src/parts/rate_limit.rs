//! (d) A big audience against the emulator's subscribe limit: from the first HTTP request
//! until the emulator's list holds every member, compared with the minimum the limit allows.
//! The service is told the limit, as a user who knows their project's limit would.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::json;

use crate::emulator::{emulator, wait_members};
use crate::events::big_bodies;
use crate::harness::{KEY, Setup};
use crate::load::{counters, send_all};
use crate::report::Report;
use crate::service::Service;

pub async fn run(setup: &Setup, n: usize, rate: u32, report: &mut Report) -> Result<()> {
    let emu = emulator(Some(rate)).await?;
    let bodies = Arc::new(big_bodies(n, 10_000_000));
    let configured = f64::from(rate);
    let svc = Service::start(
        setup,
        "big",
        &emu.url(),
        KEY,
        &format!("[destination.delivery.rate_limits]\nsubscribe = \"{rate}/s\""),
    )?;
    let start = Instant::now();
    let ingest = send_all(&svc.url, bodies).await?;
    let done = wait_members(&emu, n, Duration::from_secs(3600)).await?;
    let took = (done - start).as_secs_f64();
    let counted = counters(&svc.url).await?;
    svc.stop()?;
    let requests = n.div_ceil(1000);
    let minimum = minimum_seconds(requests, rate);
    let ratio = took / minimum;
    report.row(
        "d",
        format!("{n}-member audience pushed, {rate}/s subscribe limit"),
        took,
        "s",
    );
    report.row("d", "  time over the rate-limit minimum", ratio, "×");
    report.target("within 10% (≤ 1.10)", ratio <= 1.10);
    report.details.insert(
        "d".into(),
        json!({"members": n, "rate_per_s": rate, "service_limit_per_s": configured,
               "rows_per_request": 1000,
               "requests": requests, "minimum_s": minimum, "took_s": took,
               "ingest_s": ingest.as_secs_f64(), "ratio": ratio, "service_counters": counted}),
    );
    Ok(())
}

/// The least time `requests` subscribe calls take: the emulator admits 2 at once, then one
/// every 1/rate s.
fn minimum_seconds(requests: usize, rate: u32) -> f64 {
    (requests.saturating_sub(2) as f64 / f64::from(rate)).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_minimum_counts_the_burst_of_two_as_free() {
        assert_eq!(minimum_seconds(1000, 10), 99.8);
        assert_eq!(minimum_seconds(3, 50), 0.02);
        assert_eq!(minimum_seconds(2, 10), 0.0);
        assert_eq!(minimum_seconds(1, 10), 0.0);
    }
}
