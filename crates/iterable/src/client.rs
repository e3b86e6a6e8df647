//! The typed Iterable client: base URL by region, `Api-Key` header, timeouts, and every
//! attempt through the rate limiter, with retries on what is retryable and Iterable's words kept.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Once;
use std::time::Duration;

use bytes::Bytes;
use reqwest::{Method, StatusCode};
use retry::{Backoff, Envelope, ErrorClass, Failure, classify_status, parse_retry_after};
use serde_json::Value;

use crate::limiter::{Endpoint, Limit, RateLimiter};
use crate::lists::{GetListsResponse, ListDetails};
use crate::types::BulkUpdateResponse;

pub use iterable_api::ApiKey;

/// `https://api.iterable.com`.
pub const US_BASE_URL: &str = "https://api.iterable.com";
/// `https://api.eu.iterable.com`.
pub const EU_BASE_URL: &str = "https://api.eu.iterable.com";

/// How to reach one Iterable project.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `US_BASE_URL`, `EU_BASE_URL`, or an override such as the emulator's address.
    pub base_url: String,
    pub api_key: ApiKey,
    /// Whole-request timeout of one attempt.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub backoff: Backoff,
    /// Limits replacing the defaults of [`Endpoint::default_limit`].
    pub limits: HashMap<Endpoint, Limit>,
}

impl ClientConfig {
    pub fn new(base_url: impl Into<String>, api_key: ApiKey) -> Self {
        Self {
            base_url: base_url.into(),
            api_key,
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            backoff: Backoff::default(),
            limits: HashMap::new(),
        }
    }
}

/// How a failure happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// Iterable answered with a non-2xx status.
    Status,
    Timeout,
    Connect,
    /// The connection broke, or another transport problem.
    Transport,
    /// A 2xx answer whose body could not be read as expected.
    Decode,
    /// The client could not be built (bad base URL, TLS setup).
    Setup,
    /// Not sent: the caller withdrew the request after its wait for the rate limiter
    /// ([`AttemptObserver::may_send`]), e.g. because another instance took its work over.
    Withdrawn,
}

/// A failed call, with Iterable's status, `code` and `msg` when it sent them. Never holds
/// the API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IterableError {
    pub endpoint: Endpoint,
    pub kind: ErrorKind,
    pub status: Option<u16>,
    pub code: Option<String>,
    pub msg: Option<String>,
    pub class: ErrorClass,
    pub retry_after: Option<Duration>,
    /// Attempts made, the first included.
    pub attempts: u32,
    /// Transport or decoding detail.
    pub detail: Option<String>,
}

impl fmt::Display for IterableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed", self.endpoint.label())?;
        match self.status {
            Some(s) => write!(f, ": HTTP {s}")?,
            None => write!(f, ": {:?}", self.kind)?,
        }
        if let Some(c) = &self.code {
            write!(f, " {c}")?;
        }
        if let Some(m) = self.msg.as_deref().filter(|m| !m.is_empty()) {
            write!(f, ": {m}")?;
        }
        if let Some(d) = &self.detail {
            write!(f, " ({d})")?;
        }
        if self.attempts > 1 {
            write!(f, " after {} attempts", self.attempts)?;
        }
        Ok(())
    }
}

impl std::error::Error for IterableError {}

impl IterableError {
    fn transport(endpoint: Endpoint, kind: ErrorKind, detail: String) -> Self {
        let class = match kind {
            ErrorKind::Timeout
            | ErrorKind::Connect
            | ErrorKind::Transport
            | ErrorKind::Withdrawn => ErrorClass::Retryable,
            _ => ErrorClass::Permanent,
        };
        Self {
            endpoint,
            kind,
            status: None,
            code: None,
            msg: None,
            class,
            retry_after: None,
            attempts: 1,
            detail: Some(detail),
        }
    }

    /// Iterable's words for a refused request: `code: msg (HTTP status)`, or the whole error
    /// when it sent none.
    pub fn words(&self) -> String {
        let status = self.status.map(|s| format!("HTTP {s}")).unwrap_or_default();
        match (
            self.code.as_deref(),
            self.msg.as_deref().filter(|m| !m.is_empty()),
        ) {
            (Some(c), Some(m)) => format!("{c}: {m} ({status})"),
            (Some(c), None) => format!("{c} ({status})"),
            (None, Some(m)) => format!("{m} ({status})"),
            (None, None) => self.to_string(),
        }
    }

