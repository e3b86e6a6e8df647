//! Numbers, durations and times as the console shows them: `1,234,567`, `3.2k/min`, `4 min`,
//! times through [`crate::status`]'s `relative_time` ("3 min ago", ISO 8601 in UTC past two
//! days), and long text clipped.

pub(crate) use crate::status::relative_time;

/// `text` cut to at most `max` characters, with an ellipsis when cut (log messages and
/// field values can be long; a page stays small).
pub(crate) fn clip(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]).into(),
        None => text.into(),
    }
}

/// An integer with thousands separators: `1234567` → `1,234,567`.
pub(crate) fn count(n: impl Into<i128>) -> String {
    let n: i128 = n.into();
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A rate or a measure, short: `0`, `12`, `3.4k`, `5.6M`.
pub(crate) fn short(x: f64) -> String {
    let a = x.abs();
    if !x.is_finite() {
        return "–".into();
    }
    if a >= 1e6 {
        format!("{:.1}M", x / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", x / 1e3)
    } else if a >= 1e3 {
        format!("{:.1}k", x / 1e3)
    } else if a >= 10.0 || x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

/// A duration in milliseconds, short: `850 ms`, `42 s`, `3 min`, `5 h`, `2 d`.
pub(crate) fn duration_ms(ms: i64) -> String {
    let ms = ms.max(0);
    let s = ms / 1000;
    match s {
        0 => format!("{ms} ms"),
        1..120 => format!("{s} s"),
        120..7200 => format!("{} min", s / 60),
        7200..172_800 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86_400),
    }
}

/// A time or a dash when there is none.
pub(crate) fn maybe_time(ms: Option<i64>, now_ms: i64) -> String {
    ms.map_or_else(|| "–".into(), |ms| relative_time(ms, now_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_have_separators() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(count(-1_234), "-1,234");
        assert_eq!(count(u64::MAX), "18,446,744,073,709,551,615");
    }

    #[test]
    fn short_numbers() {
        assert_eq!(short(0.0), "0");
        assert_eq!(short(2.5), "2.5");
        assert_eq!(short(12.4), "12");
        assert_eq!(short(1234.0), "1.2k");
        assert_eq!(short(45_000.0), "45k");
        assert_eq!(short(5_600_000.0), "5.6M");
        assert_eq!(short(f64::NAN), "–");
    }

    #[test]
    fn clipping() {
        assert_eq!(clip("abc", 3), "abc");
        assert_eq!(clip("abcd", 3), "abc…");
        assert_eq!(clip("ééé", 2), "éé…");
    }

    #[test]
    fn durations() {
        assert_eq!(duration_ms(-5), "0 ms");
        assert_eq!(duration_ms(850), "850 ms");
        assert_eq!(duration_ms(42_000), "42 s");
        assert_eq!(duration_ms(600_000), "10 min");
        assert_eq!(duration_ms(5 * 3_600_000), "5 h");
        assert_eq!(duration_ms(3 * 86_400_000), "3 d");
    }
}
