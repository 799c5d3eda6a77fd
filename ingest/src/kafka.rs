//! The Kafka side of ingest: client configuration, topic creation and the bounded producer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aperture_schema::config::KafkaConfig;
use aperture_schema::topics::{PARTITIONER, partition_key};
use aperture_schema::{Config, Envelope};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics as m;

/// Why a Kafka operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KafkaOpError {
    #[error("could not create the Kafka client: {0}")]
    Client(#[source] KafkaError),
    #[error("could not create topic {topic}: {code}")]
    CreateTopic {
        topic: String,
        code: RDKafkaErrorCode,
    },
    #[error("the broker did not answer: {0}")]
    Unreachable(#[source] KafkaError),
    #[error("{missing} records did not arrive in time")]
    Timeout { missing: usize },
}

/// Base client configuration shared by producers, consumers and admin clients.
pub fn client_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &kafka.brokers)
        .set("client.id", &kafka.client_id)
        // The default broker advertises 127.0.0.1; a v4-only resolver avoids ::1 attempts.
        .set("broker.address.family", "v4");
    c
}

/// Producer configuration: idempotent, acknowledged by all replicas, partitioned like the Java
/// client so [`aperture_schema::topics::partition_for`] names the partition of every key.
pub fn producer_config(kafka: &KafkaConfig) -> ClientConfig {
    let p = &kafka.producer;
    let mut c = client_config(kafka);
    c.set("enable.idempotence", "true")
        .set("acks", "all")
        .set("partitioner", PARTITIONER)
        .set("linger.ms", p.linger.as_millis().to_string())
        .set(
            "queue.buffering.max.messages",
            p.queue_max_messages.to_string(),
        )
        .set(
            "message.timeout.ms",
            p.message_timeout.as_millis().to_string(),
        )
        .set("compression.type", p.compression.as_str());
    c
}

/// Creates the events and dead-letter topics when they are missing. Existing topics are left
/// as they are (a partition count that differs from configuration is logged, not changed).
pub async fn ensure_topics(config: &Config) -> Result<(), KafkaOpError> {
    let kafka = &config.kafka;
    ensure_topic_names(kafka, &[&kafka.events_topic, &kafka.dead_letter_topic]).await
}

/// Creates the named topics with the configured partitions and replication when missing.
pub async fn ensure_topic_names(kafka: &KafkaConfig, names: &[&str]) -> Result<(), KafkaOpError> {
    let admin: AdminClient<DefaultClientContext> = client_config(kafka)
        .create()
        .map_err(KafkaOpError::Client)?;
    let topics: Vec<NewTopic<'_>> = names
        .iter()
        .map(|name| {
            NewTopic::new(
                name,
                kafka.partitions as i32,
                TopicReplication::Fixed(i32::from(kafka.replication_factor)),
            )
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .create_topics(topics.iter(), &opts)
        .await
        .map_err(KafkaOpError::Unreachable)?;
    for result in results {
        match result {
            Ok(topic) => tracing::info!(topic, partitions = kafka.partitions, "created topic"),
            Err((topic, RDKafkaErrorCode::TopicAlreadyExists)) => {
                tracing::debug!(topic, "topic exists")
            }
            Err((topic, code)) => return Err(KafkaOpError::CreateTopic { topic, code }),
        }
    }
    Ok(())
}

/// An idempotent producer with admission control: at most `queue.buffering.max.messages`
/// events in flight, so a slow broker turns into `503 Retry-After`, never an unbounded buffer.
#[derive(Clone)]
pub struct EventProducer {
    producer: FutureProducer,
    topic: Arc<str>,
    /// One permit per event in flight; sized to the producer queue so librdkafka's own queue
    /// never fills first.
    in_flight: Arc<Semaphore>,
}

impl std::fmt::Debug for EventProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventProducer")
            .field("topic", &self.topic)
            .field("available", &self.in_flight.available_permits())
            .finish()
    }
}

/// Where an acknowledged event was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    pub partition: i32,
    pub offset: i64,
}

/// Why one event was not stored.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProduceError {
    /// The producer queue is full right now; retry later.
    #[error("the producer queue is full")]
    QueueFull,
    /// The broker did not acknowledge the event before the delivery deadline.
    #[error("delivery failed: {0}")]
    Delivery(String),
}

/// Events admitted into the producer, waiting for their acknowledgements.
pub struct Admission {
    _permit: OwnedSemaphorePermit,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Admission")
    }
}

