//! What an operator does, for the JSON admin API and the console alike: pause and resume a
//! destination, check its API key, send rejected users again, release or discard the removals
//! the mass-removal guard holds, verify (and repair) an audience against its live list.
//!
//! Every action is logged as an info event with `who` (the admin token's id, or `loopback`;
//! never a token) and `what`, before it answers.

use iterable::client::{ErrorKind, IterableError};
use iterable::errors::ErrorClass;
use sync::drift::{VerifyOptions, verify as verify_audience};
use sync::store::MAX_ADMIN_ROWS;
use sync::{HoldAction, Identity, OperatorPause, Reconciler, UserKey, UserQuery};

use super::AdminError;
use super::read::{pause_view, runtime, state_view};
use super::views::{ActionResult, KeyCheck, VerifyResult};
use crate::app::{AppState, DestinationRuntime};
use crate::figures::Figures;
use crate::holds::HoldError;

/// The longest reason of a pause taken, in characters.
pub const MAX_REASON_CHARS: usize = 500;

/// The reason of a pause given without one.
pub const DEFAULT_PAUSE_REASON: &str = "paused by an operator";

/// Which rejected users to send again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryTarget {
    /// Every rejected user of the audience.
    All,
    /// One user, by email and/or userId (the key the store has).
    Key(Identity),
}

fn reconciler(d: &DestinationRuntime) -> Result<&Reconciler, AdminError> {
    d.reconciler.as_deref().ok_or_else(|| {
        AdminError::Conflict(format!(
            "destination {:?} is disabled (enabled = false): it sends nothing",
            d.config.name
        ))
    })
}

/// The destination's state and pause as they are now: the live state of this instance (the
/// figures snapshot may be a second old) and the store's pause.
async fn result(
    state: &AppState,
    d: &DestinationRuntime,
    action: &str,
    audience: Option<&str>,
    count: Option<u64>,
    message: String,
) -> Result<ActionResult, AdminError> {
    let pause = state.store.operator_pause(&d.config.name).await?;
    let live = Figures {
        lists: Vec::new(),
        events: Default::default(),
        stored_state: None,
        holds: Vec::new(),
        operator_pause: None,
    };
    Ok(ActionResult {
        action: action.to_string(),
        destination: d.config.name.clone(),
        audience: audience.map(str::to_string),
        count,
        message,
        state: state_view(d, &live),
        operator_pause: pause.as_ref().map(pause_view),
    })
}

/// Pauses a destination for every instance: nothing new is sent until an operator resumes it
/// (requests in flight finish). A second pause keeps the first one's reason and time.
pub async fn pause(
    state: &AppState,
    who: &str,
    destination: &str,
    reason: Option<&str>,
) -> Result<ActionResult, AdminError> {
    let (_, d) = runtime(state, destination)?;
    let r = reconciler(d)?;
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    if reason.is_some_and(|r| r.chars().count() > MAX_REASON_CHARS) {
        return Err(AdminError::bad(
            "reason",
            format!("is longer than {MAX_REASON_CHARS} characters"),
        ));
    }
    let reason = reason.unwrap_or(DEFAULT_PAUSE_REASON);
    let p = OperatorPause {
        actor: who.to_string(),
        reason: reason.to_string(),
        since_ms: state.now_ms(),
    };
    let changed = state
        .store
        .set_operator_pause(destination, Some(&p))
        .await?;
    r.set_operator_paused(true);
    tracing::info!(
        who,
        what = "pause",
        destination,
        reason,
        changed,
        "admin action"
    );
    let message = if changed {
        format!("destination {destination:?} paused: nothing new is sent until it is resumed")
    } else {
        format!("destination {destination:?} was paused already")
    };
    result(state, d, "pause", None, None, message).await
}

