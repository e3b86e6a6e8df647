//! `iterable-lists check` against the emulator: a working key, a bad key, the wrong region,
//! and an unreachable host, each with a message that says what to do.

use std::process::Command;
use std::sync::Arc;

use iterable_emulator::{
    Emulator, EmulatorConfig, ManualClock, ProjectConfig, ProjectType, Region,
};

const BIN: &str = env!("CARGO_BIN_EXE_iterable-lists");
const US: &str = "0123456789abcdef0123456789abcd01";
const EU: &str = "0123456789abcdef0123456789abcd02";

fn settings(dir: &std::path::Path, name: &str, json: String) -> String {
    let p = dir.join(name);
    std::fs::write(&p, json).expect("write settings");
    p.to_string_lossy().into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_lists_or_says_what_is_wrong() {
    let mut c = EmulatorConfig::default()
        .with_project(ProjectConfig::new(ProjectType::Hybrid, US))
        .with_project(ProjectConfig::new(ProjectType::Hybrid, EU).in_region(Region::Eu));
    c.listen = "127.0.0.1:0".parse().unwrap();
    let emu = Emulator::start_with_clock(c, Arc::new(ManualClock::new(0)))
        .await
        .unwrap();
    emu.seed(&iterable_emulator::SeedRequest {
        project_id: Some(emu.project_ids()[0]),
        lists: vec![
            iterable_emulator::SeedList {
                name: "a".into(),
                ..Default::default()
            },
            iterable_emulator::SeedList {
                name: "b".into(),
                list_type: iterable_emulator::ListType::Dynamic,
                ..Default::default()
            },
        ],
        ..Default::default()
    })
    .unwrap();
    let dir = std::env::temp_dir().join(format!("il-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = emu.url();
    let cases = [
        (
            format!(r#"{{"apiKey":"{US}","baseUrl":"{url}"}}"#),
            true,
            "reaches 2 lists (1 of them static)",
        ),
        (
            format!(r#"{{"apiKey":"ffffffffffffffffffffffffffffffff","baseUrl":"{url}"}}"#),
            false,
            "BadApiKey",
        ),
        (
            format!(r#"{{"apiKey":"{EU}","baseUrl":"{url}"}}"#),
            false,
            "region",
        ),
        (
            format!(r#"{{"apiKey":"{US}","baseUrl":"http://127.0.0.1:9"}}"#),
            false,
            "Cannot reach http://127.0.0.1:9",
        ),
        (
            format!(r#"{{"apiKey":"{US}","iterableProjectType":"email"}}"#),
            false,
            "Iterable Project Type must be one of",
        ),
    ];
    for (i, (json, ok, needle)) in cases.into_iter().enumerate() {
        let path = settings(&dir, &format!("s{i}.json"), json);
        let out = tokio::task::spawn_blocking(move || {
            Command::new(BIN)
                .args(["check", "--settings", &path])
                .output()
        })
        .await
        .unwrap()
        .expect("run");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.success(), ok, "{needle}: {text}");
        assert!(text.contains(needle), "{needle}: {text}");
        for key in [US, EU, "ffffffffffffffffffffffffffffffff"] {
            assert!(!text.contains(key), "key printed: {text}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
