//! The offline table: a model against simple baselines and against the generator's own truth
//! (the ceiling), on the held-out end of the log.
//!
//! Every scorer gives each held-out impression a probability per task and a final score. The
//! model's come from its artifact and `ranking.weights`; the ceiling's from the generator's
//! true probabilities through the same weights; a baseline has one score (random,
//! chronological, the post's global popularity so far, its author's popularity over the last
//! seven days) that ranks alike for every task, turned into probabilities per task by a
//! one-feature logistic fit on the training impressions (Platt scaling), so that its
//! normalised cross-entropy means something.
//!
//! Per task: AUC and normalised cross-entropy over all held-out impressions. Per viewer: their
//! held-out impressions ranked by the final score, with the realised engagement as gains
//! (each positive task's weight, the negative task's subtracted, floored at 0), NDCG@10 and
//! recall@50 averaged over viewers with any gain.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use aperture_schema::config::ScoreWeights;
use aperture_schema::truth::{Probabilities, Task};
use linfa::prelude::*;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

use crate::metrics;
use crate::model::{Artifact, score};
use crate::offline::{Dataset, Impression};

const DAY_MS: i64 = 86_400_000;

/// The training and held-out impressions of a dataset.
#[derive(Debug)]
pub struct Split<'a> {
    pub train: Vec<&'a Impression>,
    pub eval: Vec<&'a Impression>,
    /// Impressions at or after this time are held out.
    pub at_ms: i64,
}

/// Holds out the last `holdout_days` of the log; a log no longer than that holds out its
/// last quarter.
pub fn split(data: &Dataset, holdout_days: u32) -> Split<'_> {
    let at_ms = split_at(data.first_ms, data.last_ms, holdout_days);
    let (train, eval) = data.impressions.iter().partition(|i| i.ts < at_ms);
    Split { train, eval, at_ms }
}

/// The cut between training and held-out time for a log spanning `[first_ms, last_ms]`: the
/// last `holdout_days`, or the last quarter of a shorter log.
pub fn split_at(first_ms: i64, last_ms: i64, holdout_days: u32) -> i64 {
    let span = last_ms - first_ms;
    let holdout = i64::from(holdout_days) * DAY_MS;
    if span > holdout {
        last_ms - holdout
    } else {
        last_ms - span / 4
    }
}

/// One scorer's line of the table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub name: String,
    /// Per task of [`Task::ALL`].
    pub auc: Vec<Option<f64>>,
    pub nce: Vec<Option<f64>>,
    /// Root mean squared error of the expected watch seconds, over video and reel impressions.
    pub watch_rmse_s: Option<f64>,
    pub ndcg_at_10: Option<f64>,
    pub recall_at_50: Option<f64>,
}

/// The whole table, with what it was measured on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub impressions: usize,
    pub viewers: usize,
    /// Positives per task in the held-out impressions.
    pub positives: Vec<usize>,
    pub rows: Vec<Row>,
}

impl Report {
    pub fn row(&self, name: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.name == name)
    }

    /// The best baseline's AUC for `task` (the rows that are neither the model nor the
    /// ceiling).
    pub fn best_baseline_auc(&self, task: Task) -> Option<f64> {
        self.rows
            .iter()
            .filter(|r| BASELINES.contains(&r.name.as_str()))
            .filter_map(|r| r.auc[task.index()])
            .max_by(f64::total_cmp)
    }

    /// The smallest lead of the model's AUC over the best baseline's, across the tasks the
    /// held-out days can measure (those with both positive and negative impressions: a task
    /// the log never shows has no AUC for anyone). `None` when no task is measured, or one of
    /// them has no AUC for the model or for every baseline.
    pub fn auc_margin(&self) -> Option<f64> {
        let model = self.row(MODEL)?;
        let measured = Task::ALL.into_iter().filter(|&t| {
            self.positives[t.index()] > 0 && self.positives[t.index()] < self.impressions
        });
        let mut margin: Option<f64> = None;
        for t in measured {
            let lead = model.auc[t.index()]? - self.best_baseline_auc(t)?;
            margin = Some(margin.map_or(lead, |m| m.min(lead)));
        }
        margin
    }

    /// Whether the model beats the best baseline on the AUC of every measured task, and at
    /// least one is measured ([`Report::auc_margin`] above zero): the acceptance rule.
    pub fn model_beats_baselines(&self) -> bool {
        self.auc_margin().is_some_and(|m| m > 0.0)
    }
}

pub const MODEL: &str = "model";
pub const CEILING: &str = "ceiling (truth)";
pub const BASELINES: [&str; 4] = [
    "random",
    "chronological",
    "global popularity",
    "author popularity",
];

