//! Notifications: `GET /v1/notifications`, `GET /v1/notifications/unread`,
//! `POST /v1/notifications/read`.
//!
//! The notifications job keeps each recipient's batches (`<type>:<post>:<window>`, one per
//! type, post and window of event time) scored by their latest actor. What a batch shows is
//! decided here, with the state at the moment of reading, in one script over the recipient's
//! own hash slot (`lua/notifications.lua`):
//!
//! - actors the recipient blocks, or who block the recipient, are neither named nor counted;
//! - a follow counts while it stands; a follow that waits for the recipient's approval reads
//!   as a follow request; one withdrawn or refused is gone;
//! - a batch about a deleted post is gone.
//!
//! A batch left with no visible actor is not listed. The unread count is the number of listed
//! batches newer than the read marker, which `POST /v1/notifications/read` moves up to the
//! newest batch (it only moves forward).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use redis::{RedisError, Script};
use serde::Serialize;
use utoipa::ToSchema;

use crate::cursor::KeyCursor;
use crate::store::Store;

static READ_BATCHES: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/notifications.lua")));

/// What a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Like,
    Comment,
    Mention,
    Follow,
    FollowRequest,
}

/// An account named in a notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Actor {
    pub user_id: u64,
    pub username: String,
    /// When they acted (ms).
    pub at: i64,
}

/// One notification: a batch of actors doing the same thing, e.g. "ana, ben and 9,998 others
/// liked your post".
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Notification {
    /// Stable for the batch's life.
    pub id: String,
    #[serde(rename = "type")]
    pub kind: Kind,
    /// The post liked, commented or mentioned in; absent for follows.
    pub post_id: Option<u64>,
    /// The latest actors, newest first.
    pub actors: Vec<Actor>,
    /// Every actor in the batch, named or not.
    pub total: u64,
    /// Time of the latest event in the batch (ms).
    pub latest_at: i64,
    /// Newer than the recipient's read marker.
    pub unread: bool,
}

/// A page of notifications, newest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NotificationPage {
    pub items: Vec<Notification>,
    pub next_cursor: Option<String>,
}

/// The unread count.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct Unread {
    pub unread: u64,
}

/// A batch from the recipient's list.
struct Listed {
    batch: String,
    score: i64,
    kind: &'static str,
    post: u64,
}

fn listed(batch: String, score: i64) -> Option<Listed> {
    let mut parts = batch.splitn(3, ':');
    let kind = match parts.next()? {
        "like" => "like",
        "comment" => "comment",
        "mention" => "mention",
        "follow" => "follow",
        _ => return None,
    };
    let post = parts.next()?.parse().ok()?;
    Some(Listed {
        kind,
        post,
        batch,
        score,
    })
}

/// A batch as the recipient may see it now; `None` when nothing of it is visible.
struct Seen {
    total: u64,
    followers: u64,
    /// (actor, time, pending request).
    latest: Vec<(u64, i64, bool)>,
}

/// Evaluates `batches` for `viewer`, naming up to `named` actors of each.
async fn evaluate(
    store: &Store,
    viewer: u64,
    batches: &[Listed],
    named: usize,
) -> Result<Vec<Option<Seen>>, RedisError> {
    if batches.is_empty() {
        return Ok(Vec::new());
    }
    let keys = store.keys();
    let mut script_keys = vec![
        keys.blocks(viewer),
        keys.blocked_by(viewer),
        keys.followers(viewer),
        keys.follow_requests(viewer),
    ];
    let mut args = vec![named.to_string()];
    for b in batches {
        script_keys.push(keys.notification_batch(viewer, &b.batch));
        args.push(if b.kind == "follow" { "f" } else { "o" }.to_owned());
    }
    let rows: Vec<Vec<i64>> = store.script(&READ_BATCHES, &script_keys, &args).await?;

    // Posts deleted since: their batches are gone.
    let mut pipe = redis::pipe();
    let mut asked = Vec::new();
    for b in batches.iter().filter(|b| b.kind != "follow") {
        pipe.cmd("HGET").arg(keys.post_meta(b.post)).arg("deleted");
        asked.push(b.post);
    }
    let mut deleted = HashMap::new();
    if !asked.is_empty() {
        let mut replies = store.run(&pipe).await?;
        for post in asked {
            let flag: Option<String> = replies.take()?;
            deleted.insert(post, flag.as_deref() == Some("1"));
        }
    }
    Ok(batches
        .iter()
        .zip(rows)
        .map(|(b, row)| {
            let total = row.first().copied().unwrap_or(0).max(0) as u64;
            if total == 0 || deleted.get(&b.post).copied().unwrap_or(false) {
                return None;
            }
            let latest = row[2.min(row.len())..]
                .chunks_exact(3)
                .map(|c| (c[0] as u64, c[1], c[2] == 1))
                .collect();
            Some(Seen {
                total,
                followers: row.get(1).copied().unwrap_or(0).max(0) as u64,
                latest,
            })
        })
        .collect())
}

/// Batches of `viewer`'s list at or below `max` (a score), newest first, at most `depth`.
async fn range(
    store: &Store,
    viewer: u64,
    max: &str,
    min: &str,
    depth: usize,
) -> Result<Vec<Listed>, RedisError> {
    let mut pipe = redis::pipe();
    pipe.cmd("ZREVRANGEBYSCORE")
        .arg(store.keys().notifications(viewer))
        .arg(max)
        .arg(min)
        .arg("WITHSCORES")
        .arg("LIMIT")
        .arg(0)
        .arg(depth);
    let scored = store.run(&pipe).await?.take_scored()?;
    Ok(scored
        .into_iter()
        .filter_map(|(batch, score)| listed(batch, score))
        .collect())
}

