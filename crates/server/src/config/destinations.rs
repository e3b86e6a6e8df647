//! `[[destination]]`: one Iterable project that audiences are synced to, with its secrets,
//! where it is, its audience settings and its delivery; names and write keys are unique
//! across destinations.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use destination::AudienceSettings;
use destination::settings::{ProjectType, Region};
use iterable::client::ApiKey;
use segment::membership::RetlSyncMode;
use serde_json::Value;
use toml::Spanned;

use super::delivery::Delivery;
use super::error::{Place, R};
use super::raw::{RawAudience, RawDestination};
use super::secrets::{Env, Secret};
use super::values::{Flag, Text};

/// One Iterable project that audiences are synced to (`[[destination]]`).
#[derive(Debug, Clone)]
pub struct DestinationConfig {
    /// `name`: unique, only `[A-Za-z0-9_.-]`; also the webhook path `/v1/webhook/<name>`.
    pub name: String,
    /// `enabled` (default true): a disabled destination is validated but syncs nothing.
    pub enabled: bool,
    /// The project's API key (`api_key` or `api_key_env`); empty when loaded with
    /// [`super::Secrets::Optional`] and its variable is not set.
    pub api_key: ApiKey,
    /// `project_type`: `"hybrid"` (default) or `"userId"`.
    pub project_type: ProjectType,
    /// Iterable's base URL, from `region` (`us`, the default, or `eu`) or `base_url`.
    pub base_url: String,
    /// The keys senders authenticate with (`write_keys` and `write_keys_env`), unique across
    /// all destinations: a write key selects its destination.
    pub write_keys: Vec<Secret>,
    /// The shared secret of Segment's Webhooks destination (`webhook_secret` or
    /// `webhook_secret_env`).
    pub webhook_secret: Option<Secret>,
    /// Mapping overrides in Segment's mapping shape (`[destination.mapping]`), checked with
    /// [`destination::fields::ActionMapping::new`] at load.
    pub mapping: Option<Value>,
    /// Audience settings of every audience (`[destination.audience_defaults]`).
    pub audience_defaults: AudienceSettings,
    /// Audience settings by audience key (`[destination.audiences.<key>]`).
    pub audiences: BTreeMap<String, AudienceSettings>,
    /// How reverse-ETL row changes sync (`retl_sync_mode`); `None` reads them like any event.
    pub retl_sync_mode: Option<RetlSyncMode>,
    /// `max_removal_ratio` (0 to 1, default [`DEFAULT_MAX_REMOVAL_RATIO`]): a snapshot that
    /// would remove more than this share of an audience's current members is refused unless
    /// the override is given.
    pub max_removal_ratio: f64,
    /// Batching, concurrency, timeouts and rate limits (`[destination.delivery]`).
    pub delivery: Delivery,
}

/// The default of `max_removal_ratio`: a quarter of an audience's members.
pub const DEFAULT_MAX_REMOVAL_RATIO: f64 = 0.25;

impl DestinationConfig {
    /// The settings an event of `audience_key` is synced with, field by field: the event's own
    /// value, else the audience's configured value, else the destination's default.
    pub fn audience_settings(
        &self,
        audience_key: &str,
        from_event: AudienceSettings,
    ) -> AudienceSettings {
        let audience = self
            .audiences
            .get(audience_key)
            .copied()
            .unwrap_or_default();
        let defaults = self.audience_defaults;
        AudienceSettings {
            update_existing_users_only: from_event
                .update_existing_users_only
                .or(audience.update_existing_users_only)
                .or(defaults.update_existing_users_only),
            channel_unsubscribe: from_event
                .channel_unsubscribe
                .or(audience.channel_unsubscribe)
                .or(defaults.channel_unsubscribe),
            campaign_id: from_event
                .campaign_id
                .or(audience.campaign_id)
                .or(defaults.campaign_id),
        }
    }
}

// ---- values shared by the file and the environment ----------------------------------------

pub(super) fn parse_project_type(text: &str) -> Result<ProjectType, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("hybrid") {
        Ok(ProjectType::Hybrid)
    } else if t.eq_ignore_ascii_case("userId") {
        Ok(ProjectType::UserId)
    } else {
        Err(format!("expected \"hybrid\" or \"userId\", got {text:?}"))
    }
}

pub(super) fn parse_region(text: &str) -> Result<String, String> {
    let t = text.trim();
    let region = if t.eq_ignore_ascii_case("us") {
        Region::Us
    } else if t.eq_ignore_ascii_case("eu") {
        Region::Eu
    } else {
        return Err(format!("expected \"us\" or \"eu\", got {text:?}"));
    };
    Ok(region.base_url().to_string())
}

