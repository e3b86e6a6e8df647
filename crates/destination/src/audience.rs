//! Per-audience settings from `context.personas.audience_settings`: update existing users
//! only, channel unsubscribe and campaign id.
//!
//! Reading an event's settings never fails ([`AudienceSettings::read`]): unambiguous strings
//! are coerced (`"true"`, `"987"`), and any other unusable value is left unset and reported as
//! an [`IgnoredSetting`], so a bad setting never blocks the event, and only the request that
//! would have carried it goes out without it. [`AudienceSettings::from_json`] is the strict
//! form (Segment validates audience settings that strictly when an audience is created).

use std::fmt;

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

/// An audience setting, by the key it has in `context.personas.audience_settings`, or the
/// settings object itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SettingName {
    UpdateExistingUsersOnly,
    GlobalUnsubscribe,
    CampaignId,
    /// `audience_settings` as a whole (when it is not an object).
    SettingsObject,
}

impl SettingName {
    pub const ALL: [SettingName; 4] = [
        SettingName::UpdateExistingUsersOnly,
        SettingName::GlobalUnsubscribe,
        SettingName::CampaignId,
        SettingName::SettingsObject,
    ];

    /// The key as events carry it (also the metrics label).
    pub fn as_str(self) -> &'static str {
        match self {
            SettingName::UpdateExistingUsersOnly => "updateExistingUsersOnly",
            SettingName::GlobalUnsubscribe => "globalUnsubscribe",
            SettingName::CampaignId => "campaignId",
            SettingName::SettingsObject => "audience_settings",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|n| n.as_str() == s)
    }

    /// Segment's label of the setting.
    pub fn label(self) -> &'static str {
        match self {
            SettingName::UpdateExistingUsersOnly => "Update existing users only",
            SettingName::GlobalUnsubscribe => "Channel Unsubscribe",
            SettingName::CampaignId => "Campaign ID",
            SettingName::SettingsObject => "Audience settings",
        }
    }
}

impl fmt::Display for SettingName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for SettingName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The longest value text kept in an [`IgnoredSetting`], in characters.
pub const MAX_VALUE_CHARS: usize = 64;

/// A setting an event carried that could not be used: it was left unset for this event (the
/// configured value, or none, applies instead), and the event went on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct IgnoredSetting {
    pub setting: SettingName,
    /// The value as compact JSON, cut to [`MAX_VALUE_CHARS`] characters (then ending in `…`).
    pub value: String,
    /// Why, e.g. `must be a whole positive number but it was a number`.
    pub reason: String,
}

impl IgnoredSetting {
    fn new(setting: SettingName, value: &Value, reason: String) -> Self {
        let text = value.to_string();
        let value = match text.char_indices().nth(MAX_VALUE_CHARS) {
            Some((cut, _)) => format!("{}…", &text[..cut]),
            None => text,
        };
        Self {
            setting,
            value,
            reason,
        }
    }

    /// The strict form's error sentence, with Segment's label, e.g. `Campaign ID must be a
    /// whole positive number but it was a number (1.5).`
    pub fn message(&self) -> String {
        match self.setting {
            SettingName::SettingsObject => format!("{} {}.", self.setting.label(), self.reason),
            s => format!("{} {} ({}).", s.label(), self.reason, self.value),
        }
    }
}

impl fmt::Display for IgnoredSetting {
    /// `campaignId 1.5 ignored: must be a whole positive number but it was a number`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} ignored: {}",
            self.setting, self.value, self.reason
        )
    }
}

fn coerce_bool(name: SettingName, v: &Value) -> Result<Option<bool>, IgnoredSetting> {
    match v {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(*b)),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) if s.trim().eq_ignore_ascii_case("true") => Ok(Some(true)),
        Value::String(s) if s.trim().eq_ignore_ascii_case("false") => Ok(Some(false)),
        other => Err(IgnoredSetting::new(
            name,
            other,
            format!("must be a boolean but it was {}", json_type(other)),
        )),
    }
}

