//! Segment's side of the comparison: `bench/segment/run.mjs` with Node, which runs
//! `@segment/action-destinations` on the events file against an emulator and prints one JSON
//! line of results. Its pinned packages are installed with `npm ci` on first use.
//!
//! Node runs from a blocking thread, so the runtime's workers stay free for the emulator it
//! calls (and Tokio needs no `process` feature, which would make cargo build Tokio and what
//! depends on it a second time for this crate: the service is built with the same features).

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;

/// Events each side of the comparison delivers before its timed part (Node's JIT, each
/// side's first connection and first allocations): the first ones of the file, both sides.
pub const WARMUP_EVENTS: usize = 2_000;

/// Runs `run.mjs` of `node_dir` (installing its pinned packages first if needed) and returns
/// its JSON line.
pub async fn run(node_dir: &Path, events: &Path, base_url: &str, api_key: &str) -> Result<Value> {
    let (node_dir, events) = (node_dir.to_path_buf(), events.to_path_buf());
    let (base_url, api_key) = (base_url.to_string(), api_key.to_string());
    tokio::task::spawn_blocking(move || run_node(&node_dir, &events, &base_url, &api_key)).await?
}

fn run_node(node_dir: &Path, events: &Path, base_url: &str, api_key: &str) -> Result<Value> {
    let script = node_dir.join("run.mjs");
    if !script.exists() {
        bail!(
            "{} not found: run from the repository root or pass --node-dir",
            script.display()
        );
    }
    if !node_dir.join("node_modules").exists() {
        install(node_dir)?;
    }
    let out = Command::new("node")
        .arg(&script)
        .arg("--events")
        .arg(events)
        .arg("--base-url")
        .arg(base_url)
        .arg("--api-key")
        .arg(api_key)
        .arg("--warmup")
        .arg(WARMUP_EVENTS.to_string())
        .stderr(Stdio::inherit())
        .output()
        .context("running node")?;
    if !out.status.success() {
        bail!("the Segment side failed ({})", out.status);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .ok_or_else(|| anyhow!("no JSON result from the Segment side: {text}"))?;
    Ok(serde_json::from_str(line)?)
}

/// `npm ci` in `node_dir`: the pinned packages of its lock file.
fn install(node_dir: &Path) -> Result<()> {
    eprintln!(
        "installing the Node side: npm ci --prefix {}",
        node_dir.display()
    );
    let ok = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--prefix"])
        .arg(node_dir)
        .status()
        .context("running npm (Node.js 20 and npm are needed for the comparison)")?;
    if !ok.success() {
        bail!("npm ci failed in {}", node_dir.display());
    }
    Ok(())
}
