//! One worker process's consume–apply loop, and the rebalance handling that claims partitions.
//!
//! Partition ownership comes from a Kafka consumer group: the broker's group coordinator
//! splits the partitions among live workers and moves them when one dies. What Kafka does not
//! give is fencing and resume-from-our-state, so on every assignment the worker, before it
//! reads a record:
//!
//! 1. bumps each job's epoch for the partition in Redis (`INCR`), which fences any previous
//!    owner: its next script sees a different epoch and writes nothing;
//! 2. reads each job's stored offset and starts the partition at the smallest of them; each
//!    job's script then skips what it already applied.
//!
//! Kafka's committed offsets are never used.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aperture_schema::keys::Keyspace;
use aperture_schema::{Config, Envelope, Origin, decode};
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use super::RuntimeError;
use super::dead_letter::{DeadLetter, DeadLetters};
use super::metrics as m;
use super::script::{JobScript, Outcome};
use crate::jobs::Job;

/// What the consume loop and the rebalance callback share.
struct Shared {
    client: redis::Client,
    redis: Mutex<Option<redis::Connection>>,
    keys: Keyspace,
    topic: String,
    jobs: Vec<JobScript>,
    /// Partitions this worker owns, with its epoch for each job (in `jobs` order).
    owned: Mutex<BTreeMap<i32, Vec<String>>>,
    shutdown: CancellationToken,
}

