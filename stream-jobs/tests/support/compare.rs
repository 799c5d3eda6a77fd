//! Comparisons of the engagement, notifications, stories and trending state in Redis with
//! the oracle's, shared by the stream-job tests and the kill test.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{SystemTime, UNIX_EPOCH};

use aperture_schema::Config;
use aperture_stream_jobs::jobs::engagement::AFFINITY_EPOCH_MS;
use aperture_stream_jobs::oracle::Oracle;

use super::{redis, redis_any};

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

pub fn hash(con: &mut dyn redis::ConnectionLike, key: &str) -> BTreeMap<String, String> {
    redis::cmd("HGETALL").arg(key).query(con).unwrap()
}

pub fn zset(con: &mut dyn redis::ConnectionLike, key: &str) -> BTreeMap<String, f64> {
    let pairs: Vec<(String, f64)> = redis::cmd("ZRANGE")
        .arg(key)
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query(con)
        .unwrap();
    pairs.into_iter().collect()
}

pub fn int(map: &BTreeMap<String, String>, field: &str) -> i64 {
    map.get(field).map_or(0, |v| v.parse().unwrap())
}

pub fn pfcount(con: &mut dyn redis::ConnectionLike, key: &str) -> usize {
    redis::cmd("PFCOUNT").arg(key).query(con).unwrap()
}

/// A HyperLogLog estimate of an exact count: within 2% (and one) of it.
pub fn assert_estimate(estimate: usize, exact: usize, what: &str) {
    let slack = (exact as f64 * 0.02).max(1.0);
    assert!(
        (estimate as f64 - exact as f64).abs() <= slack,
        "{what}: estimate {estimate}, exact {exact}"
    );
}

