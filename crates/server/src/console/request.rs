//! What the console reads of a request: its session cookie, whether it came over TLS, and a
//! form body (`application/x-www-form-urlencoded`, size-limited).

use axum::body::Body;
use http_body_util::{BodyExt, Limited};
use hyper::HeaderMap;
use hyper::header::COOKIE;
use percent_encoding::percent_decode_str;

/// The session cookie's name.
pub(crate) const COOKIE_NAME: &str = "il_console";

/// The largest form body the console reads (its forms carry a token and a few fields).
pub(crate) const MAX_FORM: usize = 16 * 1024;

/// The session cookie's value, if the request carries one.
pub(crate) fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE_NAME).then_some(value.trim())
        })
}

/// Whether the browser reached the service over TLS. The service itself listens on plain
/// HTTP, so TLS is a proxy's (a load balancer, nginx) that says so with
/// `X-Forwarded-Proto: https`; the cookie is then marked `Secure`. A client that claims it
/// falsely only gets a cookie its browser keeps for HTTPS.
pub(crate) fn over_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .next()
                .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
        })
}

/// A form's fields, in order.
#[derive(Debug, Default)]
pub(crate) struct Form(pub Vec<(String, String)>);

impl Form {
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Parses an `application/x-www-form-urlencoded` body (`+` is a space, then `%XX`).
    pub(crate) fn parse(body: &str) -> Self {
        Form(
            body.split('&')
                .filter(|kv| !kv.is_empty())
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    (decode(k), decode(v))
                })
                .collect(),
        )
    }
}

fn decode(raw: &str) -> String {
    percent_decode_str(&raw.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// Why a form body could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FormError {
    #[error("the form is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the form could not be read: {0}")]
    Read(String),
}

/// Reads a form body of at most [`MAX_FORM`] bytes.
pub(crate) async fn read_form(body: Body) -> Result<Form, FormError> {
    read_form_limited(body, MAX_FORM).await
}

/// Reads a form body of at most `limit` bytes.
pub(crate) async fn read_form_limited(body: Body, limit: usize) -> Result<Form, FormError> {
    let bytes = Limited::new(body, limit)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                FormError::TooLarge(limit)
            } else {
                FormError::Read(e.to_string())
            }
        })?
        .to_bytes();
    Ok(Form::parse(&String::from_utf8_lossy(&bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(
            COOKIE,
            HeaderValue::from_static("a=1; il_console=abc ; b=2"),
        );
        assert_eq!(session_cookie(&h), Some("abc"));
        let mut h = HeaderMap::new();
        h.append(COOKIE, HeaderValue::from_static("x=1"));
        h.append(COOKIE, HeaderValue::from_static("il_console=def"));
        assert_eq!(session_cookie(&h), Some("def"));
        assert_eq!(session_cookie(&HeaderMap::new()), None);
    }

    #[test]
    fn forms_are_decoded() {
        let f = Form::parse("csrf=a%2Bb&q=jane+doe%40x.com&empty=&flag");
        assert_eq!(f.get("csrf"), Some("a+b"));
        assert_eq!(f.get("q"), Some("jane doe@x.com"));
        assert_eq!(f.get("empty"), Some(""));
        assert_eq!(f.get("flag"), Some(""));
        assert_eq!(f.get("nope"), None);
    }

    #[test]
    fn tls_is_what_the_proxy_says() {
        let mut h = HeaderMap::new();
        assert!(!over_tls(&h));
        h.insert("x-forwarded-proto", HeaderValue::from_static("HTTPS, http"));
        assert!(over_tls(&h));
        h.insert("x-forwarded-proto", HeaderValue::from_static("http"));
        assert!(!over_tls(&h));
    }
}
