//! Feed benchmark: `GET /v1/feed?limit=20` driven by `wrk` with concurrent connections and a
//! random viewer's token per request, next to `redis-benchmark` ZREVRANGE (one timeline page,
//! the single command a feed page cannot do without) with as many connections on the same
//! Redis server in the same run: two load generators written in C, so neither side pays for a
//! heavier client. Printed, never asserted. Goals: requests/s ratio >= 0.4 and p99 <= 5 ms.
//!
//! The state is real: a generated workload goes through the broker and a worker running every
//! job, so feeds merge pushed timelines with celebrity pulls and hydrate real posts.
//!
//! `make bench-feed` (needs `wrk`, which `scripts/services` installs). APERTURE_BENCH_USERS
//! (default 6,000) sizes the workload; APERTURE_BENCH_SECONDS (default 10) the load;
//! APERTURE_BENCH_CLIENTS (default 32) the connections, used for both sides.

#[path = "load/mod.rs"]
mod load;
#[path = "../stream-jobs/tests/support/mod.rs"]
mod support;

use std::process::Command;
use std::time::Duration;

use aperture_ingest::generate::{Spec, generate};
use aperture_schema::Config;
use load::{Viewers, env_usize, follower_tokens, serve, wrk};
use support::*;

// The allocator `aperture serve` runs with, so the figures are the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

    let dir = std::env::temp_dir().join(unique("aperture-bench-feed"));
    let Viewers {
        ids: viewers,
        tokens,
        file: token_file,
    } = follower_tokens(&events, &config, &dir);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (url, server) = runtime
        .block_on(async { serve(aperture_serving::AppState::new(&config).await.unwrap()).await });
    // Mean items per page, read once per viewer over a sample (not timed).
    let mean_items = runtime.block_on(load::mean_items(
        &url,
        "/v1/feed?limit=20",
        tokens.iter().take(300),
    ));
    let load = wrk(
        &dir,
        &token_file,
        &url,
        "/v1/feed?limit=20",
        clients,
        seconds,
    );
    let (rate, p50, p99) = (load.rate, load.p50, load.p99);
    server.abort();
    std::fs::remove_dir_all(&dir).ok();

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
        "feed API, wrk {clients} connections: {rate:.0} requests/s ({mean_items:.1} items per page), \
         p50 {p50:.2} ms, p99 {p99:.2} ms; redis-benchmark ZREVRANGE 20: {ceiling:.0}/s, \
         p50 {r50:.2} ms, p99 {r99:.2} ms; ratio {:.2} (goals: ratio >= 0.40, p99 <= 5 ms)",
        rate / ceiling
    );
}
