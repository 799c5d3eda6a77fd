//! The warehouse read back as events: every row of every table turned into the [`Envelope`] it
//! was written from, in event-time order, for whatever must replay the log after Kafka's
//! retention has passed (ranking's offline features and training data read it).
//!
//! A row becomes the event's wire JSON and goes through the same strict decoder as a record of
//! the topic ([`Origin::Topic`]), so a row that no longer makes a valid event is an error naming
//! the table and the event, never a silently different event. Columns map to wire fields by
//! name, with the few exceptions of `schema/src/warehouse.rs`: `event_type` is `type`, `ts` is
//! ms, `dt` is not a field, `location_*` nest into `location`, the author of a `story_created`
//! is its actor, a `profile_view`'s `author_id` is its `target_id`, and a
//! `follow_request_approved`'s `target_id` is its `requester_id`.

use std::path::Path;

use aperture_schema::warehouse::{ColumnType, Table};
use aperture_schema::{Envelope, Origin, WIRE_VERSION, decode_value};
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type, Int64Type, TimestampMillisecondType};
use serde_json::{Map, Value};

use crate::sql::{self, SqlError};

/// Why the warehouse could not be read back as events.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Sql(#[from] SqlError),
    #[error("could not read column {column} of table {table}: {source}")]
    Arrow {
        table: &'static str,
        column: String,
        #[source]
        source: arrow::error::ArrowError,
    },
    #[error("row {event_id} of table {table} is not a valid event: {reason}")]
    Invalid {
        table: &'static str,
        event_id: String,
        reason: String,
    },
}

/// Every event of the warehouse at `root`, sorted by `ts` then `event_id` (the order the jobs'
/// semantics are defined in), each event id once.
pub async fn events(root: &Path) -> Result<Vec<Envelope>, ReplayError> {
    let ctx = sql::context(root).await?;
    let mut out = Vec::new();
    for table in Table::ALL {
        let (_, batches) = sql::query(&ctx, &format!("SELECT * FROM {}", table.name())).await?;
        for batch in &batches {
            batch_events(table, batch, &mut out)?;
        }
    }
    out.sort_by(|a, b| (a.ts, &a.event_id).cmp(&(b.ts, &b.event_id)));
    out.dedup_by(|a, b| a.event_id == b.event_id);
    Ok(out)
}

/// The events of one batch of `table`'s rows, appended to `out`.
pub fn batch_events(
    table: Table,
    batch: &RecordBatch,
    out: &mut Vec<Envelope>,
) -> Result<(), ReplayError> {
    let name = table.name();
    let mut rows: Vec<Map<String, Value>> = vec![Map::new(); batch.num_rows()];
    for column in table.columns() {
        let Some(array) = batch.column_by_name(column.name) else {
            continue;
        };
        let arrow_err = |source| ReplayError::Arrow {
            table: name,
            column: column.name.to_string(),
            source,
        };
        // Enumerations may come back dictionary-encoded or plain; read both as text.
        let array = match (column.column_type(), array.data_type()) {
            (ColumnType::Enum, DataType::Dictionary(..)) => {
                arrow::compute::cast(array, &DataType::Utf8).map_err(arrow_err)?
            }
            _ => array.clone(),
        };
        for (i, row) in rows.iter_mut().enumerate() {
            if array.is_null(i) {
                continue;
            }
            let value = match column.column_type() {
                ColumnType::Int => Value::from(array.as_primitive::<Int64Type>().value(i)),
                ColumnType::Float => Value::from(array.as_primitive::<Float64Type>().value(i)),
                ColumnType::Bool => Value::from(array.as_boolean().value(i)),
                ColumnType::Text | ColumnType::Enum => {
                    Value::from(array.as_string::<i32>().value(i))
                }
                ColumnType::TextList => {
                    let list = array.as_list::<i32>().value(i);
                    let items = list.as_string::<i32>();
                    Value::from(
                        (0..items.len())
                            .map(|j| Value::from(items.value(j)))
                            .collect::<Vec<_>>(),
                    )
                }
                ColumnType::Timestamp => {
                    Value::from(array.as_primitive::<TimestampMillisecondType>().value(i))
                }
                // `dt` is derived from `ts`; no event carries it.
                ColumnType::Date => continue,
            };
            row.insert(column.name.to_string(), value);
        }
    }
    out.reserve(rows.len());
    for row in rows {
        let wire = wire_form(row);
        let event_id = wire
            .get("event_id")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();
        let event =
            decode_value(Value::Object(wire), Origin::Topic).map_err(|e| ReplayError::Invalid {
                table: name,
                event_id,
                reason: e.to_string(),
            })?;
        out.push(event);
    }
    Ok(())
}

/// A row's columns renamed and nested into the event's wire fields.
fn wire_form(mut row: Map<String, Value>) -> Map<String, Value> {
    if let Some(kind) = row.remove("event_type") {
        row.insert("type".into(), kind);
    }
    row.insert("v".into(), Value::from(WIRE_VERSION));
    let kind = row.get("type").and_then(Value::as_str).unwrap_or_default();
    match kind {
        "story_created" => {
            row.remove("author_id");
            // A story's one media reference is a text column; the wire form is a list.
            if let Some(media) = row.remove("media") {
                row.insert("media".into(), Value::Array(vec![media]));
            }
        }
        "profile_view" => {
            if let Some(author) = row.remove("author_id") {
                row.insert("target_id".into(), author);
            }
        }
        "follow_request_approved" => {
            if let Some(target) = row.remove("target_id") {
                row.insert("requester_id".into(), target);
            }
        }
        _ => {}
    }
    let name = row.remove("location_name");
    let lat = row.remove("location_lat");
    let lng = row.remove("location_lng");
    if let (Some(name), Some(lat), Some(lng)) = (name, lat, lng) {
        let mut location = Map::new();
        location.insert("name".into(), name);
        location.insert("lat".into(), lat);
        location.insert("lng".into(), lng);
        row.insert("location".into(), Value::Object(location));
    }
    row
}
