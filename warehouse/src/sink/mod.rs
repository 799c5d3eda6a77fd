//! The sink job: the events topic into Parquet, exactly once (the protocol is in the crate
//! docs).
//!
//! - [`buffer`]: events waiting for the next commit, per (table, day), and when to roll.
//! - [`commit`]: one commit: files, manifest, renames, in that order.
//! - this module: the consume loop, with every partition assigned explicitly at the
//!   manifest's offsets, decoding, rolling and graceful shutdown.
//!
//! The sink owns every partition of the topic. A consumer group would resume from Kafka's
//! committed offsets, which are not written together with the files; the manifest's offsets
//! are. Scaling out means one root per sink; the lock in `_sink/` refuses a second sink on a
//! root, so two live sinks never commit the same records.

pub mod buffer;
pub mod commit;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aperture_schema::warehouse::{Table, day_of};
use aperture_schema::{Config, Origin, decode};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::error::WarehouseError;
use crate::fs::Lock;
use crate::manifest::Manifest;
use crate::metrics as m;
use crate::object::Root;
use crate::object::sink::ObjectSink;
use crate::recover::open_for_sink;
use buffer::Buffer;
use commit::Committed;

/// How long one poll waits for a record: bounds how late a shutdown or a time roll is noticed.
const POLL: Duration = Duration::from_millis(100);
/// How often the topic's metadata is read again, for partitions added while running and for
/// the lag gauge.
const METADATA_EVERY: Duration = Duration::from_secs(10);
/// How long a metadata or watermark request may take.
const BROKER_TIMEOUT: Duration = Duration::from_secs(10);
/// Skip reason of a valid event whose time has no warehouse day (before 1970 or after 9999):
/// no `dt=YYYY-MM-DD` folder can hold it.
pub const TS_OUT_OF_RANGE: &str = "ts_out_of_range";

/// What a sink did before it stopped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub commits: u64,
    pub rows: u64,
    pub skipped: u64,
}

/// Counters of a running sink, readable from another thread (tests, operators).
#[derive(Debug, Clone, Default)]
pub struct Progress {
    consumed: Arc<AtomicU64>,
    commits: Arc<AtomicU64>,
}

impl Progress {
    /// Records read from the topic since the sink started.
    pub fn consumed(&self) -> u64 {
        self.consumed.load(Ordering::Relaxed)
    }

    /// Commits made since the sink started.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }
}

/// The sink: consumes every partition of the events topic into the warehouse root.
pub struct Sink {
    consumer: BaseConsumer,
    target: Target,
    topic: String,
    manifest: Manifest,
    intake: Intake,
    roll_size: u64,
    roll_interval: Duration,
    row_group_size: usize,
    shutdown: CancellationToken,
    summary: Summary,
}

/// The root the sink writes, and its hold on it.
#[derive(Debug)]
enum Target {
    /// A folder, with the lock held for the sink's life: one sink per root.
    Local { root: PathBuf, _lock: Lock },
    /// A prefix in an object store, taken by the sink's token in the manifest.
    Object(Box<ObjectSink>),
}

impl Target {
    fn display(&self) -> String {
        match self {
            Target::Local { root, .. } => root.display().to_string(),
            Target::Object(sink) => sink.root().url().to_string(),
        }
    }
}

/// What the sink has read and not yet committed.
#[derive(Debug)]
struct Intake {
    buffer: Buffer,
    /// Next offset per partition, including what the buffer holds.
    next: BTreeMap<i32, i64>,
    progress: Progress,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink")
            .field("root", &self.target.display())
            .field("topic", &self.topic)
            .field("commit", &self.manifest.commit)
            .finish()
    }
}

/// Opens the sink and runs it until `shutdown` (blocking: call from a thread of its own).
pub fn run(config: &Config, shutdown: CancellationToken) -> Result<Summary, WarehouseError> {
    Sink::open(config, shutdown)?.run()
}

/// Opens the sink and runs it until every partition is read up to where it ended when the sink
/// started, then commits and returns: a backfill, or a batch load after the events are on the
/// topic. `shutdown` still stops it early, committing what is buffered.
pub fn drain(config: &Config, shutdown: CancellationToken) -> Result<Summary, WarehouseError> {
    Sink::open(config, shutdown)?.drain()
}

/// Writes `events` into the warehouse at `root` as one commit, without reading a topic: for
/// fixtures, golden tests and benchmarks. The manifest records `source` as the root's topic
/// (so a sink of a real topic refuses the root) and no offsets. Events without a warehouse day,
/// and repeats of an event id, are skipped and counted, as the sink does.
pub fn write_events(
    root: &std::path::Path,
    source: &str,
    events: Vec<aperture_schema::Envelope>,
    row_group_size: usize,
) -> Result<Committed, WarehouseError> {
    let (_lock, mut manifest, _) = open_for_sink(root, source)?;
    let mut buffer = Buffer::default();
    for event in events {
        match day_of(event.ts) {
            Some(day) => {
                let size = event.event_id.len() + 64;
                if !buffer.push(Table::of(event.kind()), day, event, size) {
                    buffer.skip(buffer::DUPLICATE);
                }
            }
            None => buffer.skip(TS_OUT_OF_RANGE),
        }
    }
    let offsets = manifest.offsets.clone();
    commit::commit(root, row_group_size, &mut manifest, buffer.take(), &offsets)
}

