//! The multi-task model: one logistic regression per engagement task and a linear regression
//! of watch time for videos and reels, all fitted with linfa on standardised features, kept
//! as a versioned artifact (features, weights, training range, metrics) that scores without
//! linfa.

use std::path::{Path, PathBuf};

use aperture_schema::config::ScoreWeights;
use aperture_schema::truth::{Probabilities, Task};
use linfa::prelude::*;
use linfa_linear::LinearRegression;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, Array2, ShapeBuilder};
use serde::{Deserialize, Serialize};

use crate::eval::Report;
use crate::features::{self, Inputs, LEN, NAMES};
use crate::offline::Impression;
use crate::topics::Topics;

/// The artifact format this build reads and writes.
pub const FORMAT: u32 = 1;

/// Why a model could not be trained, written or read.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("no impressions to train on between {from_ms} and {to_ms}")]
    NoData { from_ms: i64, to_ms: i64 },
    #[error("fitting {what} failed: {reason}")]
    Fit { what: &'static str, reason: String },
    #[error("could not {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a model artifact: {reason}")]
    Format { path: PathBuf, reason: String },
}

/// A linear model's parameters over standardised features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Linear {
    pub weights: Vec<f64>,
    pub intercept: f64,
}

impl Linear {
    fn apply(&self, x: &[f64; LEN]) -> f64 {
        self.intercept + self.weights.iter().zip(x).map(|(w, v)| w * v).sum::<f64>()
    }
}

/// The time range a model was trained or evaluated on, and how many impressions it held.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Range {
    pub from_ms: i64,
    pub to_ms: i64,
    pub impressions: usize,
}

/// A trained model: what `aperture rank train` writes and serving loads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Artifact {
    pub format: u32,
    /// `rank-<training end, ms>-<fingerprint of the weights>`: sorts by training data.
    pub version: String,
    /// The feature names, in the order the weights use.
    pub features: Vec<String>,
    /// Standardisation: (x − mean) / std per feature, from the training impressions.
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
    /// One logistic regression per task of [`Task::ALL`], in that order.
    pub tasks: Vec<Linear>,
    /// Expected watch seconds of a video or reel.
    pub watch: Linear,
    pub train: Range,
    pub eval: Option<Range>,
    /// The offline table it was accepted on.
    pub metrics: Option<Report>,
    /// Whether it beat every baseline on every task's AUC (serving loads accepted ones only).
    pub accepted: bool,
    /// The hashtag topics its topic features were computed with.
    pub topics: Topics,
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

impl Artifact {
    fn standardise(&self, raw: &[f64; LEN]) -> [f64; LEN] {
        let mut x = [0.0; LEN];
        for (k, v) in x.iter_mut().enumerate() {
            *v = (raw[k] - self.mean[k]) / self.std[k];
        }
        x
    }

    /// Every task's probability and, for videos and reels, the expected watch time.
    pub fn predict(&self, inputs: &Inputs) -> Probabilities {
        let x = self.standardise(&features::vector(inputs));
        let p = |t: Task| sigmoid(self.tasks[t.index()].apply(&x));
        Probabilities {
            like: p(Task::Like),
            comment: p(Task::Comment),
            share: p(Task::Share),
            save: p(Task::Save),
            negative: p(Task::Negative),
            watch_ms: inputs
                .media_type
                .is_video()
                .then(|| self.watch.apply(&x).max(0.0) * 1_000.0),
        }
    }

    /// Reads an artifact, refusing one of another format or whose features this build does
    /// not compute in the same order.
    pub fn load(path: &Path) -> Result<Artifact, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io {
            action: "read",
            path: path.to_owned(),
            source,
        })?;
        let bad = |reason: String| ModelError::Format {
            path: path.to_owned(),
            reason,
        };
        let a: Artifact = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        if a.format != FORMAT {
            return Err(bad(format!(
                "format {} (this build reads {FORMAT})",
                a.format
            )));
        }
        if a.features != NAMES {
            return Err(bad("its features are not this build's".into()));
        }
        if a.mean.len() != LEN
            || a.std.len() != LEN
            || a.tasks.len() != Task::ALL.len()
            || a.tasks
                .iter()
                .chain([&a.watch])
                .any(|l| l.weights.len() != LEN)
        {
            return Err(bad("its weights do not match its features".into()));
        }
        Ok(a)
    }

    /// Writes the artifact as `<dir>/<version>.json` (a temporary file renamed into place, so
    /// a reader never sees half of one) and returns the path.
    pub fn save(&self, dir: &Path) -> Result<PathBuf, ModelError> {
        let io = |action, path: &Path| {
            let path = path.to_owned();
            move |source| ModelError::Io {
                action,
                path,
                source,
            }
        };
        std::fs::create_dir_all(dir).map_err(io("create", dir))?;
        let path = dir.join(format!("{}.json", self.version));
        let tmp = dir.join(format!(".{}.json.tmp", self.version));
        let text = serde_json::to_string_pretty(self).expect("an artifact is plain data");
        std::fs::write(&tmp, text).map_err(io("write", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(io("rename into", &path))?;
        Ok(path)
    }
}

/// The newest accepted artifact in `dir` (by version, which sorts by training end), if any.
/// Files that are not artifacts of this build are skipped.
pub fn newest_accepted(dir: &Path) -> Result<Option<(PathBuf, Artifact)>, ModelError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(ModelError::Io {
                action: "list",
                path: dir.to_owned(),
                source,
            });
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "json")
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("rank-"))
        })
        .collect();
    paths.sort();
    for path in paths.into_iter().rev() {
        if let Ok(a) = Artifact::load(&path)
            && a.accepted
        {
            return Ok(Some((path, a)));
        }
    }
    Ok(None)
}

