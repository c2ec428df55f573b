//! How figures read in the report: escaped text, percentages, durations, dates.

use chrono::DateTime;
use chrono_tz::Tz;

use callstate_schemas::Us;

/// Text escaped for HTML/XML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => o.push('\u{FFFD}'),
            c => o.push(c),
        }
    }
    o
}

/// A ratio as a percentage with three decimals (`99.953 %`); `—` for none.
pub fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_string(), |v| format!("{:.3} %", v * 100.0))
}

/// A change in percentage points with its sign (`+0.012 pp`).
pub fn pp(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_string(), |v| format!("{v:+.3} pp"))
}

/// Seconds as a duration a person reads: `45 s`, `12 min 05 s`, `3 h 04 min`, `2 d 05 h`.
pub fn dur(v: Option<f64>) -> String {
    let Some(v) = v else {
        return "—".to_string();
    };
    let neg = v < 0.0;
    let s = v.abs().round() as u64;
    let text = if s < 60 {
        format!("{s} s")
    } else if s < 3600 {
        format!("{} min {:02} s", s / 60, s % 60)
    } else if s < 86_400 {
        format!("{} h {:02} min", s / 3600, s % 3600 / 60)
    } else {
        format!("{} d {:02} h", s / 86_400, s % 86_400 / 3600)
    };
    if neg { format!("−{text}") } else { text }
}

/// An instant in the report's zone: `2026-10-14 09:03:12`.
pub fn local(t: Us, tz: Tz) -> String {
    DateTime::from_timestamp_micros(t).map_or_else(
        || t.to_string(),
        |d| d.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S").to_string(),
    )
}

/// A day in the report's zone: `2026-10-14`.
pub fn day(t: Us, tz: Tz) -> String {
    DateTime::from_timestamp_micros(t).map_or_else(
        || t.to_string(),
        |d| d.with_timezone(&tz).format("%Y-%m-%d").to_string(),
    )
}

/// A number for a `data-v` attribute: exact (shortest round-trip form); empty for none.
pub fn exact(v: Option<f64>) -> String {
    v.map_or_else(String::new, |v| format!("{v:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_read_as_people_write_them() {
        assert_eq!(esc("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
        assert_eq!(pct(Some(0.999534)), "99.953 %");
        assert_eq!(pct(None), "—");
        assert_eq!(pp(Some(0.0123)), "+0.012 pp");
        assert_eq!(dur(Some(45.2)), "45 s");
        assert_eq!(dur(Some(725.0)), "12 min 05 s");
        assert_eq!(dur(Some(11_040.0)), "3 h 04 min");
        assert_eq!(dur(Some(-190_800.0)), "−2 d 05 h");
        assert_eq!(exact(Some(0.1)), "0.1");
    }
}
