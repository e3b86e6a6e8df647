//! Table tests of `@liquid`: every filter and tag Segment allows, and each refusal (the
//! disabled tags and filters, a template over 1,000 units, a template that is not a string),
//! against answers recorded from Segment's own code (`node bench/segment/mapping.mjs`, TZ=UTC)
//! in `liquid_table.ndjson`: its first line is the event, then one case per line, `mapping`
//! with `ok` (the result) or `error` (the message). Values must be equal; refusals must carry
//! Segment's message, other errors must be errors.

use segment::mapping::Mapping;
use serde_json::Value;

const TABLE: &str = include_str!("liquid_table.ndjson");

/// Messages this implementation gives exactly as Segment does.
fn is_refusal(message: &str) -> bool {
    message.contains("is disabled") || message.starts_with("liquid template")
}

#[test]
fn every_allowed_filter_and_tag_and_every_refusal_answers_as_segment() {
    let mut lines = TABLE.lines().filter(|l| !l.trim().is_empty());
    let head: Value = serde_json::from_str(lines.next().unwrap_or("{}")).unwrap_or(Value::Null);
    let event = &head["event"];
    let mut failures = Vec::new();
    let mut count = 0;
    for line in lines {
        count += 1;
        let case: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => panic!("table line {line:?}: {e}"),
        };
        let result = Mapping::compile(&case["mapping"])
            .map_err(|e| e.segment_message())
            .and_then(|m| m.resolve_value(event).map_err(|e| e.segment_message()));
        let template = &case["mapping"]["r"];
        match (
            result,
            case.get("ok"),
            case.get("error").and_then(Value::as_str),
        ) {
            (Ok(got), Some(expected), _) if got.as_ref() == Some(expected) => {}
            (Err(got), _, Some(expected)) if !is_refusal(expected) || got == expected => {}
            (got, ok, error) => failures.push(format!(
                "{template}\n   segment: {}\n   here:    {got:?}",
                ok.map_or_else(|| format!("error {error:?}"), Value::to_string)
            )),
        }
    }
    assert!(count > 100, "the table has {count} cases");
    assert!(
        failures.is_empty(),
        "{} of {count} differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
