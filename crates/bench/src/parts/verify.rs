//! (verify) `audience verify` of a big audience: the service delivers `n` members to the
//! emulator and stops; a thousandth of them (at least one) is removed from the list by hand and
//! as many strangers added; then `iterable-lists audience verify --json` runs as its own
//! process, reads the list streamed from the emulator and walks the store. Measured: its time
//! and its peak RSS (`VmHWM`, sampled every 10 ms while it runs); checked: the drift it reports.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::emulator::{client, emulator, wait_members};
use crate::events::big_bodies;
use crate::harness::{KEY, Setup};
use crate::load::send_all;
use crate::procfs::status_kib;
use crate::report::Report;
use crate::service::Service;

/// The audience of [`big_bodies`].
const AUDIENCE: &str = "bench_big";

pub async fn run(setup: &Setup, n: usize, report: &mut Report) -> Result<()> {
    let emu = emulator(None).await?;
    let bodies = Arc::new(big_bodies(n, 20_000_000));
    let svc = Service::start(setup, "verify", &emu.url(), KEY, "")?;
    send_all(&svc.url, bodies).await?;
    wait_members(&emu, n, Duration::from_secs(3600)).await?;
    let config = svc.config.clone();
    svc.stop()?;

    // Drift by hand: the first members removed, as many strangers added.
    let drift = (n / 1000).max(1);
    let list = emu
        .state(false)
        .iter()
        .flat_map(|p| p.lists.iter())
        .find(|l| l.name == AUDIENCE)
        .map(|l| l.id)
        .ok_or_else(|| anyhow!("no list {AUDIENCE} in the emulator"))?;
    let c = client(&emu.url())?;
    for (op, first) in [("unsubscribe", 0), ("subscribe", n)] {
        for chunk in (first..first + drift).collect::<Vec<_>>().chunks(1000) {
            let subscribers: Vec<Value> = chunk
                .iter()
                .map(|u| json!({"email": format!("u{u}@example.com")}))
                .collect();
            let body = Bytes::from(json!({"listId": list, "subscribers": subscribers}).to_string());
            let r = if op == "subscribe" {
                c.subscribe(body).await
            } else {
                c.unsubscribe(body).await
            };
            r.map_err(|e| anyhow!("{op} by hand: {e}"))?;
        }
    }

    let mut child = Command::new(&setup.service_bin)
        .args([
            "audience",
            "verify",
            "--json",
            "--audience",
            AUDIENCE,
            "--config",
        ])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", setup.service_bin.display()))?;
    let start = Instant::now();
    let pid = child.id();
    let mut peak = 0;
    while child.try_wait()?.is_none() {
        if let Ok(kib) = status_kib(pid, "VmHWM:") {
            peak = peak.max(kib);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let took = start.elapsed().as_secs_f64();
    let out = child.wait_with_output()?;
    let v: Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("verify printed {:?}", String::from_utf8_lossy(&out.stdout)))?;
    let want = (n as u64, drift as u64);
    let got = (
        v["acknowledged"].as_u64().unwrap_or(0),
        v["missing"].as_u64().unwrap_or(0),
    );
    if got != want || v["extra"].as_u64() != Some(drift as u64) {
        bail!("verify reported {v}, expected {n} acknowledged, {drift} missing and {drift} extra");
    }
    let mib = peak as f64 / 1024.0;
    report.row(
        "verify",
        format!("audience verify of a {n}-member list ({drift} missing, {drift} extra), s"),
        took,
        "s",
    );
    report.row("verify", "  peak RSS of the verify process", mib, "MiB");
    report.target("under 200 MB", mib * 1.048_576 < 200.0);
    report.details.insert(
        "verify".into(),
        json!({"members": n, "drift": drift, "took_s": took, "peak_rss_kib": peak,
               "sampled_every_ms": 10, "report": v}),
    );
    Ok(())
}
