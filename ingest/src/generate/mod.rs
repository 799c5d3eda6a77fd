//! The synthetic workload generator (`aperture generate`).
//!
//! [`workload`] builds a deterministic, realistic event sequence from a seed; [`stats`] summarises
//! it; [`sink`] sends it to Kafka, to the ingest API or to an NDJSON file; [`truth`] is why its
//! viewers engage, the ceiling a ranking model is measured against.

pub mod sink;
pub mod stats;
pub mod truth;
pub mod workload;

pub use stats::Summary;
pub use workload::{Spec, Workload, generate};
