//! Planning: events become membership changes, each identity collapses to its newest state
//! per list, and the survivors become subscribe/unsubscribe requests within the size limits.
//!
//! [`Planner::plan`] does offline what the service does online, so `iterable-lists plan`
//! shows what `serve` sends for the same events: a repeated `messageId` is ignored (the first
//! event with it counts, whatever became of it), each user collapses to the newest event per
//! list (event time, then arrival; an older event is `superseded`, where the service's store
//! logs it as skipped, stale), and emails are lowercased, as the service stores them.

use std::borrow::Cow;

use hashbrown::HashMap;
use hashbrown::hash_map::Entry;

use iterable_api::types::ListRef;
use serde_json::{Map, Value};

use crate::audience::{AudienceSettings, IgnoredSetting};
pub use crate::body::build_requests;
use crate::body::{RowIds, pack_requests};
use crate::fast;
use crate::fields::{ActionMapping, SyncPayload};
use crate::prepare::{Prepared, prepare};
use crate::settings::ProjectType;

/// The two list operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    Subscribe,
    Unsubscribe,
}

impl Operation {
    pub fn path(self) -> &'static str {
        match self {
            Operation::Subscribe => "/api/lists/subscribe",
            Operation::Unsubscribe => "/api/lists/unsubscribe",
        }
    }
}

/// One wanted membership: what an accepted event asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub audience_key: String,
    pub list: ListRef,
    pub email: Option<String>,
    pub user_id: Option<String>,
    pub member: bool,
    /// Only sent on subscribe, and only when it has at least one key.
    pub data_fields: Option<Map<String, Value>>,
    pub settings: AudienceSettings,
    /// Event time in epoch milliseconds; an event without one is older than any with one.
    pub time_ms: Option<i64>,
    /// Arrival order; breaks ties between equal times.
    pub seq: u64,
}

impl Change {
    /// The version that decides which change of an identity wins: time, then arrival.
    pub fn version(&self) -> (Option<i64>, u64) {
        (self.time_ms, self.seq)
    }
}

/// The default bytes of JSON body per request, and the most the service's configuration
/// allows (`max_request_bytes`): 4 MB, Iterable's practical limit. `plan --max-bytes` defaults
/// to it too.
pub const MAX_REQUEST_BYTES: usize = 4_000_000;

/// Request size limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_rows: usize,
    pub max_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_rows: 1000,
            max_bytes: MAX_REQUEST_BYTES,
        }
    }
}

/// One row of a planned request, with the change it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedRow {
    /// Index of the change (or event) in the planner's input.
    pub source: usize,
    pub email: Option<String>,
    pub user_id: Option<String>,
}

/// A request ready to send: the exact JSON body, and which input each row came from.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedRequest {
    pub op: Operation,
    pub list: ListRef,
    pub audience_key: String,
    pub body: Vec<u8>,
    pub rows: Vec<PlannedRow>,
}

/// A change the request builder could not place.
#[derive(Debug, Clone, PartialEq)]
pub struct Oversized {
    pub source: usize,
    pub message: String,
}

/// Groups of identities that are one person for one list: the same list and a shared userId,
/// or (outside userId-based projects) a shared email, compared case-insensitively.
struct Identities {
    parent: Vec<usize>,
}

impl Identities {
    fn new(n: usize) -> Self {
        Self {
            parent: (0..n).collect(),
        }
    }
    fn root(&mut self, mut i: usize) -> usize {
        while self.parent[i] != i {
            self.parent[i] = self.parent[self.parent[i]];
            i = self.parent[i];
        }
        i
    }
    fn join(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.root(a), self.root(b));
        if ra != rb {
            self.parent[ra.max(rb)] = ra.min(rb);
        }
    }
}

/// Emails compare case-insensitively; most are lowercase already and need no copy.
fn lowercase(e: &str) -> Cow<'_, str> {
    if e.bytes().any(|b| b.is_ascii_uppercase()) || !e.is_ascii() {
        Cow::Owned(e.to_lowercase())
    } else {
        Cow::Borrowed(e)
    }
}

