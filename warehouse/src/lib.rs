//! The Parquet warehouse for data scientists: a sink job that writes the events topic as
//! Hive-partitioned Parquet, one table per event family, exactly once; compaction of its small
//! files; and (in [`sql`]) a DataFusion catalog over it with the rollups the project owns.
//!
//! # Layout
//!
//! - [`layout`]: paths and names under the root. [`fs`]: durable file steps and the locks.
//! - [`manifest`]: the commit record, the one source of truth for which files are live and
//!   where the sink resumes. [`recover`]: bringing a root in line with it.
//! - [`rows`]: events into sorted Arrow batches, with the table definitions of
//!   `aperture_schema::warehouse`. [`files`]: writing and reading the Parquet files.
//! - [`sink`]: the consume loop and its commit. [`compact`]: merging small files.
//! - [`replay`]: the tables read back as the events they were written from, in event-time
//!   order.
//! - [`sql`]: the DataFusion catalog, the rollup views, output formats, the shell and the
//!   data dictionary.
//! - [`object`]: roots on object storage (`s3://bucket/prefix`), where the same protocol runs on
//!   conditional puts of the manifest instead of renames and locks, and SQL reads the files
//!   the manifest lists ([`object::read`]).
//! - [`metrics`]: metric names. [`failpoint`]: crash points for the crash tests.
//!
//! # Exactly once
//!
//! (On a local root, as below; [`object`] says how an object root keeps the same promises.)
//!
//! Kafka delivers at least once and a sink may die at any instant; the warehouse must still
//! hold every valid event of the topic exactly once. The sink keeps its position in the
//! manifest (`<root>/_sink/manifest.json`), never in Kafka's committed offsets, and the
//! manifest's atomic replacement is the single commit point of files and offsets together:
//!
//! 1. Events are buffered per (table, UTC day) until the buffer holds `warehouse.roll-size`
//!    bytes or its oldest record has waited `warehouse.roll-interval`, or the sink shuts down.
//! 2. Commit `n` writes one file per (table, day) into `_sink/tmp/`, fsynced. No reader lists
//!    that folder.
//! 3. Under the commit lock, it replaces the manifest (temporary file, fsync, rename, fsync):
//!    commit `n`, the next offset of every partition, every live file with its rows. **This
//!    rename is the commit.**
//! 4. Only then are the files renamed into `<table>/dt=YYYY-MM-DD/part-<n>.parquet`.
//!
//! At start the sink takes `_sink/sink.lock` (one sink per root; the kernel releases it when
//! the process dies), loads the manifest and repairs the root to match it: files the manifest
//! lists that still wait in `_sink/tmp/` (a crash between 3 and 4) are moved into place; every
//! other file in `_sink/tmp/`, and every data file of ours the manifest does not list, is
//! deleted (a commit that never reached step 3). It then assigns itself every partition at the
//! manifest's offsets and consumes on.
//!
//! So a record before the manifest's offset is in exactly one listed file (or was skipped, and
//! counted: not a valid event, or a repeat of an event id in the same commit), and a record
//! after it is in none: nothing lost, nothing twice. And since data files get their final name
//! only after their commit is durable, a reader listing the folders never sees rows that a
//! restart would take back; it may, for the moment between a crash in step 4 and the restart,
//! miss rows that are already committed.
//!
//! This order, manifest first and renames after, is deliberate: the other order (rename, then
//! manifest, and delete unlisted files at restart) lets readers see rows of a commit that a
//! crash then withdraws and a restart writes again in other files.
//!
//! Records that do not decode as valid events (the stream runtime dead-letters the same ones,
//! so they are reported once, there) are skipped and counted by rule, in metrics and in the
//! manifest; their offsets are committed like any other, so they are never read twice.

pub mod compact;
pub mod error;
pub mod failpoint;
pub mod files;
pub mod fs;
pub mod layout;
pub mod manifest;
pub mod metrics;
pub mod object;
pub mod recover;
pub mod replay;
pub mod rows;
pub mod sink;
pub mod sql;

pub use error::WarehouseError;
pub use manifest::Manifest;
pub use sink::{Sink, Summary};
