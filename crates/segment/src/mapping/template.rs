//! `@template`: every `{{{path}}}` is replaced first, then every `{{path}}` of the result, by
//! the JavaScript string of the value found; nothing is HTML-escaped.

use super::js;
use super::path::Path;
use super::value::Handle;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Slot(Path),
}

/// A template, parsed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    /// Pieces of the `{{{…}}}` pass when it has slots (the `{{…}}` pass then runs on its output
    /// at render time), otherwise pieces of the `{{…}}` pass over the template itself.
    pieces: Vec<Piece>,
    second_pass: bool,
}

impl Template {
    pub(crate) fn parse(src: &str) -> Self {
        let (pieces, slots) = split(src, 3);
        if slots > 0 {
            Self {
                pieces,
                second_pass: true,
            }
        } else {
            let (pieces, _) = split(src, 2);
            Self {
                pieces,
                second_pass: false,
            }
        }
    }

    pub(crate) fn render(&self, payload: Handle<'_, '_>) -> String {
        let first = render_pieces(&self.pieces, payload);
        if self.second_pass {
            let (pieces, _) = split(&first, 2);
            render_pieces(&pieces, payload)
        } else {
            first
        }
    }
}

fn render_pieces(pieces: &[Piece], payload: Handle<'_, '_>) -> String {
    let mut out = String::new();
    for piece in pieces {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Slot(path) => js::push_string(path.get(payload).handle(), &mut out),
        }
    }
    out
}

/// Splits on the regular expression `\{n}([^}]+)\}n` (n = `braces`), matched globally from left
/// to right; returns the pieces and how many slots were found.
fn split(src: &str, braces: usize) -> (Vec<Piece>, usize) {
    let bytes = src.as_bytes();
    let mut pieces = Vec::new();
    let mut slots = 0;
    let mut text_start = 0;
    let mut i = 0;
    while i + 2 * braces < bytes.len() {
        if bytes[i..i + braces].iter().all(|&b| b == b'{') {
            let inner_start = i + braces;
            let inner_end = inner_start
                + bytes[inner_start..]
                    .iter()
                    .take_while(|&&b| b != b'}')
                    .count();
            let close_end = inner_end + braces;
            if inner_end > inner_start
                && close_end <= bytes.len()
                && bytes[inner_end..close_end].iter().all(|&b| b == b'}')
            {
                if text_start < i {
                    pieces.push(Piece::Text(src[text_start..i].to_owned()));
                }
                pieces.push(Piece::Slot(Path::parse(js::trim(
                    &src[inner_start..inner_end],
                ))));
                slots += 1;
                i = close_end;
                text_start = i;
                continue;
            }
        }
        i += 1;
    }
    if text_start < bytes.len() {
        pieces.push(Piece::Text(src[text_start..].to_owned()));
    }
    (pieces, slots)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_like_mapping_kit() {
        let event = json!({
            "who": "World",
            "user": {"name": "Ann", "age": 41.0, "tags": ["a", "b"], "o": {"x": 1}},
            "html": "<b>Hi</b>",
            "nil": null,
            "braces": "{{who}}",
            "big": 1e21,
            "f": 0.1,
        });
        let cases = [
            ("Hello, {{who}}!", "Hello, World!"),
            ("{{ user.name }} is {{user.age}}", "Ann is 41"),
            (
                "{{user.tags}}|{{user.o}}|{{nil}}|{{missing.x}}",
                "a,b|[object Object]||",
            ),
            ("{{html}} {{{html}}}", "<b>Hi</b> <b>Hi</b>"),
            ("{{{braces}}}", "World"),
            ("{{braces}}", "{{who}}"),
            ("{{big}} {{f}}", "1e+21 0.1"),
            // `[^}]+` may hold a `{`: the second `{{…}}` here is `{{{}}` with the path "{".
            ("{{}} {{{}}}", "{{}} }"),
            ("{{ }}", "[object Object]"),
            ("{{{{who}}}}", "}"),
            ("{{who}", "{{who}"),
            ("{who}}", "{who}}"),
            ("{{$.who}}", ""),
            ("{{user['name']}}", "Ann"),
            ("no placeholders", "no placeholders"),
            ("é{{who}}ü", "éWorldü"),
        ];
        for (src, expected) in cases {
            assert_eq!(
                Template::parse(src).render(Handle::Json(&event)),
                expected,
                "for {src:?}"
            );
        }
    }
}
