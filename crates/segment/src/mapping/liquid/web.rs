//! The HTML and URL filters' text work, as LiquidJS does it: escaping, tag stripping,
//! `encodeURIComponent`/`encodeURI`/`decodeURIComponent`, slugs.

use super::jsval::Js;

pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub(crate) fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    'outer: while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        for (entity, c) in [
            ("&amp;", '&'),
            ("&lt;", '<'),
            ("&gt;", '>'),
            ("&#34;", '"'),
            ("&#39;", '\''),
        ] {
            if rest[i..].starts_with(entity) {
                out.push(c);
                rest = &rest[i + entity.len()..];
                continue 'outer;
            }
        }
        out.push('&');
        rest = &rest[i + 1..];
    }
    out.push_str(rest);
    out
}

/// LiquidJS's `strip_html`: script and style blocks, comments and tags go; an unclosed opener
/// stays as text.
pub(crate) fn strip_html(s: &str) -> String {
    let mut blocks: Vec<(&str, &str)> = vec![
        ("<script", "</script>"),
        ("<style", "</style>"),
        ("<!--", "-->"),
        ("<", ">"),
    ];
    let mut out = String::new();
    let mut i = 0;
    while i < s.len() {
        let Some(lt) = s[i..].find('<').map(|p| p + i) else {
            out.push_str(&s[i..]);
            return out;
        };
        out.push_str(&s[i..lt]);
        let mut advanced = false;
        let mut k = 0;
        while k < blocks.len() {
            let (opener, closer) = blocks[k];
            if !s[lt..].starts_with(opener) {
                k += 1;
                continue;
            }
            if let Some(e) = s[lt + opener.len()..].find(closer) {
                i = lt + opener.len() + e + closer.len();
                advanced = true;
                break;
            }
            blocks.remove(k);
        }
        if !advanced {
            out.push('<');
            i = lt + 1;
        }
    }
    out
}

/// Characters `encodeURIComponent` leaves alone (besides alphanumerics).
pub(crate) const COMPONENT: &str = "-_.!~*'()";
/// Characters `encodeURI` leaves alone (besides alphanumerics).
pub(crate) const URI: &str = "-_.!~*'();/?:@&=+$,#";

pub(crate) fn encode_uri(s: &str, keep: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || keep.contains(c) {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

pub(crate) fn cgi_escape(s: &str) -> String {
    let mut out = String::new();
    for c in encode_uri(s, COMPONENT).replace("%20", "+").chars() {
        match c {
            '!' | '\'' | '(' | ')' | '*' => out.push_str(&format!("%{:X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// `decodeURIComponent`: a malformed escape throws `URIError: URI malformed`.
pub(crate) fn url_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match hex {
                Some(b) => {
                    out.push(b);
                    i += 3;
                }
                None => return Err("URI malformed".to_owned()),
            }
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "URI malformed".to_owned())
}

pub(crate) fn slugify(s: &str, args: &[Js]) -> String {
    let mode = args
        .first()
        .map_or_else(|| "default".to_owned(), Js::string);
    let cased = args
        .get(1)
        .is_some_and(|c| !matches!(c, Js::Nil | Js::Bool(false)));
    let keep: fn(char) -> bool = match mode.as_str() {
        "raw" => |c| !c.is_whitespace(),
        "pretty" => |c| c.is_alphanumeric() || "._~!$&'()+,;=@".contains(c),
        "ascii" => |c| c.is_ascii_alphanumeric(),
        "none" => |_| true,
        _ => |c| c.is_alphanumeric(),
    };
    let mut out = String::new();
    let mut in_gap = false;
    for c in s.chars() {
        if keep(c) {
            out.push(c);
            in_gap = false;
        } else if !in_gap {
            out.push('-');
            in_gap = true;
        }
    }
    let out = if mode == "none" {
        out
    } else {
        out.trim_start_matches('-').to_owned()
    };
    let out = if mode == "none" {
        out
    } else {
        out.strip_suffix('-').map_or(out.clone(), str::to_owned)
    };
    if cased { out } else { out.to_lowercase() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_html_keeps_unclosed_openers() {
        assert_eq!(
            strip_html("a<b>c</b><script>x</script>d<!-- y -->e<f"),
            "acde<f"
        );
    }
}
