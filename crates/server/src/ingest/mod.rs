//! Segment-compatible ingestion, the HTTP-level half: body decoding, write keys, signatures, and
//! the shape of `/v1/batch`, `/v1/identify`, `/v1/track` and webhook bodies (pure, no I/O).
//!
//! In the order the HTTP front (`crate::http::ingestion`) uses them on a request:
//!
//! - `decode`: the body by its `Content-Encoding`, within its limit ([`decode_body`]);
//! - `basic_auth`: the write key of an `Authorization: Basic` header ([`basic_auth_user`]);
//! - `signature`: what a webhook's `X-Signature` signs ([`verify_signature`]);
//! - `parse`: the body of each endpoint, refused as a whole or read event by event
//!   ([`parse_tracking`], [`parse_webhook`], [`read_events`]), into `parsed`'s [`Parsed`];
//!   - `batch_text`: the fast path of `/v1/batch`, the body split into its events' texts with
//!     no JSON tree, for the common case;
//!   - `json`: the body as JSON, with `json_text`'s repair of lone surrogates and the written
//!     text of numeric ids;
//!   - `event_checks`: one event's checks, into an [`Item`]; `message_id`: its id, read or
//!     synthesized; `compact`: its compact JSON, measured and hashed without being built;
//! - `error`: why a request is refused, and the answer that says so ([`IngestError`]).

mod basic_auth;
mod batch_text;
mod compact;
mod decode;
mod error;
mod event_checks;
mod json;
pub mod json_text;
mod message_id;
mod parse;
mod parsed;
mod signature;

#[cfg(test)]
mod props;
#[cfg(test)]
mod test_support;

pub use basic_auth::basic_auth_user;
pub use decode::decode_body;
pub use error::IngestError;
pub use message_id::{MAX_MESSAGE_ID_CHARS, SYNTHETIC_MESSAGE_ID_PREFIX};
pub use parse::{parse_tracking, parse_webhook, read_events};
pub use parsed::{EventBody, Item, Parsed};
pub use signature::{Signed, verify_signature};

/// Segment's size limits, configurable under `[ingest]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestLimits {
    /// One event, in a batch or alone (Segment: 32 KB).
    pub max_event_bytes: usize,
    /// A `/v1/identify` or `/v1/track` call (Segment: 32 KB).
    pub max_call_bytes: usize,
    /// A `/v1/batch` request or a webhook body, after gzip decoding (Segment: 500 KB).
    pub max_batch_bytes: usize,
    /// Events in one batch (Segment: 2,500).
    pub max_batch_events: usize,
}

impl Default for IngestLimits {
    fn default() -> Self {
        Self {
            max_event_bytes: 32 * 1024,
            max_call_bytes: 32 * 1024,
            max_batch_bytes: 500 * 1024,
            max_batch_events: 2500,
        }
    }
}

/// The body of every `200` answer, as Segment's tracking API sends it.
pub fn success_body() -> &'static [u8] {
    br#"{"success":true}"#
}

/// Which ingestion endpoint a request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallKind {
    /// `POST /v1/batch`: `{"batch": [event, ...]}`, what every Segment SDK sends.
    Batch,
    /// `POST /v1/identify`: the body is one identify event.
    Identify,
    /// `POST /v1/track`: the body is one track event.
    Track,
    /// `POST /v1/webhook/{destination}`: Segment's Webhooks destination, one event or an array.
    Webhook,
}

impl CallKind {
    /// The endpoint's path (`{destination}` stands for the destination's name in the webhook's).
    pub fn path(self) -> &'static str {
        match self {
            CallKind::Batch => "/v1/batch",
            CallKind::Identify => "/v1/identify",
            CallKind::Track => "/v1/track",
            CallKind::Webhook => "/v1/webhook/{destination}",
        }
    }

    /// The largest body the endpoint takes, after gzip decoding: [`IngestLimits::max_call_bytes`]
    /// for `/v1/identify` and `/v1/track`, [`IngestLimits::max_batch_bytes`] for a batch or a
    /// webhook.
    pub fn max_body_bytes(self, limits: &IngestLimits) -> usize {
        match self {
            CallKind::Identify | CallKind::Track => limits.max_call_bytes,
            CallKind::Batch | CallKind::Webhook => limits.max_batch_bytes,
        }
    }

    /// The `type` the endpoint's events have, for the single-event endpoints.
    fn event_type(self) -> Option<&'static str> {
        match self {
            CallKind::Identify => Some("identify"),
            CallKind::Track => Some("track"),
            CallKind::Batch | CallKind::Webhook => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let paths: Vec<&str> = [
            CallKind::Batch,
            CallKind::Identify,
            CallKind::Track,
            CallKind::Webhook,
        ]
        .into_iter()
        .map(CallKind::path)
        .collect();
        assert_eq!(
            paths,
            [
                "/v1/batch",
                "/v1/identify",
                "/v1/track",
                "/v1/webhook/{destination}"
            ]
        );
    }
}
