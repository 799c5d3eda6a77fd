//! Shared by the warehouse tests: configuration with a topic and a root of the test's own (real
//! broker, endpoints from the environment), producing events and poison, running the sink in a
//! thread or as a child process that can be SIGKILLed, and reading the warehouse back the way
//! a Hive-style reader does (listing the table folders, skipping `.`/`_` names).
//!
//! Child processes: a crash test re-runs its own test binary with `--exact child_process
//! --ignored` and [`CHILD_ENV`] naming what to run (`sink` or `compact`), so the sink dies by a
//! real SIGKILL or a real `abort()` at a crash point, with the configuration passed as
//! `APERTURE__*` variables exactly as the `aperture` binary reads it.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aperture_ingest::generate::{Spec, generate, sink};
use aperture_ingest::kafka;
use aperture_schema::warehouse::{EVENT_ID, Table};
use aperture_schema::{Config, Envelope};
use aperture_warehouse::manifest::Manifest;
use aperture_warehouse::{Sink, Summary, files};
use arrow::array::{Array, AsArray};
use arrow::record_batch::RecordBatch;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use tokio_util::sync::CancellationToken;

/// Names what a child process runs: `sink` or `compact`.
pub const CHILD_ENV: &str = "APERTURE_WAREHOUSE_TEST_CHILD";

pub fn unique(name: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{name}-{nanos}")
}

