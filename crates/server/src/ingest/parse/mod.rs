//! The body of each ingestion endpoint: refused as a whole ([`IngestError`]) when its shape is
//! wrong, else read event by event (see `event_checks`).

use segment::event::JsonKind;
use serde_json::{Map, Value};

use super::batch_text::read_batch;
use super::error::IngestError;
use super::event_checks::{At, Rules, read_item};
use super::json::{parse_json, parse_object};
use super::json_text::{Shape, WrittenIds};
use super::message_id::Seen;
use super::parsed::{Item, Parsed};
use super::{CallKind, IngestLimits};

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
///
/// [`decode_body`]: super::decode_body
/// [`MAX_MESSAGE_ID_CHARS`]: super::MAX_MESSAGE_ID_CHARS
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
///
/// [`decode_body`]: super::decode_body
/// [`verify_signature`]: super::verify_signature
pub fn parse_webhook(body: &[u8], limits: &IngestLimits) -> Result<Parsed, IngestError> {
    check_size(body, CallKind::Webhook.max_body_bytes(limits))?;
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
    check_size(body, CallKind::Batch.max_body_bytes(limits))?;
    if let Some(parsed) = read_batch(body, limits) {
        return Ok(parsed);
    }
    parse_batch_tree(body, limits)
}

/// `/v1/batch` read as a JSON tree: the general path, for what [`read_batch`] leaves to it.
pub(super) fn parse_batch_tree(body: &[u8], limits: &IngestLimits) -> Result<Parsed, IngestError> {
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
    check_size(body, kind.max_body_bytes(limits))?;
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

#[cfg(test)]
mod tests;
