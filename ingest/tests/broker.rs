//! The ingest API against a real tansu broker: what is posted is what lands on the topic, with
//! the right key and partition; bad events are refused one by one; back-pressure and broker
//! restarts never lose an acknowledged event.

mod support;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use aperture_schema::topics::partition_for;
use aperture_schema::{Origin, decode};
use serde_json::{Value, json};
use support::*;

#[tokio::test]
async fn posted_events_are_on_the_topic_with_actor_key_and_partition() {
    let api = TestApi::start(test_config("keyed", 4)).await;
    let events: Vec<Value> = (0..300).map(good_event).collect();
    let (status, body) = api.post_json(&Value::Array(events.clone())).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 300);

    let records = api.read_topic(300).await;
    let at: HashMap<(i32, i64), _> = records
        .iter()
        .map(|r| ((r.partition, r.offset), r))
        .collect();
    let mut last_offset_of_actor: HashMap<u64, i64> = HashMap::new();
    for (sent, result) in events.iter().zip(body["results"].as_array().unwrap()) {
        assert_eq!(result["status"], "accepted");
        let partition = result["partition"].as_i64().unwrap() as i32;
        let offset = result["offset"].as_i64().unwrap();
        let record = at[&(partition, offset)];
        let actor = sent["actor_id"].as_u64().unwrap();
        assert_eq!(
            record.key.as_deref(),
            Some(actor.to_string().as_bytes()),
            "key is actor_id"
        );
        assert_eq!(
            partition as u32,
            partition_for(actor, 4),
            "Java-compatible partitioner"
        );
        let stored = decode(&record.payload, Origin::Topic).unwrap();
        let expected = decode(&serde_json::to_vec(sent).unwrap(), Origin::App).unwrap();
        assert_eq!(stored, expected);
        // One actor's events keep their order.
        if let Some(previous) = last_offset_of_actor.insert(actor, offset) {
            assert!(previous < offset, "actor {actor} out of order");
        }
    }
    // The topic form carries the derived hashtags and mentions.
    let post = records
        .iter()
        .map(|r| serde_json::from_slice::<Value>(&r.payload).unwrap())
        .find(|v| v["type"] == "post_created")
        .unwrap();
    assert_eq!(post["hashtags"], json!(["demo"]));
    assert_eq!(post["mentions"], json!(["friend"]));
}

