//! Reads of the precomputed Redis state.
//!
//! Every read is a pipeline of single-key commands: one round trip per step of a request, never
//! one per item, and nothing that spans hash slots, so the same code runs on Redis Cluster.

use aperture_schema::keys::Keyspace;
use redis::aio::ConnectionManager;
use redis::{FromRedisValue, Pipeline, RedisError, Value};

/// A multiplexed, self-reconnecting Redis connection and the deployment's keyspace.
#[derive(Clone)]
pub struct Store {
    conn: ConnectionManager,
    keys: Keyspace,
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
    pub async fn connect(url: &str, keys: Keyspace) -> Result<Store, RedisError> {
        let client = redis::Client::open(url)?;
        let conn = ConnectionManager::new(client).await?;
        Ok(Store { conn, keys })
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

    pub async fn ping(&self) -> Result<(), RedisError> {
        let mut conn = self.conn.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(drop)
    }
}

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
