//! One Iterable project's data: user profiles, static lists and their members, and the
//! identity rules of its project type. Pure logic, no I/O: the HTTP layer calls into it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashTable};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::{ProjectType, Region};
use crate::identity::{UserIdProblem, check_user_id, is_valid_email, normalize_email};
use crate::wire::{BulkResponse, Subscriber, Unsubscriber};

/// Iterable's list types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum ListType {
    #[default]
    Standard,
    Dynamic,
    Suppression,
    Internal,
}

/// A list and its members (indexes into the project's profiles).
#[derive(Debug, Clone)]
pub struct List {
    pub id: i64,
    pub name: String,
    pub description: Option<String>,
    pub list_type: ListType,
    /// Epoch milliseconds.
    pub created_at: u64,
    /// Subscribe and unsubscribe see the list from this time on (epoch milliseconds).
    pub visible_at: u64,
    /// Referenced by a campaign or journey: deleting it answers 409.
    pub in_use: bool,
    members: hashbrown::HashSet<u32>,
}

impl List {
    pub fn len(&self) -> usize {
        self.members.len()
    }
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}

/// A user profile. Data fields are kept serialized, which is compact for a million profiles.
#[derive(Debug, Clone, Default)]
struct User {
    email: Option<Box<str>>,
    user_id: Option<Box<str>>,
    data: Option<Box<str>>,
}

/// The JSON type of a data field, which later writes must keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldType {
    String,
    Number,
    Boolean,
    Object,
    Array,
}

impl FieldType {
    fn of(v: &Value) -> Option<FieldType> {
        match v {
            Value::Null => None,
            Value::String(_) => Some(FieldType::String),
            Value::Number(_) => Some(FieldType::Number),
            Value::Bool(_) => Some(FieldType::Boolean),
            Value::Object(_) => Some(FieldType::Object),
            Value::Array(_) => Some(FieldType::Array),
        }
    }
    fn name(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Number => "number",
            FieldType::Boolean => "boolean",
            FieldType::Object => "object",
            FieldType::Array => "array",
        }
    }
}

/// Why one user write was refused. Subscribe reports it in a bucket; users/update as an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowError {
    /// Neither email nor userId was given.
    NoIdentifier,
    Invalid {
        email: Option<String>,
        user_id: Option<(String, UserIdProblem)>,
    },
    Forgotten {
        email: bool,
        user_id: bool,
    },
    NotFound {
        email: bool,
        user_id: bool,
    },
    Conflict {
        email: bool,
        user_id: bool,
    },
    FieldType {
        field: String,
        expected: &'static str,
        incoming: &'static str,
    },
}

/// A list id that subscribe, unsubscribe or a read cannot use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListProblem {
    /// No such list in this project (or not visible yet).
    Unknown,
    /// The list exists but is not a static list.
    NotStandard(ListType),
}

/// How a row resolves to a profile.
enum Resolution {
    Existing(u32),
    Create,
    CreatePlaceholder,
}

/// One user write: subscribe rows, users/update and seeding share it.
#[derive(Debug, Default, Clone)]
pub struct UserWrite<'a> {
    pub email: Option<&'a str>,
    pub user_id: Option<&'a str>,
    pub data_fields: Option<&'a Map<String, Value>>,
    pub prefer_user_id: bool,
    pub merge_nested: bool,
    pub existing_only: bool,
}

/// Where to find a user by identifier. Non-unique identifiers (userId in email-based
/// projects, email in userId-based ones) may have several entries; lookups act on one of them.
#[derive(Debug, Default)]
struct Index {
    /// (32-bit hash of the identifier, user index): 8 bytes an entry, and growing the table
    /// never re-reads the users.
    table: HashTable<(u32, u32)>,
}

/// Widens a 32-bit identifier hash for the table (an odd multiplier spreads it to the high
/// bits, which the table uses for its tags).
fn spread(h: u32) -> u64 {
    u64::from(h).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// A member of a list as the inspection API shows it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct MemberView {
    pub email: Option<String>,
    #[serde(rename = "userId")]
    pub user_id: Option<String>,
}

/// A list as the inspection API shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListView {
    pub id: i64,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub list_type: ListType,
    pub created_at: u64,
    pub size: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<MemberView>>,
}

/// A project as the inspection API shows it (never with its keys).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectView {
    pub id: u64,
    #[serde(rename = "type")]
    pub project_type: &'static str,
    pub region: &'static str,
    pub users: usize,
    pub lists: Vec<ListView>,
}