/// A user's email or userId within a list, as `collapse` groups them: equal when both are.
/// Hashed with fewer steps than the tuple's derived hash (an id as one integer, no enum tag;
/// about 20 instructions less a key, callgrind), but still by both parts: hashed by the text
/// alone (tried: 80 instructions less), one user named in many lists of one batch would fill
/// one bucket, and each key would compare with all the others.
#[derive(PartialEq, Eq)]
struct UserKey<'c, S>(&'c ListRef, S);

impl<S: AsRef<str>> std::hash::Hash for UserKey<'_, S> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        match self.0 {
            ListRef::Id(id) => state.write_i64(*id),
            ListRef::Audience(name) => name.hash(state),
        }
        state.write(self.1.as_ref().as_bytes());
    }
}

/// For each change, the index of the change that wins for its identity (itself when it wins).
pub fn collapse(changes: &[Change], project_type: ProjectType) -> Vec<usize> {
    let mut ids = Identities::new(changes.len());
    let mut by_uid: HashMap<UserKey<&str>, usize> = HashMap::with_capacity(changes.len());
    let mut by_email: HashMap<UserKey<Cow<'_, str>>, usize> = HashMap::with_capacity(changes.len());
    for (i, c) in changes.iter().enumerate() {
        // One hash and one probe per key: the entry, found or made.
        if let Some(u) = c.user_id.as_deref() {
            match by_uid.entry(UserKey(&c.list, u)) {
                Entry::Occupied(first) => ids.join(i, *first.get()),
                Entry::Vacant(v) => {
                    v.insert(i);
                }
            }
        }
        let email_identifies = project_type == ProjectType::Hybrid || c.user_id.is_none();
        if let (Some(e), true) = (c.email.as_deref(), email_identifies) {
            match by_email.entry(UserKey(&c.list, lowercase(e))) {
                Entry::Occupied(first) => ids.join(i, *first.get()),
                Entry::Vacant(v) => {
                    v.insert(i);
                }
            }
        }
    }
    // The newest change of each group, by its root (an index into `changes`): the group's
    // first change is its root, so it is seen before any other of the group.
    let mut best: Vec<usize> = (0..changes.len()).collect();
    for (i, c) in changes.iter().enumerate() {
        let r = ids.root(i);
        if c.version() > changes[best[r]].version() {
            best[r] = i;
        }
    }
    (0..changes.len()).map(|i| best[ids.root(i)]).collect()
}

/// What became of one input event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventStatus {
    Planned,
    Superseded,
    Rejected,
    Skipped,
    /// Its `messageId` was seen on an earlier event: ignored, as the service ignores it.
    Duplicate,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EventOutcome {
    pub index: usize,
    pub status: EventStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Audience settings the event carried that could not be used: left unset for it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ignored_settings: Vec<IgnoredSetting>,
}

/// An input event that ingestion already refused (the service logs it as rejected), for
/// [`Planner::plan_inputs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// Its `messageId`, when it had a usable one: a later event with it is a duplicate.
    pub message_id: Option<String>,
    pub reason: String,
}

/// An event's `messageId` as the service keys it: a non-empty string, or a number in its
/// string form (integers as written, others as JavaScript prints them).
pub fn message_id_of(event: &Value) -> Option<String> {
    match event.get("messageId")? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i.to_string(),
            (_, Some(u)) => u.to_string(),
            _ => segment::mapping::number_to_string(n.as_f64().unwrap_or(f64::NAN)),
        }),
        _ => None,
    }
}

/// A whole plan: requests in sending order, and one outcome per input event.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub requests: Vec<PlannedRequest>,
    pub events: Vec<EventOutcome>,
}

/// Plans events offline: the destination's whole per-batch logic without I/O.
#[derive(Debug, Clone)]
pub struct Planner {
    pub project_type: ProjectType,
    pub mapping: ActionMapping,
    pub limits: Limits,
    pub retl: Option<segment::membership::RetlSyncMode>,
}

