//! What a webhook's signature signs: the hex HMAC-SHA1 of the whole body, or, as Segment's
//! Webhooks (Actions) destination signs a batch, of its first event only.

use ring::hmac;

use super::error::IngestError;

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
///
/// [`decode_body`]: super::decode_body
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::message_id::push_hex;

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
}
