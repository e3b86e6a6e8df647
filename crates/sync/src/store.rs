//! The storage interface: desired and acknowledged membership per (destination, audience,
//! identity), the append-only event log with a status per event and audience, and the registry.
//!
//! Nothing here names an engine. Methods are synchronous: engines do blocking I/O, and async
//! callers run them on a blocking thread (`tokio::task::spawn_blocking`); see `crate::sqlite`
//! for why. The trait is object safe, so the server and the conformance suite hold a
//! `dyn Store`.
//!
//! Vocabulary:
//! - **seq**: the arrival sequence the store gives each new event (strictly increasing, never
//!   reused, survives restarts). A change's [`Version`] is (event time, seq).
//! - **desired**: the latest change per key by version. An older change arriving late is
//!   *stale*: it is logged as skipped and changes nothing.
//! - **acknowledged**: the last version Iterable confirmed for the key.
//! - **pending**: the desired version is neither acknowledged nor settled otherwise (rejected by
//!   Iterable, or superseded by the reconciler) and its next attempt is due.

use std::error::Error as StdError;
use std::sync::Arc;

use destination::plan::Change;
use destination::{AudienceSettings, IgnoredSetting};
use iterable::resolve::{ListRegistry, RegistryError};
use iterable::types::ListRef;
use serde_json::{Map, Value};

/// Arrival sequence number, assigned by the store.
pub type Seq = u64;

/// Which of two changes of one key wins: the later event time, then the later arrival. An event
/// without a time is older than any with one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Version {
    pub time_ms: Option<i64>,
    pub seq: Seq,
}

/// A user as the store keys it: email lowercased, userId as given; empty strings are absent.
/// Both parts are kept (and are part of the key), as Iterable may need either.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identity {
    pub email: Option<String>,
    pub user_id: Option<String>,
}

impl Identity {
    /// Normalizes: lowercases the email; drops empty parts.
    pub fn new(email: Option<&str>, user_id: Option<&str>) -> Self {
        Self {
            email: email.filter(|e| !e.is_empty()).map(str::to_lowercase),
            user_id: user_id.filter(|u| !u.is_empty()).map(str::to_string),
        }
    }

    /// Neither an email nor a userId: nothing Iterable could address.
    pub fn is_empty(&self) -> bool {
        self.email.is_none() && self.user_id.is_none()
    }
}

/// One wanted membership of one event in one audience, before the store gives it a seq.
#[derive(Debug, Clone, PartialEq)]
pub struct MembershipChange {
    pub audience_key: String,
    /// A list id the event named (`external_audience_id`), if any.
    pub list_id: Option<i64>,
    pub identity: Identity,
    pub member: bool,
    pub data_fields: Option<Map<String, Value>>,
    pub settings: AudienceSettings,
    pub time_ms: Option<i64>,
}

impl MembershipChange {
    /// From the planner's change (its `seq` is ignored: the store assigns arrival order).
    pub fn from_change(c: &Change) -> Self {
        Self {
            audience_key: c.audience_key.clone(),
            list_id: match c.list {
                ListRef::Id(id) => Some(id),
                ListRef::Audience(_) => None,
            },
            identity: Identity::new(c.email.as_deref(), c.user_id.as_deref()),
            member: c.member,
            data_fields: c.data_fields.clone(),
            settings: c.settings,
            time_ms: c.time_ms,
        }
    }
}

/// What an incoming event brings.
#[derive(Debug, Clone, PartialEq)]
pub enum EventContent {
    /// Membership changes, usually one (one per audience the event names).
    Changes(Vec<MembershipChange>),
    /// The event cannot be used (wrong types, no identity, ...): logged with the reason.
    Rejected(String),
    /// The event is not for this destination (not an audience event, ...): logged.
    Skipped(String),
}

/// One event of a batch passed to [`Store::accept`].
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub destination: String,
    pub message_id: String,
    /// When the service received it (epoch ms): the start of the end-to-end latency.
    pub received_ms: i64,
    pub content: EventContent,
    /// Audience settings the event carried that could not be used (each left unset for it),
    /// logged with the event.
    pub ignored_settings: Vec<IgnoredSetting>,
}

/// What became of one change of an accepted event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// It is now the desired state of its key.
    Current,
    /// A newer change of the key was already stored: logged as skipped.
    Stale,
    /// Not usable (no identity, or the event names the key twice): logged as rejected or
    /// skipped with the reason.
    Refused(String),
}

