//! The mapping language, through its public API only: `Mapping::compile` of a fuzzed mapping,
//! `Mapping::problems` (empty exactly when it compiles), and `resolve_value` against a fuzzed
//! event, whose result must serialize to JSON that reads back.
//!
//! Input: a mode byte, then the mapping part, a `0xff` byte and the event's JSON (an Engage
//! identify event when it is missing or not JSON). Mode bits 0-1: the mapping part is the
//! mapping's JSON, or the text of `{"t": {"@template": text}}`, `{"t": {"@path": text}}` or
//! `{"t": {"@liquid": text}}`.
#![no_main]

use iterable_lists_fuzz::split_ff;
use libfuzzer_sys::fuzz_target;
use segment::mapping::Mapping;
use serde_json::{Value, json};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (mapping, event) = split_ff(rest);
    let text = || String::from_utf8_lossy(mapping).into_owned();
    let mapping = match mode & 3 {
        0 => match serde_json::from_slice::<Value>(mapping) {
            Ok(mapping) => mapping,
            Err(_) => return,
        },
        1 => json!({"t": {"@template": text()}}),
        2 => json!({"t": {"@path": text()}}),
        _ => json!({"t": {"@liquid": text()}}),
    };
    let event = event
        .and_then(|event| serde_json::from_slice::<Value>(event).ok())
        .unwrap_or_else(default_event);

    let compiled = Mapping::compile(&mapping);
    let problems = Mapping::problems(&mapping);
    assert_eq!(compiled.is_ok(), problems.is_empty(), "{problems:?}");
    if let Err(first) = &compiled {
        assert_eq!(Some(first), problems.first());
        let _ = first.to_string();
        return;
    }
    let Ok(compiled) = compiled else {
        return;
    };
    match compiled.resolve_value(&event) {
        Ok(Some(value)) => {
            // Not compared with `value`: serde_json (without its float_roundtrip feature) reads
            // some floats one unit in the last place off (`1.1111e+30`).
            let text = serde_json::to_string(&value).expect("a resolved value serializes");
            let _: Value = serde_json::from_str(&text).expect("and reads back");
        }
        Ok(None) => {}
        Err(err) => {
            let _ = err.to_string();
        }
    }
});

fn default_event() -> Value {
    json!({
        "type": "identify",
        "userId": "u1",
        "messageId": "m1",
        "timestamp": "2026-11-29T10:00:00.000Z",
        "traits": {"email": "Ann@Example.com", "name": "Ann", "vip": true, "n": 1.5,
                   "tags": ["a", "b"], "nested": {"k": [1, {"x": null}]}},
        "properties": {"audience_key": "vip", "vip": false, "price": 10},
        "context": {"personas": {"computation_key": "vip", "computation_class": "audience",
                                 "external_audience_id": "987"},
                    "traits": {"email": "ann@example.com"}}
    })
}
