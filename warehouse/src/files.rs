//! Writing and reading the warehouse's Parquet files.
//!
//! Every file: zstd, at most `warehouse.row-group-size` rows per row group, rows sorted by the
//! table's sort key and declared so in the footer (`sorting_columns`), statistics per page of
//! at most [`PAGE_ROWS`] rows (readers skip row groups and pages by the sort key's min/max), no
//! dictionary for the unique `event_id`. Key-value metadata says where the rows came from.

use std::fs::File;
use std::path::{Path, PathBuf};

use aperture_schema::warehouse::{EVENT_ID, Table};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::{KeyValue, SortingColumn};
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;

use crate::error::{WarehouseError, io};
use crate::manifest::FileEntry;

/// zstd level of every file. Level 3 (zstd's own default) compresses these tables about as well
/// as gzip at several times its speed; an analytics warehouse is read far more than written.
const ZSTD_LEVEL: i32 = 3;

/// Rows per data page at most. The page is what a reader that skips by the page index still
/// decodes whole: with parquet's default of 20,000 rows a page, one creator's day of views
/// (2 rows in the benchmark's workload) cost DataFusion 20,480 rows decoded. At 2,048 the
/// one-creator rollup over a week ran about 10% faster in `benches/warehouse.rs`, the files
/// came out no larger, and the whole-table rollups moved within noise, on DataFusion and on
/// DuckDB.
pub const PAGE_ROWS: usize = 2048;

/// Metadata key: the topic a file's rows were read from.
pub const META_TOPIC: &str = "aperture.topic";
/// Metadata key: the sink commit (`part-*` files) or compaction (`compact-*`) that wrote it.
pub const META_WRITER: &str = "aperture.written-by";

/// Writer properties of `table`'s files.
pub fn writer_properties(table: Table, row_group_size: usize) -> WriterProperties {
    let schema = table.schema();
    let sorting: Vec<SortingColumn> = table
        .sort_key()
        .iter()
        .filter_map(|name| schema.index_of(name).ok())
        .map(|index| SortingColumn {
            // A table has a few dozen columns at most.
            column_idx: index as i32,
            descending: false,
            nulls_first: false,
        })
        .collect();
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(ZSTD_LEVEL).expect("3 is a valid zstd level"),
        ))
        .set_max_row_group_row_count(Some(row_group_size.max(1)))
        .set_column_dictionary_enabled(ColumnPath::from(EVENT_ID), false)
        .set_sorting_columns(Some(sorting))
        .set_data_page_row_count_limit(PAGE_ROWS)
        .build()
}

/// A Parquet file being written; [`ParquetFile::finish`] makes it durable.
pub struct ParquetFile {
    path: PathBuf,
    writer: ArrowWriter<File>,
    rows: u64,
}

impl std::fmt::Debug for ParquetFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetFile")
            .field("path", &self.path)
            .field("rows", &self.rows)
            .finish()
    }
}

impl ParquetFile {
    /// Creates `path` (truncating it) for rows of `table`.
    pub fn create(
        path: &Path,
        table: Table,
        row_group_size: usize,
        meta: &[(&str, String)],
    ) -> Result<Self, WarehouseError> {
        let file = File::create(path).map_err(io("create", path))?;
        let mut writer = ArrowWriter::try_new(
            file,
            table.schema(),
            Some(writer_properties(table, row_group_size)),
        )
        .map_err(parquet_error(path))?;
        for (key, value) in meta {
            writer.append_key_value_metadata(KeyValue::new((*key).to_owned(), value.clone()));
        }
        Ok(ParquetFile {
            path: path.to_path_buf(),
            writer,
            rows: 0,
        })
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), WarehouseError> {
        self.writer
            .write(batch)
            .map_err(parquet_error(&self.path))?;
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// Bytes of finished row groups in the file so far (the row group being built is not
    /// counted until it is flushed).
    pub fn bytes_written(&self) -> usize {
        self.writer.bytes_written()
    }

    /// Writes the footer and fsyncs the file; returns its rows and size.
    pub fn finish(self) -> Result<FileEntry, WarehouseError> {
        let file = self
            .writer
            .into_inner()
            .map_err(parquet_error(&self.path))?;
        file.sync_all().map_err(io("fsync", &self.path))?;
        let bytes = file.metadata().map_err(io("stat", &self.path))?.len();
        Ok(FileEntry {
            rows: self.rows,
            bytes,
        })
    }
}

/// Writes one batch as a whole file, durably.
pub fn write_file(
    path: &Path,
    table: Table,
    batch: &RecordBatch,
    row_group_size: usize,
    meta: &[(&str, String)],
) -> Result<FileEntry, WarehouseError> {
    let mut file = ParquetFile::create(path, table, row_group_size, meta)?;
    file.write(batch)?;
    file.finish()
}

/// A reader of a file's batches of at most `batch_size` rows.
pub fn reader(path: &Path, batch_size: usize) -> Result<ParquetRecordBatchReader, WarehouseError> {
    let file = File::open(path).map_err(io("open", path))?;
    ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.with_batch_size(batch_size.max(1)).build())
        .map_err(parquet_error(path))
}

/// Every row of a file, as batches.
pub fn read_file(path: &Path) -> Result<Vec<RecordBatch>, WarehouseError> {
    reader(path, 8192)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| parquet_error(path)(e.into()))
}

pub(crate) fn parquet_error(
    path: &Path,
) -> impl FnOnce(parquet::errors::ParquetError) -> WarehouseError {
    let path = path.to_path_buf();
    move |source| WarehouseError::Parquet { path, source }
}
