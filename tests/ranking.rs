//! Explore, Reels and the ranked feed end to end: a generated workload (with blocks, hides,
//! reports, a delete and an account gone private added on top of its most popular posts) goes
//! through the real broker to a worker running every job, and then
//!
//! - every page the read API serves obeys the visibility and diversity rules, checked against
//!   the oracle: never the viewer's own post, an account blocked either way, a deleted post, a
//!   hidden post or a hidden author, a seen post, a repeat within a session; Explore without
//!   followed or private accounts; Reels reels only, private only for approved followers; at
//!   most `author-cap` of one author in any `page-window` consecutive items; the ranked feed
//!   holds exactly the chronological feed's items;
//! - the features serving reads from Redis equal those the trainer replays from the log at the
//!   same instant (training–serving agreement);
//! - a model saved while the API runs is picked up without a restart.

#[path = "../stream-jobs/tests/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

use aperture_ingest::generate::{Spec, generate};
use aperture_ranking::offline::Replay;
use aperture_ranking::topics::Topics;
use aperture_schema::event::UserUpdated;
use aperture_schema::event::{Hide, MediaType, PostDeleted, Report, ReportReason, Surface, Target};
use aperture_schema::{Config, Envelope, Event};
use aperture_serving::auth::Tokens;
use aperture_serving::ranked::state::{Snapshot, viewer_keys};
use aperture_serving::store::Store;
use aperture_stream_jobs::oracle::{Follow, Oracle};
use serde_json::Value;
use support::*;

struct Api {
    base: String,
    client: reqwest::Client,
    tokens: Tokens,
}

impl Api {
    async fn get(&self, viewer: u64, path: &str, query: &[(&str, String)]) -> Value {
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
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 200, "{path} for {viewer}: {body}");
        body
    }

    /// Up to `pages` pages of a ranked list, `limit` at a time, with the model each named.
    async fn pages(
        &self,
        viewer: u64,
        path: &str,
        extra: &[(&str, String)],
        limit: usize,
        pages: usize,
    ) -> (Vec<Value>, Vec<Value>) {
        let mut items = Vec::new();
        let mut models = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..pages {
            let mut query = vec![("limit", limit.to_string())];
            query.extend(extra.iter().cloned());
            if let Some(c) = &cursor {
                query.push(("cursor", c.clone()));
            }
            let page = self.get(viewer, path, &query).await;
            let page_items = page["items"].as_array().unwrap();
            assert!(page_items.len() <= limit, "{path}: {page}");
            items.extend(page_items.iter().cloned());
            models.push(page["model"].clone());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        (items, models)
    }
}

fn post_of(item: &Value) -> (u64, u64, String) {
    (
        item["post_id"].as_u64().unwrap(),
        item["author_id"].as_u64().unwrap(),
        item["media_type"].as_str().unwrap().to_owned(),
    )
}

/// The generated workload, and on top of its most liked posts: blocks both ways, hides and
/// reports, a delete and an author going private.
fn workload() -> (Vec<Envelope>, Vec<u64>) {
    let mut events = generate(&Spec {
        seed: 23,
        users: 150,
        days: 2.0,
        ..Spec::default()
    })
    .events;
    let mut likes: HashMap<u64, (u64, usize)> = HashMap::new();
    for e in &events {
        if let Event::Like(l) = &e.event {
            likes.entry(l.post_id).or_insert((l.author_id, 0)).1 += 1;
        }
    }
    let mut top: Vec<(usize, u64, u64)> = likes.iter().map(|(p, (a, n))| (*n, *p, *a)).collect();
    top.sort_unstable_by(|a, b| b.cmp(a));
    let mut authors = Vec::new();
    let mut picks = Vec::new();
    for &(_, post, author) in &top {
        if !authors.contains(&author) {
            authors.push(author);
            picks.push((post, author));
        }
        if picks.len() == 5 {
            break;
        }
    }
    let viewers: Vec<u64> = (1..=150u64)
        .filter(|u| !authors.contains(u))
        .take(3)
        .collect();
    let mut ts = events.iter().map(|e| e.ts).max().unwrap();
    let mut n = 0;
    let mut add = |actor: u64, event: Event| {
        ts += 1_000;
        n += 1;
        events.push(Envelope {
            v: 1,
            event_id: format!("rk-{n}"),
            actor_id: actor,
            ts,
            event,
        });
    };
    let [(p0, a0), (_, a1), (p2, a2), (p3, a3), (_, a4)] = picks[..] else {
        panic!("the workload has fewer than five liked authors");
    };
    add(viewers[0], Event::Block(Target { target_id: a0 }));
    add(
        a1,
        Event::Block(Target {
            target_id: viewers[1],
        }),
    );
    let surface = Surface::Explore;
    add(
        viewers[2],
        Event::Hide(Hide {
            post_id: p0,
            author_id: a0,
            surface,
        }),
    );
    for reason in [ReportReason::Spam, ReportReason::Other] {
        add(
            viewers[2],
            Event::Report(Report {
                post_id: p2,
                author_id: a2,
                reason,
            }),
        );
    }
    add(a3, Event::PostDeleted(PostDeleted { post_id: p3 }));
    add(
        a4,
        Event::UserUpdated(UserUpdated {
            display_name: None,
            private: Some(true),
            verified: None,
        }),
    );
    (events, viewers)
}

