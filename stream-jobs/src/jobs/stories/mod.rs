//! The stories job: each author's live stories, who saw them, and close-friends lists.
//!
//! A story lives 24 h from its event time. Its metadata (`story`) and the author's `stories`
//! ZSET carry a Redis TTL at that instant (`PEXPIREAT`), and [`Job::maintain`] sweeps what a
//! missed TTL left behind, so nothing outlives 24 h. Trays are not pushed: the read API pulls
//! the live stories of the accounts a viewer follows when the tray is asked for, which is
//! exact whatever order follows, blocks and stories arrived in (private accounts reach
//! approved followers only, because only they are in `following`; close-friends stories reach
//! the author's `close_friends` only). Views are per viewer (`stories_seen`, for unseen-first
//! trays) and per story (`story_viewers`, the author's viewer list).

use aperture_schema::Envelope;
use aperture_schema::event::{Audience, Event};
use aperture_schema::keys::Keyspace;

use super::sweep::{pipelined_sum, scan_pages, trim_sorted_sets};
use super::{Job, Records};

/// How long a story lives: 24 h of event time.
pub const STORY_TTL_MS: i64 = aperture_schema::state::STORY_TTL_MS;

/// See the module documentation.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stories;

impl Job for Stories {
    fn name(&self) -> &'static str {
        "stories"
    }

    fn lua(&self) -> String {
        include_str!("stories.lua").to_owned()
    }

    fn encode(&self, batch: &[(i64, &Envelope)], out: &mut Records) {
        for &(offset, e) in batch {
            let actor = e.actor_id.to_string();
            let ts = e.ts.to_string();
            match &e.event {
                Event::StoryCreated(s) => out.push(
                    offset,
                    [
                        "sc".into(),
                        actor,
                        ts,
                        s.story_id.to_string(),
                        match s.media_type {
                            aperture_schema::event::StoryMediaType::Photo => "photo",
                            aperture_schema::event::StoryMediaType::Video => "video",
                        }
                        .into(),
                        s.media.first().cloned().unwrap_or_default(),
                        match s.audience {
                            Audience::Followers => "followers",
                            Audience::CloseFriends => "close_friends",
                        }
                        .into(),
                    ],
                ),
                Event::StoryViewed(v) => out.push(
                    offset,
                    [
                        "sv".into(),
                        actor,
                        ts,
                        v.story_id.to_string(),
                        v.author_id.to_string(),
                        String::new(),
                        String::new(),
                    ],
                ),
                Event::CloseFriendAdded(t) => out.push(
                    offset,
                    [
                        "cf+".into(),
                        actor,
                        ts,
                        t.target_id.to_string(),
                        String::new(),
                        String::new(),
                        String::new(),
                    ],
                ),
                Event::CloseFriendRemoved(t) => out.push(
                    offset,
                    [
                        "cf-".into(),
                        actor,
                        ts,
                        t.target_id.to_string(),
                        String::new(),
                        String::new(),
                        String::new(),
                    ],
                ),
                _ => {}
            }
        }
    }

    fn maintain(
        &self,
        con: &mut dyn redis::ConnectionLike,
        keys: &Keyspace,
        now_ms: i64,
    ) -> redis::RedisResult<u64> {
        sweep(con, keys, now_ms)
    }
}

/// Removes every story older than 24 h at `now_ms` (wall-clock ms) that a missed TTL left
/// behind: entries of the authors' `stories`, and the stories' metadata and viewer lists.
/// Returns how many keys or entries it removed. Each `SCAN` page of keys costs at most one
/// pipeline (two for metadata: read the times, then delete the expired).
pub fn sweep(
    con: &mut dyn redis::ConnectionLike,
    keys: &Keyspace,
    now_ms: i64,
) -> redis::RedisResult<u64> {
    let cutoff = now_ms - STORY_TTL_MS;
    let authors = format!("{}:{{u:*}}:stories", keys.prefix());
    let mut removed = trim_sorted_sets(con, &authors, cutoff)?;
    let stories = format!("{}:{{s:*}}:meta", keys.prefix());
    scan_pages(con, &stories, |con, page| {
        let mut read_times = redis::pipe();
        for key in page {
            read_times.hget(key, "ts");
        }
        let times: Vec<Option<i64>> = read_times.query(con)?;
        let expired = page
            .iter()
            .zip(times)
            .filter(|(_, ts)| ts.is_some_and(|ts| ts < cutoff))
            .map(|(key, _)| key.as_str());
        removed += pipelined_sum(con, expired, |pipe, key| {
            pipe.del(key).del(key.replace("}:meta", "}:viewers"));
        })?;
        Ok(())
    })?;
    Ok(removed)
}
