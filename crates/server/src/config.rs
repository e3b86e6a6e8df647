//! Service configuration: a TOML file (or, without one, embedded defaults and environment
//! variables), with secrets read from the environment and every error naming its key and line.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use destination::AudienceSettings;
use destination::fields::ActionMapping;
use destination::plan::MAX_REQUEST_BYTES;
use destination::settings::{ProjectType, Region};
use iterable::client::ApiKey;
use iterable::limiter::{Endpoint, Limit};
use listener::Limits;
use segment::membership::RetlSyncMode;
use serde_json::Value;
use thiserror::Error;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::ingest::IngestLimits;

/// A fully commented example configuration, which parses when `ITERABLE_API_KEY` is set; the
/// file is `crates/server/examples-config/iterable-lists.toml`.
pub const EXAMPLE: &str = include_str!("../examples-config/iterable-lists.toml");

/// `listen` when the configuration does not set it: `127.0.0.1:8080`.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 1), 8080));

/// `storage.url` when the configuration does not set it.
pub const DEFAULT_STORAGE_URL: &str = "sqlite://data/iterable-lists.db";

/// Overrides `listen` in every mode, file or embedded (e.g. `0.0.0.0:8080` in a container).
pub const LISTEN_ENV: &str = "ITERABLE_LISTS_LISTEN";
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

/// A secret string (token, write key, shared secret). `Debug` and `Display` print
/// `<redacted>`; only [`Secret::expose`] gives the value.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one place that needs it (an HMAC key, an outgoing header).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `candidate` equals the secret, in time that does not depend on where they
    /// differ (only on the length, which is not secret enough to matter here).
    pub fn matches(&self, candidate: &[u8]) -> bool {
        let expected = self.0.as_bytes();
        if expected.len() != candidate.len() {
            return false;
        }
        let diff = expected
            .iter()
            .zip(candidate)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(diff) == 0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The whole service configuration, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// The HTTP server's address (`listen`; [`LISTEN_ENV`] overrides it).
    pub listen: SocketAddr,
    /// Where the state lives (`[storage] url`).
    pub storage: Storage,
    /// How long the integrity check of an SQLite file may take at start (`[storage]
    /// quick_check_ms`; 0 skips it, `None` here). A check that runs out of time is logged.
    pub storage_quick_check: Option<Duration>,
    /// The bearer token of the admin endpoints (`admin_token` or `admin_token_env`); without
    /// one they answer loopback clients only.
    pub admin_token: Option<Secret>,
    /// Size limits of incoming requests (`[ingest]`).
    pub ingest: IngestLimits,
    /// Timeouts and the connection cap of every listener (`[http]`).
    pub http: Limits,
    /// A second address serving only `GET /metrics`, without the admin token, for scrapers on a
    /// private network (`metrics_listen`).
    pub metrics_listen: Option<SocketAddr>,
    /// The destinations (`[[destination]]`), in file order.
    pub destinations: Vec<DestinationConfig>,
}

impl Default for Config {
    /// Listen on [`DEFAULT_LISTEN`], the default storage, no admin token, Segment's limits and
    /// no destination.
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN,
            storage: Storage::default(),
            storage_quick_check: Some(sync::sqlite::DEFAULT_QUICK_CHECK),
            admin_token: None,
            ingest: IngestLimits::default(),
            http: Limits::default(),
            metrics_listen: None,
            destinations: Vec::new(),
        }
    }
}

/// The storage engine and where its data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// An SQLite file. A relative path in a file loaded by [`Config::load`] is relative to
    /// that file's directory; elsewhere (the embedded default, [`Config::parse`]) to the
    /// working directory.
    Sqlite {
        /// The database file.
        path: PathBuf,
    },
    /// An in-memory SQLite database (`sqlite::memory:`), lost on exit: for tests.
    SqliteMemory,
}

impl Default for Storage {
    /// `sqlite://data/iterable-lists.db`.
    fn default() -> Self {
        Storage::Sqlite {
            path: PathBuf::from("data/iterable-lists.db"),
        }
    }
}

impl Storage {
    /// Reads a storage URL: `sqlite://relative/path.db`, `sqlite:///absolute/path.db` or
    /// `sqlite::memory:`. The error never repeats a URL of another scheme (it may hold a
    /// password), only its scheme.
    pub fn parse_url(url: &str) -> Result<Storage, String> {
        let url = url.trim();
        let lower = url.to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            return Err("PostgreSQL is not supported yet; use sqlite://PATH".into());
        }
        let expected = "expected sqlite://PATH, sqlite:///ABSOLUTE/PATH or sqlite::memory:";
        let Some(rest) = lower
            .starts_with("sqlite:")
            .then(|| &url["sqlite:".len()..])
        else {
            return Err(match url.split_once(':') {
                Some((scheme, _)) => format!("unsupported scheme {scheme:?}; {expected}"),
                None => format!("{url:?} is not a URL; {expected}"),
            });
        };
        if rest == ":memory:" || rest == "//:memory:" {
            return Ok(Storage::SqliteMemory);
        }
        let path = rest.strip_prefix("//").unwrap_or(rest);
        if path.contains('?') {
            return Err(format!(
                "query parameters are not supported in {url:?}; {expected}"
            ));
        }
        if path.trim().is_empty() {
            return Err(format!("the database path is empty in {url:?}; {expected}"));
        }
        Ok(Storage::Sqlite {
            path: PathBuf::from(path),
        })
    }

    /// The storage with a relative SQLite path taken as relative to `dir` (a config file's
    /// directory; `None` or empty leaves it relative to the working directory).
    pub fn relative_to(self, dir: Option<&Path>) -> Storage {
        match (self, dir) {
            (Storage::Sqlite { path }, Some(dir)) if path.is_relative() => Storage::Sqlite {
                path: dir.join(path),
            },
            (other, _) => other,
        }
    }
}

/// One Iterable project that audiences are synced to (`[[destination]]`).
#[derive(Debug, Clone)]
pub struct DestinationConfig {
    /// `name`: unique, only `[A-Za-z0-9_.-]`; also the webhook path `/v1/webhook/<name>`.
    pub name: String,
    /// `enabled` (default true): a disabled destination is validated but syncs nothing.
    pub enabled: bool,
    /// The project's API key (`api_key` or `api_key_env`); empty when loaded with
    /// [`Secrets::Optional`] and its variable is not set.
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
    /// [`ActionMapping::new`] at load.
    pub mapping: Option<Value>,
    /// Audience settings of every audience (`[destination.audience_defaults]`).
    pub audience_defaults: AudienceSettings,
    /// Audience settings by audience key (`[destination.audiences.<key>]`).
    pub audiences: BTreeMap<String, AudienceSettings>,
    /// How reverse-ETL row changes sync (`retl_sync_mode`); `None` reads them like any event.
    pub retl_sync_mode: Option<RetlSyncMode>,
    /// Batching, concurrency, timeouts and rate limits (`[destination.delivery]`).
    pub delivery: Delivery,
}

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

/// How requests to one destination are batched and paced (`[destination.delivery]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// `batch_size`: rows per subscribe/unsubscribe request, 1 to 1000 (default 1000).
    pub batch_size: usize,
    /// `max_request_bytes`: bytes per request body, 1024 to 4,000,000 (the default).
    pub max_request_bytes: usize,
    /// `linger_ms`: how long to wait for more changes before sending, 0 to 1000 (default 500).
    pub linger: Duration,
    /// `concurrency`: requests in flight, 1 to 64 (default 4).
    pub concurrency: usize,
    /// `timeout_ms`: per attempt, 1 to 600,000 (default 30,000).
    pub timeout: Duration,
    /// `[destination.delivery.rate_limits]`: limits replacing [`Endpoint::default_limit`].
    pub rate_limits: HashMap<Endpoint, Limit>,
}

impl Default for Delivery {
    fn default() -> Self {
        Self {
            batch_size: 1000,
            max_request_bytes: MAX_REQUEST_BYTES,
            linger: Duration::from_millis(500),
            concurrency: 4,
            timeout: Duration::from_millis(30_000),
            rate_limits: HashMap::new(),
        }
    }
}

/// A configuration that cannot be used. Messages name the key (and the file and line when
/// there is one) and never contain a secret's value.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the config file {}: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The text is not TOML.
    #[error("{}TOML syntax error: {message}", location(.file, Some(*.line), Some(*.column)))]
    Syntax {
        /// The file, when loaded from one.
        file: Option<PathBuf>,
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
        /// The parser's description.
        message: String,
    },
    /// A key is unknown, missing or has an unusable value; `message` names it.
    #[error("{}{message}", location(.file, *.line, None))]
    Invalid {
        /// The file, when the problem is in one (not in an environment variable).
        file: Option<PathBuf>,
        /// 1-based line of the key or value, when it came from the file.
        line: Option<usize>,
        /// What is wrong, beginning with the key: `destination "prod": project_type: ...`.
        message: String,
    },
}

fn location(file: &Option<PathBuf>, line: Option<usize>, column: Option<usize>) -> String {
    match (file, line, column) {
        (Some(f), Some(l), Some(c)) => format!("{}:{l}:{c}: ", f.display()),
        (Some(f), Some(l), None) => format!("{}:{l}: ", f.display()),
        (Some(f), None, _) => format!("{}: ", f.display()),
        (None, Some(l), Some(c)) => format!("line {l}, column {c}: "),
        (None, Some(l), None) => format!("line {l}: "),
        (None, None, _) => String::new(),
    }
}

/// Whether a configuration is loaded with its secrets (API keys, write keys, webhook secrets,
/// the admin token).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secrets {
    /// Every secret must be set: for running the service and for `check`.
    Required,
    /// For commands that only read the store (`status`, `events show`): a secret whose
    /// environment variable is unset or empty is left out (an API key is left empty), a
    /// destination needs no write key, and without a file the embedded destination exists
    /// even when [`API_KEY_ENV`] is unset.
    Optional,
}

/// How environment variables are read (the process environment, or a closure in tests), and
/// whether the secrets among them must be set.
#[derive(Clone, Copy)]
struct Env<'e> {
    var: &'e dyn Fn(&str) -> Option<String>,
    secrets: Secrets,
}