fn with_api<F, Fut>(config: &Config, f: F)
where
    F: FnOnce(Api, aperture_serving::AppState) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let state = aperture_serving::AppState::new(config).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = aperture_serving::app(state.clone(), Duration::from_secs(30));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        f(
            Api {
                base,
                client: reqwest::Client::new(),
                tokens: Tokens::new(&config.serving.jwt_secret),
            },
            state,
        )
        .await
    });
}

#[test]
fn explore_reels_and_the_ranked_feed_obey_the_rules_and_serving_reads_the_trainers_features() {
    let mut config = test_config("ranking", 4);
    let models = tempfile::tempdir().unwrap();
    config.ranking.models_dir = models.path().to_owned();
    let (events, special) = workload();
    create_topics(&config);
    produce(&config, &events);
    let worker = RunningWorker::start(&config);
    wait_caught_up(
        &config,
        &aperture_stream_jobs::jobs::names(),
        Duration::from_secs(300),
    );
    worker.stop();
    let _wipe = WipeOnDrop(&config);

    let mut sorted = events.clone();
    sorted.sort_by(|a, b| (a.ts, &a.event_id).cmp(&(b.ts, &b.event_id)));
    let mut oracle = Oracle::new(&config);
    oracle.apply_all(&sorted);
    let media: HashMap<u64, MediaType> = sorted
        .iter()
        .filter_map(|e| match &e.event {
            Event::PostCreated(p) => Some((p.post_id, p.media_type)),
            _ => None,
        })
        .collect();
    let rules = config.ranking.serving.clone();
    let mut viewers: Vec<u64> = special.clone();
    viewers.extend((1..=150u64).step_by(7));
    viewers.sort_unstable();
    viewers.dedup();

    // The trainer's state as of the end of the log, and the topics it would learn.
    let topics = Topics::learn(sorted.iter().filter_map(|e| match &e.event {
        Event::PostCreated(p) => Some(p.hashtags.as_slice()),
        _ => None,
    }));
    let mut replay = Replay::new(&config, topics.clone());
    for e in &sorted {
        replay.apply(e);
    }
    let at_ms = sorted.last().unwrap().ts + 60_000;
    let config = &config;

    with_api(config, |api, state| async move {
        let blocked =
            |a: u64, b: u64| oracle.blocks.contains(&(a, b)) || oracle.blocks.contains(&(b, a));
        let private = |a: u64| oracle.users.get(&a).is_some_and(|u| u.private);
        let deleted = |p: u64| oracle.posts.get(&p).is_none_or(|p| p.deleted);
        let mut served: BTreeMap<&str, usize> = BTreeMap::new();
        let mut origins: BTreeSet<String> = BTreeSet::new();
        for &v in &viewers {
            let seen: HashSet<u64> = oracle.engagement.history_posts(v).collect();
            let hidden: HashSet<u64> = oracle
                .engagement
                .hidden
                .get(&v)
                .map(|m| m.keys().copied().collect())
                .unwrap_or_default();
            let negative = |a: u64| {
                oracle
                    .engagement
                    .negative
                    .get(&v)
                    .and_then(|m| m.get(&a))
                    .copied()
                    .unwrap_or(0)
            };
            for path in ["/v1/explore", "/v1/reels"] {
                let (items, models) = api.pages(v, path, &[], 10, 6).await;
                assert!(
                    models.iter().all(Value::is_null),
                    "no model yet: {models:?}"
                );
                let mut posts = HashSet::new();
                let list: Vec<(u64, u64, String)> = items.iter().map(post_of).collect();
                for (item, (p, a, m)) in items.iter().zip(&list) {
                    let why = format!("{path} for {v}: post {p} by {a}");
                    assert!(posts.insert(*p), "{why} repeats");
                    assert_ne!(*a, v, "{why} is their own");
                    assert!(!blocked(v, *a), "{why}: blocked");
                    assert!(!deleted(*p), "{why}: deleted");
                    assert!(!hidden.contains(p), "{why}: hidden");
                    assert!(
                        negative(*a) < rules.hide_author_after,
                        "{why}: hidden author"
                    );
                    assert!(!seen.contains(p), "{why}: seen");
                    assert_eq!(oracle.posts[p].author, *a, "{why}: author");
                    let follows = oracle.state(v, *a) == Follow::Active;
                    if path == "/v1/explore" {
                        assert!(!follows, "{why}: followed");
                        assert!(!private(*a), "{why}: private");
                    } else {
                        assert_eq!(media[p], MediaType::Reel, "{why}: not a reel");
                        assert_eq!(m, "reel", "{why}");
                        assert!(!private(*a) || follows, "{why}: private");
                    }
                    origins.insert(item["origin"].as_str().unwrap().to_owned());
                }
                for run in list.windows(rules.page_window.min(list.len()).max(1)) {
                    let mut per: HashMap<u64, usize> = HashMap::new();
                    for (_, a, _) in run {
                        *per.entry(*a).or_default() += 1;
                    }
                    assert!(
                        per.values().all(|&n| n <= rules.author_cap),
                        "{path} for {v}: an author more than {} times in {} items",
                        rules.author_cap,
                        rules.page_window
                    );
                }
                *served.entry(path).or_default() += list.len();
            }

            // The ranked feed: the chronological feed's items, each once, in another order.
            let (chrono, _) = api.pages(v, "/v1/feed", &[], 50, 100).await;
            let order = [("order", "ranked".to_string())];
            let (ranked, _) = api.pages(v, "/v1/feed", &order, 17, 100).await;
            let ids =
                |items: &[Value]| -> Vec<u64> { items.iter().map(|i| post_of(i).0).collect() };
            let (c, r) = (ids(&chrono), ids(&ranked));
            let unique: HashSet<u64> = r.iter().copied().collect();
            assert_eq!(unique.len(), r.len(), "ranked feed of {v} repeats a post");
            let mut cs = c.clone();
            let mut rs = r.clone();
            cs.sort_unstable();
            rs.sort_unstable();
            assert_eq!(
                rs, cs,
                "ranked feed of {v} holds other posts than its chronological one"
            );
            *served.entry("/v1/feed?order=ranked").or_default() += r.len();
        }
        println!(
            "items served per surface over {} viewers: {served:?}; origins {origins:?}",
            viewers.len()
        );
        for path in ["/v1/explore", "/v1/reels", "/v1/feed?order=ranked"] {
            assert!(
                served.get(path).copied().unwrap_or(0) >= viewers.len(),
                "{path} served almost nothing: {served:?}"
            );
        }
        assert!(origins.len() >= 3, "candidates came from {origins:?} only");

        // Training–serving agreement: the inputs serving assembles from Redis equal the
        // trainer's from the log, for every (viewer, post) pair sampled.
        let store: &Store = &state.store;
        let mut compared = 0;
        let posts: Vec<u64> = media.keys().copied().collect();
        for &v in &viewers {
            let keys = viewer_keys(store, v).await.unwrap();
            let sample: Vec<u64> = posts
                .iter()
                .copied()
                .skip(v as usize % 4)
                .step_by(4)
                .collect();
            // Read fresh, as the warehouse's replay is: no cache between them.
            let snapshot = Snapshot::read(
                store,
                None,
                v,
                keys,
                &sample,
                &topics,
                at_ms,
                config.engagement.affinity_half_life.as_millis() as f64,
            )
            .await
            .unwrap();
            for &p in &sample {
                let offline = replay.inputs(v, p, at_ms, Surface::Explore);
                let online = snapshot.inputs(p, Surface::Explore, &topics);
                match (offline, online) {
                    (None, None) => {}
                    (Some(mut off), Some(mut on)) => {
                        let (a, b) = (off.affinity, on.affinity);
                        assert!(
                            (a - b).abs() <= 1e-9 * a.abs().max(1.0),
                            "affinity of {v} for post {p}: offline {a}, online {b}"
                        );
                        off.affinity = 0.0;
                        on.affinity = 0.0;
                        assert_eq!(on, off, "inputs of {v} for post {p}");
                        compared += 1;
                    }
                    (off, on) => panic!("post {p} for {v}: offline {off:?}, online {on:?}"),
                }
            }
        }
        println!("training-serving agreement on {compared} (viewer, post) pairs");
        assert!(compared >= 500, "only {compared} pairs compared");

        // A model saved while serving is used without a restart.
        let mut artifact = aperture_ranking::train(&sorted, None, config).unwrap();
        artifact.accepted = true;
        artifact.save(models.path()).unwrap();
        let version = state.ranker.models.reload().unwrap();
        assert_eq!(version.as_deref(), Some(artifact.version.as_str()));
        let page = api.get(viewers[0], "/v1/explore", &[]).await;
        assert_eq!(page["model"], artifact.version.as_str(), "{page}");
    });
}