/// Ends an operator's pause (for every instance) and, when Iterable had refused the key (a
/// 401 pause), checks the key now: the destination resumes if it works.
pub async fn resume(
    state: &AppState,
    who: &str,
    destination: &str,
) -> Result<ActionResult, AdminError> {
    let (_, d) = runtime(state, destination)?;
    let r = reconciler(d)?;
    let ended = state.store.set_operator_pause(destination, None).await?;
    r.set_operator_paused(false);
    let mut message = if ended {
        format!("destination {destination:?} resumed by an operator")
    } else {
        format!("destination {destination:?} had no operator's pause")
    };
    let key_paused = r.state().is_paused();
    if key_paused {
        match r.check_key().await {
            Ok(_) => message.push_str("; the API key works again, deliveries resume"),
            Err(e) => message.push_str(&format!(
                "; it stays paused: Iterable still refuses the API key ({e})"
            )),
        }
    }
    tracing::info!(
        who,
        what = "resume",
        destination,
        ended,
        key_checked = key_paused,
        "admin action"
    );
    result(state, d, "resume", None, None, message).await
}

/// What to fix when a key check failed.
fn key_advice(e: &IterableError, base_url: &str) -> String {
    if e.class == ErrorClass::Authentication {
        format!(
            "the API key was refused by {base_url} ({e}). Check that it is a server-side key of \
             this project, and that the project lives in this data center: an EU project needs \
             region = \"eu\" (keys work only in their own region)"
        )
    } else if matches!(
        e.kind,
        ErrorKind::Connect | ErrorKind::Timeout | ErrorKind::Transport
    ) {
        format!("cannot reach {base_url} ({e}): check the base URL or region and the network")
    } else {
        e.to_string()
    }
}

/// Checks the destination's API key now (`GET /api/lists`, as `iterable-lists check` and the
/// probe of a paused destination do); a destination paused by a refused key resumes when it
/// works.
pub async fn check_key(
    state: &AppState,
    who: &str,
    destination: &str,
) -> Result<KeyCheck, AdminError> {
    let (_, d) = runtime(state, destination)?;
    let r = reconciler(d)?;
    let base_url = crate::logs::redact_url(&d.config.base_url);
    let check = match r.check_key().await {
        Ok(lists) => {
            let statics = lists.iter().filter(|l| l.is_standard()).count() as u64;
            KeyCheck {
                destination: destination.to_string(),
                ok: true,
                lists: Some(lists.len() as u64),
                static_lists: Some(statics),
                message: format!(
                    "{base_url} answered; the key works and reaches {} lists ({statics} of them \
                     static)",
                    lists.len()
                ),
            }
        }
        Err(e) => KeyCheck {
            destination: destination.to_string(),
            ok: false,
            lists: None,
            static_lists: None,
            message: key_advice(&e, &base_url),
        },
    };
    tracing::info!(
        who,
        what = "check-key",
        destination,
        ok = check.ok,
        "admin action"
    );
    Ok(check)
}

/// Sends rejected users of an audience again (after their cause was fixed in Iterable): each
/// becomes pending, due now; the destination looks for work at once.
pub async fn retry_rejected(
    state: &AppState,
    who: &str,
    destination: &str,
    audience: &str,
    target: &RetryTarget,
) -> Result<ActionResult, AdminError> {
    let (_, d) = runtime(state, destination)?;
    reconciler(d)?;
    let keys = match target {
        RetryTarget::All => None,
        RetryTarget::Key(id) => Some(rejected_keys_of(state, destination, audience, id).await?),
    };
    let n = state
        .store
        .retry_rejected(destination, audience, keys.as_deref(), state.now_ms())
        .await?;
    d.waker.notify_one();
    let whom = match target {
        RetryTarget::All => "all".to_string(),
        RetryTarget::Key(id) => describe(id),
    };
    tracing::info!(
        who,
        what = "retry-rejected",
        destination,
        audience,
        users = %whom,
        retried = n,
        "admin action"
    );
    let message = if n == 0 {
        "no rejected user matched: nothing to send again".to_string()
    } else {
        format!("{n} rejected user(s) are sent again")
    };
    result(
        state,
        d,
        "retry-rejected",
        Some(audience),
        Some(n as u64),
        message,
    )
    .await
}

