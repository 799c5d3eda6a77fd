//! Stream-job benchmarks. Each figure is printed next to a ceiling measured in the same run, on
//! the same broker or Redis, as a ratio; nothing is asserted.
//!
//! - fan-out deliveries/s next to `redis-benchmark` ZADD with pipelining (goal >= 0.7);
//! - all jobs' events/s next to a bare consumer reading the same topic (goal >= 0.5);
//! - a worker process's resident memory over a long run (goal: flat, under 512 MiB).
//!
//! `make bench-jobs`. APERTURE_BENCH_USERS (default 6,000) sizes the workload;
//! APERTURE_BENCH_LONG_EVENTS (default 1,000,000) the long run.

#[path = "../stream-jobs/tests/support/mod.rs"]
mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aperture_ingest::generate::{Spec, generate};
use aperture_ingest::kafka;
use aperture_schema::event::{MediaType, PostCreated, Target};
use aperture_schema::{Config, Envelope, Event};
use aperture_stream_jobs::jobs;
use aperture_stream_jobs::runtime::script::JobScript;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use support::*;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Requests per second `redis-benchmark` reports for one command on the configured server.
fn redis_benchmark(config: &Config, args: &[&str]) -> f64 {
    let url = config.redis.url.trim_start_matches("redis://");
    let hostport = url.split('/').next().unwrap_or("127.0.0.1:6379");
    let (host, port) = hostport.split_once(':').unwrap_or((hostport, "6379"));
    let out = Command::new("redis-benchmark")
        .args(["-h", host, "-p", port, "--csv"])
        .args(args)
        .output()
        .expect("redis-benchmark runs (package redis-tools)");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .nth(1)
        .expect("redis-benchmark printed a result");
    line.split("\",\"")
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("a requests-per-second figure")
}

fn ev(seq: u64, actor: u64, ts: i64, event: Event) -> Envelope {
    Envelope {
        v: 1,
        event_id: format!("b{seq}"),
        actor_id: actor,
        ts,
        event,
    }
}

fn fanout_bench() {
    let followers = env_usize("APERTURE_BENCH_FOLLOWERS", 5_000) as u64;
    let posts = 40u64;
    let config = test_config("bench-fanout", 1);
    let keys = config.keyspace();
    let mut con = redis(&config);
    let scripts: Vec<JobScript> = jobs::all()
        .into_iter()
        .map(|j| JobScript::new(j, &config))
        .collect();
    let t0 = 1_763_856_000_000;
    let follows: Vec<Envelope> = (0..followers)
        .map(|f| {
            ev(
                f,
                10 + f,
                t0 + f as i64,
                Event::Follow(Target { target_id: 1 }),
            )
        })
        .collect();
    let post_events: Vec<Envelope> = (0..posts)
        .map(|p| {
            ev(
                1_000_000 + p,
                1,
                t0 + 1_000_000 + p as i64,
                Event::PostCreated(PostCreated {
                    post_id: 500 + p,
                    media_type: MediaType::Photo,
                    media: vec!["m".into()],
                    caption: String::new(),
                    location: None,
                    hashtags: vec![],
                    mentions: vec![],
                }),
            )
        })
        .collect();
    let graph = &scripts[0];
    let (epoch, _) = graph.claim(&mut con, &keys, 0).unwrap();
    let refs: Vec<(i64, &Envelope)> = follows
        .iter()
        .enumerate()
        .map(|(i, e)| (i as i64, e))
        .collect();
    for chunk in refs.chunks(1000) {
        let next = chunk.last().unwrap().0 + 1;
        graph
            .apply(&mut con, &keys, 0, &epoch, chunk, next)
            .unwrap();
    }
    let fanout = &scripts[1];
    let (epoch, _) = fanout.claim(&mut con, &keys, 0).unwrap();
    let started = Instant::now();
    for (i, post) in post_events.iter().enumerate() {
        fanout
            .apply(
                &mut con,
                &keys,
                0,
                &epoch,
                &[(i as i64, post)],
                i as i64 + 1,
            )
            .unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let deliveries = (posts * followers) as f64 / elapsed;
    let ceiling = redis_benchmark(
        &config,
        &[
            "-n",
            "500000",
            "-P",
            "64",
            "-r",
            "100000",
            "zadd",
            &format!("{}:bench-z", config.redis.key_prefix),
            "__rand_int__",
            "m:__rand_int__",
        ],
    );
    println!(
        "fan-out: {deliveries:.0} deliveries/s ({posts} posts x {followers} followers); \
         redis-benchmark ZADD -P 64: {ceiling:.0}/s; ratio {:.2} (goal >= 0.70)",
        deliveries / ceiling
    );
    wipe(&config);
}

fn wipe(config: &Config) {
    let mut con = redis(config);
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:*", config.redis.key_prefix))
        .query(&mut con)
        .unwrap();
    for chunk in keys.chunks(1000) {
        let _: () = redis::cmd("DEL").arg(chunk).query(&mut con).unwrap();
    }
}

/// Commands the server has run since it started (the calls of scripts included, the scripts
/// themselves not). Over the worker's run that is mostly the scripts' calls, plus the lease
/// renewals and this bench's polls for progress: a figure of the jobs' work that barely moves
/// from run to run, where rates move a lot on a shared machine.
fn redis_commands(config: &Config) -> u64 {
    let mut con = redis(config);
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut con)
        .unwrap();
    stats
        .lines()
        .filter_map(|l| {
            let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest.split(',').next()?.strip_prefix("calls=")?;
            (!name.starts_with("eval")).then(|| calls.parse::<u64>().ok())?
        })
        .sum()
}

