//! Iterable's identity rules: email syntax (after Apache Commons EmailValidator), lowercasing,
//! and userId limits (at most 52 printable ASCII characters, no trailing space).

use std::borrow::Cow;

/// The longest userId Iterable accepts.
pub const MAX_USER_ID_LEN: usize = 52;

/// Characters that may not appear unquoted in the local part (Commons' SPECIAL_CHARS).
fn is_special(c: char) -> bool {
    c.is_control() || c.is_whitespace() || "()<>@,;:\\\".[]".contains(c)
}

/// One dot-separated word of the local part: unquoted characters, `\x` escapes and
/// apostrophes, or a quoted string.
fn valid_local_word(w: &str) -> bool {
    if w.is_empty() {
        return false;
    }
    if w.len() >= 2 && w.starts_with('"') && w.ends_with('"') {
        let inner = &w[1..w.len() - 1];
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' if chars.next().is_none() => return false,
                '"' => return false,
                _ => {}
            }
        }
        return true;
    }
    let mut chars = w.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if chars.next().is_none() {
                return false;
            }
        } else if c != '\'' && is_special(c) {
            return false;
        }
    }
    true
}

fn valid_local_part(local: &str) -> bool {
    // The common case: plain ASCII words separated by single dots, no quotes or escapes.
    if !local.is_empty()
        && local.len() <= 64
        && local
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"[]".contains(&b))
    {
        return !local.starts_with('.') && !local.ends_with('.') && !local.contains("..");
    }
    // Quoted words may contain dots, so split only outside quotes.
    if local.is_empty() || local.chars().count() > 64 {
        return false;
    }
    let mut start = 0;
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in local.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '"' => in_quotes = !in_quotes,
            '.' if !in_quotes => {
                if !valid_local_word(&local[start..i]) {
                    return false;
                }
                start = i + 1;
            }
            _ => {}
        }
    }
    !in_quotes && valid_local_word(&local[start..])
}

fn valid_label(label: &str) -> bool {
    if label.is_ascii() {
        return (1..=63).contains(&label.len())
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    }
    let n = label.chars().count();
    (1..=63).contains(&n)
        && !label.starts_with('-')
        && !label.ends_with('-')
        && label.chars().all(|c| c.is_alphanumeric() || c == '-')
}

/// A top-level domain: letters only (at least two), or an IDN `xn--` label.
fn valid_tld(tld: &str) -> bool {
    if tld.len() > 4 && tld[..4].eq_ignore_ascii_case("xn--") {
        let puny = &tld[4..];
        return puny.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    }
    tld.chars().count() >= 2 && tld.chars().all(char::is_alphabetic)
}

fn valid_ipv4(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 4
        && parts.iter().all(|p| {
            !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) && {
                p.parse::<u16>().map(|v| v <= 255).unwrap_or(false)
            }
        })
}

fn valid_domain(domain: &str) -> bool {
    if let Some(inner) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
        return valid_ipv4(inner) || inner.parse::<std::net::Ipv6Addr>().is_ok();
    }
    if domain.len() > 253 {
        return false;
    }
    let Some((_, tld)) = domain.rsplit_once('.') else {
        return false;
    };
    domain.split('.').all(valid_label) && valid_tld(tld)
}

/// True when Iterable would accept `email` as an address: a valid local part, one `@`
/// outside quotes, and a host name with a plausible top-level domain (or an IP literal).
pub fn is_valid_email(email: &str) -> bool {
    if email.is_empty() || email.ends_with('.') || email.len() > 254 {
        return false;
    }
    // Commons splits at the last '@' ("^(.+)@(\S+)$").
    let Some(at) = email.rfind('@') else {
        return false;
    };
    let (local, domain) = (&email[..at], &email[at + 1..]);
    !domain.is_empty()
        && !domain.chars().any(char::is_whitespace)
        && valid_local_part(local)
        && valid_domain(domain)
}

/// Lowercases an email the way Iterable stores it, without allocating when it is already lowercase.
pub fn normalize_email(email: &str) -> Cow<'_, str> {
    if email.is_ascii() {
        if email.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(email.to_ascii_lowercase())
        } else {
            Cow::Borrowed(email)
        }
    } else {
        let lower = email.to_lowercase();
        if lower == email {
            Cow::Borrowed(email)
        } else {
            Cow::Owned(lower)
        }
    }
}

