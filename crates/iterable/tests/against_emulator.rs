//! The client and the list resolver over real HTTP against the emulator: errors keep
//! Iterable's words, keys never leak, regions, and exactly one list per audience under faults.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use iterable::backoff::Backoff;
use iterable::client::{ApiKey, Client, ClientConfig, ErrorKind};
use iterable::errors::ErrorClass;
use iterable::limiter::{Endpoint, Limit};
use iterable::resolve::{ListResolver, MemoryRegistry};
use iterable_emulator::{
    Emulator, EmulatorConfig, Faults, ManualClock, ProjectConfig, ProjectType, Region,
    RunningEmulator,
};
use serde_json::json;

const KEY: &str = "abcdefabcdefabcdefabcdefabcdef01";
const EU_KEY: &str = "abcdefabcdefabcdefabcdefabcdef02";

async fn emulator(faults: Faults) -> RunningEmulator {
    let mut c = EmulatorConfig::default()
        .with_project(ProjectConfig::new(ProjectType::Hybrid, KEY))
        .with_project(ProjectConfig::new(ProjectType::Hybrid, EU_KEY).in_region(Region::Eu));
    c.listen = "127.0.0.1:0".parse().unwrap();
    c.listen_eu = Some("127.0.0.1:0".parse().unwrap());
    c.faults = faults;
    c.seed = Some(7);
    // The emulator's buckets drain on its manual clock, which only latency moves: rate
    // limits are exercised elsewhere (limiter tests and the rate-limit bench).
    c.limits.insert(
        "all".into(),
        iterable_emulator::config::LimitValue("off".parse().unwrap()),
    );
    // Latency and list visibility run on a manual clock: no real sleeping.
    Emulator::start_with_clock(c, Arc::new(ManualClock::new(1_700_000_000_000)))
        .await
        .expect("emulator")
}

/// A client with quick retries, for tests.
fn client(base: String, key: &str) -> Client {
    let mut cfg = ClientConfig::new(base, ApiKey::new(key));
    cfg.backoff = Backoff {
        base: Duration::from_millis(2),
        cap: Duration::from_millis(50),
        max_attempts: 30,
    };
    cfg.timeout = Duration::from_secs(10);
    cfg.limits = [
        Endpoint::CreateList,
        Endpoint::Subscribe,
        Endpoint::GetLists,
    ]
    .into_iter()
    .map(|e| (e, Limit::Unlimited))
    .collect();
    Client::new(cfg).expect("client")
}

#[tokio::test]
async fn errors_carry_iterable_code_and_msg_and_never_the_key() {
    let emu = emulator(Faults::default()).await;
    let bad = client(emu.url(), "ffffffffffffffffffffffffffffffff");
    let e = bad.get_lists().await.unwrap_err();
    assert_eq!((e.status, e.class), (Some(401), ErrorClass::Authentication));
    assert_eq!(e.code.as_deref(), Some("BadApiKey"));
    assert_eq!(e.attempts, 1, "401 is not retried");
    assert_eq!(
        e.to_string(),
        "GET /api/lists failed: HTTP 401 BadApiKey: Invalid API key"
    );
    assert!(!format!("{e} {e:?} {bad:?}").contains("ffffffffffff"));

    let c = client(emu.url(), KEY);
    let body = Bytes::from(json!({"listId": 5, "subscribers": [{"email": "a@x.co"}]}).to_string());
    let e = c.subscribe(body).await.unwrap_err();
    assert_eq!(e.class, ErrorClass::InvalidList);
    assert_eq!(e.msg.as_deref(), Some("error.lists.invalidListId(5)"));
    let e = c.subscribe(Bytes::from_static(b"{oops")).await.unwrap_err();
    assert_eq!(
        (e.class, e.code.as_deref()),
        (ErrorClass::Permanent, Some("BadJsonBody"))
    );
    assert!(e.to_string().contains("BadJsonBody"), "{e}");

    // A server that is not there: a connection error, retried, and still no key in sight.
    let gone = client("http://127.0.0.1:9".into(), KEY);
    let e = gone.get_lists().await.unwrap_err();
    assert!(
        matches!(e.kind, ErrorKind::Connect | ErrorKind::Transport),
        "{e:?}"
    );
    assert_eq!((e.class, e.attempts), (ErrorClass::Retryable, 30));
    assert!(!format!("{e} {e:?}").contains(KEY));
}

#[tokio::test]
async fn the_eu_data_center_takes_eu_keys_only() {
    let emu = emulator(Faults::default()).await;
    let eu = emu.eu_url().expect("eu listener");
    assert!(client(eu.clone(), EU_KEY).get_lists().await.is_ok());
    let e = client(eu, KEY).get_lists().await.unwrap_err();
    assert_eq!(e.status, Some(401));
    assert!(client(emu.url(), EU_KEY).get_lists().await.is_err());
}

#[tokio::test]
async fn retries_ride_out_429_and_500() {
    let emu = emulator(Faults {
        error_500: 0.3,
        error_429: 0.3,
        ..Faults::default()
    })
    .await;
    let c = client(emu.url(), KEY);
    for _ in 0..20 {
        c.get_lists().await.expect("retried until it worked");
    }
    let log = emu.requests(&iterable_emulator::LogQuery::default());
    let faulted = log.iter().filter(|r| r.fault.is_some()).count();
    assert!(
        faulted > 5 && log.len() == 20 + faulted,
        "{faulted} faults in {} requests",
        log.len()
    );
}

