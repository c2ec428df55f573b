//! CiscoLog time stamps (`cucm-sources.md` §2.2, §2.3): `MON DAY [YEAR] HH:MM:SS[.FRAC]
//! [AM|PM[.FRAC]] ZONE`, with a leading `*` or `.` when the sender's clock is not
//! authoritative. Read leniently: day zero- or space-padded, a 12-hour clock with the fraction
//! on either side of AM/PM, no fraction or a short one (read as milliseconds), no year (the
//! receive time's, or the year before when that would put the stamp more than a day ahead).

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};

/// A parsed stamp.
#[derive(Debug, Clone, PartialEq)]
pub struct Stamp {
    /// The instant, UTC.
    pub time: DateTime<Utc>,
    /// False after a `*` or `.` prefix (the sender's clock was not synchronised).
    pub authoritative: bool,
    /// The zone was not UTC/GMT/+0000 and was taken as UTC.
    pub zone_assumed: bool,
    /// The year was not given.
    pub year_inferred: bool,
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Reads a stamp; `received` fills a missing year. `None` if the text is not a stamp.
pub fn parse(text: &str, received: DateTime<Utc>) -> Option<Stamp> {
    let text = text.trim();
    let (authoritative, text) = match text.as_bytes().first() {
        Some(b'*' | b'.') => (false, &text[1..]),
        _ => (true, text),
    };
    let mut tokens = text.split_whitespace();
    let mon = tokens.next()?;
    let month = MONTHS.iter().position(|m| *m == mon)? as u32 + 1;
    let day: u32 = tokens.next()?.parse().ok()?;
    let mut next = tokens.next()?;
    let year = if next.len() == 4 && next.bytes().all(|b| b.is_ascii_digit()) {
        let y: i32 = next.parse().ok()?;
        next = tokens.next()?;
        Some(y)
    } else {
        None
    };
    // HH:MM:SS[.FRAC]
    let (clock, mut frac) = match next.split_once('.') {
        Some((c, f)) => (c, Some(f)),
        None => (next, None),
    };
    let mut hms = clock.split(':');
    let mut hour: u32 = hms.next()?.parse().ok()?;
    let minute: u32 = hms.next()?.parse().ok()?;
    let second: u32 = hms.next()?.parse().ok()?;
    if hms.next().is_some() {
        return None;
    }
    let mut zone = tokens.next()?;
    // AM/PM, possibly with the fraction after it (`AM.484`)
    let ampm = zone.get(..2).filter(|p| *p == "AM" || *p == "PM");
    if let Some(p) = ampm {
        if let Some(f) = zone[2..].strip_prefix('.') {
            frac = Some(f);
        } else if zone.len() != 2 {
            return None;
        }
        if hour == 0 || hour > 12 {
            return None;
        }
        hour = match (p, hour) {
            ("AM", 12) => 0,
            ("AM", h) => h,
            ("PM", 12) => 12,
            (_, h) => h + 12,
        };
        zone = tokens.next()?;
    }
    let millis = match frac {
        None => 0,
        // a short fraction is read as milliseconds ("19" → 19 ms): the sub-second is unreliable
        Some(f) if !f.is_empty() && f.len() <= 6 && f.bytes().all(|b| b.is_ascii_digit()) => {
            let v: u32 = f.parse().ok()?;
            if f.len() <= 3 {
                v
            } else {
                v / 10u32.pow(f.len() as u32 - 3)
            }
        }
        Some(_) => return None,
    };
    if tokens.next().is_some() {
        return None;
    }
    let zone_assumed = !matches!(zone, "UTC" | "GMT" | "+0000" | "Z");
    let at = |y: i32| -> Option<DateTime<Utc>> {
        let d = NaiveDate::from_ymd_opt(y, month, day)?;
        let t = d.and_hms_milli_opt(hour, minute, second, millis)?;
        Some(Utc.from_utc_datetime(&t))
    };
    let (time, year_inferred) = match year {
        Some(y) => (at(y)?, false),
        None => {
            let y = received.year();
            match at(y) {
                Some(t) if t - received <= chrono::Duration::days(1) => (t, true),
                _ => (at(y - 1)?, true),
            }
        }
    };
    Some(Stamp {
        time,
        authoritative,
        zone_assumed,
        year_inferred,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rx() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 2, 12, 0, 0).unwrap()
    }

    fn t(s: &str) -> String {
        let p = parse(s, rx()).unwrap_or_else(|| panic!("{s}"));
        p.time.format("%Y-%m-%dT%H:%M:%S%.3f").to_string()
    }

    #[test]
    fn every_documented_variant_reads() {
        assert_eq!(t("Nov 02 2026 09:14:03.512 UTC"), "2026-11-02T09:14:03.512");
        assert_eq!(t("Nov  2 2026 09:14:03.512 UTC"), "2026-11-02T09:14:03.512");
        // 12-hour clock, the fraction after AM/PM, and before it
        assert_eq!(
            t("Nov 02 2026 09:15:40 AM.077 UTC"),
            "2026-11-02T09:15:40.077"
        );
        assert_eq!(
            t("Oct 14 2015 05:50:19 AM.484 UTC"),
            "2015-10-14T05:50:19.484"
        );
        assert_eq!(
            t("Jun 14 2026 11:57:27.685 PM UTC"),
            "2026-06-14T23:57:27.685"
        );
        assert_eq!(t("Jun 14 2026 12:00:01 AM UTC"), "2026-06-14T00:00:01.000");
        assert_eq!(t("Jun 14 2026 12:00:01 PM UTC"), "2026-06-14T12:00:01.000");
        // no year: the receive time's
        assert_eq!(t("Nov 02 09:16:02.880 UTC"), "2026-11-02T09:16:02.880");
        assert!(
            parse("Nov 02 09:16:02.880 UTC", rx())
                .unwrap()
                .year_inferred
        );
        // no year, and the receive year would put it more than a day ahead: the year before
        assert_eq!(t("Dec 31 23:59:59 UTC"), "2025-12-31T23:59:59.000");
        // short fractions read as milliseconds, none at all
        assert_eq!(t("Nov 02 2026 14:14:19.19 UTC"), "2026-11-02T14:14:19.019");
        assert_eq!(t("Nov 02 2026 20:12:57.1 UTC"), "2026-11-02T20:12:57.001");
        assert_eq!(t("Nov 02 2026 06:22:31 UTC"), "2026-11-02T06:22:31.000");
        // accuracy prefixes, other zones
        let p = parse("*Nov 02 2026 06:22:31 UTC", rx()).unwrap();
        assert!(!p.authoritative);
        assert!(
            !parse(".Nov 02 2026 06:22:31 UTC", rx())
                .unwrap()
                .authoritative
        );
        assert!(
            !parse("Nov 02 2026 06:22:31 +0000", rx())
                .unwrap()
                .zone_assumed
        );
        assert!(
            parse("Nov 02 2026 06:22:31 CET", rx())
                .unwrap()
                .zone_assumed
        );
    }

    #[test]
    fn what_is_not_a_stamp_is_refused() {
        for s in [
            "ucm-a2",
            "",
            "Foo 02 2026 06:22:31 UTC",
            "Nov 02 2026 25:22:31 UTC",
            "Nov 31 2026 06:22:31 UTC",
            "Nov 02 2026 13:00:00 PM UTC",
            "Nov 02 2026 06:22 UTC",
        ] {
            assert!(parse(s, rx()).is_none(), "{s}");
        }
    }
}
