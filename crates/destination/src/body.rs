//! The requests of a plan: changes grouped by list and options, packed into requests within
//! the size limits, and the bytes of each body: its head (the list), one row per change, its
//! tail (the options), as Iterable's `/api/lists/subscribe` and `/api/lists/unsubscribe` take
//! them.

use hashbrown::HashMap;
use iterable_api::types::ListRef;

use crate::plan::{Change, Limits, Operation, Oversized, PlannedRequest, PlannedRow};
use crate::settings::ProjectType;

/// The options that split requests: subscribe takes `updateExistingUsersOnly`; unsubscribe
/// takes `campaignId` and `channelUnsubscribe`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Options {
    Subscribe(Option<bool>),
    Unsubscribe(Option<i64>, Option<bool>),
}

pub(crate) fn options(c: &Change) -> Options {
    if c.member {
        Options::Subscribe(c.settings.update_existing_users_only)
    } else {
        Options::Unsubscribe(c.settings.campaign_id, c.settings.channel_unsubscribe)
    }
}

/// Writes one row's JSON into `out` (cleared first), from the change's borrowed strings: the
/// buffer is reused from row to row, so a row costs no allocation once it has grown. The
/// bytes are those of `Subscriber` (subscribe) or `Unsubscriber` (unsubscribe) of
/// `iterable_api::types` serialized by serde_json, member by member as their derived
/// `Serialize` writes them: `email`, `userId`, then (subscribe) `preferUserId` for
/// userId-based projects and `dataFields` when there are any; absent members left out.
/// Strings without a byte to escape are copied as they are (found eight bytes at a time),
/// others escaped by serde_json; numbers, booleans, `null` and arrays are written by
/// serde_json (a unit test and a property test compare the bytes with serde_json's).
pub(crate) fn write_row(out: &mut Vec<u8>, c: &Change, project_type: ProjectType) {
    out.clear();
    out.push(b'{');
    let mut first = true;
    let mut key = |out: &mut Vec<u8>, key: &[u8]| {
        if !first {
            out.push(b',');
        }
        first = false;
        out.extend_from_slice(key);
    };
    if let Some(email) = &c.email {
        key(out, b"\"email\":");
        write_str(out, email);
    }
    if let Some(user_id) = &c.user_id {
        key(out, b"\"userId\":");
        write_str(out, user_id);
    }
    if c.member {
        if project_type == ProjectType::UserId {
            key(out, b"\"preferUserId\":true");
        }
        if let Some(d) = c.data_fields.as_ref().filter(|d| !d.is_empty()) {
            key(out, b"\"dataFields\":");
            write_object(out, d);
        }
    }
    out.push(b'}');
}

/// A JSON string as serde_json writes it.
fn write_str(out: &mut Vec<u8>, s: &str) {
    if crate::fast::plain_len(s.as_bytes()) == s.len() {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // Writing a string into a `Vec` cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

/// An object as serde_json writes it (compact, members in the map's order).
fn write_object(out: &mut Vec<u8>, map: &serde_json::Map<String, serde_json::Value>) {
    out.push(b'{');
    for (i, (k, v)) in map.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, k);
        out.push(b':');
        match v {
            serde_json::Value::String(s) => write_str(out, s),
            serde_json::Value::Object(m) => write_object(out, m),
            // Writing a value into a `Vec` fails only for a map key that is not a string,
            // which a `Value` cannot hold.
            other => {
                let _ = serde_json::to_writer(&mut *out, other);
            }
        }
    }
    out.push(b'}');
}

pub(crate) fn body_head(list: &ListRef) -> Vec<u8> {
    let mut b = b"{\"listId\":".to_vec();
    b.extend(serde_json::to_vec(list).unwrap_or_default());
    b.extend_from_slice(b",\"subscribers\":[");
    b
}

pub(crate) fn body_tail(opts: Options) -> Vec<u8> {
    let mut t = b"]".to_vec();
    match opts {
        Options::Subscribe(u) => {
            if let Some(u) = u {
                t.extend(format!(",\"updateExistingUsersOnly\":{u}").bytes());
            }
        }
        Options::Unsubscribe(campaign, channel) => {
            if let Some(id) = campaign {
                t.extend(format!(",\"campaignId\":{id}").bytes());
            }
            if let Some(ch) = channel {
                t.extend(format!(",\"channelUnsubscribe\":{ch}").bytes());
            }
        }
    }
    t.push(b'}');
    t
}

/// Builds requests for the given changes (each identity should appear once per list: pass
/// the winners of [`crate::plan::collapse`]). Lists keep their first-seen order; within a
/// list, subscribe groups come before unsubscribe groups; rows keep input order. Each request
/// holds at most `limits.max_rows` rows and `limits.max_bytes` bytes of body.
pub fn build_requests(
    changes: &[(usize, &Change)],
    project_type: ProjectType,
    limits: Limits,
) -> (Vec<PlannedRequest>, Vec<Oversized>) {
    pack_requests(changes, project_type, limits, RowIds::Copied)
}

