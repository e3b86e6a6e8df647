//! Emulator configuration: projects and their keys, fault injection, rate limits, request log.
//! Read from a TOML file or built from flags; [`EmulatorConfig::validate`] names any bad field.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use listener::Limits;

use serde::{Deserialize, Serialize};

use crate::endpoint::Endpoint;
use crate::ratelimit::{LimitSetting, RateLimit};

/// How a project identifies users (Iterable's project types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ProjectType {
    #[serde(rename = "hybrid")]
    Hybrid,
    #[serde(rename = "userId")]
    UserId,
    #[serde(rename = "email")]
    Email,
}

impl ProjectType {
    pub fn name(self) -> &'static str {
        match self {
            ProjectType::Hybrid => "hybrid",
            ProjectType::UserId => "userId",
            ProjectType::Email => "email",
        }
    }
}

impl FromStr for ProjectType {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        match s {
            "hybrid" => Ok(ProjectType::Hybrid),
            "userId" | "userid" | "user_id" => Ok(ProjectType::UserId),
            "email" => Ok(ProjectType::Email),
            other => Err(ConfigError::new(
                "project.type",
                format!("{other:?} is not a project type; expected hybrid, userId or email"),
            )),
        }
    }
}

/// Iterable's data centers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Region {
    #[default]
    Us,
    Eu,
}

impl Region {
    pub fn name(self) -> &'static str {
        match self {
            Region::Us => "us",
            Region::Eu => "eu",
        }
    }
}

impl FromStr for Region {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        match s {
            "us" | "US" => Ok(Region::Us),
            "eu" | "EU" => Ok(Region::Eu),
            other => Err(ConfigError::new(
                "project.region",
                format!("{other:?} is not a region; expected us or eu"),
            )),
        }
    }
}

/// An Iterable API key. Its `Debug` and `Display` never show the key.
#[derive(Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(transparent)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }
    /// The key itself, for comparing with a request header. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
    fn is_well_formed(&self) -> bool {
        self.0.len() == 32
            && self
                .0
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// One Iterable project.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectConfig {
    /// Project id as Iterable shows it in messages; assigned from 10001 upwards when absent.
    #[serde(default)]
    pub id: Option<u64>,
    #[serde(rename = "type")]
    pub project_type: ProjectType,
    #[serde(default)]
    pub region: Region,
    pub api_keys: Vec<ApiKey>,
}

impl ProjectConfig {
    pub fn new(project_type: ProjectType, key: impl Into<String>) -> Self {
        Self {
            id: None,
            project_type,
            region: Region::Us,
            api_keys: vec![ApiKey::new(key)],
        }
    }

    pub fn in_region(mut self, region: Region) -> Self {
        self.region = region;
        self
    }
}

impl FromStr for ProjectConfig {
    type Err = ConfigError;

    /// `TYPE:KEY[,KEY...][:REGION]`, e.g. `hybrid:0123...abcd` or `userId:0123...abcd:eu`.
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        let mut parts = s.split(':');
        let (Some(t), Some(keys)) = (parts.next(), parts.next()) else {
            return Err(ConfigError::new(
                "--project",
                "expected TYPE:KEY[:REGION], e.g. hybrid:<32 hex chars>".to_string(),
            ));
        };
        let region = match parts.next() {
            Some(r) => r.parse()?,
            None => Region::Us,
        };
        if parts.next().is_some() {
            return Err(ConfigError::new(
                "--project",
                "too many ':' parts; expected TYPE:KEY[:REGION]".to_string(),
            ));
        }
        Ok(ProjectConfig {
            id: None,
            project_type: t.parse()?,
            region,
            api_keys: keys.split(',').map(ApiKey::new).collect(),
        })
    }
}

/// Faults injected into `/api` requests. All off by default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Probability of `500 GenericError`.
    pub error_500: f64,
    /// Probability of `503` "Request timeout.  Try again later.".
    pub error_503: f64,
    /// Probability of `429 RateLimitExceeded`, whatever the buckets say.
    pub error_429: f64,
    /// Latency added to every request, in milliseconds.
    pub latency_ms: u64,
    /// Extra latency drawn uniformly from 0 to this many milliseconds.
    pub latency_jitter_ms: u64,
    /// Probability that the connection is closed without a response.
    pub drop_connection: f64,
    /// Probability that the connection is reset (TCP RST) without a response.
    pub reset_connection: f64,
    /// For this long after creation, a new list still answers `invalidListId` on subscribe and
    /// unsubscribe, as Iterable does while the list propagates.
    pub new_list_invisible_ms: u64,
    /// Bodies larger than this get `413 BatchTooLarge`.
    pub max_body_bytes: Option<usize>,
}

