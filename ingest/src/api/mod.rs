//! The ingest HTTP API: `POST /v1/events`, `GET /healthz`, `GET /metrics`.
//!
//! [`app`] builds the router from an [`AppState`] (tested in-process with `oneshot` or on
//! `127.0.0.1:0`); [`serve`] is the `aperture ingest` process around it.

mod error;
pub mod events;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use aperture_schema::Config;
use aperture_schema::config::IngestConfig;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use error::AppError;

use crate::kafka::{self, EventProducer};

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    pub producer: EventProducer,
    pub config: Arc<IngestConfig>,
    pub metrics: PrometheusHandle,
}

impl AppState {
    /// Creates the producer and installs the metrics recorder.
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        Ok(AppState {
            producer: EventProducer::new(&config.kafka).context("while creating the producer")?,
            config: Arc::new(config.ingest.clone()),
            metrics: crate::metrics::install(),
        })
    }
}

/// The ingest router.
pub fn app(state: AppState) -> Router {
    let body_limit = state.config.max_body_bytes;
    let timeout = state.config.request_timeout;
    Router::new()
        .route("/v1/events", post(events::post_events))
        .route("/healthz", get(healthz))
        .route("/metrics", get(prometheus))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Healthy when the broker answers a metadata request for the events topic within 2 s.
async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    match state.producer.probe(Duration::from_secs(2)).await {
        Ok(partitions) if partitions > 0 => (
            StatusCode::OK,
            Json(
                json!({"status": "ok", "topic": state.producer.topic(), "partitions": partitions}),
            ),
        ),
        Ok(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "reason": "the events topic does not exist"})),
        ),
        Err(error) => {
            tracing::warn!(%error, "health check: broker unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable", "reason": "the broker did not answer"})),
            )
        }
    }
}

async fn prometheus(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

/// Runs the ingest API until `shutdown` fires: creates missing topics, serves, then waits for
/// queued events to be acknowledged before returning.
pub async fn serve(config: &Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    kafka::ensure_topics(config)
        .await
        .context("while creating topics")?;
    let state = AppState::new(config)?;
    let producer = state.producer.clone();
    let listener = tokio::net::TcpListener::bind(config.ingest.listen)
        .await
        .with_context(|| format!("while binding {}", config.ingest.listen))?;
    tracing::info!(addr = %config.ingest.listen, "ingest API listening");
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .context("while serving")?;
    let deadline = config.kafka.producer.message_timeout;
    tokio::task::spawn_blocking(move || producer.flush(deadline))
        .await
        .context("while flushing the producer")?
        .context("while waiting for the broker to acknowledge queued events")?;
    Ok(())
}
