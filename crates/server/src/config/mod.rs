//! Service configuration: a TOML file (or, without one, embedded defaults and environment
//! variables), with secrets read from the environment and every error naming its key and line.
//!
//! The file is read in three steps (`validate`): TOML syntax (`toml`), the file's shape with
//! serde (`raw`: a key it does not know, or a value of the wrong kind, is refused, and
//! `locate` words the refusal with the key and its line), then each value checked into the
//! typed [`Config`] by the module of its table (`limits`, `destinations`, `delivery`, ...).

mod delivery;
mod destinations;
mod environment;
mod error;
mod limits;
mod locate;
mod mapping;
mod rate_limits;
mod raw;
mod secrets;
mod storage;
#[cfg(test)]
mod test_support;
mod validate;
mod values;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::Path;
use std::time::Duration;

use listener::Limits;

use crate::ingest::IngestLimits;
use crate::logs::LogFormat;

pub use delivery::Delivery;
pub use destinations::{DEFAULT_MAX_REMOVAL_RATIO, DestinationConfig};
pub use environment::{
    ADMIN_TOKEN_ENV, API_KEY_ENV, BASE_URL_ENV, EMBEDDED_DESTINATION, LISTEN_ENV, PROJECT_TYPE_ENV,
    REGION_ENV, STORAGE_URL_ENV, WEBHOOK_SECRET_ENV, WRITE_KEYS_ENV,
};
pub use error::ConfigError;
pub use rate_limits::{ENDPOINT_KEYS, parse_limit};
pub use secrets::{Secret, Secrets};
pub use storage::{DEFAULT_POOL_SIZE, DEFAULT_STORAGE_URL, PostgresUrl, Storage, parse_retention};

use secrets::Env;

/// A fully commented example configuration, which parses when `ITERABLE_API_KEY` is set; the
/// file is `crates/server/examples-config/iterable-lists.toml`.
pub const EXAMPLE: &str = include_str!("../../examples-config/iterable-lists.toml");

/// `listen` when the configuration does not set it: `127.0.0.1:8080`.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 1), 8080));

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
    /// How long an instance's lease of an audience lasts unless renewed (`[storage]
    /// lease_seconds`, default 30): with several instances on one database, a dead
    /// instance's audiences are taken over after it.
    pub storage_lease: Duration,
    /// Connections of the PostgreSQL pool (`[storage] pool_size`).
    pub storage_pool_size: usize,
    /// How long final event-log rows are kept (`[storage] retention`; `None`: forever).
    pub storage_retention: Option<Duration>,
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
    /// How log lines are written (`[log] format`; `--log-format` wins).
    pub log_format: LogFormat,
}

/// `[storage] lease_seconds` when the configuration does not set it.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

