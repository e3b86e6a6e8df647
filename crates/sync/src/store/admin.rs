//! What the operator console and the admin API read and change beyond the figures: the
//! rejected keys of an audience (keyset-paged, filtered), the state of one user in every
//! audience with the events that set it, rejected keys sent again, and the operator's pause
//! of a destination (kept in the store, so every instance sees it).

use super::rows::{Identity, Seq};

/// One rejected key of an audience, with Iterable's reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedKey {
    pub identity: Identity,
    /// Whether the rejected change was an entry (`true`) or an exit.
    pub member: bool,
    /// Iterable's reason (e.g. `invalidEmails`).
    pub reason: Option<String>,
    /// The event of the rejected change.
    pub seq: Seq,
    /// When the event was accepted (epoch ms).
    pub accepted_ms: i64,
    /// When the rejection was recorded (epoch ms); `None` once the event's log row is pruned.
    pub rejected_ms: Option<i64>,
}

/// Whom [`super::Engine::user_states`] looks up: an exact email or userId.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserQuery {
    Email(String),
    UserId(String),
}

/// Where a page of [`super::Engine::user_states`] starts: after this key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserKey {
    pub destination: String,
    pub audience_key: String,
    pub identity: Identity,
}

/// The event behind a version of a key, as far as the log still has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionEvent {
    pub seq: Seq,
    /// The event's time (its `timestamp`), epoch ms.
    pub time_ms: Option<i64>,
    /// `None` once retention pruned the event.
    pub message_id: Option<String>,
    /// When the service received it (epoch ms); `None` once pruned.
    pub received_ms: Option<i64>,
}

/// One key of one audience of one destination that matched a [`UserQuery`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserState {
    pub destination: String,
    pub audience_key: String,
    pub list_id: Option<i64>,
    pub identity: Identity,
    /// The desired membership and the event that set it.
    pub member: bool,
    pub desired: VersionEvent,
    /// `pending`, `delivered`, `rejected` or `superseded`.
    pub state: String,
    pub reason: Option<String>,
    pub attempts: u32,
    /// When a pending key is due next (epoch ms).
    pub next_attempt_ms: Option<i64>,
    /// What Iterable acknowledged, and the event of that version; `None` when nothing was.
    pub ack_member: Option<bool>,
    pub acknowledged: Option<VersionEvent>,
    /// When Iterable last answered for the key (epoch ms).
    pub ack_ms: Option<i64>,
}

/// An operator's pause of a destination: nothing is sent while it lasts, whatever Iterable
/// says, until an operator resumes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorPause {
    /// Who paused it (a token id, never a token).
    pub actor: String,
    pub reason: String,
    /// Since when (epoch ms).
    pub since_ms: i64,
}

/// At most so many rows a page of rejected keys or a user lookup returns.
pub const MAX_ADMIN_ROWS: usize = 1000;

/// The reason a retried key's desired row and event show until its next outcome.
pub const RETRIED_REASON: &str = "rejected; sent again by an operator";
