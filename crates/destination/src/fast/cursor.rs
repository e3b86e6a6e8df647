//! A reader over one JSON text for the fast paths: a single pass over the bytes, strings
//! borrowed unless they hold escapes, values the caller does not want skipped without being
//! built.
//!
//! It accepts only texts that serde_json's JSON tree (`serde_json::Value`, with this
//! workspace's features) also accepts, and reads the same strings from them. Where matching
//! serde_json exactly would take work the common case never needs, it gives up (`None`) and the
//! caller's general path decides:
//! - nesting deeper than [`MAX_DEPTH`] (serde_json refuses 128 levels);
//! - a `\u` escape of a UTF-16 surrogate that is not part of a well-formed pair;
//! - a number whose value could be near the ends of `f64`'s range (serde_json refuses
//!   what overflows): more than 300 integer digits, or an exponent giving zero, or a magnitude
//!   of 1e300 or over, or under 1e-300.
//!
//! Every reader returns `None` on text it does not accept; the cursor is then left somewhere
//! inside the text and is not to be used again.

use std::borrow::Cow;

use serde_json::{Map, Value};

/// How deep values may nest, counted from the cursor's start: at most this many objects and
/// arrays open at once.
pub const MAX_DEPTH: usize = 64;

/// The most integer digits a number may have (a number of 309 overflows `f64`).
const MAX_INTEGER_DIGITS: usize = 300;

