//! The WAL record codec: one append's stamped events and input positions as one Arrow IPC
//! stream (positions in the schema metadata), so they become durable together.

use std::io::Cursor;
use std::path::Path;

use arrow::array::RecordBatch;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;

use crate::error::{LogError, Result};
use crate::manifest::Positions;

/// Schema metadata key of a WAL record's positions.
const POSITIONS_KEY: &str = "callstate.positions";

/// Encodes one record, the batch (if any) and the positions (if any), into `buf` (cleared
/// first; reused so that appends do not take fresh memory).
pub fn encode(
    buf: &mut Vec<u8>,
    batch: Option<&RecordBatch>,
    positions: Option<&Positions>,
) -> Result<()> {
    buf.clear();
    let mut schema = callstate_schemas::events_schema().as_ref().clone();
    if let Some(p) = positions {
        let json = serde_json::to_string(p).expect("positions serialize");
        schema = schema.with_metadata([(POSITIONS_KEY.to_string(), json)].into());
    }
    let mut w = StreamWriter::try_new(buf, &schema)?;
    if let Some(b) = batch {
        w.write(b)?;
    }
    Ok(w.finish()?)
}

/// A decoded WAL record.
pub struct Record {
    /// Its events (stamped), in ingest order.
    pub batches: Vec<RecordBatch>,
    /// The input positions it made durable.
    pub positions: Option<Positions>,
}

/// Decodes a record of the WAL file `what`.
pub fn decode(bytes: &[u8], what: &Path) -> Result<Record> {
    let bad = |e: String| LogError::Corrupt {
        path: what.to_path_buf(),
        reason: format!("undecodable WAL record: {e}"),
    };
    let reader = StreamReader::try_new(Cursor::new(bytes), None).map_err(|e| bad(e.to_string()))?;
    let positions = match reader.schema().metadata().get(POSITIONS_KEY) {
        Some(json) => Some(serde_json::from_str(json).map_err(|e| bad(e.to_string()))?),
        None => None,
    };
    let plain = callstate_schemas::events_schema();
    let batches = reader
        .map(|b| {
            let b = b.map_err(|e| bad(e.to_string()))?;
            RecordBatch::try_new(plain.clone(), b.columns().to_vec())
                .map_err(|e| bad(e.to_string()))
        })
        .collect::<Result<_>>()?;
    Ok(Record { batches, positions })
}
