//! LiquidJS's date filters in UTC (Segment's servers run in UTC): what `parseDate` accepts
//! (seconds as numbers or digit strings, `now`/`today`, ISO 8601 dates and times) and its
//! `strftime` (flags `-_0^#:`, widths, every conversion LiquidJS knows, in en-US).

use std::time::{SystemTime, UNIX_EPOCH};

use super::jsval::{Js, string_to_number};

/// LiquidJS's default `dateFormat`.
const DEFAULT_FORMAT: &str = "%A, %B %-e, %Y at %-l:%M %P %z";
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
/// JavaScript dates span ±8.64e15 ms.
const MAX_MS: f64 = 8.64e15;

/// A point in time, broken down in UTC.
struct Date {
    ms: f64,
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    milli: u32,
    weekday: u32,
    yday: u32,
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

impl Date {
    fn from_ms(ms: f64) -> Option<Date> {
        if !ms.is_finite() || ms.abs() > MAX_MS {
            return None;
        }
        let ms = ms.trunc();
        let days = (ms / 86_400_000.0).floor() as i64;
        let in_day = (ms - days as f64 * 86_400_000.0) as i64;
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        let yday = (days - days_from_civil(year, 1, 1)) as u32 + 1;
        Some(Date {
            ms,
            year,
            month,
            day,
            hour: (in_day / 3_600_000) as u32,
            minute: (in_day / 60_000 % 60) as u32,
            second: (in_day / 1000 % 60) as u32,
            milli: (in_day % 1000) as u32,
            weekday: (days + 4).rem_euclid(7) as u32,
            yday,
        })
    }
}

/// `parseDate`: the input as milliseconds since the epoch, or `None` (the filter then hands
/// its input back).
fn parse(v: &Js) -> Option<Date> {
    let ms = match v {
        Js::Nil | Js::Undefined => return None,
        Js::Str(s) if s == "now" || s == "today" => now_ms(),
        Js::Num(n) => n * 1000.0,
        Js::Str(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            string_to_number(s) * 1000.0
        }
        Js::Str(s) => parse_iso(s)?,
        Js::Text(t) => return parse(&Js::Str(t.s.clone())),
        Js::Bool(b) => f64::from(u8::from(*b)),
        Js::Arr(_) => parse_iso(&v.js_string())?,
        Js::Obj(_) => return None,
    };
    Date::from_ms(ms)
}

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_millis() as f64)
}

/// `Date.parse` for ISO 8601 (`YYYY`, `YYYY-MM`, `YYYY-MM-DD`, then `THH:mm[:ss[.sss]]` and
/// `Z` or `±HH:mm`; a date-time without offset is local time, here UTC) and the same with a
/// space before the time.
fn parse_iso(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    let mut i = 0;
    let num = |i: &mut usize, n: usize| -> Option<u32> {
        let part = s.get(*i..*i + n)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        *i += n;
        part.parse().ok()
    };
    let year = i64::from(num(&mut i, 4)?);
    let (mut month, mut day) = (1, 1);
    if b.get(i) == Some(&b'-') {
        i += 1;
        month = num(&mut i, 2)?;
        if b.get(i) == Some(&b'-') {
            i += 1;
            day = num(&mut i, 2)?;
        }
    }
    let (mut h, mut m, mut sec, mut milli) = (0, 0, 0, 0);
    let mut offset_min: i64 = 0;
    if matches!(b.get(i), Some(b'T' | b't' | b' ')) {
        i += 1;
        h = num(&mut i, 2)?;
        if b.get(i) != Some(&b':') {
            return None;
        }
        i += 1;
        m = num(&mut i, 2)?;
        if b.get(i) == Some(&b':') {
            i += 1;
            sec = num(&mut i, 2)?;
            if b.get(i) == Some(&b'.') {
                i += 1;
                let digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
                if digits == 0 {
                    return None;
                }
                let frac = &s[i..i + digits.min(3)];
                milli = format!("{frac:0<3}").parse().ok()?;
                i += digits;
            }
        }
        match b.get(i) {
            Some(b'Z' | b'z') => i += 1,
            Some(sign @ (b'+' | b'-')) => {
                let sign = if *sign == b'-' { -1 } else { 1 };
                i += 1;
                let oh = i64::from(num(&mut i, 2)?);
                if b.get(i) == Some(&b':') {
                    i += 1;
                }
                let om = i64::from(num(&mut i, 2)?);
                offset_min = sign * (oh * 60 + om);
            }
            _ => {}
        }
    }
    if i != b.len() || !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    if h > 24 || m > 59 || sec > 59 || (h == 24 && (m, sec, milli) != (0, 0, 0)) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let ms = days as f64 * 86_400_000.0
        + f64::from(h) * 3_600_000.0
        + f64::from(m) * 60_000.0
        + f64::from(sec) * 1000.0
        + f64::from(milli)
        - offset_min as f64 * 60_000.0;
    Some(ms)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn ordinal(day: u32) -> &'static str {
    match (day % 100, day % 10) {
        (11..=13, _) => "th",
        (_, 1) => "st",
        (_, 2) => "nd",
        (_, 3) => "rd",
        _ => "th",
    }
}