impl Faults {
    /// The first problem found, naming the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (name, p) in [
            ("faults.error_500", self.error_500),
            ("faults.error_503", self.error_503),
            ("faults.error_429", self.error_429),
            ("faults.drop_connection", self.drop_connection),
            ("faults.reset_connection", self.reset_connection),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(ConfigError::new(
                    name,
                    format!("{p} is not a probability between 0 and 1"),
                ));
            }
        }
        if self.max_body_bytes == Some(0) {
            return Err(ConfigError::new(
                "faults.max_body_bytes",
                "must be at least 1".to_string(),
            ));
        }
        Ok(())
    }
}

/// How many requests the inspection log keeps.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RequestLogConfig {
    /// The most entries kept; the oldest are dropped first.
    pub capacity: usize,
    /// The most body bytes kept over all entries.
    pub max_bytes: usize,
}

impl Default for RequestLogConfig {
    fn default() -> Self {
        Self {
            capacity: 10_000,
            max_bytes: 16 * 1024 * 1024,
        }
    }
}

/// Timeouts and the connection cap of the listeners (`[http]`), as the service's `[http]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// The most open connections; absent: derived from the open-file limit.
    pub max_connections: Option<usize>,
    /// Time to send a full request header.
    pub header_timeout_ms: u64,
    /// Time a connection may wait for its next request.
    pub keep_alive_timeout_ms: u64,
    /// Lowest average body rate, bytes per second, after `body_grace_ms`.
    pub body_min_rate: u64,
    /// Time a body may take before `body_min_rate` applies.
    pub body_grace_ms: u64,
    /// Time a response write may make no progress.
    pub write_timeout_ms: u64,
}

/// The longest timeout of `[http]`: a day.
const MAX_HTTP_TIMEOUT_MS: u64 = 86_400_000;

impl Default for HttpConfig {
    fn default() -> Self {
        let l = Limits::default();
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(MAX_HTTP_TIMEOUT_MS);
        Self {
            max_connections: l.max_connections,
            header_timeout_ms: ms(l.header_timeout),
            keep_alive_timeout_ms: ms(l.keep_alive_timeout),
            body_min_rate: l.body_min_rate,
            body_grace_ms: ms(l.body_grace),
            write_timeout_ms: ms(l.write_timeout),
        }
    }
}

impl HttpConfig {
    /// The limits, or the first bad field.
    pub fn limits(&self) -> Result<Limits, ConfigError> {
        let ms = |field: &str, v: u64| {
            if (1..=MAX_HTTP_TIMEOUT_MS).contains(&v) {
                Ok(Duration::from_millis(v))
            } else {
                Err(ConfigError::new(
                    format!("http.{field}"),
                    format!("must be between 1 and {MAX_HTTP_TIMEOUT_MS} ms, got {v}"),
                ))
            }
        };
        if self.body_min_rate == 0 {
            return Err(ConfigError::new(
                "http.body_min_rate",
                "must be at least 1 byte per second".to_string(),
            ));
        }
        if self.max_connections == Some(0) {
            return Err(ConfigError::new(
                "http.max_connections",
                "must be at least 1".to_string(),
            ));
        }
        Ok(Limits {
            header_timeout: ms("header_timeout_ms", self.header_timeout_ms)?,
            keep_alive_timeout: ms("keep_alive_timeout_ms", self.keep_alive_timeout_ms)?,
            body_min_rate: self.body_min_rate,
            body_grace: ms("body_grace_ms", self.body_grace_ms)?,
            write_timeout: ms("write_timeout_ms", self.write_timeout_ms)?,
            max_connections: self.max_connections,
        })
    }
}

/// A limit setting as written in TOML: `subscribe = "20/s"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitValue(pub LimitSetting);

impl<'de> Deserialize<'de> for LimitValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map(LimitValue).map_err(serde::de::Error::custom)
    }
}

