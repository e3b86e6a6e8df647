//! The results: a table of rows (measure, value, unit, target met or missed), the details of
//! each part, and the machine, printed for a reader and written as the JSON of
//! `BENCHMARKS.json` (`machine`, `results`, `details`).

use serde_json::{Value, json};

/// One row of the result table.
struct Row {
    id: &'static str,
    measure: String,
    value: f64,
    unit: &'static str,
    target: Option<String>,
    pass: Option<bool>,
}

#[derive(Default)]
pub struct Report {
    rows: Vec<Row>,
    /// Each part's raw figures, by part.
    pub details: serde_json::Map<String, Value>,
}

impl Report {
    pub fn row(
        &mut self,
        id: &'static str,
        measure: impl Into<String>,
        value: f64,
        unit: &'static str,
    ) {
        self.rows.push(Row {
            id,
            measure: measure.into(),
            value,
            unit,
            target: None,
            pass: None,
        });
    }

    /// The target of the last row, and whether it was met.
    pub fn target(&mut self, target: impl Into<String>, pass: bool) {
        if let Some(r) = self.rows.last_mut() {
            r.target = Some(target.into());
            r.pass = Some(pass);
        }
    }

    pub fn print(&self) {
        println!();
        println!(
            "{:<4} {:<58} {:>14} {:<12} target",
            "", "measure", "value", "unit"
        );
        for r in &self.rows {
            let value = if r.value >= 100.0 {
                format!("{:.0}", r.value)
            } else {
                format!("{:.3}", r.value)
            };
            let target = match (&r.target, r.pass) {
                (Some(t), Some(true)) => format!("{t}: PASS"),
                (Some(t), Some(false)) => format!("{t}: MISS"),
                _ => String::new(),
            };
            println!(
                "{:<4} {:<58} {:>14} {:<12} {}",
                r.id, r.measure, value, r.unit, target
            );
        }
    }

    pub fn to_json(&self) -> Value {
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|r| {
                json!({"id": r.id, "measure": r.measure, "value": r.value, "unit": r.unit,
                       "target": r.target, "pass": r.pass})
            })
            .collect();
        json!({"machine": machine(), "results": rows, "details": self.details})
    }
}

/// The CPU model, cores, memory and OS of this machine.
fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0);
    json!({"cpu": cpu, "cores": cores, "memory_gib": (mem_kib as f64 / 1048576.0).round(),
           "os": std::env::consts::OS})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_has_the_shape_of_benchmarks_json() {
        let mut r = Report::default();
        r.row("c", "end to end, events/s", 50_000.0, "events/s");
        r.target("20,000 events/s", true);
        r.row("c", "latency, p50", 0.3, "s");
        r.details.insert("c".into(), json!({"events": 10}));
        let v = r.to_json();
        assert_eq!(
            v["results"],
            json!([
                {"id": "c", "measure": "end to end, events/s", "value": 50_000.0,
                 "unit": "events/s", "target": "20,000 events/s", "pass": true},
                {"id": "c", "measure": "latency, p50", "value": 0.3, "unit": "s",
                 "target": null, "pass": null}
            ])
        );
        assert_eq!(v["details"], json!({"c": {"events": 10}}));
        let keys: Vec<&String> = v["machine"].as_object().expect("machine").keys().collect();
        assert_eq!(keys, ["cpu", "cores", "memory_gib", "os"]);
    }
}
