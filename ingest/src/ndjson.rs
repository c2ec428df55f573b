//! The NDJSON collector: reads v1 events one per line (plain or gzip), validates them and
//! appends them to the log in batches; every rejected line is reported with its number and
//! reason.
//!
//! A reader thread splits the input into blocks of lines, parser threads (one per core) turn
//! blocks into Arrow batches, and the calling thread appends them in input order, so reading,
//! parsing and durable appends overlap and parsing uses every core.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::sync::{Arc, Mutex, mpsc};

use arrow::array::{ArrayAccessor, AsArray, RecordBatch, StringArray};
use arrow::datatypes::{Int32Type, UInt64Type};
use chrono::Utc;
use flate2::read::MultiGzDecoder;
use serde::Serialize;

use callstate_log::{Log, Outcome};
use callstate_schemas::EventBatchBuilder;

use crate::error::{IngestError, Result};
use crate::frontend::{Item, LineSplitter, RawLine, Reject, parse_line};

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
    fn reject(&mut self, reject: Reject) -> std::io::Result<()>;
    /// Called after each durable append; every line up to `through_line` is settled.
    fn acknowledged(&mut self, _summary: &Summary, _through_line: u64) {}
}

/// Collector settings.
#[derive(Debug, Clone)]
pub struct NdjsonOptions {
    /// What rejects name as their origin (the file name, `stdin`).
    pub origin: String,
    /// Lines per append (one WAL record and one sync each).
    pub batch_lines: usize,
    /// Parser threads; `None`: one per core.
    pub parsers: Option<usize>,
}

impl Default for NdjsonOptions {
    fn default() -> Self {
        NdjsonOptions {
            origin: "input".into(),
            batch_lines: 16_384,
            parsers: None,
        }
    }
}

/// Wraps `input` in a gzip decoder when it starts with the gzip magic bytes.
pub fn maybe_gunzip<R: Read + Send + 'static>(input: R) -> Result<Box<dyn Read + Send>> {
    let mut r = BufReader::with_capacity(256 * 1024, input);
    let head = r.fill_buf().map_err(IngestError::Input)?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(MultiGzDecoder::new(r)))
    } else {
        Ok(Box::new(r))
    }
}

/// A run of consecutive input lines, as the reader hands them to a parser.
struct Block {
    first_line: u64,
    /// The lines' bytes, back to back (an oversized line only its head).
    data: Vec<u8>,
    /// Per line: its range in `data`, and its full length when it is oversized.
    lines: Vec<(usize, usize, Option<usize>)>,
}

impl Block {
    fn line(&self, i: usize) -> RawLine<'_> {
        let (start, end, oversized) = self.lines[i];
        let bytes = &self.data[start..end];
        match oversized {
            Some(len) => RawLine::Oversized { len, head: bytes },
            None => RawLine::Line(bytes),
        }
    }
}

/// A parsed block: its events as one `events` batch, and what was not an event.
struct Parsed {
    block: Block,
    /// The batch of the events (content hashes set; ingest columns left to the log).
    batch: Option<RecordBatch>,
    /// Line number of each row of `batch`.
    event_lines: Vec<u64>,
    rejects: Vec<Reject>,
    empty_lines: u64,
}

/// Parses every line of a block into one batch of events.
fn parse_block(origin: &str, block: Block) -> Parsed {
    // One clock read per block: the 24 h future limit does not need finer.
    let now = Utc::now();
    let mut builder = EventBatchBuilder::with_capacity(block.lines.len());
    let mut event_lines = Vec::with_capacity(block.lines.len());
    let mut rejects = Vec::new();
    let mut empty_lines = 0;
    let mut scratch = Vec::with_capacity(512);
    for i in 0..block.lines.len() {
        let line_no = block.first_line + i as u64;
        match parse_line(origin, line_no, block.line(i), now) {
            Item::Event(e) => {
                let view = e.view();
                builder.append_unstamped(&view, view.content_hash_with(&mut scratch));
                event_lines.push(line_no);
            }
            Item::Empty => empty_lines += 1,
            Item::Rejected(r) => rejects.push(r),
        }
    }
    Parsed {
        block,
        batch: (!builder.is_empty()).then(|| builder.finish()),
        event_lines,
        rejects,
        empty_lines,
    }
}

/// Reads lines into blocks of `batch_lines` and sends them, numbered, to the parsers.
/// Appended blocks come back through `free` and are filled again, so the reader does not
/// take fresh memory for every block.
fn read_blocks(
    input: Box<dyn Read + Send>,
    batch_lines: usize,
    tx: mpsc::SyncSender<(u64, std::io::Result<Block>)>,
    free: mpsc::Receiver<Block>,
) {
    let mut lines = LineSplitter::new(BufReader::with_capacity(1 << 20, input));
    let mut line_no = 0u64;
    for index in 0.. {
        let mut block = match free.try_recv() {
            Ok(mut b) => {
                b.data.clear();
                b.lines.clear();
                b.first_line = line_no + 1;
                b
            }
            Err(_) => Block {
                first_line: line_no + 1,
                data: Vec::with_capacity(batch_lines * 256),
                lines: Vec::with_capacity(batch_lines),
            },
        };
        let mut failed = None;
        while block.lines.len() < batch_lines {
            let (bytes, oversized) = match lines.next_line() {
                Ok(Some(RawLine::Line(b))) => (b, None),
                Ok(Some(RawLine::Oversized { len, head })) => (head, Some(len)),
                Ok(None) => break,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            };
            line_no += 1;
            let start = block.data.len();
            block.data.extend_from_slice(bytes);
            block.lines.push((start, block.data.len(), oversized));
        }
        let last = failed.is_some() || block.lines.len() < batch_lines;
        if !block.lines.is_empty() && tx.send((index, Ok(block))).is_err() {
            return;
        }
        if let Some(e) = failed {
            let _ = tx.send((index + 1, Err(e)));
        }
        if last {
            return;
        }
    }
}