/// The result of one event of an [`Store::accept`] batch, in input order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Receipt {
    /// A new event, logged under `seq`; one entry per change (empty for rejected or skipped
    /// events).
    Accepted { seq: Seq, changes: Vec<Applied> },
    /// Its messageId was already seen for this destination (`seq` is the first one's):
    /// nothing was stored.
    Duplicate { seq: Seq },
}

impl Receipt {
    pub fn seq(&self) -> Seq {
        match self {
            Receipt::Accepted { seq, .. } | Receipt::Duplicate { seq } => *seq,
        }
    }
}

/// A key whose desired state still has to reach Iterable, with everything needed to plan it.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingRow {
    pub audience_key: String,
    pub list_id: Option<i64>,
    pub identity: Identity,
    pub member: bool,
    pub data_fields: Option<Map<String, Value>>,
    pub settings: AudienceSettings,
    /// The desired version; pass its `seq` back in [`OutcomeRow::seq`].
    pub version: Version,
    /// When the event that set it was received.
    pub accepted_ms: i64,
    /// Failed attempts at this version so far.
    pub attempts: u32,
    /// The last retryable error, if any.
    pub last_error: Option<String>,
}

impl PendingRow {
    /// The planner's change for this row; `list` is the event's list id, else the audience's
    /// placeholder (to be resolved through the registry).
    pub fn to_change(&self) -> Change {
        Change {
            audience_key: self.audience_key.clone(),
            list: match self.list_id {
                Some(id) => ListRef::Id(id),
                None => ListRef::for_audience(&self.audience_key),
            },
            email: self.identity.email.clone(),
            user_id: self.identity.user_id.clone(),
            member: self.member,
            data_fields: self.data_fields.clone(),
            settings: self.settings,
            time_ms: self.version.time_ms,
            seq: self.version.seq,
        }
    }
}

/// What the reconciler learnt about one row it sent (or chose not to send).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Iterable applied it: the acknowledged state becomes this version.
    Delivered,
    /// Iterable refused it for good; `reason` is Iterable's (e.g. `invalidEmails`).
    Rejected { reason: String },
    /// Try again at `next_attempt_ms` (epoch ms); `reason` says what failed.
    Retry {
        next_attempt_ms: i64,
        reason: String,
    },
    /// Nothing will be sent for this version (another row of the same person won).
    Superseded { reason: String },
}

/// One row's outcome: the key, the version that was planned, and what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutcomeRow {
    pub identity: Identity,
    /// The `version.seq` of the [`PendingRow`] that was planned.
    pub seq: Seq,
    pub outcome: Outcome,
}

/// How one outcome was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// The planned version was still the desired one: the key is settled (or rescheduled).
    Applied,
    /// A newer change arrived meanwhile: the key stays pending for it. A delivery still counts
    /// for the planned event and the acknowledged state; a retry or supersession is dropped.
    ChangedMeanwhile,
    /// No such key, or no such event for it.
    Unknown,
}

/// An event's status in one audience.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StatusKind {
    /// Stored as desired state; not sent yet.
    Accepted,
    /// Sent and failed retryably; the next attempt is scheduled.
    Pending,
    Delivered,
    /// A newer event for the same user and audience replaced it before delivery.
    Superseded,
    Rejected,
    /// Stale, or not handled by this destination.
    Skipped,
}

impl StatusKind {
    pub const ALL: [StatusKind; 6] = [
        StatusKind::Accepted,
        StatusKind::Pending,
        StatusKind::Delivered,
        StatusKind::Superseded,
        StatusKind::Rejected,
        StatusKind::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StatusKind::Accepted => "accepted",
            StatusKind::Pending => "pending",
            StatusKind::Delivered => "delivered",
            StatusKind::Superseded => "superseded",
            StatusKind::Rejected => "rejected",
            StatusKind::Skipped => "skipped",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether nothing more will happen to the event in this audience.
    pub fn is_final(self) -> bool {
        !matches!(self, StatusKind::Accepted | StatusKind::Pending)
    }
}

/// What happened to an event in one audience.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudienceStatus {
    /// Empty for an event rejected or skipped before it named an audience.
    pub audience_key: String,
    pub identity: Identity,
    /// The membership it asked for; `None` for rejected or skipped events.
    pub member: Option<bool>,
    pub time_ms: Option<i64>,
    pub status: StatusKind,
    pub reason: Option<String>,
    /// Set while `status` is `Pending`: when the next attempt is due (while the client retries
    /// a request, its next try).
    pub next_attempt_ms: Option<i64>,
    /// Failed calls to Iterable for this change so far (each try of the client counts), while it
    /// is its key's latest change; 0 otherwise.
    pub attempts: u32,
    /// When the status last changed (epoch ms).
    pub updated_ms: i64,
}

