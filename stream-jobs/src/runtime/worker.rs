//! One worker process's consume–apply loop.
//!
//! Partition ownership comes from leases in Redis ([`super::lease`]), not from a Kafka consumer
//! group: the worker assigns itself exactly the partitions it holds. When it takes a partition
//! it first bumps each job's epoch for it (fencing any previous owner: its next script sees a
//! different epoch and writes nothing), then reads each job's stored offset and starts the
//! partition at the smallest; each job's script skips what it already applied. Kafka's
//! committed offsets are never used.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aperture_schema::keys::Keyspace;
use aperture_schema::{Config, Envelope, Origin, decode};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use super::RuntimeError;
use super::dead_letter::{DeadLetter, DeadLetters};
use super::lease::Leases;
use super::metrics as m;
use super::script::{JobScript, Lane, Outcome, apply_all};
use super::target::{self, Redis, Scripts};
use crate::jobs::Job;

/// Partitions owned, with the worker's lane (epoch, watermark) for each job (in job order).
type Owned = Arc<Mutex<BTreeMap<i32, Vec<Lane>>>>;

/// The partitions a running worker owns, for operators and tests.
#[derive(Debug, Clone)]
pub struct Ownership(Owned);

impl Ownership {
    pub fn partitions(&self) -> Vec<i32> {
        self.0
            .lock()
            .expect("no code panics while holding the lock")
            .keys()
            .copied()
            .collect()
    }
}

/// A worker: applies every given job to each batch of the partitions it holds.
pub struct Worker {
    consumer: BaseConsumer,
    /// A client of its own for the lag gauge's watermark requests, which would otherwise queue
    /// behind the consumer's long-polling fetches on the same connection.
    lag_probe: BaseConsumer,
    client: target::Client,
    redis: Mutex<Option<Redis>>,
    keys: Keyspace,
    topic: String,
    jobs: Vec<JobScript>,
    owned: Owned,
    leases: Leases,
    /// How often leases are renewed (a third of their period).
    renew_every: Duration,
    shutdown: CancellationToken,
    dead_letters: DeadLetters,
    batch_max: usize,
    batch_wait: Duration,
    maintain_every: Duration,
    /// Next offset applied per (job, partition), for the lag gauge.
    applied: Mutex<BTreeMap<(&'static str, i32), i64>>,
}

/// How often the lag gauge asks the broker for high watermarks.
const LAG_PROBE_EVERY: Duration = Duration::from_secs(5);

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("topic", &self.topic)
            .field("worker", &self.leases.worker())
            .finish()
    }
}