    /// The failure as the retry policy sees it.
    pub fn failure(&self) -> Failure {
        Failure {
            class: self.class,
            status: self.status,
            answered: self.kind == ErrorKind::Status,
            retry_after: self.retry_after,
            words: self.words(),
            text: self.to_string(),
        }
    }

    /// Whether the request may have taken effect although no answer says so (a lost answer).
    pub fn is_ambiguous(&self) -> bool {
        matches!(self.kind, ErrorKind::Timeout | ErrorKind::Transport)
            || self.status.is_some_and(|s| s >= 500)
    }
}

/// The answer's `Retry-After`, when it has a usable one.
fn retry_after_of(resp: &reqwest::Response) -> Option<Duration> {
    resp.headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after)
}

/// Removes the key from a transport error's text, in case a URL or proxy echoed it.
fn scrub(text: String, key: &ApiKey) -> String {
    if key.expose().is_empty() {
        text
    } else {
        text.replace(key.expose(), "<redacted>")
    }
}

/// Told about each failed attempt of a call whose failure is retryable (5xx, 429, timeouts,
/// connection errors), before the client waits to try again: what the rows of a request
/// show while it is retried. The client awaits the returned future.
pub trait AttemptObserver: Send + Sync {
    /// `error.attempts` is the number of the attempt that failed; `retry_in` is the wait
    /// before the next one, `None` when the client gives up (or does not retry this call).
    fn failed<'a>(
        &'a self,
        error: &'a IterableError,
        retry_in: Option<Duration>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

    /// Asked before each attempt is sent, once the rate limiter let it go: `false` withdraws
    /// the call, which then fails with [`ErrorKind::Withdrawn`] without being sent (or tried
    /// again). Yes by default.
    fn may_send(&self) -> bool {
        true
    }
}

/// Whether to retry a call on retryable failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    Yes,
    /// One attempt only (list creation: a retry after a lost answer would duplicate it).
    No,
}

static TLS: Once = Once::new();

/// One Iterable project's client. Cheap to share behind an `Arc`. It limits the rate of its
/// calls, not how many are in flight: its callers do (the reconciler's `concurrency`).
#[derive(Debug)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    key: ApiKey,
    limiter: RateLimiter,
    backoff: Backoff,
    /// One attempt's timeout; for a streamed body (`users`), the longest wait for a chunk.
    timeout: Duration,
}

mod users;
pub use users::UserLines;

