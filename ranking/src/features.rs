//! The features of one (viewer, post, time, surface): what the state said at that time
//! ([`Inputs`]) and the vector a model reads ([`vector`]), one function for training and
//! serving.
//!
//! [`Inputs`] are raw counts and flags with the meaning the jobs give them (see the engagement
//! and graph jobs' module docs). Both sides read the same state — a [`Viewer`], a [`Post`], its
//! [`Author`] and the [`Pair`] between them — offline from a replay of the warehouse
//! ([`crate::offline`]), online from Redis (the serving crate's reader), and [`assemble`] turns
//! it into inputs; everything a model sees then passes through [`vector`]. A rule changed here
//! changes both sides at once.

use std::collections::{BTreeMap, HashMap};

use aperture_schema::event::{MediaType, Surface};
use serde::{Deserialize, Serialize};

use crate::topics::Topics;

/// Views and, among them, views of posts the viewer engaged with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Tally {
    views: i64,
    engaged: i64,
}

impl Tally {
    fn add(&mut self, engaged: bool) {
        self.views += 1;
        self.engaged += i64::from(engaged);
    }
}

/// What the state says about one viewer, whatever the post: their media preference points
/// and their view history (the engagement job's `content_pref`, `view_history` and
/// `engaged_posts`), tallied once per request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Viewer {
    pref: BTreeMap<String, i64>,
    media: HashMap<MediaType, Tally>,
    topic: HashMap<u32, Tally>,
    tag: HashMap<String, Tally>,
    topic_engaged: i64,
}

/// One entry of a viewer's history: a view of a post that is not deleted.
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    pub media_type: MediaType,
    pub hashtags: &'a [String],
    /// Whether the post is among the viewer's engaged posts.
    pub engaged: bool,
}

impl Viewer {
    /// A viewer with `pref` (points per media type name) and `history`, posts' topics from
    /// `topics`.
    pub fn new<'a>(
        pref: BTreeMap<String, i64>,
        history: impl IntoIterator<Item = Seen<'a>>,
        topics: &Topics,
    ) -> Viewer {
        let mut v = Viewer {
            pref,
            ..Viewer::default()
        };
        for s in history {
            v.media.entry(s.media_type).or_default().add(s.engaged);
            let mut tags: Vec<&String> = s.hashtags.iter().collect();
            tags.sort_unstable();
            tags.dedup();
            for t in tags {
                v.tag.entry(t.clone()).or_default().add(s.engaged);
            }
            if let Some(k) = topics.of_post(s.hashtags) {
                v.topic.entry(k).or_default().add(s.engaged);
                v.topic_engaged += i64::from(s.engaged);
            }
        }
        v
    }
}

/// What the state says about one post (`post_meta` and `post_counts`).
#[derive(Debug, Clone, PartialEq)]
pub struct Post {
    pub author: u64,
    pub created_at: i64,
    pub media_type: MediaType,
    pub hashtags: Vec<String>,
    pub likes: i64,
    pub comments: i64,
    pub shares: i64,
    pub saves: i64,
    pub views: i64,
    /// Hides plus reports.
    pub negative: i64,
    pub first_hour: i64,
    pub watch_ms: i64,
    pub watch_views: i64,
}

/// What the state says about an author: active followers and their `creator_daily` rollups
/// summed over the UTC day of the request and the six before.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Author {
    pub followers: i64,
    pub views_7d: i64,
    pub interactions_7d: i64,
    pub watch_ms_7d: i64,
    pub watch_views_7d: i64,
}

/// What the state says about the viewer and the author together.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Pair {
    pub follows: bool,
    /// Affinity decayed to the request's time.
    pub affinity: f64,
    /// The viewer's hides and reports of the author's posts.
    pub negative: i64,
}