/// One event as the log holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    pub seq: Seq,
    pub destination: String,
    pub message_id: String,
    pub received_ms: i64,
    pub audiences: Vec<AudienceStatus>,
    /// Audience settings of the event that were ignored, with their values and reasons.
    pub ignored_settings: Vec<IgnoredSetting>,
}

/// Per-audience gauges of one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListCounts {
    pub audience_key: String,
    /// From the registry.
    pub list_id: Option<i64>,
    /// Keys whose acknowledged state is "member".
    pub members: u64,
    /// Keys waiting to be sent (due or not).
    pub pending: u64,
    /// Of those, keys that already failed at least once.
    pub retrying: u64,
    /// Keys whose desired version Iterable rejected.
    pub rejected: u64,
    /// When the oldest pending change was received: the queue's age.
    pub oldest_pending_ms: Option<i64>,
    pub last_delivery_ms: Option<i64>,
}

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

/// Event-log counts of one destination, per status (one per event and audience).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventCounts {
    pub accepted: u64,
    pub pending: u64,
    pub delivered: u64,
    pub superseded: u64,
    pub rejected: u64,
    pub skipped: u64,
}

impl EventCounts {
    pub fn get(&self, k: StatusKind) -> u64 {
        match k {
            StatusKind::Accepted => self.accepted,
            StatusKind::Pending => self.pending,
            StatusKind::Delivered => self.delivered,
            StatusKind::Superseded => self.superseded,
            StatusKind::Rejected => self.rejected,
            StatusKind::Skipped => self.skipped,
        }
    }

    pub fn add(&mut self, k: StatusKind, n: u64) {
        let slot = match k {
            StatusKind::Accepted => &mut self.accepted,
            StatusKind::Pending => &mut self.pending,
            StatusKind::Delivered => &mut self.delivered,
            StatusKind::Superseded => &mut self.superseded,
            StatusKind::Rejected => &mut self.rejected,
            StatusKind::Skipped => &mut self.skipped,
        };
        *slot += n;
    }
}

type Source = Box<dyn StdError + Send + Sync>;

/// A storage failure, naming the operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: cannot open {location}: {source}")]
    Open {
        location: String,
        #[source]
        source: Source,
    },
    #[error("store: {op}: {source}")]
    Engine {
        op: &'static str,
        #[source]
        source: Source,
    },
    #[error("store: {op}: unreadable stored data: {message}")]
    Corrupt { op: &'static str, message: String },
    #[error("store: {op}: {message}")]
    Invalid { op: &'static str, message: String },
    #[error(
        "store: the database has schema version {found}, newer than this program's {supported}"
    )]
    SchemaTooNew { found: i64, supported: i64 },
    /// The database opens but cannot be written (a read-only file, directory or filesystem).
    #[error(
        "store: cannot write the database {location}: {source}; the service needs to write there \
         (is the file, its directory or the filesystem read-only?)"
    )]
    Unwritable {
        location: String,
        #[source]
        source: Source,
    },
    /// The database file is damaged.
    #[error(
        "store: the database {location} is damaged ({detail}); refusing to start. Restore it from \
         a backup, or copy what is readable into a new file (`sqlite3 {location} .recover | \
         sqlite3 recovered.db`), check it, and put it in its place"
    )]
    Damaged { location: String, detail: String },
}

impl StoreError {
    pub fn engine(op: &'static str, source: impl Into<Source>) -> Self {
        StoreError::Engine {
            op,
            source: source.into(),
        }
    }
}

/// Durable state behind the sync service. Every method is one transaction.
pub trait Store: Send + Sync {
    /// Stores a batch of events in one durable transaction: when this returns `Ok`, every
    /// change and log row is on disk; on `Err`, nothing of the batch is. Duplicate messageIds
    /// (per destination, also within the batch) are ignored. One receipt per event, in order.
    fn accept(&self, batch: &[NewEvent]) -> Result<Vec<Receipt>, StoreError>;

