//! Feed benchmark: `GET /v1/feed` over HTTP with concurrent clients, next to `redis-benchmark`
//! ZREVRANGE (one timeline page, the single command a feed page cannot do without) on the same
//! Redis server in the same run. Printed, never asserted. Goals: requests/s ratio >= 0.4 and
//! p99 <= 5 ms.
//!
//! The state is real: a generated workload goes through the broker and a worker running every
//! job, so feeds merge pushed timelines with celebrity pulls and hydrate real posts.
//!
//! `make bench-feed`. APERTURE_BENCH_USERS (default 6,000) sizes the workload;
//! APERTURE_BENCH_SECONDS (default 10) the load; APERTURE_BENCH_CLIENTS (default 32) the
//! concurrency, used for both sides.

#[path = "../stream-jobs/tests/support/mod.rs"]
mod support;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aperture_ingest::generate::{Spec, generate};
use aperture_schema::{Config, EventKind};
use aperture_serving::auth::Tokens;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use support::*;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `redis-benchmark --csv` for one command: (requests/s, p50 ms, p99 ms).
fn redis_benchmark(config: &Config, clients: usize, args: &[&str]) -> (f64, f64, f64) {
    let url = config.redis.url.trim_start_matches("redis://");
    let hostport = url.split('/').next().unwrap_or("127.0.0.1:6379");
    let (host, port) = hostport.split_once(':').unwrap_or((hostport, "6379"));
    let out = Command::new("redis-benchmark")
        .args(["-h", host, "-p", port, "--csv", "-n", "200000"])
        .args(["-c", &clients.to_string()])
        .args(args)
        .output()
        .expect("redis-benchmark runs (package redis-tools)");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .nth(1)
        .expect("redis-benchmark printed a result");
    let cols: Vec<f64> = line
        .split(',')
        .skip(1)
        .map(|c| c.trim_matches('"').parse().expect("a number"))
        .collect();
    // rps, avg, min, p50, p95, p99, max
    (cols[0], cols[3], cols[5])
}

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

fn main() {
    let users = env_usize("APERTURE_BENCH_USERS", 6_000) as u32;
    let seconds = env_usize("APERTURE_BENCH_SECONDS", 10) as u64;
    let clients = env_usize("APERTURE_BENCH_CLIENTS", 32);
    let config = test_config("bench-feed", 8);
    create_topics(&config);
    let events = generate(&Spec {
        seed: 5,
        users,
        days: 1.0,
        ..Spec::default()
    })
    .events;
    produce(&config, &events);
    let worker = RunningWorker::start(&config);
    wait_caught_up(&config, &["graph", "fanout"], Duration::from_secs(3600));
    worker.stop();

    // Viewers: everyone who follows someone.
    let mut viewers: Vec<u64> = events
        .iter()
        .filter(|e| e.kind() == EventKind::Follow)
        .map(|e| e.actor_id)
        .collect();
    viewers.sort_unstable();
    viewers.dedup();
    let tokens = Tokens::new(&config.serving.jwt_secret);
    let tokens: Arc<Vec<String>> = Arc::new(
        viewers
            .iter()
            .map(|&v| tokens.mint(v, Duration::from_secs(3600)))
            .collect(),
    );

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (rate, p50, p99, mean_items) = runtime.block_on(async {
        let state = aperture_serving::AppState::new(&config).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/v1/feed?limit=20", listener.local_addr().unwrap());
        tokio::spawn(async move {
            axum::serve(
                listener,
                aperture_serving::app(state, Duration::from_secs(10)),
            )
            .await
            .unwrap()
        });
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(clients)
            .build()
            .unwrap();
        // Warm-up: connections, script caches.
        for t in tokens.iter().take(200) {
            client.get(&base).bearer_auth(t).send().await.unwrap();
        }
        let started = Instant::now();
        let deadline = started + Duration::from_secs(seconds);
        let mut tasks = Vec::new();
        for c in 0..clients {
            let (client, base, tokens) = (client.clone(), base.clone(), tokens.clone());
            tasks.push(tokio::spawn(async move {
                let mut rng = ChaCha8Rng::seed_from_u64(c as u64);
                let mut latencies = Vec::new();
                let mut items = 0usize;
                while Instant::now() < deadline {
                    let token = &tokens[rng.random_range(0..tokens.len())];
                    let t = Instant::now();
                    let response = client.get(&base).bearer_auth(token).send().await.unwrap();
                    assert_eq!(response.status(), 200);
                    let body = response.bytes().await.unwrap();
                    latencies.push(t.elapsed());
                    items += body.windows(10).filter(|w| w == b"\"post_id\":").count();
                }
                (latencies, items)
            }));
        }
        let mut latencies = Vec::new();
        let mut items = 0;
        for t in tasks {
            let (l, i) = t.await.unwrap();
            latencies.extend(l);
            items += i;
        }
        let elapsed = started.elapsed().as_secs_f64();
        latencies.sort_unstable();
        (
            latencies.len() as f64 / elapsed,
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            items as f64 / latencies.len() as f64,
        )
    });

    // The ceiling: one page of the fullest timeline, straight from Redis.
    let keys = config.keyspace();
    let mut con = redis(&config);
    let fullest = viewers
        .iter()
        .map(|&v| {
            let n: usize = redis::cmd("ZCARD")
                .arg(keys.timeline(v))
                .query(&mut con)
                .unwrap();
            (n, v)
        })
        .max()
        .map(|(_, v)| v)
        .unwrap();
    let timeline = keys.timeline(fullest);
    let (ceiling, r50, r99) = redis_benchmark(
        &config,
        clients,
        &["ZREVRANGE", &timeline, "0", "19", "WITHSCORES"],
    );
    println!(
        "feed API, {clients} clients: {rate:.0} requests/s ({mean_items:.1} items per page), \
         p50 {p50:.2} ms, p99 {p99:.2} ms; redis-benchmark ZREVRANGE 20: {ceiling:.0}/s, \
         p50 {r50:.2} ms, p99 {r99:.2} ms; ratio {:.2} (goals: ratio >= 0.40, p99 <= 5 ms)",
        rate / ceiling
    );
}