/// Whether a planned row gets a copy of its change's email and userId, or is left without
/// them, for a caller that owns the changes to move them in (the planner's core, behind
/// [`crate::plan::Planner::plan_texts`] and the others).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowIds {
    Copied,
    Left,
}

/// [`build_requests`], with the rows' identifiers as `ids` says.
pub(crate) fn pack_requests(
    changes: &[(usize, &Change)],
    project_type: ProjectType,
    limits: Limits,
    ids: RowIds,
) -> (Vec<PlannedRequest>, Vec<Oversized>) {
    let Groups { lists, mut rows } = Groups::of(changes);
    let mut packer = Packer {
        project_type,
        limits,
        ids,
        requests: Vec::new(),
        oversized: Vec::new(),
    };
    for (list, mut order) in lists {
        // Subscribe before unsubscribe; otherwise first-seen.
        order.sort_by_key(|(o, _)| matches!(o, Options::Unsubscribe(..)));
        for (opts, group) in order {
            let group = rows.get_mut(group).map(std::mem::take).unwrap_or_default();
            packer.pack(list, opts, group);
        }
    }
    (packer.requests, packer.oversized)
}

/// Changes grouped by list, then by option set, with the first-seen order of both.
struct Groups<'c> {
    /// Each list, with its option sets, each with the index of its group in `rows`.
    lists: Vec<(&'c ListRef, Vec<(Options, usize)>)>,
    rows: Vec<Vec<(usize, &'c Change)>>,
}

impl<'c> Groups<'c> {
    fn of(changes: &[(usize, &'c Change)]) -> Self {
        let mut groups = Groups {
            lists: Vec::new(),
            rows: Vec::new(),
        };
        let mut list_index: HashMap<&'c ListRef, usize> = HashMap::new();
        // The group of the previous change: a batch's changes mostly share list and options,
        // so most changes find their group without a lookup.
        let mut last: Option<(&'c ListRef, Options, usize)> = None;
        for &(src, c) in changes {
            let opts = options(c);
            let group = match last {
                Some((list, o, group)) if o == opts && *list == c.list => group,
                _ => {
                    let group = groups.group(&mut list_index, &c.list, opts);
                    last = Some((&c.list, opts, group));
                    group
                }
            };
            if let Some(rows) = groups.rows.get_mut(group) {
                rows.push((src, c));
            }
        }
        groups
    }

    /// The index of the group of `list` and `opts`, added (last of its list) when new.
    fn group(
        &mut self,
        list_index: &mut HashMap<&'c ListRef, usize>,
        list: &'c ListRef,
        opts: Options,
    ) -> usize {
        let li = *list_index.entry(list).or_insert_with(|| {
            self.lists.push((list, Vec::new()));
            self.lists.len() - 1
        });
        let order = &mut self.lists[li].1;
        match order.iter().find(|(o, _)| *o == opts) {
            Some(&(_, group)) => group,
            None => {
                self.rows.push(Vec::new());
                order.push((opts, self.rows.len() - 1));
                self.rows.len() - 1
            }
        }
    }
}

/// The most a request's body reserves up front; a bigger one grows as rows are added.
const RESERVED_BODY: usize = 256 * 1024;

/// Packs groups of rows into requests within the limits, and sets aside rows that fit in none.
struct Packer {
    project_type: ProjectType,
    limits: Limits,
    ids: RowIds,
    requests: Vec<PlannedRequest>,
    oversized: Vec<Oversized>,
}

impl Packer {
    /// One group (one list, one option set): its rows in order, a new request whenever the
    /// current one is full.
    fn pack(&mut self, list: &ListRef, opts: Options, rows: Vec<(usize, &Change)>) {
        let head = body_head(list);
        let tail = body_tail(opts);
        let overhead = head.len() + tail.len();
        let op = match opts {
            Options::Subscribe(_) => Operation::Subscribe,
            Options::Unsubscribe(..) => Operation::Unsubscribe,
        };
        let max_bytes = self.limits.max_bytes;
        let mut current: Option<PlannedRequest> = None;
        let mut row = Vec::with_capacity(256);
        let mut left = rows.len();
        for (src, c) in rows {
            left -= 1;
            write_row(&mut row, c, self.project_type);
            if overhead + row.len() > max_bytes {
                self.oversized.push(Oversized {
                    source: src,
                    message: format!(
                        "the subscriber is {} bytes of JSON, more than fits in a request of at most {} bytes",
                        row.len(),
                        max_bytes
                    ),
                });
                continue;
            }
            let fits = current.as_ref().is_some_and(|r| {
                r.rows.len() < self.limits.max_rows
                    && r.body.len() + 1 + row.len() + tail.len() <= max_bytes
            });
            if !fits {
                if let Some(done) = current.take() {
                    self.finish(done, &tail);
                }
                // Room for this row and the rest of the group, if they are as long as it
                // (within the limits and [`RESERVED_BODY`]): the body then seldom grows by
                // copying itself, and a long first row does not reserve a huge body.
                let rows = (left + 1).min(self.limits.max_rows);
                let room = (overhead + rows * (row.len() + 1))
                    .min(max_bytes)
                    .min(RESERVED_BODY);
                let mut body = Vec::with_capacity(room);
                body.extend_from_slice(&head);
                current = Some(PlannedRequest {
                    op,
                    list: list.clone(),
                    audience_key: c.audience_key.clone(),
                    body,
                    rows: Vec::with_capacity(rows),
                });
            }
            if let Some(r) = current.as_mut() {
                push_row(r, src, c, &row, self.ids);
            }
        }
        if let Some(done) = current.take() {
            self.finish(done, &tail);
        }
    }

    /// Closes the body of a full (or last) request and keeps it.
    fn finish(&mut self, mut done: PlannedRequest, tail: &[u8]) {
        done.body.extend_from_slice(tail);
        self.requests.push(done);
    }
}

/// Appends one subscriber's JSON to the request's body and records where it came from.
fn push_row(r: &mut PlannedRequest, source: usize, c: &Change, row: &[u8], ids: RowIds) {
    if !r.rows.is_empty() {
        r.body.push(b',');
    }
    r.body.extend_from_slice(row);
    let (email, user_id) = match ids {
        RowIds::Copied => (c.email.clone(), c.user_id.clone()),
        RowIds::Left => (None, None),
    };
    r.rows.push(PlannedRow {
        source,
        email,
        user_id,
    });
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use iterable_api::types::{Subscriber, Unsubscriber};

    use super::*;
    use crate::audience::AudienceSettings;

    fn change(email: Option<&str>, user_id: Option<&str>, member: bool) -> Change {
        Change {
            audience_key: "vip".into(),
            list: ListRef::Id(7),
            email: email.map(str::to_owned),
            user_id: user_id.map(str::to_owned),
            member,
            data_fields: None,
            settings: AudienceSettings::default(),
            time_ms: None,
            seq: 0,
        }
    }

    /// What serde_json makes of the row's type: the bytes a row must have.
    fn serialized(c: &Change, project_type: ProjectType) -> Vec<u8> {
        let email = c.email.as_deref().map(Cow::Borrowed);
        let user_id = c.user_id.as_deref().map(Cow::Borrowed);
        let data_fields = c
            .data_fields
            .as_ref()
            .filter(|d| !d.is_empty())
            .map(Cow::Borrowed);
        let row = if c.member {
            serde_json::to_vec(&Subscriber {
                email,
                user_id,
                prefer_user_id: (project_type == ProjectType::UserId).then_some(true),
                data_fields,
            })
        } else {
            serde_json::to_vec(&Unsubscriber { email, user_id })
        };
        row.expect("a row serializes")
    }

    #[test]
    fn rows_are_written_as_serde_json_serializes_their_type() {
        let strings = [
            None,
            Some(""),
            Some("a@x.com"),
            Some("u\"1\\2"),
            Some("tab\there\nline\u{1}\u{7f}"),
            Some("é✓😀"),
        ];
        let mut out = Vec::new();
        for project_type in [ProjectType::Hybrid, ProjectType::UserId] {
            for email in strings {
                for user_id in strings {
                    for member in [true, false] {
                        let mut c = change(email, user_id, member);
                        for data_fields in [None, Some(serde_json::Map::new()), {
                            let mut m = serde_json::Map::new();
                            m.insert("plan".into(), "gold".into());
                            Some(m)
                        }] {
                            c.data_fields = data_fields;
                            write_row(&mut out, &c, project_type);
                            assert_eq!(
                                String::from_utf8_lossy(&out),
                                String::from_utf8_lossy(&serialized(&c, project_type)),
                                "{c:?} {project_type:?}"
                            );
                        }
                    }
                }
            }
        }
    }

    /// Any JSON value, strings with and without bytes to escape, nested a few levels.
    fn json_value() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        use serde_json::Value;
        let text = prop_oneof![any::<String>(), "[a-z@.\"\\\\\\x00-\\x1f\\x7f]{0,10}"];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            text.prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                proptest::collection::vec(("[a-z\"\\\\]{0,4}", inner), 0..4)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        /// Any row, data fields of any shape included, is written as serde_json serializes its
        /// type.
        #[test]
        fn any_row_is_written_as_serde_json_serializes_its_type(
            email in proptest::option::of(proptest::prelude::any::<String>()),
            user_id in proptest::option::of("[a-z0-9\"\\\\\\x00-\\x1f]{0,12}"),
            member in proptest::prelude::any::<bool>(),
            user_id_project in proptest::prelude::any::<bool>(),
            fields in proptest::option::of(json_value()),
        ) {
            let mut c = change(email.as_deref(), user_id.as_deref(), member);
            c.data_fields = fields.map(|v| match v {
                serde_json::Value::Object(m) => m,
                other => [("v".to_string(), other)].into_iter().collect(),
            });
            let project_type = if user_id_project { ProjectType::UserId } else { ProjectType::Hybrid };
            let mut out = Vec::new();
            write_row(&mut out, &c, project_type);
            let want = serialized(&c, project_type);
            proptest::prop_assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(&want));
        }
    }
}
