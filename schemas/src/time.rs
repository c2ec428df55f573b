//! Time as the contract writes it, in one place: instants (RFC 3339 with offset, epoch
//! milliseconds as Grafana's `${__from}`, or `now`), durations (`90s`, `5m`, `1h30m`, `1d`,
//! `500ms`, or a plain number of seconds), and the 90 s silence rule of design.md §2.
//!
//! Every crate (log digests, query, simulator, CLI, HTTP, SQL arguments) parses and formats
//! through here, so an instant or a duration means the same wherever a user writes it.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};

/// Microseconds since the Unix epoch, UTC: the unit of every domain time.
pub type Us = i64;

/// Microseconds in a second.
pub const US_PER_S: Us = 1_000_000;

/// Microseconds in an hour.
pub const US_PER_HOUR: Us = 3_600 * US_PER_S;

/// Microseconds in a (UTC) day.
pub const US_PER_DAY: Us = 24 * US_PER_HOUR;

/// A source silent (no event at all, heartbeat included) for longer than this makes the
/// devices it reported `unknown` (design.md §2).
pub const SILENCE_US: Us = 90 * US_PER_S;

/// Why a text is not an instant or a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TimeError(String);

impl TimeError {
    pub(crate) fn new(msg: impl Into<String>) -> Self {
        TimeError(msg.into())
    }
}

/// Parses an RFC 3339 timestamp (offset required), truncated to microseconds, in UTC.
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, TimeError> {
    parse_time_us(text).map(|us| DateTime::from_timestamp_micros(us).expect("in range"))
}

/// [`parse_time`] as microseconds since the epoch.
pub fn parse_time_us(text: &str) -> Result<i64, TimeError> {
    if let Some(t) = fast_time_us(text.as_bytes()) {
        return Ok(t);
    }
    slow_time(text).map(|t| t.timestamp_micros())
}

fn slow_time(text: &str) -> Result<DateTime<Utc>, TimeError> {
    let dt = DateTime::parse_from_rfc3339(text).map_err(|e| {
        TimeError::new(format!(
            "`{text}` is not an RFC 3339 timestamp with offset (e.g. 2026-11-24T10:00:00.123456Z): {e}"
        ))
    })?;
    DateTime::from_timestamp_micros(dt.timestamp_micros())
        .ok_or_else(|| TimeError::new(format!("`{text}` is out of range")))
}

/// The common form `YYYY-MM-DDTHH:MM:SS[.f{1,9}](Z|±HH:MM)` with a year from 1970, read
/// directly; `None` for anything else (leap seconds, other separators, invalid dates...),
/// which chrono then parses or rejects with its message. Same result as chrono's when `Some`.
fn fast_time_us(b: &[u8]) -> Option<i64> {
    let num = |at: usize, n: usize| -> Option<i64> {
        b.get(at..at + n)?.iter().try_fold(0i64, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
        })
    };
    let sep = |at: usize, c: u8| b.get(at) == Some(&c);
    if !(sep(4, b'-') && sep(7, b'-') && sep(10, b'T') && sep(13, b':') && sep(16, b':')) {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if year < 1970 || day < 1 || day > month_days || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0i64;
    if sep(i, b'.') {
        let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if !(1..=9).contains(&digits) {
            return None;
        }
        nanos = num(i + 1, digits)? * 10i64.pow(9 - digits as u32);
        i += 1 + digits;
    }
    let offset = match b.get(i..)? {
        b"Z" => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (h, m) = (num(i + 1, 2)?, num(i + 4, 2)?);
            if h > 23 || m > 59 {
                return None;
            }
            let s = h * 3600 + m * 60;
            if *sign == b'-' { -s } else { s }
        }
        _ => return None,
    };
    // Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
    Some(secs * 1_000_000 + nanos / 1000)
}

