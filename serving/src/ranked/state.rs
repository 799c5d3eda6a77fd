//! The ranking features' state read online from Redis: the same [`Viewer`], [`Post`],
//! [`Author`] and [`Pair`] the offline replay builds from the warehouse, so
//! [`aperture_ranking::features::assemble`] gives both sides the same inputs (the
//! training–serving agreement test compares them).
//!
//! Two round trips: the viewer's own keys (one slot), then every post and author the request
//! needs (one command per key, pipelined). Post metadata is read fresh, not from the hydration
//! cache, because a candidate from a pool or a neighbour's engagement may have been deleted
//! since it was cached.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use aperture_ranking::features::{self, Author, Inputs, Pair, Post, Seen, Viewer};
use aperture_ranking::topics::Topics;
use aperture_schema::event::{MediaType, Surface};
use aperture_schema::state::{affinity_at, utc_day};
use quick_cache::sync::Cache;
use redis::RedisError;

use crate::store::{Replies, Store};

const DAY_MS: i64 = 86_400_000;

/// What the viewer's own keys say: everything the features and the visibility rules need
/// about them.
#[derive(Debug, Clone, Default)]
pub struct ViewerKeys {
    pub pref: BTreeMap<String, i64>,
    /// Posts of the view history, oldest first (a post once per view).
    pub history: Vec<u64>,
    /// Engaged posts → time of the first act.
    pub engaged: HashMap<u64, i64>,
    /// Accounts the viewer actively follows.
    pub following: HashSet<u64>,
    /// Accounts the viewer blocks or is blocked by.
    pub blocked: HashSet<u64>,
    /// Posts the viewer hid or reported.
    pub hidden: HashSet<u64>,
    /// Authors → the viewer's hides and reports of their posts.
    pub negative: HashMap<u64, i64>,
    /// Affinity as stored (undecayed), per author.
    affinity: HashMap<u64, f64>,
}

/// One post as the state holds it: its features' part, and whether it is deleted.
#[derive(Debug, Clone)]
pub struct PostState {
    pub post: Post,
    pub deleted: bool,
}

/// One author: their features' part and whether the account is private.
#[derive(Debug, Clone, Copy)]
pub struct AuthorState {
    pub author: Author,
    pub private: bool,
}

fn ids(members: Vec<String>) -> impl Iterator<Item = u64> {
    members.into_iter().filter_map(|m| m.parse().ok())
}

/// Reads the viewer's keys, one round trip in their slot.
pub async fn viewer_keys(store: &Store, viewer: u64) -> Result<ViewerKeys, RedisError> {
    let k = store.keys();
    let mut pipe = redis::pipe();
    pipe.cmd("HGETALL").arg(k.content_pref(viewer));
    pipe.cmd("ZRANGE")
        .arg(k.view_history(viewer))
        .arg(0)
        .arg(-1);
    pipe.cmd("ZRANGE")
        .arg(k.engaged_posts(viewer))
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES");
    pipe.cmd("ZRANGE").arg(k.following(viewer)).arg(0).arg(-1);
    pipe.cmd("SMEMBERS").arg(k.blocks(viewer));
    pipe.cmd("SMEMBERS").arg(k.blocked_by(viewer));
    pipe.cmd("ZRANGE")
        .arg(k.hidden_posts(viewer))
        .arg(0)
        .arg(-1);
    pipe.cmd("ZRANGE")
        .arg(k.negative_authors(viewer))
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES");
    pipe.cmd("ZRANGE")
        .arg(k.affinity(viewer))
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES");
    let mut r = store.run(&pipe).await?;
    let pref: HashMap<String, String> = r.take()?;
    let history: Vec<String> = r.take()?;
    let engaged: Vec<(String, f64)> = r.take()?;
    let following: Vec<String> = r.take()?;
    let mut blocked: HashSet<u64> = ids(r.take()?).collect();
    blocked.extend(ids(r.take()?));
    let hidden: Vec<String> = r.take()?;
    let negative: Vec<(String, f64)> = r.take()?;
    let affinity: Vec<(String, f64)> = r.take()?;
    let scored = |v: Vec<(String, f64)>| -> HashMap<u64, f64> {
        v.into_iter()
            .filter_map(|(m, s)| Some((m.parse().ok()?, s)))
            .collect()
    };
    Ok(ViewerKeys {
        pref: pref
            .into_iter()
            .filter_map(|(m, v)| Some((m, v.parse::<i64>().ok()?)))
            .filter(|(_, v)| *v != 0)
            .collect(),
        history: history
            .into_iter()
            .filter_map(|m| m.split_once(':')?.0.parse().ok())
            .collect(),
        engaged: scored(engaged)
            .into_iter()
            .map(|(p, t)| (p, t as i64))
            .collect(),
        following: ids(following).collect(),
        blocked,
        hidden: ids(hidden).collect(),
        negative: scored(negative)
            .into_iter()
            .map(|(a, n)| (a, n as i64))
            .collect(),
        affinity: scored(affinity),
    })
}

