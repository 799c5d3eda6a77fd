//! `POST /v1/events`: one event, a JSON array of events, or NDJSON.
//!
//! Every event is decoded and validated on its own, so one bad event never costs its good
//! neighbours. Valid events are admitted into the producer as a group (or the whole request is
//! refused with 503 and `Retry-After`, before anything is sent), produced keyed by `actor_id`,
//! and reported with the partition and offset the broker acknowledged.

use std::time::{SystemTime, UNIX_EPOCH};

use aperture_schema::validate::{self, Rule, ValidationError};
use aperture_schema::{Envelope, Origin, decode_value};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

use super::AppState;
use super::error::{AppError, retry_after_header};
use crate::kafka::{ProduceError, Stored};
use crate::metrics as m;

/// The answer to a batch: counts, then one result per event in request order.
#[derive(Debug, Serialize)]
pub struct BatchResponse {
    pub accepted: usize,
    pub rejected: usize,
    pub failed: usize,
    pub results: Vec<EventResult>,
}

#[derive(Debug, Serialize)]
pub struct EventResult {
    /// Position of the event in the request (0-based; for NDJSON, among non-blank lines).
    pub index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<EventError>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Stored on the topic at `partition` / `offset`.
    Accepted,
    /// Invalid; `error` names the field and the rule. Do not retry unchanged.
    Rejected,
    /// Valid but not stored (broker unavailable past the deadline); retry it.
    Failed,
}

#[derive(Debug, Serialize)]
pub struct EventError {
    pub code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<Rule>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub message: String,
}

pub(crate) async fn post_events(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AppError> {
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            AppError::TooLarge {
                limit: state.config.max_body_bytes,
            }
        } else {
            AppError::BadBody(rejection.body_text())
        }
    })?;
    let items = split_body(content_type(&headers)?, &body)?;
    if items.is_empty() {
        return Err(AppError::BadBody("the request carries no events".into()));
    }
    if items.len() > state.config.max_batch_events {
        return Err(AppError::TooManyEvents {
            count: items.len(),
            limit: state.config.max_batch_events,
        });
    }

    let now_ms = now_ms();
    let skew_ms = i64::try_from(state.config.max_future_skew.as_millis()).unwrap_or(i64::MAX);
    let checked: Vec<(Option<String>, Result<Envelope, ValidationError>)> = items
        .into_iter()
        .map(|item| match item {
            Ok(value) => {
                let event_id = value
                    .get("event_id")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                let result = decode_value(value, Origin::App).and_then(|envelope| {
                    validate::check_clock(&envelope, now_ms, skew_ms)?;
                    Ok(envelope)
                });
                (event_id, result)
            }
            Err(error) => (None, Err(error)),
        })
        .collect();

    let valid: Vec<Envelope> = checked
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok().cloned())
        .collect();
    let mut stored = if valid.is_empty() {
        Vec::new()
    } else {
        let Some(_admission) = state.producer.admit(valid.len()) else {
            metrics::counter!(m::REQUESTS_THROTTLED).increment(1);
            return Err(AppError::Overloaded {
                retry_after: state.config.retry_after,
            });
        };
        state.producer.send_all(&valid).await
    }
    .into_iter();

    let mut response = BatchResponse {
        accepted: 0,
        rejected: 0,
        failed: 0,
        results: Vec::with_capacity(checked.len()),
    };
    for (index, (event_id, result)) in checked.into_iter().enumerate() {
        let mut r = EventResult {
            index,
            event_id,
            status: Status::Accepted,
            partition: None,
            offset: None,
            error: None,
        };
        match result {
            Err(e) => {
                metrics::counter!(m::EVENTS_REJECTED, "rule" => e.rule.as_str()).increment(1);
                response.rejected += 1;
                r.status = Status::Rejected;
                r.error = Some(EventError {
                    code: "invalid_event",
                    rule: Some(e.rule),
                    field: e.field,
                    message: e.message,
                });
            }
            Ok(_) => match stored
                .next()
                .expect("send_all returns one result per valid event")
            {
                Ok(Stored { partition, offset }) => {
                    response.accepted += 1;
                    r.partition = Some(partition);
                    r.offset = Some(offset);
                }
                Err(e) => {
                    response.failed += 1;
                    r.status = Status::Failed;
                    let code = match e {
                        ProduceError::QueueFull => "overloaded",
                        ProduceError::Delivery(_) => "delivery_failed",
                    };
                    tracing::warn!(error = %e, "event not stored");
                    r.error = Some(EventError {
                        code,
                        rule: None,
                        field: None,
                        message: "the event was not stored; retry it".into(),
                    });
                }
            },
        }
        response.results.push(r);
    }
    metrics::counter!(m::EVENTS_ACCEPTED).increment(response.accepted as u64);
    metrics::counter!(m::EVENTS_FAILED).increment(response.failed as u64);

    let status = if response.failed > 0 {
        StatusCode::SERVICE_UNAVAILABLE
    } else if response.rejected == 0 {
        StatusCode::OK
    } else if response.accepted == 0 {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::MULTI_STATUS
    };
    let mut http = (status, Json(response)).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        http.headers_mut().insert(
            header::RETRY_AFTER,
            retry_after_header(state.config.retry_after),
        );
    }
    Ok(http)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyFormat {
    Json,
    NdJson,
}

