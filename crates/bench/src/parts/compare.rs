//! The comparison with Segment's own code on the same events: 20 audiences whose lists exist
//! (each event names its list in `external_audience_id`, as Engage sends them), each side
//! against its own fresh emulator with the same list ids.
//!
//! - Ours, like for like: the destination logic and the Iterable client on one thread, fed the
//!   events' JSON text in batches of 1,000 of one audience (Segment's framework hands its action
//!   events already parsed, batched per audience; ours also parses them). CPU of that thread
//!   only.
//! - Segment's: `@segment/action-destinations` run with Node ([`super::segment`]).
//! - Ours, the whole service (HTTP ingestion, durable store, delivery), shown for scale.
//!
//! Both like-for-like sides deliver the file's first [`segment::WARMUP_EVENTS`] events untimed
//! first, and time the rest.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use bytes::Bytes;
use destination::plan::Operation;
use destination::{ActionMapping, Planner, ProjectType};
use iterable_emulator::RunningEmulator;
use serde_json::{Value, json};

use super::end_to_end::UNLIMITED;
use super::segment::{self, WARMUP_EVENTS};
use crate::emulator::{emulator_with_lists, members, unlimited_client, wait_members};
use crate::events::{bodies, spread_events};
use crate::harness::{AUDIENCES, KEY, Setup};
use crate::load::send_all;
use crate::procfs::{cpu_seconds, thread_cpu_seconds};
use crate::report::Report;
use crate::service::Service;

/// Our destination pipeline, like for like.
struct Ours {
    /// Events of the timed part (after the warm-up).
    events: usize,
    wall_s: f64,
    thread_cpu_s: f64,
    requests: usize,
    /// Members the emulator holds afterwards.
    members: usize,
}

/// The whole service on the same events.
struct WholeService {
    wall_s: f64,
    process_cpu_s: f64,
}

pub async fn run(setup: &Setup, n: usize, node_dir: &Path, report: &mut Report) -> Result<()> {
    let (emu_ours, lists) = emulator_with_lists().await?;
    let (emu_seg, lists_seg) = emulator_with_lists().await?;
    let (emu_svc, lists_svc) = emulator_with_lists().await?;
    // The same events for all three.
    if lists != lists_seg || lists != lists_svc {
        bail!("the emulators gave different list ids");
    }
    let events = spread_events(n, &lists);
    let file = setup.dir.join("compare-events.json");
    std::fs::write(&file, serde_json::to_string(&events)?)?;

    if n <= WARMUP_EVENTS {
        bail!(
            "the comparison needs more than {WARMUP_EVENTS} events (the first {WARMUP_EVENTS} warm both sides up, untimed); --compare-events is {n}"
        );
    }
    let ours = ours_like_for_like(&events, &emu_ours).await?;
    if ours.members != n {
        bail!(
            "our pipeline left {} of {n} members in the emulator",
            ours.members
        );
    }
    let seg = segment::run(node_dir, &file, &emu_seg.url(), KEY).await?;
    if seg["events"].as_u64() != Some(ours.events as u64) {
        bail!(
            "the two sides timed different events: ours {}, Segment's {}",
            ours.events,
            seg["events"]
        );
    }
    let seg_members = members(&emu_seg);
    let seg_eps_cpu = seg["events_per_cpu_sec"].as_f64().unwrap_or(0.0);
    report_ours_and_segment(report, &ours, &seg);
    let svc = whole_service(setup, &events, &emu_svc).await?;
    let svc_eps_cpu = n as f64 / svc.process_cpu_s.max(0.01);
    report.row(
        "cmp",
        "ours, whole service: events per CPU-second",
        svc_eps_cpu,
        "events/cpu-s",
    );
    report.row(
        "cmp",
        "ours, whole service: events/s",
        n as f64 / svc.wall_s,
        "events/s",
    );
    report.row(
        "cmp",
        "ratio of events per CPU-second, whole service / segment",
        svc_eps_cpu / seg_eps_cpu.max(1e-9),
        "×",
    );
    report.details.insert(
        "compare".into(),
        json!({"events": n, "ours": {"timed_events": ours.events, "warmup_events": n - ours.events,
                                      "wall_s": ours.wall_s, "thread_cpu_s": ours.thread_cpu_s,
                                      "requests": ours.requests, "members": ours.members},
               "ours_service": {"wall_s": svc.wall_s, "process_cpu_s": svc.process_cpu_s},
               "segment": seg, "segment_members_in_emulator": seg_members}),
    );
    Ok(())
}

