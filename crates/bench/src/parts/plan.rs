//! (a) Parse, map and plan on one thread: JSON text of Engage events, in batches of 1,000,
//! with the default mapping. Wall and CPU time of that thread.

use std::time::Instant;

use anyhow::{Result, anyhow};
use destination::{ActionMapping, Planner, ProjectType};
use serde_json::{Value, json};

use crate::events::{audiences, spread_events};
use crate::procfs::cpu_seconds;
use crate::report::Report;

pub fn run(n: usize, report: &mut Report) -> Result<()> {
    let lines: Vec<String> = spread_events(n, &audiences())
        .iter()
        .map(Value::to_string)
        .collect();
    let planner = Planner::new(ProjectType::Hybrid, ActionMapping::new(None)?);
    let (wall, cpu) = std::thread::scope(|s| {
        s.spawn(|| -> Result<(f64, f64)> {
            let (t, c) = (Instant::now(), cpu_seconds("thread-self")?);
            let mut requests = 0;
            for batch in lines.chunks(1000) {
                let parsed = batch
                    .iter()
                    .map(|l| serde_json::from_str::<Value>(l))
                    .collect::<Result<Vec<_>, _>>()?;
                requests += planner.plan(parsed).requests.len();
            }
            std::hint::black_box(requests);
            Ok((t.elapsed().as_secs_f64(), cpu_seconds("thread-self")? - c))
        })
        .join()
        .map_err(|_| anyhow!("the planning thread panicked"))?
    })?;
    let eps = n as f64 / wall;
    report.row(
        "a",
        "parse, map and plan (one thread), events/s",
        eps,
        "events/s",
    );
    report.details.insert(
        "a".into(),
        json!({"events": n, "wall_s": wall, "thread_cpu_s": cpu}),
    );
    Ok(())
}
