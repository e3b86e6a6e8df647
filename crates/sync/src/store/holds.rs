//! The mass-removal guard's state: when the exits of one audience within a window exceed a
//! share of its members, its removals are *held* (parked in the store, still pending) while
//! its entries go on, until an operator releases or discards them.
//!
//! The decision reads only the store, so that every instance sharing it decides alike and a
//! hold survives restarts: the audience's acknowledged members, its pending exits of
//! acknowledged members, and the exits sent within the window (a ledger the guard keeps per
//! minute). [`RemovalFigures::trips`] is the rule; the engines apply it in one transaction
//! ([`crate::Engine::guard_removals`]).
//!
//! Exits are judged once: the guard keeps a mark (the highest seq it counted or an operator
//! approved), and exits at or below it are neither counted again nor parked. So an exit in
//! flight is not counted twice, a released removal goes out, and a retried one is not held
//! after the fact. The cost: on PostgreSQL, an exit whose ingestion transaction commits after
//! the guard counted a later one (concurrent requests) passes unjudged; that is at most the
//! exits of the requests being committed at that moment.

use std::fmt;

/// The value a parked removal's `next_attempt_ms` holds: never due, until released.
pub const HELD_MS: i64 = i64::MAX;

/// The reason a parked removal's event shows while it is held.
pub const HELD_REASON: &str = "held by the mass-removal guard: `iterable-lists audience hold \
     show` says why; `... hold release` sends it, `... hold discard` keeps the user on the list";

/// How the guard judges one audience.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RemovalPolicy {
    /// The largest share of the audience's members that may be removed within `window_ms`
    /// (0..=1); 1 turns the guard off.
    pub max_ratio: f64,
    /// The window over which sent removals count (ms).
    pub window_ms: i64,
    /// Audiences smaller than this (members at the window's start) are never held.
    pub min_members: u64,
}

impl RemovalPolicy {
    /// The bucket of the window's ledger: a sixtieth of the window, at least a second.
    pub fn bucket_ms(&self) -> i64 {
        (self.window_ms / 60).max(1000)
    }

    /// The start of the bucket `now_ms` falls in.
    pub fn bucket_of(&self, now_ms: i64) -> i64 {
        now_ms - now_ms.rem_euclid(self.bucket_ms())
    }

    /// Buckets that started at or before this moment are out of the window at `now_ms`.
    pub fn expired_before(&self, now_ms: i64) -> i64 {
        now_ms
            .saturating_sub(self.window_ms)
            .saturating_sub(self.bucket_ms())
    }
}

/// The numbers the guard decides on, as the store holds them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RemovalFigures {
    /// Acknowledged members now (those with a pending exit included).
    pub members: u64,
    /// Pending exits of acknowledged members that the guard has not approved yet.
    pub pending_removals: u64,
    /// Exits sent within the window (counted by the guard as it let them through).
    pub removed_in_window: u64,
}

impl RemovalFigures {
    /// The audience's size at the window's start, about: its members now plus those removed
    /// within the window.
    pub fn base(&self) -> u64 {
        self.members.saturating_add(self.removed_in_window)
    }

    /// The removals the window would see: sent ones and pending ones.
    pub fn removals(&self) -> u64 {
        self.removed_in_window.saturating_add(self.pending_removals)
    }

    /// Whether these removals exceed the policy's share: the audience counts at least
    /// `min_members` and its removals within the window (sent and pending) are more than
    /// `max_ratio` of it. A ratio of 1 or more never trips.
    pub fn trips(&self, p: &RemovalPolicy) -> bool {
        let base = self.base();
        if p.max_ratio >= 1.0 || base == 0 || base < p.min_members {
            return false;
        }
        self.removals() as f64 > p.max_ratio * base as f64
    }
}

/// A held audience, as status shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct RemovalHold {
    pub audience_key: String,
    /// When the guard tripped (epoch ms).
    pub since_ms: i64,
    /// The numbers that tripped it.
    pub tripped: RemovalFigures,
    /// The ratio in force when it tripped.
    pub max_ratio: f64,
    /// Removals parked now (pending, not sent) until an operator decides.
    pub held: u64,
}

impl RemovalHold {
    /// What tripped the guard, in words.
    pub fn describe(&self) -> String {
        let t = &self.tripped;
        format!(
            "{} removals ({} pending, {} sent within the window) of {} members exceed \
             max_removal_ratio {}",
            t.removals(),
            t.pending_removals,
            t.removed_in_window,
            t.base(),
            self.max_ratio
        )
    }
}