impl EventProducer {
    pub fn new(kafka: &KafkaConfig) -> Result<Self, KafkaOpError> {
        let producer: FutureProducer = producer_config(kafka)
            .create()
            .map_err(KafkaOpError::Client)?;
        Ok(EventProducer {
            producer,
            topic: Arc::from(kafka.events_topic.as_str()),
            in_flight: Arc::new(Semaphore::new(kafka.producer.queue_max_messages as usize)),
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Reserves room for `n` events, or `None` when the producer is too full to take them now.
    pub fn admit(&self, n: usize) -> Option<Admission> {
        let n = u32::try_from(n).ok()?;
        Arc::clone(&self.in_flight)
            .try_acquire_many_owned(n)
            .ok()
            .map(|permit| Admission { _permit: permit })
    }

    /// Enqueues one event, keyed by its actor; the returned future resolves on acknowledgement.
    pub fn enqueue(&self, envelope: &Envelope) -> Result<DeliveryFuture, ProduceError> {
        let key = partition_key(envelope.actor_id);
        let payload = envelope.to_json();
        let record = FutureRecord::to(&self.topic).key(&key).payload(&payload);
        self.producer
            .send_result(record)
            .map_err(|(error, _)| match error {
                KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull) => {
                    ProduceError::QueueFull
                }
                other => ProduceError::Delivery(other.to_string()),
            })
    }

    /// Sends a batch of events and waits for every acknowledgement; the results are in input
    /// order. The caller holds an [`Admission`] for the batch.
    pub async fn send_all(&self, envelopes: &[Envelope]) -> Vec<Result<Stored, ProduceError>> {
        let started = Instant::now();
        let pending: Vec<_> = envelopes.iter().map(|e| self.enqueue(e)).collect();
        let mut results = Vec::with_capacity(pending.len());
        for p in pending {
            results.push(match p {
                Ok(delivery) => await_delivery(delivery).await,
                Err(e) => Err(e),
            });
        }
        let elapsed = started.elapsed().as_secs_f64();
        metrics::histogram!(m::PRODUCE_LATENCY_SECONDS).record(elapsed);
        results
    }

    /// Asks the broker for the events topic's metadata: the health check.
    pub async fn probe(&self, timeout: Duration) -> Result<usize, KafkaOpError> {
        let producer = self.producer.clone();
        let topic = Arc::clone(&self.topic);
        let probe = tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(Some(&topic), timeout)
                .map(|md| md.topics().first().map_or(0, |t| t.partitions().len()))
                .map_err(KafkaOpError::Unreachable)
        });
        match probe.await {
            Ok(result) => result,
            Err(join) => {
                tracing::error!(%join, "metadata probe task failed");
                Err(KafkaOpError::Unreachable(KafkaError::Canceled))
            }
        }
    }

    /// Waits up to `timeout` for every queued event to be acknowledged (used at shutdown).
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.producer.flush(timeout)
    }
}

async fn await_delivery(delivery: DeliveryFuture) -> Result<Stored, ProduceError> {
    match delivery.await {
        Ok(Ok(d)) => Ok(Stored {
            partition: d.partition,
            offset: d.offset,
        }),
        Ok(Err((error, _))) => Err(ProduceError::Delivery(error.to_string())),
        Err(_canceled) => Err(ProduceError::Delivery(
            "the producer shut down before the broker answered".into(),
        )),
    }
}

/// One record read back from a topic.
#[derive(Debug, Clone)]
pub struct TopicRecord {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
}

/// Low and high watermark of one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watermarks {
    pub partition: i32,
    pub low: i64,
    pub high: i64,
}

fn reader(kafka: &KafkaConfig) -> Result<BaseConsumer, KafkaOpError> {
    client_config(kafka)
        // Assigned explicitly, never subscribed: the group id is required by librdkafka but no
        // group is joined and nothing is committed.
        .set("group.id", format!("{}-reader", kafka.client_id))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .map_err(KafkaOpError::Client)
}

/// Watermarks of every partition of `topic` (blocking).
pub fn watermarks(
    kafka: &KafkaConfig,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<Watermarks>, KafkaOpError> {
    let consumer = reader(kafka)?;
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(KafkaOpError::Unreachable)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    partitions
        .into_iter()
        .map(|partition| {
            let (low, high) = consumer
                .fetch_watermarks(topic, partition, timeout)
                .map_err(KafkaOpError::Unreachable)?;
            Ok(Watermarks {
                partition,
                low,
                high,
            })
        })
        .collect()
}

/// Reads the records appended to `topic` between two snapshots of its watermarks: from each
/// partition's high watermark in `before` up to (excluding) its high watermark in `after`
/// (blocking). Fails when they do not all arrive within `timeout`.
pub fn read_between(
    kafka: &KafkaConfig,
    topic: &str,
    before: &[Watermarks],
    after: &[Watermarks],
    timeout: Duration,
) -> Result<Vec<TopicRecord>, KafkaOpError> {
    let consumer = reader(kafka)?;
    let mut assignment = TopicPartitionList::new();
    let mut remaining = 0i64;
    let mut end = std::collections::HashMap::new();
    for start in before {
        let stop = after
            .iter()
            .find(|w| w.partition == start.partition)
            .map_or(start.high, |w| w.high);
        if stop > start.high {
            assignment
                .add_partition_offset(topic, start.partition, Offset::Offset(start.high))
                .map_err(KafkaOpError::Unreachable)?;
            remaining += stop - start.high;
            end.insert(start.partition, stop);
        }
    }
    let mut records = Vec::with_capacity(usize::try_from(remaining).unwrap_or(0));
    if remaining == 0 {
        return Ok(records);
    }
    consumer
        .assign(&assignment)
        .map_err(KafkaOpError::Unreachable)?;
    let deadline = Instant::now() + timeout;
    while records.len() < records.capacity() && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) if m.offset() < end.get(&m.partition()).copied().unwrap_or(0) => {
                records.push(TopicRecord {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(<[u8]>::to_vec),
                    payload: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                });
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(KafkaOpError::Unreachable(e)),
            None => {}
        }
    }
    if records.len() < records.capacity() {
        return Err(KafkaOpError::Timeout {
            missing: records.capacity() - records.len(),
        });
    }
    Ok(records)
}
