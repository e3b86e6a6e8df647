//! The Prometheus text format (exposition format 0.0.4) of the metrics: every family once
//! (one `# HELP`/`# TYPE` pair), one sample per destination (and per audience for the store's
//! gauges).

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use destination::SettingName;

use super::{DestinationSnapshot, ENDPOINTS, Ingested, RowResult, StatusClass, endpoint_label};
use crate::store::{ListCounts, RemovalHold};

/// Escapes a label value: backslash, double quote and newline.
fn escape_label(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Writes `name{labels} value\n`.
fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(k);
            out.push_str("=\"");
            escape_label(out, v);
            out.push('"');
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

/// A float as Prometheus writes it (`+Inf`, integers without a fraction).
fn float(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else if v.is_nan() {
        "NaN".to_string()
    } else {
        format!("{v}")
    }
}

/// Appends every destination's metrics to `out` in Prometheus text format 0.0.4.
///
/// Families (all labelled with `destination`):
/// - `iterable_lists_events_ingested_total{outcome}`: accepted, duplicate, rejected, skipped;
/// - `iterable_lists_rows_total{outcome}`: delivered, rejected, retried, superseded;
/// - `iterable_lists_requests_total{endpoint,class}`: finished requests (after the client's
///   own retries) by status class;
/// - `iterable_lists_delivery_latency_seconds`: acceptance to acknowledgement, a histogram;
/// - `iterable_lists_destination_paused` (gauge) and `iterable_lists_pauses_total`;
/// - `iterable_lists_lists_recreated_total`: lists deleted in Iterable, created again;
/// - `iterable_lists_audience_settings_ignored_total{setting}`: audience settings of stored
///   events that could not be used (left unset for the event), by setting;
/// - `iterable_lists_destination_degraded` (gauge): Iterable unreachable for a while;
/// - per audience: `iterable_lists_queue_depth`, `iterable_lists_queue_retrying`,
///   `iterable_lists_queue_age_seconds`, `iterable_lists_list_members`,
///   `iterable_lists_list_rejected`, and `iterable_lists_list_info{list_id}` (always 1) for
///   audiences with a registered list;
/// - per audience verified on a schedule (`verify_every`): `iterable_lists_drift_members{kind}`
///   (missing, extra) and `iterable_lists_drift_verified_timestamp_seconds`;
/// - `iterable_lists_event_log_rows`: rows of the event log (one per event and audience),
///   which retention keeps bounded.
pub fn render(out: &mut String, destinations: &[DestinationSnapshot<'_>]) {
    counters(out, destinations);
    latency(out, destinations);
    states(out, destinations);
    ignored_settings(out, destinations);
    audience_gauges(out, destinations);
    drift(out, destinations);
    event_log(out, destinations);
}

/// The event log's size per destination.
fn event_log(out: &mut String, destinations: &[DestinationSnapshot<'_>]) {
    const ROWS: &str = "iterable_lists_event_log_rows";
    family(
        out,
        ROWS,
        "gauge",
        "Rows of the event log (one per event and audience); final ones older than the \
         retention period are removed.",
    );
    for d in destinations {
        if let Some(n) = d.event_log_rows {
            sample(out, ROWS, &[("destination", d.name)], n);
        }
    }
}

/// Events ingested, rows settled and requests sent.
fn counters(out: &mut String, destinations: &[DestinationSnapshot<'_>]) {
    const INGESTED: &str = "iterable_lists_events_ingested_total";
    family(
        out,
        INGESTED,
        "counter",
        "Events received, by what the store made of them.",
    );
    for d in destinations {
        for k in Ingested::ALL {
            sample(
                out,
                INGESTED,
                &[("destination", d.name), ("outcome", k.as_str())],
                d.metrics.ingested_count(k),
            );
        }
    }

    const ROWS: &str = "iterable_lists_rows_total";
    family(
        out,
        ROWS,
        "counter",
        "Rows (one user in one audience) the reconciler settled or rescheduled, by outcome.",
    );
    for d in destinations {
        for r in RowResult::ALL {
            sample(
                out,
                ROWS,
                &[("destination", d.name), ("outcome", r.as_str())],
                d.metrics.rows_count(r),
            );
        }
    }

    const REQUESTS: &str = "iterable_lists_requests_total";
    family(
        out,
        REQUESTS,
        "counter",
        "Requests to Iterable by endpoint and final status class (after the client's retries).",
    );
    for d in destinations {
        for (i, e) in ENDPOINTS.iter().enumerate() {
            for c in StatusClass::ALL {
                let n = d.metrics.requests[i][c as usize].load(Ordering::Relaxed);
                // Subscribe and unsubscribe always; list calls once they happened.
                if n > 0 || i < 2 {
                    sample(
                        out,
                        REQUESTS,
                        &[
                            ("destination", d.name),
                            ("endpoint", endpoint_label(*e)),
                            ("class", c.as_str()),
                        ],
                        n,
                    );
                }
            }
        }
    }
}

/// The acceptance-to-acknowledgement histogram.
fn latency(out: &mut String, destinations: &[DestinationSnapshot<'_>]) {
    const LATENCY: &str = "iterable_lists_delivery_latency_seconds";
    family(
        out,
        LATENCY,
        "histogram",
        "Time from accepting an event to Iterable acknowledging it, per delivered row.",
    );
    let bucket = format!("{LATENCY}_bucket");
    for d in destinations {
        let h = d.metrics.latency();
        for (le, c) in h.cumulative() {
            let le = float(le);
            sample(out, &bucket, &[("destination", d.name), ("le", &le)], c);
        }
        sample(
            out,
            &format!("{LATENCY}_sum"),
            &[("destination", d.name)],
            float(h.sum()),
        );
        sample(
            out,
            &format!("{LATENCY}_count"),
            &[("destination", d.name)],
            h.count(),
        );
    }
}

/// Paused and degraded gauges, and the pauses counted.
fn states(out: &mut String, destinations: &[DestinationSnapshot<'_>]) {
    const PAUSED: &str = "iterable_lists_destination_paused";
    family(
        out,
        PAUSED,
        "gauge",
        "1 while deliveries are paused because Iterable refused the API key.",
    );
    for d in destinations {
        sample(out, PAUSED, &[("destination", d.name)], u8::from(d.paused));
    }
    const DEGRADED: &str = "iterable_lists_destination_degraded";
    family(
        out,
        DEGRADED,
        "gauge",
        "1 while Iterable has been unreachable (connection errors, timeouts, 5xx) for over a minute.",
    );
    for d in destinations {
        sample(
            out,
            DEGRADED,
            &[("destination", d.name)],
            u8::from(d.degraded),
        );
    }
    const PAUSES: &str = "iterable_lists_pauses_total";
    family(
        out,
        PAUSES,
        "counter",
        "Times deliveries were paused by a refused API key.",
    );
    for d in destinations {
        sample(
            out,
            PAUSES,
            &[("destination", d.name)],
            d.metrics.pauses_count(),
        );
    }
    const RECREATED: &str = "iterable_lists_lists_recreated_total";
    family(
        out,
        RECREATED,
        "counter",
        "Lists deleted in Iterable that were created again and refilled.",
    );
    for d in destinations {
        sample(
            out,
            RECREATED,
            &[("destination", d.name)],
            d.metrics.lists_recreated_count(),
        );
    }
}

/// What the scheduled verifies found, per audience verified.
fn drift(out: &mut String, destinations: &[DestinationSnapshot<'_>]) {
    const DRIFT: &str = "iterable_lists_drift_members";
    const VERIFIED: &str = "iterable_lists_drift_verified_timestamp_seconds";
    family(
        out,
        DRIFT,
        "gauge",
        "Members the last scheduled verify found missing from the Iterable list, or extra in it.",
    );
    for d in destinations {
        for (audience, x) in d.metrics.drift() {
            for (kind, n) in [("missing", x.missing), ("extra", x.extra)] {
                let labels = [
                    ("destination", d.name),
                    ("audience", &audience),
                    ("kind", kind),
                ];
                sample(out, DRIFT, &labels, n);
            }
        }
    }
    family(
        out,
        VERIFIED,
        "gauge",
        "When the last scheduled verify of the audience finished (Unix time).",
    );
    for d in destinations {
        for (audience, x) in d.metrics.drift() {
            let labels = [("destination", d.name), ("audience", audience.as_str())];
            sample(out, VERIFIED, &labels, float(x.verified_ms as f64 / 1000.0));
        }
    }
}

/// Audience settings that could not be used, by setting.
fn ignored_settings(out: &mut String, destinations: &[DestinationSnapshot<'_>]) {
    const IGNORED: &str = "iterable_lists_audience_settings_ignored_total";
    family(
        out,
        IGNORED,
        "counter",
        "Audience settings of stored events that could not be used and were left unset, by setting.",
    );
    for d in destinations {
        for s in SettingName::ALL {
            sample(
                out,
                IGNORED,
                &[("destination", d.name), ("setting", s.as_str())],
                d.metrics.ignored_settings_count(s),
            );
        }
    }
}

/// The store's gauges per audience, and the list registered for each.
fn audience_gauges(out: &mut String, destinations: &[DestinationSnapshot<'_>]) {
    type Gauge = fn(&ListCounts, i64) -> String;
    let gauges: [(&str, &str, Gauge); 5] = [
        (
            "iterable_lists_queue_depth",
            "Users whose desired membership still has to reach Iterable.",
            |l, _| l.pending.to_string(),
        ),
        (
            "iterable_lists_queue_retrying",
            "Of those, users whose delivery already failed at least once.",
            |l, _| l.retrying.to_string(),
        ),
        (
            "iterable_lists_queue_age_seconds",
            "Age of the oldest change still waiting (0 when none).",
            |l, now| {
                let age = l
                    .oldest_pending_ms
                    .map_or(0.0, |o| (now - o).max(0) as f64 / 1000.0);
                float(age)
            },
        ),
        (
            "iterable_lists_list_members",
            "Users Iterable acknowledged as members of the audience's list.",
            |l, _| l.members.to_string(),
        ),
        (
            "iterable_lists_list_rejected",
            "Users whose latest change Iterable rejected.",
            |l, _| l.rejected.to_string(),
        ),
    ];
    for (name, help, value) in gauges {
        family(out, name, "gauge", help);
        for d in destinations {
            for l in d.lists {
                sample(
                    out,
                    name,
                    &[("destination", d.name), ("audience", &l.audience_key)],
                    value(l, d.now_ms),
                );
            }
        }
    }
    const INFO: &str = "iterable_lists_list_info";
    family(
        out,
        INFO,
        "gauge",
        "The Iterable list registered for an audience (always 1).",
    );
    for d in destinations {
        for l in d.lists {
            if let Some(id) = l.list_id {
                let id = id.to_string();
                sample(
                    out,
                    INFO,
                    &[
                        ("destination", d.name),
                        ("audience", &l.audience_key),
                        ("list_id", &id),
                    ],
                    1,
                );
            }
        }
    }
}

/// Appends the store's health: `iterable_lists_store_write_failing`, 1 while the store
/// cannot write (the last write failed and none succeeded since).
pub fn render_store(out: &mut String, write_failing: bool) {
    const FAILING: &str = "iterable_lists_store_write_failing";
    family(
        out,
        FAILING,
        "gauge",
        "1 while the store cannot write (the last write failed; none has succeeded since).",
    );
    sample(out, FAILING, &[], u8::from(write_failing));
}

/// Appends `iterable_lists_removals_held{destination,audience}`: removals the mass-removal
/// guard holds per audience (0 for every audience not held), and
/// `iterable_lists_removal_hold_since_seconds`: when each hold began (epoch seconds), from
/// each destination's name, audiences and holds.
pub fn render_holds(out: &mut String, destinations: &[(&str, &[ListCounts], &[RemovalHold])]) {
    const HELD: &str = "iterable_lists_removals_held";
    family(
        out,
        HELD,
        "gauge",
        "Removals the mass-removal guard holds until an operator releases or discards them.",
    );
    for (name, lists, holds) in destinations {
        let held = |a: &str| {
            holds
                .iter()
                .find(|h| h.audience_key == a)
                .map_or(0, |h| h.held)
        };
        for l in lists.iter() {
            sample(
                out,
                HELD,
                &[("destination", name), ("audience", &l.audience_key)],
                held(&l.audience_key),
            );
        }
        for h in holds.iter() {
            if !lists.iter().any(|l| l.audience_key == h.audience_key) {
                sample(
                    out,
                    HELD,
                    &[("destination", name), ("audience", &h.audience_key)],
                    h.held,
                );
            }
        }
    }
    const SINCE: &str = "iterable_lists_removal_hold_since_seconds";
    family(
        out,
        SINCE,
        "gauge",
        "When the mass-removal guard began holding an audience's removals (epoch seconds).",
    );
    for (name, _, holds) in destinations {
        for h in holds.iter() {
            sample(
                out,
                SINCE,
                &[("destination", name), ("audience", &h.audience_key)],
                float(h.since_ms as f64 / 1000.0),
            );
        }
    }
}
