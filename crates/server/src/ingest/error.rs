//! Why a request is refused as a whole, and the answer that says so: the HTTP status, a stable
//! code and a message that names the field and never a credential.

use thiserror::Error;

/// Why a request is refused as a whole. Nothing of a refused request is stored.
///
/// [`IngestError::status`] gives the HTTP status and [`IngestError::body`] the JSON answer,
/// `{"success":false,"code":"<code>","message":"<message>"}`: Segment's `200` answer is
/// `{"success":true}`, and its SDKs read `code` and `message` from an error (analytics-python
/// raises `APIError(status, code, message)` from them). No message contains a write key, a
/// credential, a secret or a signature.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IngestError {
    /// 400: the body, raw or decoded, is over a size limit (Segment answers 400 too).
    #[error("request body is over the {limit}-byte limit")]
    BodyTooLarge {
        /// The limit that was passed, in bytes.
        limit: usize,
    },
    /// 400: a batch (or webhook array) with more events than allowed.
    #[error("{field}: {count} events is over the limit of {limit} per batch")]
    TooManyEvents {
        /// `batch` or `body`.
        field: &'static str,
        /// Events in the request.
        count: usize,
        /// [`IngestLimits::max_batch_events`].
        ///
        /// [`IngestLimits::max_batch_events`]: super::IngestLimits::max_batch_events
        limit: usize,
    },
    /// 400: the body is not JSON.
    #[error("malformed JSON at line {line} column {column}: {reason}")]
    MalformedJson {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error (0 when the body ended early on an empty line).
        column: usize,
        /// What the JSON reader expected.
        reason: String,
    },
    /// 400: JSON of the wrong shape; the message names the field and the reason.
    #[error("{0}")]
    InvalidBody(String),
    /// 400: the request body could not be read off the connection.
    #[error("the request body could not be read: {0}")]
    Unreadable(String),
    /// 400: `Content-Encoding: gzip` but the body does not inflate.
    #[error("the gzip-encoded body cannot be decoded: {0}")]
    BadGzip(String),
    /// 415: a `Content-Encoding` other than identity or gzip (named, cut to 64 characters).
    #[error("Content-Encoding {0:?} is not supported: send the body uncompressed or with gzip")]
    UnsupportedEncoding(String),
    /// 401: an `Authorization: Basic` header that cannot be read.
    #[error("Authorization header: {0}")]
    BadAuthorization(&'static str),
    /// 401: neither HTTP Basic credentials nor `writeKey` in the body.
    #[error(
        "no write key: send HTTP Basic auth with the write key as username, or writeKey in the body"
    )]
    MissingWriteKey,
    /// 401: the write key is not one of the configuration's (never echoed).
    #[error("the write key is not configured for any destination")]
    UnknownWriteKey,
    /// 404: the webhook path names no configured destination. The service's webhook endpoint
    /// answers [`IngestError::WebhookRefused`] instead, so as not to tell which destinations
    /// exist.
    #[error("no destination named {0:?} is configured")]
    UnknownDestination(String),
    /// 401: the destination has a shared secret and the request has no `X-Signature`.
    #[error("X-Signature header is required")]
    MissingSignature,
    /// 401: `X-Signature` is not the HMAC-SHA1 of the body with the shared secret.
    #[error("X-Signature does not match the body")]
    BadSignature,
    /// 401: `X-Signature` signs only the first event of an array of several (Segment's
    /// Webhooks (Actions) destination with batching on); the others could be forged.
    #[error(
        "X-Signature covers only the first event of this array (Segment's Webhooks (Actions) \
         destination signs only the first event of a batch), so the other events could be \
         forged: turn batching off in that destination, or send X-Segment-Signature over the \
         whole body, or add a write key of the destination as HTTP Basic auth (an \
         Authorization header); nothing was stored"
    )]
    PartialSignature,
    /// 401: a webhook that is not accepted, whether its destination does not exist or its
    /// credentials are missing or wrong: the answer is the same, byte for byte, so that it does
    /// not tell which destinations exist.
    #[error(
        "webhook not accepted: no destination of this name accepts these credentials; sign the \
         body with the destination's webhook_secret (X-Segment-Signature or X-Signature: the \
         hex HMAC-SHA1 of the body), or send one of its write keys as the HTTP Basic user name"
    )]
    WebhookRefused,
}

impl IngestError {
    /// A body over `limit` bytes, found while reading it (`size` is what was seen: the declared
    /// `Content-Length`, or `limit + 1` when reading stopped). The message names the limit only.
    pub fn too_large(size: usize, limit: usize) -> Self {
        debug_assert!(size > limit, "{size} is not over {limit}");
        IngestError::BodyTooLarge { limit }
    }

    /// A body that could not be read off the connection (`reason` from the HTTP layer).
    pub fn unreadable(reason: impl Into<String>) -> Self {
        IngestError::Unreadable(reason.into())
    }

