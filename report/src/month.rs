//! The calendar month a report covers, in a time zone, and the month before it.

use chrono::{Datelike, NaiveDate};
use chrono_tz::Tz;

use callstate_query::model::calendar::{local_midnight, parse_tz};
use callstate_query::{QueryError, Result};
use callstate_schemas::Us;

/// A calendar month in a time zone: [from, to) and the previous month's window.
#[derive(Debug, Clone, PartialEq)]
pub struct Month {
    /// Its first day.
    pub first: NaiveDate,
    /// IANA zone the month's midnights are in.
    pub tz: Tz,
    /// First instant of the month.
    pub from: Us,
    /// First instant of the next month.
    pub to: Us,
    /// The previous month's first instant (it ends at `from`).
    pub prev_from: Us,
}

fn first_of(y: i32, m: u32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(y, m, 1)
}

fn shift(d: NaiveDate, months: i32) -> Option<NaiveDate> {
    let n = d.year() * 12 + d.month0() as i32 + months;
    first_of(n.div_euclid(12), n.rem_euclid(12) as u32 + 1)
}

impl Month {
    /// Parses `YYYY-MM` in the IANA zone `tz` (field names in errors: `month`, `tz`).
    pub fn parse(text: &str, tz: &str) -> Result<Month> {
        let bad = || QueryError::bad("month", format!("`{text}` is not a month like 2026-10"));
        let (y, m) = text.trim().split_once('-').ok_or_else(bad)?;
        let (y, m): (i32, u32) = (y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if !(1970..=9999).contains(&y) {
            return Err(bad());
        }
        let first = first_of(y, m).ok_or_else(bad)?;
        let tz = parse_tz(tz)?;
        let next = shift(first, 1).ok_or_else(bad)?;
        let prev = shift(first, -1).ok_or_else(bad)?;
        Ok(Month {
            first,
            tz,
            from: local_midnight(tz, first),
            to: local_midnight(tz, next),
            prev_from: local_midnight(tz, prev),
        })
    }

    /// The month containing instant `t` in `tz`.
    pub fn containing(t: Us, tz: &str) -> Result<Month> {
        let zone = parse_tz(tz)?;
        let d = chrono::DateTime::from_timestamp_micros(t)
            .ok_or_else(|| QueryError::bad("month", "instant out of range"))?
            .with_timezone(&zone);
        Month::parse(&format!("{:04}-{:02}", d.year(), d.month()), tz)
    }

    /// `YYYY-MM`.
    pub fn label(&self) -> String {
        self.first.format("%Y-%m").to_string()
    }

    /// The previous month's `YYYY-MM`.
    pub fn prev_label(&self) -> String {
        shift(self.first, -1).map_or_else(String::new, |d| d.format("%Y-%m").to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use callstate_schemas::parse_instant;

    #[test]
    fn a_month_is_its_local_midnights_and_the_one_before() {
        let m = Month::parse("2026-10", "Europe/Paris").unwrap();
        assert_eq!(m.from, parse_instant("2026-09-30T22:00:00Z").unwrap());
        // the clocks go back on 25 October: November starts at 23:00 UTC
        assert_eq!(m.to, parse_instant("2026-10-31T23:00:00Z").unwrap());
        assert_eq!(m.prev_from, parse_instant("2026-08-31T22:00:00Z").unwrap());
        assert_eq!(
            (m.label(), m.prev_label()),
            ("2026-10".into(), "2026-09".into())
        );
        let j = Month::parse("2027-01", "UTC").unwrap();
        assert_eq!(j.prev_label(), "2026-12");
        assert_eq!(j.prev_from, parse_instant("2026-12-01T00:00:00Z").unwrap());
    }

    #[test]
    fn bad_months_and_zones_are_named() {
        for bad in ["2026-13", "2026", "Oct 2026", "2026-00", "0-01"] {
            let e = Month::parse(bad, "UTC").unwrap_err().to_string();
            assert!(e.starts_with("month:"), "{bad}: {e}");
        }
        let e = Month::parse("2026-10", "Mars/Olympus")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("tz:"), "{e}");
    }
}
