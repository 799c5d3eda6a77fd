//! The one error type of the ingest API, rendered as `{"error": {"code", "message", "field"?}}`.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// A request-level failure. Per-event failures are reported in the batch response instead.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The body cannot be read as events at all (not JSON, not an array or object).
    #[error("{0}")]
    BadBody(String),
    /// The body is larger than the configured limit.
    #[error("the request body exceeds {limit} bytes")]
    TooLarge { limit: usize },
    /// More events than one request may carry.
    #[error("the request carries {count} events; the limit is {limit}")]
    TooManyEvents { count: usize, limit: usize },
    /// A content type the endpoint does not read.
    #[error("content type {0:?} is not supported; send application/json or application/x-ndjson")]
    UnsupportedMediaType(String),
    /// The producer is full; the client should retry after the given delay.
    #[error("the ingest queue is full; retry after {} s", retry_after.as_secs().max(1))]
    Overloaded { retry_after: Duration },
    /// A failure that is ours; the cause was logged, the client learns nothing internal.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

#[derive(Serialize)]
struct Body<'a> {
    error: ErrorBody<'a>,
}

#[derive(Serialize)]
pub(crate) struct ErrorBody<'a> {
    pub code: &'a str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'a str>,
}

impl AppError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            AppError::BadBody(_) => (StatusCode::BAD_REQUEST, "bad_body"),
            AppError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            AppError::TooManyEvents { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too_many_events"),
            AppError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            AppError::Overloaded { .. } => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            AppError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

/// `Retry-After` in whole seconds, at least 1.
pub(crate) fn retry_after_header(delay: Duration) -> HeaderValue {
    HeaderValue::from(delay.as_secs().max(1))
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let AppError::Internal(cause) = &self {
            tracing::error!(error = format!("{cause:#}"), "internal error");
        }
        let body = Body {
            error: ErrorBody {
                code,
                message: self.to_string(),
                field: None,
            },
        };
        let mut response = (status, Json(body)).into_response();
        if let AppError::Overloaded { retry_after } = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, retry_after_header(retry_after));
        }
        response
    }
}
