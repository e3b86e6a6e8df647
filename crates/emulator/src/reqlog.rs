//! The request log behind `GET /_emulator/requests`: what each `/api` call sent and got.
//! Bounded by entry count and body bytes, dropping the oldest first.

use std::collections::VecDeque;

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

/// The bounded log.
#[derive(Debug)]
pub struct RequestLog {
    cfg: RequestLogConfig,
    entries: VecDeque<LoggedRequest>,
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

    /// Appends an entry, assigning its sequence number.
    pub fn push(&mut self, mut r: LoggedRequest) -> u64 {
        r.seq = self.next_seq;
        self.next_seq += 1;
        self.bytes += r.body.len();
        self.entries.push_back(r);
        while self.entries.len() > self.cfg.capacity
            || (self.bytes > self.cfg.max_bytes && self.entries.len() > 1)
        {
            if let Some(old) = self.entries.pop_front() {
                self.bytes -= old.body.len();
                self.dropped += 1;
            }
        }
        self.next_seq - 1
    }

    /// Entries after `since`, optionally for one path, oldest first.
    pub fn query(&self, q: &LogQuery) -> Vec<LoggedRequest> {
        self.entries
            .iter()
            .filter(|r| r.seq > q.since)
            .filter(|r| q.path.as_deref().is_none_or(|p| r.path == p))
            .take(q.limit.unwrap_or(usize::MAX))
            .cloned()
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

    fn entry(path: &str, body: &str) -> LoggedRequest {
        LoggedRequest {
            seq: 0,
            timestamp: 1,
            method: "POST".into(),
            path: path.into(),
            query: None,
            project_id: Some(1),
            status: 200,
            body: body.into(),
            fault: None,
        }
    }

    #[test]
    fn bounded_by_count_and_bytes() {
        let mut log = RequestLog::new(RequestLogConfig {
            capacity: 3,
            max_bytes: 10,
        });
        for i in 0..5 {
            log.push(entry("/a", &i.to_string()));
        }
        let all = log.query(&LogQuery::default());
        assert_eq!(all.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![3, 4, 5]);
        log.push(entry("/b", "0123456789"));
        let all = log.query(&LogQuery::default());
        assert_eq!(all.len(), 1, "byte budget keeps only the newest");
        assert_eq!(all[0].seq, 6);
        assert_eq!(log.dropped(), 5);
    }

    #[test]
    fn query_filters() {
        let mut log = RequestLog::new(RequestLogConfig::default());
        for p in ["/a", "/b", "/a", "/a"] {
            log.push(entry(p, ""));
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
