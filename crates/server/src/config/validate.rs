//! From text to [`Config`]: TOML syntax, then the file's shape (serde, [`super::raw`]), then
//! every value checked in the order of the file's format, each failure located at its line.

use std::path::Path;
use std::time::Duration;

use toml::de::DeTable;

use super::Config;
use super::destinations::{check_unique, read_destination};
use super::environment::{listen_override, parse_listen, storage_override};
use super::error::{ConfigError, Place, R, line_col};
use super::locate::read_shape;
use super::raw::RawConfig;
use super::secrets::Env;
use super::storage::{Storage, parse_retention};

/// Reads configuration `text` (from `file`, when there is one, for messages).
pub(super) fn parse_source(
    text: &str,
    file: Option<&Path>,
    env: Env<'_>,
) -> Result<Config, ConfigError> {
    let doc = DeTable::parse(text).map_err(|e| {
        let (line, column) = e.span().map_or((1, 1), |s| line_col(text, s.start));
        ConfigError::Syntax {
            file: file.map(Path::to_path_buf),
            line,
            column,
            message: e.message().trim().to_string(),
        }
    })?;
    let raw = read_shape(text, &doc);
    // A failure without a span is about the environment ([`LISTEN_ENV`]), not the file.
    raw.and_then(|raw| read_config(&raw, env))
        .map_err(|f| ConfigError::Invalid {
            file: f.span.as_ref().and(file).map(Path::to_path_buf),
            line: f.span.map(|s| line_col(text, s.start).0),
            message: f.message,
        })
}

/// The file's values, checked.
fn read_config(raw: &RawConfig, env: Env<'_>) -> R<Config> {
    let root = Place::root();
    let mut config = Config::default();
    if let Some(v) = &raw.listen {
        config.listen =
            parse_listen(&v.get_ref().0).map_err(|p| root.fail("listen", v.span(), p))?;
    }
    if let Some(addr) = listen_override(env)? {
        config.listen = addr;
    }
    if let Some(storage) = &raw.storage {
        let place = root.nested("storage");
        if let Some(url) = &storage.0.url {
            config.storage = Storage::parse_url(&url.get_ref().0)
                .map_err(|p| place.fail("url", url.span(), p))?;
        }
        let default_ms = config
            .storage_quick_check
            .map_or(0, |d| d.as_millis() as i64);
        let ms = place.int_in(
            "quick_check_ms",
            storage.0.quick_check_ms.as_ref(),
            0,
            3_600_000,
            default_ms,
        )?;
        config.storage_quick_check = (ms > 0).then(|| Duration::from_millis(ms as u64));
        let pool = place.int_in(
            "pool_size",
            storage.0.pool_size.as_ref(),
            1,
            1000,
            config.storage_pool_size as i64,
        )?;
        config.storage_pool_size = pool;
        if let Some(r) = &storage.0.retention {
            config.storage_retention = parse_retention(&r.get_ref().0)
                .map_err(|p| place.fail("retention", r.span(), p))?;
        }
    }
    // The environment wins over the file (a password stays out of it).
    if let Some(storage) = storage_override(env)? {
        config.storage = storage;
    }
    config.admin_token = root.secret(
        ("admin_token", &raw.admin_token),
        ("admin_token_env", &raw.admin_token_env),
        env,
    )?;
    if let Some(ingest) = &raw.ingest {
        config.ingest = root.nested("ingest").ingest(&ingest.0)?;
    }
    if let Some(v) = &raw.metrics_listen {
        let addr =
            parse_listen(&v.get_ref().0).map_err(|p| root.fail("metrics_listen", v.span(), p))?;
        if addr == config.listen && addr.port() != 0 {
            return Err(root.fail(
                "metrics_listen",
                v.span(),
                format!("{addr} is already `listen`; give the metrics their own address"),
            ));
        }
        config.metrics_listen = Some(addr);
    }
    if let Some(http) = &raw.http {
        config.http = root.nested("http").http(&http.0)?;
    }
    let mut read = Vec::new();
    for (i, d) in raw.destination.iter().flat_map(|d| &d.0).enumerate() {
        read.push(read_destination(i, &d.get_ref().0, d.span(), env)?);
    }
    check_unique(&read)?;
    config.destinations = read.into_iter().map(|r| r.config).collect();
    Ok(config)
}
