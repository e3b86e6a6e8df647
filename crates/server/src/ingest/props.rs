//! Property tests of ingestion as a whole: no input panics, every event gives one item, lone
//! surrogates and numeric ids read as the SDKs mean them.

use proptest::prelude::*;
use proptest::test_runner::RngSeed;

use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::{
    CallKind, EventBody, IngestLimits, Item, basic_auth_user, decode_body, parse_tracking,
    parse_webhook, read_events, verify_signature,
};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 512,
        rng_seed: RngSeed::Fixed(0x5e9_3e47),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// `items` with the random part of synthesized ids (`-u` and 16 hex digits, given to events
/// without a time) taken out, so that two parses of one body compare equal.
/// Events kept as text (the batch's fast path) are parsed, so that they compare with events
/// read as JSON.
fn settled(mut items: Vec<Item>) -> Vec<Item> {
    for item in &mut items {
        if let Item::Event { message_id, event } = item {
            let mut value = event.to_value().expect("an event's text is JSON");
            let cut = message_id.len().saturating_sub(18);
            if message_id.starts_with(super::SYNTHETIC_MESSAGE_ID_PREFIX)
                && message_id.get(cut..cut + 2) == Some("-u")
            {
                message_id.truncate(cut);
                value["messageId"] = Value::String(message_id.clone());
            }
            *event = EventBody::Json(value);
        }
    }
    items
}

/// [`settled`] for a whole parse.
fn settled_parse<E>(parsed: Result<super::Parsed, E>) -> Result<super::Parsed, E> {
    parsed.map(|mut parsed| {
        parsed.items = settled(std::mem::take(&mut parsed.items));
        parsed
    })
}

/// How many items a body may give: the batch's (or webhook array's) length, else 1.
fn events_in(kind: CallKind, body: &[u8]) -> usize {
    match (kind, serde_json::from_slice::<Value>(body)) {
        (CallKind::Batch, Ok(Value::Object(map))) => map
            .get("batch")
            .and_then(Value::as_array)
            .map_or(0, Vec::len),
        (CallKind::Webhook, Ok(Value::Array(events))) => events.len(),
        (_, Ok(_)) => 1,
        (_, Err(_)) => 0,
    }
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        prop_oneof![
            Just("identify"),
            Just("track"),
            Just("page"),
            Just(""),
            Just("m1"),
            Just("writeKey"),
        ]
        .prop_map(Value::from),
        proptest::collection::vec(any::<char>(), 0..8)
            .prop_map(|chars| Value::from(chars.into_iter().collect::<String>())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec(
                (
                    prop_oneof![
                        Just("type".to_owned()),
                        Just("messageId".to_owned()),
                        Just("writeKey".to_owned()),
                        Just("context".to_owned()),
                        Just("integrations".to_owned()),
                        Just("userId".to_owned()),
                        Just("x".to_owned()),
                    ],
                    inner,
                ),
                0..6,
            )
            .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

/// `value` with U+E000 (a stand-in for a lone surrogate) after every string of odd
/// length and before every one of even length, keys included (but those the parser
/// reads).
fn mark(value: Value) -> Value {
    let marked = |text: String| {
        if text.chars().count() % 2 == 1 {
            format!("{text}\u{e000}")
        } else {
            format!("\u{e000}{text}")
        }
    };
    match value {
        Value::String(text) => Value::String(marked(text)),
        Value::Array(items) => Value::Array(items.into_iter().map(mark).collect()),
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, value) in map {
                let kept = ["type", "messageId", "writeKey", "context", "integrations"];
                let key = if kept.contains(&key.as_str()) {
                    key
                } else {
                    marked(key)
                };
                out.insert(key, mark(value));
            }
            Value::Object(out)
        }
        other => other,
    }
}

