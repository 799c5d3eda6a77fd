//! Events of one table into an Arrow [`RecordBatch`] of that table's schema, sorted by the
//! table's sort key, with the column definitions of `aperture_schema::warehouse`.

use std::sync::Arc;

use aperture_schema::Envelope;
use aperture_schema::warehouse::{Table, Value};
use arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Float64Array, Int64Array, ListBuilder, StringArray,
    StringBuilder, StringDictionaryBuilder, TimestampMillisecondArray,
};
use arrow::compute::{SortColumn, SortOptions, lexsort_to_indices, take_record_batch};
use arrow::datatypes::Int32Type;
use arrow::record_batch::RecordBatch;

use crate::error::WarehouseError;

/// The rows of `table` for `events`, sorted by [`Table::sort_key`]. Every event must belong to
/// `table` and have a warehouse day ([`aperture_schema::warehouse::day_of`]); the sink checks
/// both before buffering, so either failing is a bug.
pub fn record_batch(table: Table, events: &[&Envelope]) -> Result<RecordBatch, WarehouseError> {
    if let Some(e) = events.iter().find(|e| Table::of(e.kind()) != table) {
        return Err(WarehouseError::Internal(format!(
            "a {} event was handed to table {table}",
            e.kind()
        )));
    }
    let columns: Vec<ArrayRef> = table
        .columns()
        .iter()
        .map(|c| array(&c.value, events))
        .collect();
    let batch =
        RecordBatch::try_new(table.schema(), columns).map_err(|source| WarehouseError::Arrow {
            table: table.name(),
            source,
        })?;
    sort(table, &batch)
}

/// `batch` (of `table`'s schema) sorted by the table's sort key, nulls last.
pub fn sort(table: Table, batch: &RecordBatch) -> Result<RecordBatch, WarehouseError> {
    let arrow = |source| WarehouseError::Arrow {
        table: table.name(),
        source,
    };
    let keys: Vec<SortColumn> = table
        .sort_key()
        .iter()
        .map(|name| {
            let index = batch.schema().index_of(name).map_err(arrow)?;
            Ok(SortColumn {
                values: Arc::clone(batch.column(index)),
                options: Some(SortOptions {
                    descending: false,
                    nulls_first: false,
                }),
            })
        })
        .collect::<Result<_, WarehouseError>>()?;
    let indices = lexsort_to_indices(&keys, None).map_err(arrow)?;
    take_record_batch(batch, &indices).map_err(arrow)
}

