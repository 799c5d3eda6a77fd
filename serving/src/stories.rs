//! Stories: `GET /v1/stories/tray` and `GET /v1/stories/{id}/viewers`.
//!
//! The tray is pulled when asked for, from the live stories (younger than 24 h of event time)
//! of the accounts the viewer actively follows: approved followers only for private
//! accounts, since only they are in `following`; close-friends stories only when the author
//! lists the viewer as a close friend. Authors with a story the viewer has not seen come
//! first, then the others; within each group, the author with the newest story first. A story
//! is visible until 24 h after its event time, checked here against the clock as well as by
//! the TTL the job set, so a story never outlives its day.

use std::collections::{HashMap, HashSet};

use aperture_schema::state::STORY_TTL_MS;
use redis::RedisError;
use serde::Serialize;
use utoipa::ToSchema;

use crate::cursor::Cursor;
use crate::notifications::usernames;
use crate::store::Store;

/// One story in a tray.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct StoryView {
    pub story_id: u64,
    pub media_type: String,
    pub media: String,
    /// Event time (ms).
    pub created_at: i64,
    /// `created_at` + 24 h.
    pub expires_at: i64,
    /// Shared with the author's close friends only.
    pub close_friends: bool,
    /// The viewer has seen it.
    pub seen: bool,
}

/// One author's live stories in the viewer's tray, oldest first (the order they play in).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TrayItem {
    pub author_id: u64,
    pub author_username: String,
    /// Some story is not seen yet.
    pub has_unseen: bool,
    /// Time of the newest story (ms).
    pub latest_at: i64,
    pub stories: Vec<StoryView>,
}

/// The viewer's story tray.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Tray {
    pub items: Vec<TrayItem>,
    /// The tray is one list: its length is bounded by the accounts the viewer follows.
    pub next_cursor: Option<String>,
}

/// The viewer's tray at `now_ms`.
pub async fn tray(store: &Store, viewer: u64, now_ms: i64) -> Result<Tray, RedisError> {
    let keys = store.keys();
    let since = now_ms - STORY_TTL_MS;
    let mut pipe = redis::pipe();
    pipe.cmd("ZRANGE")
        .arg(keys.following(viewer))
        .arg(0)
        .arg(-1);
    pipe.cmd("ZRANGE")
        .arg(keys.stories_seen(viewer))
        .arg(0)
        .arg(-1);
    let mut replies = store.run(&pipe).await?;
    let following: Vec<u64> = replies.take()?;
    let seen: HashSet<u64> = replies.take::<Vec<u64>>()?.into_iter().collect();
    if following.is_empty() {
        return Ok(Tray {
            items: Vec::new(),
            next_cursor: None,
        });
    }

    // The live stories of every followee.
    let mut pipe = redis::pipe();
    for &author in &following {
        pipe.cmd("ZRANGEBYSCORE")
            .arg(keys.stories(author))
            .arg(format!("({since}"))
            .arg("+inf");
    }
    let mut replies = store.run(&pipe).await?;
    let mut live: Vec<(u64, u64)> = Vec::new();
    for &author in &following {
        for story in replies.take::<Vec<u64>>()? {
            live.push((author, story));
        }
    }
    if live.is_empty() {
        return Ok(Tray {
            items: Vec::new(),
            next_cursor: None,
        });
    }

    // Their metadata, and whether the viewer is a close friend of each author.
    let authors: Vec<u64> = {
        let mut a: Vec<u64> = live.iter().map(|&(a, _)| a).collect();
        a.dedup();
        a
    };
    let mut pipe = redis::pipe();
    for &(_, story) in &live {
        pipe.cmd("HMGET")
            .arg(keys.story(story))
            .arg(&["author", "ts", "media_type", "media", "audience"][..]);
    }
    for &author in &authors {
        pipe.cmd("SISMEMBER")
            .arg(keys.close_friends(author))
            .arg(viewer);
    }
    let mut replies = store.run(&pipe).await?;
    let mut metas = Vec::with_capacity(live.len());
    for _ in &live {
        metas.push(replies.take::<Vec<Option<String>>>()?);
    }
    let mut close: HashSet<u64> = HashSet::new();
    for &author in &authors {
        if replies.take::<bool>()? {
            close.insert(author);
        }
    }

    let mut by_author: HashMap<u64, Vec<StoryView>> = HashMap::new();
    for (&(author, story), meta) in live.iter().zip(metas) {
        let field = |i: usize| meta.get(i).cloned().flatten();
        let (Some(owner), Some(ts)) = (field(0), field(1).and_then(|t| t.parse::<i64>().ok()))
        else {
            continue; // expired between the reads
        };
        if owner != author.to_string() || ts <= since {
            continue;
        }
        let close_friends = field(4).as_deref() == Some("close_friends");
        if close_friends && !close.contains(&author) {
            continue;
        }
        by_author.entry(author).or_default().push(StoryView {
            story_id: story,
            media_type: field(2).unwrap_or_default(),
            media: field(3).unwrap_or_default(),
            created_at: ts,
            expires_at: ts + STORY_TTL_MS,
            close_friends,
            seen: seen.contains(&story),
        });
    }
    let authors: Vec<u64> = by_author.keys().copied().collect();
    let names = usernames(store, &authors).await?;
    let mut items: Vec<TrayItem> = by_author
        .into_iter()
        .map(|(author, mut stories)| {
            stories.sort_by_key(|s| (s.created_at, s.story_id));
            TrayItem {
                author_id: author,
                author_username: names.get(&author).map_or("", |n| n).to_owned(),
                has_unseen: stories.iter().any(|s| !s.seen),
                latest_at: stories.last().map_or(0, |s| s.created_at),
                stories,
            }
        })
        .collect();
    items.sort_by_key(|i| {
        (
            std::cmp::Reverse(i.has_unseen),
            std::cmp::Reverse(i.latest_at),
            i.author_id,
        )
    });
    Ok(Tray {
        items,
        next_cursor: None,
    })
}

