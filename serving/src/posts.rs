//! Hydration: from post ids to what a client shows, in one pipelined round trip.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

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

/// A post the viewer may see, or why not.
#[derive(Debug, Clone, PartialEq)]
pub enum Hydrated {
    Visible(PostView),
    /// Not created (yet), or deleted.
    Gone,
    /// The viewer does not follow its author (when following is required).
    Hidden,
}

/// Whom a viewer may see posts of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Only authors the viewer actively follows (feeds). A block in either direction ends the
    /// follow in the same atomic step as the block, so this also excludes blocked authors;
    /// a request to a private account is not a follow until approved.
    Followed,
    /// Anyone: the caller decided already (a profile's own posts).
    Any,
}

/// Hydrates `posts` (`(post_id, author_id)`) for `viewer` in one round trip: per post its
/// counts, and its metadata unless the process has it already; the viewer's follow of every
/// distinct author (one `ZMSCORE`); and the usernames the process has not cached yet.
///
/// Post metadata and usernames never change once written, so caching them cannot serve a
/// stale value. A deleted post leaves every timeline and recent-posts list in the same atomic
/// step as its delete, and callers only hydrate ids read from those, so a cached post is
/// never shown after its delete was applied.
pub async fn hydrate(
    store: &Store,
    viewer: u64,
    posts: &[(u64, u64)],
    access: Access,
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

    let mut pipe = redis::pipe();
    for (&(post, _), meta) in posts.iter().zip(&metas) {
        if meta.is_none() {
            pipe.cmd("HMGET")
                .arg(keys.post_meta(post))
                .arg(&META_FIELDS[..]);
        }
        pipe.cmd("HMGET")
            .arg(keys.post_counts(post))
            .arg(&COUNT_FIELDS[..]);
    }
    if access == Access::Followed {
        pipe.cmd("ZMSCORE")
            .arg(keys.following(viewer))
            .arg(&authors[..]);
    }
    for &author in &unnamed {
        pipe.cmd("HGET").arg(keys.profile(author)).arg("username");
    }
    let mut replies = store.run(&pipe).await?;
    let mut fetched = Vec::with_capacity(posts.len());
    for (&(post, _), meta) in posts.iter().zip(metas) {
        let meta = match meta {
            Some(meta) => Some(meta),
            None => {
                let fields: Vec<Option<String>> = replies.take()?;
                read_meta(fields).map(|m| {
                    let m = Arc::new(m);
                    caches.posts.insert(post, m.clone());
                    m
                })
            }
        };
        let counts: Vec<Option<String>> = replies.take()?;
        fetched.push((meta, counts));
    }
    let followed: HashSet<u64> = match access {
        Access::Followed => {
            let scores: Vec<Option<f64>> = replies.take()?;
            authors
                .iter()
                .zip(scores)
                .filter_map(|(&a, s)| s.map(|_| a))
                .collect()
        }
        Access::Any => authors.iter().copied().collect(),
    };
    for &author in &unnamed {
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

    let mut out = HashMap::with_capacity(posts.len());
    for (&(post, author), (meta, counts)) in posts.iter().zip(fetched) {
        let state = match meta {
            _ if !followed.contains(&author) => Hydrated::Hidden,
            Some(meta) if meta.author == author => {
                let name = names.get(&author).map_or("", |n| n);
                Hydrated::Visible(view(post, &meta, &counts, name))
            }
            _ => Hydrated::Gone,
        };
        out.insert(post, state);
    }
    Ok(out)
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

fn view(post: u64, meta: &PostMeta, counts: &[Option<String>], username: &str) -> PostView {
    let count = |v: Option<&Option<String>>| {
        v.and_then(|c| c.as_deref())
            .and_then(|c| c.parse::<i64>().ok())
            .map_or(0, |c| c.max(0) as u64)
    };
    PostView {
        post_id: post,
        author_id: meta.author,
        author_username: username.to_owned(),
        media_type: meta.media_type.clone(),
        media: meta.media.clone(),
        caption: meta.caption.clone(),
        hashtags: meta.hashtags.clone(),
        created_at: meta.created_at,
        like_count: count(counts.first()),
        comment_count: count(counts.get(1)),
    }
}

/// A JSON array of strings as the jobs store it; anything else reads as empty.
fn json_list(text: Option<&str>) -> Vec<String> {
    text.and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_default()
}
