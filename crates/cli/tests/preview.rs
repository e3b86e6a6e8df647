//! The preview commands as a user runs them: `mapping eval` and `plan`, with their output,
//! exit codes and error messages.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_iterable-lists");

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let p = std::env::temp_dir().join(format!("il-cli-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&p).expect("temp dir");
        Dir(p)
    }
    fn file(&self, name: &str, text: &str) -> String {
        let p = self.0.join(name);
        std::fs::write(&p, text).expect("write");
        p.to_string_lossy().into_owned()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("run iterable-lists")
}

fn stdout_json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&o.stdout)
        )
    })
}

#[test]
fn mapping_eval_prints_the_mapped_json() {
    let d = Dir::new("eval");
    let mapping = d.file(
        "m.json",
        r#"{"email":{"@path":"$.traits.email"},"hello":{"@template":"Hi {{traits.name}}, {{traits.age}}"},"gone":{"@path":"$.nope"}}"#,
    );
    let event = d.file(
        "e.json",
        r#"{"traits":{"email":"a@x.co","name":"Ann","age":30}}"#,
    );
    let o = run(&["mapping", "eval", "--mapping", &mapping, "--event", &event]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        stdout_json(&o),
        json!({"email": "a@x.co", "hello": "Hi Ann, 30"})
    );
}

