//! Dashboard benchmark: the creators' page (`GET /dashboard`, with the session cookie) and the
//! insights API (`GET /v1/insights`, bearer) over a 28-day range, next to a static file
//! (`/static/dashboard.css`) served by the same server in the same run — the ceiling: what an
//! answer costs without reading Redis or rendering. Printed, never asserted.
//!
//! Time to first byte is measured one request at a time (the time until the answer's headers
//! arrive, median and p99 over the sample); requests/s and p99 under load come from `wrk`, a
//! random creator's token per request. Goals: the page's time to first byte within 3x the
//! static file's, the insights API's p99 at most 20 ms.
//!
//! The state is real: a generated workload goes through the broker and a worker running every
//! job. `make bench-dashboard` (needs `wrk`). APERTURE_BENCH_USERS (default 1,000) sizes the
//! workload; APERTURE_BENCH_SECONDS (default 10) the load per path; APERTURE_BENCH_CLIENTS
//! (default 16) the connections.

#[path = "load/mod.rs"]
mod load;
#[path = "../stream-jobs/tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use aperture_ingest::generate::{Spec, generate};
use aperture_schema::state::utc_day;
use aperture_schema::{Config, Event};
use aperture_serving::auth::Tokens;
use load::{Credential, Load, env_usize, serve, wrk_as};
use support::*;

// The allocator `aperture serve` runs with, so the figures are the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Median and p99 time to first byte in ms over `n` requests, one at a time.
fn ttfb(runtime: &tokio::runtime::Runtime, url: &str, cookies: &[String], n: usize) -> (f64, f64) {
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let mut times = Vec::with_capacity(n);
        for i in 0..n {
            let started = Instant::now();
            let response = client
                .get(url)
                .header("cookie", &cookies[i % cookies.len()])
                .send()
                .await
                .unwrap();
            times.push(started.elapsed().as_secs_f64() * 1e3);
            assert!(
                response.status().is_success(),
                "{url}: {}",
                response.status()
            );
            response.bytes().await.unwrap();
        }
        times.sort_by(f64::total_cmp);
        (times[n / 2], times[n * 99 / 100])
    })
}

fn main() {
    let users = env_usize("APERTURE_BENCH_USERS", 1_000) as u32;
    let seconds = env_usize("APERTURE_BENCH_SECONDS", 10) as u64;
    let clients = env_usize("APERTURE_BENCH_CLIENTS", 16);
    let config: Config = test_config("bench-dashboard", 8);
    create_topics(&config);
    let events = generate(&Spec {
        seed: 5,
        users,
        days: 7.0,
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

    // Every account that posted is a creator with a dashboard.
    let mut creators: Vec<u64> = events
        .iter()
        .filter(|e| matches!(e.event, Event::PostCreated(_)))
        .map(|e| e.actor_id)
        .collect();
    creators.sort_unstable();
    creators.dedup();
    let minter = Tokens::new(&config.serving.jwt_secret);
    let tokens: Vec<String> = creators
        .iter()
        .map(|&c| minter.mint(c, Duration::from_secs(3600)))
        .collect();
    let dir = std::env::temp_dir().join(unique("aperture-bench-dashboard"));
    std::fs::create_dir_all(&dir).unwrap();
    let token_file = dir.join("tokens.txt");
    std::fs::write(&token_file, tokens.join("\n")).unwrap();
    let cookies: Vec<String> = tokens
        .iter()
        .map(|t| format!("aperture_session={t}"))
        .collect();

    let last = events.iter().map(|e| e.ts).max().unwrap();
    let range = format!(
        "range=custom&from={}&to={}",
        utc_day(last - 27 * 86_400_000),
        utc_day(last)
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (url, server) = runtime
        .block_on(async { serve(aperture_serving::AppState::new(&config).await.unwrap()).await });
    let page = format!("/dashboard?{range}");
    let api = format!("/v1/insights?{range}");
    let static_file = "/static/dashboard.css";

    let sample = 300;
    let (static_p50, static_p99) = ttfb(&runtime, &format!("{url}{static_file}"), &cookies, sample);
    let (page_p50, page_p99) = ttfb(&runtime, &format!("{url}{page}"), &cookies, sample);
    let loads: Vec<Load> = [
        (static_file, Credential::Cookie),
        (page.as_str(), Credential::Cookie),
        (api.as_str(), Credential::Bearer),
    ]
    .into_iter()
    .map(|(path, credential)| wrk_as(&dir, &token_file, &url, path, clients, seconds, credential))
    .collect();
    server.abort();
    std::fs::remove_dir_all(&dir).ok();

    println!(
        "{} creators, {} events, 28-day range; time to first byte, one request at a time \
         ({sample} each):",
        creators.len(),
        events.len()
    );
    println!("  static file: p50 {static_p50:.2} ms, p99 {static_p99:.2} ms");
    println!(
        "  dashboard page: p50 {page_p50:.2} ms, p99 {page_p99:.2} ms; {:.1}x the static file's \
         p50 (goal at most 3x)",
        page_p50 / static_p50
    );
    println!("wrk {clients} connections:");
    let ceiling = loads[0];
    for (name, l) in [
        ("static file", loads[0]),
        ("dashboard page", loads[1]),
        ("insights API", loads[2]),
    ] {
        println!(
            "  {name}: {:.0} requests/s, p50 {:.2} ms, p99 {:.2} ms; {:.2} of the static file's \
             rate",
            l.rate,
            l.p50,
            l.p99,
            l.rate / ceiling.rate
        );
    }
    println!(
        "  insights API p99 {:.2} ms (goal at most 20 ms)",
        loads[2].p99
    );
}
