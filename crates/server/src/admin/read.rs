//! The admin reads: each builds one view of [`super::views`] from what is cheap to read. The
//! figures come from the snapshot the service refreshes at most once a second
//! ([`AppState::figures`]: one row per audience), lists are paged (keyset, by key), rejected
//! users are read through an index of rejected keys, a user through an index of emails and
//! userIds, an event by its messageId; nothing scans the event log.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use iterable::limiter::Endpoint;
use sync::metrics::StatusClass;
use sync::{
    DestinationMetrics, EventRecord, Identity, ListCounts, OperatorPause, RejectedKey, RemovalHold,
    UserKey, UserQuery, UserState,
};

use super::AdminError;
use super::params::{
    EventParams, MAX_FILTER_CHARS, MAX_ID_BYTES, PageParams, RejectedParams, UserParams,
    checked_limit,
};
use super::views::*;
use crate::app::{AppState, DestinationRuntime};
use crate::config::DestinationConfig;
use crate::figures::Figures;

pub use super::csv::{CSV_HEADER, CsvStream, rejected_csv};

/// The figures of every destination, from the snapshot (at most a second old).
async fn figures(state: &AppState) -> Result<Arc<Result<Vec<Figures>, String>>, AdminError> {
    let f = crate::status::figures(state).await;
    match &*f {
        Ok(_) => Ok(f),
        Err(e) => Err(AdminError::Store(e.clone())),
    }
}

/// The destination named `name`, with its index.
pub fn runtime<'a>(
    state: &'a AppState,
    name: &str,
) -> Result<(usize, &'a DestinationRuntime), AdminError> {
    state
        .by_name
        .get(name)
        .map(|&i| (i, &state.destinations[i]))
        .ok_or_else(|| AdminError::UnknownDestination(name.to_string()))
}

fn one<'a>(all: &'a [Figures], i: usize, name: &str) -> Result<&'a Figures, AdminError> {
    all.get(i)
        .ok_or_else(|| AdminError::UnknownDestination(name.to_string()))
}

/// The destination's state: the store's (every instance sees the same), the live one while
/// nothing was stored, `disabled` for a disabled destination.
pub fn state_view(d: &DestinationRuntime, f: &Figures) -> StateView {
    let Some(r) = &d.reconciler else {
        return StateView {
            state: StateWord::Disabled,
            reason: None,
            since_ms: None,
        };
    };
    let s = f.stored_state.clone().unwrap_or_else(|| r.state());
    StateView {
        state: match s {
            sync::DestinationState::Running => StateWord::Running,
            sync::DestinationState::Paused { .. } => StateWord::Paused,
            sync::DestinationState::Degraded { .. } => StateWord::Degraded,
        },
        reason: s.reason().map(str::to_string),
        since_ms: s.since_ms(),
    }
}

pub fn pause_view(p: &OperatorPause) -> OperatorPauseView {
    OperatorPauseView {
        by: p.actor.clone(),
        reason: p.reason.clone(),
        since_ms: p.since_ms,
    }
}

fn queue_view(lists: &[ListCounts], now_ms: i64) -> QueueView {
    let oldest = lists.iter().filter_map(|l| l.oldest_pending_ms).min();
    QueueView {
        pending: lists.iter().map(|l| l.pending).sum(),
        retrying: lists.iter().map(|l| l.retrying).sum(),
        oldest_pending_ms: oldest,
        age_ms: oldest.map(|o| now_ms.saturating_sub(o).max(0)),
    }
}

/// The classes of failed Iterable requests, in this order.
const ERROR_CLASSES: [StatusClass; 5] = [
    StatusClass::Unauthorized,
    StatusClass::RateLimited,
    StatusClass::ClientError,
    StatusClass::ServerError,
    StatusClass::Transport,
];

/// The endpoints whose requests are counted.
const ENDPOINTS: [Endpoint; 4] = [
    Endpoint::Subscribe,
    Endpoint::Unsubscribe,
    Endpoint::GetLists,
    Endpoint::CreateList,
];

