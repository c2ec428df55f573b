//! The one front end of every collector (NDJSON files, Kafka message values, HTTP bodies):
//! lines are split the same way (LF or CRLF, a UTF-8 byte-order mark before the first line,
//! blank lines skipped, lines longer than [`MAX_LINE_BYTES`] rejected without being held),
//! each line is validated against the v1 contract, and whatever is not stored is described by
//! one [`Reject`]: where it came from, its line, the field at fault and why.

use std::io::{self, BufRead};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::value::RawValue;

use callstate_schemas::{Event, ParsedEvent};

/// Longest accepted line, in bytes (newline excluded).
pub const MAX_LINE_BYTES: usize = 1 << 20;
/// Bytes of an oversized line kept in its reject.
pub const OVERSIZED_PREVIEW: usize = 256;

/// Something a collector did not store, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reject {
    /// Where it came from: a file name, `stdin`, `topic/partition@offset`, `http`.
    pub origin: String,
    /// 1-based line in its input (an NDJSON line, or an element of a JSON array); 0 when
    /// the whole input is at fault.
    pub line: u64,
    /// The field at fault, if the problem is one field.
    pub field: Option<String>,
    /// Why it was rejected.
    #[serde(rename = "error")]
    pub reason: String,
    /// The input as read (lossy UTF-8; an oversized line only starts here).
    #[serde(rename = "input")]
    pub raw: String,
}

impl Reject {
    /// A reject of `raw`.
    pub fn new(origin: &str, line: u64, field: Option<String>, reason: String, raw: &[u8]) -> Self {
        Reject {
            origin: origin.to_string(),
            line,
            field,
            reason,
            raw: String::from_utf8_lossy(raw).into_owned(),
        }
    }

    /// The reject of an event whose `(source, seq)` is stored with different content.
    pub fn conflict(origin: &str, line: u64, source: &str, seq: u64, raw: &[u8]) -> Self {
        Reject::new(
            origin,
            line,
            Some("seq".into()),
            format!(
                "conflict: (source `{source}`, seq {seq}) is already stored with different content"
            ),
            raw,
        )
    }
}

/// One line as split: its bytes, or the head of a line over the size limit.
pub enum RawLine<'a> {
    /// A line within the limit (newline and a trailing CR removed).
    Line(&'a [u8]),
    /// A line over [`MAX_LINE_BYTES`]: its full length and the bytes kept of its start.
    Oversized {
        /// Its length in bytes.
        len: usize,
        /// Its first bytes (up to the limit).
        head: &'a [u8],
    },
}

impl<'a> RawLine<'a> {
    /// The bytes held (all of a line, the head of an oversized one).
    pub fn bytes(&self) -> &'a [u8] {
        match self {
            RawLine::Line(b) | RawLine::Oversized { head: b, .. } => b,
        }
    }
}

/// Splits input into lines of at most [`MAX_LINE_BYTES`] without ever holding a longer one.
pub struct LineSplitter<R> {
    input: R,
    buf: Vec<u8>,
    /// Length of the current line, including bytes not kept because it is oversized.
    line_len: usize,
    done: bool,
}

impl<R: BufRead> LineSplitter<R> {
    /// Splits `input`.
    pub fn new(input: R) -> Self {
        LineSplitter {
            input,
            buf: Vec::with_capacity(4096),
            line_len: 0,
            done: false,
        }
    }

    /// The next line, without its newline; `None` at the end of input.
    pub fn next_line(&mut self) -> io::Result<Option<RawLine<'_>>> {
        if self.done {
            return Ok(None);
        }
        self.buf.clear();
        self.line_len = 0;
        loop {
            let available = match self.input.fill_buf() {
                Ok(a) => a,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                self.done = true;
                if self.line_len == 0 {
                    return Ok(None);
                }
                break;
            }
            let (take, found) = match memchr::memchr(b'\n', available) {
                Some(i) => (i, true),
                None => (available.len(), false),
            };
            let room = (MAX_LINE_BYTES + 1).saturating_sub(self.buf.len());
            self.buf.extend_from_slice(&available[..take.min(room)]);
            self.line_len += take;
            self.input.consume(take + usize::from(found));
            if found {
                break;
            }
        }
        if self.buf.last() == Some(&b'\r') && self.line_len == self.buf.len() {
            self.buf.pop();
            self.line_len -= 1;
        }
        if self.line_len > MAX_LINE_BYTES {
            let head = &self.buf[..OVERSIZED_PREVIEW.min(self.buf.len())];
            return Ok(Some(RawLine::Oversized {
                len: self.line_len,
                head,
            }));
        }
        Ok(Some(RawLine::Line(&self.buf)))
    }
}

