//! `[[destination]]`: one Iterable project that audiences are synced to, with its secrets,
//! where it is, its audience settings and its delivery; names and write keys are unique
//! across destinations.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::time::Duration;

use destination::AudienceSettings;
use destination::settings::{ProjectType, Region};
use iterable::client::ApiKey;
use segment::membership::RetlSyncMode;
use serde_json::Value;
use sync::RemovalGuard;
use sync::reconciler::OnListDeleted;
use toml::Spanned;

use super::delivery::Delivery;
use super::error::{Place, R};
use super::raw::{RawAudience, RawDestination};
use super::secrets::{Env, Secret};
use super::storage::parse_retention;
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
    /// What happens when an audience's list was deleted in Iterable (`on_list_deleted`:
    /// `"recreate"`, the default, or `"pause"`).
    pub on_list_deleted: OnListDeleted,
    /// How often each audience is verified against its live list in the background
    /// (`verify_every`, e.g. `"6h"`); `None` (the default): never.
    pub verify_every: Option<Duration>,
    /// Per audience (`verify_every` in `[destination.audiences.<key>]`): its own period, or
    /// `None` for `"off"`; other audiences use [`DestinationConfig::verify_every`].
    pub verify_every_by_audience: BTreeMap<String, Option<Duration>>,
    /// Whether the scheduled verify also repairs the drift it finds (`verify_repair`,
    /// default false: it is reported only).
    pub verify_repair: bool,
    /// Batching, concurrency, timeouts and rate limits (`[destination.delivery]`).
    pub delivery: Delivery,
    /// The mass-removal guard: `max_removal_ratio` (0..=1, default 0.25; per audience in
    /// `[destination.audiences.<key>]`), `removal_window` (default `"1h"`) and
    /// `removal_guard_min_members` (default 100).
    pub removal_guard: RemovalGuard,
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
        Some(a) => t.nested("audience_defaults").audience_fields(
            &a.0.update_existing_users_only,
            &a.0.channel_unsubscribe,
            &a.0.campaign_id,
        )?,
        None => AudienceSettings::default(),
    };
    let audiences = audiences(&t, raw)?;
    let verify_every_by_audience = verify_by_audience(&t, raw)?;
    let removal_guard = removal_guard(&t, raw)?;
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
    let on_list_deleted = match &raw.on_list_deleted {
        None => OnListDeleted::default(),
        Some(v) => v
            .get_ref()
            .0
            .trim()
            .parse::<OnListDeleted>()
            .map_err(|e| t.fail("on_list_deleted", v.span(), e))?,
    };
    let verify_every = match &raw.verify_every {
        None => None,
        Some(v) => {
            Some(parse_every(&v.get_ref().0).map_err(|p| t.fail("verify_every", v.span(), p))?)
        }
    };
    let verify_repair = raw.verify_repair.as_ref().is_some_and(|f| f.get_ref().0);
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
            on_list_deleted,
            verify_every,
            verify_every_by_audience,
            verify_repair,
            delivery,
            removal_guard,
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

