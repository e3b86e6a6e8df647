//! Wire shapes of `POST /api/lists/subscribe` and `/unsubscribe` and their
//! `UserBulkUpdateListResponse`. Requests serialise with Segment's key order; responses parse leniently.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Where a request goes: a known list id, or (in plans made offline) the audience whose list
/// is still to be resolved.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(untagged)]
pub enum ListRef {
    Id(i64),
    /// A placeholder naming the audience key, e.g. `"audience:vip"`.
    Audience(String),
}

impl ListRef {
    pub fn for_audience(key: &str) -> Self {
        ListRef::Audience(format!("audience:{key}"))
    }
}

/// One row of a subscribe request (`OptionalApiUser`), keys in Segment's order. Borrows or
/// owns its parts, so rows can be written straight from stored changes.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscriber<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefer_user_id: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_fields: Option<Cow<'a, Map<String, Value>>>,
}

/// One row of an unsubscribe request (`Unsubscriber`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Unsubscriber<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<Cow<'a, str>>,
}

/// `failedUpdates`; each bucket may be absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FailedUpdates {
    pub conflict_emails: Vec<String>,
    pub conflict_user_ids: Vec<String>,
    pub forgotten_emails: Vec<String>,
    pub forgotten_user_ids: Vec<String>,
    pub invalid_data_emails: Vec<String>,
    pub invalid_data_user_ids: Vec<String>,
    pub invalid_emails: Vec<String>,
    pub invalid_user_ids: Vec<String>,
    pub not_found_emails: Vec<String>,
    pub not_found_user_ids: Vec<String>,
}

/// `UserBulkUpdateListResponse`: every key optional, as older and newer API versions differ.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BulkUpdateResponse {
    pub success_count: u64,
    pub fail_count: u64,
    /// Deprecated: emails of failed rows.
    pub invalid_emails: Vec<String>,
    /// Deprecated: userIds of failed rows.
    pub invalid_user_ids: Vec<String>,
    /// Absent in responses of older API versions.
    pub failed_updates: Option<FailedUpdates>,
    pub created_fields: Vec<String>,
    pub filtered_out_fields: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rows_serialise_in_segment_key_order_without_absent_keys() {
        let data = Map::from_iter([("plan".to_string(), json!("gold"))]);
        let s = Subscriber {
            email: Some("a@x.com".into()),
            user_id: Some("u1".into()),
            prefer_user_id: Some(true),
            data_fields: Some(Cow::Borrowed(&data)),
        };
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"email":"a@x.com","userId":"u1","preferUserId":true,"dataFields":{"plan":"gold"}}"#
        );
        let u = Unsubscriber {
            email: None,
            user_id: Some("u1".into()),
        };
        assert_eq!(serde_json::to_string(&u).unwrap(), r#"{"userId":"u1"}"#);
        assert_eq!(serde_json::to_string(&ListRef::Id(5)).unwrap(), "5");
        assert_eq!(
            serde_json::to_string(&ListRef::for_audience("vip")).unwrap(),
            r#""audience:vip""#
        );
    }

    #[test]
    fn responses_of_every_era_parse() {
        let cases = [
            (
                r#"{"successCount":1,"failCount":0,"invalidEmails":[]}"#,
                None,
            ),
            (
                r#"{"successCount":1,"failCount":0,"invalidEmails":[],"invalidUserIds":[]}"#,
                None,
            ),
            (
                r#"{"successCount":0,"failCount":1,"failedUpdates":{"notFoundEmails":["a@x.co"]},"unknownKey":5}"#,
                Some(vec!["a@x.co".to_string()]),
            ),
            ("{}", None),
        ];
        for (text, not_found) in cases {
            let r: BulkUpdateResponse = serde_json::from_str(text).unwrap();
            assert_eq!(
                r.failed_updates.map(|f| f.not_found_emails),
                not_found,
                "{text}"
            );
        }
    }
}