/// What a scorer says of one impression.
struct Scored {
    p: Probabilities,
    score: f64,
}

fn baseline_score(name: &str, i: &Impression) -> f64 {
    let x = &i.inputs;
    match name {
        // A fixed hash of the event id: the same "random" order on every run.
        "random" => {
            let h = i.event_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
            (h >> 11) as f64 / (1u64 << 53) as f64
        }
        "chronological" => -(x.age_ms as f64),
        "global popularity" => (x.likes + x.comments + x.shares + x.saves) as f64,
        "author popularity" => x.author_interactions_7d as f64,
        _ => unreachable!("only the names of BASELINES are asked for"),
    }
}

/// Per task, a logistic fit of the labels on one standardised score (Platt scaling).
struct Platt {
    mean: f64,
    std: f64,
    per_task: Vec<(f64, f64)>,
}

impl Platt {
    fn fit(scores: &[f64], train: &[&Impression]) -> Platt {
        let n = scores.len().max(1) as f64;
        let mean = scores.iter().sum::<f64>() / n;
        let var = scores.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / n;
        let std = if var > 1e-12 { var.sqrt() } else { 1.0 };
        let x = Array2::from_shape_fn((scores.len(), 1), |(r, _)| (scores[r] - mean) / std);
        let per_task = Task::ALL
            .iter()
            .map(|&t| {
                let y: Array1<bool> = train.iter().map(|i| i.label(t)).collect();
                let rate = y.iter().filter(|&&b| b).count() as f64 / n;
                let prior = ((rate + 1e-6) / (1.0 - rate + 1e-6)).ln();
                match LogisticRegression::default()
                    .max_iterations(100)
                    .fit(&linfa::DatasetBase::new(x.view(), y))
                {
                    Ok(f) => {
                        let sign = if f.labels().pos.class { 1.0 } else { -1.0 };
                        (sign * f.params()[0], sign * f.intercept())
                    }
                    // One class only in training: the base rate is all there is to say.
                    Err(_) => (0.0, prior),
                }
            })
            .collect();
        Platt {
            mean,
            std,
            per_task,
        }
    }

    fn probabilities(&self, s: f64) -> Probabilities {
        let z = (s - self.mean) / self.std;
        let p = |t: Task| {
            let (w, b) = self.per_task[t.index()];
            1.0 / (1.0 + (-(w * z + b)).exp())
        };
        Probabilities {
            like: p(Task::Like),
            comment: p(Task::Comment),
            share: p(Task::Share),
            save: p(Task::Save),
            negative: p(Task::Negative),
            watch_ms: None,
        }
    }
}

/// Realised engagement of an impression as a ranking gain.
fn gain(i: &Impression, w: &ScoreWeights) -> f64 {
    let l = |t: Task| if i.label(t) { 1.0 } else { 0.0 };
    (w.like * l(Task::Like)
        + w.comment * l(Task::Comment)
        + w.share * l(Task::Share)
        + w.save * l(Task::Save)
        - w.negative * l(Task::Negative))
    .max(0.0)
}

fn row(name: &str, eval: &[&Impression], scored: &[Scored], w: &ScoreWeights) -> Row {
    let mut auc = Vec::new();
    let mut nce = Vec::new();
    for t in Task::ALL {
        let labels: Vec<bool> = eval.iter().map(|i| i.label(t)).collect();
        let p: Vec<f64> = scored.iter().map(|s| s.p.get(t)).collect();
        auc.push(metrics::auc(&p, &labels));
        nce.push(metrics::normalised_cross_entropy(&p, &labels));
    }
    let watched: Vec<(f64, f64)> = eval
        .iter()
        .zip(scored)
        .filter_map(|(i, s)| Some((i.watch_ms? / 1_000.0, s.p.watch_ms? / 1_000.0)))
        .collect();
    let watch_rmse_s = (!watched.is_empty()).then(|| {
        (watched.iter().map(|(y, p)| (y - p).powi(2)).sum::<f64>() / watched.len() as f64).sqrt()
    });
    let mut by_viewer: BTreeMap<u64, Vec<(f64, f64)>> = BTreeMap::new();
    for (i, s) in eval.iter().zip(scored) {
        by_viewer
            .entry(i.viewer)
            .or_default()
            .push((s.score, gain(i, w)));
    }
    let (mut ndcg, mut recall, mut lists) = (0.0, 0.0, 0usize);
    for list in by_viewer.values_mut() {
        // Ties keep event-time order: a stable sort on the score alone.
        list.sort_by(|a, b| b.0.total_cmp(&a.0));
        let gains: Vec<f64> = list.iter().map(|(_, g)| *g).collect();
        if let (Some(n), Some(r)) = (metrics::ndcg_at(&gains, 10), metrics::recall_at(&gains, 50)) {
            ndcg += n;
            recall += r;
            lists += 1;
        }
    }
    Row {
        name: name.to_string(),
        auc,
        nce,
        watch_rmse_s,
        ndcg_at_10: (lists > 0).then(|| ndcg / lists as f64),
        recall_at_50: (lists > 0).then(|| recall / lists as f64),
    }
}

