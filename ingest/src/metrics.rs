//! Metric names of the ingest API, and the Prometheus recorder.
//!
//! Names are constants so a typo is a compile error; labels have bounded cardinality (a rule
//! name from [`aperture_schema::Rule::ALL`], never an event id or a user).

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Events stored on the topic.
pub const EVENTS_ACCEPTED: &str = "aperture_ingest_events_accepted_total";
/// Events refused by validation, labelled by `rule`.
pub const EVENTS_REJECTED: &str = "aperture_ingest_events_rejected_total";
/// Valid events the broker did not acknowledge in time, or that found the producer full.
pub const EVENTS_FAILED: &str = "aperture_ingest_events_failed_total";
/// Requests refused whole because the producer was full.
pub const REQUESTS_THROTTLED: &str = "aperture_ingest_requests_throttled_total";
/// Seconds from handing a request's events to the producer to the last acknowledgement.
pub const PRODUCE_LATENCY_SECONDS: &str = "aperture_ingest_produce_latency_seconds";

/// Installs the process-wide Prometheus recorder, or returns the one already installed (tests
/// start several apps in one process).
pub fn install() -> PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets(&[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ])
                .expect("the bucket list is non-empty")
                .install_recorder()
                .expect("no other metrics recorder is installed in this process");
            metrics::describe_counter!(EVENTS_ACCEPTED, "events stored on the events topic");
            metrics::describe_counter!(EVENTS_REJECTED, "events refused by validation, by rule");
            metrics::describe_counter!(
                EVENTS_FAILED,
                "valid events the broker did not acknowledge"
            );
            metrics::describe_counter!(
                REQUESTS_THROTTLED,
                "requests refused with 503 because the producer was full"
            );
            metrics::describe_histogram!(
                PRODUCE_LATENCY_SECONDS,
                metrics::Unit::Seconds,
                "time from enqueueing a request's events to the last acknowledgement"
            );
            handle
        })
        .clone()
}
