//! What `iterable-lists audience sync` and `PUT /v1/audiences/{destination}/{audience}/members`
//! share: the options of a snapshot, checked, and the [`SnapshotSpec`] they make with the
//! destination's configuration (its mass-removal guard's `max_removal_ratio` for the audience, the audience's settings).

use destination::AudienceSettings;
use sync::ChangeSettings;
use sync::snapshot::{DEFAULT_MAX_BAD_RATIO, Policy, SnapshotSpec};

use crate::config::DestinationConfig;

/// The longest audience key taken (as the event path takes it from `audience_key`).
pub const MAX_AUDIENCE_KEY: usize = 256;

/// How a snapshot is to be applied.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SnapshotOptions {
    pub dry_run: bool,
    pub allow_mass_removal: bool,
    /// The largest share of bad rows (0 to 1).
    pub max_bad_ratio: f64,
    /// The snapshot's time (epoch ms); `None`: now.
    pub time_ms: Option<i64>,
}

impl Default for SnapshotOptions {
    fn default() -> Self {
        Self {
            dry_run: false,
            allow_mass_removal: false,
            max_bad_ratio: DEFAULT_MAX_BAD_RATIO,
            time_ms: None,
        }
    }
}

/// Checks an audience key: not empty, no control characters, at most [`MAX_AUDIENCE_KEY`]
/// bytes.
pub fn check_audience_key(key: &str) -> Result<(), String> {
    if key.trim().is_empty() {
        return Err("the audience key must not be empty".into());
    }
    if key.len() > MAX_AUDIENCE_KEY {
        return Err(format!(
            "the audience key is longer than {MAX_AUDIENCE_KEY} bytes"
        ));
    }
    if key.chars().any(char::is_control) {
        return Err("the audience key holds control characters".into());
    }
    Ok(())
}

/// Checks a share of bad rows.
pub fn check_ratio(name: &str, v: f64) -> Result<f64, String> {
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{name} must be a share between 0 and 1, got {v}"))
    }
}

/// The spec of a snapshot of `audience` of destination `d`, received at `now_ms`.
pub fn snapshot_spec(
    d: &DestinationConfig,
    audience: &str,
    options: SnapshotOptions,
    now_ms: i64,
) -> Result<SnapshotSpec, String> {
    check_audience_key(audience)?;
    check_ratio("max_bad_ratio", options.max_bad_ratio)?;
    let settings = d.audience_settings(audience, AudienceSettings::default());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |t| t.subsec_nanos());
    Ok(SnapshotSpec {
        destination: d.name.clone(),
        audience_key: audience.to_string(),
        time_ms: options.time_ms.unwrap_or(now_ms),
        received_ms: now_ms,
        message_id: format!("snapshot-{now_ms}-{:x}{nanos:08x}", std::process::id()),
        settings: ChangeSettings {
            update_existing_users_only: settings.update_existing_users_only,
            channel_unsubscribe: settings.channel_unsubscribe,
            campaign_id: settings.campaign_id,
        },
        policy: Policy {
            dry_run: options.dry_run,
            max_removal_ratio: d.removal_guard.policy(audience).max_ratio,
            allow_mass_removal: options.allow_mass_removal,
            max_bad_ratio: options.max_bad_ratio,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audience_keys_and_ratios_are_checked() {
        let cases = [
            ("vip", true),
            ("", false),
            ("  ", false),
            ("a\nb", false),
            (&*"k".repeat(MAX_AUDIENCE_KEY + 1), false),
        ];
        for (key, ok) in cases {
            assert_eq!(check_audience_key(key).is_ok(), ok, "{key:?}");
        }
        assert!(check_ratio("r", 0.0).is_ok() && check_ratio("r", 1.0).is_ok());
        assert!(check_ratio("r", 1.1).is_err() && check_ratio("r", f64::NAN).is_err());
    }
}