fn errors_of(m: &DestinationMetrics) -> Vec<ErrorClassCount> {
    ERROR_CLASSES
        .iter()
        .map(|&c| ErrorClassCount {
            class: c.as_str().to_string(),
            count: ENDPOINTS.iter().map(|&e| m.requests_count(e, c)).sum(),
        })
        .collect()
}

pub fn hold_view(h: &RemovalHold) -> HoldView {
    HoldView {
        since_ms: h.since_ms,
        held: h.held,
        members: h.tripped.members,
        pending_removals: h.tripped.pending_removals,
        removed_in_window: h.tripped.removed_in_window,
        max_removal_ratio: h.max_ratio,
        reason: h.describe(),
    }
}

fn audience_row(l: &ListCounts, holds: &[RemovalHold], now_ms: i64) -> AudienceRow {
    AudienceRow {
        audience_key: l.audience_key.clone(),
        list_id: l.list_id,
        members: l.members,
        pending: l.pending,
        retrying: l.retrying,
        rejected: l.rejected,
        oldest_pending_ms: l.oldest_pending_ms,
        lag_ms: l.oldest_pending_ms.map(|o| now_ms.saturating_sub(o).max(0)),
        last_delivery_ms: l.last_delivery_ms,
        hold: holds
            .iter()
            .find(|h| h.audience_key == l.audience_key)
            .map(hold_view),
    }
}

/// The audiences of the figures, without the `""` row of events that named none.
fn audiences(f: &Figures) -> impl Iterator<Item = &ListCounts> {
    f.lists.iter().filter(|l| !l.audience_key.is_empty())
}

/// The configuration of a destination, every secret left out.
pub fn settings_view(c: &DestinationConfig) -> SettingsView {
    let mut rate_limits: Vec<RateLimitView> = c
        .delivery
        .rate_limits
        .iter()
        .map(|(e, l)| RateLimitView {
            endpoint: format!("{e:?}"),
            limit: format!("{l:?}"),
        })
        .collect();
    rate_limits.sort_by(|a, b| a.endpoint.cmp(&b.endpoint));
    let settings = |audience: &str, s: &destination::AudienceSettings| AudienceSettingsView {
        audience: audience.to_string(),
        update_existing_users_only: s.update_existing_users_only,
        channel_unsubscribe: s.channel_unsubscribe,
        campaign_id: s.campaign_id,
    };
    let mut audience_settings = vec![settings("*", &c.audience_defaults)];
    audience_settings.extend(c.audiences.iter().map(|(k, s)| settings(k, s)));
    SettingsView {
        enabled: c.enabled,
        project_type: match c.project_type {
            destination::settings::ProjectType::Hybrid => "hybrid",
            destination::settings::ProjectType::UserId => "userId",
        }
        .to_string(),
        base_url: crate::logs::redact_url(&c.base_url),
        api_key_set: !c.api_key.expose().is_empty(),
        write_keys: c.write_keys.len() as u64,
        webhook_secret_set: c.webhook_secret.is_some(),
        mapping_overridden: c.mapping.is_some(),
        retl_sync_mode: c.retl_sync_mode.map(|m| format!("{m:?}").to_lowercase()),
        on_list_deleted: format!("{:?}", c.on_list_deleted).to_lowercase(),
        verify_every_ms: c.verify_every.map(|d| d.as_millis() as u64),
        verify_repair: c.verify_repair,
        batch_size: c.delivery.batch_size as u64,
        max_request_bytes: c.delivery.max_request_bytes as u64,
        linger_ms: c.delivery.linger.as_millis() as u64,
        concurrency: c.delivery.concurrency as u64,
        timeout_ms: c.delivery.timeout.as_millis() as u64,
        rate_limits,
        max_removal_ratio: c.removal_guard.max_ratio,
        removal_window_ms: c.removal_guard.window.as_millis() as u64,
        removal_guard_min_members: c.removal_guard.min_members,
        audience_settings,
    }
}