/// The audience's rejected keys of a user given by email, userId or both (a key of a hybrid
/// project holds both; the user may have given one), through the store's index of users.
async fn rejected_keys_of(
    state: &AppState,
    destination: &str,
    audience: &str,
    id: &Identity,
) -> Result<Vec<Identity>, AdminError> {
    let query = match (&id.email, &id.user_id) {
        (Some(e), _) => UserQuery::Email(e.clone()),
        (None, Some(u)) => UserQuery::UserId(u.clone()),
        (None, None) => return Err(AdminError::bad("email", "give email or userId, or all")),
    };
    // Page through the user's keys (bounded by the audiences the user is in).
    let mut keys = Vec::new();
    let mut after: Option<UserKey> = None;
    loop {
        let page = state
            .store
            .user_states(&query, after.as_ref(), MAX_ADMIN_ROWS)
            .await?;
        let last = page.len() < MAX_ADMIN_ROWS;
        after = page.last().map(|u| UserKey {
            destination: u.destination.clone(),
            audience_key: u.audience_key.clone(),
            identity: u.identity.clone(),
        });
        keys.extend(
            page.into_iter()
                .filter(|u| {
                    u.destination == destination
                        && u.audience_key == audience
                        && u.state == "rejected"
                        && (id.user_id.is_none() || u.identity.user_id == id.user_id)
                })
                .map(|u| u.identity),
        );
        if last {
            return Ok(keys);
        }
    }
}

fn describe(id: &Identity) -> String {
    match (&id.email, &id.user_id) {
        (Some(e), Some(u)) => format!("{e} / {u}"),
        (Some(e), None) => e.clone(),
        (None, Some(u)) => u.clone(),
        (None, None) => "-".into(),
    }
}

/// Releases (sends) or discards (keeps the users on the list) the removals the mass-removal
/// guard holds for an audience.
pub async fn resolve_hold(
    state: &AppState,
    who: &str,
    destination: &str,
    audience: &str,
    action: HoldAction,
) -> Result<ActionResult, AdminError> {
    let (_, d) = runtime(state, destination)?;
    let actor = format!("an operator ({who})");
    let n = crate::holds::resolve(
        &state.store,
        destination,
        audience,
        action,
        &actor,
        state.now_ms(),
    )
    .await
    .map_err(|e| match e {
        e @ HoldError::NotHeld { .. } => AdminError::Conflict(e.to_string()),
        e => AdminError::Store(e.to_string()),
    })?;
    d.waker.notify_one();
    let what = match action {
        HoldAction::Release => "release-hold",
        HoldAction::Discard => "discard-hold",
    };
    tracing::info!(
        who,
        what,
        destination,
        audience,
        removals = n,
        "admin action"
    );
    let message = format!(
        "{n} held removal(s) {}",
        match action {
            HoldAction::Release => "released: they are sent now",
            HoldAction::Discard => "discarded: the users stay on the list",
        }
    );
    result(state, d, what, Some(audience), Some(n), message).await
}