/// The inputs of `viewer` seeing `post` at `at_ms` on `surface`.
pub fn assemble(
    viewer: &Viewer,
    post: &Post,
    author: &Author,
    pair: &Pair,
    topics: &Topics,
    at_ms: i64,
    surface: Surface,
) -> Inputs {
    let media = viewer
        .media
        .get(&post.media_type)
        .copied()
        .unwrap_or_default();
    let topic = topics.of_post(&post.hashtags);
    let topic_tally = topic
        .and_then(|k| viewer.topic.get(&k).copied())
        .unwrap_or_default();
    let mut tags: Vec<&String> = post.hashtags.iter().collect();
    tags.sort_unstable();
    tags.dedup();
    let mut tag = Tally::default();
    for t in tags {
        if let Some(x) = viewer.tag.get(t) {
            tag.views += x.views;
            tag.engaged += x.engaged;
        }
    }
    Inputs {
        age_ms: (at_ms - post.created_at).max(0),
        media_type: post.media_type,
        surface,
        likes: post.likes,
        comments: post.comments,
        shares: post.shares,
        saves: post.saves,
        views: post.views,
        negative: post.negative,
        first_hour: post.first_hour,
        author_followers: author.followers,
        follows_author: pair.follows,
        affinity: pair.affinity,
        media_points: viewer
            .pref
            .get(post.media_type.as_str())
            .copied()
            .unwrap_or(0),
        total_points: viewer.pref.values().sum(),
        tag_views: tag.views,
        tag_engaged: tag.engaged,
        has_tags: !post.hashtags.is_empty(),
        viewer_negative_author: pair.negative,
        author_views_7d: author.views_7d,
        author_interactions_7d: author.interactions_7d,
        media_views: media.views,
        media_engaged: media.engaged,
        has_topic: topic.is_some(),
        topic_views: topic_tally.views,
        topic_engaged: topic_tally.engaged,
        total_topic_engaged: viewer.topic_engaged,
        post_watch_ms: post.watch_ms,
        post_watched: post.watch_views,
        author_watch_ms: author.watch_ms_7d,
        author_watched: author.watch_views_7d,
    }
}

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
    /// Per hashtag of this post, the viewer's history views of posts with it, and those they
    /// engaged with, summed over the post's tags.
    pub tag_views: i64,
    pub tag_engaged: i64,
    /// Whether the post has hashtags at all.
    pub has_tags: bool,
    /// The viewer's hides and reports of this author's posts.
    pub viewer_negative_author: i64,
    /// The author's views and interactions over the impression's UTC day and the six before.
    pub author_views_7d: i64,
    pub author_interactions_7d: i64,
    /// The viewer's history views of posts of this post's media type, and how many of those
    /// they engaged with (liked, commented, shared or saved).
    pub media_views: i64,
    pub media_engaged: i64,
    /// Whether the post has a learned topic ([`crate::topics`]); the viewer's earlier views of
    /// posts of that topic, those they engaged with, and their engaged posts of any topic.
    pub has_topic: bool,
    pub topic_views: i64,
    pub topic_engaged: i64,
    pub total_topic_engaged: i64,
    /// Watch time so far on this post, and on the author's posts over seven days: total ms and
    /// views with a watch time.
    pub post_watch_ms: i64,
    pub post_watched: i64,
    pub author_watch_ms: i64,
    pub author_watched: i64,
}

/// The names of [`vector`]'s entries, in order: the artifact stores them so a model and the
/// code reading it cannot disagree about positions.
pub const NAMES: [&str; 38] = [
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
    "tag_rate",
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
    "post_watch_s",
    "author_watch_s",
    "post_watch_s_x_topic_rate",
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
    let tag_rate = if i.has_tags {
        (i.tag_engaged as f64 + 1.0) / (i.tag_views as f64 + 3.0)
    } else {
        0.0
    };
    let topic_rate = if i.has_topic {
        (i.topic_engaged as f64 + 1.0) / (i.topic_views as f64 + 3.0)
    } else {
        0.0
    };
    let post_watch_s = mean_s(i.post_watch_ms, i.post_watched);
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
        tag_rate,
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
        topic_rate,
        if i.has_topic && i.total_topic_engaged > 0 {
            i.topic_engaged as f64 / i.total_topic_engaged as f64
        } else {
            0.0
        },
        ln1p(i.topic_views as f64),
        ln1p(post_watch_s),
        ln1p(mean_s(i.author_watch_ms, i.author_watched)),
        flag(i.post_watched > 0),
        // Watch time is the clip's length times how much of it this viewer watches: the
        // post's mean watch in plain seconds stands for the length, and its product with the
        // viewer's topic rate for the part that depends on the match.
        post_watch_s,
        mean_s(i.author_watch_ms, i.author_watched),
        post_watch_s * topic_rate,
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
        tag_views: 9,
        tag_engaged: 2,
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
        assert_eq!(at("tag_rate"), 0.25);
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
            tag_views: 0,
            tag_engaged: 0,
            age_ms: -5,
            ..sample()
        };
        let e = vector(&empty);
        assert!(e.iter().all(|x| x.is_finite()));
        assert_eq!(e[0], 0.0, "a post from the future is as old as a new one");
        assert_eq!(e[6], 0.25);
    }
}