impl Config {
    /// Reads and validates configuration text; `env` resolves the `*_env` keys and
    /// [`LISTEN_ENV`]. A relative SQLite path is relative to the working directory.
    pub fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        Config::parse_with(text, env, Secrets::Required)
    }

    /// [`Config::parse`], with or without the secrets.
    pub fn parse_with(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
        secrets: Secrets,
    ) -> Result<Config, ConfigError> {
        parse_source(text, None, Env { var: env, secrets })
    }

    /// Reads the file at `path` (with the process environment), or without a path builds
    /// [`Config::embedded`] from the process environment. A relative SQLite path in the file
    /// is relative to the file's directory.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        Config::load_with(path, Secrets::Required)
    }

    /// [`Config::load`], with or without the secrets.
    pub fn load_with(path: Option<&Path>, secrets: Secrets) -> Result<Config, ConfigError> {
        let var = |name: &str| std::env::var(name).ok();
        let env = Env { var: &var, secrets };
        match path {
            None => embedded(env),
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.to_path_buf(),
                    source,
                })?;
                let mut config = parse_source(&text, Some(p), env)?;
                config.storage = config.storage.relative_to(p.parent());
                Ok(config)
            }
        }
    }

    /// The configuration without a file: listen on 127.0.0.1:8080 (or [`LISTEN_ENV`]), the
    /// default storage, the admin token of [`ADMIN_TOKEN_ENV`], and, when [`API_KEY_ENV`] is
    /// set, one destination named [`EMBEDDED_DESTINATION`] from [`PROJECT_TYPE_ENV`],
    /// [`REGION_ENV`] or [`BASE_URL_ENV`], [`WRITE_KEYS_ENV`] (then required) and
    /// [`WEBHOOK_SECRET_ENV`]. Without [`API_KEY_ENV`], no destination.
    pub fn embedded(env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        embedded(Env {
            var: env,
            secrets: Secrets::Required,
        })
    }
}

fn embedded(env: Env<'_>) -> Result<Config, ConfigError> {
    from_env(env).map_err(|f| ConfigError::Invalid {
        file: None,
        line: None,
        message: f.message,
    })
}

fn parse_source(text: &str, file: Option<&Path>, env: Env<'_>) -> Result<Config, ConfigError> {
    let doc = DeTable::parse(text).map_err(|e| {
        let (line, column) = e.span().map_or((1, 1), |s| line_col(text, s.start));
        ConfigError::Syntax {
            file: file.map(Path::to_path_buf),
            line,
            column,
            message: e.message().trim().to_string(),
        }
    })?;
    // A failure without a span is about the environment ([`LISTEN_ENV`]), not the file.
    read_config(doc.get_ref(), doc.span(), env).map_err(|f| ConfigError::Invalid {
        file: f.span.as_ref().and(file).map(Path::to_path_buf),
        line: f.span.map(|s| line_col(text, s.start).0),
        message: f.message,
    })
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text.as_bytes()[..offset];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    let column = text
        .get(line_start..offset)
        .map_or(offset - line_start, |s| s.chars().count())
        + 1;
    (line, column)
}

// ---- validation errors --------------------------------------------------------------------

/// A validation failure: where (a span of the text, when known) and the full message.
#[derive(Debug)]
struct Fail {
    span: Option<Range<usize>>,
    message: String,
}

type R<T> = Result<T, Fail>;

/// `owner: key: problem`, or `key: problem` at the top level.
fn key_fail(
    owner: &str,
    key: &str,
    span: Option<Range<usize>>,
    problem: impl fmt::Display,
) -> Fail {
    let message = if owner.is_empty() {
        format!("{key}: {problem}")
    } else {
        format!("{owner}: {key}: {problem}")
    };
    Fail { span, message }
}

/// "a string", "an integer", ...
fn article(type_str: &str) -> String {
    match type_str.as_bytes().first() {
        Some(b'a' | b'e' | b'i' | b'o' | b'u') => format!("an {type_str}"),
        _ => format!("a {type_str}"),
    }
}

/// Levenshtein distance, for "did you mean" hints.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

fn suggestion<'k>(unknown: &str, allowed: &[&'k str]) -> Option<&'k str> {
    let lower = unknown.to_ascii_lowercase();
    allowed
        .iter()
        .map(|k| (edit_distance(&lower, k), *k))
        .filter(|(d, k)| *d <= 2 || (lower.len() >= 4 && k.starts_with(lower.as_str())))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

// ---- a table being read -------------------------------------------------------------------

type Item<'i> = Spanned<DeValue<'i>>;

/// One TOML table being read, with where it is for messages.
struct Tbl<'a, 'i> {
    map: &'a DeTable<'i>,
    span: Range<usize>,
    /// `destination "prod"`, or empty at the top level.
    owner: String,
    /// The dotted path of this table inside its owner (`delivery`), or empty.
    path: String,
    /// The keys this table may have.
    allowed: &'static [&'static str],
}

impl<'a, 'i> Tbl<'a, 'i> {
    fn new(
        map: &'a DeTable<'i>,
        span: Range<usize>,
        owner: String,
        allowed: &'static [&'static str],
    ) -> Self {
        Self {
            map,
            span,
            owner,
            path: String::new(),
            allowed,
        }
    }

    fn nested(
        &self,
        key: &str,
        map: &'a DeTable<'i>,
        span: Range<usize>,
        allowed: &'static [&'static str],
    ) -> Self {
        Self {
            map,
            span,
            owner: self.owner.clone(),
            path: self.key(key),
            allowed,
        }
    }

    /// The dotted key of `key` in this table (`delivery.batch_size`).
    fn key(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn fail(&self, key: &str, span: Range<usize>, problem: impl fmt::Display) -> Fail {
        key_fail(&self.owner, &self.key(key), Some(span), problem)
    }

    /// A required key is missing: the error points at the table.
    fn missing(&self, key: &str, problem: impl fmt::Display) -> Fail {
        key_fail(
            &self.owner,
            &self.key(key),
            Some(self.span.clone()),
            problem,
        )
    }

    fn check_unknown(&self) -> R<()> {
        for (k, _) in self.map.iter() {
            let name: &str = k.get_ref();
            if self.allowed.contains(&name) {
                continue;
            }
            let place = match (self.owner.is_empty(), self.path.is_empty()) {
                (true, true) => String::new(),
                (true, false) => format!("{}: ", self.path),
                (false, true) => format!("{}: ", self.owner),
                (false, false) => format!("{}: {}: ", self.owner, self.path),
            };
            let mut message = format!(
                "{place}unknown key {name:?}; expected one of {}",
                self.allowed.join(", ")
            );
            if let Some(s) = suggestion(name, self.allowed) {
                message.push_str(&format!(" (did you mean {s:?}?)"));
            }
            return Err(Fail {
                span: Some(k.span()),
                message,
            });
        }
        Ok(())
    }

    fn get(&self, key: &str) -> Option<&'a Item<'i>> {
        self.map.get(key)
    }

    fn wrong_type(&self, key: &str, v: &Item<'_>, expected: &str) -> Fail {
        self.fail(
            key,
            v.span(),
            format!(
                "expected {expected}, got {}",
                article(v.get_ref().type_str())
            ),
        )
    }

    fn string_as(&self, key: &str, expected: &str) -> R<Option<(&'a str, Range<usize>)>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.get_ref() {
                DeValue::String(s) => Ok(Some((s.as_ref(), v.span()))),
                _ => Err(self.wrong_type(key, v, expected)),
            },
        }
    }

    fn string(&self, key: &str) -> R<Option<(&'a str, Range<usize>)>> {
        self.string_as(key, "a string")
    }

    fn boolean(&self, key: &str) -> R<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.get_ref() {
                DeValue::Boolean(b) => Ok(Some(*b)),
                _ => Err(self.wrong_type(key, v, "true or false")),
            },
        }
    }

    fn integer(&self, key: &str) -> R<Option<(i64, Range<usize>)>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.get_ref() {
                DeValue::Integer(n) => i64::from_str_radix(n.as_str(), n.radix())
                    .map(|n| Some((n, v.span())))
                    .map_err(|_| self.fail(key, v.span(), "the number is too large")),
                _ => Err(self.wrong_type(key, v, "a whole number")),
            },
        }
    }

    /// A whole number within `min..=max`, or `default` when absent.
    fn int_in(&self, key: &str, min: i64, max: i64, default: i64) -> R<usize> {
        let n = match self.integer(key)? {
            None => default,
            Some((n, _)) if (min..=max).contains(&n) => n,
            Some((n, span)) => {
                let problem = if max == i64::MAX {
                    format!("must be at least {min}, got {n}")
                } else {
                    format!("must be between {min} and {max}, got {n}")
                };
                return Err(self.fail(key, span, problem));
            }
        };
        usize::try_from(n).map_err(|_| self.missing(key, "the number is too large"))
    }

    fn table(&self, key: &str, allowed: &'static [&'static str]) -> R<Option<Tbl<'a, 'i>>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.get_ref() {
                DeValue::Table(t) => Ok(Some(self.nested(key, t, v.span(), allowed))),
                _ => Err(self.wrong_type(key, v, "a table")),
            },
        }
    }

    /// A secret given as `key` or as `key_env` (an environment variable's name), at most one.
    /// Surrounding whitespace is dropped; an empty value is an error. No message holds it.
    fn secret(&self, key: &str, key_env: &str, env: Env<'_>) -> R<Option<Secret>> {
        let direct = self.string(key)?;
        let var = self.string_as(key_env, "the name of an environment variable")?;
        match (direct, var) {
            (Some(_), Some((_, span))) => Err(self.fail(
                key_env,
                span,
                format!("set {} or {}, not both", self.key(key), self.key(key_env)),
            )),
            (Some((value, span)), None) => {
                let value = value.trim();
                if value.is_empty() {
                    return Err(self.fail(key, span, "must not be empty"));
                }
                Ok(Some(Secret::new(value)))
            }
            (None, Some((name, span))) => {
                let value = env_secret(env, name).map_err(|p| self.fail(key_env, span, p))?;
                Ok(value.map(Secret::new))
            }
            (None, None) => Ok(None),
        }
    }
}

fn is_env_name(name: &str) -> bool {
    let name = name.trim();
    !name.is_empty() && !name.contains(['=', '\0'])
}

/// The trimmed, non-empty value of the variable `name`; the error names the variable only.
fn env_var(env: Env<'_>, name: &str) -> Result<String, String> {
    let name = name.trim();
    if !is_env_name(name) {
        return Err(format!("{name:?} is not an environment variable name"));
    }
    match (env.var)(name) {
        None => Err(format!("environment variable {name} is not set")),
        Some(v) if v.trim().is_empty() => Err(format!("environment variable {name} is empty")),
        Some(v) => Ok(v.trim().to_string()),
    }
}

