//! The environment variables: [`LISTEN_ENV`], which overrides `listen` in every mode, and the
//! embedded mode, where, without a file, the variables alone describe the service and its one
//! destination.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use destination::AudienceSettings;
use destination::settings::{ProjectType, Region};
use iterable::client::ApiKey;

use super::Config;
use super::delivery::Delivery;
use super::destinations::{DestinationConfig, parse_base_url, parse_project_type, parse_region};
use super::error::{R, key_fail};
use super::secrets::{Env, Secret, Secrets, check_write_key};
use super::storage::Storage;

/// Overrides `listen` in every mode, file or embedded (e.g. `0.0.0.0:8080` in a container).
pub const LISTEN_ENV: &str = "ITERABLE_LISTS_LISTEN";
/// Overrides `[storage] url` in every mode, file or embedded (e.g.
/// `postgres://app:secret@db/iterable_lists`, so that the password stays out of the file).
pub const STORAGE_URL_ENV: &str = "ITERABLE_LISTS_STORAGE_URL";
/// Embedded mode: the API key of the one destination; without it there is no destination.
pub const API_KEY_ENV: &str = "ITERABLE_API_KEY";
/// Embedded mode: `hybrid` (the default) or `userId`.
pub const PROJECT_TYPE_ENV: &str = "ITERABLE_PROJECT_TYPE";
/// Embedded mode: `us` (the default) or `eu`.
pub const REGION_ENV: &str = "ITERABLE_REGION";
/// Embedded mode: a base URL instead of a region (e.g. the emulator's).
pub const BASE_URL_ENV: &str = "ITERABLE_BASE_URL";
/// Embedded mode: comma-separated write keys, required when [`API_KEY_ENV`] is set.
pub const WRITE_KEYS_ENV: &str = "ITERABLE_LISTS_WRITE_KEYS";
/// Embedded mode: the admin token (optional).
pub const ADMIN_TOKEN_ENV: &str = "ITERABLE_LISTS_ADMIN_TOKEN";
/// Embedded mode: the webhook shared secret of the destination (optional).
pub const WEBHOOK_SECRET_ENV: &str = "ITERABLE_LISTS_WEBHOOK_SECRET";
/// Embedded mode: the name of the one destination.
pub const EMBEDDED_DESTINATION: &str = "default";

/// An address like `127.0.0.1:8080` (`listen`, `metrics_listen`, [`LISTEN_ENV`]).
pub(super) fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("{text:?} is not an address like 127.0.0.1:8080"))
}

/// [`LISTEN_ENV`], when set and not empty.
pub(super) fn listen_override(env: Env<'_>) -> R<Option<SocketAddr>> {
    match (env.var)(LISTEN_ENV) {
        Some(v) if !v.trim().is_empty() => parse_listen(&v)
            .map(Some)
            .map_err(|p| key_fail("", LISTEN_ENV, None, p)),
        _ => Ok(None),
    }
}

/// [`STORAGE_URL_ENV`], when set and not empty. The error never repeats the URL.
pub(super) fn storage_override(env: Env<'_>) -> R<Option<Storage>> {
    match (env.var)(STORAGE_URL_ENV) {
        Some(v) if !v.trim().is_empty() => Storage::parse_url(&v)
            .map(Some)
            .map_err(|p| key_fail("", STORAGE_URL_ENV, None, p)),
        _ => Ok(None),
    }
}

