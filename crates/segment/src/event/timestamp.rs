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
