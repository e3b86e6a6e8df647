//! The benchmark harness runs end to end at a small size: every part but the Node comparison
//! (which needs npm) completes, checks what it measured (all members delivered, every change
//! pending, latencies for every key) and writes its table as JSON.

use std::process::Command;

#[test]
fn the_bench_command_measures_every_part_at_a_small_size() {
    let dir =
        std::env::temp_dir().join(format!("iterable-lists-bench-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let json = dir.join("results.json");
    let out = Command::new(env!("CARGO_BIN_EXE_iterable-lists"))
        .args([
            "bench", "--only", "a", "--only", "b", "--only", "c", "--only", "d",
        ])
        .args(["--events", "2000", "--members", "3000", "--rate", "50"])
        .args(["--pollers", "2"])
        .arg("--json")
        .arg(&json)
        .arg("--work-dir")
        .arg(dir.join("work"))
        .output()
        .expect("run iterable-lists bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bench failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("peak RSS of the service with 3000 pending changes"),
        "{stdout}"
    );
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("JSON written")).expect("valid JSON");
    let rows = v["results"].as_array().expect("results");
    for id in ["a", "b", "c", "d", "e"] {
        let row = rows
            .iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("no row {id}: {v}"));
        assert!(row["value"].as_f64().is_some_and(|x| x > 0.0), "{row}");
    }
    assert_eq!(v["details"]["b_e"]["pending"], 3000);
    assert_eq!(v["details"]["d"]["requests"], 3);
    assert_eq!(v["details"]["c"]["pollers"], 2);
    assert!(
        v["details"]["c"]["polls"].as_u64().is_some_and(|n| n > 0),
        "{v}"
    );
    assert!(v["machine"]["cores"].as_u64().is_some_and(|c| c >= 1));
    let _ = std::fs::remove_dir_all(&dir);
}
