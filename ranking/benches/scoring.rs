//! Scoring benchmark: the full model over 500 candidates on one thread — feature vector,
//! standardisation, five task regressions and the watch-time regression, then the weighted
//! final score — next to 500 plain dot products of the same length as the ceiling (what a
//! single linear model could at best cost), timed batch by batch in the same run. A second
//! figure adds the re-ranking pass to a 20-item page. Printed, never asserted. Goal: p99 of a
//! 500-candidate batch <= 2 ms.
//!
//! The candidates are real: the held-out impressions of a generated workload, scored by a model
//! trained on its earlier days. `make bench-ranking`. APERTURE_BENCH_BATCHES (default 2,000)
//! sets how many batches are timed per side.

use std::hint::black_box;
use std::time::Instant;

use aperture_ingest::generate::{Spec, generate};
use aperture_ranking::features::{LEN, vector};
use aperture_ranking::model::score;
use aperture_ranking::rerank::{Rules, Scored, rerank};
use aperture_ranking::{Dataset, eval};
use aperture_schema::Config;

const CANDIDATES: usize = 500;
const PAGE: usize = 20;

/// (p50, p99, mean) of `samples`, in ms.
fn summary(mut samples: Vec<f64>) -> (f64, f64, f64) {
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    let mean = samples.iter().sum::<f64>() / samples.len() as f64;
    (at(0.50), at(0.99), mean)
}

/// Times `batch` `n` times after a warm-up, one sample per call, in ms.
fn time(n: usize, mut batch: impl FnMut(usize) -> f64) -> Vec<f64> {
    for k in 0..n / 10 {
        black_box(batch(k));
    }
    (0..n)
        .map(|k| {
            let start = Instant::now();
            black_box(batch(k));
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect()
}

fn main() {
    let batches = std::env::var("APERTURE_BENCH_BATCHES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000usize);
    let config = Config::load(None).expect("the embedded defaults load");
    let workload = generate(&Spec {
        seed: 13,
        users: 1_200,
        days: 3.0,
        ..Spec::default()
    });
    let artifact = aperture_ranking::train(&workload.events, None, &config)
        .expect("a model trains on the generated workload");
    let data = Dataset::from_events(&workload.events, &config, &artifact.topics);
    let split = eval::split(&data, config.ranking.holdout_days);
    let pool = &split.eval;
    assert!(
        pool.len() >= CANDIDATES,
        "the held-out day has {} impressions, fewer than one batch",
        pool.len()
    );
    // Each batch is a different window of the pool, so no batch is scored from a warm cache
    // of its own last run alone.
    let window = |k: usize| {
        let start = (k * 97) % (pool.len() - CANDIDATES + 1);
        &pool[start..start + CANDIDATES]
    };
    let weights = &config.ranking.weights;
    let rules = Rules::from_config(&config.ranking.serving);

    let model = time(batches, |k| {
        window(k)
            .iter()
            .map(|i| score(&artifact.predict(&i.inputs), weights))
            .sum()
    });
    let ranked = time(batches, |k| {
        let scored: Vec<Scored<()>> = window(k)
            .iter()
            .map(|i| Scored {
                post: i.post,
                author: i.author,
                media_type: i.inputs.media_type,
                age_ms: i.inputs.age_ms,
                score: score(&artifact.predict(&i.inputs), weights),
                extra: (),
            })
            .collect();
        rerank(scored, &rules, true, PAGE, &[]).len() as f64
    });
    // The ceiling: one dot product per candidate over vectors already built.
    let vectors: Vec<[f64; LEN]> = pool.iter().map(|i| vector(&i.inputs)).collect();
    let w = &artifact.tasks[0].weights;
    let dots = time(batches, |k| {
        let start = (k * 97) % (vectors.len() - CANDIDATES + 1);
        vectors[start..start + CANDIDATES]
            .iter()
            .map(|x| x.iter().zip(w).map(|(a, b)| a * b).sum::<f64>())
            .sum()
    });

    let (m50, m99, mmean) = summary(model);
    let (r50, r99, _) = summary(ranked);
    let (d50, d99, dmean) = summary(dots);
    println!(
        "scoring {CANDIDATES} candidates, one thread, {batches} batches: full model p50 {:.3} ms, \
         p99 {:.3} ms ({:.2} us per candidate); with re-ranking to a {PAGE}-item page p50 {:.3} ms, \
         p99 {:.3} ms; {CANDIDATES} dot products of {LEN} p50 {:.4} ms, p99 {:.4} ms; \
         full model / dot products (mean) {:.1}x (goal: full-model p99 <= 2 ms)",
        m50,
        m99,
        mmean * 1e3 / CANDIDATES as f64,
        r50,
        r99,
        d50,
        d99,
        mmean / dmean
    );
}
