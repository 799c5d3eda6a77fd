//! The home feed: the viewer's pushed timeline merged with the recent posts of the celebrities
//! they follow, newest first.
//!
//! # How a page is built
//!
//! 1. One round trip reads the viewer's state, all in the viewer's own hash slot: `stale` flag,
//!    the celebrities they follow and the accounts they block or are blocked by (sets the graph
//!    job keeps), and the top of the pushed timeline below the cursor. A *stale* viewer
//!    (inactive long enough that fan-out skipped them) has no trustworthy pushed timeline:
//!    every followee's recent posts are pulled instead, until the jobs rebuild it, which costs
//!    one more round trip for the following set.
//! 2. One round trip reads the top of each pulled author's recent posts below the cursor.
//! 3. Candidates are merged ([`merge`]), dropping authors blocked either way; hydration
//!    ([`hydrate`]) reads only what the process does not hold, usually nothing.
//!
//! Why a timeline needs no read-time follow check: every write to a timeline (push, backfill,
//! rebuild) reads the author's followers in the same atomic script, and an unfollow or block
//! removes the author's posts from the timeline in the script that ends the follow, so a
//! timeline only ever holds posts of accounts its owner follows (the oracle tests compare
//! timelines after every random sequence). Blocks are still checked at read time, from the
//! viewer's own sets, so no lag anywhere can show content across one.
//!
//! Each source is read `n` items deep. Where a source came back full, items older than its last
//! one may still be missing, so only items strictly newer than every full source's last item
//! are certain; if those do not fill the page, the sources are read again, deeper. Timelines are
//! capped (800) and so are recent posts (100), so this ends after a few rounds at worst.

use std::collections::{HashMap, HashSet};

use redis::RedisError;
use serde::Serialize;
use utoipa::ToSchema;

use crate::cursor::Cursor;
pub use crate::posts::Source;
use crate::posts::{Hydrated, PostView, hydrate};
use crate::store::Store;

/// A page of the feed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FeedPage {
    /// Newest first; each carries its `source`.
    pub items: Vec<PostView>,
    /// Pass back as `cursor` for the next page; `null` at the end of the feed.
    pub next_cursor: Option<String>,
}

/// A post before hydration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    pub ts: i64,
    pub post: u64,
    pub author: u64,
    pub source: Source,
}

/// What one source returned: its items below the cursor, newest first by score, and whether it
/// came back full (so older items may exist beyond the last).
#[derive(Debug, Clone, Default)]
pub struct Fetched {
    pub items: Vec<Candidate>,
    pub full: bool,
}

/// Merges sources into the candidates that are certain (no unread item of any source can come
/// before them), newest first, deduplicated by post (a pushed copy wins over a pulled one),
/// strictly after `cursor`, from authors `keep` accepts. The flag says whether every source
/// was read to its end.
pub fn merge(
    sources: &[Fetched],
    cursor: Option<Cursor>,
    keep: impl Fn(u64) -> bool,
) -> (Vec<Candidate>, bool) {
    let floor = sources
        .iter()
        .filter(|s| s.full)
        .filter_map(|s| s.items.iter().map(|c| c.ts).min())
        .max();
    let mut by_post: HashMap<u64, Candidate> = HashMap::new();
    for c in sources.iter().flat_map(|s| &s.items) {
        if cursor.is_some_and(|cur| !cur.is_before(c.ts, c.post)) {
            continue;
        }
        if floor.is_some_and(|f| c.ts <= f) {
            continue;
        }
        if !keep(c.author) {
            continue;
        }
        by_post
            .entry(c.post)
            .and_modify(|seen| {
                if c.source < seen.source {
                    *seen = *c;
                }
            })
            .or_insert(*c);
    }
    let mut out: Vec<Candidate> = by_post.into_values().collect();
    out.sort_by_key(|c| std::cmp::Reverse((c.ts, c.post)));
    (out, floor.is_none())
}

/// Most items a page may ask for, and the default.
pub const MAX_LIMIT: usize = 100;
pub const DEFAULT_LIMIT: usize = 20;

