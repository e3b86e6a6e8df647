//! Whether a destination is delivering, as the reconciler sees it and the store keeps it.

/// Whether a destination is delivering, as the reconciler sees it and the store keeps it (so
/// that `iterable-lists status`, and every instance, see a pause).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DestinationState {
    /// Delivering.
    Running,
    /// Iterable refused the API key: nothing is sent until a probe succeeds.
    Paused {
        /// Iterable's answer (never the key).
        reason: String,
        /// When it paused (epoch ms).
        since_ms: i64,
    },
    /// Iterable has been unreachable (connection errors, timeouts, 5xx answers) for a while;
    /// deliveries go on being tried.
    Degraded {
        /// The last failure.
        reason: String,
        /// When the failures began (epoch ms).
        since_ms: i64,
    },
}

impl DestinationState {
    /// The words of [`DestinationState::word`], plus `disabled` (a destination configured with
    /// `enabled = false`, which has no state of its own).
    pub const WORDS: [&'static str; 4] = ["running", "paused", "degraded", "disabled"];

    /// Whether deliveries are paused.
    pub fn is_paused(&self) -> bool {
        matches!(self, DestinationState::Paused { .. })
    }

    /// Whether Iterable has been unreachable for a while.
    pub fn is_degraded(&self) -> bool {
        matches!(self, DestinationState::Degraded { .. })
    }

    /// `running`, `paused` or `degraded`.
    pub fn word(&self) -> &'static str {
        match self {
            DestinationState::Running => "running",
            DestinationState::Paused { .. } => "paused",
            DestinationState::Degraded { .. } => "degraded",
        }
    }

    /// Why it is paused or degraded.
    pub fn reason(&self) -> Option<&str> {
        match self {
            DestinationState::Running => None,
            DestinationState::Paused { reason, .. } | DestinationState::Degraded { reason, .. } => {
                Some(reason)
            }
        }
    }

    /// Since when it is paused or degraded (epoch ms).
    pub fn since_ms(&self) -> Option<i64> {
        match self {
            DestinationState::Running => None,
            DestinationState::Paused { since_ms, .. }
            | DestinationState::Degraded { since_ms, .. } => Some(*since_ms),
        }
    }

    /// `running`, or `paused: <Iterable's answer>` (and `degraded: ...`).
    pub fn describe(&self) -> String {
        match self.reason() {
            None => self.word().to_string(),
            Some(reason) => format!("{}: {reason}", self.word()),
        }
    }
}