/// [`env_var`] of a secret: with [`Secrets::Optional`], an unset or empty variable is `None`.
fn env_secret(env: Env<'_>, name: &str) -> Result<Option<String>, String> {
    match env_var(env, name) {
        Err(_) if env.secrets == Secrets::Optional && is_env_name(name) => Ok(None),
        other => other.map(Some),
    }
}

// ---- values shared by the file and the environment ----------------------------------------

fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("{text:?} is not an address like 127.0.0.1:8080"))
}

fn parse_project_type(text: &str) -> Result<ProjectType, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("hybrid") {
        Ok(ProjectType::Hybrid)
    } else if t.eq_ignore_ascii_case("userId") {
        Ok(ProjectType::UserId)
    } else {
        Err(format!("expected \"hybrid\" or \"userId\", got {text:?}"))
    }
}

fn parse_region(text: &str) -> Result<String, String> {
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

fn parse_base_url(text: &str) -> Result<String, String> {
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

/// A write key is sent as an HTTP Basic user name, so it cannot hold `:` or whitespace.
fn check_write_key(key: &str) -> Result<(), &'static str> {
    if key.is_empty() {
        Err("must not be empty")
    } else if key
        .chars()
        .any(|c| c == ':' || c.is_whitespace() || c.is_control())
    {
        Err(
            "must not contain ':', whitespace or control characters (it is sent as an HTTP Basic user name)",
        )
    } else {
        Ok(())
    }
}

fn check_name(name: &str) -> Result<(), String> {
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

// ---- rate limits --------------------------------------------------------------------------

/// The `[destination.delivery.rate_limits]` key of each endpoint.
pub const ENDPOINT_KEYS: [(&str, Endpoint); 9] = [
    ("get_lists", Endpoint::GetLists),
    ("create_list", Endpoint::CreateList),
    ("delete_list", Endpoint::DeleteList),
    ("list_size", Endpoint::ListSize),
    ("get_users", Endpoint::GetUsers),
    ("subscribe", Endpoint::Subscribe),
    ("unsubscribe", Endpoint::Unsubscribe),
    ("user_by_email", Endpoint::UserByEmail),
    ("user_by_id", Endpoint::UserById),
];

const RATE_LIMIT_KEYS: &[&str] = &[
    "get_lists",
    "create_list",
    "delete_list",
    "list_size",
    "get_users",
    "subscribe",
    "unsubscribe",
    "user_by_email",
    "user_by_id",
    "all",
];

fn positive(text: &str) -> Option<f64> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v > 0.0)
}

/// Reads one rate limit of `endpoint`: `"N/s"` or `"N/min"` (N may be fractional), optionally
/// followed by `",burst=B"`; `"adaptive"` (the endpoint's adaptive default, or, for an endpoint
/// with a published limit, adaptive below it), optionally with `",start=S"`, `",min=M"`,
/// `",max=X"` in requests per second; or `"off"`. A per-second rate keeps a tenth of a second's
/// worth as burst, a per-minute rate a minute's worth, as Iterable's buckets do.
pub fn parse_limit(endpoint: Endpoint, text: &str) -> Result<Limit, String> {
    let bad = || {
        format!(
            "expected \"N/s\" or \"N/min\" (optionally with \",burst=B\"), \"adaptive\" or \"off\", got {text:?}"
        )
    };
    let mut parts = text.trim().split(',').map(str::trim);
    let head = parts.next().unwrap_or_default();
    if head.eq_ignore_ascii_case("off") {
        return match parts.next() {
            None => Ok(Limit::Unlimited),
            Some(_) => Err(bad()),
        };
    }
    if head.eq_ignore_ascii_case("adaptive") {
        let (mut start, mut min, mut max) = match endpoint.default_limit() {
            Limit::Adaptive { start, min, max } => (start, min, max),
            Limit::Fixed { per_second, .. } => (per_second, per_second / 10.0, per_second),
            Limit::Unlimited => (20.0, 1.0, 1000.0),
        };
        for option in parts {
            let (k, v) = option.split_once('=').ok_or_else(bad)?;
            let v = positive(v).ok_or_else(|| {
                format!(
                    "adaptive: {}: expected a positive number of requests per second, got {:?}",
                    k.trim(),
                    v.trim()
                )
            })?;
            match k.trim() {
                "start" => start = v,
                "min" => min = v,
                "max" => max = v,
                other => {
                    return Err(format!(
                        "adaptive: unknown option {other:?}; expected start, min or max"
                    ));
                }
            }
        }
        if !(min <= start && start <= max) {
            return Err(format!(
                "adaptive: expected min <= start <= max, got min={min}, start={start}, max={max}"
            ));
        }
        return Ok(Limit::Adaptive { start, min, max });
    }
    let (count, unit) = head.split_once('/').ok_or_else(bad)?;
    let count = positive(count).ok_or_else(bad)?;
    let mut limit = match unit.trim() {
        "s" | "sec" | "second" => Limit::fixed(count),
        "min" | "minute" => Limit::Fixed {
            per_second: count / 60.0,
            burst: (count.ceil() as u32).max(1),
        },
        _ => return Err(bad()),
    };
    for option in parts {
        match option.split_once('=') {
            Some((k, v)) if k.trim() == "burst" => {
                let b = v
                    .trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|b| *b >= 1)
                    .ok_or_else(|| {
                        format!(
                            "burst: expected a whole number of at least 1, got {:?}",
                            v.trim()
                        )
                    })?;
                if let Limit::Fixed { burst, .. } = &mut limit {
                    *burst = b;
                }
            }
            _ => return Err(bad()),
        }
    }
    Ok(limit)
}

// ---- the file ------------------------------------------------------------------------------

const ROOT_KEYS: &[&str] = &[
    "listen",
    "storage",
    "admin_token",
    "admin_token_env",
    "ingest",
    "destination",
    "metrics_listen",
    "http",
];
const STORAGE_KEYS: &[&str] = &["url", "quick_check_ms"];
const INGEST_KEYS: &[&str] = &[
    "max_event_bytes",
    "max_call_bytes",
    "max_batch_bytes",
    "max_batch_events",
];
const HTTP_KEYS: &[&str] = &[
    "max_connections",
    "header_timeout_ms",
    "keep_alive_timeout_ms",
    "body_min_rate",
    "body_grace_ms",
    "write_timeout_ms",
];
const DESTINATION_KEYS: &[&str] = &[
    "name",
    "enabled",
    "api_key",
    "api_key_env",
    "project_type",
    "region",
    "base_url",
    "write_keys",
    "write_keys_env",
    "webhook_secret",
    "webhook_secret_env",
    "mapping",
    "audience_defaults",
    "audiences",
    "retl_sync_mode",
    "delivery",
];
const AUDIENCE_KEYS: &[&str] = &[
    "update_existing_users_only",
    "channel_unsubscribe",
    "campaign_id",
];
const DELIVERY_KEYS: &[&str] = &[
    "batch_size",
    "max_request_bytes",
    "linger_ms",
    "concurrency",
    "timeout_ms",
    "rate_limits",
];

/// `ITERABLE_LISTS_LISTEN`, when set and not empty.
fn listen_override(env: Env<'_>) -> R<Option<SocketAddr>> {
    match (env.var)(LISTEN_ENV) {
        Some(v) if !v.trim().is_empty() => parse_listen(&v)
            .map(Some)
            .map_err(|p| key_fail("", LISTEN_ENV, None, p)),
        _ => Ok(None),
    }
}

fn read_config(doc: &DeTable<'_>, span: Range<usize>, env: Env<'_>) -> R<Config> {
    let root = Tbl::new(doc, span, String::new(), ROOT_KEYS);
    root.check_unknown()?;
    let mut config = Config::default();
    if let Some((text, span)) = root.string("listen")? {
        config.listen = parse_listen(text).map_err(|p| root.fail("listen", span, p))?;
    }
    if let Some(addr) = listen_override(env)? {
        config.listen = addr;
    }
    if let Some(storage) = root.table("storage", STORAGE_KEYS)? {
        storage.check_unknown()?;
        if let Some((url, span)) = storage.string("url")? {
            config.storage = Storage::parse_url(url).map_err(|p| storage.fail("url", span, p))?;
        }
        let default_ms = config
            .storage_quick_check
            .map_or(0, |d| d.as_millis() as i64);
        let ms = storage.int_in("quick_check_ms", 0, 3_600_000, default_ms)?;
        config.storage_quick_check = (ms > 0).then(|| Duration::from_millis(ms as u64));
    }
    config.admin_token = root.secret("admin_token", "admin_token_env", env)?;
    if let Some(ingest) = root.table("ingest", INGEST_KEYS)? {
        ingest.check_unknown()?;
        let d = IngestLimits::default();
        let at_least_one = |key: &str, default: usize| {
            ingest.int_in(key, 1, i64::MAX, i64::try_from(default).unwrap_or(i64::MAX))
        };
        config.ingest = IngestLimits {
            max_event_bytes: at_least_one("max_event_bytes", d.max_event_bytes)?,
            max_call_bytes: at_least_one("max_call_bytes", d.max_call_bytes)?,
            max_batch_bytes: at_least_one("max_batch_bytes", d.max_batch_bytes)?,
            max_batch_events: at_least_one("max_batch_events", d.max_batch_events)?,
        };
    }
    if let Some((text, span)) = root.string("metrics_listen")? {
        let addr = parse_listen(text).map_err(|p| root.fail("metrics_listen", span.clone(), p))?;
        if addr == config.listen && addr.port() != 0 {
            return Err(root.fail(
                "metrics_listen",
                span,
                format!("{addr} is already `listen`; give the metrics their own address"),
            ));
        }
        config.metrics_listen = Some(addr);
    }
    if let Some(http) = root.table("http", HTTP_KEYS)? {
        config.http = read_http(&http)?;
    }
    let mut read = Vec::new();
    if let Some(v) = root.get("destination") {
        let DeValue::Array(items) = v.get_ref() else {
            return Err(root.wrong_type("destination", v, "[[destination]] tables"));
        };
        for (i, item) in items.iter().enumerate() {
            let DeValue::Table(t) = item.get_ref() else {
                return Err(root.wrong_type(&format!("destination[{i}]"), item, "a table"));
            };
            read.push(read_destination(i, t, item.span(), env)?);
        }
    }
    check_unique(&read)?;
    config.destinations = read.into_iter().map(|r| r.config).collect();
    Ok(config)
}

