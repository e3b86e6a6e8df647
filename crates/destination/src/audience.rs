//! Per-audience settings from `context.personas.audience_settings`: update existing users
//! only, channel unsubscribe and campaign id. Wrongly typed values are coerced or reported.

use serde_json::Value;

use crate::settings::json_type;

/// Audience settings of one event. `None` means "not set": the key is left out of requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AudienceSettings {
    /// Subscribe option `updateExistingUsersOnly`.
    pub update_existing_users_only: Option<bool>,
    /// Unsubscribe option `channelUnsubscribe` (Segment's setting `globalUnsubscribe`).
    pub channel_unsubscribe: Option<bool>,
    /// Unsubscribe option `campaignId`.
    pub campaign_id: Option<i64>,
}

fn coerce_bool(label: &str, v: &Value) -> Result<Option<bool>, String> {
    match v {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(*b)),
        Value::String(s) if s.trim().eq_ignore_ascii_case("true") => Ok(Some(true)),
        Value::String(s) if s.trim().eq_ignore_ascii_case("false") => Ok(Some(false)),
        other => Err(format!(
            "{label} must be a boolean but it was {} ({other}).",
            json_type(other)
        )),
    }
}

fn coerce_id(label: &str, v: &Value) -> Result<Option<i64>, String> {
    let bad = || {
        format!(
            "{label} must be a whole positive number but it was {} ({v}).",
            json_type(v)
        )
    };
    let n = match v {
        Value::Null => return Ok(None),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i,
            (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => f as i64,
            _ => return Err(bad()),
        },
        Value::String(s) => {
            let t = s.trim();
            if t.is_empty() {
                return Ok(None);
            }
            if !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            t.parse().map_err(|_| bad())?
        }
        _ => return Err(bad()),
    };
    if n <= 0 {
        return Err(bad());
    }
    Ok(Some(n))
}

impl AudienceSettings {
    /// Reads the settings object. Booleans given as `"true"`/`"false"` and ids given as
    /// digit strings are coerced; anything else unusable is an error naming the setting.
    pub fn from_json(v: Option<&Value>) -> Result<Self, String> {
        let obj = match v {
            None | Some(Value::Null) => return Ok(Self::default()),
            Some(Value::Object(o)) => o,
            Some(other) => {
                return Err(format!(
                    "Audience settings must be an object but it was {}.",
                    json_type(other)
                ));
            }
        };
        let get = |k| obj.get(k).unwrap_or(&Value::Null);
        Ok(Self {
            update_existing_users_only: coerce_bool(
                "Update existing users only",
                get("updateExistingUsersOnly"),
            )?,
            channel_unsubscribe: coerce_bool("Channel Unsubscribe", get("globalUnsubscribe"))?,
            campaign_id: coerce_id("Campaign ID", get("campaignId"))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn s(u: Option<bool>, c: Option<bool>, id: Option<i64>) -> AudienceSettings {
        AudienceSettings {
            update_existing_users_only: u,
            channel_unsubscribe: c,
            campaign_id: id,
        }
    }

    #[test]
    fn coercion_table() {
        let ok = [
            (None, s(None, None, None)),
            (Some(json!({})), s(None, None, None)),
            (
                Some(
                    json!({"updateExistingUsersOnly": false, "globalUnsubscribe": true, "campaignId": 987}),
                ),
                s(Some(false), Some(true), Some(987)),
            ),
            // V4's values, which Segment drops silently, are coerced where unambiguous.
            (
                Some(
                    json!({"updateExistingUsersOnly": "true", "globalUnsubscribe": " FALSE ", "campaignId": "987"}),
                ),
                s(Some(true), Some(false), Some(987)),
            ),
            (
                Some(json!({"campaignId": 987.0, "other": "x"})),
                s(None, None, Some(987)),
            ),
            (
                Some(json!({"campaignId": "", "globalUnsubscribe": null})),
                s(None, None, None),
            ),
        ];
        for (v, want) in ok {
            assert_eq!(
                AudienceSettings::from_json(v.as_ref()).unwrap(),
                want,
                "{v:?}"
            );
        }
        let bad = [
            (
                json!({"globalUnsubscribe": "yes"}),
                "Channel Unsubscribe must be a boolean but it was a string (\"yes\").",
            ),
            (
                json!({"updateExistingUsersOnly": 1}),
                "Update existing users only must be a boolean but it was a number (1).",
            ),
            (
                json!({"campaignId": "abc"}),
                "Campaign ID must be a whole positive number but it was a string (\"abc\").",
            ),
            (
                json!({"campaignId": 1.5}),
                "Campaign ID must be a whole positive number but it was a number (1.5).",
            ),
            (
                json!({"campaignId": -3}),
                "Campaign ID must be a whole positive number but it was a number (-3).",
            ),
            (
                json!("x"),
                "Audience settings must be an object but it was a string.",
            ),
        ];
        for (v, msg) in bad {
            assert_eq!(
                AudienceSettings::from_json(Some(&v)).unwrap_err(),
                msg,
                "{v}"
            );
        }
    }
}