/// Why the table could not be made.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("no held-out impressions after {at_ms}")]
    Empty { at_ms: i64 },
    #[error(
        "the truth file has no line for {missing} of {total} held-out impressions (first: {first}); \
         it belongs to another workload"
    )]
    Truth {
        missing: usize,
        total: usize,
        first: String,
    },
}

/// The table for `model` on `split`'s held-out impressions, with the baselines and, given the
/// generator's truth by view event id, the ceiling.
pub fn report(
    split: &Split<'_>,
    model: &Artifact,
    truth: Option<&HashMap<String, Probabilities>>,
    w: &ScoreWeights,
) -> Result<Report, EvalError> {
    let eval = &split.eval;
    if eval.is_empty() {
        return Err(EvalError::Empty { at_ms: split.at_ms });
    }
    let mut rows = Vec::new();
    for name in BASELINES {
        let train_scores: Vec<f64> = split
            .train
            .iter()
            .map(|i| baseline_score(name, i))
            .collect();
        let platt = Platt::fit(&train_scores, &split.train);
        let scored: Vec<Scored> = eval
            .iter()
            .map(|i| {
                let s = baseline_score(name, i);
                Scored {
                    p: platt.probabilities(s),
                    score: s,
                }
            })
            .collect();
        rows.push(row(name, eval, &scored, w));
    }
    let scored: Vec<Scored> = eval
        .iter()
        .map(|i| {
            let p = model.predict(&i.inputs);
            Scored {
                score: score(&p, w),
                p,
            }
        })
        .collect();
    rows.push(row(MODEL, eval, &scored, w));
    if let Some(truth) = truth {
        let missing: Vec<&&Impression> = eval
            .iter()
            .filter(|i| !truth.contains_key(&i.event_id))
            .collect();
        if let Some(first) = missing.first() {
            return Err(EvalError::Truth {
                missing: missing.len(),
                total: eval.len(),
                first: first.event_id.clone(),
            });
        }
        let scored: Vec<Scored> = eval
            .iter()
            .map(|i| {
                let p = truth[&i.event_id];
                Scored {
                    score: score(&p, w),
                    p,
                }
            })
            .collect();
        rows.push(row(CEILING, eval, &scored, w));
    }
    let viewers = eval
        .iter()
        .map(|i| i.viewer)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    Ok(Report {
        impressions: eval.len(),
        viewers,
        positives: Task::ALL
            .iter()
            .map(|&t| eval.iter().filter(|i| i.label(t)).count())
            .collect(),
        rows,
    })
}

fn cell(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_string(), |v| format!("{v:.3}"))
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "held out: {} impressions of {} viewers; positives: {}",
            self.impressions,
            self.viewers,
            Task::ALL
                .iter()
                .map(|t| format!("{} {}", t.as_str(), self.positives[t.index()]))
                .collect::<Vec<_>>()
                .join(", ")
        )?;
        write!(f, "| metric |")?;
        for r in &self.rows {
            write!(f, " {} |", r.name)?;
        }
        writeln!(f)?;
        write!(f, "|---|")?;
        for _ in &self.rows {
            write!(f, "---|")?;
        }
        writeln!(f)?;
        let mut line = |label: String, cells: Vec<Option<f64>>| -> fmt::Result {
            write!(f, "| {label} |")?;
            for c in cells {
                write!(f, " {} |", cell(c))?;
            }
            writeln!(f)
        };
        for t in Task::ALL {
            line(
                format!("{} AUC", t.as_str()),
                self.rows.iter().map(|r| r.auc[t.index()]).collect(),
            )?;
        }
        for t in Task::ALL {
            line(
                format!("{} NCE", t.as_str()),
                self.rows.iter().map(|r| r.nce[t.index()]).collect(),
            )?;
        }
        line(
            "watch RMSE (s)".into(),
            self.rows.iter().map(|r| r.watch_rmse_s).collect(),
        )?;
        line(
            "NDCG@10".into(),
            self.rows.iter().map(|r| r.ndcg_at_10).collect(),
        )?;
        line(
            "recall@50".into(),
            self.rows.iter().map(|r| r.recall_at_50).collect(),
        )
    }
}