/// Fields read from `post_meta` and `post_counts`, in this order.
const META: [&str; 5] = ["author", "created_at", "media_type", "hashtags", "deleted"];
const COUNTS: [&str; 10] = [
    "likes",
    "comments",
    "shares",
    "saves",
    "views",
    "hides",
    "reports",
    "first_hour",
    "watch_ms",
    "watch_views",
];

fn queue_posts(pipe: &mut redis::Pipeline, store: &Store, posts: &[u64]) {
    let k = store.keys();
    for &p in posts {
        pipe.cmd("HMGET").arg(k.post_meta(p)).arg(&META[..]);
        pipe.cmd("HMGET").arg(k.post_counts(p)).arg(&COUNTS[..]);
    }
}

/// A media type as the jobs store it (`MediaType::as_str`).
pub(crate) fn media(text: &str) -> Option<MediaType> {
    MediaType::ALL.into_iter().find(|m| m.as_str() == text)
}

fn take_post(r: &mut Replies) -> Result<Option<PostState>, RedisError> {
    let meta: Vec<Option<String>> = r.take()?;
    let counts: Vec<Option<String>> = r.take()?;
    let n = |i: usize| -> i64 {
        counts
            .get(i)
            .and_then(|c| c.as_deref())
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    };
    let field = |i: usize| meta.get(i).and_then(|m| m.as_deref());
    let (Some(author), Some(created_at), Some(media_type)) = (
        field(0).and_then(|a| a.parse().ok()),
        field(1).and_then(|c| c.parse().ok()),
        field(2).and_then(media),
    ) else {
        // Not created (yet), or deleted before its creation arrived.
        return Ok(None);
    };
    Ok(Some(PostState {
        post: Post {
            author,
            created_at,
            media_type,
            hashtags: field(3)
                .and_then(|t| serde_json::from_str(t).ok())
                .unwrap_or_default(),
            likes: n(0),
            comments: n(1),
            shares: n(2),
            saves: n(3),
            views: n(4),
            negative: n(5) + n(6),
            first_hour: n(7),
            watch_ms: n(8),
            watch_views: n(9),
        },
        deleted: field(4) == Some("1"),
    }))
}

/// Candidate posts' and authors' state kept for `ranking.serving.state-ttl` across requests:
/// consecutive Explore and Reels requests score mostly the same pools, and reading every
/// candidate's post and author again was most of a request's Redis commands. Counts may be
/// that much behind; what decides visibility (deletes, blocks, private accounts) is read
/// fresh after scoring.
pub struct StateCache {
    ttl: Duration,
    posts: Cache<u64, (Instant, PostState)>,
    /// Keyed by author and the UTC day of the request: the 7-day rollups end on that day.
    authors: Cache<(u64, i64), (Instant, AuthorState)>,
}

/// Posts and authors a [`StateCache`] keeps.
const STATE_CAP: usize = 200_000;

impl std::fmt::Debug for StateCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateCache")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl StateCache {
    pub fn new(ttl: Duration) -> StateCache {
        StateCache {
            ttl,
            posts: Cache::new(STATE_CAP),
            authors: Cache::new(STATE_CAP),
        }
    }

    fn fresh<T>(&self, hit: Option<(Instant, T)>) -> Option<T> {
        hit.filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, v)| v)
    }
}

/// Reads `posts`' state (unknown posts are absent), one round trip; through `cache` when given.
async fn posts_through(
    store: &Store,
    cache: Option<&StateCache>,
    wanted: &[u64],
) -> Result<HashMap<u64, PostState>, RedisError> {
    let Some(cache) = cache.filter(|c| !c.ttl.is_zero()) else {
        return posts(store, wanted).await;
    };
    let mut out = HashMap::with_capacity(wanted.len());
    let mut missing = Vec::new();
    for &p in wanted {
        match cache.fresh(cache.posts.get(&p)) {
            Some(s) => {
                out.insert(p, s);
            }
            None => missing.push(p),
        }
    }
    let now = Instant::now();
    for (p, s) in posts(store, &missing).await? {
        cache.posts.insert(p, (now, s.clone()));
        out.insert(p, s);
    }
    Ok(out)
}

/// [`authors`], through `cache` when given.
async fn authors_through(
    store: &Store,
    cache: Option<&StateCache>,
    wanted: &[u64],
    at_ms: i64,
) -> Result<HashMap<u64, AuthorState>, RedisError> {
    let Some(cache) = cache.filter(|c| !c.ttl.is_zero()) else {
        return authors(store, wanted, at_ms).await;
    };
    let day = at_ms.div_euclid(DAY_MS);
    let mut out = HashMap::with_capacity(wanted.len());
    let mut missing = Vec::new();
    for &a in wanted {
        match cache.fresh(cache.authors.get(&(a, day))) {
            Some(s) => {
                out.insert(a, s);
            }
            None => missing.push(a),
        }
    }
    let now = Instant::now();
    for (a, s) in authors(store, &missing, at_ms).await? {
        cache.authors.insert((a, day), (now, s));
        out.insert(a, s);
    }
    Ok(out)
}

