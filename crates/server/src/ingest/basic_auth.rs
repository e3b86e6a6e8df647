//! The write key of an `Authorization: Basic` header, as Segment's SDKs send it.

use base64::Engine as _;

use super::error::IngestError;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::test_support::KEY;

    fn b64(text: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(text)
    }

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
}
