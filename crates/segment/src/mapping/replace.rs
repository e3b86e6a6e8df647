//! `@replace`: literal (regex-escaped) search and replace with JavaScript's `g` and `i` flags
//! and `String#replace` replacement patterns (`$$`, `$&`, `` $` ``, `$'`).

/// Most UTF-16 units mapping-kit allows in a pattern or a replacement.
pub(crate) const MAX_LENGTH: usize = 10;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Pass {
    pattern: String,
    /// The pattern's characters folded as an `i` regex folds them.
    folded: Vec<char>,
    replacement: String,
}

impl Pass {
    fn new(pattern: &str, replacement: &str) -> Self {
        Self {
            pattern: pattern.to_owned(),
            folded: pattern.chars().map(canonicalize).collect(),
            replacement: replacement.to_owned(),
        }
    }
}

/// A compiled `@replace`: one pass, and a second one when `pattern2` is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Replace {
    first: Pass,
    second: Option<Pass>,
    global: bool,
    ignore_case: bool,
}

impl Replace {
    pub(crate) fn new(
        pattern: &str,
        replacement: &str,
        second: Option<(&str, &str)>,
        global: bool,
        ignore_case: bool,
    ) -> Self {
        Self {
            first: Pass::new(pattern, replacement),
            second: second.map(|(p, r)| Pass::new(p, r)),
            global,
            ignore_case,
        }
    }

    pub(crate) fn apply(&self, input: &str) -> String {
        let once = self.pass(&self.first, input);
        match &self.second {
            Some(second) => self.pass(second, &once),
            None => once,
        }
    }

    fn pass(&self, pass: &Pass, input: &str) -> String {
        let mut out = String::with_capacity(input.len());
        let mut pos = 0;
        while let Some((start, end)) = self.find(pass, input, pos) {
            out.push_str(&input[pos..start]);
            expand(&pass.replacement, input, start, end, &mut out);
            pos = end;
            if !self.global {
                break;
            }
        }
        out.push_str(&input[pos..]);
        out
    }

    /// The next match at or after byte `from`, as a byte range.
    fn find(&self, pass: &Pass, input: &str, from: usize) -> Option<(usize, usize)> {
        if pass.pattern.is_empty() {
            return None;
        }
        if !self.ignore_case {
            return input[from..]
                .find(pass.pattern.as_str())
                .map(|i| (from + i, from + i + pass.pattern.len()));
        }
        let rest = &input[from..];
        for (offset, _) in rest.char_indices() {
            let mut chars = rest[offset..].char_indices();
            let mut matched = true;
            let mut end = offset;
            for want in &pass.folded {
                match chars.next() {
                    Some((i, c)) if canonicalize(c) == *want => end = offset + i + c.len_utf8(),
                    _ => {
                        matched = false;
                        break;
                    }
                }
            }
            if matched {
                return Some((from + offset, from + end));
            }
        }
        None
    }
}

/// ECMAScript's Canonicalize for a non-Unicode `i` regex: simple upper-casing, unless it would
/// take more than one UTF-16 unit or turn a non-ASCII character into an ASCII one.
fn canonicalize(c: char) -> char {
    if c.len_utf16() != 1 {
        return c;
    }
    let mut upper = c.to_uppercase();
    match (upper.next(), upper.next()) {
        (Some(u), None) if u.len_utf16() == 1 && !((c as u32) >= 128 && (u as u32) < 128) => u,
        _ => c,
    }
}

/// GetSubstitution with no capture groups: `$$`, `$&`, `` $` `` and `$'` are special; any other
/// `$` (including `$1` and `$<`) stays as written.
fn expand(replacement: &str, input: &str, start: usize, end: usize, out: &mut String) {
    let mut chars = replacement.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        match chars.peek() {
            Some('$') => {
                out.push('$');
                chars.next();
            }
            Some('&') => {
                out.push_str(&input[start..end]);
                chars.next();
            }
            Some('`') => {
                out.push_str(&input[..start]);
                chars.next();
            }
            Some('\'') => {
                out.push_str(&input[end..]);
                chars.next();
            }
            _ => out.push('$'),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_like_javascript() {
        // (pattern, replacement, global, ignore_case, input, expected)
        let cases: &[(&str, &str, bool, bool, &str, &str)] = &[
            (
                "_",
                "",
                true,
                false,
                "nomore_under_score",
                "nomoreunderscore",
            ),
            (
                "+",
                "_",
                true,
                false,
                "many+different+things",
                "many_different_things",
            ),
            (
                "+",
                "_",
                false,
                false,
                "many+different+things",
                "many_different+things",
            ),
            ("WW", "oo", true, false, "cWWl-story-ww", "cool-story-ww"),
            (
                "AaB",
                "nice",
                true,
                true,
                "aab-----AaB---aab",
                "nice-----nice---nice",
            ),
            (".", "!", true, false, "a.b.c", "a!b!c"),
            ("aa", "b", true, false, "aaaaa", "bba"),
            ("a", "[$&]", true, false, "cat", "c[a]t"),
            ("a", "$$", true, false, "cat", "c$t"),
            ("a", "$`", true, false, "cat", "cct"),
            ("a", "$'", true, false, "cat", "ctt"),
            ("a", "$1$<x>$", true, false, "cat", "c$1$<x>$t"),
            ("é", "e", true, true, "CafÉ café", "Cafe cafe"),
            ("ß", "ss", true, true, "Straße STRASSE", "Strasse STRASSE"),
            ("k", "x", true, true, "K \u{212A}", "x \u{212A}"),
            ("😀", "!", true, true, "a😀b", "a!b"),
            ("", "x", true, false, "abc", "abc"),
        ];
        for (pattern, replacement, global, icase, input, expected) in cases {
            let r = Replace::new(pattern, replacement, None, *global, *icase);
            assert_eq!(
                r.apply(input),
                *expected,
                "{pattern:?} -> {replacement:?} in {input:?}"
            );
        }
    }

    #[test]
    fn second_pass_runs_on_the_first_result() {
        let r = Replace::new("-", " ", Some(("great", "awesome")), true, false);
        assert_eq!(r.apply("something-great!"), "something awesome!");
        let r = Replace::new("a", "b", Some(("b", "c")), true, false);
        assert_eq!(r.apply("ab"), "cc");
    }
}
