//! A list deleted in Iterable comes back (`on_list_deleted = "recreate"`, the default): when a
//! request to an audience's registered list is answered `invalidListId` and Iterable's lists no
//! longer hold it, a Standard list named after the audience is found or created, replaces the
//! old one in the registry, and the audience's whole desired membership is sent to it again
//! ([`crate::Store::replace_list`]). Logged and counted (`iterable_lists_lists_recreated_total`).
//!
//! One list per audience, also with several instances: only the lease holder of an audience
//! sends to it, so only it sees the answer; the registry is replaced only if it still holds the
//! old list, in the same transaction that makes the members pending; and a list created by an
//! instance that lost that race is deleted again. With `"pause"`, the rows wait (retried
//! hourly) until an operator acts, as before.

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use iterable::lists::{choose_list, find_by_id};

use super::shared::{Inner, lock};

/// What happens when an audience's list was deleted in Iterable (`on_list_deleted`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnListDeleted {
    /// Create a new list with the audience's name and send it the whole membership.
    #[default]
    Recreate,
    /// Leave the rows waiting (retried hourly) until an operator acts.
    Pause,
}

impl FromStr for OnListDeleted {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "recreate" => Ok(OnListDeleted::Recreate),
            "pause" => Ok(OnListDeleted::Pause),
            other => Err(format!("expected \"recreate\" or \"pause\", got {other:?}")),
        }
    }
}

/// Deleted lists this process is replacing or has replaced: each is handled once.
#[derive(Debug, Default)]
pub(super) struct Replacing(Mutex<HashSet<i64>>);

impl Inner {
    /// Whether `list_id` was found deleted and is being (or was) replaced by this process.
    pub fn is_replaced(&self, list_id: i64) -> bool {
        lock(&self.replacing.0).contains(&list_id)
    }

    /// A request to `old`, the registry's list of `audience`, was answered `invalidListId`.
    pub async fn list_deleted(self: &Arc<Self>, audience: &str, old: i64) {
        if self.cfg.on_list_deleted != OnListDeleted::Recreate
            || !lock(&self.replacing.0).insert(old)
        {
            return;
        }
        if let Err(why) = self.replace_deleted(audience, old).await {
            // Tried again at the next answer about this list.
            lock(&self.replacing.0).remove(&old);
            tracing::warn!(
                destination = %self.cfg.destination,
                audience,
                list_id = old,
                error = %why,
                "list no longer exists in Iterable; re-creating it failed, tried again later"
            );
        }
        self.waker.notify_one();
    }

    async fn replace_deleted(self: &Arc<Self>, audience: &str, old: i64) -> Result<(), String> {
        let destination = self.cfg.destination.as_str();
        let registered = self
            .store
            .list_id(destination, audience)
            .await
            .map_err(|e| e.to_string())?;
        if registered != Some(old) {
            // Replaced already (by another instance): take the registry's list.
            if let Some(id) = registered {
                lock(&self.lists).insert(audience.to_string(), id);
            }
            return Ok(());
        }
        let lists = self.client.get_lists().await.map_err(|e| e.to_string())?;
        if find_by_id(&lists, old).is_some() {
            // Not deleted after all (Iterable answered about a list it still lists).
            lock(&self.replacing.0).remove(&old);
            return Ok(());
        }
        let (new, created) = match choose_list(&lists, audience) {
            Some(l) => (l.id, false),
            None => {
                let id = self
                    .client
                    .create_list(audience)
                    .await
                    .map_err(|e| e.to_string())?;
                self.resolver.mark_created(id);
                (id, true)
            }
        };
        let now = self.now();
        let replaced = self
            .store
            .replace_list(destination, audience, old, new, now)
            .await
            .map_err(|e| e.to_string())?;
        let Some(members) = replaced else {
            // Another instance replaced it first: ours goes, theirs stays.
            if created && let Err(e) = self.client.delete_list(new).await {
                tracing::warn!(destination, audience, list_id = new, error = %e,
                    "could not delete a list created twice; delete it by hand");
            }
            if let Some(id) = self
                .store
                .list_id(destination, audience)
                .await
                .map_err(|e| e.to_string())?
            {
                lock(&self.lists).insert(audience.to_string(), id);
            }
            return Ok(());
        };
        lock(&self.lists).insert(audience.to_string(), new);
        self.metrics.list_recreated();
        tracing::warn!(
            destination,
            audience,
            old_list_id = old,
            list_id = new,
            members,
            "list {old} was deleted in Iterable: {} list {new} named {audience:?}; sending it the \
             audience's {members} members again",
            if created { "created" } else { "found" }
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_setting_reads_its_two_words() {
        assert_eq!("recreate".parse(), Ok(OnListDeleted::Recreate));
        assert_eq!("pause".parse(), Ok(OnListDeleted::Pause));
        assert_eq!(
            "Pause".parse::<OnListDeleted>(),
            Err("expected \"recreate\" or \"pause\", got \"Pause\"".to_string())
        );
        assert_eq!(OnListDeleted::default(), OnListDeleted::Recreate);
    }
}
