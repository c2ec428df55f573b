//! Calendar windows of SLA reports: days, ISO weeks and months in an IANA time zone.

use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

use callstate_schemas::Us;

/// A calendar period length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// Calendar days.
    Day,
    /// ISO weeks (Monday to Monday).
    Week,
    /// Calendar months.
    Month,
}

impl FromStr for Period {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "day" => Ok(Period::Day),
            "week" => Ok(Period::Week),
            "month" => Ok(Period::Month),
            _ => Err(format!("unknown period `{s}`; expected day, week or month")),
        }
    }
}

/// Parses an IANA time zone name.
pub fn parse_tz(name: &str) -> crate::error::Result<Tz> {
    name.parse::<Tz>().map_err(|_| {
        crate::error::QueryError::bad(
            "tz",
            format!("unknown time zone `{name}` (IANA names, e.g. Europe/Paris, UTC)"),
        )
    })
}

/// The first instant of local day `d` in `tz` (midnight, or the first hour after a DST gap).
pub fn local_midnight(tz: Tz, d: NaiveDate) -> Us {
    // Midnight may not exist (DST gap): take the first instant of the day that does.
    let mut t = d.and_hms_opt(0, 0, 0).expect("midnight");
    for _ in 0..4 {
        if let Some(dt) = tz.from_local_datetime(&t).earliest() {
            return dt.with_timezone(&Utc).timestamp_micros();
        }
        t += Duration::hours(1);
    }
    tz.from_utc_datetime(&t).timestamp_micros()
}

/// Calendar periods in `tz` that overlap [from, to), clipped to it.
pub fn calendar_windows(from: Us, to: Us, period: Period, tz: Tz) -> Vec<(Us, Us)> {
    let Some(start) = DateTime::from_timestamp_micros(from) else {
        return Vec::new();
    };
    let local = start.with_timezone(&tz).date_naive();
    let mut d = match period {
        Period::Day => local,
        Period::Week => local - Duration::days(local.weekday().num_days_from_monday() as i64),
        Period::Month => local.with_day(1).expect("day 1"),
    };
    let mut out = Vec::new();
    loop {
        let next = match period {
            Period::Day => d + Duration::days(1),
            Period::Week => d + Duration::days(7),
            Period::Month => {
                let (y, m) = if d.month() == 12 {
                    (d.year() + 1, 1)
                } else {
                    (d.year(), d.month() + 1)
                };
                NaiveDate::from_ymd_opt(y, m, 1).expect("first of month")
            }
        };
        let (a, b) = (local_midnight(tz, d), local_midnight(tz, next));
        if a >= to {
            break;
        }
        if b > from {
            out.push((a.max(from), b.min(to)));
        }
        d = next;
    }
    out
}

/// The windows of a report over [from, to): the whole window, or, with `period`, its
/// calendar periods in `tz` (IANA name, default UTC). Errors name the argument at fault.
pub fn report_windows(
    from: Us,
    to: Us,
    period: Option<&str>,
    tz: Option<&str>,
) -> crate::error::Result<Vec<(Us, Us)>> {
    use crate::error::QueryError;
    match period {
        None => Ok(vec![(from, to)]),
        Some(p) => {
            let period: Period = p
                .parse()
                .map_err(|e: String| QueryError::bad("period", e))?;
            let tz = parse_tz(tz.unwrap_or("UTC"))?;
            Ok(calendar_windows(from, to, period, tz))
        }
    }
}