/// A configuration with a topic of its own and a root in `dir`, committing often (every 100 ms
/// or 256 KiB) so a run makes many commits and many small files.
pub fn test_config(name: &str, partitions: u32, dir: &Path) -> Config {
    let mut c = Config::load(None).expect("test configuration is valid");
    let id = unique(name);
    c.kafka.events_topic = format!("test.{id}");
    c.kafka.dead_letter_topic = format!("test.{id}.dlq");
    c.kafka.partitions = partitions;
    c.warehouse.root = dir.join("warehouse");
    c.warehouse.roll_interval = Duration::from_millis(100);
    c.warehouse.roll_size = 256 << 10;
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

/// A generated workload: a few hundred users over some hours of activity.
pub fn workload(seed: u64, users: u32, days: f64) -> Vec<Envelope> {
    generate(&Spec {
        seed,
        users,
        days,
        ..Spec::default()
    })
    .events
}

/// Produces events keyed by actor and waits for every acknowledgement.
pub fn produce(config: &Config, events: &[Envelope]) {
    let report = block_on(sink::to_kafka(
        config,
        events,
        &indicatif::ProgressBar::hidden(),
    ))
    .unwrap();
    assert_eq!(report.accepted as usize, events.len());
}

/// Records that are not valid events: bad JSON, an unknown type, a broken rule, an id out of
/// range, an empty payload. Each names its own key.
pub fn poison(n: usize) -> Vec<(String, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let payload: Vec<u8> = match i % 5 {
                0 => b"{not json".to_vec(),
                1 => format!(r#"{{"v":1,"event_id":"p{i}","type":"teleport","actor_id":1,"ts":1}}"#).into_bytes(),
                2 => format!(r#"{{"v":1,"event_id":"p{i}","type":"follow","actor_id":1,"ts":1,"target_id":1}}"#).into_bytes(),
                3 => format!(r#"{{"v":1,"event_id":"p{i}","type":"like","actor_id":1,"ts":1,"post_id":9007199254740993,"author_id":2}}"#).into_bytes(),
                _ => Vec::new(),
            };
            (format!("{}", i + 1), payload)
        })
        .collect()
}

/// Produces raw payloads with the given keys.
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

/// Sum of the topic's high watermarks: how many records it holds.
pub fn topic_records(config: &Config) -> i64 {
    kafka::watermarks(
        &config.kafka,
        &config.kafka.events_topic,
        Duration::from_secs(10),
    )
    .unwrap()
    .iter()
    .map(|w| w.high)
    .sum()
}

/// Records of the topic the root's manifest counts as consumed.
pub fn committed_records(root: &Path) -> i64 {
    Manifest::load(root)
        .ok()
        .flatten()
        .map_or(0, |m| m.offsets.values().sum())
}

/// Waits until the manifest has committed every record of the topic.
pub fn wait_committed(config: &Config, timeout: Duration) {
    let total = topic_records(config);
    let deadline = Instant::now() + timeout;
    loop {
        let done = committed_records(&config.warehouse.root);
        if done == total {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the sink committed {done} of {total} records in {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A sink running in a thread of this process.
pub struct RunningSink {
    pub token: CancellationToken,
    pub progress: aperture_warehouse::sink::Progress,
    thread: Option<JoinHandle<Summary>>,
}

impl RunningSink {
    pub fn start(config: &Config) -> RunningSink {
        let token = CancellationToken::new();
        let sink = Sink::open(config, token.clone()).expect("the sink opens its root");
        let progress = sink.progress();
        let thread = std::thread::spawn(move || sink.run().expect("the sink runs"));
        RunningSink {
            token,
            progress,
            thread: Some(thread),
        }
    }

    /// Cancels and waits: the sink commits what it buffers first.
    pub fn stop(mut self) -> Summary {
        self.token.cancel();
        self.thread
            .take()
            .expect("stopped once")
            .join()
            .expect("the sink thread does not panic")
    }
}

impl Drop for RunningSink {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

/// Runs a sink until every record of the topic is committed, then stops it.
pub fn sink_until_caught_up(config: &Config) -> Summary {
    let sink = RunningSink::start(config);
    wait_committed(config, Duration::from_secs(120));
    sink.stop()
}

/// The configuration as the environment of a child process.
fn config_env(config: &Config) -> Vec<(&'static str, String)> {
    let w = &config.warehouse;
    vec![
        (
            "APERTURE__KAFKA__EVENTS_TOPIC",
            config.kafka.events_topic.clone(),
        ),
        (
            "APERTURE__KAFKA__DEAD_LETTER_TOPIC",
            config.kafka.dead_letter_topic.clone(),
        ),
        ("APERTURE__KAFKA__BROKERS", config.kafka.brokers.clone()),
        ("APERTURE__WAREHOUSE__ROOT", w.root.display().to_string()),
        (
            "APERTURE__WAREHOUSE__ROLL_INTERVAL",
            format!("{}ms", w.roll_interval.as_millis()),
        ),
        ("APERTURE__WAREHOUSE__ROLL_SIZE", w.roll_size.to_string()),
        (
            "APERTURE__WAREHOUSE__ROW_GROUP_SIZE",
            w.row_group_size.to_string(),
        ),
        (
            "APERTURE__WAREHOUSE__COMPACT_TARGET_SIZE",
            w.compact_target_size.to_string(),
        ),
    ]
}

/// Starts this test binary again as a child running `what` (`sink` or `compact`) on `config`,
/// with a crash point armed when `failpoint` is given. Its log goes to `<root>/../<what>.log`.
pub fn spawn_child(config: &Config, what: &str, failpoint: Option<&str>) -> Child {
    let log_path = config.warehouse.root.with_extension(format!("{what}.log"));
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .unwrap();
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", "child_process", "--ignored", "--nocapture"])
        .env(CHILD_ENV, what)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log);
    for (key, value) in config_env(config) {
        command.env(key, value);
    }
    match failpoint {
        Some(point) => command.env(aperture_warehouse::failpoint::FAILPOINT_ENV, point),
        None => command.env_remove(aperture_warehouse::failpoint::FAILPOINT_ENV),
    };
    command.spawn().expect("the test binary runs as a child")
}

/// Waits for a child to exit by itself.
pub fn wait_exit(child: &mut Child, timeout: Duration) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() >= deadline {
            child.kill().unwrap();
            panic!("the child did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The body of a child process: what [`CHILD_ENV`] names, on the configuration of the
/// environment. Returns at once in a test run that did not ask for a child.
pub fn child_main() {
    let Ok(what) = std::env::var(CHILD_ENV) else {
        return;
    };
    // The child's log goes to stderr, which the parent points at a file beside the root.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    let config = Config::load(None).expect("the parent passes a valid configuration");
    match what.as_str() {
        "sink" => {
            // Runs until killed: the crash tests never stop it gracefully.
            aperture_warehouse::sink::run(&config, CancellationToken::new())
                .expect("the sink runs");
        }
        "compact" => {
            let settings = aperture_warehouse::compact::Settings::from_config(&config);
            aperture_warehouse::compact::compact(&settings, &Default::default())
                .expect("compaction runs");
        }
        other => panic!("{CHILD_ENV}={other} names nothing to run"),
    }
}

/// A table's data files as a Hive-style reader finds them: every `*.parquet` under
/// `<root>/<table>/dt=*/`, skipping names that start with `.` or `_`.
pub fn visible_files(root: &Path, table: Table) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(days) = std::fs::read_dir(root.join(table.name())) else {
        return out;
    };
    for day in days {
        let day = day.unwrap();
        let name = day.file_name().into_string().unwrap();
        if name.starts_with(['.', '_']) || !name.starts_with("dt=") {
            continue;
        }
        for file in std::fs::read_dir(day.path()).unwrap() {
            let file = file.unwrap();
            let name = file.file_name().into_string().unwrap();
            if !name.starts_with(['.', '_']) && name.ends_with(".parquet") {
                out.push(file.path());
            }
        }
    }
    out.sort();
    out
}

/// Every row of a table a reader sees, as batches.
pub fn read_table(root: &Path, table: Table) -> Vec<RecordBatch> {
    visible_files(root, table)
        .iter()
        .flat_map(|path| files::read_file(path).unwrap())
        .collect()
}

/// The event ids a reader sees in each table, with repeats.
pub fn visible_ids(root: &Path) -> BTreeMap<Table, Vec<String>> {
    Table::ALL
        .into_iter()
        .map(|table| {
            let ids: Vec<String> = read_table(root, table)
                .iter()
                .flat_map(|b| {
                    let column = b.column_by_name(EVENT_ID).unwrap().as_string::<i32>();
                    (0..column.len())
                        .map(|i| column.value(i).to_owned())
                        .collect::<Vec<_>>()
                })
                .collect();
            (table, ids)
        })
        .collect()
}

/// The event ids each table must hold for `events`.
pub fn expected_ids(events: &[Envelope]) -> BTreeMap<Table, BTreeSet<String>> {
    let mut out: BTreeMap<Table, BTreeSet<String>> = Table::ALL
        .into_iter()
        .map(|t| (t, BTreeSet::new()))
        .collect();
    for e in events {
        out.entry(Table::of(e.kind()))
            .or_default()
            .insert(e.event_id.clone());
    }
    out
}

/// Asserts that a reader sees every expected event exactly once, in its table, and nothing
/// else.
pub fn assert_exactly_once(root: &Path, events: &[Envelope], context: &str) {
    let expected = expected_ids(events);
    let visible = visible_ids(root);
    for table in Table::ALL {
        let seen = &visible[&table];
        let distinct: BTreeSet<String> = seen.iter().cloned().collect();
        assert_eq!(
            seen.len(),
            expected[&table].len(),
            "{context}: {table} has {} rows for {} events",
            seen.len(),
            expected[&table].len()
        );
        assert_eq!(
            distinct.len(),
            seen.len(),
            "{context}: {table} holds an event id twice"
        );
        assert_eq!(
            &distinct, &expected[&table],
            "{context}: {table}'s event ids"
        );
    }
}

/// Asserts that the manifest and the table folders agree: every listed file is in place,
/// every data file in place is listed, nothing waits in `_sink/tmp/`, no swap is pending.
pub fn assert_root_consistent(root: &Path) {
    let manifest = Manifest::load(root)
        .unwrap()
        .expect("the root has a manifest");
    let mut on_disk: BTreeSet<String> = BTreeSet::new();
    for table in Table::ALL {
        for path in visible_files(root, table) {
            on_disk.insert(aperture_warehouse::layout::relative(root, &path));
        }
    }
    let listed: BTreeSet<String> = manifest.files.keys().cloned().collect();
    assert_eq!(
        on_disk, listed,
        "files in place and files the manifest lists"
    );
    assert_eq!(manifest.swap, None, "no swap pending");
    let tmp = aperture_warehouse::layout::tmp_dir(root);
    assert!(
        aperture_warehouse::fs::entries(&tmp).unwrap().is_empty(),
        "nothing left in _sink/tmp"
    );
}
