//! Crash test: `iterable-lists serve` is SIGKILLed at random moments while senders push a
//! 200,000-event load over 20 audiences, and restarted each time. Senders resend whatever was
//! not acknowledged. In the end every list equals the latest-event-wins membership of the
//! events, there is exactly one list per audience, and every event has a final status.
//!
//! `CRASH_EVENTS` (default 200000) and `CRASH_KILLS` (default 4) change the size.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use iterable_emulator::{Emulator, EmulatorConfig, ProjectConfig, ProjectType};
use serde_json::{Value, json};
use support::{Rng, assert_converged, env_usize, event, start, temp_dir};

const KEY: &str = "0123456789abcdef0123456789abcdef";
const WRITE_KEY: &str = "wk_crash";
const BATCH: usize = 500;
const SENDERS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_load_loses_nothing_and_duplicates_nothing() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let n = env_usize("CRASH_EVENTS", 200_000);
    let kills = env_usize("CRASH_KILLS", 4);

    let mut ec =
        EmulatorConfig::default().with_project(ProjectConfig::new(ProjectType::Hybrid, KEY));
    ec.listen = "127.0.0.1:0".parse().expect("addr");
    let emu = Emulator::start(ec).await.expect("emulator");

    let dir = temp_dir();
    std::fs::create_dir_all(&dir).expect("dir");
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\n[storage]\nurl = \"sqlite://{}\"\n[[destination]]\n\
             name = \"prod\"\napi_key = \"{KEY}\"\nproject_type = \"hybrid\"\nbase_url = \"{}\"\n\
             write_keys = [\"{WRITE_KEY}\"]\n\
             # A third of this load's events are exits: the mass-removal guard would hold\n\
             # them (it has its own tests).\n\
             max_removal_ratio = 1\n\
             [destination.delivery]\nlinger_ms = 200\n",
            dir.join("db.sqlite").display(),
            emu.url()
        ),
    )
    .expect("config");
    let log = dir.join("service.log");

    // The load and what it should leave behind.
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut expected: BTreeMap<(String, u64), bool> = BTreeMap::new();
    let mut batches: Vec<String> = Vec::new();
    let mut current = Vec::with_capacity(BATCH);
    for i in 0..n {
        let (aud, user, member, ev) = event(i, &mut rng);
        expected.insert((aud, user), member);
        current.push(ev);
        if current.len() == BATCH || i + 1 == n {
            batches.push(json!({ "batch": std::mem::take(&mut current) }).to_string());
        }
    }
    let batches = Arc::new(batches);

    let (child, url) = start(&config, &log);
    let child = Arc::new(Mutex::new(child));
    let url = Arc::new(Mutex::new(url));
    let next = Arc::new(AtomicUsize::new(0));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http");

    let mut senders = Vec::new();
    for _ in 0..SENDERS {
        let (batches, url, next, http) = (batches.clone(), url.clone(), next.clone(), http.clone());
        senders.push(tokio::spawn(async move {
            let mut resends = 0u64;
            loop {
                let b = next.fetch_add(1, Ordering::SeqCst);
                if b >= batches.len() {
                    return resends;
                }
                // Resend until acknowledged, as an SDK does.
                loop {
                    let u = url.lock().expect("url").clone();
                    let r = http
                        .post(format!("{u}/v1/batch"))
                        .basic_auth(WRITE_KEY, Some(""))
                        .header("Content-Type", "application/json")
                        .body(batches[b].clone())
                        .send()
                        .await;
                    match r {
                        Ok(r) if r.status().is_success() => break,
                        Ok(r) if r.status().is_client_error() => {
                            panic!("batch {b} refused: {} {:?}", r.status(), r.text().await)
                        }
                        _ => {
                            resends += 1;
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            }
        }));
    }

    // Kill and restart at seeded random moments while the load runs.
    let mut krng = Rng(42);
    let mut killed = 0;
    while killed < kills && next.load(Ordering::SeqCst) < batches.len() {
        tokio::time::sleep(Duration::from_millis(300 + krng.below(1500))).await;
        {
            let mut c = child.lock().expect("child");
            let _ = c.kill(); // SIGKILL
            let _ = c.wait();
        }
        killed += 1;
        let (c, u) = start(&config, &log);
        *child.lock().expect("child") = c;
        *url.lock().expect("url") = u;
    }
    let mut resends = 0;
    for s in senders {
        resends += s.await.expect("sender");
    }
    eprintln!("crash test: {n} events, {killed} kills, {resends} resends");

    // Wait until nothing is left to deliver.
    let u = url.lock().expect("url").clone();
    let deadline = Instant::now() + Duration::from_secs(600);
    let status = loop {
        let s: Value = match http.get(format!("{u}/v1/status")).send().await {
            Ok(r) => {
                serde_json::from_str(&r.text().await.unwrap_or_default()).unwrap_or(Value::Null)
            }
            Err(_) => Value::Null,
        };
        let d = &s["destinations"][0];
        let open = d["events"]["accepted"].as_u64().unwrap_or(1)
            + d["events"]["pending"].as_u64().unwrap_or(1);
        if d.is_object() && open == 0 {
            break s;
        }
        assert!(Instant::now() < deadline, "never converged: {s}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    {
        let mut c = child.lock().expect("child");
        let _ = c.kill();
        let _ = c.wait();
    }

    assert_converged(&status["destinations"][0]["events"], n, &emu, &expected);
    let _ = std::fs::remove_dir_all(&dir);
}