fn content_type(headers: &HeaderMap) -> Result<BodyFormat, AppError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(BodyFormat::Json);
    };
    let value = value.to_str().unwrap_or_default();
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/json" | "" => Ok(BodyFormat::Json),
        "application/x-ndjson" | "application/jsonl" | "application/ndjson" => {
            Ok(BodyFormat::NdJson)
        }
        _ => Err(AppError::UnsupportedMediaType(value.to_owned())),
    }
}

/// Splits a body into per-event JSON values. A JSON body that does not parse is a request error
/// (its events cannot be told apart); an NDJSON line that does not parse is that event's error.
fn split_body(
    format: BodyFormat,
    body: &[u8],
) -> Result<Vec<Result<Value, ValidationError>>, AppError> {
    match format {
        BodyFormat::Json => {
            let value: Value = serde_json::from_slice(body)
                .map_err(|e| AppError::BadBody(format!("the body is not valid JSON: {e}")))?;
            match value {
                Value::Array(events) => Ok(events.into_iter().map(Ok).collect()),
                Value::Object(_) => Ok(vec![Ok(value)]),
                _ => Err(AppError::BadBody(
                    "the body must be an event object or an array of events".into(),
                )),
            }
        }
        BodyFormat::NdJson => Ok(body
            .split(|b| *b == b'\n')
            .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
            .map(|line| {
                serde_json::from_slice(line).map_err(|e| {
                    ValidationError::whole(Rule::Json, format!("the line is not valid JSON: {e}"))
                })
            })
            .collect()),
    }
}

fn now_ms() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ndjson_lines_fail_alone() {
        let items = split_body(BodyFormat::NdJson, b"{\"a\":1}\n\n{oops\n{\"b\":2}\n").unwrap();
        assert_eq!(items.len(), 3);
        assert!(items[0].is_ok());
        assert_eq!(items[1].as_ref().unwrap_err().rule, Rule::Json);
        assert!(items[2].is_ok());
    }

    #[test]
    fn json_body_is_an_object_or_an_array() {
        assert_eq!(split_body(BodyFormat::Json, b"{}").unwrap().len(), 1);
        assert_eq!(split_body(BodyFormat::Json, b"[{},{}]").unwrap().len(), 2);
        assert!(split_body(BodyFormat::Json, b"3").is_err());
        assert!(split_body(BodyFormat::Json, b"[{}").is_err());
    }

    #[test]
    fn content_types() {
        let mut h = HeaderMap::new();
        assert_eq!(content_type(&h).unwrap(), BodyFormat::Json);
        h.insert(
            header::CONTENT_TYPE,
            "application/x-ndjson".parse().unwrap(),
        );
        assert_eq!(content_type(&h).unwrap(), BodyFormat::NdJson);
        h.insert(
            header::CONTENT_TYPE,
            "application/json; charset=utf-8".parse().unwrap(),
        );
        assert_eq!(content_type(&h).unwrap(), BodyFormat::Json);
        h.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert!(content_type(&h).is_err());
    }
}