/// The whole emulator configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmulatorConfig {
    /// Address of the main (US) listener.
    pub listen: SocketAddr,
    /// Optional second listener that acts as the EU data center.
    pub listen_eu: Option<SocketAddr>,
    #[serde(rename = "project")]
    pub projects: Vec<ProjectConfig>,
    pub faults: Faults,
    /// Overrides of the per-endpoint limits, by endpoint name.
    pub limits: BTreeMap<String, LimitValue>,
    /// Send `Retry-After` (whole seconds) with 429 responses. Iterable has not been seen to.
    pub retry_after: bool,
    /// Seed for fault injection and generated ids; random when absent.
    pub seed: Option<u64>,
    pub request_log: RequestLogConfig,
    /// Timeouts and the connection cap of the listeners.
    pub http: HttpConfig,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8787)),
            listen_eu: None,
            projects: Vec::new(),
            faults: Faults::default(),
            limits: BTreeMap::new(),
            retry_after: false,
            seed: None,
            request_log: RequestLogConfig::default(),
            http: HttpConfig::default(),
        }
    }
}

/// A configuration problem, naming the field and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ConfigError {
    pub field: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(field: impl Into<String>, reason: String) -> Self {
        Self {
            field: field.into(),
            reason,
        }
    }
}

impl EmulatorConfig {
    /// Reads a TOML configuration.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::new("config", e.to_string()))
    }

    /// Adds a project (builder style, for tests).
    pub fn with_project(mut self, p: ProjectConfig) -> Self {
        self.projects.push(p);
        self
    }

    /// Sets the limit of one endpoint (builder style, for tests).
    pub fn with_limit(mut self, endpoint: Endpoint, limit: Option<RateLimit>) -> Self {
        self.limits
            .insert(endpoint.name().to_string(), LimitValue(LimitSetting(limit)));
        self
    }

    /// Checks everything and returns the effective limit per endpoint.
    pub fn validate(&self) -> Result<HashMap<Endpoint, RateLimit>, ConfigError> {
        if self.projects.is_empty() {
            return Err(ConfigError::new(
                "project",
                "at least one project is needed, e.g. --project hybrid:<32 hex chars>".to_string(),
            ));
        }
        let mut keys = HashSet::new();
        let mut ids = HashSet::new();
        for (i, p) in self.projects.iter().enumerate() {
            let field = format!("project[{i}]");
            if p.api_keys.is_empty() {
                return Err(ConfigError::new(
                    format!("{field}.api_keys"),
                    "at least one key is needed".to_string(),
                ));
            }
            for k in &p.api_keys {
                if !k.is_well_formed() {
                    return Err(ConfigError::new(
                        format!("{field}.api_keys"),
                        "a key must be 32 lowercase hex characters, as Iterable's are".to_string(),
                    ));
                }
                if !keys.insert(k.clone()) {
                    return Err(ConfigError::new(
                        format!("{field}.api_keys"),
                        "a key is used by two projects".to_string(),
                    ));
                }
            }
            if p.project_type == ProjectType::Email && p.region == Region::Eu {
                return Err(ConfigError::new(
                    format!("{field}.region"),
                    "email-based projects exist only in the US data center".to_string(),
                ));
            }
            if let Some(id) = p.id
                && !ids.insert(id)
            {
                return Err(ConfigError::new(
                    format!("{field}.id"),
                    format!("project id {id} is used twice"),
                ));
            }
        }
        self.faults.validate()?;
        self.http.limits()?;
        if self.request_log.capacity == 0 {
            return Err(ConfigError::new(
                "request_log.capacity",
                "must be at least 1".to_string(),
            ));
        }
        let mut limits: HashMap<Endpoint, RateLimit> = Endpoint::ALL
            .into_iter()
            .filter_map(|e| e.default_limit().map(|l| (e, l)))
            .collect();
        for (name, LimitValue(LimitSetting(setting))) in &self.limits {
            let endpoints: Vec<Endpoint> = if name == "all" {
                Endpoint::ALL.to_vec()
            } else {
                vec![
                    name.parse()
                        .map_err(|e: crate::endpoint::UnknownEndpoint| {
                            ConfigError::new(format!("limits.{name}"), e.to_string())
                        })?,
                ]
            };
            for e in endpoints {
                match setting {
                    Some(l) => limits.insert(e, *l),
                    None => limits.remove(&e),
                };
            }
        }
        Ok(limits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "0123456789abcdef0123456789abcdef";
    const K2: &str = "fedcba9876543210fedcba9876543210";

    #[test]
    fn project_flag_forms() {
        let p: ProjectConfig = format!("hybrid:{K1}").parse().unwrap();
        assert_eq!(
            (p.project_type, p.region),
            (ProjectType::Hybrid, Region::Us)
        );
        let p: ProjectConfig = format!("userId:{K1},{K2}:eu").parse().unwrap();
        assert_eq!(
            (p.project_type, p.region),
            (ProjectType::UserId, Region::Eu)
        );
        assert_eq!(p.api_keys.len(), 2);
        for bad in [
            "hybrid",
            "weird:abc",
            &format!("hybrid:{K1}:mars"),
            &format!("hybrid:{K1}:us:x"),
        ] {
            assert!(bad.parse::<ProjectConfig>().is_err(), "{bad}");
        }
    }

    #[test]
    fn api_key_never_printed() {
        let k = ApiKey::new(K1);
        assert!(!format!("{k:?} {k}").contains(K1));
        let p: ProjectConfig = format!("hybrid:{K1}").parse().unwrap();
        assert!(!format!("{p:?}").contains(K1));
    }

    #[test]
    fn toml_config_reads_and_validates() {
        let text = format!(
            r#"
            listen = "127.0.0.1:0"
            seed = 7
            retry_after = true
            [[project]]
            type = "hybrid"
            api_keys = ["{K1}"]
            [[project]]
            id = 555
            type = "userId"
            region = "eu"
            api_keys = ["{K2}"]
            [faults]
            error_500 = 0.1
            latency_ms = 5
            new_list_invisible_ms = 2000
            [limits]
            subscribe = "20/s"
            getUsers = "off"
            "#
        );
        let c = EmulatorConfig::from_toml(&text).unwrap();
        let limits = c.validate().unwrap();
        assert_eq!(limits[&Endpoint::Subscribe], RateLimit::per_second(20));
        assert!(!limits.contains_key(&Endpoint::GetUsers));
        assert_eq!(limits[&Endpoint::ListSize], RateLimit::per_minute(5));
        assert_eq!(limits[&Endpoint::GetLists], RateLimit::per_second(100));
        assert_eq!(c.projects[1].id, Some(555));
        assert_eq!(c.faults.error_500, 0.1);
    }

    #[test]
    fn bad_configs_name_the_field() {
        let cases: Vec<(EmulatorConfig, &str)> = vec![
            (EmulatorConfig::default(), "project"),
            (
                EmulatorConfig::default()
                    .with_project(ProjectConfig::new(ProjectType::Hybrid, "short")),
                "project[0].api_keys",
            ),
            (
                EmulatorConfig::default()
                    .with_project(ProjectConfig::new(ProjectType::Hybrid, K1))
                    .with_project(ProjectConfig::new(ProjectType::UserId, K1)),
                "project[1].api_keys",
            ),
            (
                EmulatorConfig::default()
                    .with_project(ProjectConfig::new(ProjectType::Email, K1).in_region(Region::Eu)),
                "project[0].region",
            ),
            (
                {
                    let mut c = EmulatorConfig::default()
                        .with_project(ProjectConfig::new(ProjectType::Hybrid, K1));
                    c.faults.error_429 = 1.5;
                    c
                },
                "faults.error_429",
            ),
        ];
        for (c, field) in cases {
            assert_eq!(c.validate().unwrap_err().field, field);
        }
        let err = EmulatorConfig::from_toml("[limits]\nsubscribe = \"fast\"").unwrap_err();
        assert!(err.reason.contains("fast"), "{err}");
        let mut c =
            EmulatorConfig::default().with_project(ProjectConfig::new(ProjectType::Hybrid, K1));
        c.limits
            .insert("nope".into(), LimitValue(LimitSetting(None)));
        assert_eq!(c.validate().unwrap_err().field, "limits.nope");
        let err = EmulatorConfig::from_toml("bogus = 1").unwrap_err();
        assert!(err.reason.contains("bogus"), "{err}");
    }

    #[test]
    fn limit_all_off_disables_every_bucket() {
        let c = EmulatorConfig::default().with_project(ProjectConfig::new(ProjectType::Hybrid, K1));
        let mut c2 = c.clone();
        c2.limits
            .insert("all".into(), LimitValue(LimitSetting(None)));
        assert!(c2.validate().unwrap().is_empty());
        assert!(!c.validate().unwrap().is_empty());
    }
}
