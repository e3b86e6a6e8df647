//! Property tests of the planner's invariants: one status per event, each identity at most
//! once per list, no request over the limits, rows naming the ids their JSON holds, and lists
//! ending as latest-event-wins says.

use std::collections::{HashMap, HashSet};

use destination::{ActionMapping, EventStatus, Limits, Operation, Planner, ProjectType};
use proptest::prelude::*;
use serde_json::{Value, json};

/// One generated event: who, which list, enter or exit, when, and which ids it carries.
#[derive(Debug, Clone)]
struct Gen {
    list: i64,
    person: usize,
    with_email: bool,
    with_user_id: bool,
    member: bool,
    second: Option<u8>,
    junk: u8,
}

fn gen_event() -> impl Strategy<Value = Gen> {
    (
        prop_oneof![Just(111i64), Just(222i64)],
        0usize..6,
        any::<bool>(),
        any::<bool>(),
        proptest::option::weighted(0.9, 0u8..8),
        0u8..20,
    )
        // People 0-2 always carry their userId (the email comes and goes); people 3-5 are
        // known by email only. An email-only event and a userId-only event of one person
        // cannot be linked by anyone, so the generator never produces that pair.
        .prop_map(|(list, person, with_email, member, second, junk)| Gen {
            list,
            person,
            with_email: with_email || person >= 3,
            with_user_id: person < 3,
            member,
            second,
            junk,
        })
}

fn email(person: usize, upper: bool) -> String {
    let e = format!("person{person}@example.com");
    if upper { e.to_uppercase() } else { e }
}

fn to_json(g: &Gen) -> Value {
    if g.junk == 0 {
        return json!({"type": "page", "userId": "x"});
    }
    let mut traits = json!({"vip": g.member, "bio": "x".repeat(usize::from(g.junk) * 10)});
    // junk == 1: an event with no identifier at all.
    if g.with_email && g.junk != 1 {
        traits["email"] = json!(email(g.person, g.junk % 3 == 0));
    }
    let mut e = json!({
        "type": "identify",
        "traits": traits,
        "context": {"personas": {"computation_class": "audience", "computation_key": "vip", "external_audience_id": g.list.to_string()}}
    });
    if g.with_user_id && g.junk != 1 {
        e["userId"] = json!(format!("user{}", g.person));
    }
    if let Some(s) = g.second {
        e["timestamp"] = json!(format!("2026-01-01T00:00:0{s}Z"));
    }
    e
}

fn planner(limits: Limits) -> Planner {
    let mapping = ActionMapping::new(Some(
        &json!({"dataFields": {"bio": {"@path": "$.traits.bio"}}}),
    ))
    .expect("mapping compiles");
    let mut p = Planner::new(ProjectType::Hybrid, mapping);
    p.limits = limits;
    p
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn plans_keep_their_invariants(events in proptest::collection::vec(gen_event(), 0..60), max_rows in 1usize..5, max_bytes in 150usize..600) {
        let limits = Limits { max_rows, max_bytes };
        let plan = planner(limits).plan(events.iter().map(to_json).collect());

        // Every event ends with exactly one status, in input order.
        prop_assert_eq!(plan.events.len(), events.len());
        for (i, o) in plan.events.iter().enumerate() {
            prop_assert_eq!(o.index, i);
        }

        // No request over the limits; bodies are JSON whose rows match the row list.
        let mut seen: HashSet<(String, usize)> = HashSet::new();
        let mut state: HashMap<(i64, usize), bool> = HashMap::new();
        for r in &plan.requests {
            prop_assert!(r.rows.len() <= max_rows && !r.rows.is_empty());
            prop_assert!(r.body.len() <= max_bytes, "body {} > {}", r.body.len(), max_bytes);
            let body: Value = serde_json::from_slice(&r.body).expect("body is JSON");
            prop_assert_eq!(body["subscribers"].as_array().map(Vec::len), Some(r.rows.len()));
            let list = body["listId"].as_i64().expect("numeric list");
            // Each row names the ids its subscriber's JSON holds.
            for (row, sub) in r.rows.iter().zip(body["subscribers"].as_array().into_iter().flatten()) {
                prop_assert_eq!(row.email.as_deref(), sub["email"].as_str());
                prop_assert_eq!(row.user_id.as_deref(), sub["userId"].as_str());
            }
            for row in &r.rows {
                let person = events[row.source].person;
                // Each identity at most once per list per plan.
                prop_assert!(seen.insert((list.to_string(), person)), "person {} twice in list {}", person, list);
                state.insert((list, person), r.op == Operation::Subscribe);
            }
        }

        // Lists end as latest-event-wins says (time, then arrival), over accepted events.
        type Version = (Option<u8>, usize);
        let mut want: HashMap<(i64, usize), (Version, bool)> = HashMap::new();
        for (i, g) in events.iter().enumerate() {
            if g.junk <= 1 {
                continue;
            }
            let version = (g.second, i);
            let entry = want.entry((g.list, g.person)).or_insert((version, g.member));
            if version > entry.0 {
                *entry = (version, g.member);
            }
        }
        let rejected: HashSet<usize> = plan
            .events
            .iter()
            .filter(|o| o.status == EventStatus::Rejected)
            .map(|o| o.index)
            .collect();
        for ((list, person), (version, member)) in want {
            if rejected.contains(&version.1) {
                // Only oversized rows are rejected here; their user is left alone.
                continue;
            }
            prop_assert_eq!(state.get(&(list, person)), Some(&member), "list {} person {}", list, person);
        }
        // Statuses say what happened: identity-less and page events are not planned.
        for (o, g) in plan.events.iter().zip(&events) {
            if g.junk == 0 {
                prop_assert_eq!(o.status, EventStatus::Skipped);
            } else if g.junk == 1 {
                prop_assert_eq!(o.status, EventStatus::Rejected);
            } else {
                prop_assert!(matches!(o.status, EventStatus::Planned | EventStatus::Superseded | EventStatus::Rejected));
            }
        }
    }
}
