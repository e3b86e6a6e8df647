//! `[storage]`: where the state lives, given as a URL (`sqlite://data/iterable-lists.db` or
//! `postgres://user@host/db`), the PostgreSQL pool's size and how long the event log is kept.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// `storage.url` when the configuration does not set it.
pub const DEFAULT_STORAGE_URL: &str = "sqlite://data/iterable-lists.db";

/// The storage engine and where its data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// An SQLite file. A relative path in a file loaded by [`super::Config::load`] is
    /// relative to that file's directory; elsewhere (the embedded default,
    /// [`super::Config::parse`]) to the working directory.
    Sqlite {
        /// The database file.
        path: PathBuf,
    },
    /// An in-memory SQLite database (`sqlite::memory:`), lost on exit: for tests.
    SqliteMemory,
    /// A PostgreSQL database, which several instances may share.
    Postgres {
        /// `postgres://user:password@host:port/db` (shown without the password).
        url: PostgresUrl,
    },
}

/// A PostgreSQL URL, which may hold a password: it shows (`Debug`, `Display`) without it.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresUrl(String);

impl PostgresUrl {
    /// The URL with its password, to connect with. Never print it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", sync::postgres::redact_url(&self.0))
    }
}

impl std::fmt::Display for PostgresUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&sync::postgres::redact_url(&self.0))
    }
}

/// `[storage] pool_size` when the configuration does not set it.
pub const DEFAULT_POOL_SIZE: usize = sync::postgres::DEFAULT_POOL_SIZE;

/// Reads `[storage] retention`: a period like `30d`, `12h`, `90m` or `3600s`; `0` or `off`
/// keeps the event log forever (`None`).
pub fn parse_retention(text: &str) -> Result<Option<Duration>, String> {
    let t = text.trim().to_ascii_lowercase();
    if t == "off" || t == "0" {
        return Ok(None);
    }
    let expected = "expected a period like \"30d\", \"12h\", \"90m\" or \"3600s\", or \"off\"";
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a period; {expected}"))?;
    let secs_per = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{text:?} has no known unit; {expected}")),
    };
    const MAX_DAYS: u64 = 100 * 365;
    match n.checked_mul(secs_per) {
        Some(0) => Ok(None),
        Some(secs) if secs <= MAX_DAYS * 86_400 => Ok(Some(Duration::from_secs(secs))),
        _ => Err(format!("{text:?} is longer than {MAX_DAYS} days")),
    }
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
    /// Reads a storage URL: `sqlite://relative/path.db`, `sqlite:///absolute/path.db`,
    /// `sqlite::memory:` or `postgres://user:password@host:port/db`. The error never repeats
    /// a URL of another scheme, nor a PostgreSQL URL (they may hold a password).
    pub fn parse_url(url: &str) -> Result<Storage, String> {
        let url = url.trim();
        let lower = url.to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            // Checked here, so that a mistake shows at start with its line; the driver's
            // message names the part that is wrong, never the password.
            return match url.parse::<sync::postgres::PgConfig>() {
                Ok(_) => Ok(Storage::Postgres {
                    url: PostgresUrl(url.to_string()),
                }),
                Err(e) => Err(format!(
                    "not a valid PostgreSQL URL ({e}); expected \
                     postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE"
                )),
            };
        }
        let expected = "expected sqlite://PATH, sqlite:///ABSOLUTE/PATH, sqlite::memory: or \
                        postgres://USER@HOST/DATABASE";
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

#[cfg(test)]
mod tests {
    use super::*;

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
        for url in [
            "postgres://u:secret@h/db",
            "postgresql://h:5433/db?application_name=x",
        ] {
            let Ok(Storage::Postgres { url: got }) = Storage::parse_url(url) else {
                panic!("{url} is a PostgreSQL URL");
            };
            assert_eq!(got.expose(), url);
            assert!(!format!("{got} {got:?}").contains("secret"));
        }
        let bad = [
            (
                "postgres://u:secret@h:notaport/db",
                "not a valid PostgreSQL URL",
            ),
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
    fn retention_periods() {
        let day = 86_400;
        for (text, want) in [
            ("30d", Some(30 * day)),
            ("12h", Some(12 * 3600)),
            ("90m", Some(90 * 60)),
            ("3600s", Some(3600)),
            (" 7D ", Some(7 * day)),
            ("0", None),
            ("off", None),
            ("0d", None),
        ] {
            assert_eq!(
                parse_retention(text),
                Ok(want.map(Duration::from_secs)),
                "{text}"
            );
        }
        for (text, want) in [
            ("30", "no known unit"),
            ("d", "is not a period"),
            ("-1d", "is not a period"),
            ("30w", "no known unit"),
            ("99999999999d", "longer than"),
        ] {
            let err = parse_retention(text).expect_err(text);
            assert!(err.contains(want), "{text}: {err}");
        }
    }
}
