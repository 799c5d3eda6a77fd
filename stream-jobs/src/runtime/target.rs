//! Where the jobs' scripts run: one Redis server, or a Redis Cluster.
//!
//! Every script declares its keys, all in one slot (DESIGN.md §3), so a single script call goes
//! to the node that serves its slot: redis-rs's cluster connection routes those. What redis-rs
//! does not offer is a pipeline over many slots (its cluster pipelines refuse `EVALSHA`, and
//! its async ones must stay in one slot), and a batch's slot-local updates are many slots: here
//! they are grouped by the node that serves each slot and sent as one pipeline per node. A
//! reply that says the slot moved (`MOVED`, `ASK`, a node gone) fails the whole call after the
//! slot map is read again; the caller sends it again, which the scripts make harmless (each
//! skips what it already applied).

use std::collections::HashMap;

/// The Redis Cluster slot of `key`: CRC16 (XMODEM) of its hash tag, or of the whole key, mod
/// 16384.
pub fn slot_of(key: &str) -> u16 {
    let hashed = aperture_schema::keys::hash_tag(key);
    crc16::State::<crc16::XMODEM>::calculate(hashed.as_bytes()) % 16384
}

/// One script call, with the key that decides where it runs (its first declared key).
pub struct Invocation<'a> {
    pub script: &'a redis::Script,
    pub invocation: redis::ScriptInvocation<'a>,
    pub route: String,
}

impl std::fmt::Debug for Invocation<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invocation")
            .field("script", &self.script.get_hash())
            .field("route", &self.route)
            .finish()
    }
}

/// Something that runs many script calls and returns their replies in order.
pub trait Scripts {
    /// Sends `calls` (loading scripts the server does not know) and returns their replies.
    fn run_scripts(&mut self, calls: &[&Invocation<'_>]) -> redis::RedisResult<Vec<redis::Value>>;

    /// A connection for commands on one key's slot.
    fn for_key(&mut self, key: &str) -> redis::RedisResult<&mut dyn redis::ConnectionLike>;
}

impl Scripts for redis::Connection {
    fn run_scripts(&mut self, calls: &[&Invocation<'_>]) -> redis::RedisResult<Vec<redis::Value>> {
        pipeline(self, calls)
    }

    fn for_key(&mut self, _key: &str) -> redis::RedisResult<&mut dyn redis::ConnectionLike> {
        Ok(self)
    }
}

/// One pipeline on one connection; on NOSCRIPT the scripts are loaded and it is sent again.
fn pipeline(
    con: &mut dyn redis::ConnectionLike,
    calls: &[&Invocation<'_>],
) -> redis::RedisResult<Vec<redis::Value>> {
    if calls.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for call in calls {
        pipe.invoke_script(&call.invocation);
    }
    match pipe.query(con) {
        Ok(values) => Ok(values),
        Err(error) if names_unknown_script(&error) => {
            let mut load = redis::pipe();
            for call in calls {
                load.load_script(call.script);
            }
            load.query::<()>(con)?;
            pipe.query(con)
        }
        Err(error) => Err(error),
    }
}

/// Whether any command behind `error` failed because the server does not know its script.
pub(crate) fn names_unknown_script(error: &redis::RedisError) -> bool {
    error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript)
        || error.clone().into_server_errors().is_some_and(|errors| {
            errors
                .iter()
                .any(|(_, e)| e.kind() == Some(redis::ServerErrorKind::NoScript))
        })
}

/// The Redis the configuration names: one server or a cluster.
pub enum Redis {
    Single(redis::Connection),
    Cluster(Box<Cluster>),
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Redis::Single(_) => f.write_str("Redis::Single"),
            Redis::Cluster(c) => f.debug_tuple("Redis::Cluster").field(&c.seeds).finish(),
        }
    }
}

/// How to reach the Redis of a configuration; cheap to clone, connects on demand.
#[derive(Debug, Clone)]
pub enum Client {
    Single(redis::Client),
    Cluster(Vec<String>),
}

impl Client {
    pub fn new(config: &aperture_schema::config::RedisConfig) -> redis::RedisResult<Client> {
        if config.cluster {
            Ok(Client::Cluster(config.seeds()))
        } else {
            Ok(Client::Single(redis::Client::open(config.url.as_str())?))
        }
    }

    pub fn connect(&self, timeout: std::time::Duration) -> redis::RedisResult<Redis> {
        match self {
            Client::Single(client) => {
                Ok(Redis::Single(client.get_connection_with_timeout(timeout)?))
            }
            Client::Cluster(seeds) => Ok(Redis::Cluster(Box::new(Cluster::connect(
                seeds.clone(),
                timeout,
            )?))),
        }
    }
}

impl Scripts for Redis {
    fn run_scripts(&mut self, calls: &[&Invocation<'_>]) -> redis::RedisResult<Vec<redis::Value>> {
        match self {
            Redis::Single(con) => con.run_scripts(calls),
            Redis::Cluster(cluster) => cluster.run_scripts(calls),
        }
    }

    fn for_key(&mut self, key: &str) -> redis::RedisResult<&mut dyn redis::ConnectionLike> {
        match self {
            Redis::Single(con) => Ok(con),
            Redis::Cluster(cluster) => cluster.for_key(key),
        }
    }
}

/// A Redis Cluster: the slot map (from `CLUSTER SLOTS`) and a connection per master.
#[derive(Debug)]
pub struct Cluster {
    seeds: Vec<String>,
    timeout: std::time::Duration,
    /// `(first slot, last slot, master address)`, sorted.
    slots: Vec<(u16, u16, String)>,
    nodes: HashMap<String, Node>,
}

/// A connection to one master.
struct Node(redis::Connection);

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Node")
    }
}

