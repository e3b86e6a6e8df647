//! The service's logs: `tracing` events and spans, written to stderr (stdout stays for command
//! output) as text or as one JSON object per line, filtered by `RUST_LOG` (default `info`).
//! What is logged at each level is in README.md ("Logs"); no event carries a secret.

use std::fmt;
use std::str::FromStr;

use tracing_subscriber::EnvFilter;

/// The variable holding the filter directives (`info`, `debug`, `sync=debug,info`, ...).
pub const FILTER_ENV: &str = "RUST_LOG";

/// The filter when [`FILTER_ENV`] is unset or empty.
pub const DEFAULT_FILTER: &str = "info";

/// How log lines are written: `--log-format` or `[log] format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `fields` (with `message`), `target`,
    /// and the spans it happened in (`span`, `spans`: a request's carries its `request_id`).
    Json,
}

impl LogFormat {
    pub fn name(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("expected \"text\" or \"json\", got {other:?}")),
        }
    }
}

/// `url` without the user and password it may carry (`https://user:pw@host/` →
/// `https://***@host/`), fit for a log line.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (Some(s), r),
        None => (None, url),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((_, host)) => format!("***@{host}"),
        None => authority.to_string(),
    };
    match scheme {
        Some(s) => format!("{s}://{authority}{tail}"),
        None => format!("{authority}{tail}"),
    }
}

/// Why the logs could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("{FILTER_ENV}: {0}")]
    Filter(String),
    #[error("the logs are already set up: {0}")]
    Installed(String),
}

/// The filter of `directives` (the value of [`FILTER_ENV`]; unset or blank is
/// [`DEFAULT_FILTER`]).
pub fn filter(directives: Option<&str>) -> Result<EnvFilter, LogError> {
    let text = directives
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .unwrap_or(DEFAULT_FILTER);
    EnvFilter::try_new(text).map_err(|e| LogError::Filter(format!("{text:?}: {e}")))
}

/// Sends the process's events to stderr in `format`, filtered by [`FILTER_ENV`], and keeps
/// the last WARN and ERROR events for the admin overview ([`crate::admin::warnings::global`]).
/// Once per process.
pub fn install(format: LogFormat) -> Result<(), LogError> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let directives = std::env::var("RUST_LOG").ok();
    let filter = filter(directives.as_deref())?;
    let text = (format == LogFormat::Text).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(false)
    });
    let json = (format == LogFormat::Json).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .json()
            .with_current_span(true)
            .with_span_list(true)
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(text)
        .with(json)
        .with(crate::admin::warnings::global().layer())
        .try_init()
        .map_err(|e| LogError::Installed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_filters() {
        assert_eq!("text".parse(), Ok(LogFormat::Text));
        assert_eq!("json".parse(), Ok(LogFormat::Json));
        assert_eq!(
            "JSON".parse::<LogFormat>(),
            Err("expected \"text\" or \"json\", got \"JSON\"".to_string())
        );
        assert_eq!(LogFormat::default(), LogFormat::Text);
        assert_eq!(filter(None).expect("default").to_string(), "info");
        assert_eq!(filter(Some("  ")).expect("blank").to_string(), "info");
        assert!(filter(Some("sync=debug,info")).is_ok());
        let e = filter(Some("sync=["))
            .expect_err("bad directive")
            .to_string();
        assert!(e.starts_with("RUST_LOG: \"sync=[\""), "{e}");
    }

    #[test]
    fn urls_lose_their_credentials() {
        let cases = [
            ("https://api.iterable.com", "https://api.iterable.com"),
            ("http://127.0.0.1:8787/x?y=1", "http://127.0.0.1:8787/x?y=1"),
            ("https://u:s3cret@h:5432/db", "https://***@h:5432/db"),
            (
                "postgres://u:p@ss@h/db?sslmode=require",
                "postgres://***@h/db?sslmode=require",
            ),
            ("u:s3cret@h", "***@h"),
            ("sqlite:///var/x.db", "sqlite:///var/x.db"),
        ];
        for (url, want) in cases {
            assert_eq!(redact_url(url), want, "{url}");
        }
    }
}