#[test]
fn invalid_mappings_and_inputs_fail_with_a_message() {
    let d = Dir::new("bad");
    let event = d.file("e.json", "{}");
    let cases = [
        (d.file("m1.json", r#"{"email":{"@foo":1}}"#), "@foo"),
        (
            d.file("m2.json", r#"{"email":{"@path":"$.a","x":1}}"#),
            "email",
        ),
        (d.file("m3.json", "{not json"), "not valid JSON"),
    ];
    for (mapping, needle) in cases {
        let o = run(&["mapping", "eval", "--mapping", &mapping, "--event", &event]);
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(needle), "{needle}: {err}");
    }
    let o = run(&[
        "mapping",
        "eval",
        "--mapping",
        "/nonexistent.json",
        "--event",
        &event,
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent.json"));
}

const P: &str = r#""personas":{"computation_class":"audience","computation_key":"vip","external_audience_id":"12345"}"#;

#[test]
fn plan_prints_requests_and_one_status_per_event() {
    let d = Dir::new("plan");
    let settings = d.file("s.json", r#"{"apiKey":"K","iterableProjectType":"hybrid"}"#);
    let mapping = d.file(
        "m.json",
        r#"{"dataFields":{"plan":{"@path":"$.traits.plan"}}}"#,
    );
    let events = d.file(
        "e.ndjson",
        &[
            format!(r#"{{"type":"identify","userId":"u1","traits":{{"vip":true,"email":"a1@x.com","plan":"gold"}},"context":{{{P}}}}}"#),
            String::new(),
            format!(r#"{{"type":"identify","userId":"u2","traits":{{"vip":false}},"context":{{{P}}}}}"#),
            format!(r#"{{"type":"identify","traits":{{"vip":true}},"context":{{{P}}}}}"#),
            r#"{"type":"page","userId":"u1"}"#.to_string(),
        ]
        .join("\n"),
    );
    let o = run(&[
        "plan",
        "--settings",
        &settings,
        "--mapping",
        &mapping,
        &events,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        stdout_json(&o),
        json!({
            "requests": [
                {"method": "POST", "path": "/api/lists/subscribe", "body": {"listId": 12345, "subscribers": [{"email": "a1@x.com", "userId": "u1", "dataFields": {"plan": "gold"}}]}},
                {"method": "POST", "path": "/api/lists/unsubscribe", "body": {"listId": 12345, "subscribers": [{"userId": "u2"}]}}
            ],
            "events": [
                {"index": 0, "status": "planned"},
                {"index": 1, "status": "planned"},
                {"index": 2, "status": "rejected", "message": "Either User ID or Email is required when Iterable Project Type = Hybrid"},
                {"index": 3, "status": "skipped", "message": "page events are not handled by this destination"}
            ]
        })
    );
}

#[test]
fn plan_without_a_list_id_names_the_audience() {
    let d = Dir::new("noid");
    let settings = d.file("s.json", r#"{"apiKey":"K","iterableProjectType":"userId"}"#);
    let events = d.file(
        "e.ndjson",
        r#"{"type":"track","event":"Audience Entered","userId":"u1","properties":{"vip":true},"context":{"personas":{"computation_key":"vip"}}}"#,
    );
    let o = run(&["plan", "--settings", &settings, &events]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        stdout_json(&o)["requests"][0]["body"],
        json!({"listId": "audience:vip", "subscribers": [{"userId": "u1", "preferUserId": true}]})
    );
}

#[test]
fn plan_limits_and_reverse_etl_mode_are_options() {
    let d = Dir::new("opts");
    let settings = d.file("s.json", r#"{"apiKey":"K"}"#);
    let lines: Vec<String> = (0..5)
        .map(|i| {
            format!(
                r#"{{"type":"identify","userId":"u{i}","traits":{{"vip":true}},"context":{{{P}}}}}"#
            )
        })
        .collect();
    let events = d.file("e.ndjson", &lines.join("\n"));
    let o = run(&["plan", "--settings", &settings, "--max-rows", "2", &events]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let sizes: Vec<usize> = stdout_json(&o)["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["body"]["subscribers"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, vec![2, 2, 1]);
    let o = run(&["plan", "--settings", &settings, "--max-rows", "0", &events]);
    assert!(!o.status.success());

    let retl = d.file(
        "r.ndjson",
        r#"{"type":"track","event":"deleted","userId":"u1","properties":{"rows":1},"context":{"personas":{"computation_key":"vip","external_audience_id":"7"}}}"#,
    );
    let o = run(&[
        "plan",
        "--settings",
        &settings,
        "--retl-sync-mode",
        "mirror",
        &retl,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        stdout_json(&o)["requests"][0]["path"],
        "/api/lists/unsubscribe"
    );
    let o = run(&[
        "plan",
        "--settings",
        &settings,
        "--retl-sync-mode",
        "sideways",
        &retl,
    ]);
    assert!(!o.status.success());
}

#[test]
fn plan_fails_only_for_unusable_input() {
    let d = Dir::new("unusable");
    let good_settings = d.file("s.json", r#"{"apiKey":"K"}"#);
    let events = d.file("e.ndjson", r#"{"type":"identify","userId":"u1","traits":{"vip":1},"context":{"personas":{"computation_key":"vip"}}}"#);
    // A rejected event is not a failure of the command.
    let o = run(&["plan", "--settings", &good_settings, &events]);
    assert!(o.status.success());
    assert_eq!(stdout_json(&o)["events"][0]["status"], "rejected");

    let cases = [
        (
            d.file("s1.json", r#"{"apiKey":"K","iterableProjectType":"email"}"#),
            events.clone(),
            "Iterable Project Type must be one of",
        ),
        (
            d.file("s2.json", "{}"),
            events.clone(),
            "missing the required field 'apiKey'",
        ),
        (
            good_settings.clone(),
            d.file("bad.ndjson", "{\"type\":\"identify\"}\n{oops"),
            "line 2",
        ),
        (
            good_settings.clone(),
            d.file("empty.ndjson", "\n\n"),
            "holds no events",
        ),
    ];
    for (settings, events, needle) in cases {
        let o = run(&["plan", "--settings", &settings, &events]);
        assert!(!o.status.success(), "{needle}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(needle), "{needle}: {err}");
        assert!(
            !err.contains("\"K\""),
            "the API key is never printed: {err}"
        );
    }
}

#[test]
fn plan_reads_events_as_serve_does() {
    let d = Dir::new("asserve");
    let settings = d.file("s.json", r#"{"apiKey":"K"}"#);
    let ev = |id: Value, user: &str, member: bool, settings: Option<Value>| {
        let mut personas: Value = serde_json::from_str(&format!("{{{P}}}")).expect("P is JSON");
        let personas = &mut personas["personas"];
        if let Some(s) = settings {
            personas["audience_settings"] = s;
        }
        json!({
            "type": "identify",
            "messageId": id,
            "userId": user,
            "traits": {"vip": member, "email": format!("{user}@Example.COM")},
            "context": {"personas": personas}
        })
        .to_string()
    };
    let events = d.file(
        "e.ndjson",
        &[
            ev(json!("m1"), "u1", true, Some(json!({"campaignId": 1.5}))),
            // The same messageId again: serve ignores it, whatever it says.
            ev(json!("m1"), "u1", false, None),
            // A number and its string form are one messageId.
            ev(json!(7), "u2", true, None),
            ev(json!("7"), "u2", false, None),
            // A messageId serve refuses refuses the event.
            ev(json!(""), "u3", true, None),
        ]
        .join("\n"),
    );
    let o = run(&["plan", "--settings", &settings, &events]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = stdout_json(&o);
    assert_eq!(
        out["requests"],
        json!([{"method": "POST", "path": "/api/lists/subscribe", "body": {"listId": 12345, "subscribers": [
            {"email": "u1@example.com", "userId": "u1"},
            {"email": "u2@example.com", "userId": "u2"}
        ]}}])
    );
    let statuses: Vec<&str> = out["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["planned", "duplicate", "planned", "duplicate", "rejected"]
    );
    assert_eq!(
        out["events"][1]["message"],
        "messageId \"m1\" was already seen on event 0: ignored"
    );
    assert_eq!(
        out["events"][4]["message"],
        "batch[4].messageId: must not be empty"
    );
    assert_eq!(
        out["events"][0]["ignored_settings"],
        json!([{"setting": "campaignId", "value": "1.5", "reason": "must be a whole positive number but it was a number"}])
    );
}

/// 17-significant-digit decimals as JavaScript writes them (a correctly rounded double's
/// shortest digits), between 0.001 and 1e12 so that both JSON writers use plain notation.
fn decimals(count: usize) -> Vec<String> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let digits = 10_000_000_000_000_000 + (state >> 11) % 90_000_000_000_000_000;
        let point = (state >> 3) % 17;
        let text = format!("{digits}");
        let (int, frac) = text.split_at(text.len() - point as usize);
        let int = if int.is_empty() { "0" } else { int };
        let value: f64 = format!("{int}.{frac}").parse().unwrap_or(1.0);
        if (0.001..1e12).contains(&value) {
            out.push(segment::mapping::number_to_string(value));
        }
    }
    out
}

/// `95.84963262304987` and hundreds like it come out of `mapping eval` (value, `@template`,
/// `@json`) and out of `plan`'s request bodies exactly as they went in.
#[test]
fn numbers_come_out_as_they_went_in() {
    let d = Dir::new("numbers");
    let mut numbers = vec!["95.84963262304987".to_owned()];
    numbers.extend(decimals(300));
    let traits: Vec<String> = numbers
        .iter()
        .enumerate()
        .map(|(i, n)| format!(r#""n{i}":{n}"#))
        .collect();
    let event = format!(
        r#"{{"type":"identify","userId":"u1","traits":{{"vip":true,{}}},"context":{{{P}}}}}"#,
        traits.join(",")
    );
    let template: String = (0..numbers.len())
        .map(|i| format!("{{{{traits.n{i}}}}} "))
        .collect();
    let mapping = d.file(
        "m.json",
        &json!({
            "values": {"@path": "$.traits"},
            "template": {"@template": template},
            "json": {"@json": {"mode": "encode", "value": {"@path": "$.traits"}}},
        })
        .to_string(),
    );
    let event_file = d.file("e.json", &event);
    let o = run(&[
        "mapping",
        "eval",
        "--mapping",
        &mapping,
        "--event",
        &event_file,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = stdout_json(&o);
    let text = String::from_utf8_lossy(&o.stdout);
    let rendered = out["template"].as_str().unwrap_or_default();
    let encoded = out["json"].as_str().unwrap_or_default();
    for (i, n) in numbers.iter().enumerate() {
        assert!(
            text.contains(&format!(r#""n{i}":{n}"#)),
            "value n{i} = {n} changed:\n{text}"
        );
        assert!(
            rendered.contains(&format!("{n} ")),
            "@template lost {n}: {rendered}"
        );
        assert!(
            encoded.contains(&format!(r#""n{i}":{n}"#)),
            "@json lost {n}: {encoded}"
        );
    }

    let settings = d.file("s.json", r#"{"apiKey":"K","iterableProjectType":"hybrid"}"#);
    let fields = d.file("f.json", r#"{"dataFields":{"@path":"$.traits"}}"#);
    let events = d.file("e.ndjson", &event);
    let o = run(&[
        "plan",
        "--settings",
        &settings,
        "--mapping",
        &fields,
        &events,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    for (i, n) in numbers.iter().enumerate() {
        assert!(
            text.contains(&format!(r#""n{i}":{n}"#)),
            "plan changed n{i} = {n}:\n{text}"
        );
    }
}
