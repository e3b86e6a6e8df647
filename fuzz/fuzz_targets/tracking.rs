//! The tracking API's body reading, as the server does it: `decode_body` (identity or gzip),
//! then `parse_tracking` for `/v1/batch`, `/v1/identify`, `/v1/track` (and the webhook shape).
//!
//! Input: a mode byte, then the body. Mode bits 0-1: batch, identify, track, webhook; bit 2:
//! the body is gzipped here first, so that the decoder sees valid gzip of fuzzed bytes; bit 3:
//! the body is handed to the decoder as gzip as it is (mostly corrupt); bit 4: tiny limits.
#![no_main]

use std::io::Write;

use bytes::Bytes;
use iterable_lists_fuzz::{TINY, check_parsed, check_refusal};
use libfuzzer_sys::fuzz_target;
use server::ingest::{CallKind, IngestError, IngestLimits, decode_body, parse_tracking};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let kind = match mode & 3 {
        0 => CallKind::Batch,
        1 => CallKind::Identify,
        2 => CallKind::Track,
        _ => CallKind::Webhook,
    };
    let limits = if mode & 16 != 0 {
        TINY
    } else {
        IngestLimits::default()
    };
    let max = match kind {
        CallKind::Identify | CallKind::Track => limits.max_call_bytes,
        _ => limits.max_batch_bytes,
    };
    let gzipped = mode & 4 != 0;
    let (encoding, raw) = if gzipped {
        (Some("gzip"), gzip(body))
    } else if mode & 8 != 0 {
        (Some("x-gzip, identity"), body.to_vec())
    } else {
        (None, body.to_vec())
    };
    let decoded = match decode_body(encoding, Bytes::from(raw), max) {
        Ok(decoded) => decoded,
        Err(err) => {
            check_refusal(&err);
            if gzipped {
                assert!(body.len() > max, "valid gzip refused: {err:?}");
                assert!(matches!(err, IngestError::BodyTooLarge { .. }));
            }
            return;
        }
    };
    assert!(decoded.len() <= max);
    if gzipped {
        assert_eq!(&decoded[..], body, "gzip round trip");
    }
    match parse_tracking(kind, &decoded, &limits) {
        Ok(parsed) => check_parsed(kind, &decoded, &parsed),
        Err(err) => check_refusal(&err),
    }
});

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).expect("writing to a Vec");
    encoder.finish().expect("writing to a Vec")
}