/// Writes a timestamp as RFC 3339 UTC with microseconds (`2026-11-24T10:00:00.000000Z`).
pub fn format_time(t: &DateTime<Utc>) -> String {
    use chrono::{Datelike, Timelike};
    let year = t.year();
    if !(0..=9999).contains(&year) {
        return t.to_rfc3339_opts(SecondsFormat::Micros, true);
    }
    let mut b = *b"0000-00-00T00:00:00.000000Z";
    let mut put = |at: usize, width: usize, mut v: u32| {
        for i in (0..width).rev() {
            b[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, year as u32);
    put(5, 2, t.month());
    put(8, 2, t.day());
    put(11, 2, t.hour());
    put(14, 2, t.minute());
    put(17, 2, t.second());
    put(20, 6, t.timestamp_subsec_micros().min(999_999));
    String::from_utf8(b.to_vec()).expect("ASCII")
}

/// Parses an instant as users write it: RFC 3339 with an offset (kept to the microsecond),
/// epoch milliseconds (all digits, Grafana's `${__from}`), or `now`.
pub fn parse_instant(text: &str) -> Result<Us, TimeError> {
    parse_instant_at(text, Utc::now().timestamp_micros())
}

/// [`parse_instant`] with `now` given (for tests and for one clock read per request).
pub fn parse_instant_at(text: &str, now: Us) -> Result<Us, TimeError> {
    let text = text.trim();
    if text == "now" {
        return Ok(now);
    }
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<i64>()
            .ok()
            .and_then(|ms| ms.checked_mul(1000))
            .ok_or_else(|| TimeError::new(format!("epoch milliseconds out of range: {text}")));
    }
    parse_time_us(text).map_err(|e| {
        TimeError::new(format!(
            "{e}; epoch milliseconds and `now` are accepted too"
        ))
    })
}

/// Formats an instant as RFC 3339 UTC with microseconds (`2026-11-24T10:00:00.000000Z`).
pub fn format_instant(t: Us) -> String {
    DateTime::from_timestamp_micros(t)
        .map(|d| format_time(&d))
        .unwrap_or_else(|| t.to_string())
}

/// An instant as a chrono time (`None` out of chrono's range).
pub fn to_datetime(t: Us) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_micros(t)
}

/// Parses a duration: one or more `<number><unit>` parts (`1h30m`, `1.5h`, `90s`, `250ms`)
/// with units `us`, `ms`, `s`, `m`, `h`, `d`, `w`, or a plain number of seconds (`60`, `0.5`).
/// The result is in microseconds and may be zero; see [`parse_positive_duration`].
pub fn parse_duration(text: &str) -> Result<Us, TimeError> {
    let t = text.trim();
    let bad = |why: String| {
        TimeError::new(format!(
            "`{text}` is not a duration ({why}; e.g. 60, 30s, 5m, 1h30m, 1d, 500ms)"
        ))
    };
    if t.is_empty() {
        return Err(bad("empty".into()));
    }
    let number_end = |s: &str| {
        s.find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len())
    };
    let mut total: f64 = 0.0;
    let mut rest = t;
    while !rest.is_empty() {
        let n_len = number_end(rest);
        if n_len == 0 {
            return Err(bad(format!("expected a number at `{rest}`")));
        }
        let n: f64 = rest[..n_len]
            .parse()
            .map_err(|_| bad(format!("`{}` is not a number", &rest[..n_len])))?;
        rest = &rest[n_len..];
        let u_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..u_len] {
            // a bare number is seconds, but only on its own (`1h30` is a typo, not 1h30s)
            "" if total == 0.0 && rest.is_empty() && t.len() == n_len => 1e6,
            "us" | "µs" => 1.0,
            "ms" => 1e3,
            "s" => 1e6,
            "m" => 60e6,
            "h" => 3_600e6,
            "d" => 86_400e6,
            "w" => 604_800e6,
            "" => return Err(bad(format!("`{}` has no unit", &t))),
            u => {
                return Err(bad(format!(
                    "unknown unit `{u}`; use us, ms, s, m, h, d or w"
                )));
            }
        };
        total += n * scale;
        rest = &rest[u_len..];
    }
    if !total.is_finite() || total > i64::MAX as f64 / 2.0 {
        return Err(bad("too long".into()));
    }
    Ok(total.round() as Us)
}

/// [`parse_duration`] that must be longer than zero.
pub fn parse_positive_duration(text: &str) -> Result<Us, TimeError> {
    match parse_duration(text)? {
        d if d > 0 => Ok(d),
        _ => Err(TimeError::new(format!(
            "`{text}` is not a positive duration"
        ))),
    }
}

/// A duration in microseconds, written back in the grammar of [`parse_duration`]
/// (`1h30m`, `250ms`).
pub struct DisplayDuration(pub Us);