/// `GET /v1/admin/overview`.
pub async fn overview(state: &AppState) -> Result<Overview, AdminError> {
    let all = figures(state).await?;
    let all = all
        .as_ref()
        .as_ref()
        .map_err(|e| AdminError::Store(e.clone()))?;
    let now_ms = state.now_ms();
    let mut destinations = Vec::with_capacity(state.destinations.len());
    for (d, f) in state.destinations.iter().zip(all) {
        let h = state.history.destination(&d.config.name);
        destinations.push(DestinationSummary {
            name: d.config.name.clone(),
            enabled: d.config.enabled,
            state: state_view(d, f),
            operator_pause: f.operator_pause.as_ref().map(pause_view),
            ingested_per_minute: h.ingested,
            delivered_per_minute: h.delivered,
            rejected_per_minute: h.rejected,
            queue: queue_view(&f.lists, now_ms),
            errors: errors_of(&d.metrics),
            audiences: audiences(f).count() as u64,
            members: f.lists.iter().map(|l| l.members).sum(),
            rejected: f.lists.iter().map(|l| l.rejected).sum(),
            held_audiences: f.holds.iter().map(|h| h.audience_key.clone()).collect(),
        });
    }
    Ok(Overview {
        now_ms,
        destinations,
        warnings: state.warnings.recent(),
    })
}

/// `GET /v1/admin/destinations/{destination}`: its state, settings and a page of audiences.
pub async fn destination(
    state: &AppState,
    name: &str,
    params: &PageParams,
) -> Result<DestinationView, AdminError> {
    let (i, d) = runtime(state, name)?;
    let limit = checked_limit(params.limit)?;
    let all = figures(state).await?;
    let all = all
        .as_ref()
        .as_ref()
        .map_err(|e| AdminError::Store(e.clone()))?;
    let f = one(all, i, name)?;
    let now_ms = state.now_ms();
    // The figures are in audience-key order (the store's); a page starts after `after`.
    let mut keyed: Vec<&ListCounts> = audiences(f).collect();
    keyed.sort_by(|a, b| a.audience_key.cmp(&b.audience_key));
    let total = keyed.len() as u64;
    let start = match &params.after {
        None => 0,
        Some(after) => keyed.partition_point(|l| l.audience_key.as_str() <= after.as_str()),
    };
    let page: Vec<AudienceRow> = keyed[start..]
        .iter()
        .take(limit)
        .map(|l| audience_row(l, &f.holds, now_ms))
        .collect();
    let next_after = (start + page.len() < keyed.len())
        .then(|| page.last().map(|r| r.audience_key.clone()))
        .flatten();
    Ok(DestinationView {
        now_ms,
        name: d.config.name.clone(),
        state: state_view(d, f),
        operator_pause: f.operator_pause.as_ref().map(pause_view),
        queue: queue_view(&f.lists, now_ms),
        errors: errors_of(&d.metrics),
        audiences: AudiencePage {
            rows: page,
            total,
            next_after,
        },
        settings: settings_view(&d.config),
    })
}

/// The figures of one audience, or why there are none.
fn audience_of<'a>(
    f: &'a Figures,
    destination: &str,
    audience: &str,
) -> Result<&'a ListCounts, AdminError> {
    audiences(f)
        .find(|l| l.audience_key == audience)
        .ok_or_else(|| AdminError::UnknownAudience {
            destination: destination.to_string(),
            audience: audience.to_string(),
        })
}