fn hour12(h: u32) -> u32 {
    if h % 12 == 0 { 12 } else { h % 12 }
}

/// LiquidJS's `getWeekOfYear`: days before the first `first` weekday (0 Sunday, 1 Monday)
/// of the year are week 0.
fn week_of_year(d: &Date, first: u32) -> u32 {
    let since = (d.weekday + 7 - first) % 7;
    (d.yday + 6 - since) / 7
}

/// One conversion, unpadded.
fn convert(d: &Date, c: char, colon: bool, width: Option<usize>) -> Option<String> {
    Some(match c {
        'a' => DAYS[d.weekday as usize][..3].to_owned(),
        'A' => DAYS[d.weekday as usize].to_owned(),
        'b' | 'h' => MONTHS[d.month as usize - 1][..3].to_owned(),
        'B' => MONTHS[d.month as usize - 1].to_owned(),
        'c' => format!(
            "{}/{}/{}, {}:{:02}:{:02} {}",
            d.month,
            d.day,
            d.year,
            hour12(d.hour),
            d.minute,
            d.second,
            if d.hour < 12 { "AM" } else { "PM" }
        ),
        'C' => d.year.div_euclid(100).to_string(),
        'd' | 'e' => d.day.to_string(),
        'H' | 'k' => d.hour.to_string(),
        'I' | 'l' => hour12(d.hour).to_string(),
        'j' => d.yday.to_string(),
        'L' => d.milli.to_string(),
        'm' => d.month.to_string(),
        'M' => d.minute.to_string(),
        'N' => {
            let width = width.filter(|w| *w > 0).unwrap_or(9);
            let ms = format!("{:03}", d.milli);
            let cut: String = ms.chars().take(width).collect();
            format!("{cut:0<width$}")
        }
        'p' => (if d.hour < 12 { "AM" } else { "PM" }).to_owned(),
        'P' => (if d.hour < 12 { "am" } else { "pm" }).to_owned(),
        'q' => ordinal(d.day).to_owned(),
        's' => ((d.ms / 1000.0).floor() as i64).to_string(),
        'S' => d.second.to_string(),
        'u' => (if d.weekday == 0 { 7 } else { d.weekday }).to_string(),
        'U' => week_of_year(d, 0).to_string(),
        'w' => d.weekday.to_string(),
        'W' => week_of_year(d, 1).to_string(),
        'x' => format!("{}/{}/{}", d.month, d.day, d.year),
        'X' => format!(
            "{}:{:02}:{:02} {}",
            hour12(d.hour),
            d.minute,
            d.second,
            if d.hour < 12 { "AM" } else { "PM" }
        ),
        'y' => d.year.rem_euclid(100).to_string(),
        'Y' => d.year.to_string(),
        'z' => (if colon { "+00:00" } else { "+0000" }).to_owned(),
        'Z' => "UTC".to_owned(),
        't' => "\t".to_owned(),
        'n' => "\n".to_owned(),
        '%' => "%".to_owned(),
        _ => return None,
    })
}

fn default_width(c: char) -> usize {
    match c {
        'C' | 'd' | 'e' | 'H' | 'I' | 'k' | 'l' | 'm' | 'M' | 'S' | 'U' | 'W' | 'y' => 2,
        'j' | 'L' => 3,
        'Y' => 4,
        _ => 0,
    }
}

