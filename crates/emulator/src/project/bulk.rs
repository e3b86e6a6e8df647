//! `POST /api/lists/subscribe` and `/api/lists/unsubscribe`: every row succeeds or lands in a
//! failure bucket.

use serde_json::Value;

use super::failures::record_failure;
use super::profile::parse_data;
use super::{ListProblem, Project, UserWrite};
use crate::identity::normalize_email;
use crate::wire::{BulkResponse, Subscriber, Unsubscriber};

impl Project {
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
}
