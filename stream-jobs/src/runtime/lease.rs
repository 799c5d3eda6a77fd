//! Partition ownership by leases in Redis: explicit assignment, as Flink and Arroyo do, instead
//! of the broker's consumer-group protocol.
//!
//! Every worker of a group calls [`Leases::coordinate`] about three times per lease period. One
//! script, atomic under the group's hash tag, records the worker's heartbeat, forgets workers
//! silent for a lease period, computes a fair share (`ceil(partitions / live workers)`), renews
//! the caller's leases, gives back any above its share and takes free ones up to it. A dead
//! worker's leases expire with it, so its partitions move within one lease period; a worker
//! that stops gracefully deletes its leases and they move at the next call of another worker.
//!
//! A lease alone never makes a write safe: whoever takes a partition bumps its epochs
//! ([`super::script::JobScript::claim`]) before reading, which fences a previous holder that has
//! not noticed yet.

use std::collections::BTreeSet;
use std::time::Duration;

use aperture_schema::keys::Keyspace;

const COORDINATE: &str = r#"
local me, ttl, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, me)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ttl)
local live = redis.call('ZCARD', KEYS[1])
local share = math.ceil(n / live)
local mine, free = {}, {}
for p = 0, n - 1 do
  local owner = redis.call('GET', KEYS[p + 2])
  if owner == me then
    mine[#mine + 1] = p
  elseif not owner then
    free[#free + 1] = p
  end
end
while #mine > share do
  local p = table.remove(mine)
  redis.call('DEL', KEYS[p + 2])
end
for _, p in ipairs(free) do
  if #mine >= share then break end
  if redis.call('SET', KEYS[p + 2], me, 'PX', ttl, 'NX') then mine[#mine + 1] = p end
end
for _, p in ipairs(mine) do redis.call('PEXPIRE', KEYS[p + 2], ttl) end
return mine
"#;

const RESIGN: &str = r#"
redis.call('ZREM', KEYS[1], ARGV[1])
for i = 2, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then redis.call('DEL', KEYS[i]) end
end
return 0
"#;

/// One worker's view of its group's leases.
#[derive(Debug)]
pub struct Leases {
    worker: String,
    ttl: Duration,
    keys: Vec<String>,
    coordinate: redis::Script,
    resign: redis::Script,
}

impl Leases {
    pub fn new(
        keys: &Keyspace,
        group: &str,
        worker: String,
        partitions: u32,
        ttl: Duration,
    ) -> Leases {
        let mut all = vec![keys.workers(group)];
        all.extend((0..partitions).map(|p| keys.lease(group, p)));
        Leases {
            worker,
            ttl,
            keys: all,
            coordinate: redis::Script::new(COORDINATE),
            resign: redis::Script::new(RESIGN),
        }
    }

    pub fn worker(&self) -> &str {
        &self.worker
    }

    /// A key of the group's slot (every lease key shares it), for routing on a cluster.
    pub fn route(&self) -> &str {
        &self.keys[0]
    }

    /// Heartbeat, rebalance and renew; returns the partitions this worker holds now.
    pub fn coordinate(
        &self,
        con: &mut dyn redis::ConnectionLike,
    ) -> redis::RedisResult<BTreeSet<u32>> {
        let mut call = self.coordinate.prepare_invoke();
        for key in &self.keys {
            call.key(key);
        }
        call.arg(&self.worker)
            .arg(self.ttl.as_millis() as u64)
            .arg(self.keys.len() - 1);
        let held: Vec<u32> = call.invoke(con)?;
        Ok(held.into_iter().collect())
    }

    /// Leaves the group and gives back every lease (graceful shutdown).
    pub fn resign(&self, con: &mut dyn redis::ConnectionLike) -> redis::RedisResult<()> {
        let mut call = self.resign.prepare_invoke();
        for key in &self.keys {
            call.key(key);
        }
        call.arg(&self.worker).invoke(con)
    }
}
