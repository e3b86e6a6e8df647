//! Request ids. Every request gets one: the client's `x-request-id` when it sent a usable one
//! (1 to 128 visible ASCII characters, so that a proxy's id carries through and logs on both
//! sides match), else a new UUID v4. The reply carries it back in `x-request-id`, whatever the
//! route or the answer, and handlers (and the request spans of the logs) find it in the
//! request's extensions as tower-http's [`RequestId`](tower_http::request_id::RequestId).

use hyper::HeaderMap;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestId, SetRequestId};

/// The header that carries the id, both ways.
pub(crate) const HEADER: &str = "x-request-id";

/// The longest id taken from a client, in bytes; a longer one is replaced.
pub(crate) const MAX_CLIENT_ID_BYTES: usize = 128;

/// `inner` with ids set on its requests and returned on its replies.
pub(crate) fn with_request_ids<S>(
    inner: S,
) -> SetRequestId<PropagateRequestId<S>, MakeRequestUuid> {
    SetRequestId::x_request_id(PropagateRequestId::x_request_id(inner), MakeRequestUuid)
}

/// Removes the client's `x-request-id` when it is not one to keep (empty, too long, or with
/// spaces, controls or non-ASCII bytes that would garble a log line), so that a new one is made.
pub(crate) fn drop_unusable_client_id(headers: &mut HeaderMap) {
    let usable = |id: &[u8]| {
        (1..=MAX_CLIENT_ID_BYTES).contains(&id.len())
            && id.iter().all(|b| (0x21..=0x7e).contains(b))
    };
    if headers.get(HEADER).is_some_and(|v| !usable(v.as_bytes())) {
        headers.remove(HEADER);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_visible_ascii_ids_are_kept() {
        let long = "x".repeat(MAX_CLIENT_ID_BYTES);
        let too_long = "x".repeat(MAX_CLIENT_ID_BYTES + 1);
        let cases: [(&[u8], bool); 7] = [
            (b"3f2c-77:req.1_A", true),
            (long.as_bytes(), true),
            (too_long.as_bytes(), false),
            (b"", false),
            (b"a b", false),
            (b"a\tb", false),
            (b"caf\xc3\xa9", false),
        ];
        for (id, kept) in cases {
            let mut headers = HeaderMap::new();
            headers.insert(
                HEADER,
                hyper::header::HeaderValue::from_bytes(id).expect("value"),
            );
            drop_unusable_client_id(&mut headers);
            assert_eq!(headers.contains_key(HEADER), kept, "{id:?}");
        }
        let mut none = HeaderMap::new();
        drop_unusable_client_id(&mut none);
        assert!(none.is_empty());
    }
}
