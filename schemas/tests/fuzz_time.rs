//! Fuzzing time as users write it: RFC 3339 instants (any text, and every valid form from
//! its components), epoch milliseconds, `now`, and durations. Nothing panics; what is
//! accepted means what chrono says it means; durations print back to themselves.
//!
//! A longer run: `PROPTEST_CASES=100000 cargo test -p callstate-schemas --test fuzz_time`.

use callstate_schemas::time::DisplayDuration;
use callstate_schemas::{format_instant, parse_duration, parse_instant, parse_time};
use chrono::{DateTime, FixedOffset, NaiveDate, TimeZone, Utc};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(512)
    ))]

    #[test]
    fn any_text_is_an_instant_or_an_error(text in "\\PC{0,64}") {
        let _ = parse_instant(&text);
        let _ = parse_time(&text);
        let _ = parse_duration(&text);
    }

    #[test]
    fn near_instants(y in 0i32..12000, mo in 0u32..14, d in 0u32..33, h in 0u32..26, mi in 0u32..62,
                     s in 0u32..62, frac in proptest::option::of(0u32..1_000_000_000),
                     off in proptest::option::of(-1500i32..1500)) {
        let mut text = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}");
        if let Some(f) = frac {
            text.push_str(&format!(".{f:09}"));
        }
        match off {
            None => text.push('Z'),
            Some(o) => text.push_str(&format!("{}{:02}:{:02}", if o < 0 { '-' } else { '+' }, o.abs() / 60, o.abs() % 60)),
        }
        let chrono = DateTime::parse_from_rfc3339(&text)
            .ok()
            .and_then(|t| DateTime::from_timestamp_micros(t.timestamp_micros()));
        let ours = parse_time(&text).ok();
        prop_assert_eq!(ours, chrono, "{}", text);
        if let Some(t) = ours {
            // formatted back, it is the same instant
            prop_assert_eq!(parse_instant(&format_instant(t.timestamp_micros())).unwrap(), t.timestamp_micros());
        }
    }

    #[test]
    fn valid_instants(days in 0i64..2_900_000, secs in 0u32..86_400, micros in 0u32..1_000_000, off in -86_000i32..86_000) {
        let date = NaiveDate::from_num_days_from_ce_opt(719_163 + days as i32).unwrap();
        let naive = date.and_hms_micro_opt(secs / 3600, secs / 60 % 60, secs % 60, micros).unwrap();
        let zone = FixedOffset::east_opt(off / 60 * 60).unwrap();
        let t = zone.from_local_datetime(&naive).single().unwrap();
        for text in [t.to_rfc3339(), t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true), t.with_timezone(&Utc).to_rfc3339()] {
            if let Ok(us) = parse_instant(&text) {
                prop_assert_eq!(us, t.timestamp_micros(), "{}", text);
            } else {
                // only years beyond 9999 or before 1970's... chrono must agree it is odd
                prop_assert!(DateTime::parse_from_rfc3339(&text).is_err(), "{}", text);
            }
        }
        let ms = t.timestamp_millis();
        if ms >= 0 {
            prop_assert_eq!(parse_instant(&ms.to_string()).unwrap(), ms * 1000);
        }
    }

    #[test]
    fn durations_print_back(us in 0i64..(400 * 86_400_000_000)) {
        let text = DisplayDuration(us).to_string();
        prop_assert_eq!(parse_duration(&text).unwrap(), us, "{}", text);
    }
}
