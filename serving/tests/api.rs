//! The read API over HTTP against a real Redis holding state written the way the jobs write it:
//! authentication, parameter errors, read-time filters (blocks either way, deleted posts),
//! celebrity pulls, cursor stability while new posts arrive, profiles and the OpenAPI
//! description.
//!
//! Some states here are ones the jobs never leave for long (a blocked author's posts still in
//! a timeline): they stand for any lag, and the API must hide them anyway.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aperture_schema::Config;
use aperture_schema::keys::Keyspace;
use aperture_serving::auth::Tokens;
use serde_json::{Value, json};

struct Api {
    base: String,
    client: reqwest::Client,
    tokens: Tokens,
    keys: Keyspace,
    redis: redis::Connection,
}

fn config() -> Config {
    let mut c = Config::load(None).unwrap();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    c.redis.key_prefix = format!("t-api-{nanos}");
    c
}

impl Api {
    async fn start() -> Api {
        let config = config();
        let state = aperture_serving::AppState::new(&config).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            axum_serve(
                listener,
                aperture_serving::app(state, Duration::from_secs(5)),
            )
            .await
        });
        Api {
            base,
            client: reqwest::Client::new(),
            tokens: Tokens::new(&config.serving.jwt_secret),
            keys: config.keyspace(),
            redis: redis::Client::open(config.redis.url.as_str())
                .unwrap()
                .get_connection()
                .unwrap(),
        }
    }

    async fn get(&self, viewer: Option<u64>, path: &str) -> (u16, Value) {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if let Some(v) = viewer {
            request = request.bearer_auth(self.tokens.mint(v, Duration::from_secs(60)));
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    fn cmd(&mut self, args: &[&str]) {
        let mut c = redis::cmd(args[0]);
        for a in &args[1..] {
            c.arg(*a);
        }
        let _: redis::Value = c.query(&mut self.redis).unwrap();
    }

    fn user(&mut self, id: u64, name: &str, private: bool) {
        let key = self.keys.profile(id);
        let private = if private { "1" } else { "0" };
        self.cmd(&[
            "HSET", &key, "username", name, "private", private, "verified", "0",
        ]);
    }

    fn follow(&mut self, follower: u64, followee: u64) {
        let (a, b) = (follower.to_string(), followee.to_string());
        let following = self.keys.following(follower);
        let followers = self.keys.followers(followee);
        self.cmd(&["ZADD", &following, "1", &b]);
        self.cmd(&["ZADD", &followers, "1", &a]);
    }

    /// A post by `author` at `ts`, in the author's recent posts and, when `to` is given, pushed
    /// into that user's timeline.
    fn post(&mut self, author: u64, post: u64, ts: i64, to: Option<u64>) {
        let (a, p, t) = (author.to_string(), post.to_string(), ts.to_string());
        let meta = self.keys.post_meta(post);
        let caption = format!("post {post} #tag");
        self.cmd(&[
            "HSET",
            &meta,
            "author",
            &a,
            "created_at",
            &t,
            "media_type",
            "photo",
            "media",
            r#"["img/1.jpg"]"#,
            "caption",
            &caption,
            "hashtags",
            r#"["tag"]"#,
            "deleted",
            "0",
        ]);
        let recent = self.keys.recent_posts(author);
        self.cmd(&["ZADD", &recent, &t, &p]);
        if let Some(viewer) = to {
            let timeline = self.keys.timeline(viewer);
            let member = format!("{author}:{post}");
            self.cmd(&["ZADD", &timeline, &t, &member]);
        }
    }

    async fn feed(&self, viewer: u64, query: &str) -> (Vec<u64>, Option<String>, Value) {
        let (status, body) = self.get(Some(viewer), &format!("/v1/feed{query}")).await;
        assert_eq!(status, 200, "{body}");
        let ids = body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["post_id"].as_u64().unwrap())
            .collect();
        let cursor = body["next_cursor"].as_str().map(str::to_owned);
        (ids, cursor, body)
    }
}

async fn axum_serve(listener: tokio::net::TcpListener, app: axum::Router) {
    axum::serve(listener, app).await.unwrap()
}

#[tokio::test]
async fn requests_without_a_valid_token_are_refused_with_a_reason() {
    let api = Api::start().await;
    let (status, body) = api.get(None, "/v1/feed").await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "unauthorized");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Bearer")
    );

    let response = api
        .client
        .get(format!("{}/v1/feed", api.base))
        .bearer_auth("not.a.jwt")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    let foreign = Tokens::new("some-other-secret-entirely").mint(1, Duration::from_secs(60));
    let response = api
        .client
        .get(format!("{}/v1/feed", api.base))
        .bearer_auth(foreign)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn bad_parameters_name_the_field_and_the_rule() {
    let api = Api::start().await;
    for (query, field) in [
        ("?limit=0", "limit"),
        ("?limit=101", "limit"),
        ("?limit=ten", "limit"),
        ("?cursor=bogus", "cursor"),
    ] {
        let (status, body) = api.get(Some(1), &format!("/v1/feed{query}")).await;
        assert_eq!(status, 400, "{query}");
        assert_eq!(body["error"]["code"], "bad_request");
        assert_eq!(body["error"]["field"], field, "{query}");
    }
    let (status, body) = api.get(Some(1), "/v1/users/abc").await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["field"], "id");
}

