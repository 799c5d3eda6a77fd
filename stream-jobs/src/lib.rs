//! The stream jobs: the consumer runtime and the jobs that turn the events topic into the state
//! the serving API reads.
//!
//! The runtime reads the events topic, hands each job batches of decoded [`aperture_schema::Envelope`]s
//! per partition, and stores each partition's next offset atomically with the Redis writes the
//! batch produced, so results are exactly once across crashes, redelivery and rebalances. The
//! jobs (graph, fan-out, trending, engagement, notifications, stories) each live in a folder of
//! their own under `jobs/`. Redis key names come from [`aperture_schema::keys`], never from here.
//!
//! This crate is filled in by the stream-runtime work; today it holds only this contract.