impl Planner {
    pub fn new(project_type: ProjectType, mapping: ActionMapping) -> Self {
        Self {
            project_type,
            mapping,
            limits: Limits::default(),
            retl: None,
        }
    }

    /// Prepares one event (parse, map, validate, membership) into a change.
    pub fn prepare(&self, event: Value, seq: u64) -> Prepared {
        prepare(self, event, seq)
    }

    pub(crate) fn payload<'a>(&'a self, event: &'a Value) -> Result<SyncPayload<'a>, String> {
        self.mapping.payload(event)
    }

    /// Plans a batch of events, in arrival order (see [`Planner::plan_inputs`]).
    pub fn plan(&self, events: Vec<Value>) -> Plan {
        self.plan_inputs(events.into_iter().map(Ok).collect())
    }

    /// Prepares one event from its JSON text: on the fast path (a typed view borrowed from the
    /// text, no JSON tree) when the mapping is the default and the event is of the common
    /// shapes, else parsed and prepared as [`Planner::prepare`] does. The same result either
    /// way; `Err` when the text is not JSON.
    pub fn prepare_text(&self, text: &str, seq: u64) -> Result<Prepared, String> {
        self.prepare_read(text, seq, &mut fast::ContextMemo::default())
    }

    /// [`Planner::prepare_text`] with the contexts read before in the batch.
    fn prepare_read<'t>(
        &self,
        text: &'t str,
        seq: u64,
        memo: &mut fast::ContextMemo<'t>,
    ) -> Result<Prepared, String> {
        match fast::read_text(self, text, seq, memo) {
            fast::ReadText::Fast { prepared, .. } => Ok(prepared),
            fast::ReadText::General(value) => Ok(self.prepare(value, seq)),
            fast::ReadText::Malformed(reason) => Err(reason),
        }
    }

    /// Prepares the events of one batch from their JSON texts, in order, each as
    /// [`Planner::prepare_text`] prepares it; a `context` text that repeats one of the last
    /// 32 read in the batch is not read again (the events of one audience carry the same).
    pub fn prepare_texts<'t>(
        &self,
        texts: impl IntoIterator<Item = &'t str>,
    ) -> Vec<Result<Prepared, String>> {
        let mut memo = fast::ContextMemo::default();
        texts
            .into_iter()
            .map(|text| self.prepare_read(text, 0, &mut memo))
            .collect()
    }

    /// Plans a batch of events given as JSON texts, one per event, as [`Planner::plan`] plans
    /// them parsed; each text is read as [`Planner::prepare_text`] reads it, and one that is
    /// not JSON is rejected with the parser's message.
    pub fn plan_texts(&self, texts: &[&str]) -> Plan {
        let mut memo = fast::ContextMemo::default();
        let inputs = texts.iter().enumerate().map(|(i, text)| {
            match fast::read_text(self, text, i as u64, &mut memo) {
                fast::ReadText::Fast {
                    message_id,
                    prepared,
                } => (message_id, Pending::Ready(prepared)),
                fast::ReadText::General(value) => {
                    (message_id_of(&value).map(Cow::Owned), Pending::Event(value))
                }
                fast::ReadText::Malformed(reason) => (None, Pending::Refused(reason)),
            }
        });
        self.plan_each(texts.len(), inputs)
    }

    /// Plans a batch of events in arrival order, some of which ingestion may have refused
    /// already. An event whose `messageId` ([`message_id_of`]) an earlier input had is a
    /// [`EventStatus::Duplicate`]; events without one are each their own event.
    pub fn plan_inputs(&self, inputs: Vec<Result<Value, Refused>>) -> Plan {
        let n = inputs.len();
        let inputs = inputs.into_iter().map(|input| match input {
            Ok(e) => (message_id_of(&e).map(Cow::Owned), Pending::Event(e)),
            Err(r) => (r.message_id.map(Cow::Owned), Pending::Refused(r.reason)),
        });
        self.plan_each(n, inputs)
    }

    /// The planner's core: each of the `n` inputs, in order, with its `messageId` (borrowed
    /// from the event's text when it can be) and what it is; a duplicate is not prepared.
    fn plan_each<'t>(
        &self,
        n: usize,
        inputs: impl Iterator<Item = (Option<Cow<'t, str>>, Pending)>,
    ) -> Plan {
        let mut outcomes: Vec<EventOutcome> = Vec::with_capacity(n);
        let mut changes: Vec<Change> = Vec::with_capacity(n);
        let mut change_event: Vec<usize> = Vec::with_capacity(n);
        let mut first_with_id: HashMap<Cow<'t, str>, usize> = HashMap::with_capacity(n);
        for (i, (message_id, input)) in inputs.enumerate() {
            let mut outcome = EventOutcome {
                index: i,
                status: EventStatus::Rejected,
                message: None,
                ignored_settings: Vec::new(),
            };
            if let Some(id) = message_id {
                match first_with_id.entry(id) {
                    Entry::Occupied(first) => {
                        outcome.status = EventStatus::Duplicate;
                        outcome.message = Some(format!(
                            "messageId {:?} was already seen on event {}: ignored",
                            first.key(),
                            first.get()
                        ));
                        outcomes.push(outcome);
                        continue;
                    }
                    Entry::Vacant(v) => {
                        v.insert(i);
                    }
                }
            }
            let prepared = match input {
                Pending::Ready(p) => p,
                Pending::Event(e) => self.prepare(e, i as u64),
                Pending::Refused(reason) => Prepared::Rejected(reason),
            };
            let (status, message) = match prepared {
                Prepared::Change { change, ignored } => {
                    changes.push(*change);
                    change_event.push(i);
                    outcome.ignored_settings = ignored;
                    (EventStatus::Planned, None)
                }
                Prepared::Rejected(m) => (EventStatus::Rejected, Some(m)),
                Prepared::Skipped(m) => (EventStatus::Skipped, Some(m)),
            };
            outcome.status = status;
            outcome.message = message;
            outcomes.push(outcome);
        }
        let requests = self.requests_of(changes, &change_event, &mut outcomes);
        Plan {
            requests,
            events: outcomes,
        }
    }

    /// The requests of a batch's changes (`change_event`: the event of each change): each
    /// identity collapsed to its newest change, the others marked superseded in `outcomes`,
    /// and rows that fit in no request marked rejected.
    fn requests_of(
        &self,
        mut changes: Vec<Change>,
        change_event: &[usize],
        outcomes: &mut [EventOutcome],
    ) -> Vec<PlannedRequest> {
        let winners = collapse(&changes, self.project_type);
        // Packed by change index: each row's source becomes its event below.
        let mut survivors: Vec<(usize, &Change)> = Vec::with_capacity(changes.len());
        for (ci, &w) in winners.iter().enumerate() {
            let ev = change_event[ci];
            if w == ci {
                survivors.push((ci, &changes[ci]));
            } else {
                outcomes[ev].status = EventStatus::Superseded;
                outcomes[ev].message = Some(format!(
                    "superseded by event {} for the same user and list",
                    change_event[w]
                ));
            }
        }
        let (mut requests, oversized) =
            pack_requests(&survivors, self.project_type, self.limits, RowIds::Left);
        for o in oversized {
            let ev = change_event[o.source];
            outcomes[ev].status = EventStatus::Rejected;
            outcomes[ev].message = Some(o.message);
        }
        // Each row's identifiers move in from its change, whose bytes are written already.
        for row in requests.iter_mut().flat_map(|r| r.rows.iter_mut()) {
            let c = &mut changes[row.source];
            row.email = c.email.take();
            row.user_id = c.user_id.take();
            row.source = change_event[row.source];
        }
        requests
    }
}

