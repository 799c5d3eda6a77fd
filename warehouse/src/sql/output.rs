//! Query results in the formats `aperture sql --format` offers.

use std::io::Write;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::SqlError;

/// How a result is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// A table with borders and a row count, for people.
    #[default]
    Table,
    /// CSV with a header line.
    Csv,
    /// One JSON object per row and line (null columns left out).
    Json,
    /// A Parquet file (zstd), readable by every tool that reads the warehouse.
    Parquet,
}

impl Format {
    /// Every format, by the name the command line uses.
    pub const ALL: [(&'static str, Format); 4] = [
        ("table", Format::Table),
        ("csv", Format::Csv),
        ("json", Format::Json),
        ("parquet", Format::Parquet),
    ];

    pub fn parse(name: &str) -> Option<Format> {
        Format::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, f)| *f)
    }
}

/// Writes `batches` (of `schema`) to `out` in `format`.
pub fn write(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    format: Format,
    out: &mut dyn Write,
) -> Result<(), SqlError> {
    let io = |source| SqlError::Io {
        action: "write the result",
        source,
    };
    match format {
        Format::Table => {
            let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
            if schema.fields().is_empty() {
                // DDL and other statements without a result.
                return writeln!(out, "ok").map_err(io);
            }
            let table =
                arrow::util::pretty::pretty_format_batches_with_schema(schema.clone(), batches)?;
            writeln!(out, "{table}").map_err(io)?;
            let noun = if rows == 1 { "row" } else { "rows" };
            writeln!(out, "({rows} {noun})").map_err(io)
        }
        Format::Csv => {
            let mut writer = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut *out);
            if batches.is_empty() {
                writer.write(&RecordBatch::new_empty(schema.clone()))?;
            }
            for batch in batches {
                writer.write(batch)?;
            }
            Ok(())
        }
        Format::Json => {
            let mut writer = arrow::json::LineDelimitedWriter::new(&mut *out);
            for batch in batches {
                writer.write(batch)?;
            }
            writer.finish()?;
            Ok(())
        }
        Format::Parquet => {
            let props = WriterProperties::builder()
                .set_compression(Compression::ZSTD(
                    ZstdLevel::try_new(3).expect("3 is a valid zstd level"),
                ))
                .build();
            // Parquet writes its footer last and wants `Send`; a buffer suits any `out`,
            // stdout included.
            let mut buffer: Vec<u8> = Vec::new();
            let mut writer = ArrowWriter::try_new(&mut buffer, schema.clone(), Some(props))?;
            for batch in batches {
                writer.write(batch)?;
            }
            writer.close()?;
            out.write_all(&buffer).map_err(io)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    fn result() -> (SchemaRef, Vec<RecordBatch>) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("tag", DataType::Utf8, false),
            Field::new("posts", DataType::Int64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec!["sunset", "love"])),
                Arc::new(Int64Array::from(vec![Some(3), None])),
            ],
        )
        .unwrap();
        (schema, vec![batch])
    }

    fn text(format: Format) -> String {
        let (schema, batches) = result();
        let mut out = Vec::new();
        write(&schema, &batches, format, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn each_text_format_writes_every_row() {
        let table = text(Format::Table);
        assert!(table.contains("| sunset | 3     |"), "{table}");
        assert!(table.ends_with("(2 rows)\n"), "{table}");
        assert_eq!(text(Format::Csv), "tag,posts\nsunset,3\nlove,\n");
        assert_eq!(
            text(Format::Json),
            "{\"tag\":\"sunset\",\"posts\":3}\n{\"tag\":\"love\"}\n"
        );
    }

    #[test]
    fn parquet_output_reads_back_equal() {
        let (schema, batches) = result();
        let mut out = Vec::new();
        write(&schema, &batches, Format::Parquet, &mut out).unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            bytes::Bytes::from(out),
        )
        .unwrap()
        .build()
        .unwrap();
        let back: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
        assert_eq!(back, batches);
    }

    #[test]
    fn an_empty_result_still_has_its_header() {
        let (schema, _) = result();
        let mut out = Vec::new();
        write(&schema, &[], Format::Csv, &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "tag,posts\n");
        let mut out = Vec::new();
        write(&schema, &[], Format::Table, &mut out).unwrap();
        assert!(String::from_utf8(out).unwrap().contains("(0 rows)"));
    }
}
