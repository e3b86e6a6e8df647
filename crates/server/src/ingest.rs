//! Segment-compatible ingestion, the HTTP-level half: body decoding, write keys, signatures, and
//! the shape of `/v1/batch`, `/v1/identify`, `/v1/track` and webhook bodies (pure, no I/O).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read, Write};

use base64::Engine as _;
use bytes::Bytes;
use ring::{digest, hmac};
use segment::event::JsonKind;
use segment::mapping::number_to_string;
use serde_json::{Map, Number, Value};
use thiserror::Error;

use crate::json_text::{Shape, WrittenIds, replace_lone_surrogates};

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

/// The longest `messageId` kept, in characters (Segment's ids are under 100).
pub const MAX_MESSAGE_ID_CHARS: usize = 100;

/// How a `messageId` made by [`parse_tracking`] or [`parse_webhook`] begins, for an event that
/// came without one.
pub const SYNTHETIC_MESSAGE_ID_PREFIX: &str = "ingest-";

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

    /// The `type` the endpoint's events have, for the single-event endpoints.
    fn event_type(self) -> Option<&'static str> {
        match self {
            CallKind::Identify => Some("identify"),
            CallKind::Track => Some("track"),
            CallKind::Batch | CallKind::Webhook => None,
        }
    }
}

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

    /// The `WWW-Authenticate` value a 401 about the write key carries (HTTP requires one).
    pub fn www_authenticate(&self) -> Option<&'static str> {
        match self {
            IngestError::BadAuthorization(_)
            | IngestError::MissingWriteKey
            | IngestError::UnknownWriteKey => Some("Basic realm=\"segment\""),
            _ => None,
        }
    }
}

/// Decodes a request body by its `Content-Encoding`: none or `identity` as is, `gzip` (or
/// `x-gzip`) inflated (several gzip members are read one after the other).
///
/// The result is at most `max_decoded` bytes, else [`IngestError::BodyTooLarge`]; inflating stops
/// as soon as one byte more came out, so a small zip bomb costs no more than `max_decoded + 1`
/// bytes of memory. Any other encoding is [`IngestError::UnsupportedEncoding`] (415); a corrupt
/// gzip stream (bad header, bad deflate data, bad checksum, garbage after it) is
/// [`IngestError::BadGzip`] (400).
pub fn decode_body(
    content_encoding: Option<&str>,
    body: Bytes,
    max_decoded: usize,
) -> Result<Bytes, IngestError> {
    let gzip = match content_encoding {
        None => false,
        Some(value) => {
            let mut codings = value
                .split(',')
                .map(str::trim)
                .filter(|coding| !coding.is_empty() && !coding.eq_ignore_ascii_case("identity"));
            match (codings.next(), codings.next()) {
                (None, _) => false,
                (Some(coding), None)
                    if coding.eq_ignore_ascii_case("gzip")
                        || coding.eq_ignore_ascii_case("x-gzip") =>
                {
                    true
                }
                _ => return Err(IngestError::UnsupportedEncoding(cut(value.trim(), 64))),
            }
        }
    };
    if !gzip {
        return if body.len() > max_decoded {
            Err(IngestError::BodyTooLarge { limit: max_decoded })
        } else {
            Ok(body)
        };
    }
    let cap = u64::try_from(max_decoded)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    let guess = body
        .len()
        .saturating_mul(4)
        .min(max_decoded.saturating_add(1))
        .min(1 << 20);
    let mut out = Vec::with_capacity(guess);
    flate2::read::MultiGzDecoder::new(&body[..])
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|err| IngestError::BadGzip(err.to_string()))?;
    if out.len() > max_decoded {
        return Err(IngestError::BodyTooLarge { limit: max_decoded });
    }
    Ok(Bytes::from(out))
}

/// The write key of an `Authorization` header: the user name of `Basic base64(user:password)`
/// (the whole decoded text when an old client leaves out the colon).
///
/// `Ok(None)` when there is no header, when its scheme is not `Basic` (`Bearer` is sent with
/// `writeKey` in the body), or when the user name is empty: the body's `writeKey` is then the one
/// to use. The scheme is case-insensitive; the base64 is the standard alphabet, padding optional.
/// Credentials that are empty, not base64 or not UTF-8 are [`IngestError::BadAuthorization`]
/// (401), whose message never repeats them.
pub fn basic_auth_user(authorization: Option<&str>) -> Result<Option<String>, IngestError> {
    let Some(value) = authorization else {
        return Ok(None);
    };
    let value = value.trim();
    let (scheme, credentials) = match value.split_once([' ', '\t']) {
        Some((scheme, rest)) => (scheme, rest.trim()),
        None => (value, ""),
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    if credentials.is_empty() {
        return Err(IngestError::BadAuthorization(
            "the Basic credentials are empty",
        ));
    }
    let decoded = base64::engine::general_purpose::STANDARD_PAD_INDIFFERENT
        .decode(credentials)
        .map_err(|_| IngestError::BadAuthorization("the Basic credentials are not valid base64"))?;
    let text = String::from_utf8(decoded)
        .map_err(|_| IngestError::BadAuthorization("the Basic credentials are not UTF-8"))?;
    let user = match text.split_once(':') {
        Some((user, _password)) => user.to_owned(),
        None => text,
    };
    Ok((!user.is_empty()).then_some(user))
}

/// What a webhook's `X-Signature` was found to sign (see [`verify_signature`]).
#[must_use = "a signature over the first event only leaves the rest of a batch unauthenticated"]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signed {
    /// The whole body.
    Body,
    /// Only the first element of a JSON array body: how Segment's Webhooks (Actions) destination
    /// signs a batch (`X-Signature` is the HMAC of `JSON.stringify` of the first event's data, the
    /// same bytes as that element in the body it sends). The other events are not authenticated;
    /// the caller decides whether to accept that.
    FirstEvent,
    /// The only element of a JSON array body (`[event]`, whitespace aside): a batch of one, signed
    /// as Webhooks (Actions) signs batches. Every event of the body is authenticated.
    SoleEvent,
}

/// Checks a webhook's signature: `x_signature` must be the hex HMAC-SHA1 (either case) of `body`
/// keyed with `secret` (the shared secret's UTF-8 bytes), compared in constant time.
///
/// `body` is the body **after** [`decode_body`]: Segment signs the JSON text it sends, and it
/// sends it uncompressed. Segment's Webhooks (Actions) destination signs only the first event of
/// a batched (array) body; that signature is recognised too and reported as [`Signed::FirstEvent`]
/// (or [`Signed::SoleEvent`] when the array holds nothing else).
/// Its newer `X-Segment-Signature` header signs the whole body with the same HMAC, so its value
/// can be passed here as well. A missing or empty header is [`IngestError::MissingSignature`]; a
/// value that is not hex or does not match is [`IngestError::BadSignature`] (both 401). An empty
/// secret is a valid HMAC key: treat an empty configured secret as "no secret" before calling.
pub fn verify_signature(
    secret: &[u8],
    body: &[u8],
    x_signature: Option<&str>,
) -> Result<Signed, IngestError> {
    let header = x_signature
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .ok_or(IngestError::MissingSignature)?;
    let tag = decode_hex(header).ok_or(IngestError::BadSignature)?;
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    if hmac::verify(&key, body, &tag).is_ok() {
        return Ok(Signed::Body);
    }
    if let Some(span) = first_array_element_span(body) {
        if hmac::verify(&key, &body[span.clone()], &tag).is_ok() {
            return Ok(if closes_array(body, span.end) {
                Signed::SoleEvent
            } else {
                Signed::FirstEvent
            });
        }
    }
    Err(IngestError::BadSignature)
}

/// What was read from one ingestion request.
#[derive(Clone, PartialEq)]
pub struct Parsed {
    /// `writeKey` from the body, if it is a non-empty string (always `None` for webhooks). It is
    /// taken out of every stored event; `Debug` prints it redacted.
    pub write_key: Option<String>,
    /// One item per event of the request, in order: `items[i]` is `batch[i]` (or the webhook
    /// array's `[i]`); a single event is `items[0]`.
    pub items: Vec<Item>,
    /// `sentAt` from the body, if it is a string (the batch's send time; a single call keeps it in
    /// its event as well). Always `None` for webhooks, whose events carry their own.
    pub sent_at: Option<String>,
}

impl fmt::Debug for Parsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Parsed")
            .field("write_key", &self.write_key.as_ref().map(|_| "<redacted>"))
            .field("items", &self.items)
            .field("sent_at", &self.sent_at)
            .finish()
    }
}

/// One event of a request: accepted for the destination's own checks, or refused here.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// An event of the right shape, to store. `event` is the JSON object as sent, with the
    /// batch's `context` and `integrations` merged in, `writeKey` removed, `type` filled in on
    /// `/v1/identify` and `/v1/track`, a numeric `messageId` turned into a string of the text it
    /// was written with (`1e3` stays `"1e3"`), and `messageId` set to `message_id`
    /// (synthesized when the event had none).
    Event {
        /// The event's `messageId`: as sent, or `ingest-` and 32 hex digits of the SHA-256 of
        /// the event (a `-N` suffix for the N-th identical copy in the same request).
        message_id: String,
        /// The event object.
        event: Value,
    },
    /// An event refused for its shape; the rest of the request is not affected.
    Invalid {
        /// Its position in the batch (0 for a single event).
        index: usize,
        /// Its `messageId`, when it has a valid one.
        message_id: Option<String>,
        /// Why, naming the field, e.g. `batch[3].type: expected a string, got a number`.
        reason: String,
    },
}

impl Item {
    /// The item's `messageId`, if known.
    pub fn message_id(&self) -> Option<&str> {
        match self {
            Item::Event { message_id, .. } => Some(message_id),
            Item::Invalid { message_id, .. } => message_id.as_deref(),
        }
    }
}

/// Reads the body of a tracking call (already decoded by [`decode_body`]).
///
/// A lone UTF-16 surrogate escape in a string (`"\ud83d"`: what the Node and Python SDKs write
/// for a string cut inside an emoji) is read as U+FFFD, as JavaScript's `TextEncoder` encodes
/// it, instead of refusing the body.
///
/// The request is refused as a whole ([`IngestError`], 400) when the body is over
/// [`IngestLimits::max_batch_bytes`] (batch) or [`IngestLimits::max_call_bytes`] (identify,
/// track), is not JSON, is not an object, has a `writeKey` that is not a string, or, for a
/// batch, has no `batch` array, more than [`IngestLimits::max_batch_events`] events, or a
/// batch-level `context` or `integrations` that is not an object.
///
/// Each event is then read on its own (see [`Item`]); a bad one becomes [`Item::Invalid`]:
/// not an object; over [`IngestLimits::max_event_bytes`] as compact JSON (measured as sent,
/// before the batch's `context` is merged in; Segment too drops such an event alone); `type`
/// absent, `null`, empty or not a string (on `/v1/identify` and `/v1/track` an absent `type` is
/// filled in, and any other type than the endpoint's is refused); `messageId` not a string or a
/// number, empty, or over [`MAX_MESSAGE_ID_CHARS`]. Which types and identities the destination
/// can use is decided later, by the destination's own checks.
///
/// A batch-level `context` or `integrations` object is merged into each event's own: each of
/// its top-level keys is added where the event lacks it (an event's `null` counts as absent; an
/// event's non-object value is left for the destination's checks to report).
///
/// [`CallKind::Webhook`] reads the body with [`parse_webhook`].
pub fn parse_tracking(
    kind: CallKind,
    body: &[u8],
    limits: &IngestLimits,
) -> Result<Parsed, IngestError> {
    match kind {
        CallKind::Batch => parse_batch(body, limits),
        CallKind::Identify | CallKind::Track => parse_call(kind, body, limits),
        CallKind::Webhook => parse_webhook(body, limits),
    }
}