#[tokio::test]
async fn a_mixed_batch_stores_exactly_the_good_events_and_names_each_fault() {
    let api = TestApi::start(test_config("mixed", 2)).await;
    let mut too_long = good_event(3);
    too_long["caption"] = json!("x".repeat(2201));
    let mut self_follow = good_event(2);
    self_follow["target_id"] = self_follow["actor_id"].clone();
    let mut unknown = good_event(4);
    unknown["type"] = json!("poke");
    let mut extra = good_event(7);
    extra["colour"] = json!("red");
    let lines = [
        serde_json::to_string(&good_event(0)).unwrap(),
        serde_json::to_string(&too_long).unwrap(),
        "{this is not json".to_owned(),
        serde_json::to_string(&good_event(1)).unwrap(),
        serde_json::to_string(&unknown).unwrap(),
        serde_json::to_string(&self_follow).unwrap(),
        String::new(),
        serde_json::to_string(&extra).unwrap(),
        serde_json::to_string(&good_event(5)).unwrap(),
    ];
    let response = api
        .post_raw("application/x-ndjson", lines.join("\n").into_bytes())
        .await;
    assert_eq!(response.status().as_u16(), 207);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        (body["accepted"].as_u64(), body["rejected"].as_u64()),
        (Some(3), Some(5))
    );
    let results = body["results"].as_array().unwrap();
    let faults: Vec<(u64, &str, Option<&str>)> = results
        .iter()
        .filter(|r| r["status"] == "rejected")
        .map(|r| {
            (
                r["index"].as_u64().unwrap(),
                r["error"]["rule"].as_str().unwrap(),
                r["error"]["field"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        faults,
        [
            (1, "length", Some("caption")),
            (2, "json", None),
            (4, "unknown_type", Some("type")),
            (5, "not_self", Some("target_id")),
            (6, "unknown_field", Some("colour")),
        ]
    );

    let records = api.read_topic(3).await;
    let stored: BTreeSet<String> = records
        .iter()
        .map(|r| decode(&r.payload, Origin::Topic).unwrap().event_id)
        .collect();
    assert_eq!(
        stored,
        BTreeSet::from(["e-0".to_owned(), "e-1".to_owned(), "e-5".to_owned()])
    );
}

#[tokio::test]
async fn a_single_bad_event_gets_422_naming_field_and_rule() {
    let api = TestApi::start(test_config("single", 1)).await;
    let mut bad = good_event(1);
    bad["post_id"] = json!(1u64 << 53);
    let (status, body) = api.post_json(&bad).await;
    assert_eq!(status, 422, "{body}");
    let error = &body["results"][0]["error"];
    assert_eq!(
        (error["field"].as_str(), error["rule"].as_str()),
        (Some("post_id"), Some("id_range"))
    );
    assert!(error["message"].as_str().unwrap().contains("post_id"));
    api.read_topic(0).await;
}

#[tokio::test]
async fn request_errors_use_the_error_format() {
    let mut config = test_config("limits", 1);
    config.ingest.max_body_bytes = 64 * 1024;
    config.ingest.max_batch_events = 10;
    let api = TestApi::start(config).await;

    let check = |status: u16, body: Value, want_status: u16, code: &str| {
        assert_eq!(status, want_status, "{body}");
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(!body["error"]["message"].as_str().unwrap().is_empty());
    };
    let r = api
        .post_raw("application/json", b"{not json".to_vec())
        .await;
    check(
        r.status().as_u16(),
        r.json().await.unwrap(),
        400,
        "bad_body",
    );
    let r = api
        .post_raw("application/json", vec![b' '; 65 * 1024])
        .await;
    check(
        r.status().as_u16(),
        r.json().await.unwrap(),
        413,
        "body_too_large",
    );
    let r = api.post_raw("text/csv", b"a,b".to_vec()).await;
    check(
        r.status().as_u16(),
        r.json().await.unwrap(),
        415,
        "unsupported_media_type",
    );
    let (s, b) = api
        .post_json(&Value::Array((0..11).map(good_event).collect()))
        .await;
    check(s, b, 413, "too_many_events");
    let (s, b) = api.post_json(&json!([])).await;
    check(s, b, 400, "bad_body");
}

#[tokio::test]
async fn metrics_count_accepted_and_rejected_by_rule() {
    let api = TestApi::start(test_config("metrics", 1)).await;
    let mut bad = good_event(1);
    bad["event_id"] = json!("has space");
    let (status, _) = api.post_json(&json!([good_event(0), bad])).await;
    assert_eq!(status, 207);
    let text = reqwest::get(format!("{}/metrics", api.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("aperture_ingest_events_accepted_total"),
        "{text}"
    );
    assert!(
        text.contains("aperture_ingest_events_rejected_total{rule=\"pattern\"}"),
        "{text}"
    );
    assert!(
        text.contains("aperture_ingest_produce_latency_seconds"),
        "{text}"
    );
}

#[tokio::test]
async fn a_full_producer_answers_503_with_retry_after_and_buffers_nothing_more() {
    // A broker address nobody listens on: deliveries wait until their deadline, holding their
    // places in the producer, so the next request finds it full.
    let mut config = test_config("full", 1);
    config.kafka.brokers = format!("127.0.0.1:{}", free_port());
    config.kafka.producer.queue_max_messages = 10;
    config.kafka.producer.message_timeout = Duration::from_secs(4);
    config.ingest.max_batch_events = 10;
    config.ingest.request_timeout = Duration::from_secs(20);
    config.ingest.retry_after = Duration::from_secs(2);
    let api = TestApi::start_without_topics(config).await;

    let first = {
        let batch = Value::Array((0..10).map(good_event).collect());
        let url = api.url.clone();
        tokio::spawn(async move {
            let r = reqwest::Client::new()
                .post(format!("{url}/v1/events"))
                .json(&batch)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = api
        .post_raw(
            "application/json",
            serde_json::to_vec(&good_event(11)).unwrap(),
        )
        .await;
    assert_eq!(r.status().as_u16(), 503);
    assert_eq!(r.headers()["retry-after"], "2");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "overloaded");

    // The first request's events were never acknowledged: each is reported as failed, to retry.
    let (status, body) = first.await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["failed"], 10);
    assert!(
        body["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "failed")
    );
    assert_eq!(api.healthz().await, 503, "no broker, not healthy");
}

#[tokio::test]
async fn the_producer_survives_a_broker_restart_without_losing_an_acknowledged_event() {
    let mut broker = TestBroker::start();
    let mut config = test_config("restart", 3);
    config.kafka.brokers = broker.brokers();
    let api = TestApi::start(config).await;
    assert_eq!(api.healthz().await, 200);

    let (status, body) = api
        .post_json(&Value::Array((0..100).map(good_event).collect()))
        .await;
    assert_eq!(status, 200, "{body}");

    broker.kill();
    assert_eq!(
        api.healthz().await,
        503,
        "health reflects the broker being down"
    );
    // Posted while the broker is down: the request waits for the broker to return.
    let during = {
        let batch = Value::Array((100..200).map(good_event).collect());
        let url = api.url.clone();
        tokio::spawn(async move {
            let r = reqwest::Client::new()
                .post(format!("{url}/v1/events"))
                .json(&batch)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    broker.restart();
    let (status, body) = during.await.unwrap();
    assert_eq!(status, 200, "{body}");
    let (status, body) = api
        .post_json(&Value::Array((200..300).map(good_event).collect()))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(api.healthz().await, 200);

    // Every acknowledged event is on the topic exactly once (the producer is idempotent).
    let records = api.read_topic(300).await;
    let ids: Vec<String> = records
        .iter()
        .map(|r| decode(&r.payload, Origin::Topic).unwrap().event_id)
        .collect();
    let distinct: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), 300);
    assert_eq!(
        distinct,
        (0..300)
            .map(|i| format!("e-{i}"))
            .collect::<Vec<_>>()
            .iter()
            .collect()
    );
}