/// LiquidJS's `strftime`: `%[flags][width][E|O]conversion`; unknown ones stay as written.
fn strftime(d: &Date, format: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = format.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '%' || i + 1 >= chars.len() {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let start = i;
        let mut j = i + 1;
        let mut flags = String::new();
        while j < chars.len() && "-_0^#:".contains(chars[j]) {
            flags.push(chars[j]);
            j += 1;
        }
        let mut digits = String::new();
        while j < chars.len() && chars[j].is_ascii_digit() {
            digits.push(chars[j]);
            j += 1;
        }
        if j < chars.len() && (chars[j] == 'E' || chars[j] == 'O') && j + 1 < chars.len() {
            j += 1;
        }
        let Some(&c) = chars.get(j) else {
            out.extend(&chars[start..]);
            break;
        };
        let width: Option<usize> = digits.parse().ok();
        match convert(d, c, flags.contains(':'), width) {
            None => out.extend(&chars[start..=j]),
            Some(mut s) => {
                let mut pad = if "aAbBceklpP".contains(c) { ' ' } else { '0' };
                let mut pad_width = width.filter(|w| *w > 0).unwrap_or_else(|| default_width(c));
                if flags.contains('^') {
                    s = s.to_uppercase();
                } else if flags.contains('#') {
                    s = if s.chars().any(char::is_lowercase) {
                        s.to_uppercase()
                    } else {
                        s.to_lowercase()
                    };
                }
                if flags.contains('_') {
                    pad = ' ';
                } else if flags.contains('0') {
                    pad = '0';
                }
                if flags.contains('-') {
                    pad_width = 0;
                }
                let (sign, body) = match s.strip_prefix('-') {
                    Some(rest) if pad == '0' => ("-", rest.to_owned()),
                    _ => ("", s),
                };
                let width = if sign.is_empty() {
                    pad_width
                } else {
                    pad_width.saturating_sub(1)
                };
                let len = body.chars().count();
                out.push_str(sign);
                out.extend(std::iter::repeat_n(pad, width.saturating_sub(len)));
                out.push_str(&body);
            }
        }
        i = j + 1;
    }
    out
}

pub(crate) fn date(v: &Js, args: &[Js]) -> Js {
    match parse(v) {
        None => v.clone(),
        Some(d) => {
            let format = match args.first() {
                None | Some(Js::Nil | Js::Undefined) => DEFAULT_FORMAT.to_owned(),
                Some(f) => f.string(),
            };
            Js::Str(strftime(&d, &format))
        }
    }
}

pub(crate) fn to_xmlschema(v: &Js) -> Js {
    date(v, &[Js::Str("%Y-%m-%dT%H:%M:%S%:z".to_owned())])
}

pub(crate) fn to_rfc822(v: &Js) -> Js {
    date(v, &[Js::Str("%a, %d %b %Y %H:%M:%S %z".to_owned())])
}

/// `date_to_string` (`%b`) and `date_to_long_string` (`%B`), with the `ordinal` type and the
/// `US` style.
pub(crate) fn to_string(v: &Js, args: &[Js], month: &str) -> Js {
    let Some(d) = parse(v) else {
        return v.clone();
    };
    let ordinal = matches!(args.first(), Some(Js::Str(t)) if t == "ordinal");
    let us = matches!(args.get(1), Some(Js::Str(s)) if s == "US");
    let format = match (ordinal, us) {
        (true, true) => format!("{month} {}%q, %Y", d.day),
        (true, false) => format!("{}%q {month} %Y", d.day),
        _ => format!("%d {month} %Y"),
    };
    Js::Str(strftime(&d, &format))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(input: Js, format: &str) -> Js {
        date(&input, &[Js::Str(format.to_owned())])
    }

    #[test]
    fn formats_as_liquidjs_in_utc() {
        let t = Js::Str("2024-01-15T10:30:00Z".to_owned());
        assert_eq!(
            fmt(t.clone(), "%c|%x|%X|%Z|%z|%:z|%j|%U|%W|%u|%w|%e|%k|%l|%I|%p|%P|%L|%N|%s|%C|%y|%q|%^a|%-d|%5Y"),
            Js::Str("1/15/2024, 10:30:00 AM|1/15/2024|10:30:00 AM|UTC|+0000|+00:00|015|02|03|1|1|15|10|10|10|AM|am|000|000000000|1705314600|20|24|th|MON|15|02024".to_owned())
        );
        assert_eq!(
            fmt(Js::Str("2024-01-15 10:30".into()), "%F %T"),
            Js::Str("%F %T".into())
        );
        assert_eq!(fmt(Js::Num(1.5), "%s %L"), Js::Str("1 500".into()));
        assert_eq!(
            fmt(Js::Str("1700000000".into()), "%Y"),
            Js::Str("2023".into())
        );
        assert_eq!(fmt(Js::Bool(true), "%Y %L"), Js::Str("1970 001".into()));
        assert_eq!(fmt(Js::Str("x".into()), "%Y"), Js::Str("x".into()));
        assert_eq!(
            date(&Js::Str("2024-01-15".into()), &[]),
            Js::Str("Monday, January 15, 2024 at 12:00 am +0000".into())
        );
        assert_eq!(
            to_xmlschema(&Js::Bool(false)),
            Js::Str("1970-01-01T00:00:00+00:00".into())
        );
        assert_eq!(
            to_string(&Js::Num(-3.0), &[], "%B"),
            Js::Str("31 December 1969".into())
        );
    }
}
