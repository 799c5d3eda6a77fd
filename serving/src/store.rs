//! Reads of the precomputed Redis state.
//!
//! Every read is a pipeline of single-key commands: one round trip per step of a request, never
//! one per item, and nothing that spans hash slots, so the same code runs on Redis Cluster.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aperture_schema::keys::Keyspace;
use quick_cache::sync::Cache;
use redis::aio::ConnectionManager;
use redis::{FromRedisValue, Pipeline, RedisError, Value};

use crate::posts::{Counts, PostMeta};

/// A multiplexed, self-reconnecting Redis connection and the deployment's keyspace.
#[derive(Clone)]
pub struct Store {
    conn: ConnectionManager,
    keys: Keyspace,
    caches: Arc<Caches>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Connects to `url`; fails when Redis cannot be reached now.
    pub async fn connect(
        url: &str,
        keys: Keyspace,
        counts_ttl: Duration,
    ) -> Result<Store, RedisError> {
        let client = redis::Client::open(url)?;
        let conn = ConnectionManager::new(client).await?;
        Ok(Store {
            conn,
            keys,
            caches: Arc::new(Caches::new(counts_ttl)),
        })
    }

    /// Immutable state already read, kept instead of read again for every post shown.
    pub fn caches(&self) -> &Caches {
        &self.caches
    }

    pub fn keys(&self) -> &Keyspace {
        &self.keys
    }

    /// Runs a pipeline and hands back one raw reply per command.
    pub async fn run(&self, pipe: &Pipeline) -> Result<Replies, RedisError> {
        let mut conn = self.conn.clone();
        let values: Vec<Value> = pipe.query_async(&mut conn).await?;
        Ok(Replies(values.into_iter()))
    }

    /// Runs a Lua script (by digest, loading it when Redis does not know it yet); every key it
    /// touches is in `keys`, all in one hash slot.
    pub async fn script<T: FromRedisValue>(
        &self,
        script: &redis::Script,
        keys: &[String],
        args: &[String],
    ) -> Result<T, RedisError> {
        let mut conn = self.conn.clone();
        let mut invocation = script.prepare_invoke();
        for key in keys {
            invocation.key(key);
        }
        for arg in args {
            invocation.arg(arg);
        }
        invocation.invoke_async(&mut conn).await
    }

    /// Sets a string key to `value` unless it already holds a larger number (a marker that
    /// only moves forward, whatever order concurrent requests land in).
    pub async fn raise(&self, key: &str, value: i64) -> Result<i64, RedisError> {
        self.script(&RAISE, &[key.to_owned()], &[value.to_string()])
            .await
    }

    pub async fn ping(&self) -> Result<(), RedisError> {
        let mut conn = self.conn.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(drop)
    }
}

static RAISE: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        "local v = tonumber(redis.call('GET', KEYS[1]) or '') \
         if v == nil or v < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) \
         return tonumber(ARGV[1]) end return v",
    )
});

/// The replies of a pipeline, taken in the order the commands were added.
#[derive(Debug)]
pub struct Replies(std::vec::IntoIter<Value>);

impl Replies {
    /// The next reply as `T`.
    pub fn take<T: FromRedisValue>(&mut self) -> Result<T, RedisError> {
        let value = self.0.next().ok_or_else(|| {
            RedisError::from((
                redis::ErrorKind::Client,
                "a pipeline answered fewer replies than it had commands",
            ))
        })?;
        Ok(redis::from_redis_value(value)?)
    }

    /// The next reply of a `... WITHSCORES` range: `(member, score)` pairs, scores being event
    /// times in ms (exact in a double below 2^53).
    pub fn take_scored(&mut self) -> Result<Vec<(String, i64)>, RedisError> {
        let pairs: Vec<(String, f64)> = self.take()?;
        Ok(pairs.into_iter().map(|(m, s)| (m, s as i64)).collect())
    }
}

/// What the process keeps: usernames (set once, at `user_created`) and post metadata (set once,
/// at `post_created`) for good, and post counts for `serving.counts-ttl`. Bounded, the least
/// recently used out first.
pub struct Caches {
    pub usernames: Cache<u64, Arc<str>>,
    pub posts: Cache<u64, Arc<PostMeta>>,
    counts: Cache<u64, (Instant, Counts)>,
    counts_ttl: Duration,
}

impl Caches {
    pub fn new(counts_ttl: Duration) -> Caches {
        Caches {
            usernames: Cache::new(USERNAMES_CAP),
            posts: Cache::new(POSTS_CAP),
            counts: Cache::new(POSTS_CAP),
            counts_ttl,
        }
    }

    /// A post's counts if read less than `counts-ttl` ago.
    pub fn counts(&self, post: u64) -> Option<Counts> {
        self.counts
            .get(&post)
            .filter(|(at, _)| at.elapsed() < self.counts_ttl)
            .map(|(_, c)| c)
    }

    pub fn put_counts(&self, post: u64, counts: Counts) {
        if !self.counts_ttl.is_zero() {
            self.counts.insert(post, (Instant::now(), counts));
        }
    }
}

impl std::fmt::Debug for Caches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caches")
            .field("usernames", &self.usernames.len())
            .field("posts", &self.posts.len())
            .field("counts", &self.counts.len())
            .finish()
    }
}

/// Usernames kept (tens of bytes each).
const USERNAMES_CAP: usize = 500_000;
/// Posts kept (a few hundred bytes each): the recent posts feeds are made of.
const POSTS_CAP: usize = 200_000;
