//! One post with its engagement: `GET /v1/posts/{id}`.
//!
//! Everyone who may see the post gets its public counts; its author also gets the insights
//! (unique viewers, watch and dwell time, first-hour velocity, hides and reports), as a creator
//! sees them on their own post. A post that is deleted, was never created, or whose author
//! blocks the viewer or is blocked by them is a 404, as is a private author's post for a viewer
//! who is not an approved follower: the answer does not reveal that it exists.

use redis::RedisError;
use serde::Serialize;
use utoipa::ToSchema;

use crate::posts::{Hydrated, PostView, hydrate};
use crate::store::Store;

/// A post and its engagement.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PostDetail {
    #[serde(flatten)]
    pub post: PostView,
    pub counts: PublicCounts,
    /// The author's view of the post's engagement; absent for other viewers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub insights: Option<Insights>,
}

/// What anyone who may see the post sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct PublicCounts {
    pub likes: u64,
    /// Live comments (deleted ones do not count).
    pub comments: u64,
    pub shares: u64,
    pub saves: u64,
    pub views: u64,
}

/// What the author sees in addition.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
pub struct Insights {
    /// Distinct accounts that viewed the post: a HyperLogLog estimate, standard error 0.81%.
    pub unique_viewers: u64,
    /// Total time the post was on screen, over every view, in ms.
    pub dwell_ms_total: u64,
    /// `dwell_ms_total / views`; absent before the first view.
    pub dwell_ms_avg: Option<f64>,
    /// Total video watch time, in ms.
    pub watch_ms_total: u64,
    /// `watch_ms_total` over the views that reported a watch time.
    pub watch_ms_avg: Option<f64>,
    /// Likes, comments, shares and saves in the post's first hour: its engagement velocity.
    pub first_hour_interactions: u64,
    pub hides: u64,
    pub reports: u64,
}

/// The `counts` fields read, in this order.
const FIELDS: [&str; 11] = [
    "likes",
    "comments",
    "shares",
    "saves",
    "views",
    "dwell_ms",
    "watch_ms",
    "watch_views",
    "first_hour",
    "hides",
    "reports",
];

/// The post `post` as `viewer` may see it, or `None` when it does not exist for them.
pub async fn post(store: &Store, viewer: u64, post: u64) -> Result<Option<PostDetail>, RedisError> {
    let keys = store.keys();
    let mut pipe = redis::pipe();
    pipe.cmd("HGET").arg(keys.post_meta(post)).arg("author");
    let author: Option<u64> = store.run(&pipe).await?.take()?;
    let Some(author) = author else {
        return Ok(None);
    };

    let mut pipe = redis::pipe();
    pipe.cmd("HMGET")
        .arg(keys.post_counts(post))
        .arg(&FIELDS[..]);
    pipe.cmd("PFCOUNT").arg(keys.post_viewers(post));
    pipe.cmd("SISMEMBER").arg(keys.blocks(viewer)).arg(author);
    pipe.cmd("SISMEMBER")
        .arg(keys.blocked_by(viewer))
        .arg(author);
    pipe.cmd("HGET").arg(keys.profile(author)).arg("private");
    pipe.cmd("ZSCORE").arg(keys.following(viewer)).arg(author);
    let mut replies = store.run(&pipe).await?;
    let fields: Vec<Option<i64>> = replies.take()?;
    let unique_viewers: u64 = replies.take()?;
    let blocking: bool = replies.take()?;
    let blocked: bool = replies.take()?;
    let private = replies.take::<Option<String>>()?.as_deref() == Some("1");
    let following = replies.take::<Option<f64>>()?.is_some();

    let own = viewer == author;
    if !own && (blocking || blocked || (private && !following)) {
        return Ok(None);
    }
    let Some(Hydrated::Visible(mut view)) = hydrate(store, &[(post, author)]).await?.remove(&post)
    else {
        return Ok(None);
    };
    let n = |i: usize| fields.get(i).copied().flatten().unwrap_or(0).max(0) as u64;
    let counts = PublicCounts {
        likes: n(0),
        comments: n(1),
        shares: n(2),
        saves: n(3),
        views: n(4),
    };
    // The feed's counts may be cached for a moment; this answer is read fresh.
    view.like_count = counts.likes;
    view.comment_count = counts.comments;
    let average = |total: u64, count: u64| (count > 0).then(|| total as f64 / count as f64);
    let insights = own.then(|| Insights {
        unique_viewers,
        dwell_ms_total: n(5),
        dwell_ms_avg: average(n(5), n(4)),
        watch_ms_total: n(6),
        watch_ms_avg: average(n(6), n(7)),
        first_hour_interactions: n(8),
        hides: n(9),
        reports: n(10),
    });
    Ok(Some(PostDetail {
        post: view,
        counts,
        insights,
    }))
}