pub(super) fn parse_base_url(text: &str) -> Result<String, String> {
    let url = text.trim().trim_end_matches('/');
    let lower = url.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("http://")
        .or_else(|| lower.strip_prefix("https://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains(char::is_whitespace) => {
            Ok(url.to_string())
        }
        _ => Err(format!("expected an http:// or https:// URL, got {text:?}")),
    }
}

/// A destination's name: also a URL path segment and a label in messages.
pub(super) fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        return Err(format!(
            "{name:?} may only contain letters, digits, '_', '.' and '-'"
        ));
    }
    Ok(())
}

// ---- a destination of the file -------------------------------------------------------------

/// A destination as read, with the spans the checks across destinations point at.
pub(super) struct ReadDestination {
    pub(super) config: DestinationConfig,
    name_span: Range<usize>,
    /// Per write key: how to name it in a message, and where it is.
    key_labels: Vec<(String, Range<usize>)>,
}

/// The `index`th `[[destination]]` (spanning `span`).
pub(super) fn read_destination(
    index: usize,
    raw: &RawDestination,
    span: Range<usize>,
    env: Env<'_>,
) -> R<ReadDestination> {
    let anonymous = Place::owner(format!("destination[{index}]"));
    let Some(name_value) = &raw.name else {
        return Err(anonymous.fail("name", span, "required"));
    };
    let (name, name_span) = (name_value.get_ref().0.as_str(), name_value.span());
    check_name(name).map_err(|p| anonymous.fail("name", name_span.clone(), p))?;
    let t = Place::owner(format!("destination {name:?}"));

    let enabled = raw.enabled.as_ref().is_none_or(|e| e.get_ref().0);
    let api_key = t.api_key(raw, span.clone(), env)?;
    let project_type = match &raw.project_type {
        None => ProjectType::Hybrid,
        Some(v) => {
            parse_project_type(&v.get_ref().0).map_err(|p| t.fail("project_type", v.span(), p))?
        }
    };
    let base_url = base_url(&t, &raw.region, &raw.base_url)?;
    let (keys, webhook_secret) = t.write_access(raw, span, env)?;
    let mapping = t.mapping(raw.mapping.as_ref())?;
    let audience_defaults = match &raw.audience_defaults {
        Some(a) => t.nested("audience_defaults").audience(&a.0)?,
        None => AudienceSettings::default(),
    };
    let audiences = audiences(&t, raw)?;
    let retl_sync_mode = match &raw.retl_sync_mode {
        None => None,
        Some(v) => Some(
            v.get_ref()
                .0
                .trim()
                .parse::<RetlSyncMode>()
                .map_err(|e| t.fail("retl_sync_mode", v.span(), e))?,
        ),
    };
    let max_removal_ratio = t.ratio(
        "max_removal_ratio",
        raw.max_removal_ratio.as_ref(),
        DEFAULT_MAX_REMOVAL_RATIO,
    )?;
    let delivery = match &raw.delivery {
        Some(d) => t.nested("delivery").delivery(&d.0)?,
        None => Delivery::default(),
    };
    let (write_keys, key_labels) = keys
        .into_iter()
        .map(|(key, label, span)| (key, (label, span)))
        .unzip();
    Ok(ReadDestination {
        config: DestinationConfig {
            name: name.to_string(),
            enabled,
            api_key: ApiKey::new(api_key.expose()),
            project_type,
            base_url,
            write_keys,
            webhook_secret,
            mapping,
            audience_defaults,
            audiences,
            retl_sync_mode,
            max_removal_ratio,
            delivery,
        },
        name_span,
        key_labels,
    })
}

/// Iterable's base URL: from `region` or `base_url` (at most one), else the US region's.
fn base_url(
    t: &Place,
    region: &Option<Spanned<Text>>,
    base_url: &Option<Spanned<Text>>,
) -> R<String> {
    Ok(match (region, base_url) {
        (Some(_), Some(url)) => {
            return Err(t.fail("base_url", url.span(), "set region or base_url, not both"));
        }
        (Some(r), None) => {
            parse_region(&r.get_ref().0).map_err(|p| t.fail("region", r.span(), p))?
        }
        (None, Some(u)) => {
            parse_base_url(&u.get_ref().0).map_err(|p| t.fail("base_url", u.span(), p))?
        }
        (None, None) => Region::Us.base_url().to_string(),
    })
}