/// Why a userId is refused, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserIdProblem {
    Empty,
    TooLong,
    NotPrintableAscii,
    TrailingSpace,
}

impl std::fmt::Display for UserIdProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            UserIdProblem::Empty => "is empty",
            UserIdProblem::TooLong => "is longer than 52 characters",
            UserIdProblem::NotPrintableAscii => "contains non-ASCII or non-printable characters",
            UserIdProblem::TrailingSpace => "ends with a space",
        })
    }
}

/// Checks a userId against Iterable's documented rules.
pub fn check_user_id(user_id: &str) -> Result<(), UserIdProblem> {
    if user_id.is_empty() {
        Err(UserIdProblem::Empty)
    } else if !user_id.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        Err(UserIdProblem::NotPrintableAscii)
    } else if user_id.len() > MAX_USER_ID_LEN {
        Err(UserIdProblem::TooLong)
    } else if user_id.ends_with(' ') {
        Err(UserIdProblem::TrailingSpace)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn email_cases() {
        let cases: &[(&str, bool)] = &[
            ("user@example.com", true),
            ("MyUser@Example.COM", true),
            ("first.last+tag@sub.example.co.uk", true),
            ("o'brien@example.ie", true),
            ("\"quoted user\"@example.com", true),
            ("user@[127.0.0.1]", true),
            ("user@xn--bcher-kva.example", true),
            ("jörg@bücher.de", true),
            // Rejected in Iterable's documentation and recordings.
            ("user@", false),
            ("bad@", false),
            ("foo@", false),
            ("000", false),
            ("", false),
            ("user @example.com", false),
            // Other malformed shapes.
            ("@example.com", false),
            ("user@example", false),
            ("user@example.c", false),
            ("user@example.123", false),
            ("user@exa mple.com", false),
            ("user@-example.com", false),
            ("user@example-.com", false),
            ("user@example..com", false),
            ("user@example.com.", false),
            ("user..name@example.com", false),
            (".user@example.com", false),
            ("user.@example.com", false),
            ("us(er@example.com", false),
            ("user@ex_ample.com", false),
            ("a@b@example.com", false),
            ("user@[300.1.1.1]", false),
        ];
        for (email, ok) in cases {
            assert_eq!(is_valid_email(email), *ok, "{email:?}");
        }
    }

    #[test]
    fn long_local_part_is_rejected() {
        let local = "a".repeat(65);
        assert!(!is_valid_email(&format!("{local}@example.com")));
        assert!(is_valid_email(&format!("{}@example.com", "a".repeat(64))));
    }

    #[test]
    fn normalize_lowercases_and_borrows_when_possible() {
        assert_eq!(normalize_email("MyUser@Example.com"), "myuser@example.com");
        assert!(matches!(normalize_email("a@b.co"), Cow::Borrowed(_)));
        assert_eq!(normalize_email("JÖRG@BÜCHER.DE"), "jörg@bücher.de");
    }

    #[test]
    fn user_id_cases() {
        let long = "x".repeat(53);
        let max = "x".repeat(52);
        let cases: Vec<(&str, Result<(), UserIdProblem>)> = vec![
            ("user-1", Ok(())),
            (" leading", Ok(())),
            (&max, Ok(())),
            ("", Err(UserIdProblem::Empty)),
            (&long, Err(UserIdProblem::TooLong)),
            ("trailing ", Err(UserIdProblem::TrailingSpace)),
            ("tab\tid", Err(UserIdProblem::NotPrintableAscii)),
            ("ünï", Err(UserIdProblem::NotPrintableAscii)),
        ];
        for (id, want) in cases {
            assert_eq!(check_user_id(id), want, "{id:?}");
        }
    }

    proptest! {
        #[test]
        fn normalized_valid_email_stays_valid(local in "[A-Za-z0-9._%+-]{1,20}", host in "[A-Za-z0-9]{1,10}", tld in "[A-Za-z]{2,6}") {
            let email = format!("{local}@{host}.{tld}");
            let lower = normalize_email(&email);
            prop_assert_eq!(is_valid_email(&email), is_valid_email(&lower));
            prop_assert_eq!(normalize_email(&lower), lower.clone());
        }

        #[test]
        fn printable_short_ids_without_trailing_space_are_valid(id in "[ -~]{0,51}[!-~]") {
            prop_assert_eq!(check_user_id(&id), Ok(()));
        }
    }
}
