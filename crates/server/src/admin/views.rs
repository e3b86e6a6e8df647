//! What the admin API answers and the console renders: typed views, serialized as camelCase
//! JSON, each with its OpenAPI schema. Times are epoch milliseconds (`...Ms`); a series is one
//! point per minute, oldest first, kept in this instance's memory (see [`super::history`]).

use serde::Serialize;
use utoipa::ToSchema;

/// Whether a destination delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum StateWord {
    Running,
    /// Iterable refused the API key (401): nothing is sent until a probe succeeds.
    Paused,
    /// Iterable has been unreachable for a while; deliveries go on being tried.
    Degraded,
    /// Configured with `enabled = false`: events are stored, not delivered.
    Disabled,
}

/// A destination's state, as the store keeps it (every instance sees the same).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StateView {
    pub state: StateWord,
    /// Why it is paused or degraded (Iterable's answer, never the key).
    pub reason: Option<String>,
    pub since_ms: Option<i64>,
}

/// An operator's pause: nothing is sent until an operator resumes, whatever Iterable says.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperatorPauseView {
    /// Who paused it: the admin token's id (`loopback` without a token), never the token.
    pub by: String,
    pub reason: String,
    pub since_ms: i64,
}

/// One point of a series: the minute it ends at, and the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Point {
    pub at_ms: i64,
    pub value: u64,
}

/// What waits to be delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueView {
    /// Keys whose desired version is not acknowledged yet.
    pub pending: u64,
    /// Of those, events that failed at least once and wait for their next try.
    pub retrying: u64,
    /// When the oldest pending key was accepted.
    pub oldest_pending_ms: Option<i64>,
    /// How long it has waited, at the view's `nowMs`.
    pub age_ms: Option<i64>,
}

/// Iterable requests that ended in one status class (after the client's own retries),
/// since this instance started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorClassCount {
    /// `401`, `429`, `4xx`, `5xx` or `transport`.
    pub class: String,
    pub count: u64,
}

/// One destination on the overview.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DestinationSummary {
    pub name: String,
    pub enabled: bool,
    pub state: StateView,
    pub operator_pause: Option<OperatorPauseView>,
    /// Events stored per minute over the last hour (this instance).
    pub ingested_per_minute: Vec<Point>,
    /// Rows Iterable acknowledged per minute over the last hour (this instance).
    pub delivered_per_minute: Vec<Point>,
    /// Rows Iterable rejected per minute over the last hour (this instance).
    pub rejected_per_minute: Vec<Point>,
    pub queue: QueueView,
    /// Iterable errors by class, since this instance started.
    pub errors: Vec<ErrorClassCount>,
    pub audiences: u64,
    pub members: u64,
    pub rejected: u64,
    /// Audiences whose removals the mass-removal guard holds.
    pub held_audiences: Vec<String>,
}

/// A WARN or ERROR event of this instance's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Warning {
    pub at_ms: i64,
    /// `WARN` or `ERROR`.
    pub level: String,
    /// The module that logged it.
    pub target: String,
    pub message: String,
    /// The event's other fields, in order.
    pub fields: Vec<Field>,
}

/// One field of a log event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Field {
    pub name: String,
    pub value: String,
}

/// `GET /v1/admin/overview`: every destination, and the recent warnings.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Overview {
    pub now_ms: i64,
    pub destinations: Vec<DestinationSummary>,
    /// The last WARN and ERROR events of this instance, newest first (at most 100).
    pub warnings: Vec<Warning>,
}

/// The mass-removal guard's hold of an audience.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HoldView {
    pub since_ms: i64,
    /// Removals parked until an operator releases or discards them.
    pub held: u64,
    pub members: u64,
    pub pending_removals: u64,
    pub removed_in_window: u64,
    pub max_removal_ratio: f64,
    /// What tripped the guard, in words.
    pub reason: String,
}

/// One audience of a destination, from the store's figures.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AudienceRow {
    pub audience_key: String,
    /// Its Iterable list, once one is registered.
    pub list_id: Option<i64>,
    /// Members Iterable acknowledged.
    pub members: u64,
    pub pending: u64,
    pub retrying: u64,
    pub rejected: u64,
    pub oldest_pending_ms: Option<i64>,
    /// How long the oldest pending key has waited, at the view's `nowMs`.
    pub lag_ms: Option<i64>,
    pub last_delivery_ms: Option<i64>,
    pub hold: Option<HoldView>,
}

