//! The contracts every other Aperture crate stands on, with no I/O.
//!
//! Apps, stream jobs, the warehouse and the serving API agree on what an event is, where it goes
//! and where its derived state lives; that agreement is this crate. Nothing here opens a socket or
//! a file (configuration reads files only through [`config::Config::load`], which the binaries
//! call), so every rule can be unit-tested and reused by any component.
//!
//! # Layout
//!
//! - [`event`]: the versioned envelope ([`Envelope`]) and one [`Event`] enum with a variant per
//!   event type of `EVENTS.md`, serialised exactly as the wire format says.
//! - [`decode`]: strict decoding of JSON into an [`Envelope`], for events arriving from apps
//!   ([`Origin::App`]) and events read back from the topic ([`Origin::Topic`]).
//! - [`validate`]: the rules of `EVENTS.md` and the [`ValidationError`] that names the field and
//!   the rule an event broke.
//! - [`extract`]: hashtag and mention extraction from captions and comments.
//! - [`topics`]: topic names, the partition key and the Kafka-compatible partitioner.
//! - [`keys`]: the Redis keyspace; every key name is built here, behind a configurable prefix.
//! - [`state`]: bucket sizes and lifetimes of the derived state, shared by writers and readers.
//! - [`engagement`]: the engagement job's semantics as an exact in-memory replay, shared by the
//!   jobs' oracle and ranking's offline features.
//! - [`truth`]: impressions, their engagement labels and the generator's true probabilities,
//!   shared by the generator and the ranking crate.
//! - [`warehouse`]: the Parquet warehouse's tables: names, columns, Arrow types and meanings.
//! - [`config`]: typed configuration with embedded defaults, file and environment overrides.

pub mod config;
pub mod decode;
pub mod engagement;
pub mod event;
pub mod extract;
pub mod keys;
pub mod state;
pub mod topics;
pub mod truth;
pub mod validate;
pub mod warehouse;

pub use config::Config;
pub use decode::{Origin, decode, decode_value};
pub use event::{Envelope, Event, EventKind};
pub use validate::{Rule, ValidationError};

/// The largest id any `*_id` field may carry: 2^53 − 1, so JavaScript clients never lose
/// precision when they parse an id as a number.
pub const MAX_ID: u64 = (1 << 53) - 1;

/// The only envelope version this build reads and writes.
pub const WIRE_VERSION: u8 = 1;