/// One project's state.
#[derive(Debug)]
pub struct Project {
    pub id: u64,
    pub project_type: ProjectType,
    pub region: Region,
    users: Vec<User>,
    live_users: usize,
    hasher: DefaultHashBuilder,
    by_email: Index,
    by_user_id: Index,
    forgotten_emails: HashSet<String>,
    forgotten_user_ids: HashSet<String>,
    field_types: HashMap<String, FieldType>,
    lists: BTreeMap<i64, List>,
}

impl Project {
    pub fn new(id: u64, project_type: ProjectType, region: Region) -> Self {
        Self {
            id,
            project_type,
            region,
            users: Vec::new(),
            live_users: 0,
            hasher: DefaultHashBuilder::default(),
            by_email: Index::default(),
            by_user_id: Index::default(),
            forgotten_emails: HashSet::new(),
            forgotten_user_ids: HashSet::new(),
            field_types: HashMap::new(),
            lists: BTreeMap::new(),
        }
    }

    /// The channel that `channelUnsubscribe` opts users out of (one per project here).
    pub fn channel_id(&self) -> u64 {
        self.id * 10 + 1
    }

    /// Forgets all users and lists, keeping the project itself.
    pub fn clear(&mut self) {
        *self = Project::new(self.id, self.project_type, self.region);
    }

    pub fn user_count(&self) -> usize {
        self.live_users
    }

    // ---- indexes -------------------------------------------------------------------------

    fn find(&self, by_email: bool, key: &str) -> Option<u32> {
        let index = if by_email {
            &self.by_email
        } else {
            &self.by_user_id
        };
        let h = self.hasher.hash_one(key) as u32;
        index
            .table
            .find(spread(h), |&(eh, i)| {
                eh == h && {
                    let u = &self.users[i as usize];
                    let v = if by_email { &u.email } else { &u.user_id };
                    v.as_deref() == Some(key)
                }
            })
            .map(|&(_, i)| i)
    }

    /// The 32-bit hash of a user's identifier and the index it belongs in, if it has one.
    fn slot(&mut self, by_email: bool, idx: u32) -> Option<(u32, &mut Index)> {
        let u = &self.users[idx as usize];
        let key = if by_email { &u.email } else { &u.user_id };
        let h = self.hasher.hash_one(&**key.as_ref()?) as u32;
        let index = if by_email {
            &mut self.by_email
        } else {
            &mut self.by_user_id
        };
        Some((h, index))
    }

    fn unindex(&mut self, by_email: bool, idx: u32) {
        if let Some((h, index)) = self.slot(by_email, idx)
            && let Ok(entry) = index.table.find_entry(spread(h), |&(_, i)| i == idx)
        {
            entry.remove();
        }
    }

    fn index(&mut self, by_email: bool, idx: u32) {
        if let Some((h, index)) = self.slot(by_email, idx) {
            index
                .table
                .insert_unique(spread(h), (h, idx), |&(eh, _)| spread(eh));
        }
    }

    fn set_email(&mut self, idx: u32, email: &str) {
        if self.users[idx as usize].email.as_deref() == Some(email) {
            return;
        }
        self.unindex(true, idx);
        self.users[idx as usize].email = Some(email.into());
        self.index(true, idx);
    }

    fn set_user_id(&mut self, idx: u32, user_id: &str) {
        if self.users[idx as usize].user_id.as_deref() == Some(user_id) {
            return;
        }
        self.unindex(false, idx);
        self.users[idx as usize].user_id = Some(user_id.into());
        self.index(false, idx);
    }

    fn create_user(&mut self, email: Option<&str>, user_id: Option<&str>) -> u32 {
        let idx = self.users.len() as u32;
        self.users.push(User {
            email: email.map(Into::into),
            user_id: user_id.map(Into::into),
            data: None,
        });
        self.live_users += 1;
        self.index(true, idx);
        self.index(false, idx);
        idx
    }

    // ---- identity rules ------------------------------------------------------------------

    fn validate(email: Option<&str>, user_id: Option<&str>) -> Result<(), RowError> {
        let bad_email = email.filter(|e| !is_valid_email(e)).map(str::to_string);
        let bad_user_id = user_id.and_then(|u| check_user_id(u).err().map(|p| (u.to_string(), p)));
        if bad_email.is_some() || bad_user_id.is_some() {
            return Err(RowError::Invalid {
                email: bad_email,
                user_id: bad_user_id,
            });
        }
        if email.is_none() && user_id.is_none() {
            return Err(RowError::NoIdentifier);
        }
        Ok(())
    }

