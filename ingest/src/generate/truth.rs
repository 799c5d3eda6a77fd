//! Why a generated viewer engages: the latent state of the workload and the documented function
//! from it to the true engagement probabilities of one impression.
//!
//! # Latent state
//!
//! Drawn once per workload from its own random stream, and never sent in an event:
//!
//! - [`TOPICS`] topics. Every topical hashtag of the vocabulary belongs to one of them; the
//!   [`GENERIC_TAGS`] most popular tags (`#love`, `#instagood`, …) belong to none.
//! - Per account: two **interests** (a primary topic with weight 0.65 and a secondary one with
//!   0.35; an author posts mostly about their primary topic), a **media-type bias** per media
//!   type (normal, σ = 0.5) and up to three **close authors** among the accounts it follows.
//! - Per post: one **topic** (the author's primary topic 70% of the time, else uniform) and a
//!   **quality** q ~ N(0, 1).
//!
//! # The probability of each task
//!
//! For an impression of post p by viewer v on surface s at age a (hours), with
//! `match = interest_v(topic_p)` ∈ {0, 0.35, 0.65}, `follow` whether v follows p's author at
//! that moment, `close` whether the author is one of v's close authors, and `bias` v's bias
//! for p's media type, each task t has the logit
//!
//! ```text
//! z_t = b_t + M_t·match + Q_t·q + F_t·follow + C_t·close + B_t·bias + S_t(s) − A_t·ln(1 + a)
//! ```
//!
//! with the weights of [`WEIGHTS`] (the negative task — a hide or a report — has negative
//! weights on match, quality and relationship, and a positive one on Explore). `S(s)` is the
//! position bias of the surface that showed the post: a profile visit is deliberate, an Explore
//! or hashtag grid tile is one of many. The intercepts `b_t` are calibrated per workload
//! ([`calibrate`]) so that the mean probabilities give the spec's proportions (likes per view,
//! comments per post) on the workload's own mix of impressions. The probability is
//! `σ(z_t)`; every outcome of an impression is drawn independently from these.
//!
//! Watch time (videos and reels) has the completion `c = σ(−0.4 + 2.5·match + 0.5·q +
//! 0.8·close + bias)`; the expected watch is `c` of the clip for a video and `c·(1 + c)` of
//! it for a reel (reels loop), at most two thirds of [`MAX_WATCH_MS`] or of three plays; the
//! drawn watch is the expectation times a uniform factor in [0.5, 1.5], so the expectation is
//! exact.

use aperture_schema::event::{MediaType, Surface};
use aperture_schema::truth::{Probabilities, Task};

/// Number of latent topics.
pub const TOPICS: usize = 12;

/// The most popular tags of the vocabulary carry no topic: everyone uses them.
pub const GENERIC_TAGS: usize = 20;

/// The longest watch (and dwell) of one view, in ms: five minutes.
pub const MAX_WATCH_MS: f64 = 5.0 * 60_000.0;

/// A media type's index in an account's bias vector.
pub fn media_index(m: MediaType) -> usize {
    match m {
        MediaType::Photo => 0,
        MediaType::Carousel => 1,
        MediaType::Video => 2,
        MediaType::Reel => 3,
    }
}

/// One account's latent tastes.
#[derive(Debug, Clone, PartialEq)]
pub struct Taste {
    /// Primary and secondary topic.
    pub topics: [u8; 2],
    /// Bias per media type, by [`media_index`].
    pub media_bias: [f32; 4],
    /// Accounts this one is close to (a subset of the ones it follows), sorted.
    pub close: Vec<u32>,
}

/// The weight of a primary and of a secondary interest.
pub const INTEREST: [f64; 2] = [0.65, 0.35];

impl Taste {
    /// How much this account cares about `topic`: 0.65, 0.35 or 0.
    pub fn interest(&self, topic: u8) -> f64 {
        if self.topics[0] == topic {
            INTEREST[0]
        } else if self.topics[1] == topic {
            INTEREST[1]
        } else {
            0.0
        }
    }

    pub fn is_close(&self, author: u32) -> bool {
        self.close.binary_search(&author).is_ok()
    }
}

/// Everything about one impression the probabilities depend on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Context {
    /// The viewer's interest in the post's topic.
    pub matched: f64,
    pub quality: f64,
    pub follows: bool,
    pub close: bool,
    /// The viewer's bias for the post's media type.
    pub media_bias: f64,
    /// Age of the post at the impression, ms.
    pub age_ms: i64,
    pub surface: Surface,
}

/// The weights of one task's logit, as the module doc writes them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weights {
    pub matched: f64,
    pub quality: f64,
    pub follow: f64,
    pub close: f64,
    pub bias: f64,
    pub age: f64,
    /// Position bias by surface: feed, explore, reels, profile, hashtag.
    pub surface: [f64; 5],
}

/// The weights of each task, in [`Task::ALL`]'s order.
pub const WEIGHTS: [Weights; 5] = [
    // like
    Weights {
        matched: 3.2,
        quality: 0.7,
        follow: 0.5,
        close: 1.5,
        bias: 1.0,
        age: 0.15,
        surface: [0.0, -0.3, 0.1, 0.4, -0.2],
    },
    // comment
    Weights {
        matched: 2.5,
        quality: 0.4,
        follow: 0.6,
        close: 2.2,
        bias: 0.5,
        age: 0.2,
        surface: [0.0, -0.5, -0.3, 0.5, -0.4],
    },
    // share
    Weights {
        matched: 3.0,
        quality: 0.9,
        follow: 0.0,
        close: 0.8,
        bias: 0.5,
        age: 0.25,
        surface: [0.0, 0.2, 0.4, 0.0, 0.0],
    },
    // save
    Weights {
        matched: 3.0,
        quality: 1.0,
        follow: 0.2,
        close: 0.4,
        bias: 0.6,
        age: 0.1,
        surface: [0.0, 0.1, 0.1, 0.2, 0.2],
    },
    // negative: a hide or a report
    Weights {
        matched: -3.0,
        quality: -0.9,
        follow: -1.2,
        close: -2.0,
        bias: -0.8,
        age: 0.0,
        surface: [0.0, 0.6, 0.3, -0.5, 0.4],
    },
];

