//! Timestamps as Segment's libraries write them (the syntax is in the module docs of
//! [`crate::event`]): parsed into epoch milliseconds, and formatted as JavaScript's
//! `toISOString` does.

use thiserror::Error;

use super::calendar::{civil_from_days, days_from_civil, days_in_month};

/// Why a timestamp string was rejected; positions are byte offsets into the string.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TimestampError {
    #[error("the timestamp is empty")]
    Empty,
    #[error("expected {expected} at position {at}")]
    Syntax { at: usize, expected: &'static str },
    #[error("unexpected text at position {at} after the timestamp")]
    Trailing { at: usize },
    #[error("{part} {value} is out of range")]
    OutOfRange { part: &'static str, value: u32 },
    #[error("day {day} does not exist in {year:04}-{month:02}")]
    NoSuchDay { year: u32, month: u32, day: u32 },
}

const MS_PER_MINUTE: i64 = 60_000;
const MS_PER_DAY: i64 = 86_400_000;

/// Parses an ISO-8601 / RFC 3339 timestamp (syntax in the module docs) into epoch milliseconds.
pub fn parse_timestamp_ms(text: &str) -> Result<i64, TimestampError> {
    if let Some(ms) = canonical_ms(text.as_bytes()) {
        return Ok(ms);
    }
    if text.is_empty() {
        return Err(TimestampError::Empty);
    }
    let mut cursor = Cursor {
        bytes: text.as_bytes(),
        at: 0,
    };

    let days = read_date(&mut cursor)?;
    if cursor.done() {
        return Ok(days * MS_PER_DAY);
    }
    match cursor.peek() {
        Some(b'T' | b't' | b' ') => cursor.at += 1,
        _ => return Err(cursor.syntax("'T' or the end after the date")),
    }
    let time_ms = read_time_ms(&mut cursor)?;
    let offset_minutes = read_offset_minutes(&mut cursor)?;
    if !cursor.done() {
        return Err(TimestampError::Trailing { at: cursor.at });
    }
    Ok(days * MS_PER_DAY + time_ms - offset_minutes * MS_PER_MINUTE)
}

/// The form every Segment library sends (JavaScript's `toISOString`, UTC with milliseconds:
/// `YYYY-MM-DDTHH:MM:SS.mmmZ`), read at fixed positions; `None` for any other text, which the
/// general reader then reads or refuses (a leap second, a lowercase `t` or `z`, an offset, a
/// date out of range all go there). Same value as the general reader: a property test below.
fn canonical_ms(text: &[u8]) -> Option<i64> {
    let b: &[u8; 24] = text.try_into().ok()?;
    let separators = [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
    ];
    if b[23] != b'Z' || separators.iter().any(|&(at, sep)| b[at] != sep) {
        return None;
    }
    let digit = |at: usize| {
        let d = b[at].wrapping_sub(b'0');
        (d < 10).then_some(u32::from(d))
    };
    let two = |at: usize| Some(digit(at)? * 10 + digit(at + 1)?);
    let year = two(0)? * 100 + two(2)?;
    let (month, day) = (two(5)?, two(8)?);
    let (hour, minute, second) = (two(11)?, two(14)?, two(17)?);
    let millis = digit(20)? * 100 + two(21)?;
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    Some(
        days_from_civil(i64::from(year), month, day) * MS_PER_DAY
            + i64::from(hour) * 3_600_000
            + i64::from(minute) * MS_PER_MINUTE
            + i64::from(second) * 1_000
            + i64::from(millis),
    )
}

/// `YYYY-MM-DD`, as days since 1970-01-01.
fn read_date(cursor: &mut Cursor<'_>) -> Result<i64, TimestampError> {
    let year = cursor.digits(4, "a four-digit year")?;
    cursor.expect(b'-', "'-' after the year")?;
    let month = cursor.digits(2, "a two-digit month")?;
    cursor.expect(b'-', "'-' after the month")?;
    let day = cursor.digits(2, "a two-digit day")?;
    check_range("month", month, 1, 12)?;
    if day < 1 || day > days_in_month(year, month) {
        return Err(TimestampError::NoSuchDay { year, month, day });
    }
    Ok(days_from_civil(i64::from(year), month, day))
}

/// `hh:mm[:ss[.fraction]]`, as milliseconds since midnight.
fn read_time_ms(cursor: &mut Cursor<'_>) -> Result<i64, TimestampError> {
    let hour = cursor.digits(2, "a two-digit hour")?;
    cursor.expect(b':', "':' after the hour")?;
    let minute = cursor.digits(2, "a two-digit minute")?;
    check_range("hour", hour, 0, 23)?;
    check_range("minute", minute, 0, 59)?;

    let (mut second, mut millis) = (0, 0);
    if cursor.peek() == Some(b':') {
        cursor.at += 1;
        second = cursor.digits(2, "two-digit seconds")?;
        check_range("second", second, 0, 60)?;
        if matches!(cursor.peek(), Some(b'.' | b',')) {
            cursor.at += 1;
            millis = cursor.fraction_millis()?;
        }
        if second == 60 {
            // A leap second: the last instant before the next minute.
            second = 59;
            millis = 999;
        }
    }

    Ok(i64::from(hour) * 3_600_000
        + i64::from(minute) * MS_PER_MINUTE
        + i64::from(second) * 1_000
        + i64::from(millis))
}

/// `Z`, `+hh[[:]mm]`, `-hh[[:]mm]` or nothing (UTC), as minutes east of UTC.
fn read_offset_minutes(cursor: &mut Cursor<'_>) -> Result<i64, TimestampError> {
    let offset_minutes = match cursor.peek() {
        None => 0,
        Some(b'Z' | b'z') => {
            cursor.at += 1;
            0
        }
        Some(sign @ (b'+' | b'-')) => {
            cursor.at += 1;
            let hours = cursor.digits(2, "a two-digit offset hour")?;
            check_range("offset hour", hours, 0, 23)?;
            let minutes = match cursor.peek() {
                Some(b':') => {
                    cursor.at += 1;
                    cursor.digits(2, "two-digit offset minutes")?
                }
                Some(b'0'..=b'9') => cursor.digits(2, "two-digit offset minutes")?,
                _ => 0,
            };
            check_range("offset minute", minutes, 0, 59)?;
            let total = i64::from(hours * 60 + minutes);
            if sign == b'-' { -total } else { total }
        }
        Some(_) => return Err(cursor.syntax("'Z', '+hh:mm', '-hh:mm' or the end")),
    };
    Ok(offset_minutes)
}

/// Formats epoch milliseconds the way JavaScript's `Date.prototype.toISOString` does:
/// `YYYY-MM-DDTHH:MM:SS.mmmZ`. Years outside 0000–9999 use JavaScript's expanded form
/// (`+YYYYYY`/`-YYYYYY`), which [`parse_timestamp_ms`] does not accept.
pub fn format_timestamp_ms(ms: i64) -> String {
    let days = ms.div_euclid(MS_PER_DAY);
    let in_day = ms.rem_euclid(MS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    let hour = in_day / 3_600_000;
    let minute = in_day / MS_PER_MINUTE % 60;
    let second = in_day / 1_000 % 60;
    let millis = in_day % 1_000;
    let year = if (0..=9999).contains(&year) {
        format!("{year:04}")
    } else if year < 0 {
        format!("-{:06}", -year)
    } else {
        format!("+{year:06}")
    };
    format!("{year}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{millis:03}Z")
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn done(&self) -> bool {
        self.at >= self.bytes.len()
    }

    fn syntax(&self, expected: &'static str) -> TimestampError {
        TimestampError::Syntax {
            at: self.at,
            expected,
        }
    }

    fn expect(&mut self, byte: u8, expected: &'static str) -> Result<(), TimestampError> {
        if self.peek() == Some(byte) {
            self.at += 1;
            Ok(())
        } else {
            Err(self.syntax(expected))
        }
    }

    /// Exactly `count` ASCII digits.
    fn digits(&mut self, count: usize, expected: &'static str) -> Result<u32, TimestampError> {
        let mut value = 0;
        for _ in 0..count {
            match self.peek() {
                Some(digit @ b'0'..=b'9') => {
                    value = value * 10 + u32::from(digit - b'0');
                    self.at += 1;
                }
                _ => return Err(self.syntax(expected)),
            }
        }
        Ok(value)
    }

    /// One or more digits of a fraction of a second, truncated to milliseconds.
    fn fraction_millis(&mut self) -> Result<u32, TimestampError> {
        let start = self.at;
        let mut millis = 0;
        while let Some(digit @ b'0'..=b'9') = self.peek() {
            if self.at - start < 3 {
                millis = millis * 10 + u32::from(digit - b'0');
            }
            self.at += 1;
        }
        match self.at - start {
            0 => Err(self.syntax("a digit of the fraction of a second")),
            1 => Ok(millis * 100),
            2 => Ok(millis * 10),
            _ => Ok(millis),
        }
    }
}

fn check_range(part: &'static str, value: u32, min: u32, max: u32) -> Result<(), TimestampError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(TimestampError::OutOfRange { part, value })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The general reader alone, for comparison with the fast path.
    fn general(text: &str) -> Result<i64, TimestampError> {
        let mut with_offset = text.to_string();
        // `+00:00` is the same instant as `Z` and never takes the fast path.
        if with_offset.ends_with('Z') {
            with_offset.pop();
            with_offset.push_str("+00:00");
        }
        parse_timestamp_ms(&with_offset)
    }

    #[test]
    fn the_canonical_form_is_read_at_fixed_positions_and_other_forms_are_left_alone() {
        let cases: &[(&str, Option<i64>)] = &[
            ("2026-11-29T10:00:00.000Z", Some(1_795_946_400_000)),
            ("1970-01-01T00:00:00.000Z", Some(0)),
            ("0000-01-01T00:00:00.000Z", Some(-62_167_219_200_000)),
            ("2024-02-29T23:59:59.999Z", Some(1_709_251_199_999)),
            ("2023-02-29T00:00:00.000Z", None),
            ("1900-02-29T00:00:00.000Z", None),
            ("2000-02-29T00:00:00.000Z", Some(951_782_400_000)),
            ("2026-11-29T10:00:60.000Z", None),
            ("2026-11-29t10:00:00.000Z", None),
            ("2026-11-29T10:00:00.000z", None),
            ("2026-11-29T10:00:00.000+", None),
            ("2026-11-29T10:00:00.0000Z", None),
            ("2026-11-29T24:00:00.000Z", None),
            ("2026-13-29T10:00:00.000Z", None),
            ("2026-11-29T10:60:00.000Z", None),
            ("2026-11-00T10:00:00.000Z", None),
            ("2026-11-29T10:00:00,000Z", None),
            ("2026-11-29T1a:00:00.000Z", None),
            ("2026-11-29 10:00:00.000Z", None),
        ];
        for (text, want) in cases {
            assert_eq!(canonical_ms(text.as_bytes()), *want, "{text}");
            if let Some(ms) = want {
                assert_eq!(general(text), Ok(*ms), "{text}");
            }
        }
    }

    proptest! {
        /// Any instant of years 0–9999, as `toISOString` writes it: the fast path reads it,
        /// and reads the value the general reader reads.
        #[test]
        fn the_fast_path_reads_what_the_general_reader_reads(
            ms in -62_167_219_200_000i64..253_402_300_800_000,
        ) {
            let text = format_timestamp_ms(ms);
            prop_assert_eq!(canonical_ms(text.as_bytes()), Some(ms));
            prop_assert_eq!(general(&text), Ok(ms));
        }

        /// A canonical text with one byte changed: the fast path refuses it, or reads what the
        /// general reader reads.
        #[test]
        fn an_edited_text_is_refused_or_read_the_same(
            ms in -62_167_219_200_000i64..253_402_300_800_000,
            at in 0usize..24,
            byte in prop::sample::select(b"0123456789-:.TtZz+ x".to_vec()),
        ) {
            let mut bytes = format_timestamp_ms(ms).into_bytes();
            bytes[at] = byte;
            let text = String::from_utf8(bytes).expect("ASCII");
            if let Some(fast) = canonical_ms(text.as_bytes()) {
                prop_assert_eq!(general(&text), Ok(fast), "{}", text);
            }
        }
    }
}