/// The page of `viewer`'s home feed after `cursor`.
pub async fn page(
    store: &Store,
    viewer: u64,
    cursor: Option<Cursor>,
    limit: usize,
) -> Result<FeedPage, RedisError> {
    let keys = store.keys();
    let max = cursor.map_or("+inf".to_string(), |c| c.ts.to_string());
    let mut depth = limit + 1;

    // Step 1: the viewer, and the top of the pushed timeline.
    let mut pipe = redis::pipe();
    pipe.cmd("HGET").arg(keys.profile(viewer)).arg("stale");
    pipe.cmd("SMEMBERS").arg(keys.celebrity_followees(viewer));
    pipe.cmd("SMEMBERS").arg(keys.blocks(viewer));
    pipe.cmd("SMEMBERS").arg(keys.blocked_by(viewer));
    push_range(&mut pipe, &keys.timeline(viewer), &max, depth);
    let mut replies = store.run(&pipe).await?;
    let stale = replies.take::<Option<String>>()?.as_deref() == Some("1");
    let mut pulled: Vec<u64> = replies.take()?;
    let mut blocks: HashSet<u64> = replies.take::<Vec<u64>>()?.into_iter().collect();
    blocks.extend(replies.take::<Vec<u64>>()?);
    let mut timeline = read_timeline(replies.take_scored()?, depth);
    if stale {
        timeline = Fetched::default();
        let mut pipe = redis::pipe();
        pipe.cmd("ZRANGE")
            .arg(keys.following(viewer))
            .arg(0)
            .arg(-1);
        pulled = store.run(&pipe).await?.take()?;
    }

    let mut hydrated: HashMap<u64, Hydrated> = HashMap::new();
    loop {
        // Step 2: the pulled authors' recent posts, as deep as the timeline was read.
        let mut sources = Vec::with_capacity(pulled.len() + 1);
        if !pulled.is_empty() {
            let mut pipe = redis::pipe();
            for &author in &pulled {
                push_range(&mut pipe, &keys.recent_posts(author), &max, depth);
            }
            let mut replies = store.run(&pipe).await?;
            for &author in &pulled {
                sources.push(read_recent(author, replies.take_scored()?, depth));
            }
        }
        sources.push(std::mem::take(&mut timeline));
        let (candidates, exhausted) = merge(&sources, cursor, |a| !blocks.contains(&a));

        // Step 3: hydrate candidates in order, only as many as the page still needs, then
        // fill the page.
        let mut items = Vec::with_capacity(limit + 1);
        let mut next = 0;
        while items.len() <= limit && next < candidates.len() {
            let want = limit + 1 - items.len();
            let batch = &candidates[next..(next + want).min(candidates.len())];
            let missing: Vec<(u64, u64)> = batch
                .iter()
                .filter(|c| !hydrated.contains_key(&c.post))
                .map(|c| (c.post, c.author))
                .collect();
            if !missing.is_empty() {
                hydrated.extend(hydrate(store, &missing).await?);
            }
            for c in batch {
                if let Some(Hydrated::Visible(post)) = hydrated.get(&c.post) {
                    let mut post = post.clone();
                    post.source = Some(c.source);
                    items.push(post);
                }
            }
            next += batch.len();
        }
        if items.len() > limit || exhausted {
            let more = items.len() > limit;
            items.truncate(limit);
            let next_cursor = match items.last() {
                Some(last) if more => Some(
                    Cursor {
                        ts: last.created_at,
                        id: last.post_id,
                    }
                    .encode(),
                ),
                _ => None,
            };
            return Ok(FeedPage { items, next_cursor });
        }
        // Not enough certain items: read every source deeper.
        depth *= 4;
        if !stale {
            let mut pipe = redis::pipe();
            push_range(&mut pipe, &keys.timeline(viewer), &max, depth);
            timeline = read_timeline(store.run(&pipe).await?.take_scored()?, depth);
        }
    }
}

/// `ZREVRANGEBYSCORE key max -inf WITHSCORES LIMIT 0 depth`: the newest `depth` items at or
/// below the cursor's time (items at exactly that time are filtered by post id in [`merge`]).
fn push_range(pipe: &mut redis::Pipeline, key: &str, max: &str, depth: usize) {
    pipe.cmd("ZREVRANGEBYSCORE")
        .arg(key)
        .arg(max)
        .arg("-inf")
        .arg("WITHSCORES")
        .arg("LIMIT")
        .arg(0)
        .arg(depth);
}

/// Timeline members are `author:post`.
fn read_timeline(scored: Vec<(String, i64)>, depth: usize) -> Fetched {
    let full = scored.len() >= depth;
    let items = scored
        .into_iter()
        .filter_map(|(member, ts)| {
            let (author, post) = member.split_once(':')?;
            Some(Candidate {
                ts,
                post: post.parse().ok()?,
                author: author.parse().ok()?,
                source: Source::Push,
            })
        })
        .collect();
    Fetched { items, full }
}

