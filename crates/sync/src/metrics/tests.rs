//! The metrics rendered and parsed back by a strict reader of the text format.

use super::*;
use std::collections::{BTreeMap, BTreeSet};

/// One parsed sample line.
#[derive(Debug, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// A strict reader of the text format: HELP/TYPE once per family and before its samples,
/// samples of a family contiguous, label values unescaped, values parsed.
fn parse(text: &str) -> (BTreeMap<String, String>, Vec<Sample>) {
    let mut types = BTreeMap::new();
    let mut helps = BTreeSet::new();
    let mut samples = Vec::new();
    let mut finished: BTreeSet<String> = BTreeSet::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        assert!(!line.is_empty(), "no blank lines inside: {text}");
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, _) = rest.split_once(' ').expect("help text");
            assert!(helps.insert(name.to_string()), "HELP twice for {name}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("type");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            assert!(helps.contains(name), "HELP before TYPE for {name}");
            assert!(
                types.insert(name.to_string(), kind.to_string()).is_none(),
                "TYPE twice for {name}"
            );
            if let Some(c) = current.replace(name.to_string()) {
                finished.insert(c);
            }
            continue;
        }
        assert!(!line.starts_with('#'), "{line}");
        let name_end = line.find(['{', ' ']).expect("a value");
        let name = &line[..name_end];
        assert!(is_name(name), "metric name {name:?}");
        let mut labels = BTreeMap::new();
        let mut rest = &line[name_end..];
        if let Some(r) = rest.strip_prefix('{') {
            let mut r = r;
            loop {
                if let Some(after) = r.strip_prefix('}') {
                    r = after;
                    break;
                }
                let eq = r.find('=').expect("label =");
                let key = &r[..eq];
                assert!(is_name(key), "label name {key:?}");
                r = r[eq + 1..].strip_prefix('"').expect("quoted value");
                let mut value = String::new();
                let mut chars = r.char_indices();
                let end = loop {
                    let (i, c) = chars.next().expect("closing quote");
                    match c {
                        '\\' => match chars.next().expect("escape").1 {
                            '\\' => value.push('\\'),
                            '"' => value.push('"'),
                            'n' => value.push('\n'),
                            other => panic!("bad escape \\{other}"),
                        },
                        '"' => break i,
                        '\n' => panic!("raw newline"),
                        c => value.push(c),
                    }
                };
                assert!(labels.insert(key.to_string(), value).is_none());
                r = &r[end + 1..];
                r = r.strip_prefix(',').unwrap_or(r);
            }
            rest = r;
        }
        let value = rest.strip_prefix(' ').expect("space before value");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("value {v:?}")),
        };
        let fam = current.clone().expect("a TYPE before samples");
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|b| types.get(*b).is_some_and(|t| t == "histogram"))
            })
            .unwrap_or(name);
        assert_eq!(base, fam, "sample {name} outside its family");
        assert!(!finished.contains(base), "family {base} not contiguous");
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    (types, samples)
}

fn get<'a>(samples: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Option<&'a Sample> {
    samples.iter().find(|s| {
        s.name == name
            && labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
    })
}

fn counts(key: &str) -> ListCounts {
    ListCounts {
        audience_key: key.into(),
        list_id: Some(42),
        members: 7,
        pending: 3,
        retrying: 1,
        rejected: 2,
        oldest_pending_ms: Some(1_000),
        last_delivery_ms: None,
    }
}

