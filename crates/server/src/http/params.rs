//! Values from the request line: a path segment and a query parameter, percent-decoded.
//!
//! A path segment is decoded as a URI path (RFC 3986): `%XX` escapes only, so a `+` in
//! `/v1/events/{messageId}` is a plus sign (`a+b` finds the event `a+b`; a space is `%20`). A
//! query value is decoded as an HTML form (`application/x-www-form-urlencoded`, what browsers and
//! most clients send after `?`): `+` is a space there, and a plus sign is `%2B`. In both, an
//! invalid escape (`%zz`, a `%` at the end) is kept as it is, and bytes that are not UTF-8 become
//! U+FFFD.

use std::borrow::Cow;

use hyper::Uri;
use percent_encoding::percent_decode_str;

/// The last segment of the path, as sent (still percent-encoded). Routes that end in a
/// parameter (`/v1/events/{messageId}`) find it there: the router matched a non-empty segment.
pub(crate) fn last_segment(uri: &Uri) -> &str {
    uri.path().rsplit('/').next().unwrap_or_default()
}

/// A path segment, percent-decoded (`+` stays a plus sign).
pub(crate) fn path_segment(raw: &str) -> String {
    percent_decode_str(raw).decode_utf8_lossy().into_owned()
}

/// The value of the first `name` parameter of a query string, form-decoded (`+` is a space).
/// Names are compared as sent.
pub(crate) fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then(|| form_value(v))
    })
}

/// A query value, form-decoded: `+` is a space, then `%XX` escapes.
fn form_value(raw: &str) -> String {
    let spaced = if raw.contains('+') {
        Cow::Owned(raw.replace('+', " "))
    } else {
        Cow::Borrowed(raw)
    };
    percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_form_decoded() {
        let cases = [
            ("a=1&destination=pr%6Fd", Some("prod")),
            ("destination=a+b%2Bc", Some("a b+c")),
            ("destination=%zz%", Some("%zz%")),
            ("destination=%4", Some("%4")),
            ("destination=%ff", Some("\u{fffd}")),
            ("destination", Some("")),
            ("destination=x&destination=y", Some("x")),
            ("a=1", None),
            ("Destination=x", None),
        ];
        for (query, want) in cases {
            assert_eq!(
                query_param(Some(query), "destination").as_deref(),
                want,
                "{query}"
            );
        }
        assert_eq!(query_param(None, "destination"), None);
    }

    #[test]
    fn path_segments_keep_plus_signs() {
        let cases = [
            ("a+b", "a+b"),
            ("a%2Bb", "a+b"),
            ("a%20b", "a b"),
            ("a%2Fb", "a/b"),
            ("a%2fb%zz%", "a/b%zz%"),
            ("%F0%9F%98%80", "\u{1f600}"),
            ("%ff", "\u{fffd}"),
            ("", ""),
        ];
        for (raw, want) in cases {
            assert_eq!(path_segment(raw), want, "{raw}");
        }
    }

    #[test]
    fn the_last_segment_is_taken_as_sent() {
        let uri = |s: &str| s.parse::<Uri>().expect("uri");
        assert_eq!(last_segment(&uri("/v1/events/a%2Fb+c?x=1")), "a%2Fb+c");
        assert_eq!(last_segment(&uri("/v1/webhook/prod")), "prod");
        assert_eq!(last_segment(&uri("/")), "");
    }
}