/// Who saw a story, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct StoryViewer {
    pub user_id: u64,
    pub username: String,
    /// When they first saw it (ms).
    pub viewed_at: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ViewerPage {
    pub items: Vec<StoryViewer>,
    pub next_cursor: Option<String>,
    /// Everyone who saw the story.
    pub total: u64,
}

/// Why a viewer list is not given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No such live story.
    NotFound,
    /// Someone else's story.
    NotTheAuthor,
}

/// The viewers of `story`, for its author only.
pub async fn viewers(
    store: &Store,
    viewer: u64,
    story: u64,
    cursor: Option<Cursor>,
    limit: usize,
    now_ms: i64,
) -> Result<Result<ViewerPage, Refusal>, RedisError> {
    let keys = store.keys();
    let max = cursor.map_or("+inf".to_owned(), |c| c.ts.to_string());
    let mut pipe = redis::pipe();
    pipe.cmd("HMGET")
        .arg(keys.story(story))
        .arg(&["author", "ts"][..]);
    pipe.cmd("ZCARD").arg(keys.story_viewers(story));
    let mut replies = store.run(&pipe).await?;
    let meta: Vec<Option<i64>> = replies.take()?;
    let total: u64 = replies.take()?;
    let (Some(Some(author)), Some(Some(ts))) = (meta.first(), meta.get(1)) else {
        return Ok(Err(Refusal::NotFound));
    };
    if ts + STORY_TTL_MS <= now_ms {
        return Ok(Err(Refusal::NotFound));
    }
    if *author as u64 != viewer {
        return Ok(Err(Refusal::NotTheAuthor));
    }

    // Ties on a millisecond are possible: read past them and filter by the cursor.
    let mut depth = limit + 1;
    let page = loop {
        let mut pipe = redis::pipe();
        pipe.cmd("ZREVRANGEBYSCORE")
            .arg(keys.story_viewers(story))
            .arg(&max)
            .arg("-inf")
            .arg("WITHSCORES")
            .arg("LIMIT")
            .arg(0)
            .arg(depth);
        let scored = store.run(&pipe).await?.take_scored()?;
        let full = scored.len() >= depth;
        let mut page: Vec<(u64, i64)> = scored
            .into_iter()
            .filter_map(|(m, ts)| Some((m.parse::<u64>().ok()?, ts)))
            .filter(|&(user, ts)| cursor.is_none_or(|c| c.is_before(ts, user)))
            .collect();
        page.sort_by_key(|&(user, ts)| std::cmp::Reverse((ts, user)));
        if page.len() > limit || !full {
            break page;
        }
        depth *= 4;
    };
    let more = page.len() > limit;
    let page = &page[..page.len().min(limit)];
    let users: Vec<u64> = page.iter().map(|p| p.0).collect();
    let names = usernames(store, &users).await?;
    let next_cursor = match page.last() {
        Some(&(user, ts)) if more => Some(Cursor { ts, id: user }.encode()),
        _ => None,
    };
    Ok(Ok(ViewerPage {
        items: page
            .iter()
            .map(|&(user_id, viewed_at)| StoryViewer {
                user_id,
                username: names.get(&user_id).map_or("", |n| n).to_owned(),
                viewed_at,
            })
            .collect(),
        next_cursor,
        total,
    }))
}
