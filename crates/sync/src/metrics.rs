//! Per-destination metrics: what the server ingested, what the reconciler did with each row and
//! request, and the end-to-end latency, rendered as Prometheus text (exposition format 0.0.4).
//!
//! Counters are plain atomics, updated without locks on the hot path. [`render`] writes every
//! metric family once (one `# HELP`/`# TYPE` pair), with one sample per destination (and per
//! audience for the store's gauges from [`ListCounts`]).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use destination::SettingName;
use iterable::client::{ErrorKind, IterableError};
use iterable::limiter::Endpoint;

use crate::store::ListCounts;

/// Upper bounds (seconds) of the latency histogram's buckets; `+Inf` comes after them.
pub const LATENCY_BUCKETS: [f64; 15] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0,
];

/// What the store made of an incoming event (counted by the server).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingested {
    /// Stored, with at least its log entry.
    Accepted,
    /// A messageId seen before: nothing stored.
    Duplicate,
    /// Unusable (logged as rejected).
    Rejected,
    /// Not for this destination (logged as skipped).
    Skipped,
}

impl Ingested {
    const ALL: [Ingested; 4] = [
        Ingested::Accepted,
        Ingested::Duplicate,
        Ingested::Rejected,
        Ingested::Skipped,
    ];

    /// The `outcome` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Ingested::Accepted => "accepted",
            Ingested::Duplicate => "duplicate",
            Ingested::Rejected => "rejected",
            Ingested::Skipped => "skipped",
        }
    }
}

/// What the reconciler recorded for one row (one user in one audience).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowResult {
    /// Iterable acknowledged it.
    Delivered,
    /// Iterable refused it for good (its reason is in the event log).
    Rejected,
    /// A retryable failure: the row was rescheduled.
    Retried,
    /// Not sent: another row for the same person won.
    Superseded,
}

impl RowResult {
    const ALL: [RowResult; 4] = [
        RowResult::Delivered,
        RowResult::Rejected,
        RowResult::Retried,
        RowResult::Superseded,
    ];

    /// The `outcome` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RowResult::Delivered => "delivered",
            RowResult::Rejected => "rejected",
            RowResult::Retried => "retried",
            RowResult::Superseded => "superseded",
        }
    }
}

/// The status class of a finished request (after the client's own retries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    /// A 2xx answer.
    Success,
    /// 401: the API key was refused.
    Unauthorized,
    /// 429.
    RateLimited,
    /// Any other 4xx.
    ClientError,
    /// 5xx.
    ServerError,
    /// No usable answer: timeout, connection error, unreadable body.
    Transport,
}

impl StatusClass {
    const ALL: [StatusClass; 6] = [
        StatusClass::Success,
        StatusClass::Unauthorized,
        StatusClass::RateLimited,
        StatusClass::ClientError,
        StatusClass::ServerError,
        StatusClass::Transport,
    ];

    /// The `class` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusClass::Success => "2xx",
            StatusClass::Unauthorized => "401",
            StatusClass::RateLimited => "429",
            StatusClass::ClientError => "4xx",
            StatusClass::ServerError => "5xx",
            StatusClass::Transport => "transport",
        }
    }

    /// The class of a failed call.
    pub fn of_error(e: &IterableError) -> Self {
        match (e.kind.clone(), e.status) {
            (ErrorKind::Status, Some(401)) => StatusClass::Unauthorized,
            (ErrorKind::Status, Some(429)) => StatusClass::RateLimited,
            (ErrorKind::Status, Some(s)) if s >= 500 => StatusClass::ServerError,
            (ErrorKind::Status, Some(_)) => StatusClass::ClientError,
            _ => StatusClass::Transport,
        }
    }
}

/// The endpoints whose requests are counted, in rendering order.
const ENDPOINTS: [Endpoint; 4] = [
    Endpoint::Subscribe,
    Endpoint::Unsubscribe,
    Endpoint::GetLists,
    Endpoint::CreateList,
];

fn endpoint_index(e: Endpoint) -> Option<usize> {
    ENDPOINTS.iter().position(|x| *x == e)
}

fn endpoint_label(e: Endpoint) -> &'static str {
    match e {
        Endpoint::Subscribe => "subscribe",
        Endpoint::Unsubscribe => "unsubscribe",
        Endpoint::GetLists => "get_lists",
        Endpoint::CreateList => "create_list",
        _ => "other",
    }
}

/// A fixed-bucket histogram of seconds, lock-free.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Per bucket (not cumulative); the last one is `+Inf`.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Records one value in seconds (negative values, from clock steps, count as 0).
    pub fn observe(&self, seconds: f64) {
        let v = if seconds.is_finite() {
            seconds.max(0.0)
        } else {
            0.0
        };
        let i = LATENCY_BUCKETS
            .iter()
            .position(|le| v <= *le)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((v * 1e6).round() as u64, Ordering::Relaxed);
    }

    /// Values observed.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Sum of the values observed, in seconds.
    pub fn sum(&self) -> f64 {
        self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
    }

    /// Cumulative counts per bucket bound, `+Inf` last (as rendered).
    pub fn cumulative(&self) -> Vec<(f64, u64)> {
        let mut acc = 0;
        self.buckets
            .iter()
            .enumerate()
            .map(|(i, b)| {
                acc += b.load(Ordering::Relaxed);
                (
                    LATENCY_BUCKETS.get(i).copied().unwrap_or(f64::INFINITY),
                    acc,
                )
            })
            .collect()
    }

    /// The approximate `q` quantile (0..=1), interpolated linearly inside its bucket as
    /// Prometheus' `histogram_quantile` does; `None` before the first value. Values in the
    /// `+Inf` bucket report the largest finite bound.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let cum = self.cumulative();
        let total = cum.last().map_or(0, |c| c.1);
        if total == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total as f64;
        let mut below = 0u64;
        let mut lower = 0.0;
        for (le, c) in cum {
            if c as f64 >= rank && c > below {
                if le.is_infinite() {
                    return Some(lower);
                }
                let inside = (rank - below as f64) / (c - below) as f64;
                return Some(lower + (le - lower) * inside.clamp(0.0, 1.0));
            }
            below = c;
            if le.is_finite() {
                lower = le;
            }
        }
        Some(lower)
    }
}

