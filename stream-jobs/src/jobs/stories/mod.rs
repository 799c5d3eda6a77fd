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
/// Returns how many keys or entries it removed.
pub fn sweep(
    con: &mut dyn redis::ConnectionLike,
    keys: &Keyspace,
    now_ms: i64,
) -> redis::RedisResult<u64> {
    let cutoff = now_ms - STORY_TTL_MS;
    let mut removed = 0u64;
    for key in scan_keys(con, &format!("{}:{{u:*}}:stories", keys.prefix()))? {
        let n: u64 = redis::cmd("ZREMRANGEBYSCORE")
            .arg(&key)
            .arg("-inf")
            .arg(format!("({cutoff}"))
            .query(con)?;
        removed += n;
    }
    for key in scan_keys(con, &format!("{}:{{s:*}}:meta", keys.prefix()))? {
        let ts: Option<i64> = redis::cmd("HGET").arg(&key).arg("ts").query(con)?;
        if ts.is_some_and(|ts| ts < cutoff) {
            let viewers = key.replace("}:meta", "}:viewers");
            let n: u64 = redis::cmd("DEL").arg(&key).arg(viewers).query(con)?;
            removed += n;
        }
    }
    Ok(removed)
}

pub(crate) fn scan_keys(
    con: &mut dyn redis::ConnectionLike,
    pattern: &str,
) -> redis::RedisResult<Vec<String>> {
    let mut cursor = 0u64;
    let mut out = Vec::new();
    loop {
        let (next, page): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query(con)?;
        out.extend(page);
        if next == 0 {
            return Ok(out);
        }
        cursor = next;
    }
}