    /// Up to `limit` keys of one audience whose desired version still has to reach Iterable
    /// and whose next attempt is due at `now_ms`, oldest arrival first.
    fn pending(
        &self,
        destination: &str,
        audience_key: &str,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<PendingRow>, StoreError>;

    /// Audiences of `destination` with at least one key due at `now_ms`.
    fn pending_audiences(&self, destination: &str, now_ms: i64) -> Result<Vec<String>, StoreError>;

    /// Records what happened to planned rows of one audience, in one transaction. One result
    /// per row, in order.
    fn record_outcomes(
        &self,
        destination: &str,
        audience_key: &str,
        now_ms: i64,
        outcomes: &[OutcomeRow],
    ) -> Result<Vec<Recorded>, StoreError>;

    /// The registry's list for an audience.
    fn list_id(&self, destination: &str, audience_key: &str) -> Result<Option<i64>, StoreError>;

    /// Registers a list for an audience unless one is registered already (first writer wins).
    /// Returns the registered id, which is `list_id` only if this call won.
    fn put_list_id(
        &self,
        destination: &str,
        audience_key: &str,
        list_id: i64,
    ) -> Result<i64, StoreError>;

    /// What happened to an event, per audience; `None` if the messageId is unknown.
    fn event_status(
        &self,
        destination: &str,
        message_id: &str,
    ) -> Result<Option<EventRecord>, StoreError>;

    /// Gauges per audience of `destination`, by audience key.
    fn list_counts(&self, destination: &str) -> Result<Vec<ListCounts>, StoreError>;

    /// Event-log counts per status of `destination`.
    fn event_counts(&self, destination: &str) -> Result<EventCounts, StoreError>;

    /// [`Store::list_counts`] and [`Store::event_counts`] counted again from every row, for
    /// checks. The two are maintained as rows change and cost nothing that grows with the data;
    /// this one reads everything.
    fn recount(&self, destination: &str) -> Result<(Vec<ListCounts>, EventCounts), StoreError>;

    /// Records one failed try of a request (or of the list lookup) that `rows` wait for, while
    /// the client tries again: each row whose desired version is still that `seq` and pending
    /// counts one more attempt, and its event shows `pending` with `reason` and the next try
    /// at `next_attempt_ms`. Returns how many rows it marked.
    fn record_attempt(
        &self,
        destination: &str,
        audience_key: &str,
        now_ms: i64,
        rows: &[(Identity, Seq)],
        reason: &str,
        next_attempt_ms: Option<i64>,
    ) -> Result<usize, StoreError>;

    /// The destination's stored state; `None` when none was ever stored.
    fn destination_state(&self, destination: &str) -> Result<Option<DestinationState>, StoreError>;

    /// Stores the destination's state.
    fn set_destination_state(
        &self,
        destination: &str,
        state: &DestinationState,
        now_ms: i64,
    ) -> Result<(), StoreError>;

    /// Why the last write failed, while no write has succeeded since (the store cannot write:
    /// a read-only or full disk, a broken file). `None` while writes succeed.
    fn write_failure(&self) -> Option<String>;

    /// A real write transaction that changes nothing, to find out whether the store can write
    /// again (it clears [`Store::write_failure`] when it succeeds).
    fn probe_write(&self) -> Result<(), StoreError>;
}

/// Makes any shared [`Store`] an [`iterable::resolve::ListRegistry`]. Each call runs on
/// tokio's blocking pool, so the resolver's async tasks never wait on disk.
#[derive(Debug)]
pub struct StoreRegistry<S: ?Sized>(pub Arc<S>);

impl<S: ?Sized> Clone for StoreRegistry<S> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

async fn blocking<S, T>(
    store: &Arc<S>,
    f: impl FnOnce(&S) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, RegistryError>
where
    S: Store + ?Sized + 'static,
    T: Send + 'static,
{
    let s = store.clone();
    tokio::task::spawn_blocking(move || f(&s))
        .await
        .map_err(|e| RegistryError(format!("the store task failed: {e}")))?
        .map_err(|e| RegistryError(e.to_string()))
}

impl<S: Store + ?Sized + 'static> ListRegistry for StoreRegistry<S> {
    async fn get(&self, destination: &str, audience: &str) -> Result<Option<i64>, RegistryError> {
        let (d, a) = (destination.to_string(), audience.to_string());
        blocking(&self.0, move |s| s.list_id(&d, &a)).await
    }

    async fn put(
        &self,
        destination: &str,
        audience: &str,
        list_id: i64,
    ) -> Result<(), RegistryError> {
        let (d, a) = (destination.to_string(), audience.to_string());
        blocking(&self.0, move |s| s.put_list_id(&d, &a, list_id).map(|_| ())).await
    }
}