/// `[destination.audiences.<key>]`, by audience key.
fn audiences(t: &Place, raw: &RawDestination) -> R<BTreeMap<String, AudienceSettings>> {
    let mut out = BTreeMap::new();
    let Some(audiences) = &raw.audiences else {
        return Ok(out);
    };
    for (key, settings) in &audiences.0 {
        let place = t.nested(&format!("audiences.{}", key.0));
        out.insert(key.0.clone(), place.audience(&settings.0)?);
    }
    Ok(out)
}

impl Place {
    /// An audience's settings (this place is its table).
    fn audience(&self, raw: &RawAudience) -> R<AudienceSettings> {
        let campaign_id = match &raw.campaign_id {
            None => None,
            Some(v) if v.get_ref().0 >= 1 => Some(v.get_ref().0),
            Some(v) => {
                return Err(self.fail(
                    "campaign_id",
                    v.span(),
                    format!("must be a whole positive number, got {}", v.get_ref().0),
                ));
            }
        };
        let flag = |v: &Option<Spanned<Flag>>| v.as_ref().map(|f| f.get_ref().0);
        Ok(AudienceSettings {
            update_existing_users_only: flag(&raw.update_existing_users_only),
            channel_unsubscribe: flag(&raw.channel_unsubscribe),
            campaign_id,
        })
    }
}

/// Names are unique, and so are write keys, across all destinations (a write key selects its
/// destination).
pub(super) fn check_unique(read: &[ReadDestination]) -> R<()> {
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut keys: HashMap<&str, usize> = HashMap::new();
    for (i, d) in read.iter().enumerate() {
        if let Some(first) = names.insert(&d.config.name, i) {
            return Err(Place::owner(format!("destination[{i}]")).fail(
                "name",
                d.name_span.clone(),
                format!(
                    "{:?} is already the name of destination[{first}]",
                    d.config.name
                ),
            ));
        }
        let owner = Place::owner(format!("destination {:?}", d.config.name));
        for (key, (label, span)) in d.config.write_keys.iter().zip(&d.key_labels) {
            if let Some(first) = keys.insert(key.expose(), i) {
                let problem = if first == i {
                    "the same key is given twice".to_string()
                } else {
                    format!(
                        "the same key is a write key of destination {:?}; write keys must be \
                         unique, since a write key selects its destination",
                        read[first].config.name
                    )
                };
                return Err(owner.fail(label, span.clone(), problem));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_support::*;

    #[test]
    fn max_removal_ratio_defaults_to_a_quarter_and_takes_whole_numbers() {
        let cases = [
            ("", 0.25),
            ("max_removal_ratio = 0.1", 0.1),
            ("max_removal_ratio = 1", 1.0),
            ("max_removal_ratio = 0", 0.0),
        ];
        for (extra, want) in cases {
            let c = parse(&dest("d", "wk", extra));
            assert_eq!(c.destinations[0].max_removal_ratio, want, "{extra}");
        }
    }

    #[test]
    fn audience_settings_are_layered_field_by_field() {
        let c = parse(&dest(
            "d",
            "wk",
            "[destination.audience_defaults]\nupdate_existing_users_only = false\n\
             channel_unsubscribe = false\ncampaign_id = 1\n\
             [destination.audiences.vip]\nchannel_unsubscribe = true\ncampaign_id = 2\n",
        ));
        let d = &c.destinations[0];
        let s = |u, ch, id| AudienceSettings {
            update_existing_users_only: u,
            channel_unsubscribe: ch,
            campaign_id: id,
        };
        let cases = [
            // (audience, from the event, expected)
            (
                "other",
                s(None, None, None),
                s(Some(false), Some(false), Some(1)),
            ),
            (
                "vip",
                s(None, None, None),
                s(Some(false), Some(true), Some(2)),
            ),
            (
                "vip",
                s(Some(true), None, Some(3)),
                s(Some(true), Some(true), Some(3)),
            ),
            (
                "vip",
                s(None, Some(false), None),
                s(Some(false), Some(false), Some(2)),
            ),
            (
                "other",
                s(Some(true), Some(true), Some(9)),
                s(Some(true), Some(true), Some(9)),
            ),
        ];
        for (audience, event, want) in cases {
            assert_eq!(
                d.audience_settings(audience, event),
                want,
                "{audience} {event:?}"
            );
        }
        // Nothing configured: the event's settings as they are.
        let bare = parse(&dest("d", "wk", ""));
        let e = s(None, Some(true), None);
        assert_eq!(bare.destinations[0].audience_settings("vip", e), e);
    }
}