/// Reads the body of a webhook from Segment's Webhooks destination (already decoded by
/// [`decode_body`], and its signature checked by [`verify_signature`]): one event object, or a
/// JSON array of them (Webhooks (Actions) with batching on).
///
/// The request is refused as a whole when the body is over [`IngestLimits::max_batch_bytes`],
/// not JSON, neither an object nor an array, or an array of more than
/// [`IngestLimits::max_batch_events`] events (set Segment's batch size within the limits). Each
/// event is read with the rules of [`parse_tracking`]; `type` is required.
pub fn parse_webhook(body: &[u8], limits: &IngestLimits) -> Result<Parsed, IngestError> {
    check_size(body, limits.max_batch_bytes)?;
    let rules = Rules {
        limits,
        endpoint_type: None,
        endpoint_path: "",
        context: None,
        integrations: None,
    };
    let mut seen = Seen::default();
    let (text, value) = parse_json(body)?;
    let items = match value {
        event @ Value::Object(_) => {
            let ids = WrittenIds::new(&text, Shape::Single);
            vec![read_item(
                event,
                At::Single,
                &rules,
                &|i| ids.number(i),
                &mut seen,
            )]
        }
        Value::Array(events) => {
            check_count("body", events.len(), limits)?;
            let ids = WrittenIds::new(&text, Shape::Array);
            events
                .into_iter()
                .enumerate()
                .map(|(index, event)| {
                    read_item(
                        event,
                        At::Array(index),
                        &rules,
                        &|i| ids.number(i),
                        &mut seen,
                    )
                })
                .collect()
        }
        other => {
            return Err(IngestError::InvalidBody(format!(
                "body: expected an event object or an array of events, got {}",
                JsonKind::of(&other)
            )));
        }
    };
    Ok(Parsed {
        write_key: None,
        items,
        sent_at: None,
    })
}

/// Reads events, each given as its JSON text, as one `/v1/batch` request reads the elements of
/// its `batch` array (the same JSON reading, lone surrogates included; each event's checks;
/// numeric `messageId`s kept as written; `messageId`s synthesized as there), without the
/// request-level limits and with no batch-level `context`: what `iterable-lists plan` does with
/// its input, so that it refuses and names exactly what the service would. A text that is not
/// JSON is an error naming its index.
pub fn read_events(
    texts: &[&[u8]],
    limits: &IngestLimits,
) -> Result<Vec<Item>, (usize, IngestError)> {
    let rules = Rules {
        limits,
        endpoint_type: None,
        endpoint_path: "",
        context: None,
        integrations: None,
    };
    let mut seen = Seen::default();
    let mut items = Vec::with_capacity(texts.len());
    for (index, text) in texts.iter().enumerate() {
        let (text, event) = parse_json(text).map_err(|e| (index, e))?;
        // One event per text: its messageId is the text's own.
        let ids = WrittenIds::new(&text, Shape::Single);
        items.push(read_item(
            event,
            At::Batch(index),
            &rules,
            &|_| ids.number(0),
            &mut seen,
        ));
    }
    Ok(items)
}

fn parse_batch(body: &[u8], limits: &IngestLimits) -> Result<Parsed, IngestError> {
    check_size(body, limits.max_batch_bytes)?;
    let (text, mut top) = parse_object(body)?;
    let write_key = take_write_key(&mut top)?;
    let sent_at = top.get("sentAt").and_then(Value::as_str).map(str::to_owned);
    let context = take_shared(&mut top, "context")?;
    let integrations = take_shared(&mut top, "integrations")?;
    let events = match top.shift_remove("batch") {
        Some(Value::Array(events)) => events,
        None | Some(Value::Null) => {
            return Err(IngestError::InvalidBody(
                "batch: required, an array of events: {\"batch\": [...]}".to_owned(),
            ));
        }
        Some(other) => {
            return Err(IngestError::InvalidBody(format!(
                "batch: expected an array of events, got {}",
                JsonKind::of(&other)
            )));
        }
    };
    check_count("batch", events.len(), limits)?;
    let rules = Rules {
        limits,
        endpoint_type: None,
        endpoint_path: "",
        context: context.as_ref(),
        integrations: integrations.as_ref(),
    };
    let ids = WrittenIds::new(&text, Shape::Batch);
    let mut seen = Seen::default();
    let items = events
        .into_iter()
        .enumerate()
        .map(|(index, event)| {
            read_item(
                event,
                At::Batch(index),
                &rules,
                &|i| ids.number(i),
                &mut seen,
            )
        })
        .collect();
    Ok(Parsed {
        write_key,
        items,
        sent_at,
    })
}

fn parse_call(kind: CallKind, body: &[u8], limits: &IngestLimits) -> Result<Parsed, IngestError> {
    check_size(body, limits.max_call_bytes)?;
    let (text, mut event) = parse_object(body)?;
    let write_key = take_write_key(&mut event)?;
    let sent_at = event
        .get("sentAt")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let rules = Rules {
        limits,
        endpoint_type: kind.event_type(),
        endpoint_path: kind.path(),
        context: None,
        integrations: None,
    };
    let ids = WrittenIds::new(&text, Shape::Single);
    let item = read_item(
        Value::Object(event),
        At::Single,
        &rules,
        &|i| ids.number(i),
        &mut Seen::default(),
    );
    Ok(Parsed {
        write_key,
        items: vec![item],
        sent_at,
    })
}

fn check_size(body: &[u8], limit: usize) -> Result<(), IngestError> {
    if body.len() > limit {
        Err(IngestError::BodyTooLarge { limit })
    } else {
        Ok(())
    }
}

fn check_count(
    field: &'static str,
    count: usize,
    limits: &IngestLimits,
) -> Result<(), IngestError> {
    if count > limits.max_batch_events {
        Err(IngestError::TooManyEvents {
            field,
            count,
            limit: limits.max_batch_events,
        })
    } else {
        Ok(())
    }
}

/// Parses a body, and returns it with the text it was read from: `body` itself, or, when
/// serde_json refused it for a lone UTF-16 surrogate escape (`"\ud83d"`, what JavaScript's
/// `JSON.stringify` and Python's `json.dumps` write for a string cut inside an emoji), a copy
/// with each lone surrogate as U+FFFD, as JavaScript's `TextEncoder` encodes it. The copy is
/// made only after a syntax error, so well-formed bodies are parsed once, as they are.
fn parse_json(body: &[u8]) -> Result<(Text<'_>, Value), IngestError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(IngestError::InvalidBody(
            "body is empty: expected a JSON object".to_owned(),
        ));
    }
    let err = match serde_json::from_slice(body) {
        Ok(value) => return Ok((Cow::Borrowed(body), value)),
        Err(err) => err,
    };
    if err.classify() == serde_json::error::Category::Syntax {
        if let Some(copy) = replace_lone_surrogates(body) {
            return match serde_json::from_slice(&copy) {
                Ok(value) => Ok((Cow::Owned(copy), value)),
                Err(err) => Err(malformed(&err)),
            };
        }
    }
    Err(malformed(&err))
}

fn malformed(err: &serde_json::Error) -> IngestError {
    let text = err.to_string();
    let position = format!(" at line {} column {}", err.line(), err.column());
    let reason = text.strip_suffix(&position).unwrap_or(&text).to_owned();
    IngestError::MalformedJson {
        line: err.line(),
        column: err.column(),
        reason,
    }
}

/// The text a body was parsed from: the body, or its repaired copy (see [`parse_json`]).
type Text<'a> = Cow<'a, [u8]>;

fn parse_object(body: &[u8]) -> Result<(Text<'_>, Map<String, Value>), IngestError> {
    match parse_json(body)? {
        (text, Value::Object(map)) => Ok((text, map)),
        (_, other) => Err(IngestError::InvalidBody(format!(
            "body: expected a JSON object, got {}",
            JsonKind::of(&other)
        ))),
    }
}

/// Takes `writeKey` out of a request body: a non-empty string is the key.
fn take_write_key(top: &mut Map<String, Value>) -> Result<Option<String>, IngestError> {
    match top.shift_remove("writeKey") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(key)) => Ok((!key.is_empty()).then_some(key)),
        Some(other) => Err(IngestError::InvalidBody(format!(
            "writeKey: expected a string, got {}",
            JsonKind::of(&other)
        ))),
    }
}

/// Takes a batch-level object to merge into each event; `None` when absent, `null` or empty.
fn take_shared(
    top: &mut Map<String, Value>,
    key: &'static str,
) -> Result<Option<Map<String, Value>>, IngestError> {
    match top.shift_remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => Ok((!map.is_empty()).then_some(map)),
        Some(other) => Err(IngestError::InvalidBody(format!(
            "{key}: expected an object, got {}",
            JsonKind::of(&other)
        ))),
    }
}

/// The per-request settings of [`read_item`].
struct Rules<'a> {
    limits: &'a IngestLimits,
    /// The `type` of `/v1/identify` or `/v1/track`.
    endpoint_type: Option<&'static str>,
    endpoint_path: &'static str,
    context: Option<&'a Map<String, Value>>,
    integrations: Option<&'a Map<String, Value>>,
}

/// Synthesized ids handed out so far in one request, by digest, with their count.
type Seen = HashMap<[u8; 16], u32>;

/// Where an event sits in its request, for item indexes and messages.
#[derive(Clone, Copy)]
enum At {
    Single,
    Batch(usize),
    Array(usize),
}

impl At {
    fn index(self) -> usize {
        match self {
            At::Single => 0,
            At::Batch(index) | At::Array(index) => index,
        }
    }

    /// The event itself, e.g. `batch[3]`.
    fn whole(self) -> String {
        match self {
            At::Single => "event".to_owned(),
            At::Batch(index) => format!("batch[{index}]"),
            At::Array(index) => format!("body[{index}]"),
        }
    }

