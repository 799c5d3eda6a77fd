//! The stream jobs: the consumer runtime and the jobs that turn the events topic into the state
//! the serving API reads.
//!
//! # Layout
//!
//! - [`runtime`]: reads the events topic on the partitions this worker leases (leases in Redis,
//!   not a consumer group), hands each job a partition batch of decoded
//!   [`aperture_schema::Envelope`]s, and makes its writes exactly once across crashes,
//!   redelivery and takeovers: a partition job in one script per batch that stores the
//!   partition's next offset with the writes; a stepped job as slot-local updates, each with
//!   its slot's own applied record ([`runtime::script`]), routed to the node serving each slot
//!   ([`runtime::target`]). Stale owners are fenced by epoch; poison messages and late events go
//!   to the dead-letter topic.
//! - [`jobs`]: one folder per job (graph, fan-out, engagement, notifications, stories, trending,
//!   pools), each a Rust encoder plus the Lua that applies its events. Redis key names come from
//!   [`aperture_schema::keys`], never from here.
//! - [`oracle`]: the in-memory model of the jobs' semantics that tests compare against.

pub mod jobs;
pub mod oracle;
pub mod runtime;
