//! What happened to events and where each destination stands, as JSON for the admin endpoints
//! and as text for `iterable-lists status` and `iterable-lists events show`.

use std::fmt::Write as _;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use segment::event::format_timestamp_ms;
use serde_json::{Value, json};
pub use sync::DestinationState;
use sync::{
    EventCounts, EventRecord, ListCounts, RemovalHold, StatusKind, Store, StoreError, VerifyRecord,
};

use crate::app::AppState;
use crate::figures::Figures;
use crate::http::json_reply;

/// One logged event as JSON (the admin API's [`crate::admin::views::EventView`]).
pub fn event_json(r: &EventRecord) -> Value {
    serde_json::to_value(crate::admin::read::event_view(r)).unwrap_or(Value::Null)
}

/// Where one destination stands.
#[derive(Debug, Clone)]
pub struct DestinationStatus {
    pub name: String,
    pub enabled: bool,
    /// Running, paused or degraded; `None` when disabled.
    pub state: Option<DestinationState>,
    pub lists: Vec<ListCounts>,
    pub events: EventCounts,
    /// Audiences whose removals the mass-removal guard holds.
    pub holds: Vec<RemovalHold>,
    /// The last `audience verify` of each audience that had one.
    pub verifies: Vec<VerifyRecord>,
}

/// The last verify of an audience as JSON: when, what it found (or why it failed).
pub fn verify_json(v: &VerifyRecord) -> Value {
    json!({
        "at": format_timestamp_ms(v.ran_ms),
        "atMs": v.ran_ms,
        "repair": v.repair,
        "inSync": v.in_sync(),
        "error": v.error,
        "inIterable": v.in_iterable,
        "acknowledged": v.acknowledged,
        "missing": v.missing,
        "extra": v.extra,
        "reopened": v.reopened,
        "unsubscribes": v.unsubscribes,
        "summary": v.describe(),
    })
}

/// A hold as JSON: since when, how many removals wait, and the numbers that tripped it.
pub fn hold_json(h: &RemovalHold) -> Value {
    json!({
        "since": format_timestamp_ms(h.since_ms),
        "sinceMs": h.since_ms,
        "held": h.held,
        "members": h.tripped.members,
        "pendingRemovals": h.tripped.pending_removals,
        "removedInWindow": h.tripped.removed_in_window,
        "maxRemovalRatio": h.max_ratio,
        "reason": h.describe(),
    })
}

impl DestinationStatus {
    /// Reads the store's figures for `name`.
    pub async fn read(
        store: &Store,
        name: &str,
        enabled: bool,
        state: Option<DestinationState>,
    ) -> Result<Self, StoreError> {
        Ok(Self::new(
            name,
            enabled,
            state,
            Figures {
                lists: store.list_counts(name).await?,
                events: store.event_counts(name).await?,
                stored_state: None,
                holds: store.removal_holds(name).await?,
                verifies: store.last_verifies(name).await?,
                operator_pause: None,
            },
        ))
    }

    /// From figures already read.
    pub fn new(
        name: &str,
        enabled: bool,
        state: Option<DestinationState>,
        figures: Figures,
    ) -> Self {
        Self {
            name: name.to_string(),
            enabled,
            state,
            lists: figures.lists,
            events: figures.events,
            holds: figures.holds,
            verifies: figures.verifies,
        }
    }

    /// `running`, `paused`, `degraded` or `disabled`.
    pub fn state_word(&self) -> &'static str {
        self.state
            .as_ref()
            .map_or("disabled", DestinationState::word)
    }

    /// Why it is paused or degraded.
    pub fn reason(&self) -> Option<&str> {
        self.state.as_ref().and_then(DestinationState::reason)
    }

    /// Since when it is paused or degraded (epoch ms).
    pub fn since_ms(&self) -> Option<i64> {
        self.state.as_ref().and_then(DestinationState::since_ms)
    }

    /// The last verify of an audience, if it had one.
    pub fn last_verify(&self, audience: &str) -> Option<&VerifyRecord> {
        self.verifies.iter().find(|v| v.audience_key == audience)
    }

    /// The hold of an audience, if its removals are held.
    pub fn hold(&self, audience: &str) -> Option<&RemovalHold> {
        self.holds.iter().find(|h| h.audience_key == audience)
    }

    pub fn to_json(&self) -> Value {
        let mut events = serde_json::Map::new();
        for k in StatusKind::ALL {
            events.insert(k.as_str().into(), json!(self.events.get(k)));
        }
        json!({
            "name": self.name,
            "enabled": self.enabled,
            "state": self.state_word(),
            "reason": self.reason(),
            "since": self.since_ms().map(format_timestamp_ms),
            "sinceMs": self.since_ms(),
            "events": events,
            "audiences": self.lists.iter().map(|l| json!({
                "audience": l.audience_key,
                "listId": l.list_id,
                "members": l.members,
                "pending": l.pending,
                "retrying": l.retrying,
                "rejected": l.rejected,
                "oldestPendingMs": l.oldest_pending_ms,
                "lastDeliveryMs": l.last_delivery_ms,
                "removalHold": self.hold(&l.audience_key).map(hold_json),
                "lastVerify": self.last_verify(&l.audience_key).map(verify_json),
            })).collect::<Vec<_>>(),
            "heldAudiences": self.holds.iter().map(|h| h.audience_key.as_str()).collect::<Vec<_>>(),
        })
    }
}

