//! Time as the contract writes it, in one place: instants (RFC 3339 with offset, epoch
//! milliseconds as Grafana's `${__from}`, or `now`), durations (`90s`, `5m`, `1h30m`, `1d`,
//! `500ms`, or a plain number of seconds), and the 90 s silence rule of design.md §2.
//!
//! Every crate (log digests, query, simulator, CLI, HTTP, SQL arguments) parses and formats
//! through here, so an instant or a duration means the same wherever a user writes it.

use std::fmt;

use chrono::{DateTime, Utc};

/// Microseconds since the Unix epoch, UTC: the unit of every domain time.
pub type Us = i64;

/// Microseconds in a second.
pub const US_PER_S: Us = 1_000_000;

/// A source silent (no event at all, heartbeat included) for longer than this makes the
/// devices it reported `unknown` (design.md §2).
pub const SILENCE_US: Us = 90 * US_PER_S;

/// Why a text is not an instant or a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TimeError(String);

impl TimeError {
    fn new(msg: impl Into<String>) -> Self {
        TimeError(msg.into())
    }
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
    crate::parse::parse_time_us(text).map_err(|e| {
        TimeError::new(format!(
            "{e}; epoch milliseconds and `now` are accepted too"
        ))
    })
}

/// Formats an instant as RFC 3339 UTC with microseconds (`2026-11-24T10:00:00.000000Z`).
pub fn format_instant(t: Us) -> String {
    DateTime::from_timestamp_micros(t)
        .map(|d| crate::event::format_time(&d))
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
            ("d", 86_400 * US_PER_S),
            ("h", 3_600 * US_PER_S),
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
}