/// What one line is.
// Returned by value and consumed at once: boxing the event would cost an allocation per line.
#[allow(clippy::large_enum_variant)]
pub enum Item<'a> {
    /// A valid event.
    Event(ParsedEvent<'a>),
    /// A blank line (skipped, counted).
    Empty,
    /// Not an event.
    Rejected(Reject),
}

/// Validates line `line_no` of `origin`; `now` bounds event times in the future.
pub fn parse_line<'a>(
    origin: &str,
    line_no: u64,
    raw: RawLine<'a>,
    now: DateTime<Utc>,
) -> Item<'a> {
    let reject = |field: Option<String>, reason: String, input: &[u8]| {
        Item::Rejected(Reject::new(origin, line_no, field, reason, input))
    };
    let bytes = match raw {
        RawLine::Oversized { len, head } => {
            return reject(
                None,
                format!("line is {len} bytes, longer than the {MAX_LINE_BYTES}-byte limit"),
                head,
            );
        }
        RawLine::Line(b) => b,
    };
    let bytes = if line_no == 1 {
        bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes)
    } else {
        bytes
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Item::Empty;
    }
    // simdutf8 checks fast; std's error says where the line goes wrong.
    let text = match simdutf8::basic::from_utf8(bytes).or_else(|_| std::str::from_utf8(bytes)) {
        Ok(t) => t,
        Err(e) => {
            return reject(
                None,
                format!("invalid UTF-8 at byte {} of the line", e.valid_up_to() + 1),
                bytes,
            );
        }
    };
    match ParsedEvent::parse(text, now) {
        Ok(e) => Item::Event(e),
        Err(e) => reject(e.field.clone(), e.to_string(), bytes),
    }
}

/// The events of an input held in memory, and what was not an event.
#[derive(Debug, Default)]
pub struct Parsed {
    /// Valid events, in input order.
    pub events: Vec<Event>,
    /// Per event: its line.
    pub lines: Vec<u64>,
    /// Per event: its text as received (for a conflict's reject).
    pub raws: Vec<Box<[u8]>>,
    /// Lines (or array elements) that are not events.
    pub rejects: Vec<Reject>,
    /// Blank lines skipped.
    pub empty_lines: u64,
}

impl Parsed {
    fn push(&mut self, origin: &str, line_no: u64, raw: RawLine<'_>, now: DateTime<Utc>) {
        let bytes = raw.bytes();
        match parse_line(origin, line_no, raw, now) {
            Item::Event(e) => {
                self.events.push(e.into_event());
                self.lines.push(line_no);
                self.raws.push(bytes.into());
            }
            Item::Empty => self.empty_lines += 1,
            Item::Rejected(r) => self.rejects.push(r),
        }
    }

    /// A reject for every event an append refused as a conflict (one outcome per event).
    pub fn add_conflicts(&mut self, origin: &str, outcomes: &[callstate_log::Outcome]) {
        for (i, o) in outcomes.iter().enumerate() {
            if *o == callstate_log::Outcome::Conflict {
                let e = &self.events[i];
                let r = Reject::conflict(origin, self.lines[i], &e.source, e.seq, &self.raws[i]);
                self.rejects.push(r);
            }
        }
        self.rejects.sort_by_key(|r| r.line);
    }
}

/// Validates every NDJSON line of `bytes` (a Kafka message value, an HTTP body).
pub fn parse_lines(origin: &str, bytes: &[u8], now: DateTime<Utc>) -> Parsed {
    let mut out = Parsed::default();
    let mut lines = LineSplitter::new(bytes);
    let mut n = 0;
    // reading from memory cannot fail
    while let Ok(Some(raw)) = lines.next_line() {
        n += 1;
        out.push(origin, n, raw, now);
    }
    out
}

