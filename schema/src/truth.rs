//! Impressions, their engagement labels and the generator's true probabilities: the contract
//! between the workload generator (which knows why a viewer engaged) and the ranking crate
//! (which learns it from the warehouse and is measured against it).
//!
//! An **impression** is one `view` event: viewer `actor_id` was shown `post_id` on `surface` at
//! `ts`. An engagement event of the same viewer on the same post **labels** the latest
//! impression of that (viewer, post) at or before it, when it comes at most [`LABEL_WINDOW_MS`]
//! after that impression; events with no impression in the window label nothing. The tasks are
//! [`Task::ALL`]; `negative` is a hide or a report. For videos and reels the impression's own
//! `watch_ms` is the watch-time label.
//!
//! The generator decides each impression's engagement by drawing from [`Probabilities`] it
//! computes from latent state no model sees (interests, quality, closeness); it writes them,
//! one [`ImpressionTruth`] per view event, as NDJSON (`aperture generate --truth FILE`). They are
//! the ceiling every model is measured against.

use serde::{Deserialize, Serialize};

/// How long after an impression an engagement event still labels it: ten minutes.
pub const LABEL_WINDOW_MS: i64 = 10 * 60 * 1_000;

/// The engagement tasks a ranking model predicts, each a probability per impression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    Like,
    Comment,
    Share,
    Save,
    /// A hide or a report of the post.
    Negative,
}

impl Task {
    pub const ALL: [Task; 5] = [
        Task::Like,
        Task::Comment,
        Task::Share,
        Task::Save,
        Task::Negative,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Task::Like => "like",
            Task::Comment => "comment",
            Task::Share => "share",
            Task::Save => "save",
            Task::Negative => "negative",
        }
    }

    /// Position in [`Task::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// The true probability of each task for one impression, and the expected watch time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Probabilities {
    pub like: f64,
    pub comment: f64,
    pub share: f64,
    pub save: f64,
    /// A hide or a report.
    pub negative: f64,
    /// Expected `watch_ms` of the view, for videos and reels; `None` for photos and carousels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch_ms: Option<f64>,
}

impl Probabilities {
    pub fn get(&self, task: Task) -> f64 {
        match task {
            Task::Like => self.like,
            Task::Comment => self.comment,
            Task::Share => self.share,
            Task::Save => self.save,
            Task::Negative => self.negative,
        }
    }
}

/// One impression and what the generator knew of it: a line of the truth file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImpressionTruth {
    /// The `event_id` of the `view` event.
    pub event_id: String,
    pub viewer_id: u64,
    pub post_id: u64,
    pub ts: i64,
    pub p: Probabilities,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_truth_line_round_trips_and_photos_carry_no_watch_time() {
        let t = ImpressionTruth {
            event_id: "g1-000000001".into(),
            viewer_id: 7,
            post_id: 1_000_000_001,
            ts: 1_763_856_000_000,
            p: Probabilities {
                like: 0.4,
                comment: 0.01,
                share: 0.02,
                save: 0.03,
                negative: 0.001,
                watch_ms: None,
            },
        };
        let line = serde_json::to_string(&t).unwrap();
        assert!(!line.contains("watch_ms"), "{line}");
        let back: ImpressionTruth = serde_json::from_str(&line).unwrap();
        assert_eq!(back, t);
        assert_eq!(
            Task::ALL.map(|k| t.p.get(k)),
            [0.4, 0.01, 0.02, 0.03, 0.001]
        );
        assert!(Task::ALL.iter().enumerate().all(|(i, k)| k.index() == i));
    }
}