/// Reads `posts`' state (unknown posts are absent), one round trip.
pub async fn posts(store: &Store, posts: &[u64]) -> Result<HashMap<u64, PostState>, RedisError> {
    if posts.is_empty() {
        return Ok(HashMap::new());
    }
    let mut pipe = redis::pipe();
    queue_posts(&mut pipe, store, posts);
    let mut r = store.run(&pipe).await?;
    let mut out = HashMap::with_capacity(posts.len());
    for &p in posts {
        if let Some(s) = take_post(&mut r)? {
            out.insert(p, s);
        }
    }
    Ok(out)
}

/// Reads `authors`' state as of `at_ms`, one round trip.
pub async fn authors(
    store: &Store,
    authors: &[u64],
    at_ms: i64,
) -> Result<HashMap<u64, AuthorState>, RedisError> {
    if authors.is_empty() {
        return Ok(HashMap::new());
    }
    let k = store.keys();
    let days: Vec<String> = (0..7).map(|b| utc_day(at_ms - b * DAY_MS)).collect();
    let mut pipe = redis::pipe();
    for &a in authors {
        pipe.cmd("ZCARD").arg(k.followers(a));
        pipe.cmd("HGET").arg(k.profile(a)).arg("private");
        for day in &days {
            pipe.cmd("HMGET")
                .arg(k.creator_daily(a, day))
                .arg(&["views", "interactions", "watch_ms", "watch_views"][..]);
        }
    }
    let mut r = store.run(&pipe).await?;
    let mut out = HashMap::with_capacity(authors.len());
    for &a in authors {
        let followers: i64 = r.take()?;
        let private = r.take::<Option<String>>()?.as_deref() == Some("1");
        let mut author = Author {
            followers,
            ..Author::default()
        };
        for _ in &days {
            let f: Vec<Option<i64>> = r.take()?;
            let at = |i: usize| f.get(i).copied().flatten().unwrap_or(0);
            author.views_7d += at(0);
            author.interactions_7d += at(1);
            author.watch_ms_7d += at(2);
            author.watch_views_7d += at(3);
        }
        out.insert(a, AuthorState { author, private });
    }
    Ok(out)
}

/// Everything one request's features need, read in two round trips.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub viewer_id: u64,
    pub keys: ViewerKeys,
    pub viewer: Viewer,
    pub posts: HashMap<u64, PostState>,
    pub authors: HashMap<u64, AuthorState>,
    pub at_ms: i64,
    half_life_ms: f64,
}

impl Snapshot {
    /// Reads the viewer (already read as `keys`), their history's posts and `candidates` with
    /// their authors, as of `at_ms`; posts and authors through `cache` when given.
    #[allow(clippy::too_many_arguments)]
    pub async fn read(
        store: &Store,
        cache: Option<&StateCache>,
        viewer_id: u64,
        keys: ViewerKeys,
        candidates: &[u64],
        topics: &Topics,
        at_ms: i64,
        half_life_ms: f64,
    ) -> Result<Snapshot, RedisError> {
        let mut wanted: Vec<u64> = keys.history.iter().chain(candidates).copied().collect();
        wanted.sort_unstable();
        wanted.dedup();
        let posts = posts_through(store, cache, &wanted).await?;
        let mut author_ids: Vec<u64> = candidates
            .iter()
            .filter_map(|p| posts.get(p).map(|s| s.post.author))
            .collect();
        author_ids.sort_unstable();
        author_ids.dedup();
        let authors = authors_through(store, cache, &author_ids, at_ms).await?;
        let history = keys.history.iter().filter_map(|id| {
            let s = posts.get(id).filter(|s| !s.deleted)?;
            Some(Seen {
                media_type: s.post.media_type,
                hashtags: &s.post.hashtags,
                engaged: keys.engaged.contains_key(id),
            })
        });
        let viewer = Viewer::new(keys.pref.clone(), history, topics);
        Ok(Snapshot {
            viewer_id,
            viewer,
            keys,
            posts,
            authors,
            at_ms,
            half_life_ms,
        })
    }

    /// The inputs of the viewer seeing `post` on `surface`, when it is known, not deleted and
    /// not their own.
    pub fn inputs(&self, post: u64, surface: Surface, topics: &Topics) -> Option<Inputs> {
        let s = self.posts.get(&post).filter(|s| !s.deleted)?;
        let author = s.post.author;
        if author == self.viewer_id {
            return None;
        }
        let a = self.authors.get(&author)?;
        let pair = Pair {
            follows: self.keys.following.contains(&author),
            affinity: affinity_at(
                self.keys.affinity.get(&author).copied().unwrap_or(0.0),
                self.at_ms,
                self.half_life_ms,
            ),
            negative: self.keys.negative.get(&author).copied().unwrap_or(0),
        };
        Some(features::assemble(
            &self.viewer,
            &s.post,
            &a.author,
            &pair,
            topics,
            self.at_ms,
            surface,
        ))
    }
}