/// One input of [`Planner::plan_each`], as read.
enum Pending {
    /// Already prepared (the fast path).
    Ready(Prepared),
    /// Parsed, to prepare.
    Event(Value),
    /// Refused before preparing: why.
    Refused(String),
}

impl PlannedRequest {
    /// `{"method":"POST","path":..,"body":{..}}`, as `iterable-lists plan` prints it.
    pub fn to_json(&self) -> Value {
        let body: Value = serde_json::from_slice(&self.body).unwrap_or(Value::Null);
        serde_json::json!({"method": "POST", "path": self.op.path(), "body": body})
    }
}

impl Plan {
    /// `{"requests":[..],"events":[..]}`, as `iterable-lists plan` prints it.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "requests": self.requests.iter().map(PlannedRequest::to_json).collect::<Vec<_>>(),
            "events": self.events,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A user collapses within a list, by email (any case) or userId, never across lists,
    /// whether the lists are ids or placeholders and whatever the keys' texts share.
    #[test]
    fn a_user_collapses_within_a_list_and_never_across_lists() {
        let change = |list: ListRef, email: Option<&str>, user_id: Option<&str>, seq| Change {
            audience_key: "vip".into(),
            list,
            email: email.map(str::to_owned),
            user_id: user_id.map(str::to_owned),
            member: true,
            data_fields: None,
            settings: AudienceSettings::default(),
            time_ms: None,
            seq,
        };
        let changes = [
            change(ListRef::Id(1), Some("a@x.com"), Some("u1"), 0),
            change(ListRef::Id(2), Some("a@x.com"), Some("u1"), 1),
            change(ListRef::Audience("1".into()), Some("a@x.com"), None, 2),
            change(ListRef::Id(1), Some("A@X.com"), None, 3),
            change(ListRef::Id(2), None, Some("u1"), 4),
            change(ListRef::Id(1), Some("b@x.com"), Some("u2"), 5),
        ];
        assert_eq!(collapse(&changes, ProjectType::Hybrid), [3, 4, 2, 3, 4, 5]);
        // userId-based projects: the email identifies only a change without a userId.
        assert_eq!(collapse(&changes, ProjectType::UserId), [0, 4, 2, 3, 4, 5]);
    }