/// The mass-removal guard's keys: the destination's and each audience's ratio, the window
/// (a period like `"1h"` or `"90m"`) and the smallest audience it applies to.
fn removal_guard(t: &Place, raw: &RawDestination) -> R<RemovalGuard> {
    let d = RemovalGuard::default();
    let max_ratio = t.ratio(
        "max_removal_ratio",
        raw.max_removal_ratio.as_ref(),
        d.max_ratio,
    )?;
    let window = match &raw.removal_window {
        None => d.window,
        Some(v) => match parse_retention(&v.get_ref().0) {
            Ok(Some(w)) => w,
            Ok(None) => {
                return Err(t.fail(
                    "removal_window",
                    v.span(),
                    "must be a period like \"1h\" or \"90m\" (to turn the guard off, set \
                     max_removal_ratio = 1)",
                ));
            }
            Err(p) => return Err(t.fail("removal_window", v.span(), p)),
        },
    };
    let min_members = t.int_in(
        "removal_guard_min_members",
        raw.removal_guard_min_members.as_ref(),
        0,
        i64::MAX,
        d.min_members as i64,
    )? as u64;
    let mut per_audience = std::collections::HashMap::new();
    if let Some(audiences) = &raw.audiences {
        for (key, settings) in &audiences.0 {
            if let Some(v) = &settings.0.max_removal_ratio {
                let place = t.nested(&format!("audiences.{}", key.0));
                let r = place.ratio("max_removal_ratio", Some(v), max_ratio)?;
                per_audience.insert(key.0.clone(), r);
            }
        }
    }
    Ok(RemovalGuard {
        max_ratio,
        per_audience,
        window,
        min_members,
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

/// `verify_every` of each `[destination.audiences.<key>]` that sets it (`"off"`: `None`); the
/// destination's own `verify_every` is every other audience's (`audience_defaults` does not
/// take it).
fn verify_by_audience(t: &Place, raw: &RawDestination) -> R<BTreeMap<String, Option<Duration>>> {
    let mut out = BTreeMap::new();
    for (key, settings) in raw.audiences.iter().flat_map(|a| a.0.iter()) {
        if let Some(v) = &settings.0.verify_every {
            let text = v.get_ref().0.trim();
            let every = match text {
                "off" => None,
                _ => Some(parse_every(text).map_err(|p| {
                    t.nested(&format!("audiences.{}", key.0)).fail(
                        "verify_every",
                        v.span(),
                        format!("{p}, or \"off\""),
                    )
                })?),
            };
            out.insert(key.0.clone(), every);
        }
    }
    Ok(out)
}

impl Place {
    /// An audience's settings (this place is its table).
    fn audience(&self, raw: &RawAudience) -> R<AudienceSettings> {
        self.audience_fields(
            &raw.update_existing_users_only,
            &raw.channel_unsubscribe,
            &raw.campaign_id,
        )
    }

    /// The three settings of an audience's table (or of the defaults).
    fn audience_fields(
        &self,
        update_existing_users_only: &Option<Spanned<Flag>>,
        channel_unsubscribe: &Option<Spanned<Flag>>,
        campaign_id: &Option<Spanned<super::values::Int>>,
    ) -> R<AudienceSettings> {
        let campaign_id = match campaign_id {
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
            update_existing_users_only: flag(update_existing_users_only),
            channel_unsubscribe: flag(channel_unsubscribe),
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
    fn the_removal_guard_has_defaults_and_per_audience_ratios() {
        let c = parse(&dest("d", "wk", ""));
        assert_eq!(c.destinations[0].removal_guard, RemovalGuard::default());
        let g = RemovalGuard::default();
        assert_eq!(
            (g.max_ratio, g.window.as_secs(), g.min_members),
            (0.25, 3600, 100)
        );
        let c = parse(&dest(
            "d",
            "wk",
            "max_removal_ratio = 0.5\nremoval_window = \"90m\"\nremoval_guard_min_members = 10\n\
             [destination.audiences.vip]\nmax_removal_ratio = 0\n\
             [destination.audiences.all]\nmax_removal_ratio = 1\n\
             [destination.audiences.plain]\ncampaign_id = 3\n",
        ));
        let g = &c.destinations[0].removal_guard;
        assert_eq!(
            (g.max_ratio, g.window.as_secs(), g.min_members),
            (0.5, 5400, 10)
        );
        assert_eq!(g.policy("vip").max_ratio, 0.0);
        assert_eq!(g.policy("all").max_ratio, 1.0);
        assert_eq!(g.policy("plain").max_ratio, 0.5);
        assert_eq!(g.policy("other").window_ms, 5_400_000);
    }

    #[test]
    fn bad_removal_guard_values_are_refused_naming_the_key() {
        let cases = [
            (
                "max_removal_ratio = 1.5",
                "max_removal_ratio",
                "between 0 and 1",
            ),
            (
                "max_removal_ratio = -0.1",
                "max_removal_ratio",
                "between 0 and 1",
            ),
            (
                "max_removal_ratio = nan",
                "max_removal_ratio",
                "between 0 and 1",
            ),
            (
                "max_removal_ratio = \"a lot\"",
                "max_removal_ratio",
                "a number between 0 and 1",
            ),
            ("removal_window = \"0\"", "removal_window", "a period like"),
            (
                "removal_window = \"soon\"",
                "removal_window",
                "not a period",
            ),
            (
                "removal_guard_min_members = -1",
                "removal_guard_min_members",
                "at least 0",
            ),
            (
                "[destination.audiences.vip]\nmax_removal_ratio = 2",
                "audiences.vip.max_removal_ratio",
                "between 0 and 1",
            ),
            (
                "[destination.audience_defaults]\nmax_removal_ratio = 0.5",
                "audience_defaults: unknown key \"max_removal_ratio\"",
                "expected one of",
            ),
        ];
        for (extra, key, words) in cases {
            let msg = parse_err(&dest("d", "wk", extra), &no_env);
            assert!(msg.contains(key) && msg.contains(words), "{extra}: {msg}");
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

/// A period such as `"30m"`, `"6h"` or `"1d"`: a whole number and `s`, `m`, `h` or `d`, at
/// least one second.
pub(super) fn parse_every(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let bad = || {
        format!(
            "expected a period like \"30m\", \"6h\" or \"1d\" (a whole number and s, m, h or \
             d), got {text:?}"
        )
    };
    let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = t.split_at(split);
    let n: u64 = n.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        "d" => n.checked_mul(86_400),
        _ => return Err(bad()),
    }
    .ok_or_else(bad)?;
    if secs == 0 {
        return Err(format!("must be at least 1s, got {text:?}"));
    }
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod every_tests {
    use super::*;

    #[test]
    fn periods_by_table() {
        for (text, want) in [
            ("30m", Ok(1800)),
            (" 6h ", Ok(21_600)),
            ("1d", Ok(86_400)),
            ("1s", Ok(1)),
            ("0s", Err("must be at least 1s")),
            ("6", Err("expected a period")),
            ("h", Err("expected a period")),
            ("1.5h", Err("expected a period")),
            ("6 h", Err("expected a period")),
            ("99999999999999999d", Err("expected a period")),
        ] {
            match (parse_every(text), want) {
                (Ok(d), Ok(s)) => assert_eq!(d, Duration::from_secs(s), "{text}"),
                (Err(e), Err(w)) => assert!(e.contains(w), "{text}: {e}"),
                (got, want) => panic!("{text}: {got:?}, want {want:?}"),
            }
        }
    }
}
