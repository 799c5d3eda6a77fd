//! The read API's engagement, notification, story and trending endpoints against the oracle,
//! end to end: random activity (duplicates, unlikes, comment and post deletes, blocks, private
//! accounts, close friends, mentions of users who sign up later, stories and their views) goes
//! through the real broker to a worker running every job, and what the API answers over HTTP
//! must equal what the oracle says a user may see.
//!
//! Also here: a viral post's 10,000 likes in a minute are one notification per window.

#[path = "../stream-jobs/tests/support/mod.rs"]
mod support;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use aperture_schema::event::{
    Audience, MediaType, PostCreated, PostRef, StoryCreated, StoryMediaType, Target, UserCreated,
};
use aperture_schema::{Config, Envelope, Event};
use aperture_serving::auth::Tokens;
use aperture_serving::trending::{Window, rank};
use aperture_stream_jobs::oracle::{Follow, Oracle};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reqwest::StatusCode;
use serde_json::Value;
use support::compare::now_ms;
use support::*;

/// The read API on an ephemeral port, for the body of `f`.
fn with_api<F, Fut>(config: &Config, f: F)
where
    F: FnOnce(Api) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
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
        f(Api {
            base,
            client: reqwest::Client::new(),
            tokens: Tokens::new(&config.serving.jwt_secret),
        })
        .await
    });
}

struct Api {
    base: String,
    client: reqwest::Client,
    tokens: Tokens,
}

impl Api {
    async fn get(&self, viewer: u64, path: &str, query: &[(&str, String)]) -> (StatusCode, Value) {
        let token = self.tokens.mint(viewer, Duration::from_secs(600));
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .query(query)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, viewer: u64, path: &str) -> StatusCode {
        let token = self.tokens.mint(viewer, Duration::from_secs(600));
        self.client
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status()
    }

    /// Every item of a paged list, `limit` at a time.
    async fn all_pages(&self, viewer: u64, path: &str, limit: usize) -> Vec<Value> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..1000 {
            let mut query = vec![("limit", limit.to_string())];
            if let Some(c) = &cursor {
                query.push(("cursor", c.clone()));
            }
            let (status, page) = self.get(viewer, path, &query).await;
            assert_eq!(status, 200, "{path}: {page}");
            let page_items = page["items"].as_array().unwrap();
            assert!(page_items.len() <= limit);
            items.extend(page_items.iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => {
                    assert_eq!(page_items.len(), limit, "a page with a next cursor is full");
                    cursor = Some(c.to_owned());
                }
                None => return items,
            }
        }
        panic!("{path} did not end after 1000 pages");
    }
}

fn blocked_either_way(oracle: &Oracle, a: u64, b: u64) -> bool {
    oracle.blocks.contains(&(a, b)) || oracle.blocks.contains(&(b, a))
}

/// A notification as compared: batch, type, post, total, latest actors as (actor, time).
type Row = (String, String, Option<u64>, u64, Vec<(u64, i64)>);

/// What the oracle says `user`'s notifications are, newest first.
fn expected_notifications(oracle: &Oracle, user: u64, named: usize) -> Vec<Row> {
    let Some(batches) = oracle.notifications.batches.get(&user) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (batch, actors) in batches {
        let mut parts = batch.splitn(3, ':');
        let kind = parts.next().unwrap();
        let post: u64 = parts.next().unwrap().parse().unwrap();
        // Listed by the latest event of anyone in it.
        let score = *actors.values().max().unwrap();
        if kind != "follow" && oracle.posts.get(&post).is_some_and(|p| p.deleted) {
            continue;
        }
        let mut followers = 0;
        let visible: Vec<(u64, i64)> = actors
            .iter()
            .filter(|&(&a, _)| !blocked_either_way(oracle, a, user))
            .filter(|&(&a, _)| {
                if kind != "follow" {
                    return true;
                }
                match oracle.state(a, user) {
                    Follow::Active => {
                        followers += 1;
                        true
                    }
                    Follow::Pending => true,
                    _ => false,
                }
            })
            .map(|(&a, &t)| (a, t))
            .collect();
        if visible.is_empty() {
            continue;
        }
        let kind = match kind {
            "follow" if followers == 0 => "follow_request",
            other => other,
        };
        let mut latest = visible.clone();
        // Redis orders equal times by member, as strings.
        latest.sort_by_key(|&(a, t)| std::cmp::Reverse((t, a.to_string())));
        latest.truncate(named);
        out.push((
            score,
            batch.clone(),
            kind.to_owned(),
            (kind != "follow" && kind != "follow_request").then_some(post),
            visible.len() as u64,
            latest,
        ));
    }
    out.sort_by(|a, b| (b.0, &b.1).cmp(&(a.0, &a.1)));
    out.into_iter()
        .map(|(_, batch, kind, post, total, latest)| (batch, kind, post, total, latest))
        .collect()
}

