//! The limits of the listeners: `[http]` (timeouts and the connection cap of every listener)
//! and `[ingest]` (Segment's size limits of incoming requests).

use std::time::Duration;

use listener::Limits;

use super::error::{Place, R};
use super::raw::{RawHttp, RawIngest};
use crate::ingest::IngestLimits;

/// The longest timeout of `[http]`: a day.
const MAX_HTTP_TIMEOUT_MS: i64 = 86_400_000;

impl Place {
    /// `[http]` (this place is the table itself); keys left out keep [`Limits::default`].
    pub(super) fn http(&self, raw: &RawHttp) -> R<Limits> {
        let d = Limits::default();
        let ms = |key: &str, value, default: Duration| {
            let default = i64::try_from(default.as_millis()).unwrap_or(MAX_HTTP_TIMEOUT_MS);
            self.int_in(key, value, 1, MAX_HTTP_TIMEOUT_MS, default)
                .map(|n| Duration::from_millis(n as u64))
        };
        let max_connections = match &raw.max_connections {
            None => None,
            Some(v) => Some(self.int_in("max_connections", Some(v), 1, 1_000_000, 1)?),
        };
        let default_rate = i64::try_from(d.body_min_rate).unwrap_or(i64::MAX);
        Ok(Limits {
            header_timeout: ms(
                "header_timeout_ms",
                raw.header_timeout_ms.as_ref(),
                d.header_timeout,
            )?,
            keep_alive_timeout: ms(
                "keep_alive_timeout_ms",
                raw.keep_alive_timeout_ms.as_ref(),
                d.keep_alive_timeout,
            )?,
            body_min_rate: self.int_in(
                "body_min_rate",
                raw.body_min_rate.as_ref(),
                1,
                1 << 40,
                default_rate,
            )? as u64,
            body_grace: ms("body_grace_ms", raw.body_grace_ms.as_ref(), d.body_grace)?,
            write_timeout: ms(
                "write_timeout_ms",
                raw.write_timeout_ms.as_ref(),
                d.write_timeout,
            )?,
            max_connections,
        })
    }

    /// `[ingest]` (this place is the table itself): each limit at least 1.
    pub(super) fn ingest(&self, raw: &RawIngest) -> R<IngestLimits> {
        let d = IngestLimits::default();
        let at_least_one = |key: &str, value, default: usize| {
            self.int_in(
                key,
                value,
                1,
                i64::MAX,
                i64::try_from(default).unwrap_or(i64::MAX),
            )
        };
        Ok(IngestLimits {
            max_event_bytes: at_least_one(
                "max_event_bytes",
                raw.max_event_bytes.as_ref(),
                d.max_event_bytes,
            )?,
            max_call_bytes: at_least_one(
                "max_call_bytes",
                raw.max_call_bytes.as_ref(),
                d.max_call_bytes,
            )?,
            max_batch_bytes: at_least_one(
                "max_batch_bytes",
                raw.max_batch_bytes.as_ref(),
                d.max_batch_bytes,
            )?,
            max_batch_events: at_least_one(
                "max_batch_events",
                raw.max_batch_events.as_ref(),
                d.max_batch_events,
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_support::*;

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
}