    #[test]
    fn message_ids_as_the_service_keys_them() {
        for (event, want) in [
            (json!({"messageId": "m1"}), Some("m1")),
            (json!({"messageId": 42}), Some("42")),
            (json!({"messageId": 1.5}), Some("1.5")),
            (json!({"messageId": ""}), None),
            (json!({"messageId": null}), None),
            (json!({"messageId": true}), None),
            (json!({}), None),
        ] {
            assert_eq!(message_id_of(&event).as_deref(), want, "{event}");
        }
    }

    #[test]
    fn the_first_event_with_a_message_id_counts_even_when_refused() {
        let planner = Planner::new(ProjectType::Hybrid, ActionMapping::new(None).unwrap());
        let enter = |id: Value| {
            json!({"type": "identify", "messageId": id, "userId": "u1", "traits": {"vip": true},
                   "context": {"personas": {"computation_key": "vip"}}})
        };
        let plan = planner.plan_inputs(vec![
            Err(Refused {
                message_id: Some("m1".into()),
                reason: "batch[0]: 40000 bytes is over the 32768-byte limit per event".into(),
            }),
            Ok(enter(json!("m1"))),
            Ok(enter(json!(7))),
            Ok(enter(json!("7"))),
        ]);
        let got: Vec<(EventStatus, Option<&str>)> = plan
            .events
            .iter()
            .map(|o| (o.status, o.message.as_deref()))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    EventStatus::Rejected,
                    Some("batch[0]: 40000 bytes is over the 32768-byte limit per event")
                ),
                (
                    EventStatus::Duplicate,
                    Some("messageId \"m1\" was already seen on event 0: ignored")
                ),
                (EventStatus::Planned, None),
                (
                    EventStatus::Duplicate,
                    Some("messageId \"7\" was already seen on event 2: ignored")
                ),
            ]
        );
        assert_eq!(plan.requests.len(), 1);
    }
}
