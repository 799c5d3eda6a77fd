//! The feed API against the oracle, end to end: randomised event sequences go through the real
//! broker to a real worker (`graph` and `fanout` on the runtime), and every viewer's feed, read
//! page by page from the read API over HTTP, must equal the oracle's — same posts, same order,
//! same sources, hydrated right — and never hold a post from an author the viewer blocks, is
//! blocked by, or does not (or no longer) follow as an approved follower.
//!
//! Hundreds of independent cases share one topic: each case's users, posts and event ids are
//! relabelled into a range of their own, so one worker run checks them all.

#[path = "../stream-jobs/tests/support/mod.rs"]
mod support;

use std::time::Duration;

use aperture_schema::event::{
    Event, FollowRequestApproved, PostCreated, PostDeleted, Target, UserCreated,
};
use aperture_schema::{Config, Envelope};
use aperture_serving::auth::Tokens;
use aperture_stream_jobs::oracle::{Follow, Oracle, Source};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use support::*;

/// Users of case `c` are `c * 100 + u`; posts `c * 10_000 + p`.
fn relabel(events: Vec<Envelope>, case: u64) -> Vec<Envelope> {
    let user = |u: u64| case * 100 + u;
    let post = |p: u64| case * 10_000 + p;
    events
        .into_iter()
        .map(|mut e| {
            e.event_id = format!("c{case}-{}", e.event_id);
            e.actor_id = user(e.actor_id);
            e.event = match e.event {
                Event::UserCreated(u) => Event::UserCreated(UserCreated {
                    username: format!("c{case}{}", u.username),
                    ..u
                }),
                Event::Follow(t) => Event::Follow(Target {
                    target_id: user(t.target_id),
                }),
                Event::Unfollow(t) => Event::Unfollow(Target {
                    target_id: user(t.target_id),
                }),
                Event::Block(t) => Event::Block(Target {
                    target_id: user(t.target_id),
                }),
                Event::Unblock(t) => Event::Unblock(Target {
                    target_id: user(t.target_id),
                }),
                Event::FollowRequestApproved(a) => {
                    Event::FollowRequestApproved(FollowRequestApproved {
                        requester_id: user(a.requester_id),
                    })
                }
                Event::PostCreated(p) => Event::PostCreated(PostCreated {
                    post_id: post(p.post_id),
                    ..p
                }),
                Event::PostDeleted(p) => Event::PostDeleted(PostDeleted {
                    post_id: post(p.post_id),
                }),
                other @ Event::UserUpdated(_) => other,
                other => panic!("the random sequences do not produce {other:?}"),
            };
            e
        })
        .collect()
}

struct Cases {
    events: Vec<Envelope>,
    /// Per case: its user ids.
    viewers: Vec<Vec<u64>>,
}

fn cases(seed_base: u64, count: u64, users: std::ops::RangeInclusive<u64>) -> Cases {
    let mut events = Vec::new();
    let mut viewers = Vec::new();
    for case in 0..count {
        let mut rng = ChaCha8Rng::seed_from_u64(seed_base + case);
        let n_users = rng.random_range(users.clone());
        let n = rng.random_range(30..=120);
        events.extend(relabel(random_events(&mut rng, n_users, n), case + 1));
        viewers.push((1..=n_users).map(|u| (case + 1) * 100 + u).collect());
    }
    Cases { events, viewers }
}

/// One feed item as the API returned it, reduced to what the oracle knows.
#[derive(Debug, PartialEq, Eq)]
struct Item {
    created_at: i64,
    post: u64,
    author: u64,
    source: Option<Source>,
}