    fn check_forgotten(&self, email: Option<&str>, user_id: Option<&str>) -> Result<(), RowError> {
        let email = email.is_some_and(|e| self.forgotten_emails.contains(e));
        let user_id = user_id.is_some_and(|u| self.forgotten_user_ids.contains(u));
        if email || user_id {
            Err(RowError::Forgotten { email, user_id })
        } else {
            Ok(())
        }
    }

    /// Finds (or decides to create) the profile a write acts on, by the project type's rules.
    fn resolve(&self, w: &UserWrite<'_>, email: Option<&str>) -> Result<Resolution, RowError> {
        let uid = w.user_id;
        match self.project_type {
            ProjectType::Hybrid => {
                let pu = uid.and_then(|u| self.find(false, u));
                let pe = email.and_then(|e| self.find(true, e));
                match (pu, pe) {
                    (Some(a), Some(b)) if a == b => Ok(Resolution::Existing(a)),
                    // The email belongs to another profile than the userId.
                    (Some(_), Some(_)) => Err(RowError::Conflict {
                        email: true,
                        user_id: false,
                    }),
                    (Some(a), None) => Ok(Resolution::Existing(a)),
                    (None, Some(b)) => {
                        if uid.is_some() && self.users[b as usize].user_id.is_some() {
                            // The email's profile already has another userId.
                            Err(RowError::Conflict {
                                email: false,
                                user_id: true,
                            })
                        } else {
                            Ok(Resolution::Existing(b))
                        }
                    }
                    (None, None) if w.existing_only => Err(RowError::NotFound {
                        email: email.is_some(),
                        user_id: uid.is_some(),
                    }),
                    (None, None) => Ok(Resolution::Create),
                }
            }
            ProjectType::UserId => match uid {
                // Users of userID-based projects are identified by userId only.
                None => Err(RowError::NotFound {
                    email: true,
                    user_id: false,
                }),
                Some(u) => match self.find(false, u) {
                    Some(a) => Ok(Resolution::Existing(a)),
                    None if w.existing_only => Err(RowError::NotFound {
                        email: false,
                        user_id: true,
                    }),
                    None => Ok(Resolution::Create),
                },
            },
            // updateExistingUsersOnly is not honoured in email-based projects.
            ProjectType::Email => match (email, uid) {
                (Some(e), _) => Ok(self
                    .find(true, e)
                    .map_or(Resolution::Create, Resolution::Existing)),
                (None, Some(u)) => match self.find(false, u) {
                    Some(a) => Ok(Resolution::Existing(a)),
                    None if w.prefer_user_id => Ok(Resolution::CreatePlaceholder),
                    None => Err(RowError::NotFound {
                        email: false,
                        user_id: true,
                    }),
                },
                (None, None) => Err(RowError::NoIdentifier),
            },
        }
    }

    fn check_field_types(&self, data: &Map<String, Value>) -> Result<(), RowError> {
        for (k, v) in data {
            if let (Some(incoming), Some(expected)) = (FieldType::of(v), self.field_types.get(k))
                && incoming != *expected
            {
                return Err(RowError::FieldType {
                    field: k.clone(),
                    expected: expected.name(),
                    incoming: incoming.name(),
                });
            }
        }
        Ok(())
    }

    /// Creates or updates a profile. Returns its index and the data fields it created.
    pub fn write_user(
        &mut self,
        w: &UserWrite<'_>,
        placeholder: &mut dyn FnMut() -> String,
    ) -> Result<(u32, Vec<String>), RowError> {
        Self::validate(w.email, w.user_id)?;
        let email = w.email.map(normalize_email);
        let email = email.as_deref();
        self.check_forgotten(email, w.user_id)?;
        if let Some(d) = w.data_fields {
            self.check_field_types(d)?;
        }
        let idx = match self.resolve(w, email)? {
            Resolution::Existing(i) => {
                if let Some(e) = email {
                    self.set_email(i, e);
                }
                if let Some(u) = w.user_id {
                    self.set_user_id(i, u);
                }
                i
            }
            Resolution::Create => self.create_user(email, w.user_id),
            Resolution::CreatePlaceholder => {
                let p = placeholder();
                self.create_user(Some(&p), w.user_id)
            }
        };
        let mut created = Vec::new();
        if let Some(d) = w.data_fields
            && !d.is_empty()
        {
            for (k, v) in d {
                if let Some(t) = FieldType::of(v)
                    && !self.field_types.contains_key(k)
                {
                    self.field_types.insert(k.clone(), t);
                    created.push(k.clone());
                }
            }
            let user = &mut self.users[idx as usize];
            user.data = Some(merge_data(user.data.as_deref(), d, w.merge_nested));
        }
        Ok((idx, created))
    }

