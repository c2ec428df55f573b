//! Tabular answers on standard output, in the format asked for, written batch by batch as
//! the rows come (an export is not collected whole first), except the aligned table, which
//! needs every row to size its columns. Every format has the answer's columns
//! even when no row matched: CSV its header, JSON `[]`, Parquet its schema. CSV writes a
//! list column (`events.nodes`) as text, `[a, b]`.

use std::io::{BufWriter, Stdout, Write};

use anyhow::bail;
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use clap::ValueEnum;

/// Output format of tabular answers.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Format {
    /// Aligned text table.
    Table,
    /// CSV with a header line.
    Csv,
    /// A JSON array of objects.
    Json,
    /// Apache Parquet (zstd), for DuckDB, pandas or a BI tool; binary, so standard output
    /// must be redirected to a file.
    Parquet,
}

type Out = BufWriter<Stdout>;

enum Inner {
    Table(Vec<RecordBatch>),
    Csv(arrow::csv::Writer<Out>),
    Json(arrow::json::ArrayWriter<Out>),
    Parquet(parquet::arrow::ArrowWriter<Out>),
}

/// An answer being written to standard output.
pub struct Writer {
    inner: Inner,
    schema: SchemaRef,
    batches: usize,
}

impl Writer {
    /// Starts an answer of `schema` in `format` (Parquet is refused on a terminal).
    pub fn new(format: Format, schema: SchemaRef) -> anyhow::Result<Writer> {
        let out = || BufWriter::new(std::io::stdout());
        let inner = match format {
            Format::Table => Inner::Table(Vec::new()),
            Format::Csv => Inner::Csv(
                arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(out()),
            ),
            Format::Json => Inner::Json(arrow::json::ArrayWriter::new(out())),
            Format::Parquet => {
                use std::io::IsTerminal;
                if std::io::stdout().is_terminal() {
                    bail!(
                        "--format parquet writes a binary file: redirect standard output \
                         (`> answer.parquet`)"
                    );
                }
                Inner::Parquet(callstate_server::respond::parquet_writer(
                    out(),
                    schema.clone(),
                )?)
            }
        };
        Ok(Writer {
            inner,
            schema,
            batches: 0,
        })
    }

    /// Writes the rows of `batch`.
    pub fn write(&mut self, batch: &RecordBatch) -> anyhow::Result<()> {
        self.batches += 1;
        match &mut self.inner {
            Inner::Table(all) => all.push(batch.clone()),
            Inner::Csv(w) => w.write(&callstate_server::respond::flat(batch)?)?,
            Inner::Json(w) => w.write(batch)?,
            Inner::Parquet(w) => w.write(batch)?,
        }
        Ok(())
    }

    /// Ends the answer and flushes it.
    pub fn finish(mut self) -> anyhow::Result<()> {
        if self.batches == 0 {
            // no batch at all: the columns still go out (CSV's header, the table's)
            self.write(&RecordBatch::new_empty(self.schema.clone()))?;
        }
        match self.inner {
            Inner::Table(all) => {
                let text = arrow::util::pretty::pretty_format_batches(&all)?;
                let mut out = std::io::stdout().lock();
                writeln!(out, "{text}")?;
                out.flush()?;
            }
            Inner::Csv(w) => w.into_inner().flush()?,
            Inner::Json(mut w) => {
                w.finish()?; // `[]` when no row was written
                let mut out = w.into_inner();
                writeln!(out)?;
                out.flush()?;
            }
            Inner::Parquet(w) => w.into_inner()?.flush()?,
        }
        Ok(())
    }
}

/// Prints batches in a format (at least one batch, empty or not, or none: the answer then
/// has no columns).
pub fn print(batches: &[RecordBatch], format: Format) -> anyhow::Result<()> {
    let mut w = Writer::new(format, callstate_server::respond::schema_of(batches))?;
    for b in batches {
        w.write(b)?;
    }
    w.finish()
}
