//! Segment's `get`: its path syntax (dots, `[0]`, `['quoted key']`) and its walk
//! `current && current[key]`, which hands back a falsy intermediate value as it is.

use std::borrow::Cow;

use super::value::{Found, Handle, Val, string_property};

/// A tokenised path, ready to walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Path {
    tokens: Vec<String>,
}

impl Path {
    /// The path as `get` receives it (no `$.` handling).
    pub(crate) fn parse(path: &str) -> Self {
        Self {
            tokens: tokenize(path),
        }
    }

    /// The path of a `@path` or `@arrayPath` directive: the first `$.` is deleted first.
    pub(crate) fn for_directive(path: &str) -> Self {
        Self::parse(&strip_dollar(path))
    }

    #[cfg(test)]
    pub(crate) fn tokens(&self) -> &[String] {
        &self.tokens
    }

    /// Walks the path from `root`.
    pub(crate) fn get<'s, 'a>(&self, root: Handle<'s, 'a>) -> Found<'s, 'a> {
        let mut current = Found::At(root);
        for token in &self.tokens {
            if !current.handle().view().truthy() {
                return current;
            }
            current = match current {
                Found::At(h) => h.property(token),
                Found::Made(Val::Str(s)) => Found::Made(string_property(&s, token)),
                Found::Made(_) => Found::Made(Val::Undef),
            };
        }
        current
    }
}

/// `path.replace('$.', '')`: deletes the first occurrence of `$.`, wherever it is.
pub(crate) fn strip_dollar(path: &str) -> Cow<'_, str> {
    match path.find("$.") {
        Some(i) => Cow::Owned(format!("{}{}", &path[..i], &path[i + 2..])),
        None => Cow::Borrowed(path),
    }
}

fn quote_or_digit(b: u8) -> bool {
    b == b'"' || b == b'\'' || b.is_ascii_digit()
}

/// Splits on `.`, on `[` followed by a quote or digit, and on a run of `]` preceded by a quote
/// or digit; drops empty pieces, then removes every quote from the rest.
fn tokenize(path: &str) -> Vec<String> {
    let bytes = path.as_bytes();
    let mut tokens = Vec::new();
    let mut push = |piece: &str| {
        if !piece.is_empty() {
            tokens.push(piece.replace(['\'', '"'], ""));
        }
    };
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let width =
            if b == b'.' || (b == b'[' && bytes.get(i + 1).copied().is_some_and(quote_or_digit)) {
                1
            } else if b == b']' && i > 0 && quote_or_digit(bytes[i - 1]) {
                bytes[i..].iter().take_while(|&&c| c == b']').count()
            } else {
                0
            };
        if width > 0 {
            push(&path[start..i]);
            i += width;
            start = i;
        } else {
            i += 1;
        }
    }
    push(&path[start..]);
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tokenises_like_segment_get() {
        let cases: &[(&str, &[&str])] = &[
            ("a.b.c", &["a", "b", "c"]),
            ("a.b[0].c", &["a", "b", "0", "c"]),
            ("a['x y']", &["a", "x y"]),
            ("a[\"x\"].b", &["a", "x", "b"]),
            ("a[b]", &["a[b]"]),
            ("a[b1]", &["a[b1"]),
            ("a[0]]]", &["a", "0"]),
            ("a['']", &["a", ""]),
            ("a['x.y']", &["a", "x", "y"]),
            ("", &[]),
            (".", &[]),
            ("..a..", &["a"]),
            ("$", &["$"]),
            (
                "integrations.Actions Amplitude.session_id",
                &["integrations", "Actions Amplitude", "session_id"],
            ),
            ("é.ü[1]", &["é", "ü", "1"]),
        ];
        for (path, expected) in cases {
            assert_eq!(Path::parse(path).tokens(), *expected, "for {path:?}");
        }
    }

    #[test]
    fn strips_the_first_dollar_dot_anywhere() {
        assert_eq!(strip_dollar("$.a.b"), "a.b");
        assert_eq!(strip_dollar("a.$.b"), "a.b");
        assert_eq!(strip_dollar("$.a.$.b"), "a.$.b");
        assert_eq!(strip_dollar("$"), "$");
        assert_eq!(strip_dollar("$."), "");
    }

    #[test]
    fn walks_like_javascript() {
        let event = json!({
            "a": {"b": "x"},
            "zero": 0,
            "empty": "",
            "no": false,
            "nil": null,
            "s": "héllo",
            "arr": [10, {"k": "v"}],
        });
        let cases = [
            ("a.b", Some(json!("x"))),
            ("a.missing", None),
            ("a.b.c", None),
            ("zero.x", Some(json!(0))),
            ("empty.x", Some(json!(""))),
            ("no.x", Some(json!(false))),
            ("nil.x", Some(json!(null))),
            ("missing.x.y", None),
            ("s.length", Some(json!(5))),
            ("s.1", Some(json!("é"))),
            ("s.length.x", None),
            ("arr.length", Some(json!(2))),
            ("arr[1].k", Some(json!("v"))),
            ("arr.01", None),
            ("arr.2", None),
            ("", Some(event.clone())),
        ];
        for (path, expected) in cases {
            let got = Path::parse(path)
                .get(Handle::Json(&event))
                .into_val()
                .to_json();
            assert_eq!(got, expected, "for {path:?}");
        }
    }
}