/// Reads `viewer`'s whole feed page by page, `limit` at a time, checking each item's hydration.
async fn read_feed(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    limit: usize,
    oracle: &Oracle,
) -> Vec<Item> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let mut request = client
            .get(format!("{base}/v1/feed"))
            .bearer_auth(token)
            .query(&[("limit", limit.to_string())]);
        if let Some(c) = &cursor {
            request = request.query(&[("cursor", c)]);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        let page: Value = response.json().await.unwrap();
        let page_items = page["items"].as_array().unwrap();
        assert!(page_items.len() <= limit);
        for it in page_items {
            let author = it["author_id"].as_u64().unwrap();
            let post = it["post_id"].as_u64().unwrap();
            let expected_name = &oracle.users[&author].username;
            assert_eq!(it["author_username"], expected_name.as_str(), "post {post}");
            assert_eq!(it["media_type"], "photo", "post {post}");
            assert_eq!(it["media"], serde_json::json!(["m"]), "post {post}");
            assert_eq!(it["like_count"], 0);
            items.push(Item {
                created_at: it["created_at"].as_i64().unwrap(),
                post,
                author,
                source: match it["source"].as_str().unwrap() {
                    "push" => Some(Source::Push),
                    "pull" => Some(Source::Pull),
                    other => panic!("unknown source {other}"),
                },
            });
        }
        match page["next_cursor"].as_str() {
            Some(c) => {
                assert_eq!(page_items.len(), limit, "a page with a next cursor is full");
                cursor = Some(c.to_owned());
            }
            None => return items,
        }
    }
    panic!("the feed did not end after 1000 pages");
}

/// Runs `cases` through the broker and a worker, then compares every viewer's API feed.
fn check(config: Config, cases: Cases, compare_sources: bool) {
    create_topics(&config);
    produce(&config, &cases.events);
    let worker = RunningWorker::start(&config);
    wait_caught_up(&config, &["graph", "fanout"], Duration::from_secs(240));
    worker.stop();

    let mut oracle = Oracle::new(&config);
    oracle.apply_all(&cases.events);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let state = aperture_serving::AppState::new(&config).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            axum::serve(
                listener,
                aperture_serving::app(state, Duration::from_secs(10)),
            )
            .await
            .unwrap()
        });
        let client = reqwest::Client::new();
        let tokens = Tokens::new(&config.serving.jwt_secret);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let (mut viewers, mut items, mut pulled) = (0, 0, 0);
        for (case, users) in cases.viewers.iter().enumerate() {
            for &viewer in users {
                let token = tokens.mint(viewer, Duration::from_secs(600));
                let limit = rng.random_range(1..=7);
                let got = read_feed(&client, &base, &token, limit, &oracle).await;
                for item in &got {
                    let author = item.author;
                    assert_eq!(
                        oracle.state(viewer, author),
                        Follow::Active,
                        "case {case}: viewer {viewer} sees {author}, whom they do not follow"
                    );
                    assert!(
                        !oracle.blocks.contains(&(viewer, author))
                            && !oracle.blocks.contains(&(author, viewer)),
                        "case {case}: viewer {viewer} sees {author} across a block"
                    );
                }
                let expected: Vec<Item> = oracle
                    .feed(viewer)
                    .into_iter()
                    .map(|(created_at, post, author, source)| Item {
                        created_at,
                        post,
                        author,
                        source: Some(source),
                    })
                    .collect();
                let strip = |v: &[Item]| -> Vec<(i64, u64, u64)> {
                    v.iter().map(|i| (i.created_at, i.post, i.author)).collect()
                };
                assert_eq!(
                    strip(&got),
                    strip(&expected),
                    "case {case}: feed of viewer {viewer} (pages of {limit})"
                );
                if compare_sources {
                    assert_eq!(
                        got, expected,
                        "case {case}: sources of viewer {viewer}'s feed"
                    );
                }
                viewers += 1;
                items += got.len();
                pulled += got
                    .iter()
                    .filter(|i| i.source == Some(Source::Pull))
                    .count();
            }
        }
        eprintln!("compared {viewers} feeds, {items} items ({pulled} pulled)");
        assert!(
            items > viewers,
            "the cases should produce non-trivial feeds"
        );
    });
}

#[test]
fn feeds_from_the_api_equal_the_oracle() {
    let config = test_config("feed", PARTITIONS);
    check(config, cases(20_000, 200, 3..=10), true);
}

#[test]
fn feeds_with_celebrities_equal_the_oracle() {
    // Authors cross a threshold of 3 followers (and fall back under 2), so feeds merge pushed
    // timelines with pulled recent posts; which copy of a post is pushed depends on the path,
    // so the posts and their order must be equal, not where each came from.
    let mut config = test_config("feed-celeb", PARTITIONS);
    config.fanout.celebrity_threshold = 3;
    config.fanout.celebrity_hysteresis = 0.34;
    check(config, cases(30_000, 150, 4..=9), false);
}