impl Worker {
    /// Connects to the broker and Redis and loads the job scripts. Partitions are taken on the
    /// first turn of [`Worker::run`].
    pub fn new(
        config: &Config,
        jobs: Vec<Box<dyn Job>>,
        shutdown: CancellationToken,
    ) -> Result<Worker, RuntimeError> {
        let keys = config.keyspace();
        let jobs: Vec<JobScript> = jobs
            .into_iter()
            .map(|job| JobScript::new(job, config))
            .collect();
        let client = target::Client::new(&config.redis).map_err(RuntimeError::Redis)?;
        let consumer_config = |role: &str| {
            let mut c = ClientConfig::new();
            c.set("bootstrap.servers", &config.kafka.brokers)
                .set("client.id", format!("{}-{role}", config.kafka.client_id))
                .set("broker.address.family", "v4")
                // Partitions are assigned explicitly: librdkafka wants a group id, but no group
                // is joined and nothing is committed.
                .set("group.id", &config.runtime.group_id)
                .set("enable.auto.commit", "false")
                .set("fetch.wait.max.ms", "100");
            c
        };
        let consumer: BaseConsumer = consumer_config("worker")
            .create()
            .map_err(RuntimeError::Kafka)?;
        let lag_probe: BaseConsumer = consumer_config("worker-lag")
            .create()
            .map_err(RuntimeError::Kafka)?;
        let metadata = consumer
            .fetch_metadata(Some(&config.kafka.events_topic), Duration::from_secs(10))
            .map_err(RuntimeError::Kafka)?;
        let partitions = metadata
            .topics()
            .first()
            .map_or(0, |t| t.partitions().len()) as u32;
        if partitions == 0 {
            return Err(RuntimeError::NoTopic(config.kafka.events_topic.clone()));
        }
        let worker_id = format!(
            "{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        );
        let leases = Leases::new(
            &keys,
            &config.runtime.group_id,
            worker_id,
            partitions,
            config.runtime.lease_ttl,
        );
        Ok(Worker {
            consumer,
            lag_probe,
            client,
            redis: Mutex::new(None),
            keys,
            topic: config.kafka.events_topic.clone(),
            jobs,
            owned: Arc::new(Mutex::new(BTreeMap::new())),
            leases,
            renew_every: config.runtime.lease_ttl / 3,
            shutdown,
            dead_letters: DeadLetters::new(&config.kafka).map_err(RuntimeError::Kafka)?,
            batch_max: config.runtime.batch_max_events,
            batch_wait: config.runtime.batch_wait,
            maintain_every: config.stories.sweep_every,
            applied: Mutex::new(BTreeMap::new()),
        })
    }

    /// Partitions this worker owns now.
    pub fn owned_partitions(&self) -> Vec<i32> {
        self.ownership().partitions()
    }

    /// A view of the partitions this worker owns that stays valid while it runs.
    pub fn ownership(&self) -> Ownership {
        Ownership(Arc::clone(&self.owned))
    }

    /// Runs `f` on the Redis connection, reconnecting and retrying with back-off until it
    /// succeeds; `None` only when shutdown was requested meanwhile. A worker without Redis
    /// cannot make progress, and skipping a batch would lose it.
    fn redis<T>(
        &self,
        what: &str,
        mut f: impl FnMut(&mut Redis) -> redis::RedisResult<T>,
    ) -> Option<T> {
        let mut delay = Duration::from_millis(50);
        loop {
            let mut slot = self
                .redis
                .lock()
                .expect("no code panics while holding the lock");
            if slot.is_none() {
                match self.client.connect(Duration::from_secs(5)) {
                    Ok(connection) => *slot = Some(connection),
                    Err(error) => tracing::warn!(%error, what, "redis unreachable; retrying"),
                }
            }
            if let Some(connection) = slot.as_mut() {
                match f(connection) {
                    Ok(value) => return Some(value),
                    Err(error) => {
                        tracing::warn!(%error, what, "redis call failed; retrying");
                        // The next attempt starts on a fresh connection.
                        *slot = None;
                    }
                }
            }
            drop(slot);
            if self.shutdown.is_cancelled() {
                return None;
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }

    /// Consumes and applies until shutdown is requested; the batch in hand is finished first,
    /// then the leases are given back.
    pub fn run(self) -> Result<(), RuntimeError> {
        let mut batch: Vec<OwnedMessage> = Vec::with_capacity(self.batch_max);
        let mut last_probe = Instant::now();
        let mut last_renew: Option<Instant> = None;
        let mut last_maintain = Instant::now();
        while !self.shutdown.is_cancelled() {
            if last_maintain.elapsed() >= self.maintain_every {
                self.maintain();
                last_maintain = Instant::now();
            }
            if last_renew.is_none_or(|t| t.elapsed() >= self.renew_every) {
                self.rebalance();
                last_renew = Some(Instant::now());
            }
            if last_probe.elapsed() >= LAG_PROBE_EVERY {
                self.record_lag();
                last_probe = Instant::now();
            }
            batch.clear();
            self.fill(&mut batch);
            if batch.is_empty() {
                continue;
            }
            let mut by_partition: BTreeMap<i32, Vec<OwnedMessage>> = BTreeMap::new();
            for message in batch.drain(..) {
                by_partition
                    .entry(message.partition())
                    .or_default()
                    .push(message);
            }
            for (partition, messages) in by_partition {
                self.apply_partition(partition, &messages);
            }
        }
        tracing::info!("worker stopping");
        // Give the partitions back now rather than after a lease period.
        if let Ok(mut con) = self.client.connect(Duration::from_secs(2))
            && let Err(error) = con
                .for_key(self.leases.route())
                .and_then(|c| self.leases.resign(c))
        {
            tracing::warn!(%error, "could not give back leases; they expire on their own");
        }
        Ok(())
    }

    /// Runs every job's housekeeping once; a failure is logged and tried again next time.
    fn maintain(&self) {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as i64;
        let Ok(mut con) = self.client.connect(Duration::from_secs(2)) else {
            return;
        };
        for job in &self.jobs {
            let swept = con
                .for_key(&self.keys.pattern())
                .and_then(|c| job.maintain(c, &self.keys, now_ms));
            match swept {
                Ok(0) => {}
                Ok(removed) => tracing::info!(job = job.name(), removed, "swept expired state"),
                Err(error) => tracing::warn!(job = job.name(), %error, "housekeeping failed"),
            }
        }
    }

    /// Renews leases and moves partitions in and out of this worker's assignment.
    fn rebalance(&self) {
        let Some(held) = self.redis("coordinate leases", |con| {
            self.leases.coordinate(con.for_key(self.leases.route())?)
        }) else {
            return;
        };
        let current = self.owned_partitions();
        let lost: Vec<i32> = current
            .iter()
            .copied()
            .filter(|p| !held.contains(&(*p as u32)))
            .collect();
        if !lost.is_empty() {
            let mut tpl = TopicPartitionList::new();
            let mut owned = self
                .owned
                .lock()
                .expect("no code panics while holding the lock");
            for p in &lost {
                owned.remove(p);
                tpl.add_partition(&self.topic, *p);
                tracing::info!(partition = p, "released partition");
            }
            drop(owned);
            if let Err(error) = self.consumer.incremental_unassign(&tpl) {
                tracing::error!(%error, "unassigning partitions failed");
            }
        }
        for p in held {
            let partition = p as i32;
            if current.contains(&partition) {
                continue;
            }
            let Some((lanes, from)) = self.claim(p) else {
                return;
            };
            let mut tpl = TopicPartitionList::new();
            let assigned = tpl
                .add_partition_offset(&self.topic, partition, Offset::Offset(from))
                .and_then(|()| self.consumer.incremental_assign(&tpl));
            if let Err(error) = assigned {
                tracing::error!(%error, partition, "assigning partition failed");
                continue;
            }
            tracing::info!(partition, from, "claimed partition");
            self.owned
                .lock()
                .expect("no code panics while holding the lock")
                .insert(partition, lanes);
        }
    }

    /// Takes one partition for every job: new epochs, and the offset to start from.
    fn claim(&self, partition: u32) -> Option<(Vec<Lane>, i64)> {
        let lanes = self.redis("claim partition", |con| {
            self.jobs
                .iter()
                .map(|job| {
                    let route = self.keys.job_offset(job.name(), partition);
                    job.claim_lane(con.for_key(&route)?, &self.keys, partition)
                })
                .collect::<redis::RedisResult<Vec<Lane>>>()
        })?;
        let from = lanes.iter().map(|l| l.from).min().unwrap_or(0);
        Some((lanes, from))
    }

    fn record_lag(&self) {
        let applied = self
            .applied
            .lock()
            .expect("no panics under the lock")
            .clone();
        let owned = self.owned_partitions();
        for partition in owned {
            let Ok((_, high)) =
                self.lag_probe
                    .fetch_watermarks(&self.topic, partition, Duration::from_secs(2))
            else {
                continue;
            };
            for ((job, p), next) in &applied {
                if *p == partition {
                    metrics::gauge!(m::LAG, "job" => *job, "partition" => partition.to_string())
                        .set((high - next).max(0) as f64);
                }
            }
        }
    }

    /// Polls until `batch_max` messages or `batch_wait` after the first one.
    fn fill(&self, batch: &mut Vec<OwnedMessage>) {
        let mut deadline: Option<Instant> = None;
        while batch.len() < self.batch_max {
            let timeout = match deadline {
                None => Duration::from_millis(200),
                Some(d) => d.saturating_duration_since(Instant::now()),
            };
            match self.consumer.poll(timeout) {
                Some(Ok(message)) => {
                    batch.push(message.detach());
                    deadline.get_or_insert_with(|| Instant::now() + self.batch_wait);
                }
                Some(Err(error)) => {
                    tracing::warn!(%error, "consumer error");
                    return;
                }
                None => return,
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return;
            }
        }
    }

    fn apply_partition(&self, partition: i32, messages: &[OwnedMessage]) {
        let Some(mut lanes) = self
            .owned
            .lock()
            .expect("no panics under the lock")
            .get(&partition)
            .cloned()
        else {
            // Revoked while the batch was in hand: the new owner applies it.
            return;
        };
        let started = Instant::now();
        let mut events: Vec<(i64, Envelope)> = Vec::with_capacity(messages.len());
        let mut dead: Vec<DeadLetter> = Vec::new();
        for message in messages {
            let payload = message.payload().unwrap_or_default();
            match decode(payload, Origin::Topic) {
                Ok(envelope) => events.push((message.offset(), envelope)),
                Err(error) => dead.push(DeadLetter {
                    topic: self.topic.clone(),
                    partition,
                    offset: message.offset(),
                    reason: error.message.clone(),
                    rule: Some(error.rule.as_str().to_owned()),
                    field: error.field.clone(),
                    payload: String::from_utf8_lossy(payload).into_owned(),
                    key: message.key().map(<[u8]>::to_vec),
                }),
            }
        }
        if !dead.is_empty() && !self.send_dead_letters(&dead) {
            return;
        }
        let next_offset = messages.last().map_or(0, |m| m.offset() + 1);
        let refs: Vec<(i64, &Envelope)> = events.iter().map(|(o, e)| (*o, e)).collect();
        let p = partition as u32;
        // Late events go to the dead-letter topic before any script runs, so a crash between
        // the two repeats a dead letter rather than losing an event.
        let splits: Vec<_> = self
            .jobs
            .iter()
            .zip(&lanes)
            .map(|(job, lane)| job.split(lane, &refs))
            .collect();
        for (job, split) in self.jobs.iter().zip(&splits) {
            if split.late.is_empty() {
                continue;
            }
            let late: Vec<DeadLetter> = split
                .late
                .iter()
                .map(|(offset, reason)| {
                    let message = messages
                        .iter()
                        .find(|m| m.offset() == *offset)
                        .expect("a late event comes from this batch");
                    DeadLetter {
                        topic: self.topic.clone(),
                        partition,
                        offset: *offset,
                        reason: reason.clone(),
                        rule: Some("late".to_owned()),
                        field: Some("ts".to_owned()),
                        payload: String::from_utf8_lossy(message.payload().unwrap_or_default())
                            .into_owned(),
                        key: message.key().map(<[u8]>::to_vec),
                    }
                })
                .collect();
            metrics::counter!(m::LATE_EVENTS, "job" => job.name()).increment(late.len() as u64);
            if !self.send_dead_letters(&late) {
                return;
            }
        }
        // Every job's script in one round trip: Redis runs them back to back instead of
        // waiting on the worker between jobs.
        let calls: Vec<_> = self
            .jobs
            .iter()
            .zip(&lanes)
            .zip(&splits)
            .map(|((job, lane), split)| {
                job.call(
                    &self.keys,
                    p,
                    &lane.epoch,
                    &split.kept,
                    next_offset,
                    split.watermark,
                )
            })
            .collect();
        let Some(outcomes) = self.redis("apply batch", |con| apply_all(con, &self.keys, &calls))
        else {
            return;
        };
        for (((job, lane), split), (outcome, records)) in self
            .jobs
            .iter()
            .zip(lanes.iter_mut())
            .zip(&splits)
            .zip(outcomes)
        {
            let name = job.name();
            match outcome {
                Outcome::Applied => {
                    lane.watermark = split.watermark;
                    lane.from = next_offset;
                    metrics::counter!(m::EVENTS_APPLIED, "job" => name, "partition" => partition.to_string())
                        .increment(records as u64);
                }
                Outcome::AlreadyApplied => {
                    // Applied under this epoch already (another owner would have been fenced
                    // first): after a claim, or by an earlier try whose reply was lost, as when
                    // another script of the round trip failed and all were sent again. Its
                    // watermark is the stored one, so later batches judge lateness the same as
                    // a fresh owner would.
                    lane.watermark = split.watermark;
                    lane.from = lane.from.max(next_offset);
                    metrics::counter!(m::BATCHES_SKIPPED, "job" => name).increment(1);
                }
                Outcome::Fenced => {
                    tracing::warn!(
                        job = name,
                        partition,
                        "fenced: another worker owns this partition"
                    );
                    metrics::counter!(m::BATCHES_FENCED, "job" => name).increment(1);
                    self.owned
                        .lock()
                        .expect("no panics under the lock")
                        .remove(&partition);
                    return;
                }
            }
            self.applied
                .lock()
                .expect("no panics under the lock")
                .insert((name, partition), next_offset);
        }
        // Keep the advanced watermarks unless the partition was lost meanwhile.
        if let Some(owned) = self
            .owned
            .lock()
            .expect("no panics under the lock")
            .get_mut(&partition)
            && owned
                .iter()
                .zip(&lanes)
                .all(|(held, new)| held.epoch == new.epoch)
        {
            *owned = lanes;
        }
        metrics::histogram!(m::BATCH_SECONDS).record(started.elapsed().as_secs_f64());
    }

    /// Writes dead letters, retrying until acknowledged; false only on shutdown.
    fn send_dead_letters(&self, dead: &[DeadLetter]) -> bool {
        let mut delay = Duration::from_millis(100);
        loop {
            match self.dead_letters.send(dead) {
                Ok(()) => {
                    metrics::counter!(m::DEAD_LETTERS).increment(dead.len() as u64);
                    // One line per batch: a burst of bad or late input must not flood the log.
                    if let Some(first) = dead.first() {
                        tracing::warn!(
                            count = dead.len(),
                            partition = first.partition,
                            offset = first.offset,
                            reason = %first.reason,
                            "dead letters (the first shown)"
                        );
                    }
                    return true;
                }
                Err(error) => tracing::warn!(%error, "dead-letter topic unavailable; retrying"),
            }
            if self.shutdown.is_cancelled() {
                return false;
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }
}