/// `GET /v1/admin/destinations/{destination}/audiences/{audience}`.
pub async fn audience(
    state: &AppState,
    destination: &str,
    audience: &str,
) -> Result<AudienceView, AdminError> {
    let (i, d) = runtime(state, destination)?;
    let all = figures(state).await?;
    let all = all
        .as_ref()
        .as_ref()
        .map_err(|e| AdminError::Store(e.clone()))?;
    let f = one(all, i, destination)?;
    let l = audience_of(f, destination, audience)?;
    let now_ms = state.now_ms();
    let last_hold_decision = state
        .store
        .last_hold_decision(destination, audience)
        .await?
        .map(|(decision, at_ms)| HoldDecisionView { decision, at_ms });
    // The store keeps every instance's last verify (the figures may be a second old); this
    // instance's own, just run, may be newer.
    let stored = f
        .verifies
        .iter()
        .find(|v| v.audience_key == audience)
        .map(|v| VerifyView {
            missing: v.missing,
            extra: v.extra,
            verified_ms: v.ran_ms,
            error: v.error.clone(),
        });
    let here = d
        .metrics
        .drift()
        .into_iter()
        .find(|(a, _)| a == audience)
        .map(|(_, v)| VerifyView {
            missing: v.missing,
            extra: v.extra,
            verified_ms: v.verified_ms,
            error: None,
        });
    let last_verify = match (stored, here) {
        (Some(s), Some(h)) if h.verified_ms > s.verified_ms => Some(h),
        (Some(s), _) => Some(s),
        (None, h) => h,
    };
    Ok(AudienceView {
        now_ms,
        destination: destination.to_string(),
        audience: audience_row(l, &f.holds, now_ms),
        series: state.history.audience(destination, audience),
        last_hold_decision,
        last_verify,
    })
}

/// The cursor of a rejected key: its email and userId, each base64url, joined by a dot.
pub fn cursor_of(id: &Identity) -> String {
    let part = |v: &Option<String>| URL_SAFE_NO_PAD.encode(v.as_deref().unwrap_or(""));
    format!("{}.{}", part(&id.email), part(&id.user_id))
}

/// The key of a cursor of [`cursor_of`].
pub fn parse_cursor(field: &str, cursor: &str) -> Result<Identity, AdminError> {
    let bad = || AdminError::bad(field, "is not a cursor this service gave (use nextAfter)");
    let (e, u) = cursor.split_once('.').ok_or_else(bad)?;
    let part = |p: &str| -> Result<Option<String>, AdminError> {
        let bytes = URL_SAFE_NO_PAD.decode(p).map_err(|_| bad())?;
        let s = String::from_utf8(bytes).map_err(|_| bad())?;
        Ok((!s.is_empty()).then_some(s))
    };
    Ok(Identity {
        email: part(e)?,
        user_id: part(u)?,
    })
}

pub(super) fn checked_filter(filter: &Option<String>) -> Result<Option<&str>, AdminError> {
    match filter.as_deref() {
        Some(f) if f.chars().count() > MAX_FILTER_CHARS => Err(AdminError::bad(
            "filter",
            format!("is longer than {MAX_FILTER_CHARS} characters"),
        )),
        other => Ok(other),
    }
}

fn rejected_row(k: RejectedKey) -> RejectedRow {
    RejectedRow {
        email: k.identity.email,
        user_id: k.identity.user_id,
        member: k.member,
        reason: k.reason,
        seq: k.seq,
        accepted_ms: k.accepted_ms,
        rejected_ms: k.rejected_ms,
    }
}

/// Checks that the destination and audience exist (from the figures snapshot).
pub(super) async fn known_audience(
    state: &AppState,
    destination: &str,
    audience: &str,
) -> Result<(), AdminError> {
    let (i, _) = runtime(state, destination)?;
    let all = figures(state).await?;
    let all = all
        .as_ref()
        .as_ref()
        .map_err(|e| AdminError::Store(e.clone()))?;
    audience_of(one(all, i, destination)?, destination, audience).map(|_| ())
}