    /// Finds the profile an unsubscribe row names, without creating one.
    fn lookup(&self, email: Option<&str>, user_id: Option<&str>) -> Result<u32, RowError> {
        let found = match self.project_type {
            ProjectType::Hybrid => user_id
                .and_then(|u| self.find(false, u))
                .or_else(|| email.and_then(|e| self.find(true, e))),
            ProjectType::UserId => user_id.and_then(|u| self.find(false, u)),
            ProjectType::Email => email
                .and_then(|e| self.find(true, e))
                .or_else(|| user_id.and_then(|u| self.find(false, u))),
        };
        found.ok_or(RowError::NotFound {
            email: email.is_some(),
            user_id: user_id.is_some(),
        })
    }

    // ---- lists -------------------------------------------------------------------------------

    pub fn create_list(
        &mut self,
        id: i64,
        name: String,
        description: Option<String>,
        list_type: ListType,
        now_ms: u64,
        invisible_ms: u64,
    ) -> &mut List {
        self.lists.entry(id).or_insert(List {
            id,
            name,
            description,
            list_type,
            created_at: now_ms,
            visible_at: now_ms + invisible_ms,
            in_use: false,
            members: hashbrown::HashSet::new(),
        })
    }

    pub fn lists(&self) -> impl DoubleEndedIterator<Item = &List> {
        self.lists.values()
    }

    pub fn list(&self, id: i64) -> Option<&List> {
        self.lists.get(&id)
    }

    pub fn list_mut(&mut self, id: i64) -> Option<&mut List> {
        self.lists.get_mut(&id)
    }

    pub fn delete_list(&mut self, id: i64) -> Option<List> {
        self.lists.remove(&id)
    }

    fn writable_list(&mut self, id: i64, now_ms: u64) -> Result<List, ListProblem> {
        match self.lists.get(&id) {
            None => Err(ListProblem::Unknown),
            Some(l) if now_ms < l.visible_at => Err(ListProblem::Unknown),
            Some(l) if l.list_type != ListType::Standard => {
                Err(ListProblem::NotStandard(l.list_type))
            }
            Some(_) => self.lists.remove(&id).ok_or(ListProblem::Unknown),
        }
    }

    /// `POST /api/lists/subscribe`: every row succeeds or lands in a failure bucket.
    pub fn subscribe(
        &mut self,
        list_id: i64,
        rows: &[Subscriber],
        existing_only: bool,
        now_ms: u64,
        placeholder: &mut dyn FnMut() -> String,
    ) -> Result<BulkResponse, ListProblem> {
        let mut list = self.writable_list(list_id, now_ms)?;
        let mut resp = BulkResponse::default();
        let mut created_fields = Vec::new();
        for row in rows {
            let w = UserWrite {
                email: row.email.as_deref(),
                user_id: row.user_id.as_deref(),
                data_fields: row.data_fields.as_ref(),
                prefer_user_id: row.prefer_user_id.unwrap_or(false),
                merge_nested: row.merge_nested_objects.unwrap_or(false),
                existing_only,
            };
            match self.write_user(&w, placeholder) {
                Ok((idx, created)) => {
                    list.members.insert(idx);
                    created_fields.extend(created);
                    resp.success_count += 1;
                }
                Err(e) => record_failure(&mut resp, w.email, w.user_id, &e),
            }
        }
        resp.created_fields = created_fields;
        self.lists.insert(list_id, list);
        Ok(resp)
    }