/// A time (epoch milliseconds) for people, relative to `now_ms` when it is within two days
/// ("in 42 s", "3 min ago", "5 h ago", "now"), else ISO 8601 in UTC.
pub fn relative_time(ms: i64, now_ms: i64) -> String {
    let delta = ms.saturating_sub(now_ms);
    let secs = delta.unsigned_abs() / 1000;
    let amount = match secs {
        0 => return "now".into(),
        1..120 => format!("{secs} s"),
        120..7200 => format!("{} min", secs / 60),
        7200..172_800 => format!("{} h", secs / 3600),
        _ => return format_timestamp_ms(ms),
    };
    if delta > 0 {
        format!("in {amount}")
    } else {
        format!("{amount} ago")
    }
}

/// A time for people: ISO 8601 in UTC, then how long ago or ahead of `now_ms` it is:
/// `2025-01-02T03:04:05.678Z (3 min ago)`.
pub fn time_text(ms: i64, now_ms: i64) -> String {
    let iso = format_timestamp_ms(ms);
    let relative = relative_time(ms, now_ms);
    if relative == iso {
        iso
    } else {
        format!("{iso} ({relative})")
    }
}

/// A table of destinations and audiences, for a terminal.
pub fn status_text(destinations: &[DestinationStatus], now_ms: i64) -> String {
    let mut out = String::new();
    if destinations.is_empty() {
        out.push_str("no destinations configured\n");
    }
    for d in destinations {
        let e = &d.events;
        let state = match (d.reason(), d.since_ms()) {
            (Some(reason), Some(since)) => {
                format!(
                    "{} since {}: {reason}",
                    d.state_word(),
                    format_timestamp_ms(since)
                )
            }
            _ => d.state_word().to_string(),
        };
        let _ = writeln!(
            out,
            "destination {} ({}): events accepted {} pending {} delivered {} superseded {} rejected {} skipped {}",
            d.name, state, e.accepted, e.pending, e.delivered, e.superseded, e.rejected, e.skipped
        );
        if d.lists.is_empty() {
            out.push_str("  no audiences yet\n");
            continue;
        }
        let _ = writeln!(
            out,
            "  {:<32} {:>12} {:>9} {:>9} {:>9} {:>14}",
            "audience", "list id", "members", "pending", "rejected", "last delivery"
        );
        for l in &d.lists {
            let _ = writeln!(
                out,
                "  {:<32} {:>12} {:>9} {:>9} {:>9} {:>14}",
                l.audience_key,
                l.list_id.map_or("-".into(), |i| i.to_string()),
                l.members,
                l.pending,
                l.rejected,
                l.last_delivery_ms
                    .map_or("-".into(), |t| relative_time(t, now_ms))
            );
        }
        for v in &d.verifies {
            let _ = writeln!(
                out,
                "  last verify of {}{}: {}, {}",
                v.audience_key,
                if v.repair { " (with repair)" } else { "" },
                time_text(v.ran_ms, now_ms),
                v.describe()
            );
        }
        for h in &d.holds {
            let _ = writeln!(
                out,
                "  REMOVALS HELD for audience {} since {}: {}; {} removal(s) wait. Send them: \
                 iterable-lists audience hold release --destination {} --audience {}; or keep \
                 the users: ... audience hold discard ...",
                h.audience_key,
                time_text(h.since_ms, now_ms),
                h.describe(),
                h.held,
                d.name,
                h.audience_key
            );
        }
    }
    out
}

