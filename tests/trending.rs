//! Trending hashtags end to end: the generator's posts through the real broker, the trending
//! job on the runtime, `GET /v1/trending` over HTTP.
//!
//! - A burst tag of the generator (many accounts, one hour) is in the 1 h top 10 at the end of
//!   its hour, while the steady high-volume tag, among the most posted of that same hour, is
//!   not.
//! - One account posting a tag 500 times does not trend it (the distinct-accounts floor),
//!   although its count alone would put it first.

#[path = "../stream-jobs/tests/support/mod.rs"]
mod support;

use std::time::Duration;

use aperture_ingest::generate::{Spec, generate};
use aperture_schema::event::{MediaType, PostCreated};
use aperture_schema::{Config, Envelope, Event};
use serde_json::Value;
use support::*;

/// Runs the read API on an ephemeral port and asks it for `/v1/trending` with `query`.
fn trending(config: &Config, query: &[(&str, String)]) -> Value {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let state = aperture_serving::AppState::new(config).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            axum::serve(
                listener,
                aperture_serving::app(state, Duration::from_secs(20)),
            )
            .await
            .unwrap()
        });
        let response = reqwest::Client::new()
            .get(format!("{base}/v1/trending"))
            .query(query)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    })
}

fn tags(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tag"].as_str().unwrap().to_owned())
        .collect()
}

/// Only the events trending reads (accounts and posts), so the run stays short.
fn posts_only(events: Vec<Envelope>) -> Vec<Envelope> {
    events
        .into_iter()
        .filter(|e| {
            matches!(
                e.event,
                Event::UserCreated(_) | Event::PostCreated(_) | Event::PostDeleted(_)
            )
        })
        .collect()
}

fn run_trending(config: &Config, events: &[Envelope]) {
    create_topics(config);
    produce(config, events);
    let worker = RunningWorker::start_jobs(
        config,
        aperture_stream_jobs::jobs::by_names(&["trending".into()]).unwrap(),
    );
    wait_caught_up(config, &["trending"], Duration::from_secs(300));
    worker.stop();
}

fn posts_with(events: &[Envelope], tag: &str, from: i64, to: i64) -> usize {
    events
        .iter()
        .filter(|e| e.ts >= from && e.ts <= to)
        .filter(
            |e| matches!(&e.event, Event::PostCreated(p) if p.hashtags.iter().any(|t| t == tag)),
        )
        .count()
}

#[test]
fn a_burst_tag_trends_in_its_hour_and_the_steady_high_volume_tag_does_not() {
    let spec = Spec {
        seed: 11,
        users: 3_000,
        days: 3.0,
        posts_per_user_per_day: 1.0,
        bursts: 2,
        ..Spec::default()
    };
    let workload = generate(&spec);
    let events = posts_only(workload.events);
    let config = test_config("trending-burst", 4);
    run_trending(&config, &events);

    let steady = &workload.steady_tag;
    for burst in &workload.bursts {
        let at = burst.end_ms;
        let page = trending(
            &config,
            &[
                ("window", "1h".into()),
                ("limit", "10".into()),
                ("at", at.to_string()),
            ],
        );
        let top = tags(&page);
        let hour_ago = at - 3_600_000;
        let burst_posts = posts_with(&events, &burst.tag, hour_ago, at);
        let steady_posts = posts_with(&events, steady, hour_ago, at);
        eprintln!(
            "at {at}: top 10 {top:?}; #{} {burst_posts} posts, #{steady} {steady_posts} posts",
            burst.tag
        );
        assert!(top.contains(&burst.tag), "#{} not in {top:?}", burst.tag);
        assert!(!top.contains(steady), "#{steady} in {top:?}");
        // By volume alone the steady tag would be near the top: it is among the three most
        // posted tags of that very hour.
        let mut volumes: std::collections::HashMap<&str, usize> = Default::default();
        for e in events.iter().filter(|e| e.ts >= hour_ago && e.ts <= at) {
            if let Event::PostCreated(p) = &e.event {
                for t in &p.hashtags {
                    *volumes.entry(t.as_str()).or_default() += 1;
                }
            }
        }
        let louder = volumes.values().filter(|&&n| n > steady_posts).count();
        assert!(
            louder < 3,
            "#{steady} ({steady_posts} posts) is not high-volume: {volumes:?}"
        );
        let first = &page["items"][0];
        assert!(first["score"].as_f64().unwrap() > 0.0);
        assert_eq!(page["at"], at);
    }
    // Without `at`, the window ends at the newest tagged post counted.
    let page = trending(&config, &[("window", "24h".into())]);
    let newest = events
        .iter()
        .filter(|e| matches!(&e.event, Event::PostCreated(p) if !p.hashtags.is_empty()))
        .map(|e| e.ts)
        .max()
        .unwrap();
    assert_eq!(page["at"], newest);
}

#[test]
fn one_account_posting_a_tag_five_hundred_times_does_not_trend_it() {
    let spec = Spec {
        seed: 12,
        users: 1_000,
        days: 1.0,
        posts_per_user_per_day: 1.0,
        bursts: 0,
        ..Spec::default()
    };
    let workload = generate(&spec);
    let mut events = posts_only(workload.events);
    let end = events.iter().map(|e| e.ts).max().unwrap();
    let spammer = 7;
    for i in 0..500u64 {
        events.push(Envelope {
            v: 1,
            event_id: format!("spam-{i}"),
            actor_id: spammer,
            ts: end - 3_000_000 + i as i64 * 1_000,
            event: Event::PostCreated(PostCreated {
                post_id: 9_000_000 + i,
                media_type: MediaType::Photo,
                media: vec!["m/spam.jpg".into()],
                caption: "#buynow".into(),
                location: None,
                hashtags: vec!["buynow".into()],
                mentions: vec![],
            }),
        });
    }
    events.sort_by_key(|e| e.ts);
    let config = test_config("trending-spam", 4);
    run_trending(&config, &events);

    let query = [
        ("window", "1h".to_string()),
        ("limit", "100".into()),
        ("at", end.to_string()),
    ];
    let listed = tags(&trending(&config, &query));
    assert!(!listed.contains(&"buynow".to_owned()), "{listed:?}");
    // The floor is what stops it: with a floor of one account it would be first.
    let mut no_floor = config.clone();
    no_floor.trending.min_accounts = 1;
    let listed = tags(&trending(&no_floor, &query));
    assert_eq!(
        listed.first().map(String::as_str),
        Some("buynow"),
        "{listed:?}"
    );
}
