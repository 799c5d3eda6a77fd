//! Shared by the stream-job tests: configuration with a topic, group and key prefix of the
//! test's own (real broker, real Redis, endpoints from the environment), producing events,
//! running workers in threads, waiting for catch-up, and dumping a prefix's Redis state.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aperture_ingest::generate::sink;
use aperture_ingest::kafka;
use aperture_schema::{Config, Envelope};
use aperture_stream_jobs::jobs;
use aperture_stream_jobs::runtime;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use tokio_util::sync::CancellationToken;

pub fn unique(name: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{name}-{nanos}")
}

pub fn test_config(name: &str, partitions: u32) -> Config {
    let mut c = Config::load(None).expect("test configuration is valid");
    let id = unique(name);
    c.kafka.events_topic = format!("test.{id}");
    c.kafka.dead_letter_topic = format!("test.{id}.dlq");
    c.kafka.partitions = partitions;
    c.runtime.group_id = format!("test-{id}");
    c.redis.key_prefix = format!("t-{id}");
    c
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

pub fn create_topics(config: &Config) {
    block_on(kafka::ensure_topics(config)).expect("topics can be created");
}

/// Produces events keyed by actor, in the given order, and waits for every acknowledgement.
pub fn produce(config: &Config, events: &[Envelope]) {
    let report = block_on(sink::to_kafka(
        config,
        events,
        &indicatif::ProgressBar::hidden(),
    ))
    .unwrap();
    assert_eq!(report.accepted as usize, events.len());
}

/// Produces raw payloads (poison included) with the given keys.
pub fn produce_raw(config: &Config, records: &[(String, Vec<u8>)]) {
    let producer: BaseProducer = kafka::producer_config(&config.kafka).create().unwrap();
    for (key, payload) in records {
        producer
            .send(
                BaseRecord::to(&config.kafka.events_topic)
                    .key(key)
                    .payload(payload),
            )
            .map_err(|(e, _)| e)
            .unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

pub fn redis(config: &Config) -> redis::Connection {
    redis::Client::open(config.redis.url.as_str())
        .unwrap()
        .get_connection()
        .unwrap()
}

/// A worker running in a thread of its own.
pub struct RunningWorker {
    pub token: CancellationToken,
    thread: Option<JoinHandle<()>>,
}

impl RunningWorker {
    pub fn start(config: &Config) -> RunningWorker {
        Self::start_jobs(config, jobs::all())
    }

    pub fn start_jobs(config: &Config, jobs: Vec<Box<dyn jobs::Job>>) -> RunningWorker {
        let token = CancellationToken::new();
        let config = config.clone();
        let t = token.clone();
        let thread = std::thread::spawn(move || runtime::run(&config, jobs, t).unwrap());
        RunningWorker {
            token,
            thread: Some(thread),
        }
    }

    pub fn stop(mut self) {
        self.token.cancel();
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for RunningWorker {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

/// Waits until every job has applied every partition up to its high watermark.
pub fn wait_caught_up(config: &Config, job_names: &[&str], timeout: Duration) {
    let marks = kafka::watermarks(
        &config.kafka,
        &config.kafka.events_topic,
        Duration::from_secs(10),
    )
    .unwrap();
    let keys = config.keyspace();
    let mut con = redis(config);
    let deadline = Instant::now() + timeout;
    loop {
        let behind: Vec<String> = job_names
            .iter()
            .flat_map(|job| marks.iter().map(move |w| (job, w)))
            .filter_map(|(job, w)| {
                let applied: Option<i64> = redis::cmd("GET")
                    .arg(keys.job_offset(job, w.partition as u32))
                    .query(&mut con)
                    .unwrap();
                (applied.unwrap_or(0) < w.high)
                    .then(|| format!("{job}/{}: {:?} < {}", w.partition, applied, w.high))
            })
            .collect();
        if behind.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not caught up after {timeout:?}: {behind:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every key of the prefix but the runtime's own (offsets, epochs), with its content in a
/// canonical text form, for comparing states.
pub fn dump(config: &Config) -> BTreeMap<String, String> {
    let mut con = redis(config);
    let prefix = &config.redis.key_prefix;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query(&mut con)
        .unwrap();
    let mut out = BTreeMap::new();
    for key in keys {
        if key.contains(":{j:") || key.contains(":{r:") {
            continue;
        }
        let kind: String = redis::cmd("TYPE").arg(&key).query(&mut con).unwrap();
        let value = match kind.as_str() {
            "string" => redis::cmd("GET")
                .arg(&key)
                .query::<String>(&mut con)
                .unwrap(),
            "hash" => {
                let map: BTreeMap<String, String> =
                    redis::cmd("HGETALL").arg(&key).query(&mut con).unwrap();
                format!("{map:?}")
            }
            "set" => {
                let mut members: Vec<String> =
                    redis::cmd("SMEMBERS").arg(&key).query(&mut con).unwrap();
                members.sort();
                format!("{members:?}")
            }
            "zset" => {
                let mut pairs: Vec<(String, String)> = redis::cmd("ZRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(-1)
                    .arg("WITHSCORES")
                    .query(&mut con)
                    .unwrap();
                pairs.sort();
                format!("{pairs:?}")
            }
            other => format!("<{other}>"),
        };
        out.insert(key.strip_prefix(prefix.as_str()).unwrap().to_owned(), value);
    }
    out
}

pub fn zmembers(config: &Config, key: &str) -> Vec<String> {
    redis::cmd("ZRANGE")
        .arg(key)
        .arg(0)
        .arg(-1)
        .query(&mut redis(config))
        .unwrap()
}
