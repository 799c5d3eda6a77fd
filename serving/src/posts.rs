//! Hydration: from post ids to what a client shows, in one pipelined round trip.

use std::collections::HashMap;
use std::sync::Arc;

use redis::RedisError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::store::Store;

/// Where a feed item came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Pushed into the viewer's timeline at post time.
    Push,
    /// Pulled at read time from a celebrity's (or, for a returning user, any followee's)
    /// recent posts.
    Pull,
}

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
    /// In a feed: how the post reached it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    /// In Explore and Reels: the candidate source that found it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<crate::ranked::sources::Origin>,
    /// In ranked lists with `ranking.serving.debug` on: how its score came about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breakdown: Option<Box<crate::ranked::Breakdown>>,
}

/// What never changes about a post once created: kept by the process after the first read.
#[derive(Debug, Clone, PartialEq)]
pub struct PostMeta {
    pub author: u64,
    pub created_at: i64,
    pub media_type: String,
    pub media: Vec<String>,
    pub caption: String,
    pub hashtags: Vec<String>,
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

/// A post as it can be shown, or gone.
#[derive(Debug, Clone, PartialEq)]
pub enum Hydrated {
    Visible(PostView),
    /// Not created (yet), or deleted.
    Gone,
}

/// Hydrates `posts` (`(post_id, author_id)`): metadata, counts and the author's username, in
/// at most one round trip for what the process does not hold.
///
/// Post metadata and usernames never change once written, so they are cached without expiry;
/// a deleted post leaves every timeline and recent-posts list in the same atomic step as its
/// delete, and callers only hydrate ids read from those, so a cached post is never shown
/// after its delete was applied. Counts change all the time: they are cached for
/// `serving.counts-ttl` (a feed may show a like count that much behind).
pub async fn hydrate(
    store: &Store,
    posts: &[(u64, u64)],
) -> Result<HashMap<u64, Hydrated>, RedisError> {
    let keys = store.keys();
    let caches = store.caches();
    let mut authors: Vec<u64> = posts.iter().map(|&(_, a)| a).collect();
    authors.sort_unstable();
    authors.dedup();
    let mut names: HashMap<u64, Arc<str>> = HashMap::with_capacity(authors.len());
    let mut unnamed = Vec::new();
    for &author in &authors {
        match caches.usernames.get(&author) {
            Some(name) => {
                names.insert(author, name);
            }
            None => unnamed.push(author),
        }
    }
    let metas: Vec<Option<Arc<PostMeta>>> =
        posts.iter().map(|(p, _)| caches.posts.get(p)).collect();
    let counts: Vec<Option<Counts>> = posts.iter().map(|(p, _)| caches.counts(*p)).collect();

    let mut pipe = redis::pipe();
    for ((&(post, _), meta), count) in posts.iter().zip(&metas).zip(&counts) {
        if meta.is_none() {
            pipe.cmd("HMGET")
                .arg(keys.post_meta(post))
                .arg(&META_FIELDS[..]);
        }
        if count.is_none() {
            pipe.cmd("HMGET")
                .arg(keys.post_counts(post))
                .arg(&COUNT_FIELDS[..]);
        }
    }
    for &author in &unnamed {
        pipe.cmd("HGET").arg(keys.profile(author)).arg("username");
    }
    let mut replies = if pipe.cmd_iter().next().is_some() {
        Some(store.run(&pipe).await?)
    } else {
        None
    };
    let mut out = HashMap::with_capacity(posts.len());
    let mut pending = Vec::with_capacity(posts.len());
    for ((&(post, author), meta), count) in posts.iter().zip(metas).zip(counts) {
        let meta = match (meta, replies.as_mut()) {
            (Some(meta), _) => Some(meta),
            (None, Some(replies)) => {
                let fields: Vec<Option<String>> = replies.take()?;
                read_meta(fields).map(|m| {
                    let m = Arc::new(m);
                    caches.posts.insert(post, m.clone());
                    m
                })
            }
            (None, None) => unreachable!("a missing meta was asked for"),
        };
        let count = match (count, replies.as_mut()) {
            (Some(count), _) => count,
            (None, Some(replies)) => {
                let fields: Vec<Option<String>> = replies.take()?;
                let count = read_counts(&fields);
                caches.put_counts(post, count);
                count
            }
            (None, None) => unreachable!("missing counts were asked for"),
        };
        pending.push((post, author, meta, count));
    }
    for &author in &unnamed {
        let replies = replies.as_mut().expect("usernames were asked for");
        let name: Arc<str> = match replies.take::<Option<String>>()? {
            Some(n) => {
                let n: Arc<str> = n.into();
                caches.usernames.insert(author, n.clone());
                n
            }
            // Not known yet (its user_created is not applied): shown empty, not cached.
            None => Arc::from(""),
        };
        names.insert(author, name);
    }
    for (post, author, meta, count) in pending {
        let state = match meta {
            Some(meta) if meta.author == author => {
                let name = names.get(&author).map_or("", |n| n);
                Hydrated::Visible(view(post, &meta, count, name))
            }
            _ => Hydrated::Gone,
        };
        out.insert(post, state);
    }
    Ok(out)
}

/// A post's like and comment counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub likes: u64,
    pub comments: u64,
}

fn read_counts(fields: &[Option<String>]) -> Counts {
    let count = |v: Option<&Option<String>>| {
        v.and_then(|c| c.as_deref())
            .and_then(|c| c.parse::<i64>().ok())
            .map_or(0, |c| c.max(0) as u64)
    };
    Counts {
        likes: count(fields.first()),
        comments: count(fields.get(1)),
    }
}

/// A post's metadata from its `meta` fields; `None` when it does not exist (yet) or was
/// deleted.
fn read_meta(fields: Vec<Option<String>>) -> Option<PostMeta> {
    let mut fields = fields.into_iter();
    let mut field = || fields.next().flatten();
    let (Some(author), created_at, media_type, media, caption, hashtags, deleted) = (
        field(),
        field(),
        field(),
        field(),
        field(),
        field(),
        field(),
    ) else {
        return None;
    };
    if deleted.as_deref() == Some("1") {
        return None;
    }
    Some(PostMeta {
        author: author.parse().ok()?,
        created_at: created_at?.parse().ok()?,
        media_type: media_type.unwrap_or_default(),
        media: json_list(media.as_deref()),
        caption: caption.unwrap_or_default(),
        hashtags: json_list(hashtags.as_deref()),
    })
}

fn view(post: u64, meta: &PostMeta, counts: Counts, username: &str) -> PostView {
    PostView {
        post_id: post,
        author_id: meta.author,
        author_username: username.to_owned(),
        media_type: meta.media_type.clone(),
        media: meta.media.clone(),
        caption: meta.caption.clone(),
        hashtags: meta.hashtags.clone(),
        created_at: meta.created_at,
        like_count: counts.likes,
        comment_count: counts.comments,
        source: None,
        origin: None,
        breakdown: None,
    }
}

/// A JSON array of strings as the jobs store it; anything else reads as empty.
fn json_list(text: Option<&str>) -> Vec<String> {
    text.and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_default()
}
