//! (c) End to end: events over the bench audiences, timed from the first HTTP request until
//! the emulator's lists hold them all, with optional pollers of `/metrics` and `/v1/status`.
//! The latency of each key runs from acceptance to acknowledgement, read from the stopped
//! service's database: exact percentiles, not histogram buckets.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde_json::json;

use crate::emulator::{emulator, wait_members};
use crate::events::{audiences, bodies, spread_events};
use crate::harness::{AUDIENCES, BATCH, KEY, SENDERS, Setup};
use crate::load::{send_spread, start_pollers};
use crate::pg::BenchSchema;
use crate::procfs::{cpu_seconds, cpu_seconds_of_command};
use crate::report::Report;
use crate::service::{Db, Service};

/// Delivery as fast as the emulator answers: the service's rate limits off.
pub const UNLIMITED: &str =
    "[destination.delivery.rate_limits]\nsubscribe = \"off\"\nunsubscribe = \"off\"";

/// What one run measured.
struct Run {
    ingest_s: f64,
    e2e_s: f64,
    service_cpu_s: f64,
    /// CPU seconds of the PostgreSQL server's processes meanwhile (runs on PostgreSQL).
    pg_cpu_s: Option<f64>,
    polls: u64,
    /// Seconds from acceptance to acknowledgement of each key, sorted.
    latencies: Vec<f64>,
    /// Services sharing the load (their CPU time is summed).
    instances: usize,
}

pub async fn run(setup: &Setup, n: usize, pollers: usize, report: &mut Report) -> Result<()> {
    let r = measure(setup, n, pollers, None, 1).await?;
    rows(report, "c", "", n, pollers, &r, &SQLITE_TARGETS);
    Ok(())
}

/// (c-pg) and (c-pg3): the same on PostgreSQL, with `instances` instances sharing one fresh
/// schema of the server at `base`, the load spread over them.
pub async fn run_postgres(
    setup: &Setup,
    n: usize,
    base: &str,
    instances: usize,
    report: &mut Report,
) -> Result<()> {
    let schema = BenchSchema::create(base, "e2e").await?;
    let r = measure(setup, n, 0, Some(&schema), instances).await;
    let dropped = schema.drop_schema().await;
    let r = r?;
    dropped?;
    let (part, on) = if instances == 1 {
        ("c-pg", " on PostgreSQL, 1 instance".to_string())
    } else {
        ("c-pg3", format!(" on PostgreSQL, {instances} instances"))
    };
    rows(report, part, &on, n, 0, &r, &POSTGRES_TARGETS);
    Ok(())
}

