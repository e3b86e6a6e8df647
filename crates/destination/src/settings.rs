//! Destination settings in Segment's shape (`apiKey`, `iterableProjectType`) plus the data
//! center (`region` or `baseUrl`), validated with Segment's messages where Segment has one.

use serde_json::Value;

pub use iterable_api::ApiKey;

/// How the Iterable project identifies users, as Segment's setting names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProjectType {
    /// Email or userId (also the choice for email-based projects, as Segment's docs say).
    #[default]
    Hybrid,
    UserId,
}

/// Iterable's data centers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Region {
    #[default]
    Us,
    Eu,
}

impl Region {
    pub fn base_url(self) -> &'static str {
        match self {
            Region::Us => "https://api.iterable.com",
            Region::Eu => "https://api.eu.iterable.com",
        }
    }
}

/// Validated destination settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub api_key: ApiKey,
    pub project_type: ProjectType,
    /// `https://api.iterable.com`, `https://api.eu.iterable.com`, or an override (the emulator).
    pub base_url: String,
}

/// A settings problem; the message is Segment's where Segment has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SettingsError(pub String);

impl Settings {
    /// Reads `{"apiKey":..,"iterableProjectType":..,"region":..,"baseUrl":..}`. Unknown keys are
    /// ignored, as Segment's validator removes them.
    pub fn from_json(v: &Value) -> Result<Self, SettingsError> {
        let obj = v
            .as_object()
            .ok_or_else(|| SettingsError("Settings must be a JSON object.".into()))?;
        let api_key = match obj.get("apiKey") {
            None | Some(Value::Null) => {
                return Err(SettingsError(
                    "The root value is missing the required field 'apiKey'.".into(),
                ));
            }
            Some(Value::String(s)) if !s.trim().is_empty() => ApiKey::new(s.trim()),
            Some(Value::String(_)) => {
                return Err(SettingsError("API Key must not be empty.".into()));
            }
            Some(other) => {
                return Err(SettingsError(format!(
                    "API Key must be a string but it was {}.",
                    json_type(other)
                )));
            }
        };
        let project_type = match obj.get("iterableProjectType") {
            None | Some(Value::Null) => ProjectType::Hybrid,
            Some(Value::String(s)) if s == "hybrid" => ProjectType::Hybrid,
            Some(Value::String(s)) if s == "userId" => ProjectType::UserId,
            Some(_) => {
                return Err(SettingsError(
                    "Iterable Project Type must be one of: \"hybrid\" or \"userId\".".into(),
                ));
            }
        };
        let base_url = match (obj.get("baseUrl"), obj.get("region")) {
            (Some(Value::String(url)), _) => {
                let url = url.trim().trim_end_matches('/');
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(SettingsError(format!(
                        "Base URL must start with http:// or https:// but it was {url:?}."
                    )));
                }
                url.to_string()
            }
            (Some(other), _) if !other.is_null() => {
                return Err(SettingsError(format!(
                    "Base URL must be a string but it was {}.",
                    json_type(other)
                )));
            }
            (_, None | Some(Value::Null)) => Region::Us.base_url().to_string(),
            (_, Some(Value::String(r))) if r.eq_ignore_ascii_case("us") => {
                Region::Us.base_url().to_string()
            }
            (_, Some(Value::String(r))) if r.eq_ignore_ascii_case("eu") => {
                Region::Eu.base_url().to_string()
            }
            (_, Some(_)) => {
                return Err(SettingsError(
                    "Region must be one of: \"us\" or \"eu\".".into(),
                ));
            }
        };
        Ok(Settings {
            api_key,
            project_type,
            base_url,
        })
    }
}

/// How AJV names a JSON value's type in its messages ("a string", "an array", ...).
pub(crate) fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn settings_cases() {
        let ok = [
            (
                json!({"apiKey": "K"}),
                ProjectType::Hybrid,
                "https://api.iterable.com",
            ),
            (
                json!({"apiKey": "K", "iterableProjectType": "userId", "region": "eu"}),
                ProjectType::UserId,
                "https://api.eu.iterable.com",
            ),
            (
                json!({"apiKey": "K", "baseUrl": "http://127.0.0.1:8787/", "extra": 1}),
                ProjectType::Hybrid,
                "http://127.0.0.1:8787",
            ),
        ];
        for (v, t, url) in ok {
            let s = Settings::from_json(&v).unwrap();
            assert_eq!((s.project_type, s.base_url.as_str()), (t, url), "{v}");
        }
        let bad = [
            (
                json!({}),
                "The root value is missing the required field 'apiKey'.",
            ),
            (
                json!({"apiKey": "K", "iterableProjectType": "email"}),
                "Iterable Project Type must be one of: \"hybrid\" or \"userId\".",
            ),
            (
                json!({"apiKey": 5}),
                "API Key must be a string but it was a number.",
            ),
            (
                json!({"apiKey": "K", "region": "asia"}),
                "Region must be one of: \"us\" or \"eu\".",
            ),
            (
                json!({"apiKey": "K", "baseUrl": "ftp://x"}),
                "Base URL must start with http:// or https:// but it was \"ftp://x\".",
            ),
            (json!([1]), "Settings must be a JSON object."),
        ];
        for (v, msg) in bad {
            assert_eq!(Settings::from_json(&v).unwrap_err().0, msg, "{v}");
        }
    }

    #[test]
    fn api_key_is_never_printed() {
        let s = Settings::from_json(&json!({"apiKey": "secret-key-123"})).unwrap();
        assert!(!format!("{s:?} {}", s.api_key).contains("secret-key-123"));
        assert_eq!(s.api_key.expose(), "secret-key-123");
    }
}
