//! Ranking for Explore, Reels and the ranked home feed: features, linfa models trained offline
//! on the warehouse's log, and the offline table they are judged by.
//!
//! # Layout
//!
//! - [`features`]: what the state says of a (viewer, post, time, surface) ([`features::Inputs`])
//!   and the vector a model reads, one function online and offline.
//! - [`offline`]: impressions (views), their inputs as of just before them and their labels,
//!   from a replay of the log in event-time order.
//! - [`model`]: the multi-task model (a logistic regression per engagement task, a linear
//!   regression of watch time), fitted with linfa, kept as a versioned artifact; the final
//!   score as a weighted sum of its predictions.
//! - [`eval`]: the held-out split and the offline table against baselines and the ceiling.
//! - [`rerank`]: diversity, media mix, freshness and the per-author cap, after scoring.
//! - [`topics`]: hashtag topics learned from co-occurrence, carried in the artifact.
//! - [`metrics`]: AUC, normalised cross-entropy, NDCG@k, recall@k.
//!
//! [`train`] is what `aperture rank train` runs: split, fit, evaluate, accept or not.

pub mod eval;
pub mod features;
pub mod metrics;
pub mod model;
pub mod offline;
pub mod rerank;
pub mod topics;

use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use aperture_schema::truth::{ImpressionTruth, Probabilities};
use aperture_schema::{Config, Envelope};

pub use eval::Report;
pub use model::{Artifact, ModelError};
pub use offline::Dataset;

/// Why training or evaluation failed.
#[derive(Debug, thiserror::Error)]
pub enum RankError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Eval(#[from] eval::EvalError),
    #[error("could not read the truth file {path}: {source}")]
    TruthIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("line {line} of the truth file {path} is not an impression's truth: {reason}")]
    TruthLine {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

/// The generator's truth file (`aperture generate --truth`): view event id → probabilities.
pub fn read_truth(path: &Path) -> Result<HashMap<String, Probabilities>, RankError> {
    let io = |source| RankError::TruthIo {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut out = HashMap::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(io)?;
        if line.trim().is_empty() {
            continue;
        }
        let t: ImpressionTruth = serde_json::from_str(&line).map_err(|e| RankError::TruthLine {
            path: path.to_owned(),
            line: n + 1,
            reason: e.to_string(),
        })?;
        out.insert(t.event_id, t.p);
    }
    Ok(out)
}

/// Trains a model on all but the held-out end of `events` (in event-time order, each id once),
/// evaluates it there against the baselines (and the ceiling, given the truth) and marks it
/// accepted when it beats every baseline on the AUC of every task the held-out days measure.
pub fn train(
    events: &[Envelope],
    truth: Option<&HashMap<String, Probabilities>>,
    config: &Config,
) -> Result<Artifact, RankError> {
    let (first, last) = (
        events.first().map_or(0, |e| e.ts),
        events.last().map_or(0, |e| e.ts),
    );
    let cut = eval::split_at(first, last, config.ranking.holdout_days);
    let topics = topics::Topics::learn(events.iter().filter_map(|e| match &e.event {
        aperture_schema::Event::PostCreated(p) if e.ts < cut => Some(p.hashtags.as_slice()),
        _ => None,
    }));
    let data = Dataset::from_events(events, config, &topics);
    let split = eval::split(&data, config.ranking.holdout_days);
    let mut artifact = model::fit(&split.train)?;
    artifact.topics = topics;
    let report = eval::report(&split, &artifact, truth, &config.ranking.weights)?;
    artifact.eval = Some(model::Range {
        from_ms: split.at_ms,
        to_ms: split.eval.last().map_or(split.at_ms, |i| i.ts),
        impressions: split.eval.len(),
    });
    artifact.accepted = report.model_beats_baselines();
    artifact.metrics = Some(report);
    Ok(artifact)
}

/// The offline table of an existing `artifact` on the held-out end of `events`.
pub fn evaluate(
    events: &[Envelope],
    artifact: &Artifact,
    truth: Option<&HashMap<String, Probabilities>>,
    config: &Config,
) -> Result<Report, RankError> {
    let data = Dataset::from_events(events, config, &artifact.topics);
    let split = eval::split(&data, config.ranking.holdout_days);
    Ok(eval::report(
        &split,
        artifact,
        truth,
        &config.ranking.weights,
    )?)
}