impl fmt::Display for DisplayDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut us = self.0;
        if us == 0 {
            return f.write_str("0s");
        }
        if us < 0 {
            f.write_str("-")?;
            us = -us;
        }
        for (unit, size) in [
            ("d", US_PER_DAY),
            ("h", US_PER_HOUR),
            ("m", 60 * US_PER_S),
            ("s", US_PER_S),
            ("ms", 1_000),
            ("us", 1),
        ] {
            if us >= size {
                write!(f, "{}{unit}", us / size)?;
                us %= size;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants() {
        assert_eq!(parse_instant_at("now", 7), Ok(7));
        assert_eq!(parse_instant("1700000000000"), Ok(1_700_000_000_000_000));
        assert_eq!(
            parse_instant("2026-11-24T10:00:00.123456Z"),
            Ok(1_795_514_400_123_456)
        );
        assert_eq!(
            format_instant(1_795_514_400_123_456),
            "2026-11-24T10:00:00.123456Z"
        );
        assert!(parse_instant("2026-11-24 10:00").is_err());
        assert!(parse_instant("99999999999999999999").is_err());
        assert!(parse_instant("").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("60"), Ok(60 * US_PER_S));
        assert_eq!(parse_duration("0.5"), Ok(500_000));
        assert_eq!(parse_duration("30s"), Ok(30 * US_PER_S));
        assert_eq!(parse_duration("5m"), Ok(300 * US_PER_S));
        assert_eq!(parse_duration("1h30m"), Ok(5_400 * US_PER_S));
        assert_eq!(parse_duration("1.5h"), Ok(5_400 * US_PER_S));
        assert_eq!(parse_duration("1d2h"), Ok(26 * 3_600 * US_PER_S));
        assert_eq!(parse_duration("250ms"), Ok(250_000));
        assert_eq!(parse_duration("1w"), Ok(7 * 86_400 * US_PER_S));
        assert_eq!(parse_duration("0s"), Ok(0));
        assert!(parse_positive_duration("0s").is_err());
        for bad in ["", "abc", "5x", "1h30", "h", "1..5s", "1e400d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        for d in ["1h30m", "250ms", "1d2h3m4s5ms6us"] {
            let us = parse_duration(d).unwrap();
            assert_eq!(DisplayDuration(us).to_string(), d);
        }
    }

    fn chrono_time(text: &str) -> Option<DateTime<Utc>> {
        let dt = DateTime::parse_from_rfc3339(text).ok()?;
        DateTime::from_timestamp_micros(dt.timestamp_micros())
    }

    #[test]
    fn fast_time_agrees_with_chrono() {
        let mut texts: Vec<String> = [
            "2026-11-24T10:00:00Z",
            "2026-11-24T10:00:00.1Z",
            "2026-11-24T10:00:00.123456Z",
            "2026-11-24T10:00:00.123456789Z",
            "2026-11-24T10:00:00.1234567891Z",
            "2026-11-24T10:00:00.123456+01:00",
            "2026-11-24T00:30:00-05:30",
            "2026-11-24T10:00:00+23:59",
            "2026-11-24T10:00:00-00:00",
            "2026-11-24t10:00:00z",
            "2026-11-24 10:00:00Z",
            "2026-06-30T23:59:60Z",
            "2024-02-29T12:00:00Z",
            "2023-02-29T12:00:00Z",
            "2100-02-29T12:00:00Z",
            "2000-02-29T12:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-11-24T24:00:00Z",
            "2026-11-24T10:00:00",
            "2026-11-24T10:00:00.Z",
            "2026-11-24T10:00:00+0100",
            "2026-11-24T10:00:00+01:00x",
            "1969-12-31T23:59:59.999999Z",
            "1970-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999Z",
            "2026-1-24T10:00:00Z",
            "+2026-11-24T10:00:00Z",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // every day of some years, at varied times and offsets
        let mut t = DateTime::parse_from_rfc3339("1999-12-25T07:08:09.010203+02:00").unwrap();
        for i in 0..3_000 {
            texts.push(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, i % 3 == 0));
            t += chrono::Duration::seconds(86_400 * 3 + 3_599)
                + chrono::Duration::nanoseconds(i * 7_919);
        }
        for text in &texts {
            let ours = parse_time(text).ok();
            assert_eq!(ours, chrono_time(text), "{text}");
            if let Some(fast) = fast_time_us(text.as_bytes()) {
                assert_eq!(
                    Some(fast),
                    chrono_time(text).map(|t| t.timestamp_micros()),
                    "fast path on {text}"
                );
            }
        }
        assert!(
            fast_time_us(b"2026-11-24T10:00:00.123456Z").is_some(),
            "the common form is fast"
        );
    }
}