impl Client {
    pub fn new(cfg: ClientConfig) -> Result<Self, IterableError> {
        TLS.call_once(|| {
            let _ = rustls::crypto::ring::default_provider().install_default();
        });
        let base = cfg.base_url.trim_end_matches('/').to_string();
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(IterableError::transport(
                Endpoint::GetLists,
                ErrorKind::Setup,
                format!("base URL must start with https:// or http://, got {base:?}"),
            ));
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("iterable-lists/", env!("CARGO_PKG_VERSION")))
            .timeout(cfg.timeout)
            .connect_timeout(cfg.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(50))
            .build()
            .map_err(|e| {
                IterableError::transport(Endpoint::GetLists, ErrorKind::Setup, e.to_string())
            })?;
        Ok(Self {
            http,
            base,
            key: cfg.api_key,
            limiter: RateLimiter::new(cfg.limits),
            backoff: cfg.backoff,
            timeout: cfg.timeout,
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    pub fn limiter(&self) -> &RateLimiter {
        &self.limiter
    }

    async fn attempt(
        &self,
        ep: Endpoint,
        method: &Method,
        path: &str,
        body: Option<&Bytes>,
        observer: Option<&dyn AttemptObserver>,
    ) -> Result<Bytes, IterableError> {
        self.limiter.acquire(ep).await;
        if observer.is_some_and(|o| !o.may_send()) {
            return Err(IterableError::transport(
                ep,
                ErrorKind::Withdrawn,
                "withdrawn before it was sent".into(),
            ));
        }
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .header("Api-Key", self.key.expose());
        if let Some(b) = body {
            req = req
                .header("Content-Type", "application/json")
                .body(b.clone());
        }
        let resp = req.send().await.map_err(|e| {
            let kind = if e.is_timeout() {
                ErrorKind::Timeout
            } else if e.is_connect() {
                ErrorKind::Connect
            } else {
                ErrorKind::Transport
            };
            IterableError::transport(ep, kind, scrub(e.to_string(), &self.key))
        })?;
        let status = resp.status();
        let retry_after = retry_after_of(&resp);
        let bytes = resp.bytes().await.map_err(|e| {
            let kind = if e.is_timeout() {
                ErrorKind::Timeout
            } else {
                ErrorKind::Transport
            };
            IterableError::transport(ep, kind, scrub(e.to_string(), &self.key))
        })?;
        if status.is_success() {
            return Ok(bytes);
        }
        Err(self.status_error(ep, status, retry_after, &bytes))
    }

    /// The error of an answer other than 2xx (its body, or the start of it, in `body`); a 429
    /// slows the endpoint's limiter first.
    fn status_error(
        &self,
        ep: Endpoint,
        status: StatusCode,
        retry_after: Option<Duration>,
        body: &[u8],
    ) -> IterableError {
        if status == StatusCode::TOO_MANY_REQUESTS {
            self.limiter.throttled(ep, retry_after);
        }
        let env = Envelope::parse(body);
        IterableError {
            endpoint: ep,
            kind: ErrorKind::Status,
            status: Some(status.as_u16()),
            class: classify_status(status.as_u16(), &env),
            code: env.code,
            msg: env.msg,
            retry_after,
            attempts: 1,
            detail: None,
        }
    }

    /// Calls Iterable, retrying retryable failures with backoff (every attempt through the
    /// limiter), and returns the body of the 2xx answer.
    pub async fn call(
        &self,
        ep: Endpoint,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        retry: Retry,
    ) -> Result<Bytes, IterableError> {
        self.call_observed(ep, method, path, body, retry, None)
            .await
    }

    /// [`Client::call`], telling `observer` about each retryable failure.
    pub async fn call_observed(
        &self,
        ep: Endpoint,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        retry: Retry,
        observer: Option<&dyn AttemptObserver>,
    ) -> Result<Bytes, IterableError> {
        let mut attempt = 1;
        loop {
            match self
                .attempt(ep, &method, path, body.as_ref(), observer)
                .await
            {
                Ok(b) => return Ok(b),
                Err(e) if e.kind == ErrorKind::Withdrawn => return Err(e),
                Err(mut e) => {
                    e.attempts = attempt;
                    let retryable = e.class == ErrorClass::Retryable;
                    let wait = retry::again(
                        &self.backoff,
                        e.class,
                        e.retry_after,
                        attempt,
                        retry == Retry::Yes,
                        retry::random_fraction(),
                    );
                    if let Some(o) = observer.filter(|_| retryable) {
                        o.failed(&e, wait).await;
                    }
                    let Some(wait) = wait else {
                        return Err(e);
                    };
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
            }
        }
    }

    fn decode<T: serde::de::DeserializeOwned>(
        ep: Endpoint,
        body: &[u8],
    ) -> Result<T, IterableError> {
        serde_json::from_slice(body)
            .map_err(|e| IterableError::transport(ep, ErrorKind::Decode, e.to_string()))
    }

    /// `GET /api/lists`.
    pub async fn get_lists(&self) -> Result<Vec<ListDetails>, IterableError> {
        self.get_lists_observed(None).await
    }

    /// [`Client::get_lists`], telling `observer` about each retryable failure.
    pub async fn get_lists_observed(
        &self,
        observer: Option<&dyn AttemptObserver>,
    ) -> Result<Vec<ListDetails>, IterableError> {
        let b = self
            .call_observed(
                Endpoint::GetLists,
                Method::GET,
                "/api/lists",
                None,
                Retry::Yes,
                observer,
            )
            .await?;
        Ok(Self::decode::<GetListsResponse>(Endpoint::GetLists, &b)?.lists)
    }

    /// `POST /api/lists`, one attempt: after a lost answer the list may exist, so callers
    /// look before creating again (see `resolve`).
    pub async fn create_list(&self, name: &str) -> Result<i64, IterableError> {
        self.create_list_observed(name, None).await
    }

    /// [`Client::create_list`], telling `observer` about a retryable failure.
    pub async fn create_list_observed(
        &self,
        name: &str,
        observer: Option<&dyn AttemptObserver>,
    ) -> Result<i64, IterableError> {
        let body = Bytes::from(serde_json::json!({ "name": name }).to_string());
        let b = self
            .call_observed(
                Endpoint::CreateList,
                Method::POST,
                "/api/lists",
                Some(body),
                Retry::No,
                observer,
            )
            .await?;
        let v: Value = Self::decode(Endpoint::CreateList, &b)?;
        v.get("listId").and_then(Value::as_i64).ok_or_else(|| {
            IterableError::transport(
                Endpoint::CreateList,
                ErrorKind::Decode,
                format!("no listId in the answer {v}"),
            )
        })
    }

    /// `DELETE /api/lists/{listId}`.
    pub async fn delete_list(&self, id: i64) -> Result<(), IterableError> {
        self.call(
            Endpoint::DeleteList,
            Method::DELETE,
            &format!("/api/lists/{id}"),
            None,
            Retry::Yes,
        )
        .await
        .map(|_| ())
    }

    /// `POST /api/lists/subscribe` with a prepared body.
    pub async fn subscribe(&self, body: Bytes) -> Result<BulkUpdateResponse, IterableError> {
        self.bulk_update(Endpoint::Subscribe, body, None).await
    }

    /// `POST /api/lists/unsubscribe` with a prepared body.
    pub async fn unsubscribe(&self, body: Bytes) -> Result<BulkUpdateResponse, IterableError> {
        self.bulk_update(Endpoint::Unsubscribe, body, None).await
    }

    /// `POST /api/lists/subscribe` ([`Endpoint::Subscribe`]) or `/api/lists/unsubscribe`
    /// (any other endpoint) with a prepared body, telling `observer` about each retryable
    /// failure.
    pub async fn bulk_update(
        &self,
        ep: Endpoint,
        body: Bytes,
        observer: Option<&dyn AttemptObserver>,
    ) -> Result<BulkUpdateResponse, IterableError> {
        let (ep, path) = match ep {
            Endpoint::Subscribe => (Endpoint::Subscribe, "/api/lists/subscribe"),
            _ => (Endpoint::Unsubscribe, "/api/lists/unsubscribe"),
        };
        let b = self
            .call_observed(ep, Method::POST, path, Some(body), Retry::Yes, observer)
            .await?;
        Self::decode(ep, &b)
    }

    /// `GET /api/lists/{listId}/size`.
    pub async fn list_size(&self, id: i64) -> Result<u64, IterableError> {
        let b = self
            .call(
                Endpoint::ListSize,
                Method::GET,
                &format!("/api/lists/{id}/size"),
                None,
                Retry::Yes,
            )
            .await?;
        String::from_utf8_lossy(&b)
            .trim()
            .trim_matches('"')
            .parse()
            .map_err(|_| {
                IterableError::transport(
                    Endpoint::ListSize,
                    ErrorKind::Decode,
                    "not a number".into(),
                )
            })
    }

    /// `GET /api/lists/getUsers`: one identifier per line.
    pub async fn get_users(
        &self,
        id: i64,
        prefer_user_id: bool,
    ) -> Result<Vec<String>, IterableError> {
        let path = format!("/api/lists/getUsers?listId={id}&preferUserId={prefer_user_id}");
        let b = self
            .call(Endpoint::GetUsers, Method::GET, &path, None, Retry::Yes)
            .await?;
        Ok(String::from_utf8_lossy(&b)
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_like_iterable_and_never_show_keys() {
        let e = IterableError {
            endpoint: Endpoint::Subscribe,
            kind: ErrorKind::Status,
            status: Some(429),
            code: Some("RateLimitExceeded".into()),
            msg: Some("Exceeded rate limit for endpoint: /api/lists/subscribe, project: 1 ".into()),
            class: ErrorClass::Retryable,
            retry_after: None,
            attempts: 3,
            detail: None,
        };
        assert_eq!(
            e.to_string(),
            "POST /api/lists/subscribe failed: HTTP 429 RateLimitExceeded: Exceeded rate limit for endpoint: /api/lists/subscribe, project: 1  after 3 attempts"
        );
        let key = ApiKey::new("0123456789abcdef0123456789abcdef");
        assert_eq!(
            scrub(
                "GET https://x/?api_key=0123456789abcdef0123456789abcdef".into(),
                &key
            ),
            "GET https://x/?api_key=<redacted>"
        );
        let cfg = ClientConfig::new(US_BASE_URL, key);
        assert!(!format!("{cfg:?}").contains("0123456789abcdef"));
        let c = Client::new(cfg).unwrap();
        assert!(!format!("{c:?}").contains("0123456789abcdef"));
        assert!(Client::new(ClientConfig::new("ftp://x", ApiKey::new("k"))).is_err());
    }
}
