//! Differential test against Segment's own mapping-kit: random mappings (every directive,
//! `@liquid` included, nested, well-formed and not) and random events, generated with a fixed
//! seed, are resolved here and by `transform` from `@segment/actions-core` (the version that
//! `@segment/action-destinations` 3.497.0 bundles), run in Node by `bench/segment/mapping.mjs`.
//! Both must agree: the same value (numbers compared as doubles, strings exactly, object keys
//! in any order), or both an error.
//!
//! The Node packages are installed on first use from `bench/segment/package.json` and its lock
//! file into `$CARGO_TARGET_TMPDIR/segment-node` (testkit's cached install), which needs
//! `node` >= 20 and `npm` on the PATH and the npm registry the first time; without them the
//! test fails, saying so. `DIFFERENTIAL_CASES` (default 3,000) and `DIFFERENTIAL_SEED` change
//! the run; disagreements are printed with their case (all of them, as NDJSON, into the file
//! `DIFFERENTIAL_REPORT` names), so they can be replayed with `node bench/segment/mapping.mjs`.
//!
//! Where this implementation deliberately differs (integers above 2^53 stay exact; see the
//! README's table), the generators stay clear of it.

#[path = "differential/cases.rs"]
mod cases;
#[path = "differential/liquid.rs"]
mod liquid;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use segment::mapping::Mapping;
use serde_json::Value;

const NEEDS: &str = "the differential test (crates/segment/tests/differential.rs) needs node >= 20 \
                     and npm on the PATH, and the npm registry the first time";
const BENCH_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../bench/segment");
const DEFAULT_CASES: usize = 3_000;
const DEFAULT_SEED: u64 = 0x5e6_3e47;
/// Cases sent to one Node process.
const CHUNK: usize = 10_000;

#[test]
fn mapping_kit_agrees_with_segment() {
    let cases = env_number("DIFFERENTIAL_CASES", DEFAULT_CASES as u64) as usize;
    let seed = env_number("DIFFERENTIAL_SEED", DEFAULT_SEED);
    let prefix = node_packages();
    let lines = generate(cases, seed);

    let mut report = Report::default();
    for chunk in lines.chunks(CHUNK) {
        let theirs = run_segment(&prefix, chunk);
        for (line, answer) in chunk.iter().zip(theirs) {
            report.add(line, &ours(line), &answer);
        }
    }
    eprintln!("{}", report.summary(cases, seed));
    if let Ok(path) = std::env::var("DIFFERENTIAL_REPORT") {
        std::fs::write(&path, report.all.join("\n"))
            .unwrap_or_else(|e| panic!("write {path}: {e}"));
    }
    assert!(
        report.disagreements == 0,
        "{} of {cases} cases disagree with Segment's mapping-kit (seed {seed}):\n{}",
        report.disagreements,
        report.examples.join("\n")
    );
}

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

/// The installed Node packages (`$CARGO_TARGET_TMPDIR/segment-node`).
fn node_packages() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("segment-node");
    testkit::npm_ci(
        Path::new(BENCH_DIR),
        &dir,
        "@segment/action-destinations packages",
        20,
        NEEDS,
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// `count` case lines, `{"mapping":…,"event":…}`, from a deterministic runner.
fn generate(count: usize, seed: u64) -> Vec<String> {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &bytes);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let strategy = (cases::top_mapping(), cases::event());
    (0..count)
        .map(|_| {
            let (mapping, event) = strategy
                .new_tree(&mut runner)
                .unwrap_or_else(|e| panic!("generator: {e}"))
                .current();
            let mut line = String::from("{\"mapping\":");
            mapping.write(&mut line);
            line.push_str(",\"event\":");
            event.write(&mut line);
            line.push('}');
            line
        })
        .collect()
}

/// Segment's answers, one per case line.
fn run_segment(prefix: &Path, lines: &[String]) -> Vec<Value> {
    let mut input = lines.join("\n");
    input.push('\n');
    let mut cmd = Command::new("node");
    cmd.arg(Path::new(BENCH_DIR).join("mapping.mjs"))
        .env("MAPPING_NODE_PREFIX", prefix)
        // Liquid's date filters use the process's time zone; Segment's servers run in UTC.
        .env("TZ", "UTC");
    let out = testkit::run_with_input(
        cmd,
        input.into_bytes(),
        Duration::from_secs(600),
        "node mapping.mjs",
        NEEDS,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.ok,
        "node mapping.mjs failed ({}):\n{}",
        out.status, out.stderr
    );
    let answers: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("answer {l:?}: {e}")))
        .collect();
    assert_eq!(
        answers.len(),
        lines.len(),
        "one answer per case:\n{}",
        out.stderr
    );
    answers
}

/// This implementation's answer, in the shape of mapping.mjs's.
fn ours(line: &str) -> Value {
    let case: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => return serde_json::json!({"error": format!("case is not JSON here: {e}")}),
    };
    let mapping = Mapping::compile(&case["mapping"]);
    let result = mapping
        .map_err(|e| e.segment_message())
        .and_then(|m| m.resolve_value(&case["event"]).map_err(|e| e.to_string()));
    match result {
        Ok(Some(v)) => serde_json::json!({ "ok": v }),
        Ok(None) => serde_json::json!({"undefined": true}),
        Err(message) => serde_json::json!({ "error": message }),
    }
}

/// JSON equality as JavaScript sees parsed values: numbers as doubles, keys in any order.
fn js_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| js_equal(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| js_equal(v, w)))
        }
        _ => a == b,
    }
}

#[derive(Default)]
struct Report {
    agreements: usize,
    disagreements: usize,
    /// Both failed, with different messages (not a disagreement; counted for information).
    other_messages: usize,
    both_errors: usize,
    examples: Vec<String>,
    /// Every disagreement, as NDJSON, when `DIFFERENTIAL_REPORT` names a file.
    all: Vec<String>,
}

impl Report {
    fn add(&mut self, line: &str, ours: &Value, theirs: &Value) {
        let agree = match (ours.get("error"), theirs.get("error")) {
            (Some(a), Some(b)) => {
                self.both_errors += 1;
                if a != b {
                    self.other_messages += 1;
                }
                true
            }
            (None, None) => js_equal(ours, theirs),
            _ => false,
        };
        if agree {
            self.agreements += 1;
        } else {
            self.disagreements += 1;
            self.all.push(
                serde_json::json!({"case": line, "segment": theirs, "here": ours}).to_string(),
            );
            if self.examples.len() < 40 {
                self.examples.push(format!(
                    "case: {line}\n  segment: {theirs}\n  here:    {ours}"
                ));
            }
        }
    }

    fn summary(&self, cases: usize, seed: u64) -> String {
        format!(
            "differential (seed {seed}): {cases} cases, {} agree ({:.3}%), {} disagree; \
             {} errors on both sides, {} of them with other wording",
            self.agreements,
            100.0 * self.agreements as f64 / cases.max(1) as f64,
            self.disagreements,
            self.both_errors,
            self.other_messages
        )
    }
}