/// A destination as read, with the spans the cross-destination checks point at.
struct ReadDestination {
    config: DestinationConfig,
    name_span: Range<usize>,
    /// Per write key: how to name it in a message, and where it is.
    key_labels: Vec<(String, Range<usize>)>,
}

fn check_unique(read: &[ReadDestination]) -> R<()> {
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut keys: HashMap<&str, usize> = HashMap::new();
    for (i, d) in read.iter().enumerate() {
        let owner = format!("destination[{i}]");
        if let Some(first) = names.insert(&d.config.name, i) {
            return Err(key_fail(
                &owner,
                "name",
                Some(d.name_span.clone()),
                format!(
                    "{:?} is already the name of destination[{first}]",
                    d.config.name
                ),
            ));
        }
        let owner = format!("destination {:?}", d.config.name);
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
                return Err(key_fail(&owner, label, Some(span.clone()), problem));
            }
        }
    }
    Ok(())
}

fn read_destination(
    index: usize,
    map: &DeTable<'_>,
    span: Range<usize>,
    env: Env<'_>,
) -> R<ReadDestination> {
    let anonymous = Tbl::new(
        map,
        span.clone(),
        format!("destination[{index}]"),
        DESTINATION_KEYS,
    );
    let (name, name_span) = anonymous
        .string("name")?
        .ok_or_else(|| anonymous.missing("name", "required"))?;
    check_name(name).map_err(|p| anonymous.fail("name", name_span.clone(), p))?;
    let t = Tbl::new(map, span, format!("destination {name:?}"), DESTINATION_KEYS);
    t.check_unknown()?;

    let enabled = t.boolean("enabled")?.unwrap_or(true);
    // Only the secrets given by variable may be missing, and only when they are optional.
    let optional = |key_env: &str| env.secrets == Secrets::Optional && t.get(key_env).is_some();
    let api_key = match t.secret("api_key", "api_key_env", env)? {
        Some(key) => key,
        None if optional("api_key_env") => Secret::new(""),
        None => {
            return Err(t.missing(
                "api_key",
                "required (or api_key_env, the name of an environment variable that holds it)",
            ));
        }
    };
    let project_type = match t.string("project_type")? {
        None => ProjectType::Hybrid,
        Some((text, span)) => {
            parse_project_type(text).map_err(|p| t.fail("project_type", span, p))?
        }
    };
    let base_url = match (t.string("region")?, t.string("base_url")?) {
        (Some(_), Some((_, span))) => {
            return Err(t.fail("base_url", span, "set region or base_url, not both"));
        }
        (Some((text, span)), None) => parse_region(text).map_err(|p| t.fail("region", span, p))?,
        (None, Some((text, span))) => {
            parse_base_url(text).map_err(|p| t.fail("base_url", span, p))?
        }
        (None, None) => Region::Us.base_url().to_string(),
    };

    let mut write_keys = Vec::new();
    let mut key_labels = Vec::new();
    if let Some(v) = t.get("write_keys") {
        let DeValue::Array(items) = v.get_ref() else {
            return Err(t.wrong_type("write_keys", v, "an array of strings"));
        };
        for (i, item) in items.iter().enumerate() {
            let label = format!("write_keys[{i}]");
            let DeValue::String(key) = item.get_ref() else {
                return Err(t.wrong_type(&label, item, "a string"));
            };
            check_write_key(key).map_err(|p| t.fail(&label, item.span(), p))?;
            write_keys.push(Secret::new(key.as_ref()));
            key_labels.push((label, item.span()));
        }
    }
    if let Some((name, span)) =
        t.string_as("write_keys_env", "the name of an environment variable")?
        && let Some(value) =
            env_secret(env, name).map_err(|p| t.fail("write_keys_env", span.clone(), p))?
    {
        if value.split(',').all(|k| k.trim().is_empty()) {
            return Err(t.fail(
                "write_keys_env",
                span,
                format!("environment variable {} holds no key", name.trim()),
            ));
        }
        for (i, key) in value
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .enumerate()
        {
            let label = format!("write_keys_env (key {} of {})", i + 1, name.trim());
            check_write_key(key).map_err(|p| t.fail(&label, span.clone(), p))?;
            write_keys.push(Secret::new(key));
            key_labels.push((label, span.clone()));
        }
    }
    let webhook_secret = t.secret("webhook_secret", "webhook_secret_env", env)?;
    if write_keys.is_empty()
        && webhook_secret.is_none()
        && !optional("write_keys_env")
        && !optional("webhook_secret_env")
    {
        return Err(t.missing(
            "write_keys",
            "required: at least one write key (in write_keys or write_keys_env), unless \
             webhook_secret is set",
        ));
    }

    let mapping = read_mapping(&t)?;
    let audience_defaults = match t.table("audience_defaults", AUDIENCE_KEYS)? {
        Some(a) => read_audience(&a)?,
        None => AudienceSettings::default(),
    };
    let mut audiences = BTreeMap::new();
    if let Some(v) = t.get("audiences") {
        let DeValue::Table(map) = v.get_ref() else {
            return Err(t.wrong_type("audiences", v, "a table of audience keys"));
        };
        for (k, item) in map.iter() {
            let key: &str = k.get_ref();
            if key.trim().is_empty() {
                return Err(t.fail("audiences", k.span(), "an audience key must not be empty"));
            }
            let path = format!("audiences.{key}");
            let DeValue::Table(settings) = item.get_ref() else {
                return Err(t.wrong_type(&path, item, "a table"));
            };
            let a = t.nested(&path, settings, item.span(), AUDIENCE_KEYS);
            audiences.insert(key.to_string(), read_audience(&a)?);
        }
    }
    let retl_sync_mode = match t.string("retl_sync_mode")? {
        None => None,
        Some((text, span)) => Some(
            text.trim()
                .parse::<RetlSyncMode>()
                .map_err(|e| t.fail("retl_sync_mode", span, e))?,
        ),
    };
    let delivery = match t.table("delivery", DELIVERY_KEYS)? {
        Some(d) => read_delivery(&d)?,
        None => Delivery::default(),
    };
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
            delivery,
        },
        name_span,
        key_labels,
    })
}

/// The longest timeout of `[http]`: a day.
const MAX_HTTP_TIMEOUT_MS: i64 = 86_400_000;

fn read_http(t: &Tbl<'_, '_>) -> R<Limits> {
    t.check_unknown()?;
    let d = Limits::default();
    let ms = |key: &str, default: Duration| {
        let default = i64::try_from(default.as_millis()).unwrap_or(MAX_HTTP_TIMEOUT_MS);
        t.int_in(key, 1, MAX_HTTP_TIMEOUT_MS, default)
            .map(|n| Duration::from_millis(n as u64))
    };
    let max_connections = match t.get("max_connections") {
        None => None,
        Some(_) => Some(t.int_in("max_connections", 1, 1_000_000, 1)?),
    };
    let default_rate = i64::try_from(d.body_min_rate).unwrap_or(i64::MAX);
    Ok(Limits {
        header_timeout: ms("header_timeout_ms", d.header_timeout)?,
        keep_alive_timeout: ms("keep_alive_timeout_ms", d.keep_alive_timeout)?,
        body_min_rate: t.int_in("body_min_rate", 1, 1 << 40, default_rate)? as u64,
        body_grace: ms("body_grace_ms", d.body_grace)?,
        write_timeout: ms("write_timeout_ms", d.write_timeout)?,
        max_connections,
    })
}

fn read_audience(t: &Tbl<'_, '_>) -> R<AudienceSettings> {
    t.check_unknown()?;
    let campaign_id = match t.integer("campaign_id")? {
        None => None,
        Some((n, _)) if n >= 1 => Some(n),
        Some((n, span)) => {
            return Err(t.fail(
                "campaign_id",
                span,
                format!("must be a whole positive number, got {n}"),
            ));
        }
    };
    Ok(AudienceSettings {
        update_existing_users_only: t.boolean("update_existing_users_only")?,
        channel_unsubscribe: t.boolean("channel_unsubscribe")?,
        campaign_id,
    })
}

fn read_delivery(t: &Tbl<'_, '_>) -> R<Delivery> {
    t.check_unknown()?;
    let d = Delivery::default();
    let mut rate_limits = HashMap::new();
    if let Some(r) = t.table("rate_limits", RATE_LIMIT_KEYS)? {
        r.check_unknown()?;
        let expected = "a string like \"20/s\", \"5/min\", \"adaptive\" or \"off\"";
        if let Some((text, span)) = r.string_as("all", expected)? {
            for (_, e) in ENDPOINT_KEYS {
                let limit = parse_limit(e, text).map_err(|p| r.fail("all", span.clone(), p))?;
                rate_limits.insert(e, limit);
            }
        }
        for (key, e) in ENDPOINT_KEYS {
            if let Some((text, span)) = r.string_as(key, expected)? {
                let limit = parse_limit(e, text).map_err(|p| r.fail(key, span, p))?;
                rate_limits.insert(e, limit);
            }
        }
    }
    let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    Ok(Delivery {
        batch_size: t.int_in("batch_size", 1, 1000, d.batch_size as i64)?,
        max_request_bytes: t.int_in(
            "max_request_bytes",
            1024,
            MAX_REQUEST_BYTES as i64,
            d.max_request_bytes as i64,
        )?,
        linger: Duration::from_millis(t.int_in("linger_ms", 0, 1000, ms(d.linger))? as u64),
        concurrency: t.int_in("concurrency", 1, 64, d.concurrency as i64)?,
        timeout: Duration::from_millis(t.int_in("timeout_ms", 1, 600_000, ms(d.timeout))? as u64),
        rate_limits,
    })
}

/// `mapping`: a table in Segment's mapping shape (a top-level `false` unmaps a field, as
/// `null` does in JSON), or a string holding the JSON; checked with [`ActionMapping::new`].
fn read_mapping(t: &Tbl<'_, '_>) -> R<Option<Value>> {
    let Some(v) = t.get("mapping") else {
        return Ok(None);
    };
    let value = match v.get_ref() {
        DeValue::String(json) => serde_json::from_str::<Value>(json)
            .map_err(|e| t.fail("mapping", v.span(), format!("not JSON: {e}")))?,
        DeValue::Table(fields) => {
            let mut out = serde_json::Map::new();
            for (k, item) in fields.iter() {
                let field: &str = k.get_ref();
                let value = match item.get_ref() {
                    DeValue::Boolean(false) => Value::Null,
                    _ => to_json(item).map_err(|(span, sub, problem)| {
                        t.fail(&format!("mapping.{field}{sub}"), span, problem)
                    })?,
                };
                out.insert(field.to_string(), value);
            }
            Value::Object(out)
        }
        _ => return Err(t.wrong_type("mapping", v, "a table (or a JSON string)")),
    };
    ActionMapping::new(Some(&value)).map_err(|e| t.fail("mapping", v.span(), e))?;
    Ok(Some(value))
}

