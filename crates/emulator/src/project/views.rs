//! What is read out of a project: `getUsers` lines, a `getByEmail` user, and the inspection
//! API's views of projects, lists and members.

use serde::Serialize;
use serde_json::{Map, Value};

use super::profile::parse_data;
use super::{List, ListType, Project};
use crate::config::ProjectType;
use crate::identity::normalize_email;

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

impl Project {
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