/// The bar: 10,000 concurrent first events for 50 new audiences, with 10% 500s,
/// 5% 429s, 50-500 ms latency and 1% reset connections, create exactly 50 lists, and each
/// ends with every member the events asked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_events_create_exactly_one_list_per_audience() {
    let emu = emulator(Faults {
        error_500: 0.10,
        error_429: 0.05,
        latency_ms: 50,
        latency_jitter_ms: 450,
        reset_connection: 0.01,
        new_list_invisible_ms: 2000,
        ..Faults::default()
    })
    .await;
    let c = Arc::new(client(emu.url(), KEY));
    let resolver = Arc::new(ListResolver::new(
        c.clone(),
        MemoryRegistry::default(),
        "prod",
    ));
    let mut tasks = Vec::new();
    for i in 0..10_000u32 {
        let resolver = resolver.clone();
        tasks.push(tokio::spawn(async move {
            let audience = format!("audience_{}", i % 50);
            let list = resolver.resolve(&audience, None).await?;
            Ok::<_, iterable::resolve::ResolveError>((
                list,
                audience,
                format!("user{i}@example.com"),
            ))
        }));
    }
    let mut wanted: BTreeMap<i64, (String, BTreeSet<String>)> = BTreeMap::new();
    for t in tasks {
        let (list, audience, email) = t.await.expect("task").expect("resolved");
        let entry = wanted
            .entry(list)
            .or_insert_with(|| (audience.clone(), BTreeSet::new()));
        assert_eq!(entry.0, audience, "one list per audience");
        entry.1.insert(email);
    }
    assert_eq!(wanted.len(), 50);
    // Subscribe everyone, 1,000 rows a call; a list that is still propagating is retried.
    for (list, (_, emails)) in &wanted {
        let rows: Vec<_> = emails.iter().map(|e| json!({"email": e})).collect();
        for chunk in rows.chunks(1000) {
            let body = Bytes::from(json!({"listId": list, "subscribers": chunk}).to_string());
            loop {
                match c.subscribe(body.clone()).await {
                    Ok(r) => {
                        assert_eq!(r.fail_count, 0);
                        break;
                    }
                    Err(e) if e.class == ErrorClass::InvalidList && resolver.is_fresh(*list) => {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err(e) => panic!("{e}"),
                }
            }
        }
    }
    let state = emu.state(true);
    let lists = &state[0].lists;
    assert_eq!(lists.len(), 50, "exactly 50 lists, no duplicates");
    let names: BTreeSet<&str> = lists.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names.len(), 50);
    for l in lists {
        let members: BTreeSet<String> = l
            .members
            .as_ref()
            .expect("members")
            .iter()
            .filter_map(|m| m.email.clone())
            .collect();
        assert_eq!(members, wanted[&l.id].1, "list {}", l.name);
    }
}

/// Half the requests lose their answer (half of those after taking effect): a creation whose
/// answer was lost must be found, not repeated.
#[tokio::test]
async fn lost_creation_answers_never_duplicate_lists() {
    let emu = emulator(Faults {
        reset_connection: 0.5,
        ..Faults::default()
    })
    .await;
    let c = Arc::new(client(emu.url(), KEY));
    let resolver = ListResolver::new(c.clone(), MemoryRegistry::default(), "prod");
    for i in 0..30 {
        let a = resolver
            .resolve(&format!("a{i}"), None)
            .await
            .expect("resolved");
        let b = resolver
            .resolve(&format!("a{i}"), None)
            .await
            .expect("resolved");
        assert_eq!(a, b);
    }
    let lists = &emu.state(false)[0].lists;
    assert_eq!(lists.len(), 30, "no duplicates");
    let log = emu.requests(&iterable_emulator::LogQuery {
        path: Some("/api/lists".into()),
        ..Default::default()
    });
    assert!(
        log.iter()
            .any(|r| r.method == "POST" && r.fault == Some("reset")),
        "some creations lost their answer"
    );
}

/// An external audience id that names an existing list is used as is; one that does not is
/// ignored in favour of the audience key.
#[tokio::test]
async fn external_ids_are_verified_once() {
    let emu = emulator(Faults::default()).await;
    let c = Arc::new(client(emu.url(), KEY));
    let existing = c.create_list("Imported by hand").await.unwrap();
    let resolver = ListResolver::new(c.clone(), MemoryRegistry::default(), "prod");
    assert_eq!(
        resolver.resolve("vip", Some(existing)).await.unwrap(),
        existing
    );
    assert!(!resolver.is_fresh(existing), "not created by the resolver");
    let other = resolver.resolve("churned", Some(999_999)).await.unwrap();
    assert_ne!(other, 999_999);
    assert!(resolver.is_fresh(other));
    let names: Vec<String> = emu.state(false)[0]
        .lists
        .iter()
        .map(|l| l.name.clone())
        .collect();
    assert_eq!(names, ["churned", "Imported by hand"]);
    // Later calls come from the registry: no more GET /api/lists.
    let before = emu.requests(&Default::default()).len();
    resolver.resolve("vip", Some(existing)).await.unwrap();
    assert_eq!(emu.requests(&Default::default()).len(), before);
}