impl Sink {
    /// Connects to the broker, takes the root (lock, manifest, repairs) and assigns every
    /// partition at the manifest's offsets.
    pub fn open(config: &Config, shutdown: CancellationToken) -> Result<Sink, WarehouseError> {
        let kafka = &config.kafka;
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &kafka.brokers)
            .set("client.id", format!("{}-warehouse-sink", kafka.client_id))
            .set("broker.address.family", "v4")
            // Partitions are assigned explicitly: librdkafka wants a group id, but no group is
            // joined and nothing is committed to Kafka.
            .set("group.id", format!("{}-warehouse-sink", kafka.client_id))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            // Only for a partition whose records before the manifest's offset were deleted by
            // retention (logged at start): there is nothing else to resume from.
            .set("auto.offset.reset", "earliest")
            .set("fetch.wait.max.ms", "100")
            .create()?;
        let topic = kafka.events_topic.clone();
        let partitions = partitions_of(&consumer, &topic)?;
        if partitions.is_empty() {
            return Err(WarehouseError::NoTopic(topic));
        }
        let (target, manifest, repairs) = match Root::parse(&config.warehouse.root)? {
            Root::Local(root) => {
                let (lock, manifest, repairs) = open_for_sink(&root, &topic)?;
                (Target::Local { root, _lock: lock }, manifest, repairs)
            }
            Root::Object(root) => {
                let (sink, manifest, repairs) = ObjectSink::open(root, &topic)?;
                (Target::Object(Box::new(sink)), manifest, repairs)
            }
        };
        tracing::info!(
            root = %target.display(),
            commit = manifest.commit,
            completed = repairs.completed.len(),
            deleted = repairs.deleted.len(),
            swap_finished = repairs.swap_finished,
            "warehouse root open"
        );
        let mut sink = Sink {
            consumer,
            target,
            intake: Intake {
                buffer: Buffer::default(),
                next: manifest.offsets.clone(),
                progress: Progress::default(),
            },
            manifest,
            topic,
            roll_size: config.warehouse.roll_size,
            roll_interval: config.warehouse.roll_interval,
            row_group_size: config.warehouse.row_group_size,
            shutdown,
            summary: Summary::default(),
        };
        sink.assign(&partitions)?;
        Ok(sink)
    }

    /// Counters that stay readable while the sink runs.
    pub fn progress(&self) -> Progress {
        self.intake.progress.clone()
    }

    /// Assigns the partitions not assigned yet, each at its manifest offset.
    fn assign(&mut self, partitions: &[i32]) -> Result<(), WarehouseError> {
        let assigned: Vec<i32> = self
            .consumer
            .assignment()?
            .elements()
            .iter()
            .map(|e| e.partition())
            .collect();
        let mut tpl = TopicPartitionList::new();
        for &partition in partitions.iter().filter(|p| !assigned.contains(p)) {
            let (low, high) =
                self.consumer
                    .fetch_watermarks(&self.topic, partition, BROKER_TIMEOUT)?;
            let offset = match self.manifest.offsets.get(&partition) {
                Some(&offset) if offset > high => {
                    return Err(WarehouseError::OffsetBeyondEnd {
                        topic: self.topic.clone(),
                        partition,
                        offset,
                        high,
                    });
                }
                Some(&offset) => {
                    if offset < low {
                        tracing::warn!(
                            partition,
                            offset,
                            low,
                            "records before the partition's start were deleted before the \
                             sink read them; resuming at the start"
                        );
                    }
                    Offset::Offset(offset)
                }
                // A partition the sink has never read: from its first record.
                None => Offset::Beginning,
            };
            tpl.add_partition_offset(&self.topic, partition, offset)?;
            tracing::info!(partition, ?offset, "assigned partition");
        }
        if tpl.count() > 0 {
            self.consumer.incremental_assign(&tpl)?;
        }
        Ok(())
    }

    /// Consumes and commits until shutdown is requested, then commits what is buffered.
    pub fn run(self) -> Result<Summary, WarehouseError> {
        self.consume(None)
    }

    /// Consumes and commits until every partition is read up to its end as of now (or shutdown
    /// is requested), then commits what is buffered.
    pub fn drain(self) -> Result<Summary, WarehouseError> {
        let mut ends = BTreeMap::new();
        for partition in partitions_of(&self.consumer, &self.topic)? {
            let (_, high) =
                self.consumer
                    .fetch_watermarks(&self.topic, partition, BROKER_TIMEOUT)?;
            ends.insert(partition, high);
        }
        tracing::info!(?ends, "draining the topic up to these offsets");
        self.consume(Some(ends))
    }

    /// Whether every partition's next offset has reached `ends`. The consumer's position is
    /// asked too: it moves past records the sink never sees (transaction markers).
    fn reached(&self, ends: &BTreeMap<i32, i64>) -> Result<bool, WarehouseError> {
        let position = self.consumer.position()?;
        Ok(ends.iter().all(|(&partition, &end)| {
            let read = self.intake.next.get(&partition).copied().unwrap_or(0);
            let fetched = position
                .find_partition(&self.topic, partition)
                .and_then(|e| match e.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                })
                .unwrap_or(0);
            read.max(fetched) >= end
        }))
    }

    fn consume(mut self, ends: Option<BTreeMap<i32, i64>>) -> Result<Summary, WarehouseError> {
        let mut last_metadata = Instant::now();
        while !self.shutdown.is_cancelled() {
            if let Some(ends) = &ends
                && self.reached(ends)?
            {
                break;
            }
            if last_metadata.elapsed() >= METADATA_EVERY {
                self.refresh()?;
                last_metadata = Instant::now();
            }
            match self.consumer.poll(POLL) {
                Some(Ok(message)) => self.intake.take(&message),
                Some(Err(error)) => tracing::warn!(%error, "consumer error"),
                None => {}
            }
            if self
                .intake
                .buffer
                .should_roll(self.roll_size, self.roll_interval)
            {
                self.commit()?;
            }
        }
        if !self.intake.buffer.is_empty() {
            self.commit()?;
        }
        tracing::info!(
            commits = self.summary.commits,
            rows = self.summary.rows,
            skipped = self.summary.skipped,
            "sink stopped"
        );
        Ok(self.summary)
    }

    fn commit(&mut self) -> Result<Committed, WarehouseError> {
        let taken = self.intake.buffer.take();
        let committed = match &self.target {
            Target::Local { root, .. } => commit::commit(
                root,
                self.row_group_size,
                &mut self.manifest,
                taken,
                &self.intake.next,
            )?,
            Target::Object(sink) => sink.commit(
                self.row_group_size,
                &mut self.manifest,
                taken,
                &self.intake.next,
            )?,
        };
        self.summary.commits += 1;
        self.summary.rows += committed.rows;
        self.summary.skipped += committed.skipped;
        self.intake.progress.commits.fetch_add(1, Ordering::Relaxed);
        metrics::gauge!(m::BUFFERED_BYTES).set(0.0);
        tracing::debug!(
            commit = committed.commit,
            files = committed.files,
            rows = committed.rows,
            bytes = committed.bytes,
            elapsed = ?committed.elapsed,
            "committed"
        );
        Ok(committed)
    }

    /// Assigns partitions added to the topic and updates the lag gauge.
    fn refresh(&mut self) -> Result<(), WarehouseError> {
        let partitions = match partitions_of(&self.consumer, &self.topic) {
            Ok(p) => p,
            Err(error) => {
                tracing::warn!(%error, "could not read the topic's metadata; trying again later");
                return Ok(());
            }
        };
        self.assign(&partitions)?;
        for partition in partitions {
            if let Ok((_, high)) =
                self.consumer
                    .fetch_watermarks(&self.topic, partition, BROKER_TIMEOUT)
            {
                let next = self.intake.next.get(&partition).copied().unwrap_or(0);
                metrics::gauge!(m::LAG, "partition" => partition.to_string())
                    .set((high - next).max(0) as f64);
            }
        }
        Ok(())
    }
}

