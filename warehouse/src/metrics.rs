//! Metric names of the warehouse. Labels: `table` (one of ten), `reason` (a validation rule
//! name, `ts_out_of_range` or `duplicate_event_id`), `partition` (bounded by the topic's
//! partition count).

/// Records read from the topic, valid or not.
pub const RECORDS_CONSUMED: &str = "aperture_warehouse_records_consumed_total";
/// Rows committed, by table.
pub const ROWS_WRITTEN: &str = "aperture_warehouse_rows_written_total";
/// Parquet files committed, by table.
pub const FILES_COMMITTED: &str = "aperture_warehouse_files_committed_total";
/// Bytes of Parquet committed (compressed, as on disk), by table.
pub const BYTES_WRITTEN: &str = "aperture_warehouse_bytes_written_total";
/// Sink commits (manifest replacements).
pub const COMMITS: &str = "aperture_warehouse_commits_total";
/// Seconds one sink commit takes: encoding, fsyncs and renames.
pub const COMMIT_SECONDS: &str = "aperture_warehouse_commit_seconds";
/// Records skipped because they are not valid events, by reason.
pub const EVENTS_SKIPPED: &str = "aperture_warehouse_events_skipped_total";
/// Estimated bytes of rows waiting for the next commit.
pub const BUFFERED_BYTES: &str = "aperture_warehouse_buffered_bytes";
/// Records between the sink's next offset and the partition's high watermark, by partition.
pub const LAG: &str = "aperture_warehouse_lag";
/// Files merged away by compaction, by table.
pub const FILES_COMPACTED: &str = "aperture_warehouse_files_compacted_total";

/// Describes the metrics to the installed recorder (call once at start).
pub fn describe() {
    metrics::describe_counter!(RECORDS_CONSUMED, "records read from the events topic");
    metrics::describe_counter!(ROWS_WRITTEN, "rows committed to the warehouse, by table");
    metrics::describe_counter!(FILES_COMMITTED, "parquet files committed, by table");
    metrics::describe_counter!(
        BYTES_WRITTEN,
        metrics::Unit::Bytes,
        "bytes of parquet committed, by table"
    );
    metrics::describe_counter!(COMMITS, "sink commits (manifest replacements)");
    metrics::describe_histogram!(
        COMMIT_SECONDS,
        metrics::Unit::Seconds,
        "time to encode, fsync and rename one commit"
    );
    metrics::describe_counter!(
        EVENTS_SKIPPED,
        "records that are not rows (invalid, or a repeated event id), by reason"
    );
    metrics::describe_gauge!(
        BUFFERED_BYTES,
        metrics::Unit::Bytes,
        "estimated bytes of rows waiting for the next commit"
    );
    metrics::describe_gauge!(LAG, "records behind the partition's high watermark");
    metrics::describe_counter!(FILES_COMPACTED, "files merged away by compaction, by table");
}
