//! Parquet segments: immutable files of events sorted by (device, time, ingest_seq).

use std::fs::File;
use std::io;
use std::path::Path;

use arrow::array::{Array, RecordBatch, TimestampMicrosecondArray, UInt64Array};
use arrow::compute::{
    SortColumn, SortOptions, concat_batches, lexsort_to_indices, take_record_batch,
};
use parquet::arrow::ArrowWriter;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use callstate_schemas::events_schema;

use crate::manifest::SegmentMeta;

/// Rows per Parquet row group.
pub const ROW_GROUP_ROWS: usize = 128 * 1024;

fn err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

fn col_index(name: &str) -> usize {
    events_schema().index_of(name).expect("known column")
}

/// Concatenates batches and sorts them by (device, time, ingest_seq), devices without a
/// device (provider, node, configuration events) last.
pub fn sort_for_segment(batches: &[RecordBatch]) -> io::Result<RecordBatch> {
    let all = concat_batches(&events_schema(), batches).map_err(err)?;
    let key = |name: &str| SortColumn {
        values: all.column(col_index(name)).clone(),
        options: Some(SortOptions {
            descending: false,
            nulls_first: false,
        }),
    };
    let idx =
        lexsort_to_indices(&[key("device"), key("time"), key("ingest_seq")], None).map_err(err)?;
    take_record_batch(&all, &idx).map_err(err)
}

/// Writer settings of segments and digests: zstd, page statistics, sorting columns.
pub(crate) fn writer_properties() -> WriterProperties {
    let sorting = ["device", "time", "ingest_seq"]
        .iter()
        .map(|c| SortingColumn {
            column_idx: col_index(c) as i32,
            descending: false,
            nulls_first: false,
        })
        .collect();
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(1).expect("valid level"),
        ))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_sorting_columns(Some(sorting))
        .set_created_by("callstate".into())
        .build()
}

/// Writes `batches` as one sorted segment at `path` (durably) and describes it.
pub fn write_segment(path: &Path, batches: &[RecordBatch]) -> io::Result<SegmentMeta> {
    Ok(write_sorted_segment(path, batches)?.0)
}

/// Like [`write_segment`], also returning the sorted rows.
pub fn write_sorted_segment(
    path: &Path,
    batches: &[RecordBatch],
) -> io::Result<(SegmentMeta, RecordBatch)> {
    let sorted = sort_for_segment(batches)?;
    let file = File::create(path)?;
    let mut w =
        ArrowWriter::try_new(file, events_schema(), Some(writer_properties())).map_err(err)?;
    w.write(&sorted).map_err(err)?;
    let file = w.into_inner().map_err(err)?;
    file.sync_all()?;
    let time = sorted
        .column(col_index("time"))
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .expect("time column");
    let iseq = sorted
        .column(col_index("ingest_seq"))
        .as_any()
        .downcast_ref::<UInt64Array>()
        .expect("ingest_seq column");
    let itime = sorted
        .column(col_index("ingest_time"))
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .expect("ingest_time column");
    let meta = SegmentMeta {
        file: path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string(),
        rows: sorted.num_rows() as u64,
        bytes: std::fs::metadata(path)?.len(),
        min_time_us: arrow::compute::min(time).unwrap_or(0),
        max_time_us: arrow::compute::max(time).unwrap_or(0),
        min_ingest_seq: arrow::compute::min(iseq).unwrap_or(0),
        max_ingest_seq: arrow::compute::max(iseq).unwrap_or(0),
        max_ingest_time_us: arrow::compute::max(itime).unwrap_or(0),
        digest: None,
    };
    Ok((meta, sorted))
}

/// Reads a segment; `columns` limits the read to those columns (in schema order).
pub fn read_segment(path: &Path, columns: Option<&[&str]>) -> io::Result<Vec<RecordBatch>> {
    let file = File::open(path)?;
    let mut builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| io::Error::other(format!("{}: {e}", path.display())))?
        .with_batch_size(64 * 1024);
    if let Some(cols) = columns {
        let mask = ProjectionMask::columns(builder.parquet_schema(), cols.iter().copied());
        builder = builder.with_projection(mask);
    }
    let reader = builder.build().map_err(err)?;
    reader
        .map(|b| b.map_err(|e| io::Error::other(format!("{}: {e}", path.display()))))
        .collect()
}

/// Number of valid (non-null) values of a column in a batch, for tests and stats.
pub fn non_null(batch: &RecordBatch, name: &str) -> usize {
    let c = batch.column(batch.schema().index_of(name).expect("column"));
    c.len() - c.null_count()
}
