//! Metric names of the stream runtime. Labels: `job` (a job name) and `partition` (bounded by
//! the topic's partition count).

/// Records applied, by job and partition.
pub const EVENTS_APPLIED: &str = "aperture_job_events_applied_total";
/// Batches found already applied (redelivery), by job.
pub const BATCHES_SKIPPED: &str = "aperture_job_batches_skipped_total";
/// Batches refused because another worker owns the partition, by job.
pub const BATCHES_FENCED: &str = "aperture_job_batches_fenced_total";
/// Events sent to the dead-letter topic.
pub const DEAD_LETTERS: &str = "aperture_job_dead_letters_total";
/// Seconds to apply one partition batch (all jobs).
pub const BATCH_SECONDS: &str = "aperture_job_batch_seconds";
/// Records between a job's applied offset and the partition's high watermark.
pub const LAG: &str = "aperture_job_lag";
/// Events more than the allowed lateness behind their partition's watermark, by job (also
/// dead letters).
pub const LATE_EVENTS: &str = "aperture_job_late_events_total";
