//! Explore benchmark: `GET /v1/explore?limit=20` and `GET /v1/reels?limit=20` under load from
//! `wrk`, a random viewer's token per request, next to the chronological `GET /v1/feed?limit=20`
//! on the same server, Redis and state in the same run: the ceiling is what serving a page
//! without retrieval and scoring costs. Every Explore or Reels request without a cursor starts a
//! session, so each one retrieves candidates from the pools, reads their features, scores them
//! with the trained model, re-ranks and writes the session. Printed, never asserted.
//!
//! The state is real: a generated workload goes through the broker and a worker running every
//! job (the pools included), and a model trained on the same log is the one serving loads.
//!
//! `make bench-explore` (needs `wrk`). APERTURE_BENCH_USERS (default 3,000) sizes the
//! workload; APERTURE_BENCH_SECONDS (default 10) the load per path; APERTURE_BENCH_CLIENTS
//! (default 16) the connections.

#[path = "load/mod.rs"]
mod load;
#[path = "../stream-jobs/tests/support/mod.rs"]
mod support;

use std::time::Duration;

use aperture_ingest::generate::{Spec, generate};
use aperture_schema::Config;
use load::{Load, Viewers, env_usize, follower_tokens, serve, wrk};
use support::*;

// The allocator `aperture serve` runs with, so the figures are the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn line(name: &str, l: Load, feed: Load) -> String {
    format!(
        "{name}: {:.0} requests/s, p50 {:.2} ms, p99 {:.2} ms; {:.2} of the chronological feed's rate, \
         p99 {:.1}x",
        l.rate,
        l.p50,
        l.p99,
        l.rate / feed.rate,
        l.p99 / feed.p99
    )
}

fn main() {
    let users = env_usize("APERTURE_BENCH_USERS", 3_000) as u32;
    let seconds = env_usize("APERTURE_BENCH_SECONDS", 10) as u64;
    let clients = env_usize("APERTURE_BENCH_CLIENTS", 16);
    let mut config: Config = test_config("bench-explore", 8);
    let models = std::env::temp_dir().join(unique("aperture-bench-models"));
    config.ranking.models_dir = models.clone();
    create_topics(&config);
    let mut events = generate(&Spec {
        seed: 5,
        users,
        days: 2.0,
        ..Spec::default()
    })
    .events;
    produce(&config, &events);
    let worker = RunningWorker::start(&config);
    wait_caught_up(
        &config,
        &aperture_stream_jobs::jobs::names(),
        Duration::from_secs(3600),
    );
    worker.stop();
    let _wipe = WipeOnDrop(&config);

    events.sort_by(|a, b| (a.ts, &a.event_id).cmp(&(b.ts, &b.event_id)));
    let artifact =
        aperture_ranking::train(&events, None, &config).expect("a model trains on the workload");
    println!(
        "model {} (accepted: {}) on {} impressions",
        artifact.version, artifact.accepted, artifact.train.impressions
    );
    let mut serving = artifact.clone();
    // Timing does not depend on whether the model beat its baselines; serving loads accepted
    // ones only.
    serving.accepted = true;
    serving.save(&models).expect("the artifact is written");

    let dir = std::env::temp_dir().join(unique("aperture-bench-explore"));
    let Viewers {
        ids: viewers,
        tokens,
        file: token_file,
    } = follower_tokens(&events, &config, &dir);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (url, server) = runtime.block_on(async {
        let state = aperture_serving::AppState::new(&config).await.unwrap();
        assert!(
            state.ranker.models.current().is_some(),
            "serving loaded the model"
        );
        serve(state).await
    });
    let sample = || tokens.iter().step_by(tokens.len() / 200 + 1);
    let mean_items = |path: &str| runtime.block_on(load::mean_items(&url, path, sample()));
    let paths = [
        "/v1/feed?limit=20",
        "/v1/explore?limit=20",
        "/v1/reels?limit=20",
    ];
    let sizes: Vec<f64> = paths.iter().map(|p| mean_items(p)).collect();
    let loads: Vec<Load> = paths
        .iter()
        .map(|p| wrk(&dir, &token_file, &url, p, clients, seconds))
        .collect();
    server.abort();
    std::fs::remove_dir_all(&dir).ok();
    std::fs::remove_dir_all(&models).ok();

    let feed = loads[0];
    println!(
        "wrk {clients} connections, {} viewers; chronological feed: {:.0} requests/s, p50 {:.2} ms, \
         p99 {:.2} ms ({:.1} items per page)",
        viewers.len(),
        feed.rate,
        feed.p50,
        feed.p99,
        sizes[0]
    );
    println!(
        "{} ({:.1} items per page)",
        line("explore", loads[1], feed),
        sizes[1]
    );
    println!(
        "{} ({:.1} items per page)",
        line("reels", loads[2], feed),
        sizes[2]
    );
}
