//! How a non-200 answer from Iterable is classified: retryable, authentication, invalid list,
//! or permanent. Decided by HTTP status first, then `code`, then `msg`, never `code` alone.

use serde::Deserialize;

/// Iterable's error envelope; every key may be missing (bodies can be HTML or empty).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Envelope {
    pub msg: Option<String>,
    pub code: Option<String>,
}

impl Envelope {
    /// Reads a body leniently: anything that is not the JSON envelope gives an empty one.
    pub fn parse(body: &[u8]) -> Self {
        serde_json::from_slice(body).unwrap_or_default()
    }
}

/// What a caller should do about a failed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// 429, 5xx other than 501, timeouts and connection errors: try again later.
    Retryable,
    /// 401: the key is wrong; pause the destination, do not retry.
    Authentication,
    /// 400 with `invalidListId`: the list does not exist (or is not visible yet).
    InvalidList,
    /// Any other 4xx (and 501): retrying the same request cannot help.
    Permanent,
}

/// Classifies an HTTP answer by status and envelope.
pub fn classify_status(status: u16, envelope: &Envelope) -> ErrorClass {
    match status {
        401 => ErrorClass::Authentication,
        429 => ErrorClass::Retryable,
        501 => ErrorClass::Permanent,
        500..=599 => ErrorClass::Retryable,
        400 if envelope
            .msg
            .as_deref()
            .is_some_and(|m| m.contains("invalidListId"))
            || envelope.code.as_deref() == Some("error.lists.invalidListId") =>
        {
            ErrorClass::InvalidList
        }
        // Segment's framework also retries these.
        408 | 423 => ErrorClass::Retryable,
        _ => ErrorClass::Permanent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_table() {
        let invalid_list =
            br#"{"msg":"error.lists.invalidListId(77)","code":"Success","params":{"listId":77}}"#;
        let cases: &[(u16, &[u8], ErrorClass)] = &[
            (429, br#"{"msg":"Exceeded rate limit for endpoint: /api/lists/subscribe, project: 1 ","code":"RateLimitExceeded","params":{}}"#, ErrorClass::Retryable),
            (500, br#"{"msg":"x","code":"GenericError"}"#, ErrorClass::Retryable),
            (502, b"<html>Bad Gateway</html>", ErrorClass::Retryable),
            (503, b"", ErrorClass::Retryable),
            (501, b"", ErrorClass::Permanent),
            (401, br#"{"msg":"Invalid API key","code":"BadApiKey"}"#, ErrorClass::Authentication),
            (400, invalid_list, ErrorClass::InvalidList),
            (400, br#"{"msg":"[/api/lists] body: {}","code":"BadJsonBody"}"#, ErrorClass::Permanent),
            (404, b"<html>Action not found</html>", ErrorClass::Permanent),
            (409, b"", ErrorClass::Permanent),
            (408, b"", ErrorClass::Retryable),
        ];
        for (status, body, want) in cases {
            assert_eq!(
                classify_status(*status, &Envelope::parse(body)),
                *want,
                "{status}"
            );
        }
    }
}