#[test]
fn the_text_format_parses_back_with_every_family_once() {
    let a = DestinationMetrics::default();
    a.ingested_accepted();
    a.ingested_accepted();
    a.ingested_duplicate();
    a.ingested_rejected();
    a.ingested_skipped();
    a.rows(RowResult::Delivered, 5);
    a.rows(RowResult::Superseded, 1);
    a.request(Endpoint::Subscribe, StatusClass::Success);
    a.request(Endpoint::GetLists, StatusClass::Unauthorized);
    a.paused();
    a.setting_ignored(SettingName::CampaignId);
    a.setting_ignored(SettingName::CampaignId);
    a.setting_ignored(SettingName::SettingsObject);
    for v in [0.001, 0.02, 0.3, 7.0, 500.0] {
        a.observe_latency(v);
    }
    let b = DestinationMetrics::default();
    let lists = vec![counts("vip"), counts("we\"ird\\name\nx")];
    let snaps = [
        DestinationSnapshot {
            name: "prod",
            metrics: &a,
            paused: true,
            degraded: true,
            lists: &lists,
            now_ms: 3_500,
            event_log_rows: Some(42),
        },
        DestinationSnapshot {
            name: "eu \"two\"",
            metrics: &b,
            paused: false,
            degraded: false,
            lists: &[],
            now_ms: 3_500,
            event_log_rows: None,
        },
    ];
    let mut out = String::new();
    render(&mut out, &snaps);
    render_store(&mut out, true);
    let (types, samples) = parse(&out);
    assert_eq!(
        types["iterable_lists_delivery_latency_seconds"],
        "histogram"
    );
    assert_eq!(types["iterable_lists_rows_total"], "counter");
    assert_eq!(types["iterable_lists_queue_depth"], "gauge");
    let v = |name: &str, labels: &[(&str, &str)]| {
        get(&samples, name, labels)
            .unwrap_or_else(|| panic!("{name} {labels:?} in\n{out}"))
            .value
    };
    let p = [("destination", "prod")];
    assert_eq!(
        v(
            "iterable_lists_events_ingested_total",
            &[("destination", "prod"), ("outcome", "accepted")]
        ),
        2.0
    );
    assert_eq!(
        v(
            "iterable_lists_rows_total",
            &[("destination", "prod"), ("outcome", "delivered")]
        ),
        5.0
    );
    assert_eq!(
        v(
            "iterable_lists_requests_total",
            &[
                ("destination", "prod"),
                ("endpoint", "subscribe"),
                ("class", "2xx")
            ]
        ),
        1.0
    );
    assert_eq!(
        v(
            "iterable_lists_requests_total",
            &[
                ("destination", "prod"),
                ("endpoint", "get_lists"),
                ("class", "401")
            ]
        ),
        1.0
    );
    assert_eq!(v("iterable_lists_destination_paused", &p), 1.0);
    assert_eq!(v("iterable_lists_destination_degraded", &p), 1.0);
    assert_eq!(
        v(
            "iterable_lists_destination_degraded",
            &[("destination", "eu \"two\"")]
        ),
        0.0
    );
    assert_eq!(v("iterable_lists_store_write_failing", &[]), 1.0);
    assert_eq!(v("iterable_lists_event_log_rows", &p), 42.0);
    assert!(
        !out.contains("iterable_lists_event_log_rows{destination=\"eu"),
        "no sample when the store could not be read"
    );
    assert_eq!(
        v(
            "iterable_lists_destination_paused",
            &[("destination", "eu \"two\"")]
        ),
        0.0,
        "label values round-trip through escaping"
    );
    // The histogram: cumulative, ending in +Inf = count.
    let buckets: Vec<(f64, f64)> = samples
        .iter()
        .filter(|s| {
            s.name == "iterable_lists_delivery_latency_seconds_bucket"
                && s.labels["destination"] == "prod"
        })
        .map(|s| {
            let le = match s.labels["le"].as_str() {
                "+Inf" => f64::INFINITY,
                x => x.parse().unwrap(),
            };
            (le, s.value)
        })
        .collect();
    assert_eq!(buckets.len(), LATENCY_BUCKETS.len() + 1);
    assert!(
        buckets
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1)
    );
    assert_eq!(buckets.last().copied(), Some((f64::INFINITY, 5.0)));
    assert_eq!(
        buckets.iter().find(|b| b.0 == 0.005).map(|b| b.1),
        Some(1.0)
    );
    assert_eq!(v("iterable_lists_delivery_latency_seconds_count", &p), 5.0);
    let sum = v("iterable_lists_delivery_latency_seconds_sum", &p);
    assert!((sum - 507.321).abs() < 1e-6, "{sum}");
    // Per-audience gauges, with an awkward audience key escaped and read back.
    let weird = [("destination", "prod"), ("audience", "we\"ird\\name\nx")];
    assert_eq!(v("iterable_lists_queue_depth", &weird), 3.0);
    assert_eq!(v("iterable_lists_queue_age_seconds", &weird), 2.5);
    assert_eq!(
        v(
            "iterable_lists_list_info",
            &[("audience", "vip"), ("list_id", "42")]
        ),
        1.0
    );
    assert_eq!(v("iterable_lists_list_members", &weird), 7.0);
    assert_eq!(v("iterable_lists_list_rejected", &weird), 2.0);
    assert_eq!(v("iterable_lists_queue_retrying", &weird), 1.0);
    // Ignored audience settings, one sample per setting and destination.
    let ignored = "iterable_lists_audience_settings_ignored_total";
    assert_eq!(types[ignored], "counter");
    let by = |d: &'static str, s: &'static str| v(ignored, &[("destination", d), ("setting", s)]);
    assert_eq!(by("prod", "campaignId"), 2.0);
    assert_eq!(by("prod", "audience_settings"), 1.0);
    assert_eq!(by("prod", "updateExistingUsersOnly"), 0.0);
    assert_eq!(by("eu \"two\"", "globalUnsubscribe"), 0.0);
}

#[test]
fn no_destinations_still_render_valid_text() {
    let mut out = String::new();
    render(&mut out, &[]);
    let (types, samples) = parse(&out);
    assert!(samples.is_empty());
    assert!(types.contains_key("iterable_lists_rows_total"));
}

#[test]
fn quantiles_interpolate_inside_buckets() {
    let h = Histogram::default();
    assert_eq!(h.quantile(0.5), None);
    // 100 values in (0.05, 0.1], then one in +Inf.
    for _ in 0..100 {
        h.observe(0.07);
    }
    let p50 = h.quantile(0.5).unwrap();
    assert!((0.05..=0.1).contains(&p50), "{p50}");
    assert!((p50 - 0.075).abs() < 1e-9, "{p50}");
    h.observe(1_000.0);
    assert_eq!(h.quantile(1.0), Some(120.0), "+Inf reports the top bound");
    let m = DestinationMetrics::default();
    assert_eq!(m.latency_p50_p99(), None);
    m.observe_latency(-3.0);
    assert_eq!(
        m.latency().cumulative()[0],
        (0.005, 1),
        "negative counts as 0"
    );
    let (p50, p99) = m.latency_p50_p99().unwrap();
    assert!(p50 <= p99 && p99 <= 0.005);
}
