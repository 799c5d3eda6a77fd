//! The one error type of the sink and of compaction. Variants say who is at fault: the
//! environment (`Kafka`, `Io`), another process (`Locked`), or a root that disagrees with its
//! manifest or its topic in a way a person must look at; the warehouse refuses to guess there.

use std::path::PathBuf;

/// Why the sink or compaction could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum WarehouseError {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("topic {0} does not exist; create it first (`aperture topics`)")]
    NoTopic(String),
    #[error("could not {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is held by another {holder}; {rule}", path.display())]
    Locked {
        path: PathBuf,
        holder: &'static str,
        rule: &'static str,
    },
    #[error("the manifest {} is unreadable: {reason}", path.display())]
    Manifest { path: PathBuf, reason: String },
    #[error(
        "the warehouse at {} holds topic {manifest_topic}, not {topic}; give each topic a root \
         of its own (warehouse.root)",
        root.display()
    )]
    TopicMismatch {
        root: PathBuf,
        manifest_topic: String,
        topic: String,
    },
    #[error(
        "{} has data files ({} among them) but no _sink/manifest.json, so which of them are \
         committed is unknown; restore the manifest or start from an empty folder",
        root.display(), example.display()
    )]
    NoManifest { root: PathBuf, example: PathBuf },
    #[error(
        "the manifest lists {} but neither it nor its uncommitted copy exists; the warehouse \
         was changed behind the sink's back",
        path.display()
    )]
    MissingFile { path: PathBuf },
    #[error(
        "the manifest says partition {partition} of {topic} is read up to offset {offset}, but \
         the partition ends at {high}: was the topic recreated? Point warehouse.root at a new \
         folder to start over"
    )]
    OffsetBeyondEnd {
        topic: String,
        partition: i32,
        offset: i64,
        high: i64,
    },
    #[error(
        "the manifest moved under the sink: commit {found} on disk, {expected} expected; only \
         one sink may write a root (is _sink/sink.lock on a file system without locks?)"
    )]
    ManifestMoved { expected: u64, found: u64 },
    #[error("parquet file {}: {source}", path.display())]
    Parquet {
        path: PathBuf,
        #[source]
        source: parquet::errors::ParquetError,
    },
    #[error("table {table}: {source}")]
    Arrow {
        table: &'static str,
        #[source]
        source: arrow::error::ArrowError,
    },
    #[error(
        "{} does not have table {table}'s schema ({reason}); compaction merges files of the \
         current schema only",
        path.display()
    )]
    SchemaMismatch {
        table: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("warehouse.root {root}: {reason}")]
    Root { root: String, reason: String },
    #[error("could not {action} {path}: {source}")]
    Object {
        action: &'static str,
        path: String,
        #[source]
        source: object_store::Error,
    },
    #[error(
        "another sink (token {writer}) took over {root} after this one (token {token}); a root \
         has one sink at a time, and the one that opened it last writes it"
    )]
    Fenced {
        root: String,
        token: String,
        writer: String,
    },
    #[error("bug: {0}")]
    Internal(String),
}

/// Wraps an object store error with what was being done to which object.
pub fn object(
    action: &'static str,
    path: impl std::fmt::Display,
) -> impl FnOnce(object_store::Error) -> WarehouseError {
    let path = path.to_string();
    move |source| WarehouseError::Object {
        action,
        path,
        source,
    }
}

/// Wraps an I/O error with what was being done to which path.
pub fn io(
    action: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> WarehouseError {
    let path = path.into();
    move |source| WarehouseError::Io {
        action,
        path,
        source,
    }
}