/// A page of audiences, by audience key.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AudiencePage {
    pub rows: Vec<AudienceRow>,
    /// All audiences of the destination.
    pub total: u64,
    /// Pass as `after` for the next page; `None` on the last one.
    pub next_after: Option<String>,
}

/// One endpoint's rate limit as configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitView {
    pub endpoint: String,
    pub limit: String,
}

/// Audience settings configured for one audience (or the defaults).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AudienceSettingsView {
    /// The audience key, or `*` for `[destination.audience_defaults]`.
    pub audience: String,
    pub update_existing_users_only: Option<bool>,
    pub channel_unsubscribe: Option<bool>,
    pub campaign_id: Option<i64>,
}

/// A destination's configuration with every secret left out: the API key, write keys and
/// webhook secret show only whether they are set (and how many), the base URL loses any
/// credentials.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SettingsView {
    pub enabled: bool,
    /// `hybrid` or `userId`.
    pub project_type: String,
    pub base_url: String,
    pub api_key_set: bool,
    pub write_keys: u64,
    pub webhook_secret_set: bool,
    /// Whether `[destination.mapping]` overrides Segment's default mapping.
    pub mapping_overridden: bool,
    pub retl_sync_mode: Option<String>,
    /// `recreate` or `pause`.
    pub on_list_deleted: String,
    pub verify_every_ms: Option<u64>,
    pub verify_repair: bool,
    pub batch_size: u64,
    pub max_request_bytes: u64,
    pub linger_ms: u64,
    pub concurrency: u64,
    pub timeout_ms: u64,
    pub rate_limits: Vec<RateLimitView>,
    pub max_removal_ratio: f64,
    pub removal_window_ms: u64,
    pub removal_guard_min_members: u64,
    pub audience_settings: Vec<AudienceSettingsView>,
}

/// `GET /v1/admin/destinations/{destination}`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DestinationView {
    pub now_ms: i64,
    pub name: String,
    pub state: StateView,
    pub operator_pause: Option<OperatorPauseView>,
    pub queue: QueueView,
    pub errors: Vec<ErrorClassCount>,
    pub audiences: AudiencePage,
    pub settings: SettingsView,
}

/// One minute of an audience's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AudiencePoint {
    pub at_ms: i64,
    pub members: u64,
    pub pending: u64,
    pub rejected: u64,
}

/// What the last verify of an audience against its live list found (this instance's
/// scheduled verify, or an operator's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifyView {
    /// Acknowledged members missing from the list.
    pub missing: u64,
    /// Identifiers in the list that the store does not have as members.
    pub extra: u64,
    /// When it ran (epoch ms).
    pub verified_ms: i64,
    /// Why it stopped before the end (its figures are then 0).
    pub error: Option<String>,
}

/// The last operator decision on an audience's held removals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HoldDecisionView {
    /// E.g. `released 40 removal(s): 1a2b3c4d`.
    pub decision: String,
    pub at_ms: i64,
}

/// `GET /v1/admin/destinations/{destination}/audiences/{audience}`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AudienceView {
    pub now_ms: i64,
    pub destination: String,
    pub audience: AudienceRow,
    /// Its figures once a minute over the last hour (this instance's samples).
    pub series: Vec<AudiencePoint>,
    pub last_hold_decision: Option<HoldDecisionView>,
    pub last_verify: Option<VerifyView>,
}

/// A rejected user of an audience.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RejectedRow {
    pub email: Option<String>,
    pub user_id: Option<String>,
    /// Whether the rejected change was a subscribe (`true`) or an unsubscribe.
    pub member: bool,
    /// Iterable's reason, e.g. `invalidEmails`.
    pub reason: Option<String>,
    /// The arrival sequence of the event of the rejected change.
    pub seq: u64,
    pub accepted_ms: i64,
    pub rejected_ms: Option<i64>,
}

/// `GET /v1/admin/destinations/{destination}/audiences/{audience}/rejected`: a page of
/// rejected users in key order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RejectedPage {
    pub destination: String,
    pub audience: String,
    pub filter: Option<String>,
    pub rows: Vec<RejectedRow>,
    /// Pass as `after` for the next page; `None` on the last one.
    pub next_after: Option<String>,
}

/// The event behind a version of a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventRef {
    pub seq: u64,
    /// `None` once retention pruned the event.
    pub message_id: Option<String>,
    /// The event's own time.
    pub time_ms: Option<i64>,
    pub received_ms: Option<i64>,
}