impl Shared {
    /// Runs `f` on the Redis connection, reconnecting and retrying with back-off until it
    /// succeeds; `None` only when shutdown was requested meanwhile. A worker without Redis
    /// cannot make progress, and skipping the batch would lose it.
    fn redis<T>(
        &self,
        what: &str,
        mut f: impl FnMut(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Option<T> {
        let mut delay = Duration::from_millis(50);
        loop {
            let mut slot = self
                .redis
                .lock()
                .expect("no code panics while holding the lock");
            if slot.is_none() {
                match self
                    .client
                    .get_connection_with_timeout(Duration::from_secs(5))
                {
                    Ok(connection) => *slot = Some(connection),
                    Err(error) => tracing::warn!(%error, what, "redis unreachable; retrying"),
                }
            }
            if let Some(connection) = slot.as_mut() {
                match f(connection) {
                    Ok(value) => return Some(value),
                    Err(error) => {
                        tracing::warn!(%error, what, "redis call failed; retrying");
                        // Start the next attempt on a fresh connection.
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

    /// Claims newly assigned partitions: new epochs, and the offset to start each from.
    fn claim(&self, assigned: &TopicPartitionList) -> TopicPartitionList {
        let mut start = TopicPartitionList::new();
        for element in assigned.elements() {
            let partition = element.partition();
            let p = partition as u32;
            let claimed = self.redis("claim partition", |con| {
                let mut epochs = Vec::with_capacity(self.jobs.len());
                let mut offsets = Vec::with_capacity(self.jobs.len());
                for job in &self.jobs {
                    let (epoch, offset) = job.claim(con, &self.keys, p)?;
                    epochs.push(epoch);
                    offsets.push(offset);
                }
                Ok((epochs, offsets))
            });
            let Some((epochs, offsets)) = claimed else {
                continue;
            };
            let from = offsets.iter().copied().min().unwrap_or(0);
            tracing::info!(partition, from, "claimed partition");
            if let Err(error) =
                start.add_partition_offset(&self.topic, partition, Offset::Offset(from))
            {
                tracing::error!(%error, partition, "cannot start partition");
                continue;
            }
            self.owned
                .lock()
                .expect("no panics under the lock")
                .insert(partition, epochs);
        }
        start
    }

    fn release(&self, revoked: &TopicPartitionList) {
        let mut owned = self.owned.lock().expect("no panics under the lock");
        for element in revoked.elements() {
            owned.remove(&element.partition());
            tracing::info!(partition = element.partition(), "released partition");
        }
    }
}

struct WorkerContext {
    shared: Arc<Shared>,
}

impl ClientContext for WorkerContext {}

impl ConsumerContext for WorkerContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let start = self.shared.claim(tpl);
                if let Err(error) = consumer.assign(&start) {
                    tracing::error!(%error, "assigning partitions failed");
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                self.shared.release(tpl);
                if let Err(error) = consumer.unassign() {
                    tracing::error!(%error, "unassigning partitions failed");
                }
            }
            other => {
                tracing::error!(error = ?other, "rebalance failed; dropping every partition");
                self.shared.release(tpl);
                let _ = consumer.unassign();
            }
        }
    }
}

/// A worker: one consumer in the group, applying every given job to each partition batch.
pub struct Worker {
    consumer: BaseConsumer<WorkerContext>,
    shared: Arc<Shared>,
    dead_letters: DeadLetters,
    batch_max: usize,
    batch_wait: Duration,
    /// Next offset applied per (job, partition), for the lag gauge.
    applied: Mutex<BTreeMap<(&'static str, i32), i64>>,
}

/// How often the lag gauge asks the broker for high watermarks.
const LAG_PROBE_EVERY: Duration = Duration::from_secs(5);

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("topic", &self.shared.topic)
            .finish()
    }
}

impl Worker {
    /// Connects to the broker and Redis, loads the job scripts and joins the consumer group.
    pub fn new(
        config: &Config,
        jobs: Vec<Box<dyn Job>>,
        shutdown: CancellationToken,
    ) -> Result<Worker, RuntimeError> {
        let keys = config.keyspace();
        let jobs: Vec<JobScript> = jobs
            .into_iter()
            .map(|job| JobScript::new(job, &keys, &config.fanout))
            .collect();
        let client = redis::Client::open(config.redis.url.as_str()).map_err(RuntimeError::Redis)?;
        let shared = Arc::new(Shared {
            client,
            redis: Mutex::new(None),
            keys,
            topic: config.kafka.events_topic.clone(),
            jobs,
            owned: Mutex::new(BTreeMap::new()),
            shutdown,
        });
        let consumer: BaseConsumer<WorkerContext> = ClientConfig::new()
            .set("bootstrap.servers", &config.kafka.brokers)
            .set("client.id", format!("{}-worker", config.kafka.client_id))
            .set("broker.address.family", "v4")
            .set("group.id", &config.runtime.group_id)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set(
                "session.timeout.ms",
                config.runtime.session_timeout.as_millis().to_string(),
            )
            .set(
                "heartbeat.interval.ms",
                (config.runtime.session_timeout.as_millis() / 3).to_string(),
            )
            .set("partition.assignment.strategy", "roundrobin")
            .create_with_context(WorkerContext {
                shared: Arc::clone(&shared),
            })
            .map_err(RuntimeError::Kafka)?;
        consumer
            .subscribe(&[&config.kafka.events_topic])
            .map_err(RuntimeError::Kafka)?;
        Ok(Worker {
            consumer,
            shared,
            dead_letters: DeadLetters::new(&config.kafka).map_err(RuntimeError::Kafka)?,
            batch_max: config.runtime.batch_max_events,
            batch_wait: config.runtime.batch_wait,
            applied: Mutex::new(BTreeMap::new()),
        })
    }

    /// Partitions this worker owns now.
    pub fn owned_partitions(&self) -> Vec<i32> {
        self.shared
            .owned
            .lock()
            .expect("no panics under the lock")
            .keys()
            .copied()
            .collect()
    }

    /// Consumes and applies until shutdown is requested; the batch in hand is finished first.
    pub fn run(self) -> Result<(), RuntimeError> {
        let mut batch: Vec<OwnedMessage> = Vec::with_capacity(self.batch_max);
        let mut last_probe = Instant::now();
        while !self.shared.shutdown.is_cancelled() {
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
        self.consumer.unsubscribe();
        Ok(())
    }

    fn record_lag(&self) {
        let applied = self
            .applied
            .lock()
            .expect("no panics under the lock")
            .clone();
        let owned = self.owned_partitions();
        for partition in owned {
            let Ok((_, high)) = self.consumer.fetch_watermarks(
                &self.shared.topic,
                partition,
                Duration::from_millis(500),
            ) else {
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
        let Some(epochs) = self
            .shared
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
                    topic: self.shared.topic.clone(),
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
        for (job, epoch) in self.shared.jobs.iter().zip(&epochs) {
            let name = job.name();
            let applied = self.shared.redis("apply batch", |con| {
                job.apply(con, &self.shared.keys, p, epoch, &refs, next_offset)
            });
            let Some((outcome, records)) = applied else {
                return;
            };
            match outcome {
                Outcome::Applied => {
                    metrics::counter!(m::EVENTS_APPLIED, "job" => name, "partition" => partition.to_string())
                        .increment(records as u64);
                }
                Outcome::AlreadyApplied => {
                    metrics::counter!(m::BATCHES_SKIPPED, "job" => name).increment(1);
                }
                Outcome::Fenced => {
                    tracing::warn!(
                        job = name,
                        partition,
                        "fenced: another worker owns this partition"
                    );
                    metrics::counter!(m::BATCHES_FENCED, "job" => name).increment(1);
                    self.shared
                        .owned
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
        metrics::histogram!(m::BATCH_SECONDS).record(started.elapsed().as_secs_f64());
    }

    /// Writes dead letters, retrying until acknowledged; false only on shutdown.
    fn send_dead_letters(&self, dead: &[DeadLetter]) -> bool {
        let mut delay = Duration::from_millis(100);
        loop {
            match self.dead_letters.send(dead) {
                Ok(()) => {
                    metrics::counter!(m::DEAD_LETTERS).increment(dead.len() as u64);
                    for d in dead {
                        tracing::warn!(partition = d.partition, offset = d.offset, reason = %d.reason, "dead letter");
                    }
                    return true;
                }
                Err(error) => tracing::warn!(%error, "dead-letter topic unavailable; retrying"),
            }
            if self.shared.shutdown.is_cancelled() {
                return false;
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }
}