async fn read_marker(store: &Store, viewer: u64) -> Result<i64, RedisError> {
    let mut pipe = redis::pipe();
    pipe.cmd("GET").arg(store.keys().notifications_read(viewer));
    Ok(store
        .run(&pipe)
        .await?
        .take::<Option<i64>>()?
        .unwrap_or(i64::MIN))
}

/// The page of `viewer`'s notifications after `cursor`.
pub async fn page(
    store: &Store,
    viewer: u64,
    cursor: Option<KeyCursor>,
    limit: usize,
    named: usize,
) -> Result<NotificationPage, RedisError> {
    let marker = read_marker(store, viewer).await?;
    let max = cursor
        .as_ref()
        .map_or("+inf".to_owned(), |c| c.ts.to_string());
    let mut depth = limit + 1;
    let mut shown: Vec<(Listed, Seen)> = Vec::new();
    let mut done: usize = 0;
    loop {
        let listed = range(store, viewer, &max, "-inf", depth).await?;
        let full = listed.len() >= depth;
        // Items read on a previous, shallower pass are already decided.
        let fresh: Vec<Listed> = listed
            .into_iter()
            .filter(|l| {
                cursor
                    .as_ref()
                    .is_none_or(|c| c.is_before(l.score, &l.batch))
            })
            .skip(done)
            .collect();
        done += fresh.len();
        let seen = evaluate(store, viewer, &fresh, named).await?;
        shown.extend(
            fresh
                .into_iter()
                .zip(seen)
                .filter_map(|(l, s)| s.map(|s| (l, s))),
        );
        if shown.len() > limit || !full {
            break;
        }
        depth *= 4;
    }
    let more = shown.len() > limit;
    shown.truncate(limit);
    let next_cursor = match shown.last() {
        Some((last, _)) if more => Some(
            KeyCursor {
                ts: last.score,
                key: last.batch.clone(),
            }
            .encode(),
        ),
        _ => None,
    };

    let actors: Vec<u64> = shown
        .iter()
        .flat_map(|(_, s)| s.latest.iter().map(|a| a.0))
        .collect();
    let names = usernames(store, &actors).await?;
    let items = shown
        .into_iter()
        .map(|(l, s)| {
            let kind = match l.kind {
                "like" => Kind::Like,
                "comment" => Kind::Comment,
                "mention" => Kind::Mention,
                _ if s.followers > 0 => Kind::Follow,
                _ => Kind::FollowRequest,
            };
            Notification {
                post_id: (l.kind != "follow").then_some(l.post),
                actors: s
                    .latest
                    .iter()
                    .map(|&(user_id, at, _)| Actor {
                        user_id,
                        username: names.get(&user_id).map_or("", |n| n).to_owned(),
                        at,
                    })
                    .collect(),
                total: s.total,
                latest_at: s.latest.first().map_or(l.score, |a| a.1),
                unread: l.score > marker,
                kind,
                id: l.batch,
            }
        })
        .collect();
    Ok(NotificationPage { items, next_cursor })
}

/// How many notifications `viewer` has not read.
pub async fn unread(store: &Store, viewer: u64) -> Result<Unread, RedisError> {
    let marker = read_marker(store, viewer).await?;
    let min = if marker == i64::MIN {
        "-inf".to_owned()
    } else {
        format!("({marker}")
    };
    // The list is capped (`notifications.kept`), so this is bounded.
    let listed = range(store, viewer, "+inf", &min, usize::MAX >> 1).await?;
    let seen = evaluate(store, viewer, &listed, 0).await?;
    Ok(Unread {
        unread: seen.iter().filter(|s| s.is_some()).count() as u64,
    })
}

/// Marks everything listed now as read.
pub async fn mark_read(store: &Store, viewer: u64) -> Result<(), RedisError> {
    let mut pipe = redis::pipe();
    pipe.cmd("ZREVRANGE")
        .arg(store.keys().notifications(viewer))
        .arg(0)
        .arg(0)
        .arg("WITHSCORES");
    let newest = store.run(&pipe).await?.take_scored()?;
    if let Some((_, score)) = newest.first() {
        store
            .raise(&store.keys().notifications_read(viewer), *score)
            .await?;
    }
    Ok(())
}

/// Usernames of `users`, from the process's cache or one pipelined read.
pub async fn usernames(store: &Store, users: &[u64]) -> Result<HashMap<u64, Arc<str>>, RedisError> {
    let caches = store.caches();
    let mut out = HashMap::new();
    let mut missing = Vec::new();
    for &user in users {
        if out.contains_key(&user) || missing.contains(&user) {
            continue;
        }
        match caches.usernames.get(&user) {
            Some(name) => {
                out.insert(user, name);
            }
            None => missing.push(user),
        }
    }
    if !missing.is_empty() {
        let mut pipe = redis::pipe();
        for &user in &missing {
            pipe.cmd("HGET")
                .arg(store.keys().profile(user))
                .arg("username");
        }
        let mut replies = store.run(&pipe).await?;
        for user in missing {
            if let Some(name) = replies.take::<Option<String>>()? {
                let name: Arc<str> = name.into();
                caches.usernames.insert(user, name.clone());
                out.insert(user, name);
            }
        }
    }
    Ok(out)
}
