//! Hydration: from post ids to what a client shows, in one pipelined round trip.

use std::collections::HashMap;

use redis::RedisError;
use serde::Serialize;
use utoipa::ToSchema;

use crate::store::Store;

/// A post as clients show it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PostView {
    #[schema(example = 9001)]
    pub post_id: u64,
    #[schema(example = 42)]
    pub author_id: u64,
    #[schema(example = "ana")]
    pub author_username: String,
    /// `photo`, `video`, `reel` or `carousel`.
    #[schema(example = "photo")]
    pub media_type: String,
    /// Media references, in display order.
    pub media: Vec<String>,
    pub caption: String,
    /// Hashtags extracted from the caption, lower-cased, without `#`.
    pub hashtags: Vec<String>,
    /// Post time, ms since the epoch.
    pub created_at: i64,
    pub like_count: u64,
    pub comment_count: u64,
}

/// Fields read from a post's `meta` hash, in this order.
const META_FIELDS: [&str; 7] = [
    "author",
    "created_at",
    "media_type",
    "media",
    "caption",
    "hashtags",
    "deleted",
];
/// Fields read from a post's `counts` hash, in this order.
const COUNT_FIELDS: [&str; 2] = ["likes", "comments"];

/// A post the viewer may see, or why not.
#[derive(Debug, Clone, PartialEq)]
pub enum Hydrated {
    Visible(PostView),
    /// Not created (yet), or deleted.
    Gone,
    /// Its author blocks the viewer.
    BlockedByAuthor,
}

/// Hydrates `posts` (`(post_id, author_id)`) for `viewer` in one round trip: metadata, counts,
/// the author's username and whether the author blocks the viewer.
pub async fn hydrate(
    store: &Store,
    viewer: u64,
    posts: &[(u64, u64)],
) -> Result<HashMap<u64, Hydrated>, RedisError> {
    let keys = store.keys();
    let mut pipe = redis::pipe();
    for &(post, author) in posts {
        pipe.cmd("HMGET")
            .arg(keys.post_meta(post))
            .arg(&META_FIELDS[..]);
        pipe.cmd("HMGET")
            .arg(keys.post_counts(post))
            .arg(&COUNT_FIELDS[..]);
        pipe.cmd("HGET").arg(keys.profile(author)).arg("username");
        pipe.cmd("SISMEMBER").arg(keys.blocks(author)).arg(viewer);
    }
    let mut replies = store.run(&pipe).await?;
    let mut out = HashMap::with_capacity(posts.len());
    for &(post, author) in posts {
        let meta: Vec<Option<String>> = replies.take()?;
        let counts: Vec<Option<String>> = replies.take()?;
        let username: Option<String> = replies.take()?;
        let blocked: bool = replies.take()?;
        let state = if blocked {
            Hydrated::BlockedByAuthor
        } else {
            view(post, author, meta, counts, username)
        };
        out.insert(post, state);
    }
    Ok(out)
}

fn view(
    post: u64,
    author: u64,
    meta: Vec<Option<String>>,
    counts: Vec<Option<String>>,
    username: Option<String>,
) -> Hydrated {
    let mut meta = meta.into_iter();
    let mut field = || meta.next().flatten();
    let (Some(owner), created_at, media_type, media, caption, hashtags, deleted) = (
        field(),
        field(),
        field(),
        field(),
        field(),
        field(),
        field(),
    ) else {
        return Hydrated::Gone;
    };
    if deleted.as_deref() == Some("1") || owner.parse::<u64>().ok() != Some(author) {
        return Hydrated::Gone;
    }
    let count = |v: Option<&Option<String>>| {
        v.and_then(|c| c.as_deref())
            .and_then(|c| c.parse::<i64>().ok())
            .map_or(0, |c| c.max(0) as u64)
    };
    Hydrated::Visible(PostView {
        post_id: post,
        author_id: author,
        author_username: username.unwrap_or_default(),
        media_type: media_type.unwrap_or_default(),
        media: json_list(media.as_deref()),
        caption: caption.unwrap_or_default(),
        hashtags: json_list(hashtags.as_deref()),
        created_at: created_at.and_then(|t| t.parse().ok()).unwrap_or_default(),
        like_count: count(counts.first()),
        comment_count: count(counts.get(1)),
    })
}

/// A JSON array of strings as the jobs store it; anything else reads as empty.
fn json_list(text: Option<&str>) -> Vec<String> {
    text.and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_default()
}
