//! A k-way merge of sorted Parquet files into sorted Parquet files, in bounded memory.
//!
//! Every input is sorted by its table's sort key (the sink and compaction both write them so);
//! the merge reads each input a batch at a time, always takes the smallest key next (a binary
//! heap of Arrow row-format keys), and assembles output batches with `interleave`. Memory is
//! about one batch per input plus one output row group, whatever the inputs' total size.
//! Output rolls to a new file once a file holds `target` bytes of finished row groups, so
//! every output but the last is at least `target` bytes.
//!
//! A row whose whole sort key (which ends in `event_id`) equals the row before it is a second
//! copy of the same event, written by two commits of the sink; it is left out. Only copies
//! among the files merged together meet: a copy that arrives after its original went into a
//! file of the target size stays (compaction does not rewrite full files).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::{Path, PathBuf};

use aperture_schema::warehouse::Table;
use arrow::compute::SortOptions;
use arrow::compute::interleave_record_batch;
use arrow::record_batch::{RecordBatch, RecordBatchReader};
use arrow::row::{OwnedRow, RowConverter, Rows, SortField};
use parquet::arrow::arrow_reader::ParquetRecordBatchReader;

use crate::error::WarehouseError;
use crate::files::{ParquetFile, parquet_error, reader};
use crate::manifest::FileEntry;

/// Rows kept in memory across all inputs at most (split evenly between them).
const ROWS_IN_FLIGHT: usize = 1 << 20;
/// Rows per output batch handed to the writer.
const OUT_BATCH: usize = 8192;

/// One input: its reader, the batch in hand and its keys, and the row next in line.
struct Cursor {
    path: PathBuf,
    reader: ParquetRecordBatchReader,
    batch: RecordBatch,
    keys: Rows,
    pos: usize,
    /// Index of `batch` among the batches the pending output rows point into.
    slot: usize,
}

/// What a merge wrote: each output's name and entry, and the second copies it left out.
#[derive(Debug)]
pub struct Merged {
    pub outputs: Vec<(String, FileEntry)>,
    pub duplicates: u64,
}