    /// `POST /api/lists/unsubscribe`. Removing a user who is not a member succeeds.
    pub fn unsubscribe(
        &mut self,
        list_id: i64,
        rows: &[Unsubscriber],
        channel_unsubscribe: bool,
        now_ms: u64,
    ) -> Result<BulkResponse, ListProblem> {
        let mut list = self.writable_list(list_id, now_ms)?;
        let mut resp = BulkResponse::default();
        let channel = self.channel_id();
        for row in rows {
            let (email, user_id) = (row.email.as_deref(), row.user_id.as_deref());
            let found = Self::validate(email, user_id).and_then(|()| {
                let e = email.map(normalize_email);
                self.check_forgotten(e.as_deref(), user_id)?;
                self.lookup(e.as_deref(), user_id)
            });
            match found {
                Ok(idx) => {
                    list.members.remove(&idx);
                    if channel_unsubscribe {
                        self.add_unsubscribed_channel(idx, channel);
                    }
                    resp.success_count += 1;
                }
                Err(e) => record_failure(&mut resp, email, user_id, &e),
            }
        }
        self.lists.insert(list_id, list);
        Ok(resp)
    }

    fn add_unsubscribed_channel(&mut self, idx: u32, channel: u64) {
        let user = &mut self.users[idx as usize];
        let mut data = parse_data(user.data.as_deref());
        let ids = data
            .entry("unsubscribedChannelIds")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(a) = ids
            && !a.iter().any(|v| v.as_u64() == Some(channel))
        {
            a.push(Value::from(channel));
        }
        user.data = Some(Value::Object(data).to_string().into_boxed_str());
    }

    /// Makes identifiers GDPR-forgotten: the profile is deleted and later writes are refused.
    pub fn forget(&mut self, email: Option<&str>, user_id: Option<&str>) {
        let email = email.map(|e| normalize_email(e).into_owned());
        let mut found: Vec<u32> = [
            email.as_deref().and_then(|e| self.find(true, e)),
            user_id.and_then(|u| self.find(false, u)),
        ]
        .into_iter()
        .flatten()
        .collect();
        found.dedup();
        for idx in found {
            self.unindex(true, idx);
            self.unindex(false, idx);
            self.users[idx as usize] = User::default();
            self.live_users -= 1;
            for l in self.lists.values_mut() {
                l.members.remove(&idx);
            }
        }
        if let Some(e) = email {
            self.forgotten_emails.insert(e);
        }
        if let Some(u) = user_id {
            self.forgotten_user_ids.insert(u.to_string());
        }
    }

    /// Adds existing or new profiles to a list directly (seeding), bypassing visibility and type.
    pub fn add_member(&mut self, list_id: i64, idx: u32) {
        if let Some(l) = self.lists.get_mut(&list_id) {
            l.members.insert(idx);
        }
    }