/// An event's story, for a terminal; times are shown in UTC and relative to `now_ms`.
pub fn event_text(r: &EventRecord, now_ms: i64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "event {} (destination {}, seq {}, received {})",
        r.message_id,
        r.destination,
        r.seq,
        time_text(r.received_ms, now_ms)
    );
    for a in &r.audiences {
        let who = match (&a.identity.email, &a.identity.user_id) {
            (Some(e), Some(u)) => format!("{e} / {u}"),
            (Some(e), None) => e.clone(),
            (None, Some(u)) => u.clone(),
            (None, None) => "-".into(),
        };
        let what = match a.member {
            Some(true) => "add",
            Some(false) => "remove",
            None => "-",
        };
        let audience = if a.audience_key.is_empty() {
            "(no audience)"
        } else {
            &a.audience_key
        };
        let _ = write!(out, "  {audience}: {what} {who}: {}", a.status.as_str());
        if let Some(reason) = &a.reason {
            let _ = write!(out, " ({reason})");
        }
        if a.attempts > 0 {
            let _ = write!(out, ", {} failed attempt(s)", a.attempts);
        }
        if let Some(n) = a.next_attempt_ms {
            let _ = write!(out, ", next attempt {}", time_text(n, now_ms));
        }
        out.push('\n');
    }
    if r.more_audiences {
        let _ = writeln!(
            out,
            "  ... and more: only its first {} audience rows are shown",
            r.audiences.len()
        );
    }
    for ig in &r.ignored_settings {
        let _ = writeln!(
            out,
            "  audience setting {} = {} ignored: {}",
            ig.setting, ig.value, ig.reason
        );
    }
    out
}

/// The event in each of the destinations `names` that has it.
async fn events_of(
    store: &Store,
    names: &[String],
    message_id: &str,
) -> Result<Vec<EventRecord>, StoreError> {
    let mut out = Vec::new();
    for n in names {
        out.extend(store.event_status(n, message_id).await?);
    }
    Ok(out)
}

/// `GET /v1/events/{messageId}[?destination=NAME]`: the event in every destination that has
/// it (or the named one).
pub async fn event_reply(
    state: &AppState,
    message_id: &str,
    destination: Option<&str>,
) -> Response<Full<Bytes>> {
    let names: Vec<String> = match destination {
        Some(d) if state.destination(d).is_none() => {
            return json_reply(
                404,
                &json!({"success": false, "message": format!("no destination named {d:?}")}),
            );
        }
        Some(d) => vec![d.to_string()],
        None => state
            .destinations
            .iter()
            .map(|d| d.config.name.clone())
            .collect(),
    };
    match events_of(&state.store, &names, message_id).await {
        Ok(records) if records.is_empty() => json_reply(
            404,
            &json!({"success": false, "message": format!("no event with messageId {message_id:?}")}),
        ),
        Ok(records) => json_reply(
            200,
            &json!({"events": records.iter().map(event_json).collect::<Vec<_>>()}),
        ),
        Err(e) => json_reply(503, &json!({"success": false, "message": e.to_string()})),
    }
}

/// The store's figures of every destination, from the snapshot (at most a second old).
pub(crate) async fn figures(state: &AppState) -> Arc<Result<Vec<Figures>, String>> {
    let names: Vec<String> = state
        .destinations
        .iter()
        .map(|d| d.config.name.clone())
        .collect();
    state
        .figures
        .get(crate::figures::read(&state.store, names))
        .await
}

