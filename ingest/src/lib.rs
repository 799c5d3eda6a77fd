//! The way into Aperture: the ingest API and the synthetic workload generator.
//!
//! # Layout
//!
//! - [`api`]: the axum app behind `aperture ingest` — `POST /v1/events` validates every event
//!   with [`aperture_schema`] and produces the valid ones, keyed by `actor_id`, through
//!   [`kafka::EventProducer`]; `/healthz` and `/metrics` for operators.
//! - [`kafka`]: client configuration, topic creation and the bounded idempotent producer.
//! - [`generate`]: `aperture generate`, a deterministic, heavy-tailed synthetic workload, and the
//!   sinks that send it to Kafka, to the ingest API or to a file.
//! - [`metrics`]: metric names and the Prometheus recorder.
//! - [`movielens`]: `aperture dataset movielens`, the public MovieLens 100K dataset as events,
//!   for training and judging the ranking models on real engagement.

pub mod api;
pub mod generate;
pub mod kafka;
pub mod metrics;
pub mod movielens;
