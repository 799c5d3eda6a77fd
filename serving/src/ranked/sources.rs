//! Candidate sources, each a small function returning posts with the source that found them.
//!
//! - co-engagement: posts engaged by accounts who liked what the viewer engaged with (their
//!   co-engagement neighbours), weighted by how many of the viewer's posts they share;
//! - trending: the newest posts of the hashtags trending over 24 h;
//! - velocity: pool posts of the last day with the most interactions in their first hour;
//! - popular: pool posts with the most interactions, the cold start of a new account;
//! - fresh: the newest pool reels, so a new reel gets its first views.
//!
//! Pools are the pools job's per-partition ZSETs; [`PoolCache`] reads them (and their posts'
//! counters) at most every few seconds per process, since they are the same for every viewer.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::RedisError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::store::Store;
use crate::trending::{self, TrendingCache, Window};

/// Which source found an item of Explore or Reels (the ranked feed keeps the feed's `source`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// Engaged by accounts whose engagement overlaps the viewer's.
    CoEngagement,
    /// Among the newest posts of a hashtag trending over 24 h.
    Trending,
    /// Most interactions in its first hour, among the last day's posts.
    Velocity,
    /// Most interactions among the pools' posts.
    Popular,
    /// Among the newest reels.
    Fresh,
}

/// A candidate before scoring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub post: u64,
    pub author: u64,
    pub origin: Origin,
    /// The source's own strength (neighbour overlap, interactions), to keep the best when a
    /// source finds more than it may hand on.
    pub weight: i64,
}

/// Engaged posts of the viewer looked at, likers per post, neighbours kept, and engaged
/// posts per neighbour.
const SEEDS: usize = 20;
const LIKERS: usize = 30;
const NEIGHBOURS: usize = 20;
const PER_NEIGHBOUR: usize = 30;

/// Posts engaged by the viewer's co-engagement neighbours, strongest first. `engaged` is the
/// viewer's engaged posts with the time of the first act.
pub async fn co_engagement(
    store: &Store,
    viewer: u64,
    engaged: &HashMap<u64, i64>,
) -> Result<Vec<Found>, RedisError> {
    let k = store.keys();
    let mut seeds: Vec<(i64, u64)> = engaged.iter().map(|(p, t)| (*t, *p)).collect();
    seeds.sort_unstable_by(|a, b| b.cmp(a));
    seeds.truncate(SEEDS);
    if seeds.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for (_, p) in &seeds {
        pipe.cmd("ZREVRANGE")
            .arg(k.post_likers(*p))
            .arg(0)
            .arg(LIKERS - 1);
    }
    let mut r = store.run(&pipe).await?;
    let mut overlap: HashMap<u64, i64> = HashMap::new();
    for _ in &seeds {
        let likers: Vec<u64> = r.take()?;
        for u in likers.into_iter().filter(|&u| u != viewer) {
            *overlap.entry(u).or_default() += 1;
        }
    }
    let mut neighbours: Vec<(i64, u64)> = overlap.into_iter().map(|(u, n)| (n, u)).collect();
    neighbours.sort_unstable_by(|a, b| b.cmp(a));
    neighbours.truncate(NEIGHBOURS);
    if neighbours.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for (_, u) in &neighbours {
        pipe.cmd("ZREVRANGE")
            .arg(k.engaged_posts(*u))
            .arg(0)
            .arg(PER_NEIGHBOUR - 1);
    }
    let mut r = store.run(&pipe).await?;
    let mut weight: HashMap<u64, i64> = HashMap::new();
    for (n, _) in &neighbours {
        let posts: Vec<u64> = r.take()?;
        for p in posts {
            *weight.entry(p).or_default() += n;
        }
    }
    // Authors come with the post's state; 0 until then.
    Ok(ranked(weight, Origin::CoEngagement))
}

fn ranked(weight: HashMap<u64, i64>, origin: Origin) -> Vec<Found> {
    let mut out: Vec<Found> = weight
        .into_iter()
        .map(|(post, weight)| Found {
            post,
            author: 0,
            origin,
            weight,
        })
        .collect();
    out.sort_unstable_by_key(|f| std::cmp::Reverse((f.weight, f.post)));
    out
}

/// Tags read, and posts per tag.
const TAGS: usize = 10;
const PER_TAG: usize = 30;

/// The newest posts of the tags trending over 24 h.
pub async fn trending(
    store: &Store,
    cache: &TrendingCache,
    partitions: u32,
    min_accounts: usize,
) -> Result<Vec<Found>, RedisError> {
    let page = trending::page(
        store,
        cache,
        Window::Day,
        TAGS,
        None,
        partitions,
        min_accounts,
    )
    .await?;
    if page.items.is_empty() {
        return Ok(Vec::new());
    }
    let k = store.keys();
    let mut pipe = redis::pipe();
    for t in &page.items {
        pipe.cmd("ZREVRANGE")
            .arg(k.trend_posts(&t.tag))
            .arg(0)
            .arg(PER_TAG - 1)
            .arg("WITHSCORES");
    }
    let mut r = store.run(&pipe).await?;
    let mut out = Vec::new();
    for _ in &page.items {
        for (member, ts) in r.take_scored()? {
            if let Some((a, p)) = member.split_once(':')
                && let (Ok(author), Ok(post)) = (a.parse(), p.parse())
            {
                out.push(Found {
                    post,
                    author,
                    origin: Origin::Trending,
                    weight: ts,
                });
            }
        }
    }
    Ok(out)
}