/// `GET /v1/admin/destinations/{destination}/audiences/{audience}/rejected`.
pub async fn rejected(
    state: &AppState,
    destination: &str,
    audience: &str,
    params: &RejectedParams,
) -> Result<RejectedPage, AdminError> {
    let limit = checked_limit(params.limit)?;
    let filter = checked_filter(&params.filter)?;
    let after = match &params.after {
        Some(c) => Some(parse_cursor("after", c)?),
        None => None,
    };
    known_audience(state, destination, audience).await?;
    // One row more than the page tells whether there is a next page.
    let mut keys = state
        .store
        .rejected_keys(destination, audience, after.as_ref(), filter, limit + 1)
        .await?;
    let more = keys.len() > limit;
    keys.truncate(limit);
    let next_after = more
        .then(|| keys.last().map(|k| cursor_of(&k.identity)))
        .flatten();
    Ok(RejectedPage {
        destination: destination.to_string(),
        audience: audience.to_string(),
        filter: filter.map(str::to_string),
        rows: keys.into_iter().map(rejected_row).collect(),
        next_after,
    })
}

fn event_ref(v: &sync::VersionEvent) -> EventRef {
    EventRef {
        seq: v.seq,
        message_id: v.message_id.clone(),
        time_ms: v.time_ms,
        received_ms: v.received_ms,
    }
}

fn user_audience(u: UserState) -> UserAudience {
    UserAudience {
        desired_by: event_ref(&u.desired),
        acknowledged_by: u.acknowledged.as_ref().map(event_ref),
        destination: u.destination,
        audience_key: u.audience_key,
        list_id: u.list_id,
        email: u.identity.email,
        user_id: u.identity.user_id,
        member: u.member,
        state: u.state,
        reason: u.reason,
        attempts: u.attempts,
        next_attempt_ms: u.next_attempt_ms,
        acknowledged_member: u.ack_member,
        last_answer_ms: u.ack_ms,
    }
}

/// The cursor of a page of a user's audiences: destination, audience, email and userId of
/// the last row, each base64url, joined by dots.
pub fn user_cursor_of(k: &UserKey) -> String {
    let part = |v: &str| URL_SAFE_NO_PAD.encode(v);
    format!(
        "{}.{}.{}",
        part(&k.destination),
        part(&k.audience_key),
        cursor_of(&k.identity)
    )
}