    /// One of its fields, e.g. `batch[3].type`.
    fn field(self, name: &str) -> String {
        match self {
            At::Single => name.to_owned(),
            At::Batch(_) | At::Array(_) => format!("{}.{name}", self.whole()),
        }
    }
}

/// `id_text(index)`: the text a numeric `messageId` of the event at `index` was written with.
fn read_item<'t>(
    mut event: Value,
    at: At,
    rules: &Rules<'_>,
    id_text: &dyn Fn(usize) -> Option<&'t str>,
    seen: &mut Seen,
) -> Item {
    let index = at.index();
    let invalid = |message_id: Option<String>, reason: String| Item::Invalid {
        index,
        message_id,
        reason,
    };
    let Value::Object(map) = &mut event else {
        return invalid(
            None,
            format!(
                "{}: expected an event object, got {}",
                at.whole(),
                JsonKind::of(&event)
            ),
        );
    };
    map.shift_remove("writeKey");

    let message_id = match read_message_id(map, at, id_text) {
        Ok(message_id) => message_id,
        Err(reason) => return invalid(None, reason),
    };

    let size = compact_len(map);
    if size > rules.limits.max_event_bytes {
        return invalid(
            message_id,
            format!(
                "{}: {size} bytes is over the {}-byte limit per event",
                at.whole(),
                rules.limits.max_event_bytes
            ),
        );
    }

    if let Err(reason) = check_type(map, at, rules) {
        return invalid(message_id, reason);
    }

    if let Some(shared) = rules.context {
        merge_shared(map, "context", shared);
    }
    if let Some(shared) = rules.integrations {
        merge_shared(map, "integrations", shared);
    }

    let message_id = match message_id {
        Some(message_id) => message_id,
        None => {
            let message_id = synthesize_message_id(map, seen);
            map.insert("messageId".to_owned(), Value::String(message_id.clone()));
            message_id
        }
    };
    Item::Event { message_id, event }
}

/// A valid `messageId` (a number rewritten as the text it was written with), `None` when absent
/// or `null`.
fn read_message_id<'t>(
    map: &mut Map<String, Value>,
    at: At,
    id_text: &dyn Fn(usize) -> Option<&'t str>,
) -> Result<Option<String>, String> {
    let Some(value) = map.get_mut("messageId") else {
        return Ok(None);
    };
    let message_id = match value {
        Value::Null => return Ok(None),
        Value::String(text) => text.clone(),
        Value::Number(number) => {
            let text = number_id(number, || id_text(at.index()));
            *value = Value::String(text.clone());
            text
        }
        other => {
            return Err(format!(
                "{}: expected a string, got {}",
                at.field("messageId"),
                JsonKind::of(other)
            ));
        }
    };
    if message_id.is_empty() {
        return Err(format!("{}: must not be empty", at.field("messageId")));
    }
    let chars = message_id.chars().count();
    if chars > MAX_MESSAGE_ID_CHARS {
        return Err(format!(
            "{}: {chars} characters is over the limit of {MAX_MESSAGE_ID_CHARS}",
            at.field("messageId")
        ));
    }
    Ok(Some(message_id))
}

/// A numeric id as the text it was written with. An `i64` or `u64` prints as it was written
/// (JSON writes integers one way only); any other number (a fraction, an exponent, more digits
/// than 64 bits hold, `-0`) lost its text in the parse, so it is read again from the body
/// (`written`, rarely called). `1e3` stays `"1e3"` and `1.50` stays `"1.50"`: two numeric ids
/// are the same event only when written the same way, and no two differently written ones
/// collapse into one.
fn number_id<'a>(number: &Number, written: impl FnOnce() -> Option<&'a str>) -> String {
    if let Some(n) = number.as_i64() {
        n.to_string()
    } else if let Some(n) = number.as_u64() {
        n.to_string()
    } else if let Some(text) = written() {
        text.to_owned()
    } else {
        // Not reached: the body parsed, so its text has the number. JavaScript's form, as the
        // `segment` crate coerces numeric ids, is the best left.
        number_to_string(number.as_f64().unwrap_or(f64::NAN))
    }
}

fn check_type(map: &mut Map<String, Value>, at: At, rules: &Rules<'_>) -> Result<(), String> {
    let field = at.field("type");
    match map.get("type") {
        None | Some(Value::Null) => match rules.endpoint_type {
            Some(endpoint_type) => {
                map.insert("type".to_owned(), Value::String(endpoint_type.to_owned()));
                Ok(())
            }
            None => Err(format!("{field}: required (identify, track, ...)")),
        },
        Some(Value::String(name)) if name.is_empty() => Err(format!("{field}: must not be empty")),
        Some(Value::String(name)) => match rules.endpoint_type {
            Some(endpoint_type) if name != endpoint_type => Err(format!(
                "{field}: {} takes {endpoint_type:?} events, got {:?}",
                rules.endpoint_path,
                cut(name, 40)
            )),
            _ => Ok(()),
        },
        Some(other) => Err(format!(
            "{field}: expected a string, got {}",
            JsonKind::of(other)
        )),
    }
}

/// Adds the batch's `shared` keys that the event's own object under `key` lacks.
fn merge_shared(map: &mut Map<String, Value>, key: &str, shared: &Map<String, Value>) {
    match map.get_mut(key) {
        None | Some(Value::Null) => {
            map.insert(key.to_owned(), Value::Object(shared.clone()));
        }
        Some(Value::Object(own)) => {
            for (name, value) in shared {
                if !own.contains_key(name) {
                    own.insert(name.clone(), value.clone());
                }
            }
        }
        Some(_) => {}
    }
}

/// `ingest-` and the first 16 bytes of the SHA-256 of the event's compact JSON, in hex; the
/// N-th repeat of an identical event in the same request gets `-N` after it.
fn synthesize_message_id(map: &Map<String, Value>, seen: &mut Seen) -> String {
    let mut hasher = Sha256Writer(digest::Context::new(&digest::SHA256));
    write_json(&mut hasher, map);
    let digest = hasher.0.finish();
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest.as_ref()[..16]);
    let mut id = String::with_capacity(SYNTHETIC_MESSAGE_ID_PREFIX.len() + 40);
    id.push_str(SYNTHETIC_MESSAGE_ID_PREFIX);
    push_hex(&mut id, &key);
    let repeat = seen.entry(key).or_insert(0);
    if *repeat > 0 {
        id.push('-');
        id.push_str(&repeat.to_string());
    }
    *repeat += 1;
    id
}

/// The length of the compact JSON of `map`, without building it.
fn compact_len(map: &Map<String, Value>) -> usize {
    let mut counter = CountWriter(0);
    write_json(&mut counter, map);
    counter.0
}

fn write_json<W: Write>(writer: W, map: &Map<String, Value>) {
    // Neither writer fails, and a `serde_json::Value` (string keys, finite numbers) always
    // serializes, so there is no error to report.
    let written = serde_json::to_writer(writer, map);
    debug_assert!(written.is_ok());
}

/// Counts the bytes written to it.
struct CountWriter(usize);

impl Write for CountWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 = self.0.saturating_add(buf.len());
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Feeds the bytes written to it into a SHA-256.
struct Sha256Writer(digest::Context);