pub fn compare_engagement(config: &Config, oracle: &Oracle, case: u64) {
    let k = config.keyspace();
    let mut con = redis_any(config);
    let con = &mut *con;
    let e = &oracle.engagement;
    for (&post, s) in &e.posts {
        let counts = hash(con, &k.post_counts(post));
        let what = |f: &str| format!("case {case}: post {post} {f}");
        for (field, want) in [
            ("likes", s.likers.len() as i64),
            ("saves", s.savers.len() as i64),
            ("comments", s.comments() as i64),
            ("shares", s.shares),
            ("views", s.views),
            ("dwell_ms", s.dwell_ms),
            ("watch_ms", s.watch_ms),
            ("watch_views", s.watch_views),
            ("hides", s.hides),
            ("reports", s.reports),
        ] {
            assert_eq!(int(&counts, field), want, "{}", what(field));
        }
        if let Some(first_hour) = s.first_hour() {
            assert_eq!(
                int(&counts, "first_hour"),
                first_hour,
                "{}",
                what("first_hour")
            );
        }
        let likers: BTreeMap<String, f64> = s
            .likers
            .iter()
            .map(|(u, t)| (u.to_string(), *t as f64))
            .collect();
        assert_eq!(
            zset(con, &k.post_likers(post)),
            likers,
            "{}",
            what("likers")
        );
        assert_estimate(
            pfcount(con, &k.post_viewers(post)),
            s.viewers.len(),
            &what("unique viewers"),
        );
    }
    // Affinity: the same terms, summed in another order.
    let mut viewers: BTreeSet<u64> = e.affinity.keys().map(|(v, _)| *v).collect();
    viewers.extend(e.negative.keys());
    let scale = 2f64.powf(
        (e.posts
            .values()
            .filter_map(|p| p.created_at)
            .max()
            .unwrap_or(0)
            + 86_400_000
            - AFFINITY_EPOCH_MS) as f64
            / config.engagement.affinity_half_life.as_millis() as f64,
    );
    for &viewer in &viewers {
        let stored = zset(con, &k.affinity(viewer));
        let authors: BTreeSet<String> = stored
            .keys()
            .cloned()
            .chain(
                e.affinity
                    .range((viewer, 0)..=(viewer, u64::MAX))
                    .map(|((_, a), _)| a.to_string()),
            )
            .collect();
        for author in authors {
            let got = stored.get(&author).copied().unwrap_or(0.0);
            let want = e
                .affinity
                .get(&(viewer, author.parse().unwrap()))
                .copied()
                .unwrap_or(0.0);
            assert!(
                (got - want).abs() <= 1e-9 * scale,
                "case {case}: affinity {viewer}→{author}: {got} vs {want}"
            );
        }
        let pref: BTreeMap<String, i64> = hash(con, &k.content_pref(viewer))
            .into_iter()
            .map(|(m, v)| (m, v.parse().unwrap()))
            .filter(|(_, v)| *v != 0)
            .collect();
        assert_eq!(
            pref,
            e.content_pref(viewer),
            "case {case}: preference of {viewer}"
        );
        let negative: BTreeMap<String, f64> = e
            .negative
            .get(&viewer)
            .into_iter()
            .flatten()
            .map(|(a, n)| (a.to_string(), *n as f64))
            .collect();
        assert_eq!(
            zset(con, &k.negative_authors(viewer)),
            negative,
            "case {case}: negative feedback of {viewer}"
        );
        let hidden: BTreeMap<String, f64> = e
            .hidden
            .get(&viewer)
            .into_iter()
            .flatten()
            .map(|(p, t)| (p.to_string(), *t as f64))
            .collect();
        assert_eq!(
            zset(con, &k.hidden_posts(viewer)),
            hidden,
            "case {case}: hidden posts of {viewer}"
        );
    }
    for (viewer, history) in &e.history {
        let want: BTreeMap<String, f64> = history
            .iter()
            .map(|(t, m)| (m.clone(), *t as f64))
            .collect();
        assert_eq!(
            zset(con, &k.view_history(*viewer)),
            want,
            "case {case}: view history of {viewer}"
        );
    }
    for (viewer, posts) in &e.engaged {
        let want: BTreeMap<String, f64> = posts
            .iter()
            .map(|(p, t)| (p.to_string(), *t as f64))
            .collect();
        assert_eq!(
            zset(con, &k.engaged_posts(*viewer)),
            want,
            "case {case}: engaged posts of {viewer}"
        );
    }
    for ((author, day), d) in &e.daily {
        let stored = hash(con, &k.creator_daily(*author, day));
        let what = |f: &str| format!("case {case}: {author} on {day}: {f}");
        assert_eq!(int(&stored, "views"), d.views, "{}", what("views"));
        assert_eq!(
            int(&stored, "interactions"),
            d.interactions,
            "{}",
            what("interactions")
        );
        assert_eq!(int(&stored, "follows"), d.follows, "{}", what("follows"));
        for kind in ["likes", "comments", "shares", "saves"] {
            let want = d.by_kind.get(kind).copied().unwrap_or(0);
            assert_eq!(int(&stored, kind), want, "{}", what(kind));
        }
        for surface in aperture_schema::event::Surface::ALL {
            let field = format!("views_{}", surface.as_str());
            let want = d
                .views_by_surface
                .get(surface.as_str())
                .copied()
                .unwrap_or(0);
            assert_eq!(int(&stored, &field), want, "{}", what(&field));
            assert_estimate(
                pfcount(
                    con,
                    &k.creator_surface_reach(*author, day, surface.as_str()),
                ),
                d.reach_by_surface
                    .get(surface.as_str())
                    .map_or(0, |r| r.len()),
                &what(&format!("reach from {}", surface.as_str())),
            );
        }
        assert_eq!(
            int(&stored, "profile_visits"),
            d.profile_visits,
            "{}",
            what("profile visits")
        );
        assert_eq!(int(&stored, "watch_ms"), d.watch_ms, "{}", what("watch_ms"));
        assert_eq!(
            int(&stored, "watch_views"),
            d.watch_views,
            "{}",
            what("watch_views")
        );
        assert_eq!(
            int(&stored, "unfollows"),
            d.unfollows,
            "{}",
            what("unfollows")
        );
        assert_estimate(
            pfcount(con, &k.creator_reach(*author, day)),
            d.reach.len(),
            &what("reach"),
        );
        assert_estimate(
            pfcount(con, &k.creator_engaged(*author, day)),
            d.engaged.len(),
            &what("accounts engaged"),
        );
    }
}