/// The rows of our pipeline beside Segment's, and their ratio against the target.
fn report_ours_and_segment(report: &mut Report, ours: &Ours, seg: &Value) {
    let n = ours.events;
    let ours_eps_cpu = n as f64 / ours.thread_cpu_s.max(0.01);
    let seg_cpu = seg["cpu_s"].as_f64().unwrap_or(0.0);
    let seg_events = seg["events"].as_u64().unwrap_or(0) as f64;
    let seg_eps_cpu = seg["events_per_cpu_sec"].as_f64().unwrap_or(0.0);
    let ratio = ours_eps_cpu / seg_eps_cpu.max(1e-9);
    report.row(
        "cmp",
        "ours: events per CPU-second (destination logic + client)",
        ours_eps_cpu,
        "events/cpu-s",
    );
    report.row(
        "cmp",
        "ours: CPU per event",
        ours.thread_cpu_s / n as f64 * 1e6,
        "µs",
    );
    report.row("cmp", "ours: events/s", n as f64 / ours.wall_s, "events/s");
    report.row(
        "cmp",
        "segment: events per CPU-second",
        seg_eps_cpu,
        "events/cpu-s",
    );
    report.row(
        "cmp",
        "segment: CPU per event",
        seg_cpu / seg_events.max(1.0) * 1e6,
        "µs",
    );
    report.row(
        "cmp",
        "segment: events/s",
        seg["events_per_sec"].as_f64().unwrap_or(0.0),
        "events/s",
    );
    report.row(
        "cmp",
        "ratio of events per CPU-second, ours / segment",
        ratio,
        "×",
    );
    report.target("at least 20×", ratio >= 20.0);
}

/// Our side, like for like: batches of 1,000 events of one audience each, as JSON texts,
/// through the pipeline on a thread of its own. The first [`WARMUP_EVENTS`] go first, untimed,
/// as on Segment's side.
async fn ours_like_for_like(events: &[Value], emu: &RunningEmulator) -> Result<Ours> {
    let url = emu.url();
    let warmup = WARMUP_EVENTS.min(events.len());
    let (warm, timed) = events.split_at(warmup);
    let (warm, timed) = (audience_batches(warm), audience_batches(timed));
    let (wall_s, thread_cpu_s, requests) =
        tokio::task::spawn_blocking(move || our_pipeline(&warm, &timed, &url)).await??;
    Ok(Ours {
        events: events.len() - warmup,
        wall_s,
        thread_cpu_s,
        requests,
        members: members(emu),
    })
}

/// The events' texts, per audience, in batches of 1,000.
fn audience_batches(events: &[Value]) -> Vec<Vec<String>> {
    let mut by_audience: Vec<Vec<String>> = vec![Vec::new(); AUDIENCES];
    for (i, e) in events.iter().enumerate() {
        by_audience[i % AUDIENCES].push(e.to_string());
    }
    by_audience
        .into_iter()
        .flat_map(|a| a.chunks(1000).map(<[String]>::to_vec).collect::<Vec<_>>())
        .collect()
}

/// Our destination pipeline on one thread (its own Tokio runtime): parse, map and plan each
/// batch of event texts (the fast path of [`Planner::plan_texts`]), send every request to the
/// emulator and read the answers. The `warm` batches go first, untimed. Wall time and CPU of
/// that thread for the `timed` batches only, and the requests they sent. The texts are the
/// harness's input, made on another thread: they are freed after the timed part, not in it
/// (freeing another thread's blocks is slower, and it is not the pipeline's work).
fn our_pipeline(
    warm: &[Vec<String>],
    timed: &[Vec<String>],
    base_url: &str,
) -> Result<(f64, f64, usize)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let planner = Planner::new(ProjectType::Hybrid, ActionMapping::new(None)?);
    let client = unlimited_client(base_url)?;
    let send = |batches: &[Vec<String>]| {
        rt.block_on(async {
            let mut requests = 0;
            for batch in batches {
                let texts: Vec<&str> = batch.iter().map(String::as_str).collect();
                let plan = planner.plan_texts(&texts);
                for r in plan.requests {
                    let body = Bytes::from(r.body);
                    let resp = match r.op {
                        Operation::Subscribe => client.subscribe(body).await,
                        Operation::Unsubscribe => client.unsubscribe(body).await,
                    }
                    .map_err(|e| anyhow!("{e}"))?;
                    std::hint::black_box(resp);
                    requests += 1;
                }
            }
            Ok::<usize, anyhow::Error>(requests)
        })
    };
    send(warm)?;
    let (t, c) = (Instant::now(), thread_cpu_seconds()?);
    let requests = send(timed)?;
    Ok((
        t.elapsed().as_secs_f64(),
        thread_cpu_seconds()? - c,
        requests,
    ))
}

/// The same events through `/v1/batch` into the service, until the emulator holds them all.
async fn whole_service(
    setup: &Setup,
    events: &[Value],
    emu: &RunningEmulator,
) -> Result<WholeService> {
    let n = events.len();
    let svc = Service::start(setup, "compare-service", &emu.url(), KEY, UNLIMITED)?;
    let cpu0 = cpu_seconds(&svc.pid().to_string())?;
    let start = Instant::now();
    send_all(&svc.url, Arc::new(bodies(events))).await?;
    let done = wait_members(emu, n, Duration::from_secs(600)).await?;
    let process_cpu_s = cpu_seconds(&svc.pid().to_string())? - cpu0;
    let wall_s = (done - start).as_secs_f64();
    svc.stop()?;
    Ok(WholeService {
        wall_s,
        process_cpu_s,
    })
}