/// `GET /v1/status`: every destination with its audiences. State and figures are the
/// store's (from a snapshot at most a second old, so that polling costs the store nothing
/// more), so every instance on one database gives the same answer, as `iterable-lists status`
/// does; the live state only stands in while nothing was stored.
pub async fn status_reply(state: &AppState) -> Response<Full<Bytes>> {
    let figures = figures(state).await;
    let figures = match &*figures {
        Ok(f) => f,
        Err(e) => return json_reply(503, &json!({"success": false, "message": e})),
    };
    let ds: Vec<Value> = state
        .destinations
        .iter()
        .zip(figures)
        .map(|(d, f)| {
            let state = d
                .reconciler
                .as_ref()
                .map(|r| f.stored_state.clone().unwrap_or_else(|| r.state()));
            DestinationStatus::new(&d.config.name, d.config.enabled, state, f.clone()).to_json()
        })
        .collect();
    json_reply(200, &json!({ "destinations": ds }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_iso_8601_in_utc() {
        assert_eq!(format_timestamp_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_timestamp_ms(1_796_032_800_123),
            "2026-11-30T10:00:00.123Z"
        );
    }

    #[test]
    fn a_paused_destination_says_so_with_its_reason_and_since_when() {
        let paused = DestinationStatus::new(
            "prod",
            true,
            Some(DestinationState::Paused {
                reason: "GET /api/lists failed: HTTP 401 BadApiKey".into(),
                since_ms: 0,
            }),
            Figures {
                lists: Vec::new(),
                events: EventCounts::default(),
                stored_state: None,
                holds: Vec::new(),
                verifies: Vec::new(),
                operator_pause: None,
            },
        );
        let v = paused.to_json();
        assert_eq!(v["state"], "paused");
        assert_eq!(v["reason"], "GET /api/lists failed: HTTP 401 BadApiKey");
        assert_eq!(v["since"], "1970-01-01T00:00:00.000Z");
        assert_eq!(v["sinceMs"], 0);
        let text = status_text(&[paused], 0);
        assert!(
            text.starts_with(
                "destination prod (paused since 1970-01-01T00:00:00.000Z: GET /api/lists failed: HTTP 401 BadApiKey)"
            ),
            "{text}"
        );
        let disabled = DestinationStatus::new(
            "old",
            false,
            None,
            Figures {
                lists: Vec::new(),
                events: EventCounts::default(),
                stored_state: None,
                holds: Vec::new(),
                verifies: Vec::new(),
                operator_pause: None,
            },
        );
        let v = disabled.to_json();
        assert_eq!(
            (v["state"].as_str(), v["reason"].is_null()),
            (Some("disabled"), true)
        );
        assert!(DestinationState::WORDS.contains(&"disabled"));
    }

    #[test]
    fn times_for_people() {
        let now = 1_700_000_000_000; // 2023-11-14T22:13:20.000Z
        let cases = [
            (now, "now"),
            (now + 999, "now"),
            (now + 42_000, "in 42 s"),
            (now - 42_500, "42 s ago"),
            (now - 119_999, "119 s ago"),
            (now - 180_000, "3 min ago"),
            (now + 7_199_000, "in 119 min"),
            (now - 5 * 3_600_000, "5 h ago"),
            (now - 47 * 3_600_000, "47 h ago"),
            (now - 48 * 3_600_000, "2023-11-12T22:13:20.000Z"),
            (now + 30 * 86_400_000, "2023-12-14T22:13:20.000Z"),
            (0, "1970-01-01T00:00:00.000Z"),
        ];
        for (ms, want) in cases {
            assert_eq!(relative_time(ms, now), want, "{ms}");
        }
        assert_eq!(
            time_text(now - 180_000, now),
            "2023-11-14T22:10:20.000Z (3 min ago)"
        );
        assert_eq!(time_text(0, now), "1970-01-01T00:00:00.000Z");
        // Extreme values neither panic nor overflow.
        for (ms, now) in [(i64::MIN, i64::MAX), (i64::MAX, i64::MIN), (i64::MIN, 0)] {
            assert!(time_text(ms, now).contains('T'), "{ms} {now}");
        }
    }

    /// An event that names more audiences than are read (a snapshot) says so, in the text of
    /// `events show` and in the JSON of the event lookups.
    #[test]
    fn an_event_with_more_audiences_says_so() {
        let a = sync::AudienceStatus {
            audience_key: "vip".into(),
            identity: sync::Identity::new(Some("a@x.co"), None),
            member: Some(true),
            time_ms: None,
            status: StatusKind::Delivered,
            reason: None,
            next_attempt_ms: None,
            attempts: 0,
            updated_ms: 0,
        };
        let mut r = EventRecord {
            seq: 1,
            destination: "prod".into(),
            message_id: "snapshot-1".into(),
            received_ms: 0,
            audiences: vec![a.clone(), a],
            more_audiences: false,
            ignored_settings: Vec::new(),
        };
        assert!(!event_text(&r, 0).contains("and more"));
        assert_eq!(event_json(&r)["moreAudiences"], false);
        r.more_audiences = true;
        let text = event_text(&r, 0);
        assert!(
            text.contains("... and more: only its first 2 audience rows are shown"),
            "{text}"
        );
        assert_eq!(event_json(&r)["moreAudiences"], true);
    }
}
