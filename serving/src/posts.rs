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
    /// Its author blocks the viewer, or (when following is required) the viewer does not
    /// follow its author.
    Hidden,
}

/// Whether hydration also requires the viewer to follow each author (feeds do; a profile,
/// whose visibility was decided already, does not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowCheck {
    Required,
    NotRequired,
}

/// Hydrates `posts` (`(post_id, author_id)`) for `viewer` in one round trip: per post its
/// metadata and counts; per distinct author the username, whether they block the viewer and,
/// if asked, whether the viewer follows them.
pub async fn hydrate(
    store: &Store,
    viewer: u64,
    posts: &[(u64, u64)],
    follow: FollowCheck,
) -> Result<HashMap<u64, Hydrated>, RedisError> {
    let keys = store.keys();
    let mut authors: Vec<u64> = posts.iter().map(|&(_, a)| a).collect();
    authors.sort_unstable();
    authors.dedup();
    let mut pipe = redis::pipe();
    for &(post, _) in posts {
        pipe.cmd("HMGET")
            .arg(keys.post_meta(post))
            .arg(&META_FIELDS[..]);
        pipe.cmd("HMGET")
            .arg(keys.post_counts(post))
            .arg(&COUNT_FIELDS[..]);
    }
    for &author in &authors {
        pipe.cmd("HGET").arg(keys.profile(author)).arg("username");
        pipe.cmd("SISMEMBER").arg(keys.blocks(author)).arg(viewer);
        if follow == FollowCheck::Required {
            pipe.cmd("ZSCORE").arg(keys.following(viewer)).arg(author);
        }
    }
    let mut replies = store.run(&pipe).await?;
    let mut fetched = Vec::with_capacity(posts.len());
    for _ in posts {
        let meta: Vec<Option<String>> = replies.take()?;
        let counts: Vec<Option<String>> = replies.take()?;
        fetched.push((meta, counts));
    }
    // Per author: the username when the viewer may see their posts.
    let mut by_author: HashMap<u64, Option<String>> = HashMap::with_capacity(authors.len());
    for &author in &authors {
        let username: Option<String> = replies.take()?;
        let blocks_viewer: bool = replies.take()?;
        let followed = match follow {
            FollowCheck::Required => replies.take::<Option<String>>()?.is_some(),
            FollowCheck::NotRequired => true,
        };
        let visible = followed && !blocks_viewer;
        by_author.insert(author, visible.then(|| username.unwrap_or_default()));
    }
    let mut out = HashMap::with_capacity(posts.len());
    for (&(post, author), (meta, counts)) in posts.iter().zip(fetched) {
        let state = match by_author.get(&author) {
            Some(Some(username)) => view(post, author, meta, counts, username.clone()),
            _ => Hydrated::Hidden,
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
    username: String,
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
        author_username: username,
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
