//! Between the planner's changes and the store's rows: an event's planned change becomes a
//! [`MembershipChange`] to store, and a [`PendingRow`] becomes a change to plan again. The
//! store's own row types stay free of the planner's and the client's.

use destination::AudienceSettings;
use destination::plan::Change;
use iterable::types::ListRef;

use crate::store::{ChangeSettings, Identity, MembershipChange, PendingRow};

impl From<AudienceSettings> for ChangeSettings {
    fn from(s: AudienceSettings) -> Self {
        Self {
            update_existing_users_only: s.update_existing_users_only,
            channel_unsubscribe: s.channel_unsubscribe,
            campaign_id: s.campaign_id,
        }
    }
}

impl From<ChangeSettings> for AudienceSettings {
    fn from(s: ChangeSettings) -> Self {
        Self {
            update_existing_users_only: s.update_existing_users_only,
            channel_unsubscribe: s.channel_unsubscribe,
            campaign_id: s.campaign_id,
        }
    }
}

impl MembershipChange {
    /// From the planner's change (its `seq` is ignored: the store assigns arrival order).
    pub fn from_change(c: &Change) -> Self {
        Self {
            audience_key: c.audience_key.clone(),
            list_id: match c.list {
                ListRef::Id(id) => Some(id),
                ListRef::Audience(_) => None,
            },
            identity: Identity::new(c.email.as_deref(), c.user_id.as_deref()),
            member: c.member,
            data_fields: c.data_fields.clone(),
            settings: c.settings.into(),
            time_ms: c.time_ms,
        }
    }
}

impl PendingRow {
    /// The planner's change for this row; `list` is the event's list id, else the audience's
    /// placeholder (to be resolved through the registry).
    pub fn to_change(&self) -> Change {
        Change {
            audience_key: self.audience_key.clone(),
            list: match self.list_id {
                Some(id) => ListRef::Id(id),
                None => ListRef::for_audience(&self.audience_key),
            },
            email: self.identity.email.clone(),
            user_id: self.identity.user_id.clone(),
            member: self.member,
            data_fields: self.data_fields.clone(),
            settings: self.settings.into(),
            time_ms: self.version.time_ms,
            seq: self.version.seq,
        }
    }
}
