//! The consumer runtime every job runs on.
//!
//! - [`worker`]: the consume–apply loop, with fencing epochs and resume-from-Redis whenever it
//!   takes a partition.
//! - [`lease`]: which worker owns which partition: leases in Redis, rebalanced by one script.
//! - [`script`]: the per-batch Redis script that applies a job's writes and the partition's next
//!   offset atomically, refusing stale epochs and skipping what was already applied.
//! - [`dead_letter`]: where undecodable and invalid events go, with the reason.
//! - [`metrics`]: metric names.

pub mod dead_letter;
pub mod lease;
pub mod metrics;
pub mod script;
pub mod target;
pub mod worker;

use aperture_schema::Config;
use tokio_util::sync::CancellationToken;

pub use script::Outcome;
pub use worker::{Ownership, Worker};

use crate::jobs::Job;

/// Why a worker could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("kafka: {0}")]
    Kafka(#[source] rdkafka::error::KafkaError),
    #[error("redis: {0}")]
    Redis(#[source] redis::RedisError),
    #[error("topic {0} does not exist; create it first (`aperture topics`)")]
    NoTopic(String),
}

/// Runs one worker with `jobs` until `shutdown` fires (blocking; call from a thread of its own).
pub fn run(
    config: &Config,
    jobs: Vec<Box<dyn Job>>,
    shutdown: CancellationToken,
) -> Result<(), RuntimeError> {
    Worker::new(config, jobs, shutdown)?.run()
}