/// Recent-posts members are post ids.
fn read_recent(author: u64, scored: Vec<(String, i64)>, depth: usize) -> Fetched {
    let full = scored.len() >= depth;
    let items = scored
        .into_iter()
        .filter_map(|(member, ts)| {
            Some(Candidate {
                ts,
                post: member.parse().ok()?,
                author,
                source: Source::Pull,
            })
        })
        .collect();
    Fetched { items, full }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cand(ts: i64, post: u64, author: u64, source: Source) -> Candidate {
        Candidate {
            ts,
            post,
            author,
            source,
        }
    }

    /// The reference: everything from every source, read to the end, merged the obvious way.
    fn reference(
        all: &[Vec<Candidate>],
        cursor: Option<Cursor>,
        keep: impl Fn(u64) -> bool,
    ) -> Vec<Candidate> {
        let mut by_post: HashMap<u64, Candidate> = HashMap::new();
        for c in all.iter().flatten() {
            let e = by_post.entry(c.post).or_insert(*c);
            if c.source < e.source {
                *e = *c;
            }
        }
        let mut v: Vec<Candidate> = by_post
            .into_values()
            .filter(|c| cursor.is_none_or(|cur| cur.is_before(c.ts, c.post)))
            .filter(|c| keep(c.author))
            .collect();
        v.sort_by_key(|c| std::cmp::Reverse((c.ts, c.post)));
        v
    }

    /// What a source read `depth` deep returns: like Redis, the items with score <= the
    /// cursor's time, highest score first, ties in some member order.
    fn read(source: &[Candidate], cursor: Option<Cursor>, depth: usize) -> Fetched {
        let mut v: Vec<Candidate> = source
            .iter()
            .filter(|c| cursor.is_none_or(|cur| c.ts <= cur.ts))
            .copied()
            .collect();
        v.sort_by_key(|c| (std::cmp::Reverse(c.ts), c.author, c.post.to_string()));
        let full = v.len() >= depth;
        v.truncate(depth);
        Fetched { items: v, full }
    }

    fn source_strategy(source: Source) -> impl Strategy<Value = Vec<Candidate>> {
        // Few distinct times and posts, so ties and duplicates across sources are common.
        prop::collection::vec((0i64..12, 1u64..40, 1u64..6), 0..30).prop_map(move |v| {
            let mut seen = HashSet::new();
            v.into_iter()
                .filter(|&(_, post, _)| seen.insert(post))
                // A post has one author and one time wherever it appears.
                .map(|(_, post, _)| cand((post as i64 * 7) % 12, post, post % 5 + 1, source))
                .collect()
        })
    }

    proptest! {
        /// Reading sources shallowly and deepening as `page` does yields, page by page, exactly
        /// the reference order: nothing skipped, nothing repeated.
        #[test]
        fn paging_with_deepening_equals_the_reference(
            timeline in source_strategy(Source::Push),
            pulls in prop::collection::vec(source_strategy(Source::Pull), 0..3),
            following in prop::collection::hash_set(1u64..6, 0..6),
            blocks in prop::collection::hash_set(1u64..6, 0..2),
            limit in 1usize..6,
        ) {
            let keep = |a: u64| following.contains(&a) && !blocks.contains(&a);
            let mut all = pulls.clone();
            all.push(timeline.clone());
            let expected = reference(&all, None, keep);

            let mut got = Vec::new();
            let mut cursor = None;
            loop {
                let mut depth = limit + 1;
                let page = loop {
                    let sources: Vec<Fetched> = all.iter().map(|s| read(s, cursor, depth)).collect();
                    let (cands, exhausted) = merge(&sources, cursor, keep);
                    if cands.len() > limit || exhausted {
                        break cands;
                    }
                    depth *= 4;
                };
                let more = page.len() > limit;
                let page: Vec<Candidate> = page.into_iter().take(limit).collect();
                got.extend(page.iter().copied());
                match page.last() {
                    Some(last) if more => cursor = Some(Cursor { ts: last.ts, id: last.post }),
                    _ => break,
                }
            }
            prop_assert_eq!(got, expected);
        }
    }

    #[test]
    fn a_pushed_copy_wins_over_a_pulled_one() {
        let sources = [
            Fetched {
                items: vec![cand(5, 1, 7, Source::Pull)],
                full: false,
            },
            Fetched {
                items: vec![cand(5, 1, 7, Source::Push)],
                full: false,
            },
        ];
        let (items, exhausted) = merge(&sources, None, |a| a == 7);
        assert_eq!(items, vec![cand(5, 1, 7, Source::Push)]);
        assert!(exhausted);
    }
}
