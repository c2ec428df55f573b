//! The NDJSON collector: reads v1 events one per line (plain or gzip), validates them and
//! appends them to the log in batches; every rejected line is reported with its number and
//! reason.
//!
//! A reader thread splits and parses lines while the calling thread appends the previous batch,
//! so parsing and durable appends overlap.

use std::io::{self, BufRead, BufReader, Read};
use std::sync::mpsc;

use chrono::Utc;
use flate2::read::MultiGzDecoder;
use serde::Serialize;

use callstate_schemas::Event;

use crate::log::{Log, Outcome};

/// Longest accepted line, in bytes (newline excluded).
pub const MAX_LINE_BYTES: usize = 1 << 20;
/// Bytes of an oversized line kept in its reject record.
const OVERSIZED_PREVIEW: usize = 256;

/// One rejected line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reject {
    /// 1-based line number in the input.
    pub line: u64,
    /// The field at fault, if the problem is one field.
    pub field: Option<String>,
    /// Why it was rejected.
    pub error: String,
    /// The line as read (lossy UTF-8; an oversized line only starts here).
    pub input: String,
}

/// Counts of one ingest run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Events stored.
    pub accepted: u64,
    /// Events already stored with the same content: dropped and counted.
    pub duplicates: u64,
    /// Lines rejected (each is in the rejects output).
    pub rejected: u64,
    /// Lines read.
    pub lines: u64,
    /// Blank lines, skipped.
    pub empty_lines: u64,
}

/// Where rejects and progress go.
pub trait IngestSink {
    /// Records one rejected line.
    fn reject(&mut self, reject: Reject) -> io::Result<()>;
    /// Called after each durable append; every line up to `through_line` is settled.
    fn acknowledged(&mut self, _summary: &Summary, _through_line: u64) {}
}

/// Collector settings.
#[derive(Debug, Clone)]
pub struct NdjsonOptions {
    /// Lines per append (one WAL record and one sync each).
    pub batch_lines: usize,
}

impl Default for NdjsonOptions {
    fn default() -> Self {
        NdjsonOptions {
            batch_lines: 16_384,
        }
    }
}

/// Wraps `input` in a gzip decoder when it starts with the gzip magic bytes.
pub fn maybe_gunzip<R: Read + Send + 'static>(input: R) -> io::Result<Box<dyn Read + Send>> {
    let mut r = BufReader::with_capacity(256 * 1024, input);
    let head = r.fill_buf()?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(MultiGzDecoder::new(r)))
    } else {
        Ok(Box::new(r))
    }
}

enum Item {
    Event(Event),
    Empty,
    Rejected(Reject),
}

struct Chunk {
    first_line: u64,
    items: Vec<Item>,
}

/// Splits input into lines of at most [`MAX_LINE_BYTES`] without ever holding a longer one.
struct LineSplitter<R> {
    input: R,
    buf: Vec<u8>,
    /// Length of the current line, including bytes not kept because it is oversized.
    line_len: usize,
    done: bool,
}

enum RawLine<'a> {
    Line(&'a [u8]),
    Oversized { len: usize, head: &'a [u8] },
}

impl<R: BufRead> LineSplitter<R> {
    fn new(input: R) -> Self {
        LineSplitter {
            input,
            buf: Vec::with_capacity(4096),
            line_len: 0,
            done: false,
        }
    }

    /// The next line, without its newline; `None` at the end of input.
    fn next_line(&mut self) -> io::Result<Option<RawLine<'_>>> {
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

fn parse_line(line_no: u64, raw: RawLine<'_>) -> Item {
    let reject = |field: Option<String>, error: String, input: &[u8]| {
        Item::Rejected(Reject {
            line: line_no,
            field,
            error,
            input: String::from_utf8_lossy(input).into_owned(),
        })
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
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            return reject(
                None,
                format!("invalid UTF-8 at byte {} of the line", e.valid_up_to() + 1),
                bytes,
            );
        }
    };
    match Event::from_json(text, Utc::now()) {
        Ok(e) => Item::Event(e),
        Err(e) => reject(e.field.clone(), e.to_string(), bytes),
    }
}

/// Reads NDJSON from `input`, appends valid events to `log`, reports rejects to `sink`.
///
/// Returns the counts; an `Err` means an I/O failure (input unreadable, log not writable),
/// after which every event acknowledged through `sink` is still stored.
pub fn ingest<R: Read + Send + 'static>(
    input: R,
    log: &Log,
    opts: &NdjsonOptions,
    sink: &mut dyn IngestSink,
) -> io::Result<Summary> {
    let input = maybe_gunzip(input)?;
    let batch_lines = opts.batch_lines.max(1);
    let (tx, rx) = mpsc::sync_channel::<io::Result<Chunk>>(2);
    let reader = std::thread::Builder::new()
        .name("callstate-ndjson".into())
        .spawn(move || {
            let mut lines = LineSplitter::new(BufReader::with_capacity(1 << 20, input));
            let mut line_no = 0u64;
            loop {
                let mut chunk = Chunk {
                    first_line: line_no + 1,
                    items: Vec::with_capacity(batch_lines),
                };
                while chunk.items.len() < batch_lines {
                    match lines.next_line() {
                        Ok(Some(raw)) => {
                            line_no += 1;
                            chunk.items.push(parse_line(line_no, raw));
                        }
                        Ok(None) => break,
                        Err(e) => {
                            let _ = tx.send(Ok(chunk));
                            let _ = tx.send(Err(e));
                            return;
                        }
                    }
                }
                let last = chunk.items.len() < batch_lines;
                if !chunk.items.is_empty() && tx.send(Ok(chunk)).is_err() {
                    return;
                }
                if last {
                    return;
                }
            }
        })?;

    let mut summary = Summary::default();
    let mut result = Ok(());
    for chunk in rx {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                result = Err(e);
                break;
            }
        };
        if let Err(e) = append_chunk(chunk, log, sink, &mut summary) {
            result = Err(e);
            break;
        }
    }
    // On error the reader is stopped by the closed channel.
    let _ = reader.join();
    result.map(|()| summary)
}

fn append_chunk(
    chunk: Chunk,
    log: &Log,
    sink: &mut dyn IngestSink,
    summary: &mut Summary,
) -> io::Result<()> {
    let through = chunk.first_line + chunk.items.len() as u64 - 1;
    let mut rejects = Vec::new();
    let mut events = Vec::with_capacity(chunk.items.len());
    let mut event_lines = Vec::with_capacity(chunk.items.len());
    for (i, item) in chunk.items.into_iter().enumerate() {
        let line = chunk.first_line + i as u64;
        summary.lines += 1;
        match item {
            Item::Event(e) => {
                events.push(e);
                event_lines.push(line);
            }
            Item::Empty => summary.empty_lines += 1,
            Item::Rejected(r) => rejects.push(r),
        }
    }
    let res = log.append(&events)?;
    summary.accepted += res.accepted as u64;
    summary.duplicates += res.duplicates as u64;
    for ((e, line), outcome) in events.iter().zip(&event_lines).zip(&res.outcomes) {
        if *outcome == Outcome::Conflict {
            rejects.push(Reject {
                line: *line,
                field: Some("seq".into()),
                error: format!(
                    "conflict: (source `{}`, seq {}) is already stored with different content",
                    e.source, e.seq
                ),
                input: e.to_json(),
            });
        }
    }
    rejects.sort_by_key(|r| r.line);
    summary.rejected += rejects.len() as u64;
    for r in rejects {
        sink.reject(r)?;
    }
    sink.acknowledged(summary, through);
    Ok(())
}