/// Validates an HTTP body: a JSON array of events (elements numbered from 1), one JSON event
/// (with `json`, the `application/json` content type), or NDJSON. `Err` when the whole body
/// is at fault (a broken array).
pub fn parse_body(
    origin: &str,
    body: &[u8],
    json: bool,
    now: DateTime<Utc>,
) -> Result<Parsed, Reject> {
    let start = body
        .strip_prefix(b"\xef\xbb\xbf")
        .unwrap_or(body)
        .trim_ascii_start();
    let whole = |reason: String| {
        Reject::new(
            origin,
            0,
            None,
            reason,
            &body[..body.len().min(OVERSIZED_PREVIEW)],
        )
    };
    if start.starts_with(b"[") || (json && start.starts_with(b"{")) {
        let text = std::str::from_utf8(start).map_err(|e| {
            whole(format!(
                "body: invalid UTF-8 at byte {}",
                e.valid_up_to() + 1
            ))
        })?;
        let items: Vec<&RawValue> = if start.starts_with(b"[") {
            serde_json::from_str(text)
                .map_err(|e| whole(format!("body: not a JSON array of events: {e}")))?
        } else {
            match serde_json::from_str::<&RawValue>(text) {
                Ok(one) => vec![one],
                // not one JSON value: read it as NDJSON, line by line
                Err(_) => return Ok(parse_lines(origin, body, now)),
            }
        };
        let mut out = Parsed::default();
        for (i, v) in items.iter().enumerate() {
            let text = v.get().as_bytes();
            if text.len() > MAX_LINE_BYTES {
                out.rejects.push(Reject::new(
                    origin,
                    i as u64 + 1,
                    None,
                    format!(
                        "event is {} bytes, longer than the {MAX_LINE_BYTES}-byte limit",
                        text.len()
                    ),
                    &text[..OVERSIZED_PREVIEW],
                ));
                continue;
            }
            out.push(origin, i as u64 + 1, RawLine::Line(text), now);
        }
        return Ok(out);
    }
    Ok(parse_lines(origin, body, now))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"source":"b","seq":1,"time":"2026-11-24T10:00:00Z","cluster":"CL1","kind":"collector_heartbeat"}"#;

    fn now() -> DateTime<Utc> {
        "2026-11-24T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn lines_split_alike_for_every_input() {
        let text = format!(
            "\u{feff}{GOOD}\r\n\n   \n{}\n{{\"x\":1}}\n\u{feff}{GOOD}",
            GOOD.replace("\"seq\":1", "\"seq\":2")
        );
        let p = parse_lines("t", text.as_bytes(), now());
        assert_eq!(p.events.len(), 2);
        assert_eq!(p.lines, vec![1, 4]);
        assert_eq!(p.empty_lines, 2);
        // a byte-order mark only counts before the first line
        assert_eq!(
            p.rejects.iter().map(|r| r.line).collect::<Vec<_>>(),
            vec![5, 6]
        );
        assert!(p.rejects.iter().all(|r| r.origin == "t"));
        // the same text as an HTTP body
        let b = parse_body("http", text.as_bytes(), false, now()).unwrap();
        assert_eq!((b.events.len(), b.lines.clone()), (2, vec![1, 4]));
    }

    #[test]
    fn oversized_lines_are_rejected_without_being_kept() {
        let long = format!("{}\n{GOOD}\n", "x".repeat(MAX_LINE_BYTES + 10));
        let p = parse_lines("t", long.as_bytes(), now());
        assert_eq!(p.events.len(), 1);
        assert_eq!(p.rejects[0].line, 1);
        assert!(p.rejects[0].reason.contains("longer than"));
        assert_eq!(p.rejects[0].raw.len(), OVERSIZED_PREVIEW);
    }

    #[test]
    fn bodies_as_arrays_objects_and_broken_arrays() {
        let arr = format!("[{GOOD}, {{\"kind\": 5}}]");
        let p = parse_body("http", arr.as_bytes(), false, now()).unwrap();
        assert_eq!((p.events.len(), p.rejects[0].line), (1, 2));
        let one = parse_body("http", GOOD.as_bytes(), true, now()).unwrap();
        assert_eq!(one.events.len(), 1);
        let broken = parse_body("http", b"[{\"a\":1}", false, now()).unwrap_err();
        assert_eq!(broken.line, 0);
        assert!(broken.reason.contains("JSON array"));
        let bad_utf8 = parse_lines("t", b"{\"source\": \"b\xff\"}\n", now());
        assert!(
            bad_utf8.rejects[0]
                .reason
                .contains("invalid UTF-8 at byte 14")
        );
    }
}
