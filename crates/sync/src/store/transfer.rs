//! Moving a whole store from one engine to another (`iterable-lists store copy`): the rows as
//! every engine exports and imports them, and [`Export`], a consistent read-only view of a
//! store read in batches.
//!
//! The rows carry the state exactly as it is stored: versions, arrival sequences, statuses,
//! attempts, reasons and times, so that a service started on the copy carries on where the
//! original stopped (the same keys pending with the same next attempt, the same acknowledged
//! versions, the same answers from `events show`). What an engine derives from these rows
//! (the figures per audience, the next arrival sequence) is rebuilt by
//! [`super::Engine::finish_import`]; what only matters to running instances (leases, rate
//! budgets) is not copied.

use destination::IgnoredSetting;

use super::engine::StoreFuture;
use super::rows::{ChangeSettings, Identity, Seq, StatusKind, Version};
use super::state::DestinationState;

/// One entry of the list registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListEntry {
    pub destination: String,
    pub audience_key: String,
    pub list_id: i64,
}

/// A destination's stored state, with when it was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredState {
    pub destination: String,
    pub state: DestinationState,
    pub updated_ms: i64,
}

/// Where the desired version of a key stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyState {
    /// Still to be sent (due at its next attempt).
    Pending,
    /// Iterable acknowledged it.
    Delivered,
    /// Iterable refused it for good.
    Rejected,
    /// Nothing will be sent for it (another row of the same person won).
    Superseded,
}

impl KeyState {
    pub const ALL: [KeyState; 4] = [
        KeyState::Pending,
        KeyState::Delivered,
        KeyState::Rejected,
        KeyState::Superseded,
    ];

    /// The word the engines store.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Pending => "pending",
            KeyState::Delivered => "delivered",
            KeyState::Rejected => "rejected",
            KeyState::Superseded => "superseded",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// The version of a key that Iterable confirmed last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acknowledged {
    pub member: bool,
    pub version: Version,
    /// When it was confirmed (epoch ms).
    pub at_ms: i64,
}

/// The desired and acknowledged state of one (destination, audience, identity).
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredEntry {
    pub destination: String,
    pub audience_key: String,
    pub identity: Identity,
    /// The list id the event named, if any.
    pub list_id: Option<i64>,
    pub member: bool,
    /// The desired version (event time, arrival sequence of its event).
    pub version: Version,
    /// Which change of its event it is.
    pub part: u32,
    /// When its event was received.
    pub accepted_ms: i64,
    /// The change's data fields as JSON text, as stored.
    pub data_fields: Option<String>,
    pub settings: ChangeSettings,
    pub state: KeyState,
    pub reason: Option<String>,
    /// Failed attempts at this version (what schedules the next one).
    pub attempts: u32,
    /// Failed calls to Iterable for this version, each try of the client counted.
    pub tries: u32,
    /// When the next attempt is due (epoch ms).
    pub next_attempt_ms: i64,
    pub acknowledged: Option<Acknowledged>,
}

/// One change of a logged event, with its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedChange {
    /// Which change of the event it is (0 for the one row of an event that named no audience).
    pub part: u32,
    /// Empty for an event rejected or skipped before it named an audience.
    pub audience_key: String,
    pub identity: Identity,
    pub member: Option<bool>,
    pub time_ms: Option<i64>,
    pub status: StatusKind,
    pub reason: Option<String>,
    pub next_attempt_ms: Option<i64>,
    pub updated_ms: i64,
}

/// One event of the log with everything logged with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedEvent {
    pub seq: Seq,
    pub destination: String,
    pub message_id: String,
    pub received_ms: i64,
    pub changes: Vec<LoggedChange>,
    pub ignored_settings: Vec<IgnoredSetting>,
}