/// The key of a cursor of [`user_cursor_of`].
pub fn parse_user_cursor(field: &str, cursor: &str) -> Result<UserKey, AdminError> {
    let bad = || AdminError::bad(field, "is not a cursor this service gave (use nextAfter)");
    let mut parts = cursor.splitn(3, '.');
    let (Some(d), Some(a), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    let text = |p: &str| -> Result<String, AdminError> {
        let bytes = URL_SAFE_NO_PAD.decode(p).map_err(|_| bad())?;
        String::from_utf8(bytes).map_err(|_| bad())
    };
    Ok(UserKey {
        destination: text(d)?,
        audience_key: text(a)?,
        identity: parse_cursor(field, rest)?,
    })
}

/// `GET /v1/admin/users?email=|userId=`: a page of the user's audiences, in every destination,
/// through the store's index of emails and userIds.
pub async fn user(state: &AppState, params: &UserParams) -> Result<UserLookup, AdminError> {
    let limit = checked_limit(params.limit)?;
    let query = match (&params.email, &params.user_id) {
        (Some(_), Some(_)) => {
            return Err(AdminError::bad("email", "give email or userId, not both"));
        }
        (None, None) => return Err(AdminError::bad("email", "give email or userId")),
        (Some(e), None) => UserQuery::Email(e.trim().to_lowercase()),
        (None, Some(u)) => UserQuery::UserId(u.clone()),
    };
    let (field, value) = match &query {
        UserQuery::Email(e) => ("email", e),
        UserQuery::UserId(u) => ("userId", u),
    };
    if value.len() > MAX_ID_BYTES {
        return Err(AdminError::bad(
            field,
            format!("is longer than {MAX_ID_BYTES} bytes"),
        ));
    }
    let after = match &params.after {
        Some(c) => Some(parse_user_cursor("after", c)?),
        None => None,
    };
    // One row more than the page tells whether there is a next page.
    let mut found = state
        .store
        .user_states(&query, after.as_ref(), limit + 1)
        .await?;
    let more = found.len() > limit;
    found.truncate(limit);
    let next_after = more
        .then(|| {
            found.last().map(|u| {
                user_cursor_of(&UserKey {
                    destination: u.destination.clone(),
                    audience_key: u.audience_key.clone(),
                    identity: u.identity.clone(),
                })
            })
        })
        .flatten();
    // Only configured destinations (a store may hold a removed one's rows).
    found.retain(|u| state.by_name.contains_key(&u.destination));
    Ok(UserLookup {
        email: params.email.clone(),
        user_id: params.user_id.clone(),
        audiences: found.into_iter().map(user_audience).collect(),
        next_after,
    })
}

/// An event as the admin API shows it.
pub fn event_view(r: &EventRecord) -> EventView {
    EventView {
        destination: r.destination.clone(),
        message_id: r.message_id.clone(),
        seq: r.seq,
        received_ms: r.received_ms,
        audiences: r
            .audiences
            .iter()
            .map(|a| AudienceStatusView {
                audience: a.audience_key.clone(),
                email: a.identity.email.clone(),
                user_id: a.identity.user_id.clone(),
                member: a.member,
                event_time_ms: a.time_ms,
                status: a.status.as_str().to_string(),
                reason: a.reason.clone(),
                attempts: a.attempts,
                next_attempt_ms: a.next_attempt_ms,
                updated_ms: a.updated_ms,
            })
            .collect(),
        more_audiences: r.more_audiences,
        ignored_settings: r
            .ignored_settings
            .iter()
            .map(|s| IgnoredSettingView {
                setting: s.setting.as_str().to_string(),
                value: s.value.clone(),
                reason: s.reason.clone(),
            })
            .collect(),
    }
}

/// `GET /v1/admin/events/{messageId}[?destination=]`: the event in every destination that
/// has it (or the named one), by its messageId.
pub async fn event(
    state: &AppState,
    message_id: &str,
    params: &EventParams,
) -> Result<EventLookup, AdminError> {
    if message_id.is_empty() || message_id.len() > MAX_ID_BYTES {
        return Err(AdminError::bad(
            "messageId",
            format!("must be 1 to {MAX_ID_BYTES} bytes"),
        ));
    }
    let names: Vec<&str> = match &params.destination {
        Some(d) => vec![runtime(state, d)?.1.config.name.as_str()],
        None => state
            .destinations
            .iter()
            .map(|d| d.config.name.as_str())
            .collect(),
    };
    let mut events = Vec::new();
    for n in names {
        if let Some(r) = state.store.event_status(n, message_id).await? {
            events.push(event_view(&r));
        }
    }
    if events.is_empty() {
        return Err(AdminError::UnknownEvent(message_id.to_string()));
    }
    Ok(EventLookup { events })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_bad_ones_name_the_field() {
        for id in [
            Identity::new(Some("a.b@x.co"), None),
            Identity::new(None, Some("u/1.2")),
            Identity::new(Some("j@x.co"), Some("ü")),
        ] {
            assert_eq!(parse_cursor("after", &cursor_of(&id)), Ok(id));
        }
        let k = UserKey {
            destination: "prod".into(),
            audience_key: "a.b/c".into(),
            identity: Identity::new(Some("j@x.co"), Some("u.1")),
        };
        assert_eq!(parse_user_cursor("after", &user_cursor_of(&k)), Ok(k));
        assert!(parse_user_cursor("after", "cHJvZA").is_err());
        for bad in ["", "abc", "!!.x", "_w.x"] {
            let e = parse_cursor("after", bad).expect_err(bad);
            assert_eq!(e.body().field.as_deref(), Some("after"), "{bad}");
        }
    }
}