/// A TOML value as JSON; the error has the span, the sub-path below the value and the problem.
fn to_json(item: &Item<'_>) -> Result<Value, (Range<usize>, String, String)> {
    let fail = |problem: &str| Err((item.span(), String::new(), problem.to_string()));
    Ok(match item.get_ref() {
        DeValue::String(s) => Value::String(s.to_string()),
        DeValue::Boolean(b) => Value::Bool(*b),
        DeValue::Integer(n) => match i64::from_str_radix(n.as_str(), n.radix()) {
            Ok(n) => Value::from(n),
            Err(_) => return fail("the number is too large"),
        },
        DeValue::Float(f) => match f
            .as_str()
            .replace('_', "")
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
        {
            Some(n) => Value::Number(n),
            None => return fail("infinite and NaN numbers have no JSON equivalent"),
        },
        DeValue::Datetime(_) => {
            return fail("a TOML date has no JSON equivalent; write it as a string");
        }
        DeValue::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, x) in items.iter().enumerate() {
                out.push(to_json(x).map_err(|(s, sub, p)| (s, format!("[{i}]{sub}"), p))?);
            }
            Value::Array(out)
        }
        DeValue::Table(map) => {
            let mut out = serde_json::Map::new();
            for (k, x) in map.iter() {
                let key: &str = k.get_ref();
                let v = to_json(x).map_err(|(s, sub, p)| (s, format!(".{key}{sub}"), p))?;
                out.insert(key.to_string(), v);
            }
            Value::Object(out)
        }
    })
}

// ---- the environment -------------------------------------------------------------------------

