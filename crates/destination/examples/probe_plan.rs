// Throwaway probe (not committed): plan_texts over the comparison's events.
use destination::{ActionMapping, Planner, ProjectType};
use serde_json::{Value, json};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(60_000);
    let auds: Vec<(String, Option<i64>)> = (0..20)
        .map(|a| (format!("bench_{a:02}"), Some(1000 + a as i64)))
        .collect();
    let mut by: Vec<Vec<String>> = vec![Vec::new(); 20];
    for i in 0..n {
        let (a, id) = &auds[i % 20];
        by[i % 20].push(engage_event(i, a, i / 20, *id).to_string());
    }
    let mixed = std::env::args().nth(2).is_some();
    if mixed {
        // Part (a)/(c)'s shape: batches of 500 with the 20 audiences interleaved.
        let all: Vec<String> = (0..n).map(|i| { let (a, id) = &auds[i % 20]; engage_event(i, a, i / 20, *id).to_string() }).collect();
        by = all.chunks(500).map(|c| c.to_vec()).collect();
    }
    let planner = Planner::new(ProjectType::Hybrid, ActionMapping::new(None).unwrap());
    let mut total = 0usize;
    let t = std::time::Instant::now();
    for a in &by {
        for chunk in a.chunks(1000) {
            let _ = mixed;
            let texts: Vec<&str> = chunk.iter().map(String::as_str).collect();
            let plan = planner.plan_texts(&texts);
            for r in &plan.requests {
                total += r.body.len();
            }
            std::hint::black_box(plan);
        }
    }
    eprintln!(
        "{} bytes, {:?} ({:.3} us/event)",
        total,
        t.elapsed(),
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
}
