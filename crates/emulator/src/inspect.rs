//! The `/_emulator` endpoints, kept apart from `/api`: state, request log, reset, seeding and
//! live fault settings. No API key is needed and no fault or rate limit applies here.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::api::query_pairs;
use crate::config::Faults;
use crate::project::{ListType, UserWrite};
use crate::reqlog::LogQuery;
use crate::server::{Reply, Shared, lock};

/// A user to seed. `forgotten: true` makes its identifiers GDPR-forgotten instead.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedUser {
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub data_fields: Option<Map<String, Value>>,
    #[serde(default)]
    pub forgotten: bool,
}

/// A list to seed, of any type, visible at once.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedList {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub list_type: ListType,
    /// Referenced by a campaign or journey: deleting it answers 409.
    #[serde(default)]
    pub in_use: bool,
    #[serde(default)]
    pub members: Vec<SeedUser>,
}

/// `POST /_emulator/seed`. The project is named by id, or is the only one.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedRequest {
    #[serde(default)]
    pub project_id: Option<u64>,
    #[serde(default)]
    pub users: Vec<SeedUser>,
    #[serde(default)]
    pub lists: Vec<SeedList>,
}

/// What seeding created.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeedResult {
    pub project_id: u64,
    pub users: usize,
    pub forgotten: usize,
    pub lists: Vec<SeededList>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeededList {
    pub id: i64,
    pub name: String,
}

fn seed_user(
    shared: &Shared,
    p: &mut crate::project::Project,
    u: &SeedUser,
    field: &str,
) -> Result<u32, String> {
    let w = UserWrite {
        email: u.email.as_deref(),
        user_id: u.user_id.as_deref(),
        data_fields: u.data_fields.as_ref(),
        ..UserWrite::default()
    };
    let mut placeholder = || shared.placeholder_email();
    p.write_user(&w, &mut placeholder)
        .map(|(idx, _)| idx)
        .map_err(|e| format!("{field}: cannot seed this user: {e:?}"))
}

/// Seeds users, forgotten users and lists into one project.
pub(crate) fn seed(shared: &Shared, req: &SeedRequest) -> Result<SeedResult, String> {
    let idx = match req.project_id {
        Some(id) => shared
            .projects
            .iter()
            .position(|p| lock(p).id == id)
            .ok_or_else(|| format!("projectId: no project {id}"))?,
        None if shared.projects.len() == 1 => 0,
        None => return Err("projectId: required when there are several projects".into()),
    };
    let now = shared.clock.now_millis();
    let mut p = lock(&shared.projects[idx]);
    let (mut users, mut forgotten) = (0, 0);
    for (i, u) in req.users.iter().enumerate() {
        if u.forgotten {
            if u.email.is_none() && u.user_id.is_none() {
                return Err(format!(
                    "users[{i}]: a forgotten user needs an email or a userId"
                ));
            }
            p.forget(u.email.as_deref(), u.user_id.as_deref());
            forgotten += 1;
        } else {
            seed_user(shared, &mut p, u, &format!("users[{i}]"))?;
            users += 1;
        }
    }
    let mut lists = Vec::new();
    for (i, l) in req.lists.iter().enumerate() {
        if l.name.trim().is_empty() {
            return Err(format!("lists[{i}].name: must not be empty"));
        }
        let id = shared.new_list_id();
        let list = p.create_list(
            id,
            l.name.clone(),
            l.description.clone(),
            l.list_type,
            now,
            0,
        );
        list.in_use = l.in_use;
        for (j, m) in l.members.iter().enumerate() {
            let member = seed_user(shared, &mut p, m, &format!("lists[{i}].members[{j}]"))?;
            p.add_member(id, member);
        }
        lists.push(SeededList {
            id,
            name: l.name.clone(),
        });
    }
    Ok(SeedResult {
        project_id: p.id,
        users,
        forgotten,
        lists,
    })
}

