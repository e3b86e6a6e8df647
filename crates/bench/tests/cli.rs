//! The `iterable-lists-bench` command line: a part that needs no service runs without building
//! one, and what cannot run is refused with a message that says why. (The parts that run the
//! service are exercised against the product binary by `crates/cli/tests/bench.rs`.)

use std::process::{Command, Output};

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_iterable-lists-bench"))
        .args(args)
        .output()
        .expect("run iterable-lists-bench")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn part_a_alone_writes_its_row_and_builds_no_service() {
    let dir = std::env::temp_dir().join(format!("iterable-lists-bench-a-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let json = dir.join("results.json");
    let json_arg = json.to_str().expect("UTF-8 temp path");
    let out = bench(&["--only", "a", "--events", "1000", "--json", json_arg]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("parse, map and plan (one thread), events/s"),
        "{stdout}"
    );
    assert!(!stderr.contains("the service under test"), "{stderr}");
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("JSON written")).expect("valid JSON");
    let rows = v["results"].as_array().expect("results");
    // The fast path, then the general path beside it.
    assert_eq!(rows.len(), 2, "{v}");
    for row in rows {
        assert_eq!(row["id"], "a");
        assert!(row["value"].as_f64().is_some_and(|x| x > 0.0), "{v}");
    }
    assert!(
        rows[1]["measure"]
            .as_str()
            .is_some_and(|m| m.contains("general path")),
        "{v}"
    );
    assert_eq!(v["details"]["a"]["events"], 1000);
    assert!(
        v["details"]["a"]["general"]["wall_s"].as_f64().is_some(),
        "{v}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_missing_service_binary_is_named_with_the_command_that_builds_it() {
    let out = bench(&[
        "--only",
        "b",
        "--members",
        "1000",
        "--service-bin",
        "/nonexistent/iterable-lists",
    ]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--service-bin /nonexistent/iterable-lists: no such file"),
        "{stderr}"
    );
    assert!(stderr.contains("-p iterable-lists"), "{stderr}");
}

#[test]
fn an_unknown_part_is_refused_with_the_parts_there_are() {
    let out = bench(&["--only", "f"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("'f'"), "{stderr}");
    assert!(stderr.contains("compare"), "{stderr}");
}