fn surface_index(s: Surface) -> usize {
    match s {
        Surface::Feed => 0,
        Surface::Explore => 1,
        Surface::Reels => 2,
        Surface::Profile => 3,
        Surface::Hashtag => 4,
    }
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

fn flag(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

/// Each task's logit without its intercept.
pub fn logits(c: &Context) -> [f64; 5] {
    let age = (c.age_ms.max(0) as f64 / 3_600_000.0).ln_1p();
    let s = surface_index(c.surface);
    WEIGHTS.map(|w| {
        w.matched * c.matched
            + w.quality * c.quality
            + w.follow * flag(c.follows)
            + w.close * flag(c.close)
            + w.bias * c.media_bias
            + w.surface[s]
            - w.age * age
    })
}

/// The calibrated intercept of each task, in [`Task::ALL`]'s order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Intercepts(pub [f64; 5]);

/// The intercepts that make the mean probability of each task over `sample` equal `targets`
/// (each clamped to [1e-6, 0.99]); bisection on a monotone function.
pub fn calibrate(sample: &[Context], targets: [f64; 5]) -> Intercepts {
    let rest: Vec<[f64; 5]> = sample.iter().map(logits).collect();
    let mut out = [0.0; 5];
    for t in 0..5 {
        let target = targets[t].clamp(1e-6, 0.99);
        let (mut lo, mut hi) = (-30.0f64, 30.0f64);
        for _ in 0..50 {
            let mid = (lo + hi) / 2.0;
            let mean = if rest.is_empty() {
                sigmoid(mid)
            } else {
                rest.iter().map(|r| sigmoid(mid + r[t])).sum::<f64>() / rest.len() as f64
            };
            if mean < target {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        out[t] = (lo + hi) / 2.0;
    }
    Intercepts(out)
}

/// The expected watch of a view, ms: `None` for photos and carousels.
pub fn expected_watch_ms(c: &Context, media: MediaType, video_ms: u32) -> Option<f64> {
    if !media.is_video() {
        return None;
    }
    let completion =
        sigmoid(-0.4 + 2.5 * c.matched + 0.5 * c.quality + 0.8 * flag(c.close) + c.media_bias);
    let clip = f64::from(video_ms);
    let plays = if media == MediaType::Reel {
        completion * (1.0 + completion)
    } else {
        completion
    };
    let ceiling = MAX_WATCH_MS.min(3.0 * clip) / 1.5;
    Some((clip * plays).min(ceiling))
}

/// The true probabilities of one impression.
pub fn probabilities(
    c: &Context,
    b: &Intercepts,
    media: MediaType,
    video_ms: u32,
) -> Probabilities {
    let z = logits(c);
    let p = |t: Task| sigmoid(b.0[t.index()] + z[t.index()]);
    Probabilities {
        like: p(Task::Like),
        comment: p(Task::Comment),
        share: p(Task::Share),
        save: p(Task::Save),
        negative: p(Task::Negative),
        watch_ms: expected_watch_ms(c, media, video_ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        Context {
            matched: 0.0,
            quality: 0.0,
            follows: false,
            close: false,
            media_bias: 0.0,
            age_ms: 3_600_000,
            surface: Surface::Feed,
        }
    }

    #[test]
    fn calibration_hits_its_targets_and_signals_move_the_right_way() {
        let sample: Vec<Context> = (0..200)
            .map(|i| Context {
                matched: [0.0, 0.35, 0.65][i % 3],
                quality: (i as f64 / 100.0) - 1.0,
                follows: i % 4 != 0,
                ..ctx()
            })
            .collect();
        let targets = [0.4, 0.01, 0.008, 0.02, 0.006];
        let b = calibrate(&sample, targets);
        for t in Task::ALL {
            let mean = sample
                .iter()
                .map(|c| probabilities(c, &b, MediaType::Photo, 0).get(t))
                .sum::<f64>()
                / sample.len() as f64;
            assert!((mean - targets[t.index()]).abs() < 1e-6, "{t:?}: {mean}");
        }
        let base = probabilities(&ctx(), &b, MediaType::Photo, 0);
        let matched = probabilities(
            &Context {
                matched: 0.65,
                ..ctx()
            },
            &b,
            MediaType::Photo,
            0,
        );
        assert!(matched.like > base.like && matched.save > base.save);
        assert!(matched.negative < base.negative);
        let old = probabilities(
            &Context {
                age_ms: 48 * 3_600_000,
                ..ctx()
            },
            &b,
            MediaType::Photo,
            0,
        );
        assert!(old.like < base.like);
        assert_eq!(base.watch_ms, None);
    }

    #[test]
    fn expected_watch_stays_under_its_ceiling_and_reels_loop() {
        let good = Context {
            matched: 0.65,
            quality: 2.0,
            close: true,
            ..ctx()
        };
        let reel = expected_watch_ms(&good, MediaType::Reel, 20_000).unwrap();
        let video = expected_watch_ms(&good, MediaType::Video, 20_000).unwrap();
        assert!(reel > video && video > 0.0);
        let long = expected_watch_ms(&good, MediaType::Video, 600_000).unwrap();
        assert!(long * 1.5 <= MAX_WATCH_MS);
    }
}
