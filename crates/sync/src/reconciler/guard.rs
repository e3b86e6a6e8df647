//! The mass-removal guard before an audience's exits are sent (see `crate::store::holds`):
//! the store decides, from what it holds, whether the audience's removals are held; held
//! exits are parked there (pending, never due) and left out of the plan, while its entries go
//! on. A new hold is logged at warn with what tripped it and the commands that end it; a hold
//! another instance (or an earlier run) stored is logged once per process.

use std::collections::HashMap;
use std::time::Duration;

use super::ReconcileError;
use super::dispatcher::Dispatcher;
use super::shared::lock;
use crate::store::{GuardVerdict, Identity, PendingRow, RemovalHold, RemovalPolicy, Seq};

/// How the guard judges a destination's audiences.
#[derive(Debug, Clone, PartialEq)]
pub struct RemovalGuard {
    /// `max_removal_ratio` of the destination: the largest share of an audience's members
    /// removed within `window` without an operator (0..=1; 1 turns the guard off).
    pub max_ratio: f64,
    /// Per-audience overrides of `max_ratio`.
    pub per_audience: HashMap<String, f64>,
    /// `removal_window`: the window over which removals count.
    pub window: Duration,
    /// `removal_guard_min_members`: smaller audiences are never held.
    pub min_members: u64,
}

impl RemovalGuard {
    /// The defaults: 25% of the members within an hour, audiences of 100 members or more.
    pub const DEFAULT_RATIO: f64 = 0.25;
    pub const DEFAULT_WINDOW: Duration = Duration::from_secs(3600);
    pub const DEFAULT_MIN_MEMBERS: u64 = 100;

    /// The policy of one audience.
    pub fn policy(&self, audience: &str) -> RemovalPolicy {
        RemovalPolicy {
            max_ratio: self
                .per_audience
                .get(audience)
                .copied()
                .unwrap_or(self.max_ratio),
            window_ms: i64::try_from(self.window.as_millis()).unwrap_or(i64::MAX),
            min_members: self.min_members,
        }
    }
}

impl Default for RemovalGuard {
    fn default() -> Self {
        Self {
            max_ratio: Self::DEFAULT_RATIO,
            per_audience: HashMap::new(),
            window: Self::DEFAULT_WINDOW,
            min_members: Self::DEFAULT_MIN_MEMBERS,
        }
    }
}

/// The commands that end a hold, for log lines.
pub fn hold_commands(destination: &str, audience: &str) -> String {
    format!(
        "iterable-lists audience hold release --destination {destination} --audience {audience} \
         (sends them) or `... hold discard ...` (keeps the users on the list); or POST \
         /v1/holds/release or /v1/holds/discard?destination={destination}&audience={audience}"
    )
}

impl Dispatcher {
    /// Asks the store's guard about the exits among `rows` (when the guard is on for the
    /// audience). Returns the seq up to which exits may still be sent when the audience is
    /// held (the later ones were parked), or `None` when they may all be sent.
    pub async fn guard_exits(
        &mut self,
        audience: &str,
        rows: &[PendingRow],
    ) -> Result<Option<Seq>, ReconcileError> {
        let inner = self.inner.clone();
        let Some(guard) = &inner.cfg.removal_guard else {
            return Ok(None);
        };
        let policy = guard.policy(audience);
        if policy.max_ratio >= 1.0 {
            return Ok(None);
        }
        let exits: Vec<(Identity, Seq)> = rows
            .iter()
            .filter(|r| !r.member)
            .map(|r| (r.identity.clone(), r.version.seq))
            .collect();
        if exits.is_empty() {
            return Ok(None);
        }
        let d = &inner.cfg.destination;
        let verdict = inner
            .store
            .guard_removals(d, audience, &exits, policy, self.now())
            .await?;
        match verdict {
            GuardVerdict::Allowed => Ok(None),
            GuardVerdict::Held {
                hold,
                tripped_now,
                approved_seq,
            } => {
                let first =
                    lock(&inner.announced_holds).insert((audience.to_string(), hold.since_ms));
                if tripped_now || first {
                    announce(d, &hold, &policy, tripped_now);
                }
                Ok(Some(approved_seq))
            }
        }
    }
}

/// The warn line of a hold: what tripped it, and what ends it.
fn announce(destination: &str, hold: &RemovalHold, policy: &RemovalPolicy, tripped_now: bool) {
    let audience = &hold.audience_key;
    let t = &hold.tripped;
    let window_s = policy.window_ms / 1000;
    tracing::warn!(
        destination = %destination,
        audience = %audience,
        since_ms = hold.since_ms,
        members = t.members,
        pending_removals = t.pending_removals,
        removed_in_window = t.removed_in_window,
        max_removal_ratio = hold.max_ratio,
        held = hold.held,
        "mass-removal guard: removals of audience {audience:?} are held{}: {} (window {window_s} s); \
         entries still flow; {} removal(s) wait. End it with {}",
        if tripped_now { "" } else { " (held earlier)" },
        hold.describe(),
        hold.held,
        hold_commands(destination, audience)
    );
}
