//! The rows the store takes and gives: events with their membership changes, receipts, the
//! pending keys the reconciler plans from, outcomes, event statuses and the figures per
//! audience. Plain data, owned by the store: nothing here names the planner or the client
//! (`crate::planned` converts to and from the planner's changes).

use serde_json::{Map, Value};

use destination::IgnoredSetting;

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

/// Audience settings of one change, as stored: they shape the request that carries it.
/// `None` means "not set": the key is left out of the request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChangeSettings {
    /// Subscribe option `updateExistingUsersOnly`.
    pub update_existing_users_only: Option<bool>,
    /// Unsubscribe option `channelUnsubscribe`.
    pub channel_unsubscribe: Option<bool>,
    /// Unsubscribe option `campaignId`.
    pub campaign_id: Option<i64>,
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
    pub settings: ChangeSettings,
    pub time_ms: Option<i64>,
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

/// One event of a batch passed to [`crate::Store::accept`].
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

/// The result of one event of an [`crate::Store::accept`] batch, in input order.
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
    pub settings: ChangeSettings,
    /// The desired version; pass its `seq` back in [`OutcomeRow::seq`].
    pub version: Version,
    /// Which change of its event set it (the event's row in this audience); pass it back in
    /// [`OutcomeRow::part`].
    pub part: u32,
    /// Where the engine keeps the key's row, when it can say (SQLite: its rowid; PostgreSQL:
    /// `None`); pass it back in [`OutcomeRow::row_id`].
    pub row_id: Option<i64>,
    /// When the event that set it was received.
    pub accepted_ms: i64,
    /// Failed attempts at this version so far.
    pub attempts: u32,
    /// The last retryable error, if any.
    pub last_error: Option<String>,
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
    /// The `part` of that [`PendingRow`]: the planned event's row is then found by (seq,
    /// part), and must be this key's. `None` when it is not known: it is then searched among
    /// the rows of its seq by key (a walk of every row of a snapshot, whose keys share one seq,
    /// when the key has changed meanwhile), and on SQLite even a key still at that version is
    /// settled the slower, general way (the key's row read first).
    pub part: Option<u32>,
    /// The `row_id` of that [`PendingRow`]: a delivery's key row is then found by it rather
    /// than by the key (on SQLite, an integer search instead of one over the key's four
    /// texts; other outcomes go by key). The key, version and part are still checked, so a
    /// stale or wrong `row_id` settles nothing by itself: the outcome is then recorded by key.
    /// `None` when it is not known.
    pub row_id: Option<i64>,
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
    /// Its status in each audience it named, in the order of its changes: the first
    /// [`EVENT_AUDIENCES_SHOWN`] only.
    pub audiences: Vec<AudienceStatus>,
    /// The event names more audiences than `audiences` holds (a snapshot names each key of
    /// its audience, millions of them: their rows are not all read).
    pub more_audiences: bool,
    /// Audience settings of the event that were ignored, with their values and reasons.
    pub ignored_settings: Vec<IgnoredSetting>,
}

/// How many of an event's audience rows [`crate::Store::event_status`] returns at most.
pub const EVENT_AUDIENCES_SHOWN: usize = 1000;

/// The rows of an event's audiences read: one more than shown, to know whether there are more.
pub(crate) const EVENT_AUDIENCES_READ: i64 = EVENT_AUDIENCES_SHOWN as i64 + 1;

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

/// One key of an audience as `audience verify` compares it with the live list
/// ([`crate::Store::audience_keys`]): what is desired and what Iterable acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudienceKey {
    pub identity: Identity,
    /// The desired membership.
    pub member: bool,
    /// The membership Iterable last acknowledged (`None`: never, or unknown since a repair).
    pub ack_member: Option<bool>,
    /// The desired version still has to be sent (the reconciler will).
    pub pending: bool,
    /// The list the key's event named (its external audience id), if any.
    pub list_id: Option<i64>,
}

/// Why the keys of an audience are pending again after [`crate::Store::replace_list`].
pub const RECREATED: &str = "the list was deleted in Iterable and created again";
