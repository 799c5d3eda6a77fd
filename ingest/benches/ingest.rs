//! Ingest throughput: events/s through the HTTP API (NDJSON batches) next to a bare rdkafka
//! producer with the same settings, to the same broker, in the same run. Prints; asserts nothing.
//!
//! `make bench-ingest` (or `cargo bench -p aperture-ingest --bench ingest`); the broker comes
//! from configuration (APERTURE__KAFKA__BROKERS, default 127.0.0.1:9092). APERTURE_BENCH_EVENTS
//! sets the number of events per run (default 100,000).

use std::time::{SystemTime, UNIX_EPOCH};

use aperture_ingest::api::{self, AppState};
use aperture_ingest::generate::{self, Spec, sink};
use aperture_ingest::kafka;
use aperture_schema::Config;
use indicatif::ProgressBar;

fn config(label: &str) -> Config {
    let mut c = Config::load(None).expect("configuration is valid");
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    c.kafka.events_topic = format!("bench.{label}.{nanos}");
    c.kafka.dead_letter_topic = format!("bench.{label}.{nanos}.dlq");
    c
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::var("APERTURE_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let spec = Spec {
        seed: 7,
        users: 4_000,
        ..Spec::default()
    };
    let mut events = generate::generate(&spec).events;
    events.truncate(n);
    let n = events.len();
    let hidden = ProgressBar::hidden();
    println!(
        "ingest benchmark: {n} events (~{} B each)",
        events[0].to_json().len()
    );

    let mut bare_best = 0f64;
    let mut http_best = 0f64;
    for round in 1..=2 {
        let bare = config("bare");
        kafka::ensure_topics(&bare).await?;
        let report = sink::to_kafka(&bare, &events, &hidden).await?;
        assert_eq!(
            report.accepted as usize, n,
            "bare producer stored every event"
        );
        bare_best = bare_best.max(report.events_per_second());
        println!(
            "  round {round}: bare rdkafka producer   {:>9.0} events/s",
            report.events_per_second()
        );

        let http = config("http");
        kafka::ensure_topics(&http).await?;
        let state = AppState::new(&http)?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let server = tokio::spawn(axum::serve(listener, api::app(state)).into_future());
        let report = sink::to_http(&url, &events, 1000, 4, &hidden).await?;
        assert_eq!(report.accepted as usize, n, "ingest API stored every event");
        http_best = http_best.max(report.events_per_second());
        println!(
            "  round {round}: ingest API (HTTP NDJSON) {:>9.0} events/s",
            report.events_per_second()
        );
        server.abort();
    }
    println!(
        "best of 2: ingest API {http_best:.0} events/s, bare producer {bare_best:.0} events/s, \
         ratio {:.2} (goal >= 0.60)",
        http_best / bare_best
    );
    Ok(())
}