fn error(status: u16, msg: impl Into<String>) -> Reply {
    Reply::json(status, &json!({ "error": msg.into() }))
}

fn flag(pairs: &[(String, String)], name: &str, default: bool) -> Result<bool, Reply> {
    match pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
    {
        None => Ok(default),
        Some("true" | "1" | "") => Ok(true),
        Some("false" | "0") => Ok(false),
        Some(v) => Err(error(400, format!("{name}: {v:?} is not true or false"))),
    }
}

fn number<T: std::str::FromStr>(
    pairs: &[(String, String)],
    name: &str,
) -> Result<Option<T>, Reply> {
    match pairs.iter().find(|(k, _)| k == name) {
        None => Ok(None),
        Some((_, v)) => v
            .parse()
            .map(Some)
            .map_err(|_| error(400, format!("{name}: {v:?} is not a whole number"))),
    }
}

/// Handles one `/_emulator` request.
pub(crate) fn handle(
    shared: &Shared,
    method: &str,
    path: &str,
    query: Option<&str>,
    body: &[u8],
) -> Reply {
    match inner(shared, method, path, query, body) {
        Ok(r) | Err(r) => r,
    }
}

fn inner(
    shared: &Shared,
    method: &str,
    path: &str,
    query: Option<&str>,
    body: &[u8],
) -> Result<Reply, Reply> {
    let pairs = query_pairs(query);
    match (method, path) {
        ("GET", "/_emulator/state") => {
            let members = flag(&pairs, "members", true)?;
            let only: Option<u64> = number(&pairs, "projectId")?;
            let projects: Vec<_> = shared
                .projects
                .iter()
                .map(|p| lock(p))
                .filter(|p| only.is_none_or(|id| p.id == id))
                .map(|p| p.view(members))
                .collect();
            Ok(Reply::json(200, &json!({ "projects": projects })))
        }
        ("GET", "/_emulator/requests") => {
            let q = LogQuery {
                since: number(&pairs, "since")?.unwrap_or(0),
                path: pairs
                    .iter()
                    .find(|(k, _)| k == "path")
                    .map(|(_, v)| v.clone()),
                limit: number(&pairs, "limit")?,
            };
            let log = lock(&shared.log);
            Ok(Reply::json(
                200,
                &json!({ "requests": log.query(&q), "dropped": log.dropped() }),
            ))
        }
        ("GET", "/_emulator/stats") => {
            let projects: Vec<Value> = shared
                .projects
                .iter()
                .map(|p| {
                    let p = lock(p);
                    let memberships: usize = p.lists().map(|l| l.len()).sum();
                    json!({"id": p.id, "users": p.user_count(), "lists": p.lists().count(), "memberships": memberships})
                })
                .collect();
            Ok(Reply::json(200, &json!({ "projects": projects })))
        }
        ("POST", "/_emulator/reset") => {
            shared.reset();
            Ok(Reply::json(200, &json!({ "reset": true })))
        }
        ("POST", "/_emulator/seed") => {
            let req: SeedRequest =
                serde_json::from_slice(body).map_err(|e| error(400, format!("body: {e}")))?;
            let result = seed(shared, &req).map_err(|e| error(400, e))?;
            Ok(Reply::json(200, &result))
        }
        ("GET", "/_emulator/faults") => Ok(Reply::json(200, &*lock(&shared.faults))),
        ("PUT", "/_emulator/faults") => {
            let faults: Faults =
                serde_json::from_slice(body).map_err(|e| error(400, format!("body: {e}")))?;
            faults.validate().map_err(|e| error(400, e.to_string()))?;
            *lock(&shared.faults) = faults.clone();
            Ok(Reply::json(200, &faults))
        }
        _ => Err(error(
            404,
            format!(
                "no inspection endpoint {method} {path}; see GET /_emulator/state, GET /_emulator/requests, GET /_emulator/stats, POST /_emulator/reset, POST /_emulator/seed, GET|PUT /_emulator/faults"
            ),
        )),
    }
}