/// Reads the audience's live list from Iterable and compares it with what the store says
/// Iterable acknowledged (`sync::drift`, as `iterable-lists audience verify`); with `repair`,
/// stores the corrections, which the service then sends. One verify at a time per instance.
pub async fn verify(
    state: &AppState,
    who: &str,
    destination: &str,
    audience: &str,
    repair: bool,
) -> Result<VerifyResult, AdminError> {
    let (_, d) = runtime(state, destination)?;
    let r = reconciler(d)?;
    let Ok(_one) = state.verifies.try_acquire() else {
        return Err(AdminError::Conflict(
            "a verify is running on this instance; try again when it has finished".into(),
        ));
    };
    tracing::info!(
        who,
        what = "verify",
        destination,
        audience,
        repair,
        "admin action"
    );
    let opts = VerifyOptions {
        destination: destination.to_string(),
        audience: audience.to_string(),
        project_type: d.config.project_type,
        repair,
        now_ms: state.now_ms(),
    };
    let report = verify_audience(&state.store, r.client(), &opts, &mut |_| {})
        .await
        .map_err(|e| match e {
            sync::drift::VerifyError::NoList { .. } => AdminError::UnknownAudience {
                destination: destination.to_string(),
                audience: audience.to_string(),
            },
            sync::drift::VerifyError::Iterable(e) => AdminError::Iterable(e.to_string()),
            e => AdminError::Store(e.to_string()),
        })?;
    d.metrics.drift_verified(
        audience,
        report.counts.missing,
        report.counts.extra,
        state.now_ms(),
    );
    if repair && (report.reopened > 0 || report.unsubscribes > 0) {
        d.waker.notify_one();
    }
    tracing::info!(
        who,
        what = "verify",
        destination,
        audience,
        missing = report.counts.missing,
        extra = report.counts.extra,
        reopened = report.reopened,
        unsubscribes = report.unsubscribes,
        "admin action finished"
    );
    Ok(VerifyResult {
        destination: destination.to_string(),
        audience: audience.to_string(),
        list_id: report.list_id,
        in_sync: report.in_sync(),
        missing: report.counts.missing,
        extra: report.counts.extra,
        missing_samples: report.missing_samples,
        extra_samples: report.extra_samples,
        repaired: repair,
        reopened: report.reopened,
        unsubscribes: report.unsubscribes,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing::field::{Field, Visit};
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::{Context, SubscriberExt};

    use super::*;
    use crate::{Config, RunningService};

    /// The info events with a `what` field, as (who, what, destination).
    #[derive(Clone, Default)]
    struct Actions(Arc<Mutex<Vec<(String, String, String)>>>);

    #[derive(Default)]
    struct Fields(Vec<(String, String)>);

    impl Visit for Fields {
        fn record_str(&mut self, f: &Field, v: &str) {
            self.0.push((f.name().into(), v.into()));
        }
        fn record_debug(&mut self, f: &Field, v: &dyn std::fmt::Debug) {
            self.0.push((f.name().into(), format!("{v:?}")));
        }
    }

    impl<S: tracing::Subscriber> Layer<S> for Actions {
        fn on_event(&self, e: &tracing::Event<'_>, _: Context<'_, S>) {
            let mut f = Fields::default();
            e.record(&mut f);
            let get = |n: &str| {
                f.0.iter()
                    .find(|(k, _)| k == n)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            if *e.metadata().level() == tracing::Level::INFO && !get("what").is_empty() {
                self.0
                    .lock()
                    .expect("lock")
                    .push((get("who"), get("what"), get("destination")));
            }
        }
    }

    #[tokio::test]
    async fn every_action_is_logged_with_who_and_what() {
        let actions = Actions::default();
        let _guard =
            tracing::subscriber::set_default(tracing_subscriber::registry().with(actions.clone()));
        let cfg = Config::parse(
            "listen = \"127.0.0.1:0\"\n[storage]\nurl = \"sqlite::memory:\"\n\
             [[destination]]\nname = \"prod\"\n\
             api_key = \"0123456789abcdef0123456789abcdef\"\n\
             base_url = \"http://127.0.0.1:9\"\nwrite_keys = [\"wk_test\"]\n",
            &|_| None,
        )
        .expect("config");
        let svc = RunningService::start(cfg).await.expect("service");
        let state = svc.state();
        let who = crate::admin::token_id("the-admin-token");
        assert_eq!(who.len(), 8);
        assert!(!who.contains("admin"));
        let r = pause(state, &who, "prod", Some("  ")).await.expect("pause");
        assert_eq!(
            r.operator_pause.as_ref().map(|p| p.reason.as_str()),
            Some(DEFAULT_PAUSE_REASON)
        );
        resume(state, "loopback", "prod").await.expect("resume");
        let e = retry_rejected(state, &who, "prod", "vip", &RetryTarget::All)
            .await
            .expect("retry");
        assert_eq!(e.count, Some(0));
        let long = "x".repeat(MAX_REASON_CHARS + 1);
        let e = pause(state, &who, "prod", Some(&long))
            .await
            .expect_err("too long");
        assert_eq!(e.body().field.as_deref(), Some("reason"));
        assert_eq!(
            pause(state, &who, "nope", None).await.expect_err("unknown"),
            AdminError::UnknownDestination("nope".into())
        );
        let logged = actions.0.lock().expect("lock").clone();
        assert_eq!(
            logged,
            [
                (who.clone(), "pause".into(), "prod".into()),
                ("loopback".into(), "resume".into(), "prod".into()),
                (who, "retry-rejected".into(), "prod".into()),
            ]
        );
    }
}