/// What [`crate::Engine::guard_removals`] decided for an audience's exits.
#[derive(Debug, Clone, PartialEq)]
pub enum GuardVerdict {
    /// Send them (they were counted in the window).
    Allowed,
    /// The audience's removals are held: the exits given past `approved_seq` were parked.
    Held {
        hold: RemovalHold,
        /// This call tripped the guard (else the hold was already stored).
        tripped_now: bool,
        /// Exits up to this seq were counted or approved before the hold: they are not
        /// parked, and may be sent.
        approved_seq: u64,
    },
}

/// What an operator does with an audience's held removals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldAction {
    /// Send them: the parked removals become due now, and the guard lets them through.
    Release,
    /// Do not send them: each parked removal is settled as superseded (its event says it was
    /// discarded by the operator) and its key's desired state becomes the acknowledged
    /// membership again, so the user stays on the list and nothing is pending.
    Discard,
}

impl HoldAction {
    pub fn word(self) -> &'static str {
        match self {
            HoldAction::Release => "release",
            HoldAction::Discard => "discard",
        }
    }

    pub fn past(self) -> &'static str {
        match self {
            HoldAction::Release => "released",
            HoldAction::Discard => "discarded",
        }
    }

    /// The reason a discarded removal's event and key carry.
    pub fn discard_reason(actor: &str) -> String {
        format!(
            "removal discarded by the operator ({actor}) after the mass-removal guard held it; \
             the user stays on the list"
        )
    }
}

impl fmt::Display for HoldAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: RemovalPolicy = RemovalPolicy {
        max_ratio: 0.25,
        window_ms: 3_600_000,
        min_members: 100,
    };

    fn f(members: u64, pending: u64, removed: u64) -> RemovalFigures {
        RemovalFigures {
            members,
            pending_removals: pending,
            removed_in_window: removed,
        }
    }

    #[test]
    fn the_rule_in_a_table() {
        let cases = [
            // (figures, policy ratio, min, trips)
            (f(200, 200, 0), 0.25, 100, true), // everyone exits at once
            (f(200, 50, 0), 0.25, 100, false), // exactly the share: not more
            (f(200, 51, 0), 0.25, 100, true),
            (f(150, 10, 50), 0.25, 100, true), // 50 sent + 10 pending of 200 > 50
            (f(160, 0, 40), 0.25, 100, false), // 40 of 200
            (f(3, 1, 0), 0.25, 100, false),    // small audience
            (f(60, 60, 39), 0.25, 100, false), // base 99 < 100
            (f(60, 60, 40), 0.25, 100, true),  // base 100
            (f(200, 200, 0), 1.0, 100, false), // ratio 1: off
            (f(200, 1, 0), 0.0, 100, true),    // ratio 0: any removal
            (f(200, 0, 0), 0.0, 100, false),   // no removal at all
            (f(0, 0, 0), 0.0, 0, false),       // empty audience
        ];
        for (fig, ratio, min, want) in cases {
            let p = RemovalPolicy {
                max_ratio: ratio,
                min_members: min,
                ..P
            };
            assert_eq!(fig.trips(&p), want, "{fig:?} ratio {ratio} min {min}");
        }
    }

    proptest::proptest! {
        /// More pending removals never untrip the guard; ratio 1 and small audiences never
        /// trip it; removing no one never trips it.
        #[test]
        fn the_rule_is_monotone_and_bounded(
            members in 0u64..10_000,
            pending in 0u64..10_000,
            removed in 0u64..10_000,
            more in 0u64..1000,
            ratio in 0.0f64..=1.0,
            min in 0u64..500,
        ) {
            let p = RemovalPolicy { max_ratio: ratio, window_ms: 1, min_members: min };
            let pending = pending.min(members);
            let fig = f(members, pending, removed);
            let more_pending = f(members + more, pending + more, removed);
            if fig.trips(&p) {
                proptest::prop_assert!(more_pending.trips(&p));
            }
            let off = RemovalPolicy { max_ratio: 1.0, ..p };
            proptest::prop_assert!(!fig.trips(&off));
            if fig.base() < min {
                proptest::prop_assert!(!fig.trips(&p));
            }
            proptest::prop_assert!(!f(members, 0, 0).trips(&p));
        }
    }

    #[test]
    fn a_hold_says_what_tripped_it() {
        let h = RemovalHold {
            audience_key: "vip".into(),
            since_ms: 0,
            tripped: f(150, 10, 50),
            max_ratio: 0.25,
            held: 10,
        };
        assert_eq!(
            h.describe(),
            "60 removals (10 pending, 50 sent within the window) of 200 members exceed \
             max_removal_ratio 0.25"
        );
    }
}