impl Cluster {
    pub fn connect(
        seeds: Vec<String>,
        timeout: std::time::Duration,
    ) -> redis::RedisResult<Cluster> {
        let mut cluster = Cluster {
            seeds,
            timeout,
            slots: Vec::new(),
            nodes: HashMap::new(),
        };
        cluster.refresh()?;
        Ok(cluster)
    }

    /// Reads the slot map again from the first seed that answers.
    pub fn refresh(&mut self) -> redis::RedisResult<()> {
        let mut last = None;
        for seed in &self.seeds {
            let attempt = redis::Client::open(seed.as_str())
                .and_then(|c| c.get_connection_with_timeout(self.timeout))
                .and_then(|mut con| redis::cmd("CLUSTER").arg("SLOTS").query(&mut con));
            match attempt {
                Ok(reply) => {
                    let reply: Vec<(u16, u16, Vec<redis::Value>)> = reply_rows(reply)?;
                    let mut slots = Vec::with_capacity(reply.len());
                    for (first, last, master) in reply {
                        let (host, port): (String, u16) = match master.as_slice() {
                            [host, port, ..] => (
                                redis::from_redis_value(host.clone())?,
                                redis::from_redis_value(port.clone())?,
                            ),
                            _ => {
                                return Err(redis::RedisError::from((
                                    redis::ErrorKind::Parse,
                                    "CLUSTER SLOTS row without a master address",
                                )));
                            }
                        };
                        slots.push((first, last, format!("redis://{host}:{port}/")));
                    }
                    slots.sort();
                    self.slots = slots;
                    self.nodes.clear();
                    return Ok(());
                }
                Err(error) => last = Some(error),
            }
        }
        Err(last.unwrap_or_else(|| {
            redis::RedisError::from((redis::ErrorKind::Client, "no cluster seed nodes configured"))
        }))
    }

    /// The address of the master serving `key`'s slot.
    pub fn node_of(&self, key: &str) -> redis::RedisResult<&str> {
        let slot = slot_of(key);
        self.slots
            .iter()
            .find(|(first, last, _)| (*first..=*last).contains(&slot))
            .map(|(_, _, addr)| addr.as_str())
            .ok_or_else(|| {
                redis::RedisError::from((
                    redis::ErrorKind::Client,
                    "no cluster node serves the slot",
                    format!("slot {slot} of {key}"),
                ))
            })
    }

    fn connection(&mut self, addr: &str) -> redis::RedisResult<&mut redis::Connection> {
        if !self.nodes.contains_key(addr) {
            let con = redis::Client::open(addr)?.get_connection_with_timeout(self.timeout)?;
            self.nodes.insert(addr.to_owned(), Node(con));
        }
        Ok(&mut self.nodes.get_mut(addr).expect("inserted above").0)
    }

    /// Commands for `key`'s slot go to its master; a failure reads the slot map again.
    pub fn for_key(&mut self, key: &str) -> redis::RedisResult<&mut dyn redis::ConnectionLike> {
        let addr = self.node_of(key)?.to_owned();
        Ok(self.connection(&addr)?)
    }

    fn run_scripts(&mut self, calls: &[&Invocation<'_>]) -> redis::RedisResult<Vec<redis::Value>> {
        let mut by_node: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, call) in calls.iter().enumerate() {
            by_node
                .entry(self.node_of(&call.route)?.to_owned())
                .or_default()
                .push(i);
        }
        let mut replies: Vec<Option<redis::Value>> = vec![None; calls.len()];
        for (addr, indices) in by_node {
            let node_calls: Vec<&Invocation<'_>> = indices.iter().map(|&i| calls[i]).collect();
            let result = self
                .connection(&addr)
                .and_then(|con| pipeline(con, &node_calls));
            match result {
                Ok(values) => {
                    for (i, value) in indices.into_iter().zip(values) {
                        replies[i] = Some(value);
                    }
                }
                Err(error) => {
                    // A moved slot, a failed-over master or a lost connection: read the map
                    // again so the caller's next try goes where the slots are now.
                    self.nodes.remove(&addr);
                    let _ = self.refresh();
                    return Err(error);
                }
            }
        }
        Ok(replies
            .into_iter()
            .map(|v| v.expect("every call belongs to one node"))
            .collect())
    }
}

/// `CLUSTER SLOTS` rows as `(first, last, [master host, port, id, …])`.
fn reply_rows(reply: redis::Value) -> redis::RedisResult<Vec<(u16, u16, Vec<redis::Value>)>> {
    let rows: Vec<Vec<redis::Value>> = redis::from_redis_value(reply)?;
    rows.into_iter()
        .map(|row| {
            let mut it = row.into_iter();
            let first: u16 = redis::from_redis_value(it.next().unwrap_or(redis::Value::Nil))?;
            let last: u16 = redis::from_redis_value(it.next().unwrap_or(redis::Value::Nil))?;
            let master: Vec<redis::Value> =
                redis::from_redis_value(it.next().unwrap_or(redis::Value::Nil))?;
            Ok((first, last, master))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_tag_decides_the_slot() {
        let a = slot_of("ap:{u:42}:timeline");
        let b = slot_of("ap:{u:42}:applied");
        let c = slot_of("other:{u:42}:x");
        assert_eq!(a, b);
        assert_eq!(a, c);
        // CRC16 of "foo" mod 16384, the example of the cluster specification.
        assert_eq!(slot_of("foo"), 12182);
        assert_eq!(slot_of("{}x"), slot_of("{}x"));
        assert_eq!(slot_of("a{b}c"), slot_of("b"));
    }
}
