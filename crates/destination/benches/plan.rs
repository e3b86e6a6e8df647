//! Parse, map and plan throughput on one core with the default mapping: NDJSON lines of
//! Engage audience events in, subscribe/unsubscribe request bodies out; parsed into JSON
//! first (the general path's parse), and read from their text (the fast path).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use destination::{ActionMapping, Planner, ProjectType};
use serde_json::Value;

/// The allocator the iterable-lists binaries use.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Engage-shaped events: identify and track, enter and exit, 2,000 users over 4 audiences,
/// with timestamps, so collapse and grouping do real work.
fn events(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let user = i % 2000;
            let audience = i % 4;
            let member = i % 3 != 0;
            let ts = format!("2026-01-01T00:{:02}:{:02}.{:03}Z", (i / 60000) % 60, (i / 1000) % 60, i % 1000);
            let personas = format!(
                r#"{{"computation_class":"audience","computation_key":"aud_{audience}","computation_id":"ca_{audience}","namespace":"spa_1","space_id":"spa_1","external_audience_id":"{}","audience_settings":{{"updateExistingUsersOnly":false,"globalUnsubscribe":false}}}}"#,
                1000 + audience
            );
            if i % 2 == 0 {
                format!(
                    r#"{{"type":"identify","messageId":"m{i}","userId":"user-{user}","anonymousId":"anon-{user}","timestamp":"{ts}","traits":{{"aud_{audience}":{member},"email":"user{user}@example.com","first_name":"Ann"}},"context":{{"library":{{"name":"unknown","version":"unknown"}},"personas":{personas}}}}}"#
                )
            } else {
                format!(
                    r#"{{"type":"track","event":"Audience {}","messageId":"m{i}","userId":"user-{user}","timestamp":"{ts}","properties":{{"audience_key":"aud_{audience}","aud_{audience}":{member}}},"context":{{"traits":{{"email":"user{user}@example.com"}},"personas":{personas}}}}}"#,
                    if member { "Entered" } else { "Exited" }
                )
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let lines = events(10_000);
    let planner = Planner::new(
        ProjectType::Hybrid,
        ActionMapping::new(None).expect("default mapping"),
    );
    let mut g = c.benchmark_group("parse_map_plan");
    g.throughput(Throughput::Elements(lines.len() as u64));
    g.bench_function("default_mapping_10k_events_in_batches_of_1000", |b| {
        b.iter(|| {
            let mut requests = 0;
            for batch in lines.chunks(1000) {
                let parsed: Vec<Value> = batch
                    .iter()
                    .map(|l| serde_json::from_str(l).expect("valid JSON"))
                    .collect();
                requests += planner.plan(black_box(parsed)).requests.len();
            }
            black_box(requests)
        })
    });
    // The fast path: each event read from its text into a typed, borrowed view.
    g.bench_function("fast_path_10k_events_in_batches_of_1000", |b| {
        b.iter(|| {
            let mut requests = 0;
            for batch in lines.chunks(1000) {
                let texts: Vec<&str> = batch.iter().map(String::as_str).collect();
                requests += planner.plan_texts(black_box(&texts)).requests.len();
            }
            black_box(requests)
        })
    });
    // The share of the work that is JSON parsing alone, for comparison.
    g.bench_function("parse_only_10k_events", |b| {
        b.iter(|| {
            let mut n = 0;
            for l in &lines {
                let v: Value = serde_json::from_str(l).expect("valid JSON");
                n += usize::from(v.is_object());
            }
            black_box(n)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