/// Reads every record of the topic with a bare consumer; records/s.
fn bare_consumer_rate(config: &Config, total: usize) -> f64 {
    let consumer: BaseConsumer = kafka::client_config(&config.kafka)
        .set("group.id", "bench-bare")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..config.kafka.partitions as i32 {
        tpl.add_partition_offset(&config.kafka.events_topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let started = Instant::now();
    let mut n = 0;
    while n < total {
        if let Some(Ok(_)) = consumer.poll(Duration::from_millis(500)) {
            n += 1;
        }
    }
    n as f64 / started.elapsed().as_secs_f64()
}

fn all_jobs_bench() {
    let users = env_usize("APERTURE_BENCH_USERS", 6_000) as u32;
    let config = test_config("bench-jobs", 8);
    create_topics(&config);
    let events = generate(&Spec {
        seed: 3,
        users,
        days: 1.0,
        ..Spec::default()
    })
    .events;
    produce(&config, &events);
    let bare = bare_consumer_rate(&config, events.len());
    let commands_before = redis_commands(&config);
    let started = Instant::now();
    let worker = RunningWorker::start(&config);
    wait_caught_up(&config, &jobs::names(), Duration::from_secs(3600));
    let elapsed = started.elapsed().as_secs_f64();
    worker.stop();
    let commands = redis_commands(&config) - commands_before;
    let rate = events.len() as f64 / elapsed;
    println!(
        "all jobs, one worker: {rate:.0} events/s over {} events; bare consumer {bare:.0} events/s; \
         ratio {:.2} (goal >= 0.50); {:.1} Redis commands per event",
        events.len(),
        rate / bare,
        commands as f64 / events.len() as f64
    );
    wipe(&config);
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

fn memory_bench() {
    let target = env_usize("APERTURE_BENCH_LONG_EVENTS", 1_000_000);
    let config = test_config("bench-rss", 8);
    create_topics(&config);
    let mut produced = 0usize;
    let mut seed = 100;
    while produced < target {
        let events = generate(&Spec {
            seed,
            users: 10_000,
            days: 1.0,
            ..Spec::default()
        })
        .events;
        let take = events.len().min(target - produced);
        produce(&config, &events[..take]);
        produced += take;
        seed += 1;
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_aperture"))
        .args(["run", "all"])
        .env("APERTURE__KAFKA__EVENTS_TOPIC", &config.kafka.events_topic)
        .env(
            "APERTURE__KAFKA__DEAD_LETTER_TOPIC",
            &config.kafka.dead_letter_topic,
        )
        .env("APERTURE__RUNTIME__GROUP_ID", &config.runtime.group_id)
        .env("APERTURE__RUNTIME__METRICS_LISTEN", "127.0.0.1:0")
        .env("APERTURE__REDIS__KEY_PREFIX", &config.redis.key_prefix)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut samples = Vec::new();
    let sampler = {
        let config = config.clone();
        std::thread::spawn(move || {
            wait_caught_up(&config, &["graph", "fanout"], Duration::from_secs(7200))
        })
    };
    while !sampler.is_finished() {
        if let Some(kib) = rss_kib(child.id()) {
            samples.push(kib);
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    sampler.join().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let quarter = samples.len().max(4) / 4;
    let first: u64 = samples.iter().take(quarter).max().copied().unwrap_or(0);
    let last: u64 = samples
        .iter()
        .rev()
        .take(quarter)
        .max()
        .copied()
        .unwrap_or(0);
    let peak = samples.iter().max().copied().unwrap_or(0);
    println!(
        "worker memory over {produced} events ({} s): peak {} MiB, first-quarter max {} MiB, \
         last-quarter max {} MiB (goal: flat, < 512 MiB)",
        samples.len(),
        peak / 1024,
        first / 1024,
        last / 1024
    );
    wipe(&config);
}

fn main() {
    fanout_bench();
    all_jobs_bench();
    if std::env::var_os("APERTURE_BENCH_SKIP_LONG").is_none() {
        memory_bench();
    }
}