fn array(value: &Value, events: &[&Envelope]) -> ArrayRef {
    match value {
        Value::Int(f) => Arc::new(events.iter().map(|e| f(e)).collect::<Int64Array>()),
        Value::Float(f) => Arc::new(events.iter().map(|e| f(e)).collect::<Float64Array>()),
        Value::Bool(f) => Arc::new(events.iter().map(|e| f(e)).collect::<BooleanArray>()),
        Value::Text(f) => Arc::new(events.iter().map(|e| f(e)).collect::<StringArray>()),
        Value::Timestamp(f) => Arc::new(
            events
                .iter()
                .map(|e| f(e))
                .collect::<TimestampMillisecondArray>()
                .with_timezone("UTC"),
        ),
        Value::Date(f) => Arc::new(events.iter().map(|e| f(e)).collect::<Date32Array>()),
        Value::Enum(f) => {
            let mut b = StringDictionaryBuilder::<Int32Type>::new();
            for e in events {
                b.append_option(f(e));
            }
            Arc::new(b.finish())
        }
        Value::TextList(f) => {
            let mut b = ListBuilder::new(StringBuilder::new());
            for e in events {
                match f(e) {
                    Some(items) => {
                        for item in items {
                            b.values().append_value(item);
                        }
                        b.append(true);
                    }
                    None => b.append(false),
                }
            }
            Arc::new(b.finish())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aperture_schema::event::{Event, PostCreated, PostRef, Target, View};
    use aperture_schema::{EventKind, Origin, decode};
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Date32Type, Int64Type, TimestampMillisecondType};

    fn envelope(id: &str, actor: u64, ts: i64, event: Event) -> Envelope {
        Envelope {
            v: 1,
            event_id: id.into(),
            actor_id: actor,
            ts,
            event,
        }
    }

    #[test]
    fn every_event_type_becomes_a_row_of_its_table() {
        // One valid event of each type, through the decoder as the sink reads them.
        let raw = [
            r#"{"v":1,"event_id":"a1","type":"user_created","actor_id":1,"ts":5,"username":"ana","private":false,"verified":true}"#,
            r#"{"v":1,"event_id":"a2","type":"user_updated","actor_id":1,"ts":6,"private":true}"#,
            r#"{"v":1,"event_id":"a3","type":"follow","actor_id":2,"ts":7,"target_id":1}"#,
            r#"{"v":1,"event_id":"a4","type":"unfollow","actor_id":2,"ts":8,"target_id":1}"#,
            r#"{"v":1,"event_id":"a5","type":"follow_request_approved","actor_id":1,"ts":9,"requester_id":2}"#,
            r#"{"v":1,"event_id":"a6","type":"block","actor_id":2,"ts":10,"target_id":3}"#,
            r#"{"v":1,"event_id":"a7","type":"unblock","actor_id":2,"ts":11,"target_id":3}"#,
            r#"{"v":1,"event_id":"a8","type":"close_friend_added","actor_id":2,"ts":12,"target_id":3}"#,
            r#"{"v":1,"event_id":"a9","type":"close_friend_removed","actor_id":2,"ts":13,"target_id":3}"#,
            r#"{"v":1,"event_id":"b1","type":"post_created","actor_id":1,"ts":14,"post_id":10,"media_type":"carousel","media":["a","b"],"caption":"hi #Sun @ben","location":{"name":"pier","lat":1.5,"lng":2.5}}"#,
            r#"{"v":1,"event_id":"b2","type":"post_deleted","actor_id":1,"ts":15,"post_id":10}"#,
            r#"{"v":1,"event_id":"b3","type":"story_created","actor_id":1,"ts":16,"story_id":20,"media_type":"video","media":["s"],"audience":"close_friends"}"#,
            r#"{"v":1,"event_id":"b4","type":"story_viewed","actor_id":2,"ts":17,"story_id":20,"author_id":1}"#,
            r#"{"v":1,"event_id":"b5","type":"like","actor_id":2,"ts":18,"post_id":10,"author_id":1}"#,
            r#"{"v":1,"event_id":"b6","type":"unlike","actor_id":2,"ts":19,"post_id":10,"author_id":1}"#,
            r#"{"v":1,"event_id":"b7","type":"comment_created","actor_id":2,"ts":20,"comment_id":30,"post_id":10,"author_id":1,"text":"so #Good"}"#,
            r#"{"v":1,"event_id":"b8","type":"comment_deleted","actor_id":2,"ts":21,"comment_id":30,"post_id":10,"author_id":1}"#,
            r#"{"v":1,"event_id":"b9","type":"share","actor_id":2,"ts":22,"post_id":10,"author_id":1,"to_id":3}"#,
            r#"{"v":1,"event_id":"c1","type":"save","actor_id":2,"ts":23,"post_id":10,"author_id":1}"#,
            r#"{"v":1,"event_id":"c2","type":"unsave","actor_id":2,"ts":24,"post_id":10,"author_id":1}"#,
            r#"{"v":1,"event_id":"c3","type":"view","actor_id":2,"ts":25,"post_id":10,"author_id":1,"surface":"reels","dwell_ms":900,"watch_ms":800}"#,
            r#"{"v":1,"event_id":"c4","type":"profile_view","actor_id":2,"ts":26,"target_id":1}"#,
            r#"{"v":1,"event_id":"c5","type":"hide","actor_id":2,"ts":27,"post_id":10,"author_id":1,"surface":"feed"}"#,
            r#"{"v":1,"event_id":"c6","type":"report","actor_id":2,"ts":28,"post_id":10,"author_id":1,"reason":"spam"}"#,
        ];
        let events: Vec<Envelope> = raw
            .iter()
            .map(|r| decode(r.as_bytes(), Origin::Topic).unwrap())
            .collect();
        let kinds: std::collections::BTreeSet<EventKind> =
            events.iter().map(Envelope::kind).collect();
        assert_eq!(kinds.len(), EventKind::ALL.len(), "one event of every type");
        for table in Table::ALL {
            let mine: Vec<&Envelope> = events
                .iter()
                .filter(|e| Table::of(e.kind()) == table)
                .collect();
            let batch = record_batch(table, &mine).unwrap();
            assert_eq!(batch.num_rows(), mine.len(), "{table}");
            assert_eq!(batch.schema(), table.schema(), "{table}");
            for (i, c) in table.columns().iter().enumerate() {
                if !c.nullable {
                    assert_eq!(batch.column(i).null_count(), 0, "{table}.{}", c.name);
                }
            }
        }
        let posts: Vec<&Envelope> = events
            .iter()
            .filter(|e| Table::of(e.kind()) == Table::Posts)
            .collect();
        let batch = record_batch(Table::Posts, &posts).unwrap();
        let hashtags = batch.column_by_name("hashtags").unwrap().as_list::<i32>();
        assert_eq!(hashtags.value(0).as_string::<i32>().value(0), "sun");
        assert!(hashtags.is_null(1), "post_deleted has no hashtags");
        let dt = batch.column_by_name("dt").unwrap();
        assert_eq!(dt.as_primitive::<Date32Type>().value(0), 0);
        let ts = batch.column_by_name("ts").unwrap();
        assert_eq!(ts.as_primitive::<TimestampMillisecondType>().value(1), 15);
    }

    #[test]
    fn rows_come_out_sorted_by_author_then_post_then_time() {
        let like = |id: &str, author: u64, post: u64, ts: i64| {
            envelope(
                id,
                7,
                ts,
                Event::Like(PostRef {
                    post_id: post,
                    author_id: author,
                }),
            )
        };
        let events = [
            like("e1", 2, 20, 5),
            like("e2", 1, 11, 9),
            like("e3", 1, 10, 8),
            like("e4", 1, 10, 3),
        ];
        let refs: Vec<&Envelope> = events.iter().collect();
        let batch = record_batch(Table::Likes, &refs).unwrap();
        let ids: Vec<&str> = batch
            .column_by_name("event_id")
            .unwrap()
            .as_string::<i32>()
            .iter()
            .map(Option::unwrap)
            .collect();
        assert_eq!(ids, ["e4", "e3", "e2", "e1"]);
    }

    #[test]
    fn profile_views_sort_after_post_views_of_the_same_author() {
        let events = [
            envelope("p", 2, 1, Event::ProfileView(Target { target_id: 1 })),
            envelope(
                "v",
                2,
                2,
                Event::View(View {
                    post_id: 10,
                    author_id: 1,
                    surface: aperture_schema::event::Surface::Feed,
                    dwell_ms: 5,
                    watch_ms: None,
                }),
            ),
        ];
        let refs: Vec<&Envelope> = events.iter().collect();
        let batch = record_batch(Table::Views, &refs).unwrap();
        let post = batch.column_by_name("post_id").unwrap();
        assert_eq!(post.as_primitive::<Int64Type>().value(0), 10);
        assert!(post.is_null(1));
    }

    #[test]
    fn an_event_of_another_table_is_refused_as_a_bug() {
        let e = envelope(
            "x",
            1,
            1,
            Event::PostCreated(PostCreated {
                post_id: 1,
                media_type: aperture_schema::event::MediaType::Photo,
                media: vec!["m".into()],
                caption: String::new(),
                location: None,
                hashtags: vec![],
                mentions: vec![],
            }),
        );
        let err = record_batch(Table::Likes, &[&e]).unwrap_err().to_string();
        assert!(err.starts_with("bug: a post_created event"), "{err}");
    }
}
