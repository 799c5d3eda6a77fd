//! The synthetic workload generator (`aperture generate`).
//!
//! [`workload`] builds a deterministic, realistic event sequence from a seed; [`stats`] summarises
//! it; [`sink`] sends it to Kafka, to the ingest API or to an NDJSON file.

pub mod sink;
pub mod stats;
pub mod workload;

pub use stats::Summary;
pub use workload::{Spec, Workload, generate};