fn check(kind: CallKind, body: &[u8], limits: &IngestLimits) {
    if let Ok(parsed) = parse_tracking(kind, body, limits) {
        let most = events_in(kind, body);
        assert!(
            parsed.items.len() <= most,
            "{} items from {most}",
            parsed.items.len()
        );
        for (i, item) in parsed.items.iter().enumerate() {
            match item {
                Item::Event { message_id, event } => {
                    let event = event.to_value().expect("an event's text is JSON");
                    assert!(event.get("writeKey").is_none());
                    assert_eq!(event["messageId"].as_str(), Some(message_id.as_str()));
                    assert!(event["type"].as_str().is_some_and(|t| !t.is_empty()));
                }
                Item::Invalid { index, .. } => assert_eq!(*index, i),
            }
        }
    }
}

/// An event of Engage's shape with a messageId, sometimes with a member that keeps it off
/// the batch's fast path.
fn engage_event() -> impl Strategy<Value = Value> {
    (0u8..40, any_json(), 0u8..12).prop_map(|(n, other, twist)| {
        let mut e = json!({"type": "identify", "messageId": format!("m{n}"), "userId": format!("u{n}"),
            "traits": {"vip": n % 2 == 0, "email": format!("u{n}@x.com"), "x": other},
            "context": {"personas": {"computation_key": "vip"}}});
        match twist {
            0 => e["writeKey"] = json!("k"),
            1 => e["messageId"] = json!(n),
            2 => e["messageId"] = Value::Null,
            3 => e["type"] = json!(""),
            4 => e["messageId"] = json!("m".repeat(101)),
            5 => e["type"] = json!(5),
            6 => e["pad"] = json!("x".repeat(300)),
            _ => {}
        }
        e
    })
}

/// The text of a batch body with `space` around its punctuation.
fn spaced(body: &Value, space: &str) -> String {
    body.to_string()
        .replace(",\"", &format!(",{space}\""))
        .replace("{", &format!("{{{space}"))
        .replace("]", &format!("{space}]"))
}