/// The final score of a candidate from its predictions (see `ranking.weights`).
pub fn score(p: &Probabilities, w: &ScoreWeights) -> f64 {
    w.like * p.like + w.comment * p.comment + w.share * p.share + w.save * p.save
        - w.negative * p.negative
        + w.watch_per_second * p.watch_ms.unwrap_or(0.0) / 1_000.0
}

/// Fits the model on `train` (impressions in event-time order).
pub fn fit(train: &[&Impression]) -> Result<Artifact, ModelError> {
    let (from_ms, to_ms) = (
        train.first().map_or(0, |i| i.ts),
        train.last().map_or(0, |i| i.ts),
    );
    if train.is_empty() {
        return Err(ModelError::NoData { from_ms, to_ms });
    }
    let raw: Vec<[f64; LEN]> = train.iter().map(|i| features::vector(&i.inputs)).collect();
    let n = raw.len() as f64;
    let mut mean = vec![0.0; LEN];
    let mut std = vec![0.0; LEN];
    for row in &raw {
        for k in 0..LEN {
            mean[k] += row[k] / n;
        }
    }
    for row in &raw {
        for k in 0..LEN {
            std[k] += (row[k] - mean[k]).powi(2) / n;
        }
    }
    // A constant feature (a surface no impression came from) stays 0 after centring.
    let std: Vec<f64> = std
        .into_iter()
        .map(|v| if v > 1e-12 { v.sqrt() } else { 1.0 })
        .collect();
    // Column-major: linfa's gradient multiplies by the transpose, whose rows are then
    // contiguous; row-major made every gradient a strided walk and training took minutes.
    let x = Array2::from_shape_fn((raw.len(), LEN).f(), |(r, k)| {
        (raw[r][k] - mean[k]) / std[k]
    });

    let mut tasks = Vec::new();
    for task in Task::ALL {
        let y: Array1<bool> = train.iter().map(|i| i.label(task)).collect();
        let positives = y.iter().filter(|&&b| b).count();
        if positives == 0 || positives == y.len() {
            // A log without this kind of engagement (a public dataset of ratings has no
            // shares) leaves nothing to learn: the task predicts its smoothed training rate,
            // the same for every candidate, so it orders nothing and the table shows it.
            let negatives = y.len() - positives;
            tasks.push(Linear {
                weights: vec![0.0; LEN],
                intercept: ((positives as f64 + 0.5) / (negatives as f64 + 0.5)).ln(),
            });
            continue;
        }
        let data = DatasetBase::new(x.view(), y);
        let fitted = LogisticRegression::default()
            .max_iterations(200)
            .fit(&data)
            .map_err(|e| ModelError::Fit {
                what: task.as_str(),
                reason: e.to_string(),
            })?;
        // linfa calls the larger label (`true`) positive; turn it around otherwise.
        let sign = if fitted.labels().pos.class { 1.0 } else { -1.0 };
        tasks.push(Linear {
            weights: fitted.params().iter().map(|w| sign * w).collect(),
            intercept: sign * fitted.intercept(),
        });
    }

    let videos: Vec<usize> = (0..train.len())
        .filter(|&r| train[r].watch_ms.is_some())
        .collect();
    let watch = if videos.len() > LEN {
        let xv = x.select(ndarray::Axis(0), &videos);
        let yv: Array1<f64> = videos
            .iter()
            .map(|&r| train[r].watch_ms.unwrap_or(0.0) / 1_000.0)
            .collect();
        let fitted = LinearRegression::default()
            .fit(&Dataset::new(xv, yv))
            .map_err(|e| ModelError::Fit {
                what: "watch time",
                reason: e.to_string(),
            })?;
        Linear {
            weights: fitted.params().to_vec(),
            intercept: fitted.intercept(),
        }
    } else {
        Linear {
            weights: vec![0.0; LEN],
            intercept: 0.0,
        }
    };

    let fingerprint = tasks
        .iter()
        .chain([&watch])
        .flat_map(|l| l.weights.iter().chain([&l.intercept]))
        .fold(0xcbf2_9ce4_8422_2325u64, |h, w| {
            (h ^ w.to_bits()).wrapping_mul(0x0100_0000_01b3)
        });
    Ok(Artifact {
        format: FORMAT,
        version: format!("rank-{to_ms:013}-{:08x}", fingerprint as u32),
        features: NAMES.iter().map(|s| s.to_string()).collect(),
        mean,
        std,
        tasks,
        watch,
        train: Range {
            from_ms,
            to_ms,
            impressions: train.len(),
        },
        eval: None,
        metrics: None,
        topics: Topics::default(),
        accepted: false,
    })
}