/// Pool members read per partition, and posts kept per list.
const POOL_READ: usize = 500;
const POOL_KEEP: usize = 300;
/// Velocity looks at posts of the pool's last day.
const VELOCITY_SPAN_MS: i64 = 86_400_000;

/// The pools as one process sees them, refreshed at most every `every`.
#[derive(Debug)]
pub struct PoolCache {
    every: Duration,
    lists: Mutex<Option<(Instant, std::sync::Arc<Lists>)>>,
}

/// The pools' candidates, strongest first.
#[derive(Debug, Default)]
pub struct Lists {
    pub popular: Vec<Found>,
    pub velocity: Vec<Found>,
    pub popular_reels: Vec<Found>,
    pub fresh_reels: Vec<Found>,
}

impl PoolCache {
    pub fn new(every: Duration) -> PoolCache {
        PoolCache {
            every,
            lists: Mutex::new(None),
        }
    }

    /// The lists, read again when older than `every`.
    pub async fn lists(
        &self,
        store: &Store,
        partitions: u32,
    ) -> Result<std::sync::Arc<Lists>, RedisError> {
        if let Some((at, lists)) = self.lists.lock().expect("not poisoned").as_ref()
            && at.elapsed() < self.every
        {
            return Ok(lists.clone());
        }
        let lists = std::sync::Arc::new(read_lists(store, partitions).await?);
        *self.lists.lock().expect("not poisoned") = Some((Instant::now(), lists.clone()));
        Ok(lists)
    }
}

async fn read_lists(store: &Store, partitions: u32) -> Result<Lists, RedisError> {
    let k = store.keys();
    let mut pipe = redis::pipe();
    for p in 0..partitions {
        for key in [k.pool_fresh(p), k.pool_fresh_reels(p)] {
            pipe.cmd("ZREVRANGE")
                .arg(key)
                .arg(0)
                .arg(POOL_READ - 1)
                .arg("WITHSCORES");
        }
    }
    let mut r = store.run(&pipe).await?;
    let mut all: Vec<(u64, u64, i64)> = Vec::new();
    let mut reels: Vec<(u64, u64, i64)> = Vec::new();
    for _ in 0..partitions {
        for list in [&mut all, &mut reels] {
            for (member, ts) in r.take_scored()? {
                if let Some((a, p)) = member.split_once(':')
                    && let (Ok(author), Ok(post)) = (a.parse(), p.parse())
                {
                    list.push((post, author, ts));
                }
            }
        }
    }
    let mut pipe = redis::pipe();
    for (post, _, _) in &all {
        pipe.cmd("HMGET")
            .arg(k.post_counts(*post))
            .arg(&["likes", "comments", "shares", "saves", "first_hour"][..]);
    }
    let mut interactions: HashMap<u64, (i64, i64)> = HashMap::new();
    if !all.is_empty() {
        let mut r = store.run(&pipe).await?;
        for (post, _, _) in &all {
            let f: Vec<Option<i64>> = r.take()?;
            let at = |i: usize| f.get(i).copied().flatten().unwrap_or(0);
            interactions.insert(*post, (at(0) + at(1) + at(2) + at(3), at(4)));
        }
    }
    let newest = all.iter().map(|x| x.2).max().unwrap_or(0);
    let list =
        |from: &[(u64, u64, i64)], origin: Origin, weigh: &dyn Fn(u64, i64) -> Option<i64>| {
            let mut out: Vec<Found> = from
                .iter()
                .filter_map(|&(post, author, ts)| {
                    Some(Found {
                        post,
                        author,
                        origin,
                        weight: weigh(post, ts)?,
                    })
                })
                .collect();
            out.sort_unstable_by_key(|f| std::cmp::Reverse((f.weight, f.post)));
            out.truncate(POOL_KEEP);
            out
        };
    let count = |post: u64| interactions.get(&post).copied().unwrap_or((0, 0));
    Ok(Lists {
        popular: list(&all, Origin::Popular, &|p, _| Some(count(p).0)),
        velocity: list(&all, Origin::Velocity, &|p, ts| {
            (ts >= newest - VELOCITY_SPAN_MS && count(p).1 > 0).then_some(count(p).1)
        }),
        popular_reels: list(&reels, Origin::Popular, &|p, _| Some(count(p).0)),
        fresh_reels: list(&reels, Origin::Fresh, &|_, ts| Some(ts)),
    })
}