/// Bytes that end a run of plain string content: the quote, the backslash, and the control
/// characters JSON does not allow raw.
static STOPS_STRING: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// How many bytes from the start of `bytes` are plain string content (up to the first quote,
/// backslash or control character, or the end): eight bytes at a time while eight are left.
/// The same set of bytes is what a JSON writer must escape (serde_json escapes exactly these),
/// so a string whose plain length is its length is written as it is (`crate::body`).
#[inline]
pub(crate) fn plain_len(bytes: &[u8]) -> usize {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);
    let mut i = 0;
    while let Some(chunk) = bytes.get(i..i + 8) {
        let w = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        // The high bit of each byte that is a quote, a backslash or under 0x20 (`v` has a zero
        // byte where `v - ONES` borrows into a high bit that `v` did not have). Bits can also be
        // set above such a byte, never below the first: the lowest is exact.
        let quote = w ^ (ONES * u64::from(b'"'));
        let backslash = w ^ (ONES * u64::from(b'\\'));
        let stops = (quote.wrapping_sub(ONES) & !quote
            | backslash.wrapping_sub(ONES) & !backslash
            | w.wrapping_sub(ONES * 0x20) & !w)
            & HIGHS;
        if stops != 0 {
            // Little-endian: the first byte in the text is the lowest.
            return i + (stops.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while bytes.get(i).is_some_and(|&b| !STOPS_STRING[usize::from(b)]) {
        i += 1;
    }
    i
}

/// A position in a JSON text.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    text: &'a str,
    i: usize,
    depth: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `text`.
    pub fn new(text: &'a str) -> Self {
        Cursor {
            text,
            i: 0,
            depth: 0,
        }
    }

    /// The byte offset of the cursor in the text.
    pub fn offset(&self) -> usize {
        self.i
    }

    /// The text from `start` to the cursor.
    pub fn since(&self, start: usize) -> Option<&'a str> {
        self.text.get(start..self.i)
    }

    #[inline]
    fn byte(&self) -> Option<u8> {
        self.text.as_bytes().get(self.i).copied()
    }

    /// Past JSON's whitespace (space, tab, line feed, carriage return), then the next byte.
    #[inline]
    pub fn peek(&mut self) -> Option<u8> {
        while let Some(b) = self.byte() {
            if !matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
                return Some(b);
            }
            self.i += 1;
        }
        None
    }

    /// Past whitespace and the byte `want`.
    #[inline]
    pub fn eat(&mut self, want: u8) -> Option<()> {
        (self.peek()? == want).then(|| self.i += 1)
    }

    /// Past `text`, if the text at the cursor starts with it (no whitespace skipped first).
    /// The caller knows what `text` is: a whole value read before, say (an object or `null`
    /// text that starts the rest is that value, as an object ends at its closing brace).
    #[inline]
    pub fn eat_text(&mut self, text: &str) -> bool {
        let hit = self
            .text
            .as_bytes()
            .get(self.i..)
            .is_some_and(|rest| rest.starts_with(text.as_bytes()));
        if hit {
            self.i += text.len();
        }
        hit
    }

    /// Nothing but whitespace left: the end of a whole text.
    pub fn end(&mut self) -> Option<()> {
        self.peek().is_none().then_some(())
    }

    /// A literal (`true`, `false`, `null`) at the cursor.
    fn literal(&mut self, word: &str) -> Option<()> {
        let rest = self.text.as_bytes().get(self.i..)?;
        rest.starts_with(word.as_bytes())
            .then(|| self.i += word.len())
    }

    /// `null`, if the next value is `null` (read), or `false` with the cursor before the value.
    #[inline]
    pub fn null(&mut self) -> Option<bool> {
        if self.peek()? == b'n' {
            self.literal("null")?;
            return Some(true);
        }
        Some(false)
    }

    /// A boolean, if the next value is one (read); `None` when it is of another kind or not
    /// JSON, with the cursor before the value in the first case.
    pub fn boolean(&mut self) -> Option<bool> {
        match self.peek()? {
            b't' => self.literal("true").map(|()| true),
            b'f' => self.literal("false").map(|()| false),
            _ => None,
        }
    }

    /// A string: borrowed from the text unless it holds escapes.
    #[inline]
    pub fn string(&mut self) -> Option<Cow<'a, str>> {
        if self.peek()? != b'"' {
            return None;
        }
        let start = self.i + 1;
        let bytes = self.text.as_bytes();
        let end = start + plain_len(bytes.get(start..)?);
        if bytes.get(end) == Some(&b'"') {
            self.i = end + 1;
            // The quote is ASCII: the slice falls on char boundaries.
            return self.text.get(start..end).map(Cow::Borrowed);
        }
        self.i = start;
        self.escaped().map(Cow::Owned)
    }

    /// The rest of a string that holds an escape (or a character JSON refuses), decoded.
    fn escaped(&mut self) -> Option<String> {
        let bytes = self.text.as_bytes();
        let mut out = String::new();
        loop {
            let run = self.i;
            self.i += plain_len(bytes.get(run..)?);
            out.push_str(self.text.get(run..self.i)?);
            match bytes.get(self.i)? {
                b'"' => {
                    self.i += 1;
                    return Some(out);
                }
                b'\\' => {
                    self.i += 1;
                    out.push(self.escape()?);
                }
                _ => return None, // a raw control character
            }
        }
    }

    /// A string, or `null` (read as `Some(None)`).
    pub fn string_or_null(&mut self) -> Option<Option<Cow<'a, str>>> {
        if self.null()? {
            return Some(None);
        }
        self.string().map(Some)
    }

    /// The character of the escape after a backslash.
    fn escape(&mut self) -> Option<char> {
        let c = self.byte()?;
        self.i += 1;
        Some(match c {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let unit = self.hex4()?;
                match unit {
                    0xD800..=0xDBFF => {
                        // Only a high surrogate followed by an escaped low one.
                        let rest = self.text.as_bytes().get(self.i..self.i + 2)?;
                        if rest != b"\\u" {
                            return None;
                        }
                        self.i += 2;
                        let low = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&low) {
                            return None;
                        }
                        char::from_u32(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00))?
                    }
                    0xDC00..=0xDFFF => return None,
                    _ => char::from_u32(unit)?,
                }
            }
            _ => return None,
        })
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.text.as_bytes().get(self.i..self.i + 4)?;
        let mut n = 0;
        for &d in digits {
            n = n * 16 + char::from(d).to_digit(16)?;
        }
        self.i += 4;
        Some(n)
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while self.byte().is_some_and(|b| b.is_ascii_digit()) {
            self.i += 1;
        }
        self.i - start
    }

    /// A number (JSON's grammar), checked but not converted.
    fn number(&mut self) -> Option<()> {
        let start = self.i;
        if self.byte() == Some(b'-') {
            self.i += 1;
        }
        match self.byte()? {
            b'0' => self.i += 1,
            b'1'..=b'9' => {
                if self.digits() > MAX_INTEGER_DIGITS {
                    return None;
                }
            }
            _ => return None,
        }
        if self.byte() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return None;
            }
        }
        if matches!(self.byte(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.byte(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if self.digits() == 0 {
                return None;
            }
            let value: f64 = self.text.get(start..self.i)?.parse().ok()?;
            if !(1e-300..1e300).contains(&value.abs()) {
                return None;
            }
        }
        Some(())
    }

    /// Into a nested object or array.
    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        (self.depth <= MAX_DEPTH).then_some(())
    }

    /// An object: `member` is called with each key in order, the cursor before its value,
    /// and must read the value.
    pub fn object(
        &mut self,
        mut member: impl FnMut(&mut Self, Cow<'a, str>) -> Option<()>,
    ) -> Option<()> {
        self.items(b'{', b'}', |c| {
            let key = c.string()?;
            c.eat(b':')?;
            member(c, key)
        })
    }

    /// An array: `item` is called with the cursor before each item, and must read it.
    pub fn array(&mut self, item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.items(b'[', b']', item)
    }

    /// The items between `open` and `close`, separated by commas, each read by `item`.
    #[inline]
    fn items(
        &mut self,
        open: u8,
        close: u8,
        mut item: impl FnMut(&mut Self) -> Option<()>,
    ) -> Option<()> {
        self.eat(open)?;
        self.enter()?;
        if self.peek()? == close {
            self.i += 1;
        } else {
            loop {
                item(self)?;
                match self.peek()? {
                    b',' => self.i += 1,
                    c if c == close => {
                        self.i += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        self.depth -= 1;
        Some(())
    }

    /// Past the next value, checked as it is read.
    pub fn skip(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' => self.object(|c, _| c.skip()),
            b'[' => self.array(Self::skip),
            b't' => self.literal("true"),
            b'f' => self.literal("false"),
            b'n' => self.literal("null"),
            _ => self.number(),
        }
    }

    /// The next value as a JSON tree, read with the readers above (a number's text converted
    /// by serde_json), in the same pass that checks it. The fast paths build one only for the
    /// few small values they keep whole (`audience_settings`, a batch's `writeKey` and
    /// `sentAt`); the tests and the `json_cursor` fuzz target compare it with serde_json's own
    /// tree of the same text.
    pub fn tree(&mut self) -> Option<Value> {
        Some(match self.peek()? {
            b'"' => Value::String(self.string()?.into_owned()),
            b'{' => {
                let mut members = Map::new();
                self.object(|c, key| {
                    members.insert(key.into_owned(), c.tree()?);
                    Some(())
                })?;
                Value::Object(members)
            }
            b'[' => {
                let mut items = Vec::new();
                self.array(|c| {
                    items.push(c.tree()?);
                    Some(())
                })?;
                Value::Array(items)
            }
            b'n' => self.null()?.then_some(Value::Null)?,
            b't' | b'f' => Value::Bool(self.boolean()?),
            _ => serde_json::from_str(self.value_text()?).ok()?,
        })
    }

    /// Past the next value; its text.
    pub fn value_text(&mut self) -> Option<&'a str> {
        self.peek()?;
        let start = self.i;
        self.skip()?;
        self.since(start)
    }
}

#[cfg(test)]
mod tests;