/// The embedded configuration (see [`Config::embedded`]).
pub(super) fn from_env(env: Env<'_>) -> R<Config> {
    let get = |name: &str| {
        (env.var)(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let fail = |var: &str, problem: String| key_fail("", var, None, problem);
    let mut config = Config::default();
    if let Some(addr) = listen_override(env)? {
        config.listen = addr;
    }
    if let Some(storage) = storage_override(env)? {
        config.storage = storage;
    }
    config.admin_token = get(ADMIN_TOKEN_ENV).map(Secret::new);
    // Reading the store needs no key: the one destination is there without it.
    let api_key = match get(API_KEY_ENV) {
        Some(key) => key,
        None if env.secrets == Secrets::Optional => String::new(),
        None => return Ok(config),
    };
    let project_type = match get(PROJECT_TYPE_ENV) {
        None => ProjectType::Hybrid,
        Some(t) => parse_project_type(&t).map_err(|p| fail(PROJECT_TYPE_ENV, p))?,
    };
    let base_url = match (get(REGION_ENV), get(BASE_URL_ENV)) {
        (Some(_), Some(_)) => {
            return Err(fail(
                BASE_URL_ENV,
                format!("set {REGION_ENV} or {BASE_URL_ENV}, not both"),
            ));
        }
        (Some(r), None) => parse_region(&r).map_err(|p| fail(REGION_ENV, p))?,
        (None, Some(u)) => parse_base_url(&u).map_err(|p| fail(BASE_URL_ENV, p))?,
        (None, None) => Region::Us.base_url().to_string(),
    };
    let write_keys = env_write_keys(env, get(WRITE_KEYS_ENV))?;
    config.destinations.push(DestinationConfig {
        name: EMBEDDED_DESTINATION.to_string(),
        enabled: true,
        api_key: ApiKey::new(api_key),
        project_type,
        base_url,
        write_keys,
        webhook_secret: get(WEBHOOK_SECRET_ENV).map(Secret::new),
        mapping: None,
        audience_defaults: AudienceSettings::default(),
        audiences: BTreeMap::new(),
        retl_sync_mode: None,
        max_removal_ratio: super::destinations::DEFAULT_MAX_REMOVAL_RATIO,
        delivery: Delivery::default(),
    });
    Ok(config)
}

/// [`WRITE_KEYS_ENV`]'s comma-separated keys (`value`, trimmed and not empty when set).
fn env_write_keys(env: Env<'_>, value: Option<String>) -> R<Vec<Secret>> {
    let fail = |problem: String| key_fail("", WRITE_KEYS_ENV, None, problem);
    let keys = match value {
        Some(keys) => keys,
        None if env.secrets == Secrets::Optional => String::new(),
        None => {
            return Err(fail(format!(
                "required when {API_KEY_ENV} is set: the comma-separated keys senders \
                 authenticate with"
            )));
        }
    };
    if keys.split(',').all(|k| k.trim().is_empty()) && env.secrets == Secrets::Required {
        return Err(fail("holds no key".to_string()));
    }
    let mut write_keys: Vec<Secret> = Vec::new();
    for (i, key) in keys
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .enumerate()
    {
        check_write_key(key).map_err(|p| fail(format!("key {}: {p}", i + 1)))?;
        if write_keys.iter().any(|k| k.expose() == key) {
            return Err(fail(format!("key {}: the same key is given twice", i + 1)));
        }
        write_keys.push(Secret::new(key));
    }
    Ok(write_keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_support::*;
    use crate::config::{DEFAULT_LISTEN, Storage};

    #[test]
    fn embedded_configuration() {
        let c = Config::embedded(&no_env).unwrap();
        assert_eq!(c.listen, DEFAULT_LISTEN);
        assert_eq!(c.storage, Storage::default());
        assert!(c.destinations.is_empty() && c.admin_token.is_none());

        let c = Config::embedded(&env_of(&[
            (API_KEY_ENV, KEY),
            (WRITE_KEYS_ENV, "wk_a,wk_b"),
            (PROJECT_TYPE_ENV, "userId"),
            (BASE_URL_ENV, "http://127.0.0.1:8787"),
            (ADMIN_TOKEN_ENV, "t"),
            (WEBHOOK_SECRET_ENV, "h"),
            (LISTEN_ENV, "[::1]:0"),
        ]))
        .unwrap();
        assert_eq!(c.listen.to_string(), "[::1]:0");
        assert_eq!(c.admin_token.unwrap().expose(), "t");
        let d = &c.destinations[0];
        assert_eq!(d.name, EMBEDDED_DESTINATION);
        assert!(d.enabled);
        assert_eq!(d.api_key.expose(), KEY);
        assert_eq!(d.project_type, ProjectType::UserId);
        assert_eq!(d.base_url, "http://127.0.0.1:8787");
        assert_eq!(d.write_keys.len(), 2);
        assert_eq!(d.webhook_secret.as_ref().unwrap().expose(), "h");
        assert_eq!(d.delivery, Delivery::default());

        let c = Config::embedded(&env_of(&[
            (API_KEY_ENV, KEY),
            (WRITE_KEYS_ENV, "wk"),
            (REGION_ENV, "eu"),
        ]))
        .unwrap();
        assert_eq!(c.destinations[0].base_url, iterable::client::EU_BASE_URL);
        assert_eq!(c.destinations[0].project_type, ProjectType::Hybrid);

        let bad: &[EnvCase<'_>] = &[
            (
                &[(API_KEY_ENV, KEY)],
                &["ITERABLE_LISTS_WRITE_KEYS: required when ITERABLE_API_KEY is set"],
            ),
            (
                &[(API_KEY_ENV, KEY), (WRITE_KEYS_ENV, " , ")],
                &["ITERABLE_LISTS_WRITE_KEYS: holds no key"],
            ),
            (
                &[(API_KEY_ENV, KEY), (WRITE_KEYS_ENV, "a,b:c")],
                &["ITERABLE_LISTS_WRITE_KEYS: key 2: must not contain ':'"],
            ),
            (
                &[(API_KEY_ENV, KEY), (WRITE_KEYS_ENV, "a,a")],
                &["ITERABLE_LISTS_WRITE_KEYS: key 2: the same key is given twice"],
            ),
            (
                &[
                    (API_KEY_ENV, KEY),
                    (WRITE_KEYS_ENV, "a"),
                    (PROJECT_TYPE_ENV, "email"),
                ],
                &[r#"ITERABLE_PROJECT_TYPE: expected "hybrid" or "userId", got "email""#],
            ),
            (
                &[
                    (API_KEY_ENV, KEY),
                    (WRITE_KEYS_ENV, "a"),
                    (REGION_ENV, "asia"),
                ],
                &[r#"ITERABLE_REGION: expected "us" or "eu", got "asia""#],
            ),
            (
                &[
                    (API_KEY_ENV, KEY),
                    (WRITE_KEYS_ENV, "a"),
                    (REGION_ENV, "eu"),
                    (BASE_URL_ENV, "http://x"),
                ],
                &["ITERABLE_BASE_URL: set ITERABLE_REGION or ITERABLE_BASE_URL, not both"],
            ),
            (
                &[
                    (API_KEY_ENV, KEY),
                    (WRITE_KEYS_ENV, "a"),
                    (BASE_URL_ENV, "ftp://x"),
                ],
                &["ITERABLE_BASE_URL: expected an http:// or https:// URL"],
            ),
            (
                &[(LISTEN_ENV, "localhost")],
                &[r#"ITERABLE_LISTS_LISTEN: "localhost" is not an address like 127.0.0.1:8080"#],
            ),
        ];
        for (vars, wants) in bad {
            let msg = match Config::embedded(&env_of(vars)) {
                Ok(c) => panic!("{vars:?}: expected an error, got {c:?}"),
                Err(e) => e.to_string(),
            };
            for want in *wants {
                assert!(msg.contains(want), "{vars:?}: {msg:?} lacks {want:?}");
            }
            assert!(!msg.contains(KEY), "{msg}");
        }
    }
}
