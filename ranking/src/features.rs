//! The features of one (viewer, post, time, surface): what the state said at that time
//! ([`Inputs`]) and the vector a model reads ([`vector`]), one function for training and
//! serving.
//!
//! [`Inputs`] are raw counts and flags with the meaning the jobs give them (see the engagement
//! and graph jobs' module docs): offline they are read from a replay of the warehouse
//! ([`crate::offline`]), online from the same state in Redis. Everything a model sees passes
//! through [`vector`], so a transform changed here changes both sides at once.

use aperture_schema::event::{MediaType, Surface};
use serde::{Deserialize, Serialize};

/// What the state said about a (viewer, post) pair at the moment of an impression, before it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inputs {
    /// Time since the post was created, ms (0 when the clocks disagree).
    pub age_ms: i64,
    pub media_type: MediaType,
    /// The surface asking: position effects differ by surface.
    pub surface: Surface,
    /// The post's standing likes, live comments, shares, standing saves and views.
    pub likes: i64,
    pub comments: i64,
    pub shares: i64,
    pub saves: i64,
    pub views: i64,
    /// Hides and reports of the post.
    pub negative: i64,
    /// Interactions in the post's first hour (its velocity), as far as that hour has gone.
    pub first_hour: i64,
    /// The author's active followers.
    pub author_followers: i64,
    /// Whether the viewer actively follows the author.
    pub follows_author: bool,
    /// Viewer → author affinity, decayed to the impression's time.
    pub affinity: f64,
    /// The viewer's preference points for this post's media type, and over all types.
    pub media_points: i64,
    pub total_points: i64,
    /// The viewer's preference points on posts carrying this post's hashtags (summed per tag),
    /// and over all tags.
    pub tag_points: i64,
    pub total_tag_points: i64,
    /// Whether the post has hashtags at all.
    pub has_tags: bool,
    /// The viewer's hides and reports of this author's posts.
    pub viewer_negative_author: i64,
    /// The author's views and interactions over the impression's UTC day and the six before.
    pub author_views_7d: i64,
    pub author_interactions_7d: i64,
    /// The viewer's earlier views of posts of this post's media type, and how many of those
    /// they engaged with (liked, commented, shared or saved).
    pub media_views: i64,
    pub media_engaged: i64,
    /// Whether the post has a learned topic ([`crate::topics`]); the viewer's earlier views of
    /// posts of that topic, those they engaged with, and their engaged posts of any topic.
    pub has_topic: bool,
    pub topic_views: i64,
    pub topic_engaged: i64,
    pub total_topic_engaged: i64,
    /// Watch time so far on this post and on the author's posts: total ms and views with a
    /// watch time.
    pub post_watch_ms: i64,
    pub post_watched: i64,
    pub author_watch_ms: i64,
    pub author_watched: i64,
}

/// The names of [`vector`]'s entries, in order: the artifact stores them so a model and the
/// code reading it cannot disagree about positions.
pub const NAMES: [&str; 35] = [
    "log_age_hours",
    "log_likes",
    "log_comments",
    "log_shares",
    "log_saves",
    "log_views",
    "like_rate",
    "deep_rate",
    "negative_rate",
    "log_first_hour",
    "log_author_followers",
    "follows_author",
    "log_affinity",
    "media_share",
    "log_total_points",
    "tag_share",
    "has_tags",
    "log_viewer_negative_author",
    "author_rate_7d",
    "log_author_views_7d",
    "media_video",
    "media_reel",
    "media_carousel",
    "surface_explore",
    "surface_reels",
    "surface_profile",
    "surface_hashtag",
    "media_rate",
    "has_topic",
    "topic_rate",
    "topic_share",
    "log_topic_views",
    "log_post_watch_s",
    "log_author_watch_s",
    "post_watch_known",
];

/// Number of features.
pub const LEN: usize = NAMES.len();

fn ln1p(x: f64) -> f64 {
    x.max(0.0).ln_1p()
}