fn check_activity(seed: u64, users: u64, n: usize) {
    let config = test_config("reads", 4);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // Recent enough that every story is live while the test reads.
    let t0 = now_ms() - 3 * 3600 * 1000;
    let events = random_activity(&mut rng, users, n, t0);
    create_topics(&config);
    produce(&config, &events);
    let worker = RunningWorker::start(&config);
    wait_caught_up(
        &config,
        &aperture_stream_jobs::jobs::names(),
        Duration::from_secs(240),
    );
    worker.stop();
    let mut oracle = Oracle::new(&config);
    oracle.apply_all(&events);
    let named = config.notifications.latest_actors;

    with_api(&config, |api| async move {
        // Posts: counts for everyone allowed, insights for the author, 404 otherwise.
        let mut checked_posts = 0;
        for (&post, p) in &oracle.posts {
            let author = p.author;
            let (status, body) = api.get(author, &format!("/v1/posts/{post}"), &[]).await;
            if p.deleted {
                assert_eq!(status, 404, "deleted post {post}: {body}");
                continue;
            }
            assert_eq!(status, 200, "post {post}: {body}");
            let s = &oracle.engagement.posts[&post];
            let counts = &body["counts"];
            for (field, want) in [
                ("likes", s.likers.len() as i64),
                ("comments", s.comments() as i64),
                ("shares", s.shares),
                ("saves", s.savers.len() as i64),
                ("views", s.views),
            ] {
                assert_eq!(counts[field], want, "post {post} {field}");
            }
            assert_eq!(body["like_count"], s.likers.len() as i64, "post {post}");
            let insights = &body["insights"];
            assert_eq!(insights["dwell_ms_total"], s.dwell_ms, "post {post}");
            assert_eq!(insights["watch_ms_total"], s.watch_ms, "post {post}");
            assert_eq!(insights["hides"], s.hides, "post {post}");
            assert_eq!(insights["reports"], s.reports, "post {post}");
            assert_eq!(
                insights["first_hour_interactions"],
                s.first_hour().unwrap_or(0),
                "post {post}"
            );
            support::compare::assert_estimate(
                insights["unique_viewers"].as_u64().unwrap() as usize,
                s.viewers.len(),
                &format!("post {post} unique viewers"),
            );
            // Everyone else: the same counts, no insights, or a 404 where they may not see it.
            for viewer in (1..users).filter(|&v| v != author) {
                let (status, body) = api.get(viewer, &format!("/v1/posts/{post}"), &[]).await;
                let private = oracle.users.get(&author).is_some_and(|u| u.private);
                let hidden = blocked_either_way(&oracle, viewer, author)
                    || (private && oracle.state(viewer, author) != Follow::Active);
                if hidden {
                    assert_eq!(status, 404, "post {post} for {viewer}: {body}");
                } else {
                    assert_eq!(status, 200, "post {post} for {viewer}: {body}");
                    assert_eq!(body["counts"], *counts, "post {post} for {viewer}");
                    assert!(body.get("insights").is_none(), "post {post} for {viewer}");
                }
            }
            checked_posts += 1;
        }

        // Notifications, paged, then the unread count and the read marker.
        let mut batches = 0;
        let mut aggregated = 0;
        let mut limits = ChaCha8Rng::seed_from_u64(seed + 1);
        for user in 1..=users {
            let limit = limits.random_range(1..=5);
            let got = api.all_pages(user, "/v1/notifications", limit).await;
            let want = expected_notifications(&oracle, user, named);
            let got_rows: Vec<_> = got
                .iter()
                .map(|n| {
                    (
                        n["id"].as_str().unwrap().to_owned(),
                        n["type"].as_str().unwrap().to_owned(),
                        n["post_id"].as_u64(),
                        n["total"].as_u64().unwrap(),
                        n["actors"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|a| {
                                let id = a["user_id"].as_u64().unwrap();
                                let name = oracle.users.get(&id).map_or("", |u| &u.username);
                                assert_eq!(a["username"], name, "actor {id}");
                                (id, a["at"].as_i64().unwrap())
                            })
                            .collect::<Vec<_>>(),
                    )
                })
                .collect();
            assert_eq!(got_rows, want, "notifications of {user} (pages of {limit})");
            assert!(got.iter().all(|n| n["unread"] == true));
            let (_, unread) = api.get(user, "/v1/notifications/unread", &[]).await;
            assert_eq!(unread["unread"], want.len(), "unread of {user}");
            assert_eq!(api.post(user, "/v1/notifications/read").await, 204);
            let (_, unread) = api.get(user, "/v1/notifications/unread", &[]).await;
            assert_eq!(unread["unread"], 0, "unread of {user} after reading");
            batches += want.len();
            aggregated += want.iter().filter(|w| w.3 > 1).count();
        }

        // Trays and viewer lists.
        let now = now_ms();
        let mut trays = 0;
        let mut viewer_lists = 0;
        for user in 1..=users {
            let following: BTreeSet<u64> = oracle.following(user);
            let want = oracle.stories.tray(user, &following, now);
            let (status, tray) = api.get(user, "/v1/stories/tray", &[]).await;
            assert_eq!(status, 200, "{tray}");
            let got: Vec<(u64, i64, bool, Vec<u64>)> = tray["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| {
                    (
                        t["author_id"].as_u64().unwrap(),
                        t["latest_at"].as_i64().unwrap(),
                        t["has_unseen"].as_bool().unwrap(),
                        t["stories"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|s| s["story_id"].as_u64().unwrap())
                            .collect(),
                    )
                })
                .collect();
            assert_eq!(got, want, "tray of {user}");
            trays += usize::from(!want.is_empty());
        }
        for (&story, s) in &oracle.stories.stories {
            if !oracle.stories.live(story, now) {
                continue;
            }
            let path = format!("/v1/stories/{story}/viewers");
            let got = api.all_pages(s.author, &path, 2).await;
            let mut want: Vec<(u64, i64)> = oracle
                .stories
                .viewers
                .get(&story)
                .map(|v| v.iter().map(|(&u, &t)| (u, t)).collect())
                .unwrap_or_default();
            want.sort_by_key(|&(u, t)| std::cmp::Reverse((t, u)));
            let got: Vec<(u64, i64)> = got
                .iter()
                .map(|v| {
                    (
                        v["user_id"].as_u64().unwrap(),
                        v["viewed_at"].as_i64().unwrap(),
                    )
                })
                .collect();
            assert_eq!(got, want, "viewers of story {story}");
            let other = s.author % users + 1;
            let (status, _) = api.get(other, &path, &[]).await;
            assert_eq!(status, 403, "someone else's story {story}");
            viewer_lists += usize::from(!want.is_empty());
        }

        // Trending at the last event's time, from the oracle's buckets scored the same way.
        let at = events.iter().map(|e| e.ts).max().unwrap();
        let buckets = oracle.trending.buckets();
        let tag_posts = oracle.trending.tag_posts();
        let mut trends = 0;
        for (name, window) in [
            ("1h", Window::Hour),
            ("24h", Window::Day),
            ("7d", Window::Week),
        ] {
            let plan = window.plan(at);
            let sum = |which: &[(aperture_schema::state::TrendGrain, i64)]| {
                let mut out: HashMap<String, u64> = HashMap::new();
                for (g, start) in which {
                    if let Some(b) = buckets.get(&(g.name(), *start)) {
                        for (tag, n) in b {
                            *out.entry(tag.clone()).or_default() += *n as u64;
                        }
                    }
                }
                out
            };
            let ranked = rank(
                &sum(&plan.window),
                &sum(&plan.baseline),
                plan.baseline_windows(oracle.trending.since()),
            );
            let want: Vec<(String, u64, usize)> = ranked
                .into_iter()
                .filter_map(|t| {
                    let accounts: BTreeSet<&str> = tag_posts
                        .get(&t.tag)
                        .map(|p| {
                            p.iter()
                                .filter(|&(_, &ts)| ts >= plan.since)
                                .map(|(m, _)| m.split_once(':').unwrap().0)
                                .collect()
                        })
                        .unwrap_or_default();
                    (accounts.len() >= config.trending.min_accounts).then_some((
                        t.tag,
                        t.count,
                        accounts.len(),
                    ))
                })
                .take(5)
                .collect();
            let (status, body) = api
                .get(
                    1,
                    "/v1/trending",
                    &[
                        ("window", name.into()),
                        ("limit", "5".into()),
                        ("at", at.to_string()),
                    ],
                )
                .await;
            assert_eq!(status, 200, "{body}");
            let got: Vec<(String, u64, usize)> = body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| {
                    (
                        t["tag"].as_str().unwrap().to_owned(),
                        t["count"].as_u64().unwrap(),
                        t["accounts"].as_u64().unwrap() as usize,
                    )
                })
                .collect();
            assert_eq!(got, want, "trending {name} at {at}");
            trends += got.len();
        }
        eprintln!(
            "seed {seed}: {checked_posts} posts, {batches} notification batches \
             ({aggregated} aggregated), {trays} trays, {viewer_lists} viewer lists, {trends} \
             trending tags"
        );
        assert!(checked_posts > 10 && batches > 10 && aggregated > 0 && trays > 0 && trends > 0);
    });
}