impl Intake {
    /// Takes one record into the buffer, or counts it as skipped.
    fn take(&mut self, message: &BorrowedMessage<'_>) {
        let partition = message.partition();
        let offset = message.offset();
        if self.next.get(&partition).is_some_and(|&next| offset < next) {
            // Already read (a broker handing back an earlier offset): never twice.
            return;
        }
        self.next.insert(partition, offset + 1);
        self.progress.consumed.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(m::RECORDS_CONSUMED).increment(1);
        let payload = message.payload().unwrap_or_default();
        // The stream runtime dead-letters the same records with the reason; here they are
        // only counted, so a poison message is reported once.
        match decode(payload, Origin::Topic) {
            Ok(envelope) => match day_of(envelope.ts) {
                Some(day) => {
                    let table = Table::of(envelope.kind());
                    if !self.buffer.push(table, day, envelope, payload.len()) {
                        self.skip(buffer::DUPLICATE, partition, offset);
                    }
                }
                None => self.skip(TS_OUT_OF_RANGE, partition, offset),
            },
            Err(error) => self.skip(error.rule.as_str(), partition, offset),
        }
        metrics::gauge!(m::BUFFERED_BYTES).set(self.buffer.bytes() as f64);
    }

    fn skip(&mut self, reason: &'static str, partition: i32, offset: i64) {
        tracing::debug!(
            partition,
            offset,
            reason,
            "skipped a record that is not a row"
        );
        metrics::counter!(m::EVENTS_SKIPPED, "reason" => reason).increment(1);
        self.buffer.skip(reason);
    }
}

fn partitions_of(consumer: &BaseConsumer, topic: &str) -> Result<Vec<i32>, WarehouseError> {
    let metadata = consumer.fetch_metadata(Some(topic), BROKER_TIMEOUT)?;
    Ok(metadata
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect())
}
