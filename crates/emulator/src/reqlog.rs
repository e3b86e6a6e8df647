//! The request log behind `GET /_emulator/requests`: what each `/api` call sent and got.
//! Bounded by entry count and body bytes, dropping the oldest first.

use std::collections::VecDeque;

use bytes::Bytes;
use serde::Serialize;

use crate::config::RequestLogConfig;

/// One logged request. Headers are not kept, so API keys never reach the log.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoggedRequest {
    /// Increases by one per request, from 1; use it with `?since=`.
    pub seq: u64,
    /// Epoch milliseconds when the request arrived.
    pub timestamp: u64,
    pub method: String,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_id: Option<u64>,
    pub status: u16,
    /// The request body as text (empty when there was none).
    pub body: String,
    /// The injected fault, when one answered instead of the API.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault: Option<&'static str>,
}

/// A filter for [`RequestLog::query`].
#[derive(Debug, Default, Clone)]
pub struct LogQuery {
    pub since: u64,
    pub path: Option<String>,
    pub limit: Option<usize>,
}

/// The bounded log. Bodies are kept as the received bytes (shared, not copied) and turned
/// into text only when queried.
#[derive(Debug)]
pub struct RequestLog {
    cfg: RequestLogConfig,
    entries: VecDeque<(LoggedRequest, Bytes)>,
    bytes: usize,
    next_seq: u64,
    dropped: u64,
}

impl RequestLog {
    pub fn new(cfg: RequestLogConfig) -> Self {
        Self {
            cfg,
            entries: VecDeque::new(),
            bytes: 0,
            next_seq: 1,
            dropped: 0,
        }
    }

    /// Appends an entry (its `body` field is ignored: `body` is stored instead), assigning its
    /// sequence number.
    pub fn push(&mut self, mut r: LoggedRequest, body: Bytes) -> u64 {
        r.seq = self.next_seq;
        self.next_seq += 1;
        self.bytes += body.len();
        self.entries.push_back((r, body));
        while self.entries.len() > self.cfg.capacity
            || (self.bytes > self.cfg.max_bytes && self.entries.len() > 1)
        {
            if let Some((_, old)) = self.entries.pop_front() {
                self.bytes -= old.len();
                self.dropped += 1;
            }
        }
        self.next_seq - 1
    }

    /// Entries after `since`, optionally for one path, oldest first.
    pub fn query(&self, q: &LogQuery) -> Vec<LoggedRequest> {
        self.entries
            .iter()
            .filter(|(r, _)| r.seq > q.since)
            .filter(|(r, _)| q.path.as_deref().is_none_or(|p| r.path == p))
            .take(q.limit.unwrap_or(usize::MAX))
            .map(|(r, body)| LoggedRequest {
                body: String::from_utf8_lossy(body).into_owned(),
                ..r.clone()
            })
            .collect()
    }

    /// How many entries were dropped to stay within bounds.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, body: &str) -> (LoggedRequest, Bytes) {
        let r = LoggedRequest {
            seq: 0,
            timestamp: 1,
            method: "POST".into(),
            path: path.into(),
            query: None,
            project_id: Some(1),
            status: 200,
            body: String::new(),
            fault: None,
        };
        (r, Bytes::from(body.to_string()))
    }

    #[test]
    fn bounded_by_count_and_bytes() {
        let mut log = RequestLog::new(RequestLogConfig {
            capacity: 3,
            max_bytes: 10,
        });
        for i in 0..5 {
            let (r, b) = entry("/a", &i.to_string());
            log.push(r, b);
        }
        let all = log.query(&LogQuery::default());
        assert_eq!(all.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![3, 4, 5]);
        let (r, b) = entry("/b", "0123456789");
        log.push(r, b);
        let all = log.query(&LogQuery::default());
        assert_eq!(all.len(), 1, "byte budget keeps only the newest");
        assert_eq!((all[0].seq, all[0].body.as_str()), (6, "0123456789"));
        assert_eq!(log.dropped(), 5);
    }

    #[test]
    fn query_filters() {
        let mut log = RequestLog::new(RequestLogConfig::default());
        for p in ["/a", "/b", "/a", "/a"] {
            let (r, b) = entry(p, "");
            log.push(r, b);
        }
        let q = |since, path: Option<&str>, limit| LogQuery {
            since,
            path: path.map(str::to_string),
            limit,
        };
        assert_eq!(log.query(&q(0, Some("/a"), None)).len(), 3);
        assert_eq!(log.query(&q(3, None, None)).len(), 1);
        assert_eq!(log.query(&q(0, None, Some(2))).len(), 2);
        log.clear();
        assert!(log.query(&q(0, None, None)).is_empty());
    }
}
