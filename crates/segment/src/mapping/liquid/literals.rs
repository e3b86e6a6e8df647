//! Integer literals the Liquid parser cannot hold. liquid-core reads a literal of digits as an
//! `i64` and panics when it does not fit (`{{ 99999999999999999999 }}`), so such a template is
//! refused before it reaches the parser. (LiquidJS would read it as an inexact JavaScript
//! number; a mapping has no use for one, and a clear refusal beats a wrong digit.)

/// The first integer literal inside `{{ … }}` or `{% … %}` markup (outside quoted strings) that
/// does not fit in 64 bits, with its sign.
pub(super) fn oversized_integer(source: &str) -> Option<String> {
    let bytes = source.as_bytes();
    let mut i = 0;
    let mut closing: Option<&[u8]> = None;
    let mut quote: Option<u8> = None;
    while i < bytes.len() {
        let b = bytes[i];
        match closing {
            None => {
                if b == b'{' && matches!(bytes.get(i + 1), Some(b'{') | Some(b'%')) {
                    closing = Some(if bytes[i + 1] == b'{' { b"}}" } else { b"%}" });
                    i += 2;
                    continue;
                }
            }
            Some(end) => {
                if let Some(q) = quote {
                    if b == q {
                        quote = None;
                    }
                } else if b == b'"' || b == b'\'' {
                    quote = Some(b);
                } else if bytes[i..].starts_with(end) {
                    closing = None;
                    i += 2;
                    continue;
                } else if b.is_ascii_digit() && starts_literal(bytes, i) {
                    let end_digits =
                        i + bytes[i..].iter().take_while(|c| c.is_ascii_digit()).count();
                    let is_float = bytes.get(end_digits) == Some(&b'.')
                        && bytes.get(end_digits + 1).is_some_and(u8::is_ascii_digit);
                    let negative = i > 0 && bytes[i - 1] == b'-';
                    let digits = &source[i..end_digits];
                    if !is_float && !fits_i64(digits, negative) {
                        return Some(format!("{}{digits}", if negative { "-" } else { "" }));
                    }
                    i = end_digits;
                    continue;
                }
            }
        }
        i += 1;
    }
    None
}

/// Whether the digit at `i` begins a number (not the tail of a name like `x2` or of a decimal).
fn starts_literal(bytes: &[u8], i: usize) -> bool {
    match i.checked_sub(1).map(|p| bytes[p]) {
        None => true,
        Some(p) => !(p.is_ascii_alphanumeric() || p == b'_' || p == b'.'),
    }
}

fn fits_i64(digits: &str, negative: bool) -> bool {
    let trimmed = digits.trim_start_matches('0');
    if trimmed.len() < 19 {
        return true;
    }
    if trimmed.len() > 19 {
        return false;
    }
    let limit = if negative {
        "9223372036854775808"
    } else {
        "9223372036854775807"
    };
    trimmed <= limit
}

#[cfg(test)]
mod tests {
    use super::oversized_integer;

    #[test]
    fn integers_past_64_bits_in_markup_are_found() {
        let cases: &[(&str, Option<&str>)] = &[
            ("{{ 9223372036854775807 }}", None),
            ("{{ 9223372036854775808 }}", Some("9223372036854775808")),
            ("{{ -9223372036854775808 }}", None),
            ("{{ -9223372036854775809 }}", Some("-9223372036854775809")),
            (
                "{{2222222222222222222222222222-}}",
                Some("2222222222222222222222222222"),
            ),
            (
                "{% if x > 99999999999999999999 %}y{% endif %}",
                Some("99999999999999999999"),
            ),
            ("{{ 00000000000000000000001 }}", None),
            ("{{ 99999999999999999999.5 }}", None),
            ("{{ x99999999999999999999 }}", None),
            ("{{ '99999999999999999999' }}", None),
            ("{{ \"a\" | append: \"99999999999999999999\" }}", None),
            ("text 99999999999999999999 outside markup", None),
            (
                "{{ a | plus: 12345678901234567890123 }}",
                Some("12345678901234567890123"),
            ),
        ];
        for (template, want) in cases {
            assert_eq!(oversized_integer(template).as_deref(), *want, "{template}");
        }
    }
}