    /// The HTTP status to answer with: 400, 401, 404 or 415 (never 5xx: Segment would retry).
    pub fn status(&self) -> u16 {
        match self {
            IngestError::BodyTooLarge { .. }
            | IngestError::TooManyEvents { .. }
            | IngestError::MalformedJson { .. }
            | IngestError::InvalidBody(_)
            | IngestError::Unreadable(_)
            | IngestError::BadGzip(_) => 400,
            IngestError::BadAuthorization(_)
            | IngestError::MissingWriteKey
            | IngestError::UnknownWriteKey
            | IngestError::MissingSignature
            | IngestError::BadSignature
            | IngestError::PartialSignature
            | IngestError::WebhookRefused => 401,
            IngestError::UnknownDestination(_) => 404,
            IngestError::UnsupportedEncoding(_) => 415,
        }
    }

    /// A stable machine-readable name of the error, the `code` of [`IngestError::body`].
    pub fn code(&self) -> &'static str {
        match self {
            IngestError::BodyTooLarge { .. } => "body_too_large",
            IngestError::TooManyEvents { .. } => "too_many_events",
            IngestError::MalformedJson { .. } => "malformed_json",
            IngestError::InvalidBody(_) => "invalid_body",
            IngestError::Unreadable(_) => "unreadable_body",
            IngestError::BadGzip(_) => "bad_gzip",
            IngestError::UnsupportedEncoding(_) => "unsupported_encoding",
            IngestError::BadAuthorization(_) => "bad_authorization",
            IngestError::MissingWriteKey => "missing_write_key",
            IngestError::UnknownWriteKey => "unknown_write_key",
            IngestError::UnknownDestination(_) => "unknown_destination",
            IngestError::MissingSignature => "missing_signature",
            IngestError::BadSignature => "bad_signature",
            IngestError::PartialSignature => "partial_signature",
            IngestError::WebhookRefused => "webhook_refused",
        }
    }

    /// The JSON answer: `{"success":false,"code":"...","message":"..."}`.
    pub fn body(&self) -> Vec<u8> {
        let body = serde_json::json!({
            "success": false,
            "code": self.code(),
            "message": self.to_string(),
        });
        body.to_string().into_bytes()
    }

    /// The `WWW-Authenticate` value a 401 carries (HTTP requires one): `Basic`, the scheme of
    /// a write key, which every ingestion endpoint takes (a webhook too). The signature errors
    /// answered as such only inside the service (a webhook's client gets
    /// [`IngestError::WebhookRefused`]) have none.
    pub fn www_authenticate(&self) -> Option<&'static str> {
        match self {
            IngestError::BadAuthorization(_)
            | IngestError::MissingWriteKey
            | IngestError::UnknownWriteKey
            | IngestError::PartialSignature
            | IngestError::WebhookRefused => Some("Basic realm=\"segment\""),
            _ => None,
        }
    }
}

/// `text` cut to `max` characters (with `…` when cut), for echoing client input.
pub(super) fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::ingest::success_body;

    #[test]
    fn answers() {
        let ok: Value = serde_json::from_slice(success_body()).expect("json");
        assert_eq!(ok, json!({"success": true}));
        let cases: Vec<(IngestError, u16, &str)> = vec![
            (
                IngestError::BodyTooLarge { limit: 5 },
                400,
                "body_too_large",
            ),
            (
                IngestError::TooManyEvents {
                    field: "batch",
                    count: 3,
                    limit: 2,
                },
                400,
                "too_many_events",
            ),
            (
                IngestError::MalformedJson {
                    line: 1,
                    column: 2,
                    reason: "expected value".to_owned(),
                },
                400,
                "malformed_json",
            ),
            (
                IngestError::InvalidBody("batch: x".to_owned()),
                400,
                "invalid_body",
            ),
            (
                IngestError::BadGzip("corrupt deflate stream".to_owned()),
                400,
                "bad_gzip",
            ),
            (
                IngestError::unreadable("connection reset"),
                400,
                "unreadable_body",
            ),
            (IngestError::too_large(10, 5), 400, "body_too_large"),
            (
                IngestError::UnsupportedEncoding("br".to_owned()),
                415,
                "unsupported_encoding",
            ),
            (
                IngestError::BadAuthorization("the Basic credentials are empty"),
                401,
                "bad_authorization",
            ),
            (IngestError::MissingWriteKey, 401, "missing_write_key"),
            (IngestError::UnknownWriteKey, 401, "unknown_write_key"),
            (
                IngestError::UnknownDestination("crm".to_owned()),
                404,
                "unknown_destination",
            ),
            (IngestError::MissingSignature, 401, "missing_signature"),
            (IngestError::BadSignature, 401, "bad_signature"),
        ];
        for (err, status, code) in cases {
            assert_eq!(err.status(), status, "{err}");
            let body: Value = serde_json::from_slice(&err.body()).expect("json");
            assert_eq!(
                body,
                json!({"success": false, "code": code, "message": err.to_string()})
            );
            assert_eq!(
                String::from_utf8(err.body()).expect("utf-8"),
                format!(
                    "{{\"success\":false,\"code\":\"{code}\",\"message\":{}}}",
                    json!(err.to_string())
                )
            );
        }
        assert_eq!(
            IngestError::UnknownDestination("crm".to_owned()).to_string(),
            "no destination named \"crm\" is configured"
        );
        assert_eq!(IngestError::BadSignature.www_authenticate(), None);
        assert_eq!(
            IngestError::WebhookRefused.www_authenticate(),
            Some("Basic realm=\"segment\"")
        );
    }
}
