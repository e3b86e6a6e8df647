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

#[test]
fn an_integer_past_64_bits_is_refused_not_a_panic() {
    // liquid-core panics on such a literal; the fuzzer found it (`{{2222…22-}}`).
    for template in [
        "{{ 99999999999999999999 }}",
        "{{2222222222222222222222222222-}}",
        "{% if traits.n > 18446744073709551616 %}big{% endif %}",
    ] {
        let mapping = serde_json::json!({"r": {"@liquid": template}});
        // Refused where Segment refuses a bad template: when the mapping is loaded or, as
        // here, when an event reaches it.
        let event = serde_json::json!({"traits": {"n": 1}});
        let err = Mapping::compile(&mapping)
            .map_err(|e| e.to_string())
            .and_then(|m| m.resolve_value(&event).map_err(|e| e.to_string()))
            .expect_err(template);
        assert!(err.contains("does not fit in 64 bits"), "{template}: {err}");
    }
    let fits = serde_json::json!({"r": {"@liquid": "{{ 9223372036854775807 | plus: 0 }}"}});
    let event = serde_json::json!({});
    let fits = Mapping::compile(&fits).expect("compiles");
    assert!(fits.resolve_value(&event).is_ok());
}
