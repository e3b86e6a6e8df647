//! `[storage]`: where the state lives, given as a URL (`sqlite://data/iterable-lists.db`).

use std::path::{Path, PathBuf};

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

    /// Where the state lives, for a log line: the SQLite file (`sqlite://PATH`) or
    /// `sqlite::memory:`. (A URL with a password would have it redacted.)
    pub fn describe(&self) -> String {
        match self {
            Storage::Sqlite { path } => format!("sqlite://{}", path.display()),
            Storage::SqliteMemory => "sqlite::memory:".to_string(),
        }
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
}
