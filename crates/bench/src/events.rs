//! The load: Engage audience `identify` events, and Segment tracking API batch bodies of them.

use serde_json::{Value, json};

use crate::harness::{AUDIENCES, BATCH};

/// An audience name, and the Iterable list id its events carry (when the list already exists).
pub type Audience = (String, Option<i64>);

/// An Engage audience identify event: user `user` enters `audience`.
fn engage_event(i: usize, audience: &str, user: usize, list_id: Option<i64>) -> Value {
    let mut personas = json!({"computation_key": audience, "computation_class": "audience",
                              "computation_id": format!("aud_{audience}"), "namespace": "spa_bench",
                              "space_id": "spa_bench"});
    if let Some(id) = list_id {
        personas["external_audience_id"] = Value::String(id.to_string());
    }
    json!({
        "type": "identify", "messageId": format!("b{i}"), "userId": format!("u{user}"),
        "timestamp": "2026-11-29T10:00:00.000Z",
        "traits": {"email": format!("u{user}@example.com"), audience: true},
        "context": {"personas": personas,
                    "library": {"name": "analytics-python", "version": "2.3.3"}}
    })
}

/// `n` events over the audiences of `lists` (event i: audience i mod n, user i / n), so each
/// (audience, user) pair is unique.
pub fn spread_events(n: usize, lists: &[Audience]) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let (aud, id) = &lists[i % lists.len()];
            engage_event(i, aud, i / lists.len(), *id)
        })
        .collect()
}

/// The audiences of the end-to-end and comparison runs, without list ids.
pub fn audiences() -> Vec<Audience> {
    (0..AUDIENCES)
        .map(|a| (format!("bench_{a:02}"), None))
        .collect()
}

/// The batch body of events `first..first + count` of a [`spread_events`] load over `lists`,
/// written straight as text (what `bodies` makes of the same events, without building a
/// `Value` per event): the sustained load makes its millions of bodies as it sends them.
pub fn spread_body(first: usize, count: usize, lists: &[Audience]) -> String {
    let mut body = String::with_capacity(count * 420 + 16);
    body.push_str("{\"batch\":[");
    for i in first..first + count {
        if i > first {
            body.push(',');
        }
        let (aud, id) = &lists[i % lists.len()];
        push_engage_event(&mut body, i, aud, i / lists.len(), *id);
    }
    body.push_str("]}");
    body
}

/// [`engage_event`] as JSON text. The audience name and ids are plain ASCII (no escapes).
fn push_engage_event(
    out: &mut String,
    i: usize,
    audience: &str,
    user: usize,
    list_id: Option<i64>,
) {
    use std::fmt::Write;
    let external = list_id
        .map(|id| format!(",\"external_audience_id\":\"{id}\""))
        .unwrap_or_default();
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "{{\"type\":\"identify\",\"messageId\":\"b{i}\",\"userId\":\"u{user}\",\
         \"timestamp\":\"2026-11-29T10:00:00.000Z\",\
         \"traits\":{{\"email\":\"u{user}@example.com\",\"{audience}\":true}},\
         \"context\":{{\"personas\":{{\"computation_key\":\"{audience}\",\
         \"computation_class\":\"audience\",\"computation_id\":\"aud_{audience}\",\
         \"namespace\":\"spa_bench\",\"space_id\":\"spa_bench\"{external}}},\
         \"library\":{{\"name\":\"analytics-python\",\"version\":\"2.3.3\"}}}}}}"
    );
}

/// Segment tracking API batch bodies of `BATCH` events.
pub fn bodies(events: &[Value]) -> Vec<String> {
    events
        .chunks(BATCH)
        .map(|c| json!({"batch": c}).to_string())
        .collect()
}

/// The bodies of a one-audience load of `n` members (users `0..n`, messageIds from `offset`).
pub fn big_bodies(n: usize, offset: usize) -> Vec<String> {
    (0..n.div_ceil(BATCH))
        .map(|b| {
            let events: Vec<Value> = (b * BATCH..((b + 1) * BATCH).min(n))
                .map(|i| engage_event(i + offset, "bench_big", i, None))
                .collect();
            json!({"batch": events}).to_string()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spread_body_holds_the_events_of_spread_events() {
        let mut lists = audiences();
        lists[3].1 = Some(4242);
        let events = spread_events(2 * BATCH, &lists);
        let body: Value = serde_json::from_str(&spread_body(BATCH, BATCH, &lists)).expect("JSON");
        let batch = body["batch"].as_array().expect("batch");
        assert_eq!(batch.len(), BATCH);
        for (got, want) in batch.iter().zip(&events[BATCH..]) {
            assert_eq!(got, want);
        }
        assert_eq!(
            batch[3]["context"]["personas"]["external_audience_id"],
            "4242"
        );
    }
}