pub fn compare_notifications(
    config: &Config,
    oracle: &Oracle,
    users: impl IntoIterator<Item = u64>,
    case: u64,
) {
    let k = config.keyspace();
    let mut con = redis(config);
    for u in users {
        let expected = oracle
            .notifications
            .batches
            .get(&u)
            .cloned()
            .unwrap_or_default();
        let list = zset(&mut con, &k.notifications(u));
        let want_list: BTreeMap<String, f64> = expected
            .iter()
            .map(|(b, actors)| (b.clone(), *actors.values().max().unwrap() as f64))
            .collect();
        assert_eq!(list, want_list, "case {case}: notifications of {u}");
        for (batch, actors) in &expected {
            let want: BTreeMap<String, f64> = actors
                .iter()
                .map(|(a, t)| (a.to_string(), *t as f64))
                .collect();
            assert_eq!(
                zset(&mut con, &k.notification_batch(u, batch)),
                want,
                "case {case}: batch {batch} of {u}"
            );
        }
    }
}

pub fn compare_stories(
    config: &Config,
    oracle: &Oracle,
    users: impl IntoIterator<Item = u64>,
    case: u64,
) {
    let k = config.keyspace();
    let mut con = redis(config);
    let now = now_ms();
    let s = &oracle.stories;
    for u in users {
        let want: BTreeMap<String, f64> = s
            .stories
            .iter()
            .filter(|(id, st)| st.author == u && s.live(**id, now))
            .map(|(id, st)| (id.to_string(), st.ts as f64))
            .collect();
        assert_eq!(
            zset(&mut con, &k.stories(u)),
            want,
            "case {case}: stories of {u}"
        );
        let friends: Vec<String> = redis::cmd("SMEMBERS")
            .arg(k.close_friends(u))
            .query(&mut con)
            .unwrap();
        let friends: BTreeSet<u64> = friends.iter().map(|f| f.parse().unwrap()).collect();
        let want: BTreeSet<u64> = s
            .close_friends
            .iter()
            .filter(|(a, _)| *a == u)
            .map(|(_, f)| *f)
            .collect();
        assert_eq!(friends, want, "case {case}: close friends of {u}");
    }
    for (id, viewers) in &s.viewers {
        if !s.live(*id, now) {
            continue;
        }
        let want: BTreeMap<String, f64> = viewers
            .iter()
            .map(|(v, t)| (v.to_string(), *t as f64))
            .collect();
        assert_eq!(
            zset(&mut con, &k.story_viewers(*id)),
            want,
            "case {case}: viewers of story {id}"
        );
    }
}

pub fn compare_trending(config: &Config, oracle: &Oracle, case: u64) {
    let k = config.keyspace();
    let mut con = redis(config);
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:trend:*", config.redis.key_prefix))
        .query(&mut con)
        .unwrap();
    let mut stored = BTreeMap::new();
    for key in keys {
        let mut parts = key.rsplit(':');
        let bucket: i64 = parts.next().unwrap().parse().unwrap();
        let g = parts.next().unwrap().to_owned();
        let counts: BTreeMap<String, i64> = hash(&mut con, &key)
            .into_iter()
            .map(|(t, n)| (t, n.parse().unwrap()))
            .collect();
        stored.insert((g, bucket), counts);
    }
    let want: BTreeMap<(String, i64), BTreeMap<String, i64>> = oracle
        .trending
        .buckets()
        .into_iter()
        .map(|((g, b), c)| ((g.to_owned(), b), c))
        .collect();
    assert_eq!(stored, want, "case {case}: trending buckets");
    let since: Option<i64> = redis::cmd("GET")
        .arg(k.trend_since())
        .query(&mut con)
        .unwrap();
    assert_eq!(
        since,
        oracle.trending.since(),
        "case {case}: trending history start"
    );
    for (tag, posts) in oracle.trending.tag_posts() {
        let want: BTreeMap<String, f64> = posts.into_iter().map(|(m, t)| (m, t as f64)).collect();
        assert_eq!(
            zset(&mut con, &k.trend_posts(&tag)),
            want,
            "case {case}: posts of #{tag}"
        );
    }
}

/// The pools job's Redis state against the oracle's, partition by partition.
pub fn compare_pools(config: &Config, oracle: &Oracle, case: u64) {
    let k = config.keyspace();
    let mut con = redis(config);
    let partitions = config.kafka.partitions;
    for p in 0..partitions {
        for (reels, key) in [(false, k.pool_fresh(p)), (true, k.pool_fresh_reels(p))] {
            let want: BTreeMap<String, f64> = oracle
                .pools
                .pool(p, partitions, reels)
                .into_iter()
                .map(|(m, t)| (m, t as f64))
                .collect();
            assert_eq!(
                zset(&mut con, &key),
                want,
                "case {case}: pool of partition {p} (reels only: {reels})"
            );
        }
    }
}