/// Reads NDJSON from `input`, appends valid events to `log`, reports rejects to `sink`.
///
/// A reader thread cuts the input into blocks of `batch_lines` lines, parser threads (one per
/// core) turn each block into a batch of events, and the calling thread appends the batches
/// to the log in input order, one durable append each.
///
/// Returns the counts; an `Err` means an I/O failure (input unreadable, log not writable),
/// after which every event acknowledged through `sink` is still stored.
pub fn ingest<R: Read + Send + 'static>(
    input: R,
    log: &Log,
    opts: &NdjsonOptions,
    sink: &mut dyn IngestSink,
) -> Result<Summary> {
    let input = maybe_gunzip(input)?;
    let batch_lines = opts.batch_lines.max(1);
    let parsers = opts
        .parsers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let (block_tx, block_rx) = mpsc::sync_channel::<(u64, std::io::Result<Block>)>(parsers);
    let (parsed_tx, parsed_rx) = mpsc::sync_channel::<(u64, std::io::Result<Parsed>)>(parsers);
    let (free_tx, free_rx) = mpsc::channel::<Block>();
    let reader = std::thread::Builder::new()
        .name("callstate-ndjson".into())
        .spawn(move || read_blocks(input, batch_lines, block_tx, free_rx))
        .map_err(IngestError::Thread)?;
    let block_rx = Arc::new(Mutex::new(block_rx));
    let mut workers = Vec::with_capacity(parsers);
    for n in 0..parsers {
        let (rx, tx) = (block_rx.clone(), parsed_tx.clone());
        let origin = opts.origin.clone();
        workers.push(
            std::thread::Builder::new()
                .name(format!("callstate-parse-{n}"))
                .spawn(move || {
                    loop {
                        let next = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        let Ok((index, block)) = next else { return };
                        let parsed = block.map(|b| parse_block(&origin, b));
                        if tx.send((index, parsed)).is_err() {
                            return;
                        }
                    }
                })
                .map_err(IngestError::Thread)?,
        );
    }
    drop((block_rx, parsed_tx));

    // Blocks arrive in any order; they are appended in input order.
    let mut summary = Summary::default();
    let mut result = Ok(());
    let mut waiting = BTreeMap::new();
    let mut next = 0u64;
    'recv: for (index, parsed) in parsed_rx.iter() {
        waiting.insert(index, parsed);
        while let Some(parsed) = waiting.remove(&next) {
            next += 1;
            let appended = parsed
                .map_err(IngestError::Input)
                .and_then(|p| append_parsed(&opts.origin, p, log, sink, &mut summary));
            match appended {
                Ok(block) => {
                    let _ = free_tx.send(block);
                }
                Err(e) => {
                    result = Err(e);
                    break 'recv;
                }
            }
        }
    }
    // On error the reader and the parsers are stopped by the closed channels.
    drop(parsed_rx);
    let _ = reader.join();
    for w in workers {
        let _ = w.join();
    }
    result.map(|()| summary)
}

/// Appends one parsed block; returns the block for reuse.
fn append_parsed(
    origin: &str,
    parsed: Parsed,
    log: &Log,
    sink: &mut dyn IngestSink,
    summary: &mut Summary,
) -> Result<Block> {
    let Parsed {
        block,
        batch,
        event_lines,
        mut rejects,
        empty_lines,
    } = parsed;
    let through = block.first_line + block.lines.len() as u64 - 1;
    summary.lines += block.lines.len() as u64;
    summary.empty_lines += empty_lines;
    if let Some(batch) = batch {
        let res = log.append_batch(&batch, None)?;
        summary.accepted += res.accepted as u64;
        summary.duplicates += res.duplicates as u64;
        let source = batch
            .column_by_name("source")
            .and_then(|c| c.as_dictionary_opt::<Int32Type>())
            .and_then(|d| d.downcast_dict::<StringArray>())
            .expect("events batches have a source dictionary column");
        let seq = batch
            .column_by_name("seq")
            .and_then(|c| c.as_primitive_opt::<UInt64Type>())
            .expect("events batches have a seq column");
        for (row, (line, outcome)) in event_lines.iter().zip(&res.outcomes).enumerate() {
            if *outcome == Outcome::Conflict {
                let text = block.line((line - block.first_line) as usize).bytes();
                let (source, seq) = (source.value(row), seq.value(row));
                rejects.push(Reject::conflict(origin, *line, source, seq, text));
            }
        }
    }
    rejects.sort_by_key(|r| r.line);
    summary.rejected += rejects.len() as u64;
    for r in rejects {
        sink.reject(r).map_err(IngestError::Rejects)?;
    }
    sink.acknowledged(summary, through);
    Ok(block)
}