    /// The identifier lines of `getUsers` / `previewUsers`: the email, or the userId when the
    /// profile has no email or when `prefer_user_id` is set in a hybrid project.
    pub fn member_lines(&self, list: &List, prefer_user_id: bool, limit: Option<usize>) -> String {
        let prefer = prefer_user_id && self.project_type == ProjectType::Hybrid;
        let mut out =
            String::with_capacity(list.members.len().min(limit.unwrap_or(usize::MAX)) * 24);
        for &idx in list.members.iter().take(limit.unwrap_or(usize::MAX)) {
            let u = &self.users[idx as usize];
            let line = if prefer {
                u.user_id.as_deref().or(u.email.as_deref())
            } else {
                u.email.as_deref().or(u.user_id.as_deref())
            };
            if let Some(line) = line {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    /// The `user` object of `getByEmail` / `byUserId`, or `None` when no profile matches.
    pub fn user_json(&self, email: Option<&str>, user_id: Option<&str>) -> Option<Value> {
        let idx = match (email, user_id) {
            (Some(e), _) => self.find(true, &normalize_email(e))?,
            (None, Some(u)) => self.find(false, u)?,
            (None, None) => return None,
        };
        let u = &self.users[idx as usize];
        let mut data = parse_data(u.data.as_deref());
        let list_ids: Vec<Value> = self
            .lists
            .values()
            .filter(|l| l.members.contains(&idx))
            .map(|l| Value::from(l.id))
            .collect();
        let list_key = match self.project_type {
            ProjectType::Email => "emailListIds",
            _ => "userListIds",
        };
        data.insert(list_key.into(), Value::Array(list_ids));
        let mut user = Map::new();
        if let Some(e) = &u.email {
            data.insert("email".into(), Value::from(&**e));
            user.insert("email".into(), Value::from(&**e));
        }
        if let Some(id) = &u.user_id {
            data.insert("userId".into(), Value::from(&**id));
            user.insert("userId".into(), Value::from(&**id));
        }
        user.insert("dataFields".into(), Value::Object(data));
        Some(Value::Object(user))
    }

    fn member_view(&self, idx: u32) -> MemberView {
        let u = &self.users[idx as usize];
        MemberView {
            email: u.email.as_deref().map(str::to_string),
            user_id: u.user_id.as_deref().map(str::to_string),
        }
    }

    /// The inspection view: lists newest first, members sorted, when asked for.
    pub fn view(&self, with_members: bool) -> ProjectView {
        ProjectView {
            id: self.id,
            project_type: self.project_type.name(),
            region: self.region.name(),
            users: self.live_users,
            lists: self
                .lists
                .values()
                .rev()
                .map(|l| ListView {
                    id: l.id,
                    name: l.name.clone(),
                    description: l.description.clone(),
                    list_type: l.list_type,
                    created_at: l.created_at,
                    size: l.members.len(),
                    members: with_members.then(|| {
                        let mut m: Vec<MemberView> =
                            l.members.iter().map(|&i| self.member_view(i)).collect();
                        m.sort_unstable();
                        m
                    }),
                })
                .collect(),
        }
    }

    /// Members of one list, sorted (for in-process tests).
    pub fn members(&self, list_id: i64) -> Option<Vec<MemberView>> {
        let l = self.lists.get(&list_id)?;
        let mut m: Vec<MemberView> = l.members.iter().map(|&i| self.member_view(i)).collect();
        m.sort_unstable();
        Some(m)
    }
}

fn parse_data(data: Option<&str>) -> Map<String, Value> {
    data.and_then(|d| serde_json::from_str(d).ok())
        .unwrap_or_default()
}

/// Merges incoming data fields into stored ones: top-level keys are replaced, or merged one
/// level deep when both sides are objects and `merge_nested` is set.
fn merge_data(
    existing: Option<&str>,
    incoming: &Map<String, Value>,
    merge_nested: bool,
) -> Box<str> {
    let merged = match existing {
        None => {
            return serde_json::to_string(incoming)
                .unwrap_or_else(|_| "{}".to_string())
                .into_boxed_str();
        }
        Some(old) => {
            let mut data = parse_data(Some(old));
            for (k, v) in incoming {
                match (data.get_mut(k), v) {
                    (Some(Value::Object(old)), Value::Object(new)) if merge_nested => {
                        for (nk, nv) in new {
                            old.insert(nk.clone(), nv.clone());
                        }
                    }
                    _ => {
                        data.insert(k.clone(), v.clone());
                    }
                }
            }
            Value::Object(data)
        }
    };
    merged.to_string().into_boxed_str()
}

/// Puts a failed row's identifiers in their `failedUpdates` buckets and the deprecated arrays.
fn record_failure(
    resp: &mut BulkResponse,
    email: Option<&str>,
    user_id: Option<&str>,
    err: &RowError,
) {
    resp.fail_count += 1;
    let email_l = email.map(|e| normalize_email(e).into_owned());
    let f = &mut resp.failed_updates;
    let (email_bucket, uid_bucket): (Option<&mut Vec<String>>, Option<&mut Vec<String>>) = match err
    {
        RowError::NoIdentifier => (None, None),
        RowError::Invalid {
            email: e,
            user_id: u,
        } => (
            e.as_ref().map(|_| &mut f.invalid_emails),
            u.as_ref().map(|_| &mut f.invalid_user_ids),
        ),
        RowError::Forgotten {
            email: e,
            user_id: u,
        } => (
            e.then_some(&mut f.forgotten_emails),
            u.then_some(&mut f.forgotten_user_ids),
        ),
        RowError::NotFound {
            email: e,
            user_id: u,
        } => (
            e.then_some(&mut f.not_found_emails),
            u.then_some(&mut f.not_found_user_ids),
        ),
        RowError::Conflict {
            email: e,
            user_id: u,
        } => (
            e.then_some(&mut f.conflict_emails),
            u.then_some(&mut f.conflict_user_ids),
        ),
        RowError::FieldType { .. } => (
            Some(&mut f.invalid_data_emails),
            Some(&mut f.invalid_data_user_ids),
        ),
    };
    if let (Some(b), Some(e)) = (email_bucket, &email_l) {
        b.push(e.clone());
    }
    if let (Some(b), Some(u)) = (uid_bucket, user_id) {
        b.push(u.to_string());
    }
    if let Some(e) = email_l {
        resp.invalid_emails.push(e);
    }
    if let Some(u) = user_id {
        resp.invalid_user_ids.push(u.to_string());
    }
}
