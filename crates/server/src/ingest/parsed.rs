//! What was read from one ingestion request: its write key and send time, and one item per
//! event, accepted for the destination's own checks or refused here.

use std::fmt;

use serde_json::Value;

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
        event: EventBody,
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

    /// The event's text, when it came as text ([`EventBody::Text`]).
    pub fn text(&self) -> Option<&str> {
        match self {
            Item::Event {
                event: EventBody::Text(text),
                ..
            } => Some(text),
            _ => None,
        }
    }
}

/// An event of an [`Item::Event`]: parsed into JSON, or, on the fast path of `/v1/batch`, its
/// text as sent (valid JSON, which the checks left unchanged), for the destination's typed read.
#[derive(Debug, Clone, PartialEq)]
pub enum EventBody {
    Json(Value),
    Text(String),
}

impl EventBody {
    /// The event as JSON: parsed from its text if need be.
    pub fn into_value(self) -> Result<Value, serde_json::Error> {
        match self {
            EventBody::Json(value) => Ok(value),
            EventBody::Text(text) => serde_json::from_str(&text),
        }
    }

    /// [`EventBody::into_value`] of a copy.
    pub fn to_value(&self) -> Result<Value, serde_json::Error> {
        self.clone().into_value()
    }
}
