//! Crashes and takeovers of real worker processes (`aperture run all`) against the real broker
//! and Redis: SIGKILLed at random points while a workload streams, the state still ends equal to
//! a clean run's and to the oracle's; with two workers, one takes over the other's partitions.

#[path = "../stream-jobs/tests/support/mod.rs"]
mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aperture_ingest::generate::{Spec, generate};
use aperture_schema::{Config, Envelope};
use aperture_stream_jobs::oracle::Oracle;
use aperture_stream_jobs::runtime::Worker;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use support::*;
use tokio_util::sync::CancellationToken;

const JOBS: [&str; 6] = [
    "graph",
    "fanout",
    "engagement",
    "notifications",
    "stories",
    "trending",
];

fn worker_process(config: &Config) -> Child {
    Command::new(env!("CARGO_BIN_EXE_aperture"))
        .args(["run", "all"])
        .env("APERTURE__KAFKA__EVENTS_TOPIC", &config.kafka.events_topic)
        .env(
            "APERTURE__KAFKA__DEAD_LETTER_TOPIC",
            &config.kafka.dead_letter_topic,
        )
        .env(
            "APERTURE__KAFKA__PARTITIONS",
            config.kafka.partitions.to_string(),
        )
        .env("APERTURE__RUNTIME__GROUP_ID", &config.runtime.group_id)
        .env("APERTURE__RUNTIME__LEASE_TTL", "2s")
        .env("APERTURE__RUNTIME__METRICS_LISTEN", "127.0.0.1:0")
        .env("APERTURE__REDIS__KEY_PREFIX", &config.redis.key_prefix)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the aperture binary runs")
}

/// Sum of every job's partition epochs: it grows each time a worker claims a partition.
fn claims(config: &Config) -> i64 {
    let keys = config.keyspace();
    let mut con = redis(config);
    let mut total = 0;
    for job in JOBS {
        for p in 0..config.kafka.partitions {
            let epoch: Option<i64> = redis::cmd("GET")
                .arg(keys.job_epoch(job, p))
                .query(&mut con)
                .unwrap();
            total += epoch.unwrap_or(0);
        }
    }
    total
}

fn workload(seed: u64, users: u32) -> Vec<Envelope> {
    generate(&Spec {
        seed,
        users,
        days: 0.25,
        ..Spec::default()
    })
    .events
}

/// Streams `events` onto the topic in chunks over roughly `over`.
fn stream(config: &Config, events: Vec<Envelope>, over: Duration) -> std::thread::JoinHandle<()> {
    let config = config.clone();
    std::thread::spawn(move || {
        let chunks = 40;
        let size = events.len().div_ceil(chunks);
        for chunk in events.chunks(size) {
            produce(&config, chunk);
            std::thread::sleep(over / chunks as u32);
        }
    })
}

fn assert_equals_oracle(config: &Config, events: &[Envelope]) {
    let mut oracle = Oracle::new(config);
    oracle.apply_all(events);
    let k = config.keyspace();
    let users: Vec<u64> = oracle.users.keys().copied().collect();
    for u in users {
        let followers: std::collections::BTreeSet<u64> = zmembers(config, &k.followers(u))
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(followers, oracle.followers(u), "followers of {u}");
        let timeline: std::collections::BTreeSet<String> =
            zmembers(config, &k.timeline(u)).into_iter().collect();
        let expected: std::collections::BTreeSet<String> = oracle
            .timelines
            .get(&u)
            .into_iter()
            .flatten()
            .map(|(_, a, p)| format!("{a}:{p}"))
            .collect();
        assert_eq!(timeline, expected, "timeline of {u}");
    }
    let users: Vec<u64> = oracle.users.keys().copied().collect();
    support::compare::compare_engagement(config, &oracle, 0);
    support::compare::compare_notifications(config, &oracle, users.iter().copied(), 0);
    support::compare::compare_stories(config, &oracle, users.iter().copied(), 0);
    support::compare::compare_trending(config, &oracle, 0);
}

#[test]
fn a_worker_killed_twenty_times_while_events_stream_ends_equal_to_a_clean_run_and_the_oracle() {
    let config = test_config("kill", 4);
    create_topics(&config);
    let events = workload(11, 500);
    let producer = stream(&config, events.clone(), Duration::from_secs(40));
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut kills = 0;
    while kills < 20 {
        let before = claims(&config);
        let mut child = worker_process(&config);
        // Kill at a random point after the worker has claimed its partitions, mid-work.
        let deadline = Instant::now() + Duration::from_secs(30);
        while claims(&config) == before && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(0..700)));
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
    }
    producer.join().unwrap();
    let mut last = worker_process(&config);
    wait_caught_up(&config, &JOBS, Duration::from_secs(240));
    last.kill().unwrap();
    last.wait().unwrap();
    let killed = dump(&config);

    let mut clean = config.clone();
    clean.redis.key_prefix = unique("t-kill-clean");
    clean.runtime.group_id = unique("kill-clean");
    let worker = RunningWorker::start(&clean);
    wait_caught_up(&clean, &JOBS, Duration::from_secs(240));
    worker.stop();
    let clean_state = dump(&clean);
    assert_eq!(
        killed.len(),
        clean_state.len(),
        "same keys after {kills} kills"
    );
    for (key, value) in &clean_state {
        assert_eq!(
            killed.get(key),
            Some(value),
            "{key} differs after {kills} kills"
        );
    }
    assert_equals_oracle(&config, &events);
}

#[test]
fn two_workers_split_the_partitions_and_one_takes_over_when_the_other_dies() {
    let mut config = test_config("takeover", 4);
    config.runtime.lease_ttl = Duration::from_secs(2);
    create_topics(&config);
    let events = workload(12, 400);
    let (first, rest) = events.split_at(events.len() / 2);
    produce(&config, first);

    let mut process = worker_process(&config);
    let token = CancellationToken::new();
    let worker = Worker::new(&config, aperture_stream_jobs::jobs::all(), token.clone()).unwrap();
    let ownership = worker.ownership();
    let thread = std::thread::spawn(move || worker.run().unwrap());

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mine = ownership.partitions();
        if !mine.is_empty() && mine.len() < 4 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the partitions were never split: {mine:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    process.kill().unwrap();
    process.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while ownership.partitions().len() < 4 {
        assert!(
            Instant::now() < deadline,
            "no takeover: {:?}",
            ownership.partitions()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    produce(&config, rest);
    wait_caught_up(&config, &JOBS, Duration::from_secs(120));
    token.cancel();
    thread.join().unwrap();
    assert_equals_oracle(&config, &events);
}
