//! Instants as users write them: RFC 3339, epoch milliseconds (Grafana's `${__from}`) or `now`.

use crate::rows::Us;

/// Parses an RFC 3339 instant, epoch milliseconds or `now` into microseconds since the epoch.
pub fn parse_instant(text: &str) -> Result<Us, String> {
    let text = text.trim();
    if text == "now" {
        return Ok(chrono::Utc::now().timestamp_micros());
    }
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<i64>()
            .ok()
            .and_then(|ms| ms.checked_mul(1000))
            .ok_or_else(|| format!("epoch milliseconds out of range: {text}"));
    }
    callstate_schemas::parse_time(text)
        .map(|t| t.timestamp_micros())
        .map_err(|e| format!("{e}; epoch milliseconds are accepted too"))
}

/// Formats microseconds since the epoch as RFC 3339 UTC with microseconds.
pub fn format_instant(t: Us) -> String {
    chrono::DateTime::from_timestamp_micros(t)
        .map(|d| callstate_schemas::format_time(&d))
        .unwrap_or_else(|| t.to_string())
}