/// A user in one audience: what the service wants, and what Iterable acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserAudience {
    pub destination: String,
    pub audience_key: String,
    pub list_id: Option<i64>,
    pub email: Option<String>,
    pub user_id: Option<String>,
    /// The desired membership.
    pub member: bool,
    /// `pending`, `delivered`, `rejected` or `superseded`.
    pub state: String,
    pub reason: Option<String>,
    pub attempts: u32,
    pub next_attempt_ms: Option<i64>,
    /// The event that set the desired membership.
    pub desired_by: EventRef,
    /// The membership Iterable acknowledged; `None` when it acknowledged nothing.
    pub acknowledged_member: Option<bool>,
    pub acknowledged_by: Option<EventRef>,
    /// When Iterable last answered for this user.
    pub last_answer_ms: Option<i64>,
}

/// `GET /v1/admin/users?email=|userId=`: a page of the audiences the user is in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserLookup {
    pub email: Option<String>,
    pub user_id: Option<String>,
    /// By destination, audience and key.
    pub audiences: Vec<UserAudience>,
    /// Pass as `after` for the next page; `None` on the last one.
    pub next_after: Option<String>,
}

/// An event's status in one audience (the JSON of `GET /v1/events/{messageId}` too).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AudienceStatusView {
    /// The audience key; empty for an event that named none.
    pub audience: String,
    pub email: Option<String>,
    pub user_id: Option<String>,
    /// Add (`true`), remove, or nothing (`null`).
    pub member: Option<bool>,
    pub event_time_ms: Option<i64>,
    /// `accepted`, `pending`, `delivered`, `superseded`, `rejected` or `skipped`.
    pub status: String,
    pub reason: Option<String>,
    pub attempts: u32,
    pub next_attempt_ms: Option<i64>,
    pub updated_ms: i64,
}

/// An audience setting the event carried and that was ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IgnoredSettingView {
    pub setting: String,
    pub value: String,
    pub reason: String,
}

/// One logged event in one destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventView {
    pub destination: String,
    pub message_id: String,
    pub seq: u64,
    pub received_ms: i64,
    /// Its status in each audience it named, in the order of its changes: the first 1,000.
    pub audiences: Vec<AudienceStatusView>,
    /// It names more audiences than are listed (a snapshot names each key of its audience).
    pub more_audiences: bool,
    pub ignored_settings: Vec<IgnoredSettingView>,
}

/// `GET /v1/admin/events/{messageId}` (and `GET /v1/events/{messageId}`): the event in every
/// destination that has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventLookup {
    pub events: Vec<EventView>,
}

/// An error answer of the admin API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// Always `false`.
    pub success: bool,
    pub message: String,
    /// The query or body field at fault, when one is.
    pub field: Option<String>,
}

/// What an admin action did.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActionResult {
    /// `pause`, `resume`, `retry-rejected`, `release-hold` or `discard-hold`.
    pub action: String,
    pub destination: String,
    pub audience: Option<String>,
    /// How many users or removals it moved, for the actions that move some.
    pub count: Option<u64>,
    /// What happened, in words.
    pub message: String,
    /// The destination's state afterwards, as this instance sees it.
    pub state: StateView,
    pub operator_pause: Option<OperatorPauseView>,
}

/// What a check of a destination's API key found (`GET /api/lists` with it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyCheck {
    pub destination: String,
    /// Whether Iterable took the key.
    pub ok: bool,
    /// The project's lists, when it did.
    pub lists: Option<u64>,
    /// Of those, the static ones.
    pub static_lists: Option<u64>,
    /// What was found and, on failure, what to fix.
    pub message: String,
}

/// What a verify of an audience against its live list found, and repaired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifyResult {
    pub destination: String,
    pub audience: String,
    pub list_id: i64,
    pub in_sync: bool,
    /// Acknowledged members missing from the list.
    pub missing: u64,
    /// Identifiers in the list that the store does not have as members.
    pub extra: u64,
    pub missing_samples: Vec<String>,
    pub extra_samples: Vec<String>,
    /// Whether the corrections were stored (the service then sends them).
    pub repaired: bool,
    /// Keys made pending again (repair only).
    pub reopened: u64,
    /// Unsubscribes stored for identifiers unknown to the store (repair only).
    pub unsubscribes: u64,
}