/// Merges `inputs` (files of `table`, each sorted) into new files in `dir`, named by
/// `name(k)` for the k-th output.
pub fn merge(
    table: Table,
    inputs: &[PathBuf],
    dir: &Path,
    name: impl Fn(usize) -> String,
    target: u64,
    row_group_size: usize,
    meta: &[(&str, String)],
) -> Result<Merged, WarehouseError> {
    let schema = table.schema();
    let arrow = |source| WarehouseError::Arrow {
        table: table.name(),
        source,
    };
    let key_columns: Vec<usize> = table
        .sort_key()
        .iter()
        .map(|k| schema.index_of(k))
        .collect::<Result<_, _>>()
        .map_err(arrow)?;
    let converter = RowConverter::new(
        key_columns
            .iter()
            .map(|&i| {
                SortField::new_with_options(
                    schema.field(i).data_type().clone(),
                    SortOptions {
                        descending: false,
                        nulls_first: false,
                    },
                )
            })
            .collect(),
    )
    .map_err(arrow)?;
    let keys_of = |batch: &RecordBatch| {
        let columns: Vec<_> = key_columns
            .iter()
            .map(|&i| std::sync::Arc::clone(batch.column(i)))
            .collect();
        converter.convert_columns(&columns).map_err(arrow)
    };
    let batch_size = (ROWS_IN_FLIGHT / inputs.len().max(1)).clamp(128, OUT_BATCH);

    let mut slots: Vec<RecordBatch> = Vec::new();
    let mut cursors: Vec<Option<Cursor>> = Vec::with_capacity(inputs.len());
    let mut heap: BinaryHeap<Reverse<(OwnedRow, usize)>> = BinaryHeap::new();
    for path in inputs {
        let mut reader = reader(path, batch_size)?;
        let found = reader.schema();
        if found.fields() != schema.fields() {
            return Err(WarehouseError::SchemaMismatch {
                table: table.name(),
                path: path.clone(),
                reason: format!("its columns are {:?}", field_names(&found)),
            });
        }
        match next_batch(&mut reader, path)? {
            Some(batch) => {
                let keys = keys_of(&batch)?;
                heap.push(Reverse((keys.row(0).owned(), cursors.len())));
                slots.push(batch.clone());
                cursors.push(Some(Cursor {
                    path: path.clone(),
                    reader,
                    batch,
                    keys,
                    pos: 0,
                    slot: slots.len() - 1,
                }));
            }
            None => cursors.push(None),
        }
    }

    let mut outputs: Vec<(String, FileEntry)> = Vec::new();
    let mut out: Option<(PathBuf, ParquetFile)> = None;
    let mut pending: Vec<(usize, usize)> = Vec::with_capacity(OUT_BATCH);
    let mut flush = |pending: &mut Vec<(usize, usize)>,
                     slots: &mut Vec<RecordBatch>,
                     cursors: &mut [Option<Cursor>],
                     out: &mut Option<(PathBuf, ParquetFile)>,
                     last: bool|
     -> Result<(), WarehouseError> {
        if !pending.is_empty() {
            let sources: Vec<&RecordBatch> = slots.iter().collect();
            let batch = interleave_record_batch(&sources, pending).map_err(arrow)?;
            pending.clear();
            if out.is_none() {
                let path = dir.join(name(outputs.len()));
                let file = ParquetFile::create(&path, table, row_group_size, meta)?;
                *out = Some((path, file));
            }
            if let Some((_, file)) = out.as_mut() {
                file.write(&batch)?;
            }
            // Only the batches the cursors still read from are needed from here on.
            slots.clear();
            for cursor in cursors.iter_mut().flatten() {
                slots.push(cursor.batch.clone());
                cursor.slot = slots.len() - 1;
            }
        }
        let full = out
            .as_ref()
            .is_some_and(|(_, f)| f.bytes_written() as u64 >= target);
        if (full || last)
            && let Some((path, file)) = out.take()
        {
            let entry = file.finish()?;
            let file_name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            outputs.push((file_name, entry));
        }
        Ok(())
    };

    let mut last: Option<OwnedRow> = None;
    let mut duplicates = 0;
    while let Some(Reverse((key, index))) = heap.pop() {
        let Some(cursor) = cursors[index].as_mut() else {
            return Err(WarehouseError::Internal(
                "the merge heap named an exhausted input".into(),
            ));
        };
        if last.as_ref() == Some(&key) {
            duplicates += 1;
        } else {
            pending.push((cursor.slot, cursor.pos));
            last = Some(key);
        }
        cursor.pos += 1;
        if cursor.pos == cursor.batch.num_rows() {
            match next_batch(&mut cursor.reader, &cursor.path)? {
                Some(batch) => {
                    cursor.keys = keys_of(&batch)?;
                    cursor.batch = batch.clone();
                    cursor.pos = 0;
                    slots.push(batch);
                    cursor.slot = slots.len() - 1;
                }
                None => {
                    cursors[index] = None;
                }
            }
        }
        if let Some(cursor) = cursors[index].as_ref() {
            heap.push(Reverse((cursor.keys.row(cursor.pos).owned(), index)));
        }
        if pending.len() >= OUT_BATCH {
            flush(&mut pending, &mut slots, &mut cursors, &mut out, false)?;
        }
    }
    flush(&mut pending, &mut slots, &mut cursors, &mut out, true)?;
    Ok(Merged {
        outputs,
        duplicates,
    })
}

fn next_batch(
    reader: &mut ParquetRecordBatchReader,
    path: &Path,
) -> Result<Option<RecordBatch>, WarehouseError> {
    loop {
        match reader.next() {
            None => return Ok(None),
            Some(Err(e)) => return Err(parquet_error(path)(e.into())),
            Some(Ok(batch)) if batch.num_rows() == 0 => continue,
            Some(Ok(batch)) => return Ok(Some(batch)),
        }
    }
}

fn field_names(schema: &arrow::datatypes::Schema) -> Vec<String> {
    schema
        .fields()
        .iter()
        .map(|f| format!("{}: {}", f.name(), f.data_type()))
        .collect()
}
