//! (d) A big audience against the emulator's subscribe limit: from the first HTTP request
//! until the emulator's list holds every member, compared with the minimum the limit allows.
//! The service is told the limit, as a user who knows their project's limit would.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use iterable_emulator::LogQuery;
use serde_json::json;

use crate::emulator::{emulator, wait_members};
use crate::events::big_bodies;
use crate::harness::{KEY, Setup};
use crate::load::{counters, send_spread};
use crate::pg::BenchSchema;
use crate::report::Report;
use crate::service::{Db, Service};

pub async fn run(setup: &Setup, n: usize, rate: u32, report: &mut Report) -> Result<()> {
    measure(setup, n, rate, None, report).await
}

/// (d-pg3): the same with `instances` instances sharing one fresh schema of the PostgreSQL
/// server at `base`, the load spread over them; together they keep to the one limit.
pub async fn run_postgres(
    setup: &Setup,
    n: usize,
    rate: u32,
    base: &str,
    instances: usize,
    report: &mut Report,
) -> Result<()> {
    let schema = BenchSchema::create(base, "big").await?;
    let r = measure(setup, n, rate, Some((&schema, instances)), report).await;
    let dropped = schema.drop_schema().await;
    r?;
    dropped
}

async fn measure(
    setup: &Setup,
    n: usize,
    rate: u32,
    pg: Option<(&BenchSchema, usize)>,
    report: &mut Report,
) -> Result<()> {
    let emu = emulator(Some(rate)).await?;
    let bodies = Arc::new(big_bodies(n, 10_000_000));
    let configured = f64::from(rate);
    let delivery = format!("[destination.delivery.rate_limits]\nsubscribe = \"{rate}/s\"");
    let mut services = Vec::new();
    match pg {
        None => services.push(Service::start(setup, "big", &emu.url(), KEY, &delivery)?),
        Some((schema, instances)) => {
            for i in 0..instances {
                let db = Db::Postgres(schema.url());
                let name = format!("big-{i}");
                services.push(Service::start_on(
                    setup,
                    &name,
                    &emu.url(),
                    KEY,
                    &delivery,
                    db,
                )?);
            }
        }
    }
    let urls: Vec<String> = services.iter().map(|s| s.url.clone()).collect();
    let start = Instant::now();
    let ingest = send_spread(&urls, bodies).await?;
    let done = wait_members(&emu, n, Duration::from_secs(3600)).await?;
    let took = (done - start).as_secs_f64();
    let mut counted = Vec::new();
    for u in &urls {
        counted.push(counters(u).await?);
    }
    for s in services {
        s.stop()?;
    }
    let throttled = emu
        .requests(&LogQuery {
            path: Some("/api/lists/subscribe".into()),
            ..LogQuery::default()
        })
        .iter()
        .filter(|q| q.status == 429)
        .count();
    let requests = n.div_ceil(1000);
    let minimum = minimum_seconds(requests, rate);
    let ratio = took / minimum;
    let (part, on) = match pg {
        None => ("d", String::new()),
        Some((_, i)) => ("d-pg3", format!(", {i} instances on PostgreSQL")),
    };
    report.row(
        part,
        format!("{n}-member audience pushed, {rate}/s subscribe limit{on}"),
        took,
        "s",
    );
    report.row(part, "  time over the rate-limit minimum", ratio, "×");
    report.target("within 10% (≤ 1.10)", ratio <= 1.10);
    report.details.insert(
        part.into(),
        json!({"members": n, "rate_per_s": rate, "service_limit_per_s": configured,
               "rows_per_request": 1000, "instances": urls.len(),
               "requests": requests, "minimum_s": minimum, "took_s": took,
               "ingest_s": ingest.as_secs_f64(), "ratio": ratio,
               "subscribe_429s": throttled, "service_counters": counted}),
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
