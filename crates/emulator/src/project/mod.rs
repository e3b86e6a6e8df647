//! One Iterable project's data: user profiles, static lists and their members, and the
//! identity rules of its project type. Pure logic, no I/O: the HTTP layer calls into it.
//!
//! This file holds [`Project`] itself; `profile`, a stored user profile and its data fields;
//! `index`, finding a profile by email or userId; `user_writes`, the identity rules by which a
//! write finds, creates or refuses a profile (and GDPR forgetting); `list`, lists and their
//! visibility; `bulk`, list subscribe and unsubscribe; `failures`, why a row was refused and
//! where a bulk answer reports it; `views`, what the API and the inspection endpoints read.

mod bulk;
mod failures;
mod index;
mod list;
mod profile;
mod user_writes;
mod views;

use std::collections::{BTreeMap, HashMap, HashSet};

use hashbrown::DefaultHashBuilder;

use crate::config::{ProjectType, Region};

pub use failures::RowError;
pub use list::{List, ListProblem, ListType};
pub use user_writes::UserWrite;
pub use views::{ListView, MemberView, ProjectView};

use index::Index;
use profile::{FieldType, User};

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
}