impl Default for Config {
    /// Listen on [`DEFAULT_LISTEN`], the default storage, no admin token, Segment's limits and
    /// no destination.
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN,
            storage: Storage::default(),
            storage_quick_check: Some(sync::sqlite::DEFAULT_QUICK_CHECK),
            storage_lease: DEFAULT_LEASE,
            storage_pool_size: DEFAULT_POOL_SIZE,
            storage_retention: Some(sync::retention::DEFAULT_RETENTION),
            admin_token: None,
            ingest: IngestLimits::default(),
            http: Limits::default(),
            metrics_listen: None,
            destinations: Vec::new(),
            log_format: LogFormat::Text,
        }
    }
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
        validate::parse_source(text, None, Env { var: env, secrets })
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
                let mut config = validate::parse_source(&text, Some(p), env)?;
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
    environment::from_env(env).map_err(|f| ConfigError::Invalid {
        file: None,
        line: None,
        message: f.message,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::PathBuf;
    use std::time::Duration;

    use destination::AudienceSettings;
    use destination::settings::ProjectType;
    use iterable::limiter::{Endpoint, Limit};
    use segment::membership::RetlSyncMode;

    use super::*;
    use raw::{
        RawAudience, RawConfig, RawDelivery, RawDestination, RawHttp, RawIngest, RawLog,
        RawStorage, keys_of,
    };
    use test_support::*;

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
        assert_eq!(d.on_list_deleted, sync::reconciler::OnListDeleted::Recreate);
        assert_eq!((d.verify_every, d.verify_repair), (None, false));
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
on_list_deleted = "pause"
verify_every = "6h"
verify_repair = true
mapping = {{ userId = {{ "@path" = "$.traits.uid" }}, email = false }}
audience_defaults = {{ channel_unsubscribe = true, campaign_id = 7 }}
[destination.audiences.vip_users]
update_existing_users_only = true
campaign_id = 9
verify_every = "off"
[destination.audiences.hourly]
verify_every = "1h"
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
        assert_eq!(d.on_list_deleted, sync::reconciler::OnListDeleted::Pause);
        assert_eq!(d.verify_every, Some(Duration::from_secs(6 * 3600)));
        assert_eq!(
            d.verify_every_by_audience,
            [
                ("hourly".to_string(), Some(Duration::from_secs(3600))),
                ("vip_users".to_string(), None)
            ]
            .into()
        );
        assert!(d.verify_repair);
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
        assert_eq!(d.audiences.len(), 3);
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
    fn the_log_format_is_text_or_json() {
        assert_eq!(parse("").log_format, LogFormat::Text);
        assert_eq!(parse("[log]").log_format, LogFormat::Text);
        assert_eq!(
            parse("[log]\nformat = \"json\"").log_format,
            LogFormat::Json
        );
        assert_eq!(
            parse("[log]\nformat = \"text\"").log_format,
            LogFormat::Text
        );
        let cases = [
            (
                "[log]\n\nformat = \"xml\"",
                r#"line 3: log.format: expected "text" or "json", got "xml""#,
            ),
            (
                "[log]\nformat = 1",
                "line 2: log.format: expected a string, got an integer",
            ),
            (
                "[log]\nlevel = \"debug\"",
                r#"line 2: log: unknown key "level"; expected one of format"#,
            ),
        ];
        for (text, want) in cases {
            let msg = parse_err(text, &no_env);
            assert!(msg.contains(want), "{text:?}: {msg:?} lacks {want:?}");
        }
        // The file's name and line.
        let dir = std::env::temp_dir().join(format!("il-config-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(&path, "[log]\nformat = \"yaml\"\n").unwrap();
        let msg = Config::load(Some(&path)).unwrap_err().to_string();
        assert_eq!(
            msg,
            format!(
                "{}:2: log.format: expected \"text\" or \"json\", got \"yaml\"",
                path.display()
            )
        );
        std::fs::remove_dir_all(&dir).unwrap();
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
    fn the_lease_is_configurable_and_checked() {
        let c = parse(&dest("d", "wk", ""));
        assert_eq!(c.storage_lease, Duration::from_secs(30));
        let c = parse(&format!(
            "[storage]\nlease_seconds = 5\n{}",
            dest("d", "wk", "")
        ));
        assert_eq!(c.storage_lease, Duration::from_secs(5));
        for bad in ["0", "3601", "-3"] {
            let err = parse_err(
                &format!("[storage]\nlease_seconds = {bad}\n{}", dest("d", "wk", "")),
                &no_env,
            );
            assert!(
                err.contains(&format!(
                    "line 2: storage.lease_seconds: must be between 1 and 3600, got {bad}"
                )),
                "{err}"
            );
        }
        let err = parse_err(
            &format!("[storage]\nlease_seconds = \"30\"\n{}", dest("d", "wk", "")),
            &no_env,
        );
        assert!(err.contains("storage.lease_seconds"), "{err}");
    }

    #[test]
    fn postgres_storage_its_pool_retention_and_the_environment() {
        let c = parse(&format!(
            "[storage]\nurl = \"postgres://app:hunter2@db:5432/lists\"\npool_size = 3\n\
             retention = \"7d\"\n{}",
            dest("d", "wk", "")
        ));
        let Storage::Postgres { url } = &c.storage else {
            panic!("{:?}", c.storage);
        };
        assert_eq!(url.expose(), "postgres://app:hunter2@db:5432/lists");
        assert!(
            !format!("{c:?}").contains("hunter2"),
            "Debug shows the password"
        );
        assert_eq!(c.storage_pool_size, 3);
        assert_eq!(c.storage_retention, Some(Duration::from_secs(7 * 86_400)));
        let c = parse(&dest("d", "wk", ""));
        assert_eq!(c.storage_pool_size, DEFAULT_POOL_SIZE);
        assert_eq!(
            c.storage_retention,
            Some(sync::retention::DEFAULT_RETENTION)
        );
        let c = parse(&format!(
            "[storage]\nretention = \"off\"\n{}",
            dest("d", "wk", "")
        ));
        assert_eq!(c.storage_retention, None);
        for (line, want) in [
            (
                "pool_size = 0",
                "storage.pool_size: must be between 1 and 1000, got 0",
            ),
            (
                "retention = \"30\"",
                "storage.retention: \"30\" has no known unit",
            ),
        ] {
            let err = parse_err(
                &format!("[storage]\n{line}\n{}", dest("d", "wk", "")),
                &no_env,
            );
            assert!(err.contains(&format!("line 2: {want}")), "{err}");
        }
        // The environment overrides the file, and a bad value there never shows the URL.
        let text = format!(
            "[storage]\nurl = \"sqlite://x.db\"\n{}",
            dest("d", "wk", "")
        );
        let env = env_of(&[(STORAGE_URL_ENV, "postgres://u:pw_env@h/db")]);
        let c = Config::parse(&text, &env).expect("parse");
        assert!(matches!(&c.storage, Storage::Postgres { url } if url.expose().contains("pw_env")));
        let env = env_of(&[(STORAGE_URL_ENV, "postgres://u:pw_env@h:x/db")]);
        let err = Config::parse(&text, &env).expect_err("bad URL").to_string();
        assert!(
            err.contains(STORAGE_URL_ENV) && !err.contains("pw_env"),
            "{err}"
        );
        // Embedded mode too.
        let env = env_of(&[(STORAGE_URL_ENV, "postgres://h/db")]);
        let c = Config::embedded(&env).expect("embedded");
        assert!(
            matches!(c.storage, Storage::Postgres { .. }),
            "{:?}",
            c.storage
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
        for key in keys_of::<RawConfig>()
            .iter()
            .chain(keys_of::<RawStorage>())
            .chain(keys_of::<RawIngest>())
            .chain(keys_of::<RawHttp>())
            .chain(keys_of::<RawDestination>())
            .chain(keys_of::<RawAudience>())
            .chain(keys_of::<RawDelivery>())
            .chain(keys_of::<RawLog>())
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