impl Write for Sha256Writer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    fn nibble(digit: u8) -> Option<u8> {
        match digit {
            b'0'..=b'9' => Some(digit - b'0'),
            b'a'..=b'f' => Some(digit - b'a' + 10),
            b'A'..=b'F' => Some(digit - b'A' + 10),
            _ => None,
        }
    }
    let digits = text.as_bytes();
    if digits.is_empty() || digits.len() % 2 != 0 {
        return None;
    }
    digits
        .chunks_exact(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

/// The bytes of the first element of a JSON array body, as they appear in it.
#[cfg(test)]
fn first_array_element(body: &[u8]) -> Option<&[u8]> {
    first_array_element_span(body).map(|span| &body[span])
}

/// Where the first element of a JSON array body is, as a range of its bytes.
fn first_array_element_span(body: &[u8]) -> Option<std::ops::Range<usize>> {
    let is_space = |byte: &u8| matches!(byte, b' ' | b'\t' | b'\n' | b'\r');
    let open = body.iter().position(|byte| !is_space(byte))?;
    if body[open] != b'[' {
        return None;
    }
    let rest = &body[open + 1..];
    let start = rest.iter().position(|byte| !is_space(byte))?;
    let rest = &rest[start..];
    let mut values =
        serde_json::Deserializer::from_slice(rest).into_iter::<serde::de::IgnoredAny>();
    match values.next() {
        Some(Ok(_)) => {
            let begin = open + 1 + start;
            Some(begin..begin + values.byte_offset())
        }
        _ => None,
    }
}

/// Whether the body is an array whose first element ends at `end`, followed by nothing but the
/// closing bracket and whitespace.
fn closes_array(body: &[u8], end: usize) -> bool {
    let is_space = |byte: &u8| matches!(byte, b' ' | b'\t' | b'\n' | b'\r');
    let mut rest = body
        .get(end..)
        .unwrap_or_default()
        .iter()
        .skip_while(|b| is_space(b));
    rest.next() == Some(&b']') && rest.all(is_space)
}

/// `text` cut to `max` characters (with `…` when cut), for echoing client input.
fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use base64::Engine as _;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use serde_json::json;

    use super::*;

    const KEY: &str = "wk_SECRET_9f8e7d6c5b4a";

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(data).expect("write to a Vec");
        encoder.finish().expect("finish a Vec")
    }

    fn b64(text: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(text)
    }

    fn limits() -> IngestLimits {
        IngestLimits::default()
    }

    fn parse(kind: CallKind, body: &Value) -> Result<Parsed, IngestError> {
        parse_tracking(kind, body.to_string().as_bytes(), &limits())
    }

    fn batch_of(events: Vec<Value>) -> Parsed {
        parse(CallKind::Batch, &json!({ "batch": events })).expect("a well-formed batch")
    }

    fn reason(item: &Item) -> &str {
        match item {
            Item::Invalid { reason, .. } => reason,
            Item::Event { event, .. } => panic!("expected an invalid item, got {event}"),
        }
    }

    fn event(item: &Item) -> &Value {
        match item {
            Item::Event { event, .. } => event,
            Item::Invalid { reason, .. } => panic!("expected an event, got invalid: {reason}"),
        }
    }

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

    // ---- decode_body --------------------------------------------------------------------------

    #[test]
    fn identity_bodies_pass_through_and_respect_the_limit() {
        let body = Bytes::from_static(b"{\"batch\":[]}");
        for encoding in [
            None,
            Some(""),
            Some("identity"),
            Some(" Identity "),
            Some("identity, identity"),
        ] {
            let out = decode_body(encoding, body.clone(), 12).expect("identity");
            assert_eq!(out, body, "{encoding:?}");
        }
        let err = decode_body(None, body, 11).expect_err("over the limit");
        assert_eq!(err, IngestError::BodyTooLarge { limit: 11 });
        assert_eq!(err.status(), 400);
        assert_eq!(err.to_string(), "request body is over the 11-byte limit");
    }

    #[test]
    fn gzip_round_trips() {
        let json =
            br#"{"batch":[{"type":"identify","userId":"u1"}],"sentAt":"2024-01-01T00:00:00Z"}"#;
        let compressed = Bytes::from(gzip(json));
        for encoding in [
            "gzip",
            "GZIP",
            "x-gzip",
            " gzip ",
            "gzip, identity",
            "identity,gzip",
        ] {
            let out = decode_body(Some(encoding), compressed.clone(), json.len())
                .unwrap_or_else(|err| panic!("{encoding}: {err}"));
            assert_eq!(&out[..], &json[..], "{encoding}");
        }
        // One byte short of the decoded size.
        let err = decode_body(Some("gzip"), compressed, json.len() - 1).expect_err("too big");
        assert_eq!(
            err,
            IngestError::BodyTooLarge {
                limit: json.len() - 1
            }
        );
        // Several gzip members are one body.
        let mut two = gzip(b"{\"batch\":");
        two.extend(gzip(b"[]}"));
        let out = decode_body(Some("gzip"), Bytes::from(two), 100).expect("two members");
        assert_eq!(&out[..], b"{\"batch\":[]}");
    }

    #[test]
    fn a_zip_bomb_stops_at_the_limit() {
        let zeros = vec![b' '; 16 * 1024 * 1024];
        let bomb = gzip(&zeros);
        assert!(bomb.len() < 64 * 1024, "the bomb is small: {}", bomb.len());
        let err = decode_body(Some("gzip"), Bytes::from(bomb), 500 * 1024).expect_err("bomb");
        assert_eq!(err, IngestError::BodyTooLarge { limit: 500 * 1024 });
        assert_eq!(err.status(), 400);
    }

    #[test]
    fn corrupt_gzip_is_a_400() {
        let good = gzip(br#"{"batch":[]}"#);
        let mut bad_crc = good.clone();
        let crc_at = bad_crc.len() - 8;
        bad_crc[crc_at] ^= 0xff;
        let mut trailing = good.clone();
        trailing.extend_from_slice(b"garbage!");
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("not gzip", br#"{"batch":[]}"#.to_vec()),
            ("truncated", good[..good.len() / 2].to_vec()),
            ("bad checksum", bad_crc),
            ("trailing garbage", trailing),
        ];
        for (name, body) in cases {
            let err = decode_body(Some("gzip"), Bytes::from(body), 1000).expect_err(name);
            assert!(matches!(err, IngestError::BadGzip(_)), "{name}: {err:?}");
            assert_eq!(err.status(), 400, "{name}");
            assert!(
                err.to_string()
                    .starts_with("the gzip-encoded body cannot be decoded: ")
            );
        }
    }

    #[test]
    fn other_encodings_are_415_and_named() {
        let long = "x".repeat(300);
        let cases: &[(&str, &str)] = &[
            ("br", "\"br\""),
            ("deflate", "\"deflate\""),
            ("gzip, br", "\"gzip, br\""),
            ("gzip, gzip", "\"gzip, gzip\""),
            ("zstd", "\"zstd\""),
            (&long, "xxxxxxxx…\""),
        ];
        for (encoding, named) in cases {
            let err =
                decode_body(Some(encoding), Bytes::from_static(b"{}"), 100).expect_err(encoding);
            assert_eq!(err.status(), 415, "{encoding}");
            assert_eq!(err.code(), "unsupported_encoding");
            let message = err.to_string();
            assert!(message.contains(named), "{message}");
            assert!(message.len() < 200, "{message}");
        }
    }

    // ---- basic_auth_user ----------------------------------------------------------------------

    #[test]
    fn basic_auth_users() {
        let cases: Vec<(String, Option<&str>)> = vec![
            (format!("Basic {}", b64(b"key1:")), Some("key1")),
            (format!("Basic {}", b64(b"key1")), Some("key1")),
            (format!("Basic {}", b64(b"key1:password")), Some("key1")),
            (format!("Basic {}", b64(b"key1:pa:ss")), Some("key1")),
            (format!("basic {}", b64(b"key1:")), Some("key1")),
            (format!("BASIC {}", b64(b"key1:")), Some("key1")),
            (format!("  Basic    {}  ", b64(b"key1:")), Some("key1")),
            (format!("Basic\t{}", b64(b"key1:")), Some("key1")),
            // Padding is optional: "ab:" is "YWI6", "a:" is "YTo=".
            ("Basic YTo=".to_owned(), Some("a")),
            ("Basic YTo".to_owned(), Some("a")),
            (format!("Basic {}", b64("clé:".as_bytes())), Some("clé")),
            // An empty user name leaves the body's writeKey to be used.
            (format!("Basic {}", b64(b":")), None),
            (format!("Basic {}", b64(b":password")), None),
            ("Bearer eyJhbGciOi.x.y".to_owned(), None),
            ("Digest username=\"x\"".to_owned(), None),
            ("Token abc".to_owned(), None),
            ("".to_owned(), None),
        ];
        for (header, expected) in &cases {
            let user =
                basic_auth_user(Some(header)).unwrap_or_else(|err| panic!("{header}: {err}"));
            assert_eq!(user.as_deref(), *expected, "{header}");
        }
        assert_eq!(basic_auth_user(None), Ok(None));
    }

    #[test]
    fn bad_basic_credentials_are_401_and_not_echoed() {
        let secret_bytes = format!("{KEY}:");
        let cases: Vec<(String, &str)> = vec![
            ("Basic".to_owned(), "the Basic credentials are empty"),
            ("Basic    ".to_owned(), "the Basic credentials are empty"),
            (
                format!("Basic {KEY}!!"),
                "the Basic credentials are not valid base64",
            ),
            (
                format!("Basic {}", b64(secret_bytes.as_bytes()).replace('=', "==")),
                "not valid base64",
            ),
            (
                format!("Basic {} x", b64(secret_bytes.as_bytes())),
                "not valid base64",
            ),
            // URL-safe alphabet is not Basic's: b64 of "??>" is "Pz8+", URL-safe "Pz8-".
            ("Basic Pz8-".to_owned(), "not valid base64"),
            // Trailing bits set: "YR==" is not canonical for "a".
            ("Basic YR==".to_owned(), "not valid base64"),
            (
                format!("Basic {}", b64(b"\xff\xfekey:")),
                "the Basic credentials are not UTF-8",
            ),
        ];
        for (header, expected) in &cases {
            let err = basic_auth_user(Some(header)).expect_err(header);
            assert_eq!(err.status(), 401, "{header}");
            assert_eq!(err.code(), "bad_authorization");
            let message = err.to_string();
            assert!(message.starts_with("Authorization header: "), "{message}");
            assert!(message.contains(expected), "{header}: {message}");
            assert!(!message.contains(KEY), "{message}");
            assert!(!String::from_utf8_lossy(&err.body()).contains(KEY));
            assert_eq!(err.www_authenticate(), Some("Basic realm=\"segment\""));
        }
    }

    // ---- request-level errors -----------------------------------------------------------------

    #[test]
    fn refused_requests() {
        let small = IngestLimits {
            max_event_bytes: 100,
            max_call_bytes: 60,
            max_batch_bytes: 120,
            max_batch_events: 2,
        };
        let cases: &[(CallKind, &str, u16, &str, &str)] = &[
            (
                CallKind::Batch,
                "",
                400,
                "invalid_body",
                "body is empty: expected a JSON object",
            ),
            (
                CallKind::Batch,
                " \n",
                400,
                "invalid_body",
                "body is empty: expected a JSON object",
            ),
            (
                CallKind::Batch,
                "{",
                400,
                "malformed_json",
                "malformed JSON at line 1 column 1: EOF while parsing an object",
            ),
            (
                CallKind::Batch,
                "{\"batch\":[}",
                400,
                "malformed_json",
                "malformed JSON at line 1 column 11: expected value",
            ),
            (
                CallKind::Batch,
                "{}\n{}",
                400,
                "malformed_json",
                "malformed JSON at line 2 column 1: trailing characters",
            ),
            (
                CallKind::Batch,
                "{\"a\":\"\\q\"}",
                400,
                "malformed_json",
                "malformed JSON at line 1 column 8: invalid escape",
            ),
            (
                CallKind::Batch,
                "\u{feff}{}",
                400,
                "malformed_json",
                "malformed JSON at line 1 column 1: expected value",
            ),
            (
                CallKind::Batch,
                "[]",
                400,
                "invalid_body",
                "body: expected a JSON object, got an array",
            ),
            (
                CallKind::Batch,
                "\"x\"",
                400,
                "invalid_body",
                "body: expected a JSON object, got a string",
            ),
            (
                CallKind::Batch,
                "null",
                400,
                "invalid_body",
                "body: expected a JSON object, got null",
            ),
            (
                CallKind::Batch,
                "{}",
                400,
                "invalid_body",
                "batch: required, an array of events: {\"batch\": [...]}",
            ),
            (
                CallKind::Batch,
                "{\"batch\":null}",
                400,
                "invalid_body",
                "batch: required, an array of events",
            ),
            (
                CallKind::Batch,
                "{\"batch\":{}}",
                400,
                "invalid_body",
                "batch: expected an array of events, got an object",
            ),
            (
                CallKind::Batch,
                "{\"batch\":[{},{},{}]}",
                400,
                "too_many_events",
                "batch: 3 events is over the limit of 2 per batch",
            ),
            (
                CallKind::Batch,
                "{\"batch\":[],\"writeKey\":5}",
                400,
                "invalid_body",
                "writeKey: expected a string, got a number",
            ),
            (
                CallKind::Batch,
                "{\"batch\":[],\"context\":\"x\"}",
                400,
                "invalid_body",
                "context: expected an object, got a string",
            ),
            (
                CallKind::Batch,
                "{\"batch\":[],\"integrations\":[1]}",
                400,
                "invalid_body",
                "integrations: expected an object, got an array",
            ),
            (
                CallKind::Batch,
                concat!(
                    "{\"batch\":[",
                    "{\"type\":\"identify\",\"userId\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"},",
                    "{\"type\":\"identify\",\"userId\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}]}"
                ),
                400,
                "body_too_large",
                "request body is over the 120-byte limit",
            ),
            (
                CallKind::Identify,
                "{\"userId\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
                400,
                "body_too_large",
                "request body is over the 60-byte limit",
            ),
            (
                CallKind::Track,
                "[{\"event\":\"x\"}]",
                400,
                "invalid_body",
                "body: expected a JSON object, got an array",
            ),
            (
                CallKind::Identify,
                "{\"writeKey\":true}",
                400,
                "invalid_body",
                "writeKey: expected a string, got a boolean",
            ),
            (
                CallKind::Webhook,
                "1",
                400,
                "invalid_body",
                "body: expected an event object or an array of events, got a number",
            ),
            (
                CallKind::Webhook,
                "[{},{},{}]",
                400,
                "too_many_events",
                "body: 3 events is over the limit of 2 per batch",
            ),
            (
                CallKind::Webhook,
                "tru",
                400,
                "malformed_json",
                "malformed JSON at line 1 column 3: ",
            ),
        ];
        for (kind, body, status, code, message) in cases {
            let err = parse_tracking(*kind, body.as_bytes(), &small).expect_err(body);
            assert_eq!(err.status(), *status, "{body}: {err}");
            assert_eq!(err.code(), *code, "{body}: {err}");
            assert!(err.to_string().starts_with(message), "{body}: {err}");
        }
    }

    #[test]
    fn deep_nesting_is_malformed_not_a_crash() {
        let deep = format!("{{\"batch\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
        let err = parse_tracking(CallKind::Batch, deep.as_bytes(), &limits()).expect_err("deep");
        assert_eq!(err.code(), "malformed_json");
        assert!(
            err.to_string().contains("recursion limit exceeded"),
            "{err}"
        );
    }

    // ---- batch items --------------------------------------------------------------------------

    #[test]
    fn batch_items_are_checked_one_by_one() {
        let long_id = "m".repeat(101);
        let ok_id = "m".repeat(100);
        let big = "x".repeat(33 * 1024);
        let cases: Vec<(Value, Result<(), &str>)> = vec![
            (
                json!({"type": "identify", "userId": "u", "messageId": "m1"}),
                Ok(()),
            ),
            (json!({"type": "page", "messageId": "m1"}), Ok(())),
            (json!({"type": "whatever", "messageId": "m1"}), Ok(())),
            (json!({"type": "identify", "messageId": ok_id}), Ok(())),
            (json!({"type": "identify"}), Ok(())),
            (json!({"type": "identify", "messageId": null}), Ok(())),
            (json!({"type": "identify", "messageId": 12345}), Ok(())),
            (
                json!("identify"),
                Err("batch[0]: expected an event object, got a string"),
            ),
            (
                json!(null),
                Err("batch[0]: expected an event object, got null"),
            ),
            (
                json!([{"type": "identify"}]),
                Err("batch[0]: expected an event object, got an array"),
            ),
            (
                json!({"userId": "u"}),
                Err("batch[0].type: required (identify, track, ...)"),
            ),
            (json!({"type": null}), Err("batch[0].type: required")),
            (json!({"type": ""}), Err("batch[0].type: must not be empty")),
            (
                json!({"type": 7}),
                Err("batch[0].type: expected a string, got a number"),
            ),
            (
                json!({"type": {"a": 1}}),
                Err("batch[0].type: expected a string, got an object"),
            ),
            (
                json!({"type": "identify", "messageId": true}),
                Err("batch[0].messageId: expected a string, got a boolean"),
            ),
            (
                json!({"type": "identify", "messageId": ["a"]}),
                Err("batch[0].messageId: expected a string, got an array"),
            ),
            (
                json!({"type": "identify", "messageId": ""}),
                Err("batch[0].messageId: must not be empty"),
            ),
            (
                json!({"type": "identify", "messageId": long_id}),
                Err("batch[0].messageId: 101 characters is over the limit of 100"),
            ),
            (
                json!({"type": "identify", "traits": {"bio": big}}),
                Err("batch[0]: 33831 bytes is over the 32768-byte limit per event"),
            ),
        ];
        for (item, expected) in cases {
            let text = cut(&item.to_string(), 80);
            let parsed = batch_of(vec![item]);
            assert_eq!(parsed.items.len(), 1);
            match expected {
                Ok(()) => {
                    let event = event(&parsed.items[0]);
                    assert_eq!(
                        event["messageId"].as_str(),
                        parsed.items[0].message_id(),
                        "{text}"
                    );
                }
                Err(message) => {
                    let got = reason(&parsed.items[0]);
                    assert!(got.starts_with(message), "{text}: {got}");
                    assert!(got.len() < 200, "{got}");
                }
            }
        }
    }

    #[test]
    fn bad_events_do_not_fail_the_batch() {
        let parsed = batch_of(vec![
            json!({"type": "identify", "userId": "a", "messageId": "m0"}),
            json!(42),
            json!({"type": "track", "event": "Audience Entered", "messageId": "m2"}),
            json!({"type": 5, "messageId": "m3"}),
            json!({"type": "identify", "messageId": "m4", "traits": {"bio": "x".repeat(40_000)}}),
        ]);
        assert_eq!(parsed.items.len(), 5);
        let summary: Vec<(usize, bool, Option<&str>)> = parsed
            .items
            .iter()
            .enumerate()
            .map(|(i, item)| (i, matches!(item, Item::Event { .. }), item.message_id()))
            .collect();
        assert_eq!(
            summary,
            vec![
                (0, true, Some("m0")),
                (1, false, None),
                (2, true, Some("m2")),
                (3, false, Some("m3")),
                (4, false, Some("m4")),
            ]
        );
        for (i, item) in parsed.items.iter().enumerate() {
            if let Item::Invalid { index, reason, .. } = item {
                assert_eq!(*index, i);
                assert!(reason.starts_with(&format!("batch[{i}]")), "{reason}");
            }
        }
    }

    #[test]
    fn numeric_message_ids_become_strings() {
        let parsed = batch_of(vec![
            json!({"type": "identify", "messageId": 12345}),
            json!({"type": "identify", "messageId": -7}),
            json!({"type": "identify", "messageId": 18446744073709551615u64}),
            json!({"type": "identify", "messageId": 1.5}),
            json!({"type": "identify", "messageId": 1e21}),
        ]);
        let ids: Vec<&str> = parsed.items.iter().filter_map(Item::message_id).collect();
        assert_eq!(ids, ["12345", "-7", "18446744073709551615", "1.5", "1e+21"]);
        for item in &parsed.items {
            assert_eq!(event(item)["messageId"].as_str(), item.message_id());
        }
    }

    #[test]
    fn numeric_message_ids_keep_the_text_they_were_written_with() {
        // Ids past 2^64 (serde_json's f64) no longer collapse into one `1e+30`.
        let body = br#"{"batch": [
            {"type": "identify", "messageId": 1000000000000000000000000000001},
            {"type": "identify", "messageId": 1000000000000000000000000000002},
            {"type": "identify", "messageId": 1e30},
            {"type": "identify", "messageId": 1E+30},
            {"type": "identify", "messageId": 9007199254740993},
            {"type": "identify", "messageId": -9223372036854775809},
            {"type": "identify", "messageId": 1.50},
            {"type": "identify", "messageId": -0},
            {"type": "identify", "messageId": 0.1e-2, "messageId": 2.5}
        ]}"#;
        let parsed = parse_tracking(CallKind::Batch, body, &limits()).expect("parsed");
        let ids: Vec<&str> = parsed.items.iter().filter_map(Item::message_id).collect();
        assert_eq!(
            ids,
            [
                "1000000000000000000000000000001",
                "1000000000000000000000000000002",
                "1e30",
                "1E+30",
                "9007199254740993",
                "-9223372036854775809",
                "1.50",
                "-0",
                "2.5"
            ]
        );
        for item in &parsed.items {
            assert_eq!(event(item)["messageId"].as_str(), item.message_id());
        }

        let call = br#"{"messageId": 123456789012345678901234567890.0, "userId": "u"}"#;
        let parsed = parse_tracking(CallKind::Identify, call, &limits()).expect("parsed");
        assert_eq!(
            parsed.items[0].message_id(),
            Some("123456789012345678901234567890.0")
        );
        let hook = br#"[{"type": "track", "messageId": 1e300}, {"type": "track", "messageId": 7}]"#;
        let parsed = parse_webhook(hook, &limits()).expect("parsed");
        let ids: Vec<&str> = parsed.items.iter().filter_map(Item::message_id).collect();
        assert_eq!(ids, ["1e300", "7"]);
        let hook = br#"{"type": "track", "messageId": 314.159e-2}"#;
        let parsed = parse_webhook(hook, &limits()).expect("parsed");
        assert_eq!(parsed.items[0].message_id(), Some("314.159e-2"));

        // Over the limit as written: 101 digits.
        let long = format!(
            r#"{{"batch": [{{"type": "identify", "messageId": 1{}}}]}}"#,
            "0".repeat(MAX_MESSAGE_ID_CHARS)
        );
        let parsed = parse_tracking(CallKind::Batch, long.as_bytes(), &limits()).expect("parsed");
        assert!(
            reason(&parsed.items[0]).contains("101 characters"),
            "{parsed:?}"
        );
    }

    #[test]
    fn lone_surrogates_become_replacement_characters() {
        let body = br#"{"writeKey": "k", "batch": [
            {"type": "identify", "messageId": "a", "userId": "ann", "traits": {"name": "Ann \ud83d"}},
            {"type": "identify", "messageId": "b", "userId": "bob",
             "traits": {"name": "Bob \\ud83d \ud83d\ud83d\ude00 \uDE00", "\udc00": 1}},
            {"type": "identify", "messageId": "c\ud800", "userId": "cy", "traits": {"name": "Cy"}}
        ]}"#;
        let parsed = parse_tracking(CallKind::Batch, body, &limits()).expect("parsed");
        assert_eq!(parsed.write_key.as_deref(), Some("k"));
        let names: Vec<&Value> = parsed.items.iter().map(|i| &event(i)["traits"]).collect();
        assert_eq!(
            names,
            [
                &json!({"name": "Ann \u{fffd}"}),
                &json!({"name": "Bob \\ud83d \u{fffd}\u{1f600} \u{fffd}", "\u{fffd}": 1}),
                &json!({"name": "Cy"}),
            ]
        );
        let ids: Vec<&str> = parsed.items.iter().filter_map(Item::message_id).collect();
        assert_eq!(ids, ["a", "b", "c\u{fffd}"]);

        let call = br#"{"userId": "ann", "traits": {"name": "\ud83d"}, "messageId": 1e99}"#;
        for kind in [CallKind::Identify, CallKind::Webhook] {
            let parsed = parse_tracking(kind, call, &limits());
            let parsed = parsed.unwrap_or_else(|err| panic!("{kind:?}: {err}"));
            if let Item::Event { event, message_id } = &parsed.items[0] {
                assert_eq!(event["traits"]["name"], "\u{fffd}");
                assert_eq!(message_id, "1e99", "read from the repaired text");
            } else {
                assert_eq!(kind, CallKind::Webhook, "no type: {parsed:?}");
            }
        }
        let hook = br#"[{"type": "track", "event": "\udbff"}]"#;
        let parsed = parse_webhook(hook, &limits()).expect("parsed");
        assert_eq!(event(&parsed.items[0])["event"], "\u{fffd}");
    }

    #[test]
    fn serde_json_private_keys_are_ordinary_keys() {
        // With serde_json's `raw_value` or `arbitrary_precision` features, a first key named
        // like this makes `Value` parse the string as JSON instead; neither feature is on.
        let body = br#"{"batch": [{"$serde_json::private::RawValue": "{\"type\":\"identify\"}"},
            {"$serde_json::private::Number": "1", "type": "identify", "messageId": "n"}]}"#;
        let parsed = parse_tracking(CallKind::Batch, body, &limits()).expect("parsed");
        assert_eq!(
            reason(&parsed.items[0]),
            "batch[0].type: required (identify, track, ...)"
        );
        assert_eq!(
            event(&parsed.items[1])["$serde_json::private::Number"],
            json!("1")
        );
    }

    #[test]
    fn bodies_still_malformed_after_repair_are_refused() {
        let cases: &[(&str, &str)] = &[
            // Not in a string.
            (
                r#"{"batch": [\ud83d]}"#,
                "malformed JSON at line 1 column 12: expected value",
            ),
            // Another error after a lone surrogate: that one is reported.
            (
                r#"{"batch": [{"a": "\ud83d"},]}"#,
                "malformed JSON at line 1 column 28: trailing comma",
            ),
            // And before one.
            (
                r#"{"batch": [,{"a": "\ud83d"}]}"#,
                "malformed JSON at line 1 column 12: expected value",
            ),
            // Cut short.
            (
                r#"{"batch": [{"a": "\ud83d"#,
                "malformed JSON at line 1 column 24: EOF while parsing a string",
            ),
            (
                r#"{"batch": [{"a": "\ud83d\u12"}]}"#,
                "malformed JSON at line 1 column 30: invalid escape",
            ),
        ];
        for &(body, message) in cases {
            let err = parse_tracking(CallKind::Batch, body.as_bytes(), &limits()).expect_err(body);
            assert_eq!(
                (err.code(), err.to_string().as_str()),
                ("malformed_json", message)
            );
        }
    }

    #[test]
    fn an_event_at_exactly_the_limit_is_kept() {
        let mut event = json!({"type": "identify", "messageId": "m", "traits": {"bio": ""}});
        let base = event.to_string().len();
        let limit = 200;
        event["traits"]["bio"] = json!("x".repeat(limit - base));
        assert_eq!(event.to_string().len(), limit);
        let small = IngestLimits {
            max_event_bytes: limit,
            ..IngestLimits::default()
        };
        let body = json!({"batch": [event.clone()]}).to_string();
        let parsed = parse_tracking(CallKind::Batch, body.as_bytes(), &small).expect("batch");
        assert!(matches!(parsed.items[0], Item::Event { .. }));
        event["traits"]["bio"] = json!("x".repeat(limit - base + 1));
        let body = json!({"batch": [event]}).to_string();
        let parsed = parse_tracking(CallKind::Batch, body.as_bytes(), &small).expect("batch");
        assert_eq!(
            reason(&parsed.items[0]),
            "batch[0]: 201 bytes is over the 200-byte limit per event"
        );
        // Whitespace as sent does not count: the compact form is measured.
        let bio = "x".repeat(limit - base);
        let event = json!({"type": "identify", "messageId": "m", "traits": {"bio": bio}});
        let pretty = serde_json::to_string_pretty(&json!({"batch": [event]})).expect("pretty");
        let parsed = parse_tracking(CallKind::Batch, pretty.as_bytes(), &small).expect("batch");
        assert!(matches!(parsed.items[0], Item::Event { .. }));
    }

    #[test]
    fn batch_context_and_integrations_are_merged() {
        let body = json!({
            "batch": [
                {"type": "identify", "messageId": "m0"},
                {"type": "identify", "messageId": "m1",
                    "context": {"ip": "own", "traits": {"a": 1}}, "integrations": {"All": false}},
                {"type": "identify", "messageId": "m2", "context": null},
                {"type": "identify", "messageId": "m3", "context": "odd"},
            ],
            "context": {"ip": "shared", "library": {"name": "py"}, "traits": {"b": 2}},
            "integrations": {"All": true, "Iterable": true},
            "sentAt": "2024-05-01T00:00:00.000Z",
        });
        let parsed = parse(CallKind::Batch, &body).expect("batch");
        assert_eq!(parsed.sent_at.as_deref(), Some("2024-05-01T00:00:00.000Z"));
        let events: Vec<&Value> = parsed.items.iter().map(event).collect();
        assert_eq!(
            events[0],
            &json!({"type": "identify", "messageId": "m0",
                "context": {"ip": "shared", "library": {"name": "py"}, "traits": {"b": 2}},
                "integrations": {"All": true, "Iterable": true}})
        );
        // The event's own keys win, shallowly: its `context.traits` is kept whole.
        assert_eq!(
            events[1],
            &json!({"type": "identify", "messageId": "m1",
                "context": {"ip": "own", "traits": {"a": 1}, "library": {"name": "py"}},
                "integrations": {"All": false, "Iterable": true}})
        );
        assert_eq!(events[2]["context"]["ip"], "shared");
        // A non-object is left for the destination's checks to report.
        assert_eq!(events[3]["context"], "odd");
        assert_eq!(events[3]["integrations"]["All"], true);
        // Nothing batch-level leaks into the events.
        for event in &events {
            assert!(event.get("sentAt").is_none());
            assert!(event.get("batch").is_none());
        }
    }

    #[test]
    fn the_size_limit_applies_to_the_event_as_sent() {
        let small = IngestLimits {
            max_event_bytes: 60,
            ..IngestLimits::default()
        };
        let body = json!({
            "batch": [{"type": "identify", "messageId": "m0"}],
            "context": {"big": "x".repeat(500)},
        })
        .to_string();
        let parsed = parse_tracking(CallKind::Batch, body.as_bytes(), &small).expect("batch");
        assert_eq!(
            event(&parsed.items[0])["context"]["big"]
                .as_str()
                .map(str::len),
            Some(500)
        );
    }

    // ---- messageIds ---------------------------------------------------------------------------

    #[test]
    fn synthesized_message_ids_are_stable() {
        let one = json!({"type": "identify", "userId": "u1", "traits": {"vip": true}});
        let other = json!({"type": "identify", "userId": "u2", "traits": {"vip": true}});
        let first = batch_of(vec![one.clone(), other.clone()]);
        let again = batch_of(vec![one.clone(), other.clone()]);
        assert_eq!(first, again);
        let alone = batch_of(vec![one.clone()]);
        let id = first.items[0].message_id().expect("an id").to_owned();
        assert_eq!(alone.items[0].message_id(), Some(id.as_str()));
        assert_ne!(first.items[1].message_id(), Some(id.as_str()));
        assert!(id.starts_with(SYNTHETIC_MESSAGE_ID_PREFIX), "{id}");
        assert_eq!(id.len(), SYNTHETIC_MESSAGE_ID_PREFIX.len() + 32);
        assert!(
            id[SYNTHETIC_MESSAGE_ID_PREFIX.len()..]
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(event(&first.items[0])["messageId"], json!(id));
        // The id is the hash of the event as stored, so the same event sent alone is the same.
        let single = parse(CallKind::Identify, &one).expect("identify");
        assert_eq!(single.items[0].message_id(), Some(id.as_str()));
        // The pinned value: the first 16 bytes of the SHA-256 of the compact JSON.
        let digest = digest::digest(&digest::SHA256, one.to_string().as_bytes());
        let mut hex = String::new();
        push_hex(&mut hex, &digest.as_ref()[..16]);
        assert_eq!(id, format!("ingest-{hex}"));
        // Identical copies in one request get distinct, still deterministic ids.
        let copies = batch_of(vec![one.clone(), other, one.clone(), one]);
        let ids: Vec<&str> = copies.items.iter().filter_map(Item::message_id).collect();
        assert_eq!(ids[0], id);
        assert_eq!(ids[2], format!("{id}-1"));
        assert_eq!(ids[3], format!("{id}-2"));
        assert_eq!(copies, batch_of(copies_source()));

        fn copies_source() -> Vec<Value> {
            let one = json!({"type": "identify", "userId": "u1", "traits": {"vip": true}});
            let other = json!({"type": "identify", "userId": "u2", "traits": {"vip": true}});
            vec![one.clone(), other, one.clone(), one]
        }
    }

    #[test]
    fn synthesized_ids_cover_the_merged_context() {
        let event = json!({"type": "identify", "userId": "u1"});
        let a = parse(
            CallKind::Batch,
            &json!({"batch": [event.clone()], "context": {"x": 1}}),
        )
        .expect("a");
        let b = parse(
            CallKind::Batch,
            &json!({"batch": [event], "context": {"x": 2}}),
        )
        .expect("b");
        assert_ne!(a.items[0].message_id(), b.items[0].message_id());
    }

    // ---- write keys ---------------------------------------------------------------------------

    #[test]
    fn write_keys_are_taken_out_of_events() {
        let body = json!({
            "batch": [
                {"type": "identify", "messageId": "m0", "writeKey": KEY},
                {"type": 3, "messageId": "m1", "writeKey": KEY},
            ],
            "writeKey": KEY,
            "sentAt": 17,
        });
        let parsed = parse(CallKind::Batch, &body).expect("batch");
        assert_eq!(parsed.write_key.as_deref(), Some(KEY));
        assert_eq!(parsed.sent_at, None);
        let debug = format!("{parsed:?}");
        assert!(!debug.contains(KEY), "{debug}");
        assert!(debug.contains("<redacted>"), "{debug}");
        assert!(event(&parsed.items[0]).get("writeKey").is_none());
        assert!(!reason(&parsed.items[1]).contains(KEY));

        let call = parse(
            CallKind::Track,
            &json!({"event": "x", "writeKey": KEY, "sentAt": "s"}),
        )
        .expect("track");
        assert_eq!(call.write_key.as_deref(), Some(KEY));
        assert_eq!(call.sent_at.as_deref(), Some("s"));
        assert_eq!(
            event(&call.items[0]),
            &json!({"event": "x", "sentAt": "s", "type": "track",
                "messageId": call.items[0].message_id()})
        );

        for body in [
            json!({"batch": []}),
            json!({"batch": [], "writeKey": ""}),
            json!({"batch": [], "writeKey": null}),
        ] {
            assert_eq!(
                parse(CallKind::Batch, &body).expect("batch").write_key,
                None,
                "{body}"
            );
        }
        // A webhook never yields a write key.
        let hook = parse_webhook(
            json!({"type": "identify", "writeKey": KEY})
                .to_string()
                .as_bytes(),
            &limits(),
        )
        .expect("hook");
        assert_eq!(hook.write_key, None);
        assert!(event(&hook.items[0]).get("writeKey").is_none());
    }

    #[test]
    fn keys_never_appear_in_error_messages() {
        let bodies = [
            format!("{{\"writeKey\":\"{KEY}\",\"batch\":[}}"),
            format!("{{\"writeKey\":\"{KEY}\"}}"),
            format!("{{\"writeKey\":\"{KEY}\",\"batch\":\"x\"}}"),
            format!("{{\"writeKey\":\"{KEY}\",\"context\":\"x\",\"batch\":[]}}"),
            format!("[\"{KEY}\"]"),
            format!("\"{KEY}\""),
            format!("{{\"writeKey\":\"{KEY}\" \"batch\":[]}}"),
        ];
        for body in &bodies {
            for kind in [
                CallKind::Batch,
                CallKind::Identify,
                CallKind::Track,
                CallKind::Webhook,
            ] {
                match parse_tracking(kind, body.as_bytes(), &limits()) {
                    Err(err) => {
                        assert!(!err.to_string().contains(KEY), "{kind:?} {body}: {err}");
                        assert!(!String::from_utf8_lossy(&err.body()).contains(KEY));
                    }
                    Ok(parsed) => {
                        for item in &parsed.items {
                            if let Item::Invalid { reason, .. } = item {
                                assert!(!reason.contains(KEY), "{reason}");
                            }
                        }
                        assert!(!format!("{parsed:?}").contains(KEY));
                    }
                }
            }
        }
        for err in [IngestError::MissingWriteKey, IngestError::UnknownWriteKey] {
            assert_eq!(err.status(), 401);
        }
        assert_eq!(
            IngestError::MissingWriteKey.to_string(),
            "no write key: send HTTP Basic auth with the write key as username, or writeKey in the body"
        );
        assert_eq!(
            IngestError::UnknownWriteKey.to_string(),
            "the write key is not configured for any destination"
        );
    }

    // ---- identify and track -------------------------------------------------------------------

    #[test]
    fn single_calls() {
        let cases: Vec<(CallKind, Value, Result<&str, &str>)> = vec![
            (CallKind::Identify, json!({"userId": "u"}), Ok("identify")),
            (
                CallKind::Identify,
                json!({"type": null, "userId": "u"}),
                Ok("identify"),
            ),
            (
                CallKind::Identify,
                json!({"type": "identify", "userId": "u"}),
                Ok("identify"),
            ),
            (
                CallKind::Track,
                json!({"event": "Audience Entered"}),
                Ok("track"),
            ),
            (CallKind::Track, json!({"type": "track"}), Ok("track")),
            (
                CallKind::Identify,
                json!({"type": "track"}),
                Err("type: /v1/identify takes \"identify\" events, got \"track\""),
            ),
            (
                CallKind::Track,
                json!({"type": "page"}),
                Err("type: /v1/track takes \"track\" events, got \"page\""),
            ),
            (
                CallKind::Track,
                json!({"type": "Track"}),
                Err("type: /v1/track takes \"track\" events, got \"Track\""),
            ),
            (
                CallKind::Track,
                json!({"type": ""}),
                Err("type: must not be empty"),
            ),
            (
                CallKind::Track,
                json!({"type": 1}),
                Err("type: expected a string, got a number"),
            ),
            (
                CallKind::Track,
                json!({"type": "track", "messageId": {}}),
                Err("messageId: expected a string, got an object"),
            ),
            (
                CallKind::Identify,
                json!({"traits": {"bio": "x".repeat(32 * 1024)}}),
                Err("event: 32789 bytes is over the 32768-byte limit per event"),
            ),
        ];
        let roomy = IngestLimits {
            max_call_bytes: 64 * 1024,
            ..IngestLimits::default()
        };
        for (kind, body, expected) in cases {
            let body = body.to_string();
            let text = cut(&body, 80);
            let parsed = parse_tracking(kind, body.as_bytes(), &roomy).expect(&text);
            assert_eq!(parsed.items.len(), 1);
            match expected {
                Ok(event_type) => assert_eq!(event(&parsed.items[0])["type"], event_type, "{text}"),
                Err(message) => {
                    let got = reason(&parsed.items[0]);
                    assert!(got.starts_with(message), "{text}: {got}");
                    assert!(matches!(parsed.items[0], Item::Invalid { index: 0, .. }));
                }
            }
        }
        let long_type = json!({"type": "p".repeat(500)}).to_string();
        let parsed =
            parse_tracking(CallKind::Track, long_type.as_bytes(), &limits()).expect("long type");
        assert!(
            reason(&parsed.items[0]).len() < 120,
            "{}",
            reason(&parsed.items[0])
        );
    }

    // ---- webhooks -----------------------------------------------------------------------------

    #[test]
    fn webhook_bodies() {
        let one = parse_webhook(
            br#"{"type":"identify","userId":"u","messageId":"m"}"#,
            &limits(),
        )
        .expect("one");
        assert_eq!(one.items.len(), 1);
        assert_eq!(one.items[0].message_id(), Some("m"));
        assert_eq!(one.sent_at, None);

        let many = parse_webhook(
            br#"[{"type":"identify","messageId":"a"},"x",{"messageId":"c"},{"type":"track"}]"#,
            &limits(),
        )
        .expect("many");
        assert_eq!(many.items.len(), 4);
        assert_eq!(many.items[0].message_id(), Some("a"));
        assert_eq!(
            reason(&many.items[1]),
            "body[1]: expected an event object, got a string"
        );
        assert_eq!(
            reason(&many.items[2]),
            "body[2].type: required (identify, track, ...)"
        );
        assert!(
            many.items[3]
                .message_id()
                .is_some_and(|id| id.starts_with("ingest-"))
        );

        let empty = parse_webhook(b"[]", &limits()).expect("empty");
        assert!(empty.items.is_empty());

        let missing_type = parse_webhook(br#"{"userId":"u"}"#, &limits()).expect("object");
        assert_eq!(
            reason(&missing_type.items[0]),
            "type: required (identify, track, ...)"
        );

        let small = IngestLimits {
            max_batch_bytes: 10,
            ..IngestLimits::default()
        };
        let err = parse_webhook(br#"{"type":"identify"}"#, &small).expect_err("too big");
        assert_eq!(err, IngestError::BodyTooLarge { limit: 10 });
        assert_eq!(
            parse_tracking(CallKind::Webhook, b"[]", &limits()),
            parse_webhook(b"[]", &limits())
        );
    }

    // ---- signatures ---------------------------------------------------------------------------

    fn sign(secret: &[u8], data: &[u8]) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
        let mut hex = String::new();
        push_hex(&mut hex, hmac::sign(&key, data).as_ref());
        hex
    }

    #[test]
    fn hmac_sha1_known_vectors() {
        // RFC 2202, test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
        assert_eq!(
            verify_signature(
                b"Jefe",
                b"what do ya want for nothing?",
                Some("effcdf6ae5eb2fa2d27416d5f184df9c259a7c79")
            ),
            Ok(Signed::Body)
        );
        // As `openssl dgst -sha1 -hmac s3cret` gives it.
        let body = br#"{"type":"identify","userId":"u1"}"#;
        assert_eq!(
            sign(b"s3cret", body),
            "ff06c53e2b6fd95f5018f02fee9e5046544a1ef5"
        );
    }

    #[test]
    fn signatures() {
        let secret = b"s3cret";
        let body: &[u8] = br#"{"type":"identify","userId":"u1"}"#;
        let good = sign(secret, body);
        let batch: &[u8] =
            br#"[{"type":"identify","userId":"u1"},{"type":"identify","userId":"u2"}]"#;
        let second = sign(secret, br#"{"type":"identify","userId":"u2"}"#);
        let whole = sign(secret, batch);
        let mut flipped = good.clone().into_bytes();
        flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(flipped).expect("ascii");

        type Case<'a> = (
            &'a [u8],
            &'a [u8],
            Option<String>,
            Result<Signed, IngestError>,
        );
        let cases: Vec<Case<'_>> = vec![
            (secret, body, Some(good.clone()), Ok(Signed::Body)),
            (secret, body, Some(good.to_uppercase()), Ok(Signed::Body)),
            (secret, body, Some(format!(" {good}\t")), Ok(Signed::Body)),
            (secret, batch, Some(whole), Ok(Signed::Body)),
            // Webhooks (Actions) batching signs the first event only.
            (secret, batch, Some(good.clone()), Ok(Signed::FirstEvent)),
            (
                secret,
                b" [ \n{\"type\":\"identify\",\"userId\":\"u1\"} ,{}]",
                Some(good.clone()),
                Ok(Signed::FirstEvent),
            ),
            (secret, batch, Some(second), Err(IngestError::BadSignature)),
            (
                secret,
                b"[]",
                Some(sign(secret, b"")),
                Err(IngestError::BadSignature),
            ),
            (secret, body, None, Err(IngestError::MissingSignature)),
            (
                secret,
                body,
                Some(String::new()),
                Err(IngestError::MissingSignature),
            ),
            (
                secret,
                body,
                Some("  ".to_owned()),
                Err(IngestError::MissingSignature),
            ),
            (secret, body, Some(flipped), Err(IngestError::BadSignature)),
            (
                secret,
                body,
                Some(good[..38].to_owned()),
                Err(IngestError::BadSignature),
            ),
            (
                secret,
                body,
                Some(good[..39].to_owned()),
                Err(IngestError::BadSignature),
            ),
            (
                secret,
                body,
                Some(format!("{good}00")),
                Err(IngestError::BadSignature),
            ),
            (
                secret,
                body,
                Some(format!("sha1={good}")),
                Err(IngestError::BadSignature),
            ),
            (
                secret,
                body,
                Some("zz".repeat(20)),
                Err(IngestError::BadSignature),
            ),
            (
                secret,
                body,
                Some("é".repeat(20)),
                Err(IngestError::BadSignature),
            ),
            (
                b"other",
                body,
                Some(good.clone()),
                Err(IngestError::BadSignature),
            ),
            (
                secret,
                br#"{"type":"identify","userId":"u2"}"#,
                Some(good.clone()),
                Err(IngestError::BadSignature),
            ),
            (b"", body, Some(sign(b"", body)), Ok(Signed::Body)),
        ];
        for (i, (secret, body, header, expected)) in cases.into_iter().enumerate() {
            assert_eq!(
                verify_signature(secret, body, header.as_deref()),
                expected,
                "case {i}"
            );
        }
        assert_eq!(
            IngestError::MissingSignature.to_string(),
            "X-Signature header is required"
        );
        assert_eq!(
            IngestError::BadSignature.to_string(),
            "X-Signature does not match the body"
        );
        assert_eq!(IngestError::BadSignature.status(), 401);
        assert_eq!(IngestError::MissingSignature.status(), 401);
    }

    #[test]
    fn a_signature_over_the_only_event_of_an_array_covers_it() {
        let secret = b"s3cret";
        let event = br#"{"type":"identify","userId":"u1"}"#;
        let sig = sign(secret, event);
        let wrap = |before: &str, after: &str| {
            let mut body = before.as_bytes().to_vec();
            body.extend_from_slice(event);
            body.extend_from_slice(after.as_bytes());
            body
        };
        let cases: Vec<(Vec<u8>, Result<Signed, IngestError>)> = vec![
            (wrap("[", "]"), Ok(Signed::SoleEvent)),
            (wrap(" \n[ \t", "\r\n] \n"), Ok(Signed::SoleEvent)),
            (wrap("[", ",{}]"), Ok(Signed::FirstEvent)),
            (wrap("[", " , {} ]"), Ok(Signed::FirstEvent)),
            (wrap("[", ","), Ok(Signed::FirstEvent)),
            (wrap("[", "]]"), Ok(Signed::FirstEvent)),
            (wrap("[", "] x"), Ok(Signed::FirstEvent)),
            (wrap("[", ""), Ok(Signed::FirstEvent)),
            (wrap("[[", "]]"), Err(IngestError::BadSignature)),
            (wrap("", ""), Ok(Signed::Body)),
        ];
        for (body, expected) in cases {
            assert_eq!(
                verify_signature(secret, &body, Some(&sig)),
                expected,
                "{}",
                String::from_utf8_lossy(&body)
            );
        }
    }

    #[test]
    fn first_array_elements() {
        let cases: &[(&[u8], Option<&[u8]>)] = &[
            (b"[{\"a\":[1,2]},{}]", Some(b"{\"a\":[1,2]}")),
            (b"[ 12 , 3]", Some(b"12")),
            (b"[\"a,]\"]", Some(b"\"a,]\"")),
            (b"[]", None),
            (b"[", None),
            (b"{}", None),
            (b"", None),
            (b"[{", None),
        ];
        for (body, expected) in cases {
            assert_eq!(
                first_array_element(body),
                *expected,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    // ---- answers ------------------------------------------------------------------------------

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
    }

    // ---- properties ---------------------------------------------------------------------------

    mod props {
        use proptest::prelude::*;
        use proptest::test_runner::RngSeed;

        use super::*;

        fn config() -> ProptestConfig {
            ProptestConfig {
                cases: 512,
                rng_seed: RngSeed::Fixed(0x5e9_3e47),
                failure_persistence: None,
                ..ProptestConfig::default()
            }
        }

        /// How many items a body may give: the batch's (or webhook array's) length, else 1.
        fn events_in(kind: CallKind, body: &[u8]) -> usize {
            match (kind, serde_json::from_slice::<Value>(body)) {
                (CallKind::Batch, Ok(Value::Object(map))) => map
                    .get("batch")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len),
                (CallKind::Webhook, Ok(Value::Array(events))) => events.len(),
                (_, Ok(_)) => 1,
                (_, Err(_)) => 0,
            }
        }

        fn any_json() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                any::<f64>()
                    .prop_filter("finite", |f| f.is_finite())
                    .prop_map(Value::from),
                prop_oneof![
                    Just("identify"),
                    Just("track"),
                    Just("page"),
                    Just(""),
                    Just("m1"),
                    Just("writeKey"),
                ]
                .prop_map(Value::from),
                proptest::collection::vec(any::<char>(), 0..8)
                    .prop_map(|chars| Value::from(chars.into_iter().collect::<String>())),
            ];
            leaf.prop_recursive(4, 48, 6, |inner| {
                prop_oneof![
                    proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                    proptest::collection::vec(
                        (
                            prop_oneof![
                                Just("type".to_owned()),
                                Just("messageId".to_owned()),
                                Just("writeKey".to_owned()),
                                Just("context".to_owned()),
                                Just("integrations".to_owned()),
                                Just("userId".to_owned()),
                                Just("x".to_owned()),
                            ],
                            inner,
                        ),
                        0..6,
                    )
                    .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
                ]
            })
        }

        /// `value` with U+E000 (a stand-in for a lone surrogate) after every string of odd
        /// length and before every one of even length, keys included (but those the parser
        /// reads).
        fn mark(value: Value) -> Value {
            let marked = |text: String| {
                if text.chars().count() % 2 == 1 {
                    format!("{text}\u{e000}")
                } else {
                    format!("\u{e000}{text}")
                }
            };
            match value {
                Value::String(text) => Value::String(marked(text)),
                Value::Array(items) => Value::Array(items.into_iter().map(mark).collect()),
                Value::Object(map) => {
                    let mut out = Map::new();
                    for (key, value) in map {
                        let kept = ["type", "messageId", "writeKey", "context", "integrations"];
                        let key = if kept.contains(&key.as_str()) {
                            key
                        } else {
                            marked(key)
                        };
                        out.insert(key, mark(value));
                    }
                    Value::Object(out)
                }
                other => other,
            }
        }

        fn check(kind: CallKind, body: &[u8], limits: &IngestLimits) {
            if let Ok(parsed) = parse_tracking(kind, body, limits) {
                let most = events_in(kind, body);
                assert!(
                    parsed.items.len() <= most,
                    "{} items from {most}",
                    parsed.items.len()
                );
                for (i, item) in parsed.items.iter().enumerate() {
                    match item {
                        Item::Event { message_id, event } => {
                            assert!(event.get("writeKey").is_none());
                            assert_eq!(event["messageId"].as_str(), Some(message_id.as_str()));
                            assert!(event["type"].as_str().is_some_and(|t| !t.is_empty()));
                        }
                        Item::Invalid { index, .. } => assert_eq!(*index, i),
                    }
                }
            }
        }

        proptest! {
            #![proptest_config(config())]

            #[test]
            fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..256)) {
                let small = IngestLimits {
                    max_event_bytes: 64,
                    max_call_bytes: 128,
                    max_batch_bytes: 200,
                    max_batch_events: 4,
                };
                for kind in [CallKind::Batch, CallKind::Identify, CallKind::Track, CallKind::Webhook]
                {
                    check(kind, &body, &IngestLimits::default());
                    check(kind, &body, &small);
                }
                let _ = decode_body(Some("gzip"), Bytes::from(body.clone()), 1024);
                let _ = basic_auth_user(std::str::from_utf8(&body).ok());
                let _ = verify_signature(b"k", &body, std::str::from_utf8(&body).ok());
            }

            /// Events whose strings (values and keys) carry lone surrogates, as the SDKs write
            /// them, read as the same events with U+FFFD in their place.
            #[test]
            fn lone_surrogates_read_as_replacement_characters(
                events in proptest::collection::vec(any_json().prop_map(mark), 0..6),
                kind in prop_oneof![Just("\\ud83d"), Just("\\uDE00"), Just("\\udbff\\udbff")],
            ) {
                const MARK: char = '\u{e000}';
                let text = json!({"batch": events}).to_string();
                let sent = text.replace(MARK, kind);
                let fffd = "\u{fffd}".repeat(if kind.len() == 12 { 2 } else { 1 });
                let want = text.replace(MARK, &fffd);
                let limits = IngestLimits::default();
                let got = parse_tracking(CallKind::Batch, sent.as_bytes(), &limits);
                let want = parse_tracking(CallKind::Batch, want.as_bytes(), &limits);
                prop_assert_eq!(got, want);
            }

            /// Numeric messageIds of any form, amid other members and any whitespace, keep
            /// the text they were written with.
            #[test]
            fn numeric_message_ids_keep_their_text(
                ids in proptest::collection::vec(
                    "-?(0|[1-9][0-9]{0,40})(\\.[0-9]{1,6})?([eE][+-]?[0-9]{1,2})?", 1..6),
                others in proptest::collection::vec(any_json(), 1..6),
                space in "[ \t\r\n]{0,2}",
            ) {
                let events: Vec<String> = ids
                    .iter()
                    .zip(others.iter().cycle())
                    .map(|(id, other)| {
                        format!(
                            "{{{space}\"x\"{space}:{space}{other}{space},\"type\":\"track\",\
                             {space}\"messageId\"{space}:{space}{id}{space}}}"
                        )
                    })
                    .collect();
                let body = format!("{space}{{\"batch\":{space}[{}]{space}}}", events.join(","));
                let parsed = parse_tracking(CallKind::Batch, body.as_bytes(), &IngestLimits::default());
                let parsed = parsed.expect("a well-formed batch");
                let got: Vec<&str> = parsed.items.iter().filter_map(Item::message_id).collect();
                prop_assert_eq!(got, ids.iter().map(String::as_str).collect::<Vec<_>>());
                let hook = format!("[{}]", events.join(","));
                let parsed = parse_webhook(hook.as_bytes(), &IngestLimits::default()).expect("parsed");
                let got: Vec<&str> = parsed.items.iter().filter_map(Item::message_id).collect();
                prop_assert_eq!(got, ids.iter().map(String::as_str).collect::<Vec<_>>());
            }

            #[test]
            fn arbitrary_batches_give_one_item_per_event(
                events in proptest::collection::vec(any_json(), 0..8),
                context in any_json(),
                write_key in any_json(),
            ) {
                let body =
                    json!({"batch": events.clone(), "context": context, "writeKey": write_key});
                let text = body.to_string();
                let limits = IngestLimits { max_event_bytes: 256, ..IngestLimits::default() };
                match parse_tracking(CallKind::Batch, text.as_bytes(), &limits) {
                    Ok(parsed) => {
                        prop_assert_eq!(parsed.items.len(), events.len());
                        check(CallKind::Batch, text.as_bytes(), &limits);
                        let again = parse_tracking(CallKind::Batch, text.as_bytes(), &limits);
                        prop_assert_eq!(Ok(parsed), again);
                    }
                    Err(err) => prop_assert_eq!(err.status(), 400),
                }
                let array = Value::Array(events.clone()).to_string();
                let hook = parse_webhook(array.as_bytes(), &limits).expect("an array of at most 8");
                prop_assert_eq!(hook.items.len(), events.len());
                // `plan` reads events exactly as a batch without a shared context does.
                // (the events as read back from the same text: JSON numbers need not survive
                // a trip through text unchanged)
                let bare = json!({"batch": events.clone()}).to_string();
                let as_batch = parse_tracking(CallKind::Batch, bare.as_bytes(), &limits)
                    .expect("a batch of at most 8 small events");
                let texts: Vec<String> = events.iter().map(Value::to_string).collect();
                let texts: Vec<&[u8]> = texts.iter().map(|t| t.as_bytes()).collect();
                prop_assert_eq!(read_events(&texts, &limits).expect("JSON"), as_batch.items);
                for event in &events {
                    let text = event.to_string();
                    check(CallKind::Webhook, text.as_bytes(), &limits);
                    check(CallKind::Identify, text.as_bytes(), &limits);
                }
            }
        }
    }
}