fn from_env(env: Env<'_>) -> R<Config> {
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
    let keys = match get(WRITE_KEYS_ENV) {
        Some(keys) => keys,
        None if env.secrets == Secrets::Optional => String::new(),
        None => {
            return Err(fail(
                WRITE_KEYS_ENV,
                format!(
                    "required when {API_KEY_ENV} is set: the comma-separated keys senders \
                     authenticate with"
                ),
            ));
        }
    };
    if keys.split(',').all(|k| k.trim().is_empty()) && env.secrets == Secrets::Required {
        return Err(fail(WRITE_KEYS_ENV, "holds no key".to_string()));
    }
    let mut write_keys: Vec<Secret> = Vec::new();
    for (i, key) in keys
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .enumerate()
    {
        check_write_key(key).map_err(|p| fail(WRITE_KEYS_ENV, format!("key {}: {p}", i + 1)))?;
        if write_keys.iter().any(|k| k.expose() == key) {
            return Err(fail(
                WRITE_KEYS_ENV,
                format!("key {}: the same key is given twice", i + 1),
            ));
        }
        write_keys.push(Secret::new(key));
    }
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
        delivery: Delivery::default(),
    });
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0123456789abcdef0123456789abcdef";

    /// Environment variables, and substrings the error must have.
    type EnvCase<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str]);

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k: &str| vars.get(k).cloned()
    }

    fn parse(text: &str) -> Config {
        match Config::parse(text, &no_env) {
            Ok(c) => c,
            Err(e) => panic!("{e}\n--- in ---\n{text}"),
        }
    }

    fn parse_err(text: &str, env: &dyn Fn(&str) -> Option<String>) -> String {
        match Config::parse(text, env) {
            Ok(c) => panic!("parsed, expected an error: {c:?}\n--- in ---\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    /// A destination with everything required, plus `extra` lines.
    fn dest(name: &str, write_key: &str, extra: &str) -> String {
        format!(
            "[[destination]]\nname = \"{name}\"\napi_key = \"{KEY}\"\nwrite_keys = [\"{write_key}\"]\n{extra}\n"
        )
    }

    #[test]
    fn the_minimal_form_parses() {
        let c = parse(&format!(
            r#"listen = "127.0.0.1:8080"            # "127.0.0.1:0" picks a free port
[storage]
url = "sqlite://data/iterable-lists.db"   # the default when [storage] is absent
[[destination]]
name = "prod"
api_key = "{KEY}"
project_type = "hybrid"              # or "userId"
region = "us"                        # or base_url = "http://127.0.0.1:8787" (e.g. the emulator)
write_keys = ["wk_live_123"]         # keys that senders authenticate with
"#
        ));
        assert_eq!(c.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(
            c.storage,
            Storage::Sqlite {
                path: PathBuf::from("data/iterable-lists.db")
            }
        );
        assert_eq!(c.destinations.len(), 1);
        let d = &c.destinations[0];
        assert_eq!(d.name, "prod");
        assert_eq!(d.api_key.expose(), KEY);
        assert_eq!(d.project_type, ProjectType::Hybrid);
        assert_eq!(d.base_url, "https://api.iterable.com");
        assert_eq!(d.write_keys.len(), 1);
        assert!(d.write_keys[0].matches(b"wk_live_123"));
    }

    #[test]
    fn defaults() {
        let c = parse("");
        assert_eq!(c.listen, DEFAULT_LISTEN);
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.storage, Storage::parse_url(DEFAULT_STORAGE_URL).unwrap());
        assert_eq!(c.storage, Storage::default());
        assert!(c.admin_token.is_none());
        assert_eq!(c.ingest, IngestLimits::default());
        assert!(c.destinations.is_empty());

        let c = parse(&format!("[storage]\n{}", dest("d", "wk", "")));
        assert_eq!(c.storage, Storage::default());
        let d = &c.destinations[0];
        assert!(d.enabled);
        assert_eq!(d.project_type, ProjectType::Hybrid);
        assert_eq!(d.base_url, iterable::client::US_BASE_URL);
        assert!(d.webhook_secret.is_none());
        assert!(d.mapping.is_none());
        assert_eq!(d.audience_defaults, AudienceSettings::default());
        assert!(d.audiences.is_empty());
        assert_eq!(d.retl_sync_mode, None);
        let want = Delivery {
            batch_size: 1000,
            max_request_bytes: 4_000_000,
            linger: Duration::from_millis(500),
            concurrency: 4,
            timeout: Duration::from_secs(30),
            rate_limits: HashMap::new(),
        };
        assert_eq!(d.delivery, want);
        assert_eq!(d.delivery, Delivery::default());
    }

    #[test]
    fn every_key_is_read() {
        let c = parse(&format!(
            r#"listen = "0.0.0.0:0"
admin_token = "  admin-secret  "
[storage]
url = "sqlite::memory:"
[ingest]
max_event_bytes = 1_000
max_call_bytes = 2000
max_batch_bytes = 0x1000
max_batch_events = 10
[[destination]]
name = "eu.prod-1_x"
enabled = false
api_key = "{KEY}"
project_type = "userId"
region = "EU"
write_keys = ["a", "b"]
webhook_secret = "hook"
retl_sync_mode = "mirror"
mapping = {{ userId = {{ "@path" = "$.traits.uid" }}, email = false }}
audience_defaults = {{ channel_unsubscribe = true, campaign_id = 7 }}
[destination.audiences.vip_users]
update_existing_users_only = true
campaign_id = 9
[destination.audiences."with space"]
[destination.delivery]
batch_size = 1
max_request_bytes = 1024
linger_ms = 0
concurrency = 64
timeout_ms = 600000
[destination.delivery.rate_limits]
all = "off"
subscribe = "20/s"
"#
        ));
        assert_eq!(c.listen.to_string(), "0.0.0.0:0");
        assert_eq!(c.admin_token.as_ref().unwrap().expose(), "admin-secret");
        assert_eq!(c.storage, Storage::SqliteMemory);
        assert_eq!(
            c.ingest,
            IngestLimits {
                max_event_bytes: 1000,
                max_call_bytes: 2000,
                max_batch_bytes: 4096,
                max_batch_events: 10,
            }
        );
        let d = &c.destinations[0];
        assert!(!d.enabled);
        assert_eq!(d.project_type, ProjectType::UserId);
        assert_eq!(d.base_url, iterable::client::EU_BASE_URL);
        assert_eq!(d.write_keys.len(), 2);
        assert_eq!(d.webhook_secret.as_ref().unwrap().expose(), "hook");
        assert_eq!(d.retl_sync_mode, Some(RetlSyncMode::Mirror));
        assert_eq!(
            d.mapping,
            Some(serde_json::json!({"email": null, "userId": {"@path": "$.traits.uid"}}))
        );
        assert_eq!(
            d.audience_defaults,
            AudienceSettings {
                update_existing_users_only: None,
                channel_unsubscribe: Some(true),
                campaign_id: Some(7),
            }
        );
        assert_eq!(d.audiences.len(), 2);
        assert_eq!(d.audiences["vip_users"].campaign_id, Some(9));
        assert_eq!(d.audiences["with space"], AudienceSettings::default());
        assert_eq!(d.delivery.batch_size, 1);
        assert_eq!(d.delivery.max_request_bytes, 1024);
        assert_eq!(d.delivery.linger, Duration::ZERO);
        assert_eq!(d.delivery.concurrency, 64);
        assert_eq!(d.delivery.timeout, Duration::from_secs(600));
        assert_eq!(d.delivery.rate_limits.len(), 9);
        assert_eq!(
            d.delivery.rate_limits[&Endpoint::Subscribe],
            Limit::fixed(20.0)
        );
        assert_eq!(
            d.delivery.rate_limits[&Endpoint::GetLists],
            Limit::Unlimited
        );
    }

    #[test]
    fn base_url_and_mapping_as_json() {
        let c = parse(&dest(
            "d",
            "wk",
            "base_url = \"http://127.0.0.1:8787/\"\nmapping = '{\"userId\": null}'",
        ));
        let d = &c.destinations[0];
        assert_eq!(d.base_url, "http://127.0.0.1:8787");
        assert_eq!(d.mapping, Some(serde_json::json!({"userId": null})));
    }

    #[test]
    fn secrets_from_the_environment() {
        let env = env_of(&[
            ("ITERABLE_API_KEY", &format!(" {KEY}\n")),
            ("WKS", "wk_1, wk_2,,wk_3 "),
            ("HOOK", "hook-secret"),
            ("ADMIN", "admin-secret"),
            (LISTEN_ENV, "127.0.0.1:0"),
        ]);
        let text = r#"
listen = "127.0.0.1:9000"
admin_token_env = "ADMIN"
[[destination]]
name = "prod"
api_key_env = "ITERABLE_API_KEY"
write_keys = ["wk_0"]
write_keys_env = "WKS"
webhook_secret_env = "HOOK"
"#;
        let c = Config::parse(text, &env).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:0", "{LISTEN_ENV} wins");
        assert_eq!(c.admin_token.unwrap().expose(), "admin-secret");
        let d = &c.destinations[0];
        assert_eq!(d.api_key.expose(), KEY);
        let keys: Vec<&str> = d.write_keys.iter().map(Secret::expose).collect();
        assert_eq!(keys, ["wk_0", "wk_1", "wk_2", "wk_3"]);
        assert_eq!(d.webhook_secret.as_ref().unwrap().expose(), "hook-secret");

        // A webhook secret alone is enough to receive events (on the webhook).
        let c = Config::parse(
            "[[destination]]\nname = \"h\"\napi_key = \"k\"\nwebhook_secret_env = \"HOOK\"",
            &env,
        )
        .unwrap();
        assert!(c.destinations[0].write_keys.is_empty());
    }

    #[test]
    fn reading_the_store_needs_no_secret() {
        let text = r#"
admin_token_env = "ADMIN"
[[destination]]
name = "prod"
api_key_env = "ITERABLE_API_KEY"
write_keys_env = "WKS"
webhook_secret_env = "HOOK"
[[destination]]
name = "other"
api_key_env = "OTHER_KEY"
write_keys_env = "OTHER_WKS"
"#;
        // Serving needs every secret, and says which variable is missing.
        let msg = parse_err(text, &no_env);
        assert!(
            msg.contains("admin_token_env: environment variable ADMIN is not set"),
            "{msg}"
        );
        let msg = parse_err(text, &env_of(&[("ADMIN", "a")]));
        assert!(
            msg.contains("api_key_env: environment variable ITERABLE_API_KEY is not set"),
            "{msg}"
        );
        // Reading the store does not: unset (or empty) variables leave the secrets out.
        let empty = env_of(&[("WKS", " "), ("OTHER_KEY", KEY)]);
        for env in [&no_env as &dyn Fn(&str) -> Option<String>, &empty] {
            let c = Config::parse_with(text, env, Secrets::Optional).unwrap();
            assert!(c.admin_token.is_none());
            let names: Vec<&str> = c.destinations.iter().map(|d| d.name.as_str()).collect();
            assert_eq!(names, ["prod", "other"]);
            assert_eq!(c.destinations[0].api_key.expose(), "");
            assert!(c.destinations[0].write_keys.is_empty());
            assert!(c.destinations[0].webhook_secret.is_none());
        }
        // Set variables are read and checked as always.
        let c = Config::parse_with(text, &empty, Secrets::Optional).unwrap();
        assert_eq!(c.destinations[1].api_key.expose(), KEY);
        let bad = env_of(&[("WKS", "a:b")]);
        let err = Config::parse_with(text, &bad, Secrets::Optional)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("write_keys_env (key 1 of WKS): must not contain ':'"),
            "{err}"
        );
        // Only secrets given by variable may be missing: a key absent from the file, or a
        // variable name that cannot be one, is still an error.
        for (text, want) in [
            (
                "[[destination]]\nname = \"p\"\nwrite_keys = [\"w\"]",
                "api_key: required",
            ),
            (
                "[[destination]]\nname = \"p\"\napi_key = \"k\"",
                "write_keys: required",
            ),
            (
                "[[destination]]\nname = \"p\"\napi_key_env = \"A=B\"\nwrite_keys = [\"w\"]",
                "is not an environment variable name",
            ),
        ] {
            let err = Config::parse_with(text, &no_env, Secrets::Optional)
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{text}: {err}");
        }

        // Without a file, the one destination is there without ITERABLE_API_KEY.
        let optional = |var: &dyn Fn(&str) -> Option<String>| {
            embedded(Env {
                var,
                secrets: Secrets::Optional,
            })
        };
        let c = optional(&no_env).unwrap();
        assert_eq!(c.destinations.len(), 1);
        assert_eq!(c.destinations[0].name, EMBEDDED_DESTINATION);
        assert_eq!(c.destinations[0].api_key.expose(), "");
        let c = optional(&|name| (name == API_KEY_ENV).then(|| KEY.into())).unwrap();
        assert_eq!(c.destinations[0].api_key.expose(), KEY);
        assert!(c.destinations[0].write_keys.is_empty());
        assert!(Config::embedded(&|name| (name == API_KEY_ENV).then(|| KEY.into())).is_err());
    }

    #[test]
    fn relative_sqlite_paths_follow_the_config_file() {
        let dir = std::env::temp_dir().join(format!("il-config-rel-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cases = [
            ("sqlite://data/x.db", dir.join("data/x.db")),
            ("sqlite://x.db", dir.join("x.db")),
            ("sqlite:///var/lib/x.db", PathBuf::from("/var/lib/x.db")),
        ];
        for (url, want) in cases {
            let path = dir.join("c.toml");
            std::fs::write(&path, format!("[storage]\nurl = \"{url}\"\n")).unwrap();
            let c = Config::load(Some(&path)).unwrap();
            assert_eq!(c.storage, Storage::Sqlite { path: want }, "{url}");
            // Parsed text has no file: the working directory.
            let c = parse(&format!("[storage]\nurl = \"{url}\"\n"));
            assert_eq!(c.storage, Storage::parse_url(url).unwrap(), "{url}");
        }
        std::fs::write(dir.join("m.toml"), "[storage]\nurl = \"sqlite::memory:\"\n").unwrap();
        let c = Config::load(Some(&dir.join("m.toml"))).unwrap();
        assert_eq!(c.storage, Storage::SqliteMemory);
        // A file named without a directory: its directory is the working directory.
        assert_eq!(
            Storage::default().relative_to(Some(Path::new(""))),
            Storage::Sqlite {
                path: "data/iterable-lists.db".into()
            }
        );
        assert_eq!(Storage::default().relative_to(None), Storage::default());
        std::fs::remove_dir_all(&dir).unwrap();
    }

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

    #[test]
    fn http_limits_and_metrics_listen() {
        let c = parse("");
        assert_eq!(c.http, Limits::default());
        assert_eq!(c.metrics_listen, None);
        let c = parse(
            "metrics_listen = \"10.0.0.5:9464\"\n[http]\nmax_connections = 300\n\
             header_timeout_ms = 2000\nkeep_alive_timeout_ms = 1\nbody_min_rate = 4096\n\
             body_grace_ms = 86400000\nwrite_timeout_ms = 7000\n",
        );
        assert_eq!(c.metrics_listen, Some("10.0.0.5:9464".parse().unwrap()));
        assert_eq!(
            c.http,
            Limits {
                header_timeout: Duration::from_secs(2),
                keep_alive_timeout: Duration::from_millis(1),
                body_min_rate: 4096,
                body_grace: Duration::from_secs(86_400),
                write_timeout: Duration::from_secs(7),
                max_connections: Some(300),
            }
        );
        // Keys left out keep their defaults.
        let c = parse("[http]\nbody_min_rate = 10");
        assert_eq!(
            c.http,
            Limits {
                body_min_rate: 10,
                ..Limits::default()
            }
        );
        // Two listeners on port 0 are two free ports.
        let c = parse("listen = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"");
        assert_eq!(c.metrics_listen, Some("127.0.0.1:0".parse().unwrap()));

        let cases = [
            (
                "\n[http]\nheader_timeout_ms = 0",
                "line 3: http.header_timeout_ms: must be between 1 and 86400000, got 0",
            ),
            (
                "[http]\n\nkeep_alive_timeout_ms = 86400001",
                "line 3: http.keep_alive_timeout_ms: must be between 1 and 86400000, got 86400001",
            ),
            (
                "[http]\nbody_min_rate = -1",
                "line 2: http.body_min_rate: must be between 1 and 1099511627776, got -1",
            ),
            (
                "[http]\nbody_grace_ms = \"5s\"",
                "line 2: http.body_grace_ms: expected a whole number, got a string",
            ),
            (
                "[http]\nmax_connections = 0",
                "line 2: http.max_connections: must be between 1 and 1000000, got 0",
            ),
            (
                "[http]\nread_timeout_ms = 5",
                r#"line 2: http: unknown key "read_timeout_ms"; expected one of max_connections"#,
            ),
            ("http = 5", "line 1: http: expected a table, got an integer"),
            (
                "metrics_listen = \"localhost:9464\"",
                r#"line 1: metrics_listen: "localhost:9464" is not an address like 127.0.0.1:8080"#,
            ),
            (
                "listen = \"127.0.0.1:9000\"\nmetrics_listen = \"127.0.0.1:9000\"",
                "line 2: metrics_listen: 127.0.0.1:9000 is already `listen`",
            ),
        ];
        for (text, want) in cases {
            let msg = parse_err(text, &no_env);
            assert!(msg.contains(want), "{text:?}: {msg:?} lacks {want:?}");
        }
    }

    #[test]
    fn error_messages_name_the_key() {
        let env = env_of(&[("EMPTY", "  "), ("SET", "env-value"), ("COMMAS", " ,, ")]);
        let d = |extra: &str| dest("prod", "wk", extra);
        let cases: Vec<(String, Vec<&str>)> = vec![
            // Syntax.
            (
                "listen = \"127.0.0.1:8080\"\nlisten = 1".into(),
                vec!["line 2, column 1: TOML syntax error:", "duplicate key"],
            ),
            ("[storage\n".into(), vec!["line 1", "TOML syntax error"]),
            // Top level.
            (
                "listen = \"localhost\"".into(),
                vec![r#"line 1: listen: "localhost" is not an address like 127.0.0.1:8080"#],
            ),
            (
                "listen = 8080".into(),
                vec!["listen: expected a string, got an integer"],
            ),
            (
                "\nlisen = \"x\"".into(),
                vec![
                    r#"line 2: unknown key "lisen"; expected one of listen, storage"#,
                    r#"(did you mean "listen"?)"#,
                ],
            ),
            (
                "[storage]\nurl = \"postgres://u:pw@db/x\"".into(),
                vec!["line 2: storage.url: PostgreSQL is not supported yet; use sqlite://PATH"],
            ),
            (
                "[storage]\nurl = \"mysql://u:pw@db/x\"".into(),
                vec![r#"storage.url: unsupported scheme "mysql""#],
            ),
            (
                "[storage]\npath = \"x\"".into(),
                vec![r#"storage: unknown key "path"; expected one of url"#],
            ),
            (
                "[ingest]\nmax_event_bytes = 0".into(),
                vec!["ingest.max_event_bytes: must be at least 1, got 0"],
            ),
            (
                "[ingest]\nmax_batch_events = -5".into(),
                vec!["ingest.max_batch_events: must be at least 1, got -5"],
            ),
            (
                "[ingest]\nmax_batch = 5".into(),
                vec![r#"ingest: unknown key "max_batch"; expected one of max_event_bytes"#],
            ),
            (
                "admin_token = \"a\"\nadmin_token_env = \"SET\"".into(),
                vec!["admin_token_env: set admin_token or admin_token_env, not both"],
            ),
            (
                "admin_token_env = \"NOPE\"".into(),
                vec!["admin_token_env: environment variable NOPE is not set"],
            ),
            (
                "admin_token_env = \"EMPTY\"".into(),
                vec!["admin_token_env: environment variable EMPTY is empty"],
            ),
            (
                "admin_token = \"  \"".into(),
                vec!["admin_token: must not be empty"],
            ),
            (
                "[destination]\nname = \"x\"".into(),
                vec!["destination: expected [[destination]] tables, got a table"],
            ),
            // Destinations.
            (
                format!("{}[[destination]]\napi_key = \"k\"", d("")),
                vec!["destination[1]: name: required"],
            ),
            (
                d("").replace("\"prod\"", "\"\""),
                vec!["destination[0]: name: must not be empty"],
            ),
            (
                d("").replace("\"prod\"", "\"pr od\""),
                vec![
                    r#"destination[0]: name: "pr od" may only contain letters, digits, '_', '.' and '-'"#,
                ],
            ),
            (
                format!("{}{}", d(""), dest("prod", "wk2", "")),
                vec![
                    r#"line 7: destination[1]: name: "prod" is already the name of destination[0]"#,
                ],
            ),
            (
                d("linger = 5"),
                vec![
                    r#"line 5: destination "prod": unknown key "linger"; expected one of name, enabled"#,
                ],
            ),
            (
                d("project_type = \"email\""),
                vec![
                    r#"destination "prod": project_type: expected "hybrid" or "userId", got "email""#,
                ],
            ),
            (
                d("enabled = \"yes\""),
                vec![r#"destination "prod": enabled: expected true or false, got a string"#],
            ),
            (
                "[[destination]]\nname = \"prod\"\nwrite_keys = [\"wk\"]".into(),
                vec![r#"destination "prod": api_key: required (or api_key_env"#],
            ),
            (
                d("api_key_env = \"SET\""),
                vec![r#"destination "prod": api_key_env: set api_key or api_key_env, not both"#],
            ),
            (
                d("").replace("api_key = ", "api_key_env = \"NOPE\"\n#"),
                vec![r#"destination "prod": api_key_env: environment variable NOPE is not set"#],
            ),
            (
                d("").replace("api_key = ", "api_key_env = \"EMPTY\"\n#"),
                vec![r#"destination "prod": api_key_env: environment variable EMPTY is empty"#],
            ),
            (
                d("region = \"asia\""),
                vec![r#"destination "prod": region: expected "us" or "eu", got "asia""#],
            ),
            (
                d("region = \"us\"\nbase_url = \"http://x\""),
                vec![r#"destination "prod": base_url: set region or base_url, not both"#],
            ),
            (
                d("base_url = \"ftp://x\""),
                vec![
                    r#"destination "prod": base_url: expected an http:// or https:// URL, got "ftp://x""#,
                ],
            ),
            (
                d("").replace("write_keys = [\"wk\"]", ""),
                vec![r#"destination "prod": write_keys: required: at least one write key"#],
            ),
            (
                d("").replace("[\"wk\"]", "[\"wk\", 5]"),
                vec![r#"destination "prod": write_keys[1]: expected a string, got an integer"#],
            ),
            (
                d("").replace("[\"wk\"]", "\"wk\""),
                vec![
                    r#"destination "prod": write_keys: expected an array of strings, got a string"#,
                ],
            ),
            (
                d("").replace("[\"wk\"]", "[\"wk\", \"\"]"),
                vec![r#"destination "prod": write_keys[1]: must not be empty"#],
            ),
            (
                d("").replace("[\"wk\"]", "[\"w k\"]"),
                vec![r#"destination "prod": write_keys[0]: must not contain ':', whitespace"#],
            ),
            (
                d("").replace("[\"wk\"]", "[\"wk\", \"wk\"]"),
                vec![r#"destination "prod": write_keys[1]: the same key is given twice"#],
            ),
            (
                format!("{}{}", d(""), dest("staging", "wk", "")),
                vec![
                    r#"destination "staging": write_keys[0]: the same key is a write key of destination "prod""#,
                ],
            ),
            (
                d("write_keys_env = \"NOPE\""),
                vec![r#"destination "prod": write_keys_env: environment variable NOPE is not set"#],
            ),
            (
                d("write_keys_env = \"SET\"").replace("[\"wk\"]", "[\"env-value\"]"),
                vec![
                    r#"destination "prod": write_keys_env (key 1 of SET): the same key is given twice"#,
                ],
            ),
            (
                d("write_keys_env = \"COMMAS\""),
                vec![
                    r#"destination "prod": write_keys_env: environment variable COMMAS holds no key"#,
                ],
            ),
            (
                d("webhook_secret = \"\""),
                vec![r#"destination "prod": webhook_secret: must not be empty"#],
            ),
            (
                d("retl_sync_mode = \"sometimes\""),
                vec![
                    r#"destination "prod": retl_sync_mode: unknown reverse-ETL sync mode "sometimes""#,
                ],
            ),
            (
                d("mapping = { phone = { \"@path\" = \"$.traits.phone\" } }"),
                vec![r#"destination "prod": mapping: mapping key "phone" is not a field"#],
            ),
            (
                d("mapping = { email = { \"@nope\" = 1 } }"),
                vec![r#"destination "prod": mapping: invalid mapping"#],
            ),
            (
                d("mapping = { dataFields = { at = 1979-05-27 } }"),
                vec![
                    r#"destination "prod": mapping.dataFields.at: a TOML date has no JSON equivalent"#,
                ],
            ),
            (
                d("mapping = { dataFields = { x = [1, nan] } }"),
                vec![r#"destination "prod": mapping.dataFields.x[1]: infinite and NaN numbers"#],
            ),
            (
                d("mapping = '{\"email\": '"),
                vec![r#"destination "prod": mapping: not JSON"#],
            ),
            (
                d("mapping = 5"),
                vec![
                    r#"destination "prod": mapping: expected a table (or a JSON string), got an integer"#,
                ],
            ),
            (
                d("[destination.audience_defaults]\ncampaign = 5"),
                vec![
                    r#"destination "prod": audience_defaults: unknown key "campaign"; expected one of update_existing_users_only, channel_unsubscribe, campaign_id (did you mean "campaign_id"?)"#,
                ],
            ),
            (
                d("[destination.audiences.vip]\ncampaign_id = 0"),
                vec![
                    r#"destination "prod": audiences.vip.campaign_id: must be a whole positive number, got 0"#,
                ],
            ),
            (
                d("[destination.audiences.vip]\nchannel_unsubscribe = \"true\""),
                vec![
                    r#"destination "prod": audiences.vip.channel_unsubscribe: expected true or false, got a string"#,
                ],
            ),
            (
                d("[destination.audiences]\nvip = 1"),
                vec![r#"destination "prod": audiences.vip: expected a table, got an integer"#],
            ),
            (
                d("[destination.delivery]\nlinger = 5"),
                vec![
                    r#"destination "prod": delivery: unknown key "linger"; expected one of batch_size"#,
                    r#"(did you mean "linger_ms"?)"#,
                ],
            ),
            (
                d("[destination.delivery]\nbatch_size = 1001"),
                vec![
                    r#"destination "prod": delivery.batch_size: must be between 1 and 1000, got 1001"#,
                ],
            ),
            (
                d("[destination.delivery]\nbatch_size = 0"),
                vec!["delivery.batch_size: must be between 1 and 1000, got 0"],
            ),
            (
                d("[destination.delivery]\nlinger_ms = 1001"),
                vec!["delivery.linger_ms: must be between 0 and 1000, got 1001"],
            ),
            (
                d("[destination.delivery]\nconcurrency = 65"),
                vec!["delivery.concurrency: must be between 1 and 64, got 65"],
            ),
            (
                d("[destination.delivery]\ntimeout_ms = 0"),
                vec!["delivery.timeout_ms: must be between 1 and 600000, got 0"],
            ),
            (
                d("[destination.delivery]\nmax_request_bytes = 5000000"),
                vec!["delivery.max_request_bytes: must be between 1024 and 4000000"],
            ),
            (
                d("[destination.delivery]\nconcurrency = 1.5"),
                vec!["delivery.concurrency: expected a whole number, got a float"],
            ),
            (
                d("[destination.delivery.rate_limits]\nsubscribe = \"fast\""),
                vec![
                    r#"destination "prod": delivery.rate_limits.subscribe: expected "N/s" or "N/min""#,
                ],
            ),
            (
                d("[destination.delivery.rate_limits]\nsubscribe = 20"),
                vec![
                    r#"delivery.rate_limits.subscribe: expected a string like "20/s", "5/min", "adaptive" or "off", got an integer"#,
                ],
            ),
            (
                d("[destination.delivery.rate_limits]\nsubscrbe = \"20/s\""),
                vec![
                    r#"delivery.rate_limits: unknown key "subscrbe"; expected one of get_lists"#,
                    r#"(did you mean "subscribe"?)"#,
                ],
            ),
        ];
        for (text, wants) in &cases {
            let msg = parse_err(text, &env);
            for want in wants {
                assert!(
                    msg.contains(want),
                    "message {msg:?}\nlacks {want:?}\n--- in ---\n{text}"
                );
            }
            assert!(!msg.contains(KEY), "{msg}");
            assert!(!msg.contains("env-value"), "env value in {msg}");
            assert!(!msg.contains("pw@"), "URL credentials in {msg}");
        }
    }

    #[test]
    fn secrets_never_appear_in_debug_or_errors() {
        let secrets = [
            "sekrit-api-key",
            "sekrit-write",
            "sekrit-hook",
            "sekrit-admin",
        ];
        let text = format!(
            "admin_token = \"{}\"\n[[destination]]\nname = \"p\"\napi_key = \"{}\"\n\
             write_keys = [\"{}\"]\nwebhook_secret = \"{}\"\n",
            secrets[3], secrets[0], secrets[1], secrets[2]
        );
        let c = parse(&text);
        let debug = format!("{c:?} {c:#?}");
        for s in secrets {
            assert!(!debug.contains(s), "{s} in {debug}");
        }
        assert_eq!(format!("{}", c.admin_token.as_ref().unwrap()), "<redacted>");
        assert_eq!(
            format!("{:?}", c.destinations[0].write_keys[0]),
            "<redacted>"
        );

        // Errors about secrets, and syntax errors on their lines, do not repeat them.
        let broken = [
            text.replace("sekrit-api-key\"", "sekrit-api-key"),
            text.replace("write_keys = [", "write_keys = [\"sekrit-write\", "),
            format!("{text}{}", dest("q", "sekrit-write", "")),
            text.replace("api_key =", "api_key_env = \"X\"\napi_key ="),
            text.replace("admin_token =", "admin_token_env = \"X\"\nadmin_token ="),
            text.replace("\"sekrit-write\"", "\"sekrit-write:x\""),
            text.replace("\"sekrit-api-key\"", "[\"sekrit-api-key\"]"),
        ];
        for b in &broken {
            let msg = parse_err(b, &|_| Some("from-env".into()));
            for s in secrets {
                assert!(!msg.contains(s), "{s} in {msg:?}");
            }
        }
        let env = env_of(&[
            (API_KEY_ENV, "sekrit-api-key"),
            (WRITE_KEYS_ENV, "sekrit-write:"),
        ]);
        let msg = Config::embedded(&env).unwrap_err().to_string();
        assert!(!msg.contains("sekrit"), "{msg}");
    }

    #[test]
    fn secret_matching() {
        let s = Secret::new("wk_live_123");
        assert!(s.matches(b"wk_live_123"));
        for other in [
            &b"wk_live_124"[..],
            b"wk_live_12",
            b"wk_live_1234",
            b"",
            b"WK_LIVE_123",
        ] {
            assert!(!s.matches(other), "{other:?}");
        }
        assert!(Secret::new("").matches(b""));
        assert_eq!(s.to_string(), "<redacted>");
        assert_eq!(format!("{s:?}"), "<redacted>");
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

    #[test]
    fn rate_limit_table() {
        use Endpoint::*;
        let ok: &[(Endpoint, &str, Limit)] = &[
            (Subscribe, "20/s", Limit::fixed(20.0)),
            (Subscribe, " 20 / sec ", Limit::fixed(20.0)),
            (
                Subscribe,
                "200/s,burst=5",
                Limit::Fixed {
                    per_second: 200.0,
                    burst: 5,
                },
            ),
            (
                GetUsers,
                "5/min",
                Limit::Fixed {
                    per_second: 5.0 / 60.0,
                    burst: 5,
                },
            ),
            (
                GetUsers,
                "5/minute, burst=1",
                Limit::Fixed {
                    per_second: 5.0 / 60.0,
                    burst: 1,
                },
            ),
            (
                CreateList,
                "0.5/s",
                Limit::Fixed {
                    per_second: 0.5,
                    burst: 1,
                },
            ),
            (Unsubscribe, "off", Limit::Unlimited),
            (Unsubscribe, "OFF", Limit::Unlimited),
            (Subscribe, "adaptive", Subscribe.default_limit()),
            (
                Subscribe,
                "adaptive,start=10,max=200",
                Limit::Adaptive {
                    start: 10.0,
                    min: 1.0,
                    max: 200.0,
                },
            ),
            (
                GetLists,
                "adaptive",
                Limit::Adaptive {
                    start: 100.0,
                    min: 10.0,
                    max: 100.0,
                },
            ),
        ];
        for (e, text, want) in ok {
            assert_eq!(parse_limit(*e, text).as_ref(), Ok(want), "{e:?} {text:?}");
        }
        let bad = [
            ("", "expected \"N/s\" or \"N/min\""),
            ("20", "expected \"N/s\" or \"N/min\""),
            ("20/h", "expected \"N/s\" or \"N/min\""),
            ("0/s", "expected \"N/s\" or \"N/min\""),
            ("-1/s", "expected \"N/s\" or \"N/min\""),
            ("inf/s", "expected \"N/s\" or \"N/min\""),
            ("x/s", "expected \"N/s\" or \"N/min\""),
            (
                "20/s,burst=0",
                "burst: expected a whole number of at least 1, got \"0\"",
            ),
            ("20/s,burst=x", "burst: expected a whole number"),
            ("20/s,burts=2", "expected \"N/s\" or \"N/min\""),
            ("off,burst=2", "expected \"N/s\" or \"N/min\""),
            ("adaptive,speed=2", "adaptive: unknown option \"speed\""),
            (
                "adaptive,start=0",
                "adaptive: start: expected a positive number",
            ),
            (
                "adaptive,start=2000",
                "adaptive: expected min <= start <= max",
            ),
            ("adaptive,min", "expected \"N/s\" or \"N/min\""),
        ];
        for (text, want) in bad {
            let err = parse_limit(Subscribe, text).expect_err(text);
            assert!(err.contains(want), "{text:?}: {err:?} lacks {want:?}");
        }
        // Every endpoint has a key, and every key but `all` an endpoint.
        assert_eq!(RATE_LIMIT_KEYS.len(), ENDPOINT_KEYS.len() + 1);
        for (key, _) in ENDPOINT_KEYS {
            assert!(RATE_LIMIT_KEYS.contains(&key));
        }
    }

    #[test]
    fn storage_urls() {
        let ok = [
            (
                "sqlite://data/x.db",
                Storage::Sqlite {
                    path: "data/x.db".into(),
                },
            ),
            (
                "sqlite:///var/lib/x.db",
                Storage::Sqlite {
                    path: "/var/lib/x.db".into(),
                },
            ),
            (
                "SQLITE://x.db",
                Storage::Sqlite {
                    path: "x.db".into(),
                },
            ),
            (
                "sqlite:x.db",
                Storage::Sqlite {
                    path: "x.db".into(),
                },
            ),
            ("sqlite::memory:", Storage::SqliteMemory),
            ("sqlite://:memory:", Storage::SqliteMemory),
        ];
        for (url, want) in ok {
            assert_eq!(Storage::parse_url(url), Ok(want), "{url}");
        }
        let bad = [
            (
                "postgres://u:secret@h/db",
                "PostgreSQL is not supported yet; use sqlite://PATH",
            ),
            ("postgresql://h/db", "PostgreSQL is not supported yet"),
            ("sqlite://", "the database path is empty"),
            (
                "sqlite://x.db?mode=ro",
                "query parameters are not supported",
            ),
            ("data/x.db", "\"data/x.db\" is not a URL"),
            ("file:x.db", "unsupported scheme \"file\""),
        ];
        for (url, want) in bad {
            let err = Storage::parse_url(url).expect_err(url);
            assert!(err.contains(want), "{url}: {err:?} lacks {want:?}");
            assert!(!err.contains("secret"), "{err}");
        }
    }

    #[test]
    fn the_integrity_check_bound_is_configurable() {
        let c = parse(&dest("d", "wk", ""));
        assert_eq!(
            c.storage_quick_check,
            Some(sync::sqlite::DEFAULT_QUICK_CHECK)
        );
        let c = parse(&format!(
            "[storage]\nquick_check_ms = 250\n{}",
            dest("d", "wk", "")
        ));
        assert_eq!(c.storage_quick_check, Some(Duration::from_millis(250)));
        let c = parse(&format!(
            "[storage]\nquick_check_ms = 0\n{}",
            dest("d", "wk", "")
        ));
        assert_eq!(c.storage_quick_check, None, "0 skips the check");
        let err = parse_err(
            &format!("[storage]\nquick_check_ms = -1\n{}", dest("d", "wk", "")),
            &no_env,
        );
        assert!(
            err.contains("line 2: storage.quick_check_ms: must be between 0 and 3600000, got -1"),
            "{err}"
        );
    }

    #[test]
    fn the_example_parses() {
        let env = env_of(&[(API_KEY_ENV, KEY)]);
        let c = match Config::parse(EXAMPLE, &env) {
            Ok(c) => c,
            Err(e) => panic!("EXAMPLE: {e}"),
        };
        assert_eq!(c.listen, DEFAULT_LISTEN);
        assert_eq!(c.storage, Storage::default());
        assert!(c.admin_token.is_none());
        let d = &c.destinations[0];
        assert_eq!(d.name, "prod");
        assert_eq!(d.api_key.expose(), KEY);
        assert!(d.mapping.is_some());
        assert_eq!(
            d.audiences["vip_users"].update_existing_users_only,
            Some(true)
        );
        assert_eq!(
            d.delivery.rate_limits[&Endpoint::Subscribe],
            Endpoint::Subscribe.default_limit()
        );
        assert_eq!(d.delivery.rate_limits.len(), 4);
        // Every key of the format appears in the example (commented or not).
        for key in ROOT_KEYS
            .iter()
            .chain(STORAGE_KEYS)
            .chain(INGEST_KEYS)
            .chain(HTTP_KEYS)
            .chain(DESTINATION_KEYS)
            .chain(AUDIENCE_KEYS)
            .chain(DELIVERY_KEYS)
        {
            assert!(EXAMPLE.contains(key), "{key} is not in EXAMPLE");
        }
    }

    #[test]
    fn load_names_the_file_and_line() {
        let dir =
            std::env::temp_dir().join(format!("iterable-lists-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.toml");
        std::fs::write(
            &path,
            format!("{}project_type = \"email\"\n", dest("prod", "wk", "")),
        )
        .unwrap();
        let msg = Config::load(Some(&path)).unwrap_err().to_string();
        let want = format!(
            "{}:6: destination \"prod\": project_type: expected \"hybrid\" or \"userId\", got \"email\"",
            path.display()
        );
        assert_eq!(msg, want);

        std::fs::write(&path, "listen = \n").unwrap();
        let msg = Config::load(Some(&path)).unwrap_err().to_string();
        assert!(
            msg.starts_with(&format!("{}:1:", path.display())) && msg.contains("TOML syntax error"),
            "{msg}"
        );

        let missing = dir.join("missing.toml");
        let err = Config::load(Some(&missing)).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }), "{err:?}");
        assert!(err.to_string().contains("missing.toml"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