/// The counters of one destination. Shared (`Arc`) by the server and the reconciler.
#[derive(Debug, Default)]
pub struct DestinationMetrics {
    ingested: [AtomicU64; 4],
    rows: [AtomicU64; 4],
    requests: [[AtomicU64; 6]; ENDPOINTS.len()],
    pauses: AtomicU64,
    latency: Histogram,
    ignored_settings: [AtomicU64; SettingName::ALL.len()],
}

impl DestinationMetrics {
    /// Counts `n` ingested events of one kind.
    pub fn ingested(&self, kind: Ingested, n: u64) {
        self.ingested[kind as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// One event stored.
    pub fn ingested_accepted(&self) {
        self.ingested(Ingested::Accepted, 1);
    }

    /// One event whose messageId was seen before.
    pub fn ingested_duplicate(&self) {
        self.ingested(Ingested::Duplicate, 1);
    }

    /// One unusable event.
    pub fn ingested_rejected(&self) {
        self.ingested(Ingested::Rejected, 1);
    }

    /// One event not meant for this destination.
    pub fn ingested_skipped(&self) {
        self.ingested(Ingested::Skipped, 1);
    }

    /// Ingested events of one kind so far.
    pub fn ingested_count(&self, kind: Ingested) -> u64 {
        self.ingested[kind as usize].load(Ordering::Relaxed)
    }

    /// Counts `n` rows with one result.
    pub fn rows(&self, result: RowResult, n: u64) {
        self.rows[result as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// Rows with one result so far.
    pub fn rows_count(&self, result: RowResult) -> u64 {
        self.rows[result as usize].load(Ordering::Relaxed)
    }

    /// Counts one finished request (endpoints other than subscribe, unsubscribe, get_lists
    /// and create_list are not counted).
    pub fn request(&self, endpoint: Endpoint, class: StatusClass) {
        if let Some(i) = endpoint_index(endpoint) {
            self.requests[i][class as usize].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Finished requests of one endpoint and class so far.
    pub fn requests_count(&self, endpoint: Endpoint, class: StatusClass) -> u64 {
        endpoint_index(endpoint).map_or(0, |i| {
            self.requests[i][class as usize].load(Ordering::Relaxed)
        })
    }

    /// Counts one pause (a 401 that stopped deliveries).
    pub fn paused(&self) {
        self.pauses.fetch_add(1, Ordering::Relaxed);
    }

    /// Pauses so far.
    pub fn pauses_count(&self) -> u64 {
        self.pauses.load(Ordering::Relaxed)
    }

    /// Counts one audience setting an accepted event carried but that could not be used.
    pub fn setting_ignored(&self, setting: SettingName) {
        self.ignored_settings[setting as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Ignored values of one audience setting so far.
    pub fn ignored_settings_count(&self, setting: SettingName) -> u64 {
        self.ignored_settings[setting as usize].load(Ordering::Relaxed)
    }

    /// Records one row's time from acceptance to Iterable's acknowledgement.
    pub fn observe_latency(&self, seconds: f64) {
        self.latency.observe(seconds);
    }

    /// The end-to-end latency histogram.
    pub fn latency(&self) -> &Histogram {
        &self.latency
    }

    /// Approximate (p50, p99) end-to-end latency in seconds, for benchmarks; `None` before
    /// the first delivery.
    pub fn latency_p50_p99(&self) -> Option<(f64, f64)> {
        Some((self.latency.quantile(0.5)?, self.latency.quantile(0.99)?))
    }
}

/// What [`render`] shows of one destination.
#[derive(Debug, Clone, Copy)]
pub struct DestinationSnapshot<'a> {
    /// The destination's name (the `destination` label).
    pub name: &'a str,
    /// Its counters.
    pub metrics: &'a DestinationMetrics,
    /// Whether deliveries are paused (a refused API key).
    pub paused: bool,
    /// Whether Iterable has been unreachable for a while.
    pub degraded: bool,
    /// The store's gauges per audience.
    pub lists: &'a [ListCounts],
    /// Now, in epoch ms: queue ages are measured from it.
    pub now_ms: i64,
}

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
/// - `iterable_lists_audience_settings_ignored_total{setting}`: audience settings of stored
///   events that could not be used (left unset for the event), by setting;
/// - `iterable_lists_destination_degraded` (gauge): Iterable unreachable for a while;
/// - per audience: `iterable_lists_queue_depth`, `iterable_lists_queue_retrying`,
///   `iterable_lists_queue_age_seconds`, `iterable_lists_list_members`,
///   `iterable_lists_list_rejected`, and `iterable_lists_list_info{list_id}` (always 1) for
///   audiences with a registered list.
pub fn render(out: &mut String, destinations: &[DestinationSnapshot<'_>]) {
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

#[cfg(test)]
mod tests {
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
            },
            DestinationSnapshot {
                name: "eu \"two\"",
                metrics: &b,
                paused: false,
                degraded: false,
                lists: &[],
                now_ms: 3_500,
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
        let by =
            |d: &'static str, s: &'static str| v(ignored, &[("destination", d), ("setting", s)]);
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
}
