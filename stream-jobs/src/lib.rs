//! The stream jobs: the consumer runtime and the jobs that turn the events topic into the state
//! the serving API reads.
//!
//! # Layout
//!
//! - [`runtime`]: reads the events topic in a consumer group, hands each job a partition batch
//!   of decoded [`aperture_schema::Envelope`]s, and stores each partition's next offset in Redis
//!   atomically with the batch's writes (one script per job and batch), so results are exactly
//!   once across crashes, redelivery and rebalances; stale owners are fenced by epoch; poison
//!   messages go to the dead-letter topic.
//! - [`jobs`]: one folder per job (graph, fan-out), each a Rust encoder plus the Lua that
//!   applies one event inside the batch script. Redis key names come from
//!   [`aperture_schema::keys`], never from here.
//! - [`oracle`]: the in-memory model of the jobs' semantics that tests compare against.

pub mod jobs;
pub mod oracle;
pub mod runtime;