/// The targets of a run: events/s (with its label), and where set, the p99 in seconds and
/// the service's CPU per event in µs.
struct Targets {
    events_per_s: (f64, &'static str),
    p99_s: Option<f64>,
    cpu_us: Option<f64>,
}

/// Part (c), on SQLite: issue 18's.
const SQLITE_TARGETS: Targets = Targets {
    events_per_s: (100_000.0, "100,000 events/s"),
    p99_s: Some(1.0),
    cpu_us: Some(8.0),
};

/// Parts (c-pg) and (c-pg3).
const POSTGRES_TARGETS: Targets = Targets {
    events_per_s: (20_000.0, "20,000 events/s"),
    p99_s: None,
    cpu_us: None,
};

/// The rows of one run under `part`, against `targets`.
fn rows(
    report: &mut Report,
    part: &'static str,
    on: &str,
    n: usize,
    pollers: usize,
    r: &Run,
    targets: &Targets,
) {
    let eps = n as f64 / r.e2e_s;
    let polled = if pollers > 0 {
        format!(", {pollers} pollers")
    } else {
        String::new()
    };
    let lat = &r.latencies;
    let cpu_us = r.service_cpu_s / n as f64 * 1e6;
    report.row(
        part,
        format!("end to end{on} ({n} events, {AUDIENCES} audiences{polled}), events/s"),
        eps,
        "events/s",
    );
    let (want, label) = targets.events_per_s;
    report.target(label, eps >= want);
    report.row(
        part,
        "latency acceptance to acknowledgement, p50",
        percentile(lat, 0.5),
        "s",
    );
    let p99 = percentile(lat, 0.99);
    report.row(part, "latency acceptance to acknowledgement, p99", p99, "s");
    if let Some(want) = targets.p99_s {
        report.target(format!("under {want} s"), p99 < want);
    }
    report.row(
        part,
        if r.instances == 1 {
            "service CPU per event".to_string()
        } else {
            format!("service CPU per event, {} instances together", r.instances)
        },
        cpu_us,
        "µs",
    );
    if let Some(want) = targets.cpu_us {
        report.target(format!("at most {want} µs"), cpu_us <= want);
    }
    if let Some(pg) = r.pg_cpu_s {
        report.row(
            part,
            "PostgreSQL backends' CPU per event",
            pg / n as f64 * 1e6,
            "µs",
        );
    }
    report.details.insert(
        part.into(),
        json!({"events": n, "postgres_cpu_s": r.pg_cpu_s, "ingest_s": r.ingest_s, "e2e_s": r.e2e_s,
               "service_cpu_s": r.service_cpu_s, "p50_s": percentile(lat, 0.5),
               "p90_s": percentile(lat, 0.9), "p99_s": percentile(lat, 0.99),
               "max_s": percentile(lat, 1.0), "batch": BATCH, "senders": SENDERS,
               "pollers": pollers, "polls": r.polls, "instances": r.instances}),
    );
}

/// One run: the load (spread over `instances` services sharing `pg`'s schema; one service
/// on SQLite), the pollers, then the latencies from the stopped services' database.
async fn measure(
    setup: &Setup,
    n: usize,
    pollers: usize,
    pg: Option<&BenchSchema>,
    instances: usize,
) -> Result<Run> {
    if pg.is_none() && instances != 1 {
        bail!("several instances need PostgreSQL");
    }
    let emu = emulator(None).await?;
    let bodies = Arc::new(bodies(&spread_events(n, &audiences())));
    let mut services = Vec::with_capacity(instances);
    for i in 0..instances {
        let db = match pg {
            Some(schema) => Db::Postgres(schema.url()),
            None => Db::Sqlite(setup.dir.join("e2e").join("db.sqlite")),
        };
        let name = if instances == 1 {
            "e2e".to_string()
        } else {
            format!("e2e-{i}")
        };
        services.push(Service::start_on(
            setup,
            &name,
            &emu.url(),
            KEY,
            UNLIMITED,
            db,
        )?);
    }
    let cpu_of = |services: &[Service]| -> Result<f64> {
        services
            .iter()
            .map(|s| cpu_seconds(&s.pid().to_string()))
            .sum()
    };
    let cpu0 = cpu_of(&services)?;
    // The backends serving the run's database (other databases' are not the run's).
    let database = pg.map(|s| s.database()).unwrap_or_default();
    let pg_cpu0 = cpu_seconds_of_command("postgres", &database);
    let urls: Vec<String> = services.iter().map(|s| s.url.clone()).collect();
    let (stop_polling, stop) = tokio::sync::watch::channel(false);
    let polling = start_pollers(&urls[0], pollers, stop);
    let start = Instant::now();
    let ingest = send_spread(&urls, bodies).await?;
    let done = wait_members(&emu, n, Duration::from_secs(600)).await?;
    let e2e = done - start;
    let cpu = cpu_of(&services)? - cpu0;
    let pg_cpu = pg.map(|_| cpu_seconds_of_command("postgres", &database) - pg_cpu0);
    let _ = stop_polling.send(true);
    let mut polls = 0;
    for p in polling {
        polls += p.await??;
    }
    // The last outcomes are recorded right after the emulator's answer.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let db = services[0].db.clone();
    for s in services {
        s.stop()?;
    }
    let latencies = match (&db, pg) {
        (_, Some(schema)) => schema.latencies().await?,
        (Db::Sqlite(path), None) => latencies(path)?,
        (Db::Postgres(_), None) => bail!("a PostgreSQL run without its schema"),
    };
    if latencies.len() != n {
        bail!(
            "{} of {n} keys are acknowledged in the service's store",
            latencies.len()
        );
    }
    Ok(Run {
        ingest_s: ingest.as_secs_f64(),
        e2e_s: e2e.as_secs_f64(),
        service_cpu_s: cpu,
        pg_cpu_s: pg_cpu,
        polls,
        latencies,
        instances,
    })
}

/// Seconds from acceptance to acknowledgement of every key, sorted, from the stopped
/// service's database.
fn latencies(db: &Path) -> Result<Vec<f64>> {
    let conn = rusqlite::Connection::open(db)?;
    let mut stmt =
        conn.prepare("SELECT ack_ms - accepted_ms FROM desired WHERE ack_ms IS NOT NULL")?;
    let mut v = stmt
        .query_map([], |r| r.get::<_, i64>(0))?
        .map(|r| r.map(|ms| ms as f64 / 1000.0))
        .collect::<Result<Vec<f64>, _>>()?;
    v.sort_by(f64::total_cmp);
    Ok(v)
}

/// The `q` quantile of sorted values (nearest rank); 0 for none.
pub(crate) fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        for (q, want) in [
            (0.0, 1.0),
            (0.5, 50.0),
            (0.9, 90.0),
            (0.99, 99.0),
            (1.0, 100.0),
        ] {
            assert_eq!(percentile(&v, q), want, "q = {q}");
        }
        assert_eq!(percentile(&[3.0], 0.5), 3.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }
}