/// The events of a batch with their changes and ignored settings, from three reads in seq
/// order (engines read the log's tables separately): each change and setting goes to the
/// event of its seq; one of a seq without an event (none should exist) is passed over.
pub(crate) fn assemble_events(
    events: Vec<LoggedEvent>,
    changes: Vec<(Seq, LoggedChange)>,
    ignored: Vec<(Seq, IgnoredSetting)>,
) -> Vec<LoggedEvent> {
    let mut changes = changes.into_iter().peekable();
    let mut ignored = ignored.into_iter().peekable();
    events
        .into_iter()
        .map(|mut event| {
            let seq = event.seq;
            while let Some((s, c)) = changes.next_if(|(s, _)| *s <= seq) {
                if s == seq {
                    event.changes.push(c);
                }
            }
            while let Some((s, i)) = ignored.next_if(|(s, _)| *s <= seq) {
                if s == seq {
                    event.ignored_settings.push(i);
                }
            }
            event
        })
        .collect()
}

/// A batch of rows of one table, as [`Export::next_batch`] reads them and
/// [`super::Engine::import`] writes them.
#[derive(Debug, Clone, PartialEq)]
pub enum CopyBatch {
    Lists(Vec<ListEntry>),
    DestinationStates(Vec<StoredState>),
    Desired(Vec<DesiredEntry>),
    Events(Vec<LoggedEvent>),
}

impl CopyBatch {
    /// Rows of the batch: an event counts once, with its changes and ignored settings.
    pub fn len(&self) -> usize {
        match self {
            CopyBatch::Lists(v) => v.len(),
            CopyBatch::DestinationStates(v) => v.len(),
            CopyBatch::Desired(v) => v.len(),
            CopyBatch::Events(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What the batch holds, as [`TableCounts`] counts it.
    pub fn counts(&self) -> TableCounts {
        let mut c = TableCounts::default();
        match self {
            CopyBatch::Lists(v) => c.lists = v.len() as u64,
            CopyBatch::DestinationStates(v) => c.destination_states = v.len() as u64,
            CopyBatch::Desired(v) => c.desired = v.len() as u64,
            CopyBatch::Events(v) => {
                c.events = v.len() as u64;
                c.event_changes = v.iter().map(|e| e.changes.len() as u64).sum();
                c.ignored_settings = v.iter().map(|e| e.ignored_settings.len() as u64).sum();
            }
        }
        c
    }
}

/// Rows per table of what a store copy moves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableCounts {
    /// List registry entries.
    pub lists: u64,
    /// Destinations with a stored state.
    pub destination_states: u64,
    /// Keys with a desired (and acknowledged) state.
    pub desired: u64,
    /// Events of the log.
    pub events: u64,
    /// Their statuses per audience.
    pub event_changes: u64,
    /// Ignored settings logged with them.
    pub ignored_settings: u64,
}

impl TableCounts {
    /// Each table's name (as `store copy` prints it) and count.
    pub fn tables(&self) -> [(&'static str, u64); 6] {
        [
            ("lists", self.lists),
            ("destination states", self.destination_states),
            ("desired", self.desired),
            ("events", self.events),
            ("event changes", self.event_changes),
            ("ignored settings", self.ignored_settings),
        ]
    }

    /// Rows in all tables.
    pub fn total(&self) -> u64 {
        self.tables().iter().map(|(_, n)| n).sum()
    }

    /// Whether every table is empty.
    pub fn is_empty(&self) -> bool {
        self.total() == 0
    }

    /// The rows a copy moves batch by batch (an event with its changes and settings counts
    /// once): what progress counts.
    pub fn batch_rows(&self) -> u64 {
        self.lists + self.destination_states + self.desired + self.events
    }

    /// Adds `other`'s rows, table by table.
    pub fn add(&mut self, other: &TableCounts) {
        self.lists += other.lists;
        self.destination_states += other.destination_states;
        self.desired += other.desired;
        self.events += other.events;
        self.event_changes += other.event_changes;
        self.ignored_settings += other.ignored_settings;
    }
}

/// A consistent read-only view of a whole store (one snapshot: writes committed after it was
/// taken are not seen), read in batches by key so that a large store never sits in memory.
/// Dropping it ends the snapshot.
pub trait Export: Send {
    /// Rows per table in the view.
    fn counts(&mut self) -> StoreFuture<'_, TableCounts>;

    /// The next batch of at most `limit` rows (an event counts once, with its changes and
    /// ignored settings), table after table: the registry, destination states, desired state,
    /// then the event log by arrival sequence. `None` once everything was read.
    fn next_batch(&mut self, limit: usize) -> StoreFuture<'_, Option<CopyBatch>>;
}
