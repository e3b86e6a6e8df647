//! The benchmark harness (crate `iterable-lists-bench`) runs end to end at a small size against
//! this binary: every part but the Node comparison (which needs npm) completes, checks what it
//! measured (all members delivered, every change pending, latencies for every key) and writes
//! its table as JSON. Here, where cargo has just built the service binary it measures.

use std::path::PathBuf;

use iterable_lists_bench::{BenchArgs, run};

#[test]
fn the_bench_measures_every_part_at_a_small_size() {
    let dir =
        std::env::temp_dir().join(format!("iterable-lists-bench-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let json = dir.join("results.json");
    let args = BenchArgs {
        only: [
            "a",
            "b",
            "c",
            "c-pg",
            "d",
            "d-fast",
            "sustained",
            "snapshot",
            "verify",
        ]
        .map(String::from)
        .to_vec(),
        json: Some(json.clone()),
        events: 2000,
        members: 3000,
        sustained_events: 4000,
        rate: 50,
        compare_events: 100_000,
        node_dir: PathBuf::from("bench/segment"),
        work_dir: Some(dir.join("work")),
        pollers: 2,
        service_bin: Some(PathBuf::from(env!("CARGO_BIN_EXE_iterable-lists"))),
        postgres: testkit::postgres::test_pg_url(),
    };
    if let Err(e) = run(&args) {
        panic!("bench failed: {e:#}");
    }
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("JSON written")).expect("valid JSON");
    let rows = v["results"].as_array().expect("results");
    assert!(
        rows.iter()
            .any(|r| r["measure"] == "peak RSS of the service with 3000 pending changes"),
        "{v}"
    );
    for id in [
        "a",
        "b",
        "c",
        "c-pg",
        "d",
        "d-fast",
        "e",
        "sustained",
        "snapshot",
        "verify",
    ] {
        let row = rows
            .iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("no row {id}: {v}"));
        assert!(row["value"].as_f64().is_some_and(|x| x > 0.0), "{row}");
    }
    assert_eq!(v["details"]["b_e"]["pending"], 3000);
    assert_eq!(v["details"]["d"]["requests"], 3);
    assert_eq!(v["details"]["verify"]["report"]["missing"], 3);
    assert_eq!(v["details"]["verify"]["report"]["extra_unknown"], 3);
    assert!(
        v["details"]["verify"]["peak_rss_kib"]
            .as_u64()
            .is_some_and(|k| k > 0),
        "{v}"
    );
    assert_eq!(v["details"]["snapshot"]["runs"][1]["removes"], 300);
    assert_eq!(v["details"]["sustained"]["events"], 4000);
    assert!(
        v["details"]["sustained"]["latency_windows"]
            .as_array()
            .is_some_and(|w| !w.is_empty()),
        "{v}"
    );
    assert_eq!(v["details"]["d-fast"]["members"], 3000);
    assert_eq!(v["details"]["c"]["pollers"], 2);
    assert!(
        v["details"]["c"]["polls"].as_u64().is_some_and(|n| n > 0),
        "{v}"
    );
    assert!(v["machine"]["cores"].as_u64().is_some_and(|c| c >= 1));
    let _ = std::fs::remove_dir_all(&dir);
}
