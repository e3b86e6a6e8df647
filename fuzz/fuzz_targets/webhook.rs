//! Segment's Webhooks destination: the signature check (`verify_signature`) and the body
//! reading (`parse_webhook`), with Segment's limits and with tiny ones.
//!
//! Input: a byte n, n bytes of shared secret, a byte m, m bytes of `X-Signature`, then the
//! body. Besides the fuzzed signature, the body's genuine HMAC-SHA1 must pass and the same
//! HMAC under another secret must not.
#![no_main]

use iterable_lists_fuzz::{TINY, check_parsed, check_refusal};
use libfuzzer_sys::fuzz_target;
use ring::hmac;
use server::ingest::{CallKind, IngestLimits, parse_webhook, verify_signature};

fuzz_target!(|data: &[u8]| {
    let Some((secret, rest)) = take(data) else {
        return;
    };
    let Some((signature, body)) = take(rest) else {
        return;
    };
    if let Err(err) = verify_signature(secret, body, std::str::from_utf8(signature).ok()) {
        check_refusal(&err);
    }
    let genuine = hex(hmac::sign(&hmac_key(secret), body).as_ref());
    assert!(verify_signature(secret, body, Some(&genuine)).is_ok());
    let mut other = secret.to_vec();
    other.push(b'!');
    assert!(verify_signature(&other, body, Some(&genuine)).is_err());

    for limits in [IngestLimits::default(), TINY] {
        match parse_webhook(body, &limits) {
            Ok(parsed) => check_parsed(CallKind::Webhook, body, &parsed),
            Err(err) => check_refusal(&err),
        }
    }
});

/// A length byte and that many bytes (fewer if the input ends), and the rest.
fn take(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let (&len, rest) = data.split_first()?;
    Some(rest.split_at(usize::from(len).min(rest.len())))
}

fn hmac_key(secret: &[u8]) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