proptest! {
    #![proptest_config(config())]

    /// The fast path of `/v1/batch` reads what the JSON tree reads, whenever it reads a body.
    #[test]
    fn the_batchs_fast_path_reads_as_the_tree_does(
        events in proptest::collection::vec(prop_oneof![4 => engage_event(), 1 => any_json()], 0..8),
        context in prop_oneof![Just(None), Just(Some(json!({}))), Just(Some(Value::Null)),
                               any_json().prop_map(Some)],
        write_key in prop_oneof![Just(None), any_json().prop_map(Some)],
        extra in prop_oneof![Just(None), any_json().prop_map(Some)],
        space in "[ \t\r\n]{0,2}",
    ) {
        let mut body = json!({"batch": events});
        for (key, value) in [("context", context), ("writeKey", write_key), ("sentAt", extra)] {
            if let Some(v) = value {
                body[key] = v;
            }
        }
        let text = spaced(&body, &space);
        let limits = IngestLimits { max_event_bytes: 2048, ..IngestLimits::default() };
        let tree = super::parse::parse_batch_tree(text.as_bytes(), &limits);
        if let Some(fast) = super::batch_text::read_batch(text.as_bytes(), &limits) {
            prop_assert_eq!(settled_parse(Ok::<_, ()>(fast)), settled_parse(tree.map_err(|_| ())));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..256)) {
        let small = IngestLimits {
            max_event_bytes: 64,
            max_call_bytes: 128,
            max_batch_bytes: 200,
            max_batch_events: 4,
        };
        for kind in [CallKind::Batch, CallKind::Identify, CallKind::Track, CallKind::Webhook]
        {
            check(kind, &body, &IngestLimits::default());
            check(kind, &body, &small);
        }
        let _ = decode_body(Some("gzip"), Bytes::from(body.clone()), 1024);
        let _ = basic_auth_user(std::str::from_utf8(&body).ok());
        let _ = verify_signature(b"k", &body, std::str::from_utf8(&body).ok());
    }

    /// Events whose strings (values and keys) carry lone surrogates, as the SDKs write
    /// them, read as the same events with U+FFFD in their place.
    #[test]
    fn lone_surrogates_read_as_replacement_characters(
        events in proptest::collection::vec(any_json().prop_map(mark), 0..6),
        kind in prop_oneof![Just("\\ud83d"), Just("\\uDE00"), Just("\\udbff\\udbff")],
    ) {
        const MARK: char = '\u{e000}';
        let text = json!({"batch": events}).to_string();
        let sent = text.replace(MARK, kind);
        let fffd = "\u{fffd}".repeat(if kind.len() == 12 { 2 } else { 1 });
        let want = text.replace(MARK, &fffd);
        let limits = IngestLimits::default();
        let got = settled_parse(parse_tracking(CallKind::Batch, sent.as_bytes(), &limits));
        let want = settled_parse(parse_tracking(CallKind::Batch, want.as_bytes(), &limits));
        prop_assert_eq!(got, want);
    }

    /// Numeric messageIds of any form, amid other members and any whitespace, keep
    /// the text they were written with.
    #[test]
    fn numeric_message_ids_keep_their_text(
        ids in proptest::collection::vec(
            "-?(0|[1-9][0-9]{0,40})(\\.[0-9]{1,6})?([eE][+-]?[0-9]{1,2})?", 1..6),
        others in proptest::collection::vec(any_json(), 1..6),
        space in "[ \t\r\n]{0,2}",
    ) {
        let events: Vec<String> = ids
            .iter()
            .zip(others.iter().cycle())
            .map(|(id, other)| {
                format!(
                    "{{{space}\"x\"{space}:{space}{other}{space},\"type\":\"track\",\
                     {space}\"messageId\"{space}:{space}{id}{space}}}"
                )
            })
            .collect();
        let body = format!("{space}{{\"batch\":{space}[{}]{space}}}", events.join(","));
        let parsed = parse_tracking(CallKind::Batch, body.as_bytes(), &IngestLimits::default());
        let parsed = parsed.expect("a well-formed batch");
        let got: Vec<&str> = parsed.items.iter().filter_map(Item::message_id).collect();
        prop_assert_eq!(got, ids.iter().map(String::as_str).collect::<Vec<_>>());
        let hook = format!("[{}]", events.join(","));
        let parsed = parse_webhook(hook.as_bytes(), &IngestLimits::default()).expect("parsed");
        let got: Vec<&str> = parsed.items.iter().filter_map(Item::message_id).collect();
        prop_assert_eq!(got, ids.iter().map(String::as_str).collect::<Vec<_>>());
    }

    #[test]
    fn arbitrary_batches_give_one_item_per_event(
        events in proptest::collection::vec(any_json(), 0..8),
        context in any_json(),
        write_key in any_json(),
    ) {
        let body =
            json!({"batch": events.clone(), "context": context, "writeKey": write_key});
        let text = body.to_string();
        let limits = IngestLimits { max_event_bytes: 256, ..IngestLimits::default() };
        match parse_tracking(CallKind::Batch, text.as_bytes(), &limits) {
            Ok(parsed) => {
                prop_assert_eq!(parsed.items.len(), events.len());
                check(CallKind::Batch, text.as_bytes(), &limits);
                let again = parse_tracking(CallKind::Batch, text.as_bytes(), &limits);
                prop_assert_eq!(settled_parse(Ok(parsed)), settled_parse(again));
            }
            Err(err) => prop_assert_eq!(err.status(), 400),
        }
        let array = Value::Array(events.clone()).to_string();
        let hook = parse_webhook(array.as_bytes(), &limits).expect("an array of at most 8");
        prop_assert_eq!(hook.items.len(), events.len());
        // `plan` reads events exactly as a batch without a shared context does.
        // (the events as read back from the same text: JSON numbers need not survive
        // a trip through text unchanged)
        let bare = json!({"batch": events.clone()}).to_string();
        let as_batch = parse_tracking(CallKind::Batch, bare.as_bytes(), &limits)
            .expect("a batch of at most 8 small events");
        let texts: Vec<String> = events.iter().map(Value::to_string).collect();
        let texts: Vec<&[u8]> = texts.iter().map(|t| t.as_bytes()).collect();
        prop_assert_eq!(
            settled(read_events(&texts, &limits).expect("JSON")),
            settled(as_batch.items)
        );
        for event in &events {
            let text = event.to_string();
            check(CallKind::Webhook, text.as_bytes(), &limits);
            check(CallKind::Identify, text.as_bytes(), &limits);
        }
    }
}
