//! Lists: their types, creation and deletion, and when subscribe and unsubscribe may write
//! to one.

use serde::{Deserialize, Serialize};

use super::Project;

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
    pub(super) members: hashbrown::HashSet<u32>,
}

impl List {
    pub fn len(&self) -> usize {
        self.members.len()
    }
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}

/// A list id that subscribe, unsubscribe or a read cannot use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListProblem {
    /// No such list in this project (or not visible yet).
    Unknown,
    /// The list exists but is not a static list.
    NotStandard(ListType),
}

impl Project {
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

    pub(super) fn writable_list(&mut self, id: i64, now_ms: u64) -> Result<List, ListProblem> {
        match self.lists.get(&id) {
            None => Err(ListProblem::Unknown),
            Some(l) if now_ms < l.visible_at => Err(ListProblem::Unknown),
            Some(l) if l.list_type != ListType::Standard => {
                Err(ListProblem::NotStandard(l.list_type))
            }
            Some(_) => self.lists.remove(&id).ok_or(ListProblem::Unknown),
        }
    }

    /// Adds existing or new profiles to a list directly (seeding), bypassing visibility and type.
    pub fn add_member(&mut self, list_id: i64, idx: u32) {
        if let Some(l) = self.lists.get_mut(&list_id) {
            l.members.insert(idx);
        }
    }
}
