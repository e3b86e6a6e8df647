//! The bytes of a request body: its head (the list), one row per change, its tail (the
//! options), as Iterable's `/api/lists/subscribe` and `/api/lists/unsubscribe` take them.

use std::borrow::Cow;

use iterable_api::types::{ListRef, Subscriber, Unsubscriber};

use crate::plan::Change;
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
/// bytes are those of [`Subscriber`] (subscribe) or [`Unsubscriber`] (unsubscribe) serialized
/// by serde_json; a row without data fields (the default mapping's) is written directly.
pub(crate) fn write_row(out: &mut Vec<u8>, c: &Change, project_type: ProjectType) {
    out.clear();
    let data_fields = c.data_fields.as_ref().filter(|d| !d.is_empty());
    let written = match data_fields {
        None => write_plain_row(out, c, project_type),
        Some(d) => {
            let email = c.email.as_deref().map(Cow::Borrowed);
            let user_id = c.user_id.as_deref().map(Cow::Borrowed);
            if c.member {
                serde_json::to_writer(
                    &mut *out,
                    &Subscriber {
                        email,
                        user_id,
                        prefer_user_id: (project_type == ProjectType::UserId).then_some(true),
                        data_fields: Some(Cow::Borrowed(d)),
                    },
                )
            } else {
                serde_json::to_writer(&mut *out, &Unsubscriber { email, user_id })
            }
        }
    };
    // Writing into a `Vec` fails only for a map key that is not a string, which a
    // `Map<String, Value>` cannot hold.
    if written.is_err() {
        out.clear();
    }
}

/// A row without data fields, member by member as the derived `Serialize` of [`Subscriber`]
/// and [`Unsubscriber`] writes it: `email`, `userId`, then (subscribe, userId-based projects)
/// `preferUserId`; absent members left out; strings escaped by serde_json.
fn write_plain_row(
    out: &mut Vec<u8>,
    c: &Change,
    project_type: ProjectType,
) -> Result<(), serde_json::Error> {
    out.push(b'{');
    let mut first = true;
    for (key, value) in [(&b"\"email\":"[..], &c.email), (b"\"userId\":", &c.user_id)] {
        if let Some(v) = value {
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(key);
            serde_json::to_writer(&mut *out, v.as_str())?;
        }
    }
    if c.member && project_type == ProjectType::UserId {
        if !first {
            out.push(b',');
        }
        out.extend_from_slice(b"\"preferUserId\":true");
    }
    out.push(b'}');
    Ok(())
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

#[cfg(test)]
mod tests {
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
}