fn flag(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

/// The model's view of `inputs`: logs of counts, smoothed rates, shares and one-hot
/// categories (photo and feed are the baselines the others are measured from).
pub fn vector(i: &Inputs) -> [f64; LEN] {
    let views = i.views as f64;
    let age_hours = i.age_ms.max(0) as f64 / 3_600_000.0;
    let deep = (i.comments + i.shares + i.saves) as f64;
    let tag_share = if i.total_tag_points > 0 {
        i.tag_points as f64 / i.total_tag_points as f64
    } else {
        0.0
    };
    [
        ln1p(age_hours),
        ln1p(i.likes as f64),
        ln1p(i.comments as f64),
        ln1p(i.shares as f64),
        ln1p(i.saves as f64),
        ln1p(views),
        // Smoothed towards a prior, so a post with two views is not rated 50%.
        (i.likes as f64 + 1.0) / (views + 4.0),
        (deep + 0.2) / (views + 10.0),
        i.negative as f64 / (views + 20.0),
        ln1p(i.first_hour as f64),
        ln1p(i.author_followers as f64),
        flag(i.follows_author),
        ln1p(i.affinity),
        (i.media_points.max(0) as f64 + 1.0) / (i.total_points.max(0) as f64 + 4.0),
        ln1p(i.total_points as f64),
        tag_share,
        flag(i.has_tags),
        ln1p(i.viewer_negative_author as f64),
        (i.author_interactions_7d as f64 + 1.0) / (i.author_views_7d as f64 + 4.0),
        ln1p(i.author_views_7d as f64),
        flag(i.media_type == MediaType::Video),
        flag(i.media_type == MediaType::Reel),
        flag(i.media_type == MediaType::Carousel),
        flag(i.surface == Surface::Explore),
        flag(i.surface == Surface::Reels),
        flag(i.surface == Surface::Profile),
        flag(i.surface == Surface::Hashtag),
        (i.media_engaged as f64 + 1.0) / (i.media_views as f64 + 3.0),
        flag(i.has_topic),
        if i.has_topic {
            (i.topic_engaged as f64 + 1.0) / (i.topic_views as f64 + 3.0)
        } else {
            0.0
        },
        if i.has_topic && i.total_topic_engaged > 0 {
            i.topic_engaged as f64 / i.total_topic_engaged as f64
        } else {
            0.0
        },
        ln1p(i.topic_views as f64),
        ln1p(mean_s(i.post_watch_ms, i.post_watched)),
        ln1p(mean_s(i.author_watch_ms, i.author_watched)),
        flag(i.post_watched > 0),
    ]
}

/// Mean seconds of `total_ms` over `n` (0 when there is nothing to average).
fn mean_s(total_ms: i64, n: i64) -> f64 {
    if n > 0 {
        total_ms as f64 / n as f64 / 1_000.0
    } else {
        0.0
    }
}

#[cfg(test)]
pub(crate) fn sample() -> Inputs {
    Inputs {
        age_ms: 2 * 3_600_000,
        media_type: MediaType::Reel,
        surface: Surface::Reels,
        likes: 10,
        comments: 1,
        shares: 0,
        saves: 2,
        views: 40,
        negative: 0,
        first_hour: 5,
        author_followers: 300,
        follows_author: true,
        affinity: 2.5,
        media_points: 12,
        total_points: 30,
        tag_points: 6,
        total_tag_points: 24,
        has_tags: true,
        viewer_negative_author: 0,
        author_views_7d: 400,
        author_interactions_7d: 90,
        media_views: 20,
        media_engaged: 8,
        has_topic: true,
        topic_views: 6,
        topic_engaged: 4,
        total_topic_engaged: 10,
        post_watch_ms: 90_000,
        post_watched: 9,
        author_watch_ms: 400_000,
        author_watched: 50,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_feature_is_finite_and_named_and_categories_are_one_hot() {
        let v = vector(&sample());
        assert!(v.iter().all(|x| x.is_finite()));
        let at = |name: &str| v[NAMES.iter().position(|n| *n == name).unwrap()];
        assert_eq!(at("media_reel"), 1.0);
        assert_eq!(at("media_video") + at("media_carousel"), 0.0);
        assert_eq!(at("surface_reels"), 1.0);
        assert_eq!(at("tag_share"), 0.25);
        assert_eq!(at("follows_author"), 1.0);
        assert_eq!(at("topic_share"), 0.4);
        assert_eq!(at("log_post_watch_s"), 10f64.ln_1p());
        // A brand-new post of nobody's: still finite, rates at their priors.
        let empty = Inputs {
            likes: 0,
            comments: 0,
            shares: 0,
            saves: 0,
            views: 0,
            total_points: 0,
            media_points: 0,
            total_tag_points: 0,
            tag_points: 0,
            age_ms: -5,
            ..sample()
        };
        let e = vector(&empty);
        assert!(e.iter().all(|x| x.is_finite()));
        assert_eq!(e[0], 0.0, "a post from the future is as old as a new one");
        assert_eq!(e[6], 0.25);
    }
}