#[tokio::test]
async fn the_feed_merges_pulls_and_filters_at_read_time() {
    let mut api = Api::start().await;
    for (id, name) in [
        (1, "viewer"),
        (2, "friend"),
        (3, "blocked"),
        (4, "blocker"),
        (5, "stranger"),
        (6, "star"),
    ] {
        api.user(id, name, false);
    }
    for f in [2, 3, 4, 6] {
        api.follow(1, f);
    }
    let star = api.keys.profile(6);
    api.cmd(&["HSET", &star, "celebrity", "1"]);
    let celebrities = api.keys.celebrity_followees(1);
    api.cmd(&["SADD", &celebrities, "6"]);
    let blocks = api.keys.blocks(1);
    api.cmd(&["SADD", &blocks, "3"]);
    let blocks = api.keys.blocks(4);
    api.cmd(&["SADD", &blocks, "1"]);
    let blocked_by = api.keys.blocked_by(1);
    api.cmd(&["SADD", &blocked_by, "4"]);

    api.post(2, 20, 1_000, Some(1));
    api.post(3, 30, 1_100, Some(1)); // viewer blocks 3; the cleanup has not run yet
    api.post(4, 40, 1_200, Some(1)); // 4 blocks the viewer; the cleanup has not run yet
    api.post(2, 21, 1_400, Some(1));
    let meta = api.keys.post_meta(21);
    api.cmd(&["HSET", &meta, "deleted", "1"]);
    api.post(6, 60, 1_500, None); // a celebrity's post: pulled, not pushed
    api.post(2, 22, 1_600, Some(1));
    let counts = api.keys.post_counts(22);
    api.cmd(&["HSET", &counts, "likes", "45", "comments", "2"]);

    let (ids, cursor, body) = api.feed(1, "").await;
    assert_eq!(ids, vec![22, 60, 20]);
    assert_eq!(cursor, None);
    let items = body["items"].as_array().unwrap();
    assert_eq!(
        items[0],
        json!({
            "post_id": 22, "author_id": 2, "author_username": "friend", "media_type": "photo",
            "media": ["img/1.jpg"], "caption": "post 22 #tag", "hashtags": ["tag"],
            "created_at": 1600, "like_count": 45, "comment_count": 2, "source": "push"
        })
    );
    assert_eq!(items[1]["source"], "pull");
    assert_eq!(items[1]["author_username"], "star");
}

#[tokio::test]
async fn the_cursor_is_stable_while_new_posts_arrive() {
    let mut api = Api::start().await;
    api.user(1, "viewer", false);
    api.user(2, "friend", false);
    api.follow(1, 2);
    // Ten posts, two of them at the same millisecond.
    for p in 0..10u64 {
        let ts = 1_000 + (p as i64 / 2) * 10 + (p as i64 % 2);
        let ts = if p == 5 { ts - 1 } else { ts };
        api.post(2, 100 + p, ts, Some(1));
    }
    let (first, cursor, _) = api.feed(1, "?limit=4").await;
    assert_eq!(first.len(), 4);
    // New posts arrive on top between pages.
    for p in 0..5u64 {
        api.post(2, 200 + p, 5_000 + p as i64, Some(1));
    }
    let mut seen = first.clone();
    let mut cursor = cursor;
    while let Some(c) = cursor {
        let (ids, next, _) = api.feed(1, &format!("?limit=4&cursor={c}")).await;
        seen.extend(ids);
        cursor = next;
    }
    let mut expected: Vec<u64> = (100..110).collect();
    expected.sort_by_key(|&p| {
        let i = (p - 100) as i64;
        let ts = 1_000 + (i / 2) * 10 + (i % 2) - i64::from(i == 5);
        std::cmp::Reverse((ts, p))
    });
    assert_eq!(
        seen, expected,
        "no repeats, no gaps, and none of the newer posts"
    );
}

#[tokio::test]
async fn profiles_hide_private_posts_from_non_followers_and_vanish_for_the_blocked() {
    let mut api = Api::start().await;
    api.user(1, "viewer", false);
    api.user(2, "private", true);
    api.user(3, "follower", false);
    api.user(4, "blocker", false);
    api.follow(3, 2);
    let profile = api.keys.profile(2);
    api.cmd(&[
        "HSET",
        &profile,
        "followers",
        "1",
        "following",
        "0",
        "display_name",
        "Pri Vate",
    ]);
    api.post(2, 70, 1_000, None);
    let blocks = api.keys.blocks(4);
    api.cmd(&["SADD", &blocks, "1"]);

    let (status, body) = api.get(Some(1), "/v1/users/2").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["username"], "private");
    assert_eq!(body["display_name"], "Pri Vate");
    assert_eq!(body["follower_count"], 1);
    assert_eq!(body["posts_visible"], false);
    assert_eq!(body["recent_posts"], json!([]));
    assert_eq!(body["relationship"]["following"], false);

    let (_, body) = api.get(Some(3), "/v1/users/2").await;
    assert_eq!(body["posts_visible"], true);
    assert_eq!(body["recent_posts"][0]["post_id"], 70);
    assert_eq!(body["relationship"]["following"], true);

    let (_, body) = api.get(Some(2), "/v1/users/2").await;
    assert_eq!(body["posts_visible"], true);
    assert!(body.get("relationship").is_none());

    let (status, body) = api.get(Some(1), "/v1/users/4").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
    let (status, _) = api.get(Some(1), "/v1/users/999").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn openapi_and_health_are_served() {
    let api = Api::start().await;
    let (status, doc) = api.get(None, "/openapi.json").await;
    assert_eq!(status, 200);
    for path in ["/v1/feed", "/v1/users/{id}", "/healthz"] {
        assert!(doc["paths"].get(path).is_some(), "{path} in {doc}");
    }
    let item = &doc["components"]["schemas"]["PostView"];
    assert!(item.to_string().contains("source"), "{item}");
    let (status, body) = api.get(None, "/healthz").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
}