fn coerce_id(name: SettingName, v: &Value) -> Result<Option<i64>, IgnoredSetting> {
    let bad = || {
        IgnoredSetting::new(
            name,
            v,
            format!(
                "must be a whole positive number but it was {}",
                json_type(v)
            ),
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
    /// Reads an event's settings object, never failing: booleans given as `"true"`/`"false"`
    /// and ids given as digit strings are coerced, `null` and blank strings mean "not set";
    /// any other unusable value is left unset and
    /// returned as an [`IgnoredSetting`] (in the order of the settings above; a settings value
    /// that is not an object is ignored whole).
    pub fn read(v: Option<&Value>) -> (Self, Vec<IgnoredSetting>) {
        let obj = match v {
            None | Some(Value::Null) => return (Self::default(), Vec::new()),
            Some(Value::Object(o)) => o,
            Some(other) => {
                let why = format!("must be an object but it was {}", json_type(other));
                let ignored = IgnoredSetting::new(SettingName::SettingsObject, other, why);
                return (Self::default(), vec![ignored]);
            }
        };
        let get = |k: SettingName| obj.get(k.as_str()).unwrap_or(&Value::Null);
        let mut ignored = Vec::new();
        let mut flag = |name| {
            coerce_bool(name, get(name)).unwrap_or_else(|e| {
                ignored.push(e);
                None
            })
        };
        let update_existing_users_only = flag(SettingName::UpdateExistingUsersOnly);
        let channel_unsubscribe = flag(SettingName::GlobalUnsubscribe);
        let campaign_id = coerce_id(SettingName::CampaignId, get(SettingName::CampaignId))
            .unwrap_or_else(|e| {
                ignored.push(e);
                None
            });
        let settings = Self {
            update_existing_users_only,
            channel_unsubscribe,
            campaign_id,
        };
        (settings, ignored)
    }

    /// The strict form of [`AudienceSettings::read`]: the first unusable value is an error
    /// naming the setting (Segment's label), the value and the reason.
    pub fn from_json(v: Option<&Value>) -> Result<Self, String> {
        match Self::read(v) {
            (s, ignored) if ignored.is_empty() => Ok(s),
            (_, ignored) => Err(ignored[0].message()),
        }
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

    fn ignored(setting: SettingName, value: &str, reason: &str) -> IgnoredSetting {
        IgnoredSetting {
            setting,
            value: value.into(),
            reason: reason.into(),
        }
    }

    /// Every setting with each kind of bad value: the setting is left unset, the others are
    /// kept, and the ignored value is reported with its reason.
    #[test]
    fn bad_values_are_ignored_and_reported() {
        use SettingName::*;
        const ID: &str = "must be a whole positive number but it was";
        const FLAG: &str = "must be a boolean but it was";
        let big: Value = serde_json::from_str("1e21").unwrap();
        let cases: Vec<(Value, AudienceSettings, Vec<IgnoredSetting>)> = vec![
            // campaignId: used by unsubscribe only.
            (
                json!({"campaignId": 0}),
                s(None, None, None),
                vec![ignored(CampaignId, "0", &format!("{ID} a number"))],
            ),
            (
                json!({"campaignId": -3}),
                s(None, None, None),
                vec![ignored(CampaignId, "-3", &format!("{ID} a number"))],
            ),
            (
                json!({"campaignId": 1.5}),
                s(None, None, None),
                vec![ignored(CampaignId, "1.5", &format!("{ID} a number"))],
            ),
            // (as serde_json writes the number back: 1e+21 with or without arbitrary precision)
            (
                json!({"campaignId": big}),
                s(None, None, None),
                vec![ignored(
                    CampaignId,
                    &big.to_string(),
                    &format!("{ID} a number"),
                )],
            ),
            (
                json!({"campaignId": -0.0}),
                s(None, None, None),
                vec![ignored(CampaignId, "-0.0", &format!("{ID} a number"))],
            ),
            (
                json!({"campaignId": "abc"}),
                s(None, None, None),
                vec![ignored(CampaignId, "\"abc\"", &format!("{ID} a string"))],
            ),
            (
                json!({"campaignId": "0"}),
                s(None, None, None),
                vec![ignored(CampaignId, "\"0\"", &format!("{ID} a string"))],
            ),
            (
                json!({"campaignId": "-3"}),
                s(None, None, None),
                vec![ignored(CampaignId, "\"-3\"", &format!("{ID} a string"))],
            ),
            (
                json!({"campaignId": "1.5"}),
                s(None, None, None),
                vec![ignored(CampaignId, "\"1.5\"", &format!("{ID} a string"))],
            ),
            (
                json!({"campaignId": "99999999999999999999"}),
                s(None, None, None),
                vec![ignored(
                    CampaignId,
                    "\"99999999999999999999\"",
                    &format!("{ID} a string"),
                )],
            ),
            (
                json!({"campaignId": true}),
                s(None, None, None),
                vec![ignored(CampaignId, "true", &format!("{ID} a boolean"))],
            ),
            (
                json!({"campaignId": [987]}),
                s(None, None, None),
                vec![ignored(CampaignId, "[987]", &format!("{ID} an array"))],
            ),
            (
                json!({"campaignId": {}}),
                s(None, None, None),
                vec![ignored(CampaignId, "{}", &format!("{ID} an object"))],
            ),
            // updateExistingUsersOnly: used by subscribe only.
            (
                json!({"updateExistingUsersOnly": "yes"}),
                s(None, None, None),
                vec![ignored(
                    UpdateExistingUsersOnly,
                    "\"yes\"",
                    &format!("{FLAG} a string"),
                )],
            ),
            (
                json!({"updateExistingUsersOnly": 1}),
                s(None, None, None),
                vec![ignored(
                    UpdateExistingUsersOnly,
                    "1",
                    &format!("{FLAG} a number"),
                )],
            ),
            (
                json!({"updateExistingUsersOnly": 0}),
                s(None, None, None),
                vec![ignored(
                    UpdateExistingUsersOnly,
                    "0",
                    &format!("{FLAG} a number"),
                )],
            ),
            (
                json!({"updateExistingUsersOnly": [true]}),
                s(None, None, None),
                vec![ignored(
                    UpdateExistingUsersOnly,
                    "[true]",
                    &format!("{FLAG} an array"),
                )],
            ),
            // globalUnsubscribe: used by unsubscribe only.
            (
                json!({"globalUnsubscribe": "yes"}),
                s(None, None, None),
                vec![ignored(
                    GlobalUnsubscribe,
                    "\"yes\"",
                    &format!("{FLAG} a string"),
                )],
            ),
            (
                json!({"globalUnsubscribe": "1"}),
                s(None, None, None),
                vec![ignored(
                    GlobalUnsubscribe,
                    "\"1\"",
                    &format!("{FLAG} a string"),
                )],
            ),
            (
                json!({"globalUnsubscribe": {"x": 1}}),
                s(None, None, None),
                vec![ignored(
                    GlobalUnsubscribe,
                    "{\"x\":1}",
                    &format!("{FLAG} an object"),
                )],
            ),
            // The settings object itself.
            (
                json!("x"),
                s(None, None, None),
                vec![ignored(
                    SettingsObject,
                    "\"x\"",
                    "must be an object but it was a string",
                )],
            ),
            (
                json!([1]),
                s(None, None, None),
                vec![ignored(
                    SettingsObject,
                    "[1]",
                    "must be an object but it was an array",
                )],
            ),
            (
                json!(5),
                s(None, None, None),
                vec![ignored(
                    SettingsObject,
                    "5",
                    "must be an object but it was a number",
                )],
            ),
            // A bad setting leaves the good ones alone.
            (
                json!({"updateExistingUsersOnly": true, "globalUnsubscribe": "true", "campaignId": 1.5}),
                s(Some(true), Some(true), None),
                vec![ignored(CampaignId, "1.5", &format!("{ID} a number"))],
            ),
            (
                json!({"updateExistingUsersOnly": "yes", "globalUnsubscribe": false, "campaignId": "987"}),
                s(None, Some(false), Some(987)),
                vec![ignored(
                    UpdateExistingUsersOnly,
                    "\"yes\"",
                    &format!("{FLAG} a string"),
                )],
            ),
            (
                json!({"updateExistingUsersOnly": 2, "globalUnsubscribe": "no", "campaignId": 0}),
                s(None, None, None),
                vec![
                    ignored(UpdateExistingUsersOnly, "2", &format!("{FLAG} a number")),
                    ignored(GlobalUnsubscribe, "\"no\"", &format!("{FLAG} a string")),
                    ignored(CampaignId, "0", &format!("{ID} a number")),
                ],
            ),
            // Blank strings and nulls mean "not set": nothing to report.
            (
                json!({"updateExistingUsersOnly": " ", "globalUnsubscribe": null, "campaignId": ""}),
                s(None, None, None),
                vec![],
            ),
        ];
        for (v, want, want_ignored) in cases {
            let (got, got_ignored) = AudienceSettings::read(Some(&v));
            assert_eq!((got, got_ignored), (want, want_ignored), "{v}");
        }
        assert_eq!(AudienceSettings::read(None), (s(None, None, None), vec![]));
    }

    #[test]
    fn long_values_are_cut_and_messages_name_the_setting() {
        let long = "x".repeat(200);
        let (_, ig) = AudienceSettings::read(Some(&json!({"campaignId": long})));
        assert_eq!(ig.len(), 1);
        assert_eq!(ig[0].value.chars().count(), MAX_VALUE_CHARS + 1);
        assert!(ig[0].value.starts_with("\"xxx") && ig[0].value.ends_with('…'));
        let (_, ig) = AudienceSettings::read(Some(&json!({"campaignId": 1.5})));
        assert_eq!(
            ig[0].to_string(),
            "campaignId 1.5 ignored: must be a whole positive number but it was a number"
        );
        assert_eq!(
            serde_json::to_value(&ig[0]).unwrap(),
            json!({"setting": "campaignId", "value": "1.5", "reason": "must be a whole positive number but it was a number"})
        );
        for n in SettingName::ALL {
            assert_eq!(SettingName::parse(n.as_str()), Some(n));
        }
        assert_eq!(SettingName::parse("campaignID"), None);
    }
}
