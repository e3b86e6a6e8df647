//! (a) Parse, map and plan on one thread: JSON text of Engage events, in batches of 1,000,
//! with the default mapping. Wall and CPU time of that thread, for the fast path (each event
//! read from its text into a typed, borrowed view, as the service reads `/v1/batch`) and,
//! beside it, the general path on the same events (parsed into JSON, the mapping evaluated).

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
    let mapping = ActionMapping::new(None)?;
    let fast = Planner::new(ProjectType::Hybrid, mapping.clone());
    let general = Planner::new(ProjectType::Hybrid, mapping.general());
    // Alternated, so that both meet the same machine: the first of each warms it up.
    let mut best = [(f64::MAX, 0.0), (f64::MAX, 0.0)];
    for _ in 0..2 {
        for (slot, planner) in [&fast, &general].into_iter().enumerate() {
            let (wall, cpu) = measure(planner, &lines, slot == 0)?;
            if wall < best[slot].0 {
                best[slot] = (wall, cpu);
            }
        }
    }
    let [(wall, cpu), (general_wall, general_cpu)] = best;
    report.row(
        "a",
        "parse, map and plan (one thread), events/s",
        n as f64 / wall,
        "events/s",
    );
    report.row(
        "a",
        "the same on the general path (JSON tree, mapping evaluated), events/s",
        n as f64 / general_wall,
        "events/s",
    );
    report.details.insert(
        "a".into(),
        json!({"events": n, "wall_s": wall, "thread_cpu_s": cpu,
               "general": {"wall_s": general_wall, "thread_cpu_s": general_cpu}}),
    );
    Ok(())
}

/// Wall and thread CPU seconds of parsing and planning all `lines`, on a thread of its own:
/// from the texts ([`Planner::plan_texts`]), or parsed into JSON first ([`Planner::plan`]).
fn measure(planner: &Planner, lines: &[String], texts: bool) -> Result<(f64, f64)> {
    std::thread::scope(|s| {
        s.spawn(|| -> Result<(f64, f64)> {
            let (t, c) = (Instant::now(), cpu_seconds("thread-self")?);
            let mut requests = 0;
            for batch in lines.chunks(1000) {
                let plan = if texts {
                    let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
                    planner.plan_texts(&refs)
                } else {
                    let parsed = batch
                        .iter()
                        .map(|l| serde_json::from_str::<Value>(l))
                        .collect::<Result<Vec<_>, _>>()?;
                    planner.plan(parsed)
                };
                requests += plan.requests.len();
            }
            std::hint::black_box(requests);
            Ok((t.elapsed().as_secs_f64(), cpu_seconds("thread-self")? - c))
        })
        .join()
        .map_err(|_| anyhow!("the planning thread panicked"))?
    })
}