#[test]
fn engagement_notifications_stories_and_trending_from_the_api_equal_the_oracle() {
    for seed in [1, 2, 3] {
        check_activity(700 + seed, 9, 900);
    }
}

#[test]
fn a_viral_post_liked_ten_thousand_times_in_a_minute_is_one_notification_per_window() {
    let config = test_config("viral", 4);
    let window_ms = config.notifications.window.as_millis() as i64;
    // Start on a window boundary, so the minute of likes is exactly one window.
    let t0 = (now_ms() - 3_600_000).div_euclid(window_ms) * window_ms;
    let fans: u64 = 10_000;
    let star = 1u64;
    let mut events = Vec::new();
    let mut push = |actor: u64, ts: i64, event: Event| {
        let n = events.len();
        events.push(Envelope {
            v: 1,
            event_id: format!("viral-{n}"),
            actor_id: actor,
            ts,
            event,
        });
    };
    // The star, 10,000 fans, and 50 who come a minute later.
    for u in 1..=1 + fans + 50 {
        push(
            u,
            t0 - 10_000,
            Event::UserCreated(UserCreated {
                username: format!("fan{u}"),
                display_name: None,
                private: false,
                verified: false,
            }),
        );
    }
    push(
        star,
        t0 - 5_000,
        Event::PostCreated(PostCreated {
            post_id: 77,
            media_type: MediaType::Photo,
            media: vec!["m/77.jpg".into()],
            caption: "the one".into(),
            location: None,
            hashtags: vec![],
            mentions: vec![],
        }),
    );
    let like = Event::Like(PostRef {
        post_id: 77,
        author_id: star,
    });
    for i in 0..fans {
        push(2 + i, t0 + (i as i64 * 59_000) / fans as i64, like.clone());
    }
    // A fan liking again changes nothing; the late 50 make a second window's batch.
    push(2, t0 + 59_500, like.clone());
    for u in 2 + fans..2 + fans + 50 {
        push(u, t0 + window_ms + 1_000, like.clone());
    }
    create_topics(&config);
    produce(&config, &events);
    let worker = RunningWorker::start_jobs(
        &config,
        aperture_stream_jobs::jobs::by_names(&["notifications".into()]).unwrap(),
    );
    wait_caught_up(&config, &["notifications"], Duration::from_secs(240));
    worker.stop();

    with_api(&config, |api| async move {
        let items = api.all_pages(star, "/v1/notifications", 20).await;
        let summary: Vec<(String, u64, usize)> = items
            .iter()
            .map(|n| {
                (
                    n["type"].as_str().unwrap().to_owned(),
                    n["total"].as_u64().unwrap(),
                    n["actors"].as_array().unwrap().len(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [("like".to_owned(), 50, 3), ("like".to_owned(), fans, 3)],
            "one batch per window, newest first, three actors named"
        );
        let (_, unread) = api.get(star, "/v1/notifications/unread", &[]).await;
        assert_eq!(unread["unread"], 2);
    });
}

#[test]
fn stories_expire_after_24_hours_even_when_a_ttl_is_missed() {
    let config = test_config("stories-expire", 2);
    let now = now_ms();
    let hour = 3_600_000;
    let ev = |n: u64, actor: u64, ts: i64, event: Event| Envelope {
        v: 1,
        event_id: format!("exp-{n}"),
        actor_id: actor,
        ts,
        event,
    };
    let user = |n: u64, id: u64| {
        ev(
            n,
            id,
            now - 30 * hour,
            Event::UserCreated(UserCreated {
                username: format!("teller{id}"),
                display_name: None,
                private: false,
                verified: false,
            }),
        )
    };
    let story = |n: u64, id: u64, ts: i64| {
        ev(
            n,
            1,
            ts,
            Event::StoryCreated(StoryCreated {
                story_id: id,
                media_type: StoryMediaType::Photo,
                media: vec![format!("s/{id}.jpg")],
                audience: Audience::Followers,
            }),
        )
    };
    let events = vec![
        user(1, 1),
        user(2, 2),
        ev(
            3,
            2,
            now - 29 * hour,
            Event::Follow(Target { target_id: 1 }),
        ),
        // A day and an hour old: gone on arrival.
        story(4, 41, now - 25 * hour),
        // Live, and then its TTL goes missing below.
        story(5, 42, now - 2 * hour),
        story(6, 43, now - hour),
    ];
    create_topics(&config);
    produce(&config, &events);
    let worker = RunningWorker::start_jobs(
        &config,
        aperture_stream_jobs::jobs::by_names(&["graph".into(), "stories".into()]).unwrap(),
    );
    wait_caught_up(&config, &["graph", "stories"], Duration::from_secs(60));
    worker.stop();

    let k = config.keyspace();
    let mut con = redis(&config);
    let exists = |con: &mut redis::Connection, key: String| -> bool {
        redis::cmd("EXISTS").arg(key).query(con).unwrap()
    };
    assert!(
        !exists(&mut con, k.story(41)),
        "a story older than 24 h is not kept"
    );
    // Story 42's TTLs are lost and its time says it is 25 hours old: only the clock check of
    // the read API and the sweep stand between it and a viewer.
    let old = (now - 25 * hour).to_string();
    let _: () = redis::cmd("PERSIST")
        .arg(k.story(42))
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("PERSIST")
        .arg(k.stories(1))
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("HSET")
        .arg(k.story(42))
        .arg("ts")
        .arg(&old)
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("ZADD")
        .arg(k.stories(1))
        .arg(&old)
        .arg(42)
        .query(&mut con)
        .unwrap();

    with_api(&config, |api| async move {
        let (status, tray) = api.get(2, "/v1/stories/tray", &[]).await;
        assert_eq!(status, 200);
        let ids: Vec<u64> = tray["items"][0]["stories"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["story_id"].as_u64().unwrap())
            .collect();
        assert_eq!(ids, [43], "{tray}");
        let (status, _) = api.get(1, "/v1/stories/42/viewers", &[]).await;
        assert_eq!(status, 404, "an expired story has no viewer list");
    });

    let removed = aperture_stream_jobs::jobs::stories::sweep(&mut con, &k, now_ms()).unwrap();
    assert!(
        removed >= 2,
        "the sweep removes the entry and the metadata: {removed}"
    );
    assert!(!exists(&mut con, k.story(42)));
    let live: Vec<String> = redis::cmd("ZRANGE")
        .arg(k.stories(1))
        .arg(0)
        .arg(-1)
        .query(&mut con)
        .unwrap();
    assert_eq!(live, ["43"]);
}
