//! The trending job: how often each hashtag is posted, in small buckets of event time.
//!
//! Each post adds one to its tags in a 5-minute bucket and a 1-hour bucket (`trend_bucket`,
//! HASH tag → posts) and records `author:post` in the tag's `trend_posts` ZSET. A window of
//! 1 h, 24 h or 7 d is a sum of buckets, so it slides by reading one more bucket and one
//! fewer, never by recounting posts; the read API scores a tag by how far its count stands
//! above its own baseline (the rate of the periods before the window) and requires a floor
//! of distinct accounts from `trend_posts`, so one account posting a tag 500 times does not
//! trend it. A deleted post takes its counts back.
//!
//! Windows are in event time. Each partition has a watermark (the highest event time applied
//! there); a post more than `trending.allowed-lateness` behind it goes to the dead-letter
//! topic instead of its bucket (see [`crate::runtime::script`]). The read API's "now" is the
//! highest watermark of all partitions. Buckets and entries older than [`KEEP_MS`] behind
//! that are swept by [`Job::maintain`].

use std::time::Duration;

use aperture_schema::event::Event;
use aperture_schema::keys::Keyspace;
use aperture_schema::state::TrendGrain;
use aperture_schema::{Config, Envelope};
use serde_json::json;

use super::sweep::{pipelined_sum, scan_pages, trim_sorted_sets};
use super::{Job, Records};

/// 5-minute buckets, for the 1 h window.
pub const FINE_MS: i64 = TrendGrain::Fine.ms();
/// 1-hour buckets, for the 24 h and 7 d windows and every baseline.
pub const COARSE_MS: i64 = TrendGrain::Coarse.ms();
/// How much history is kept: the 7 d window and a 7 d baseline before it, and a day of slack.
pub const KEEP_MS: i64 = aperture_schema::state::TREND_KEEP_MS;

/// See the module documentation.
#[derive(Debug, Clone, Copy, Default)]
pub struct Trending;

impl Job for Trending {
    fn name(&self) -> &'static str {
        "trending"
    }

    fn lua(&self) -> String {
        include_str!("trending.lua").to_owned()
    }

    fn encode(&self, batch: &[(i64, &Envelope)], out: &mut Records) {
        for &(offset, e) in batch {
            match &e.event {
                Event::PostCreated(p) if !p.hashtags.is_empty() => out.push(
                    offset,
                    [
                        "pc".into(),
                        e.actor_id.to_string(),
                        e.ts.to_string(),
                        p.post_id.to_string(),
                        json!(p.hashtags).to_string(),
                    ],
                ),
                Event::PostDeleted(d) => out.push(
                    offset,
                    [
                        "pd".into(),
                        e.actor_id.to_string(),
                        e.ts.to_string(),
                        d.post_id.to_string(),
                        String::new(),
                    ],
                ),
                _ => {}
            }
        }
    }

    fn allowed_lateness(&self, config: &Config) -> Option<Duration> {
        Some(config.trending.allowed_lateness)
    }

    /// Only a tagged post lands in a bucket by its own time; a delete retracts from its post's
    /// buckets whenever it arrives.
    fn windowed(&self, event: &Envelope) -> bool {
        matches!(&event.event, Event::PostCreated(p) if !p.hashtags.is_empty())
    }

    fn maintain(
        &self,
        con: &mut dyn redis::ConnectionLike,
        keys: &Keyspace,
        _now_ms: i64,
    ) -> redis::RedisResult<u64> {
        sweep(con, keys)
    }
}

/// The read side's "now": the highest watermark over the topic's partitions, if any.
pub fn now(
    con: &mut dyn redis::ConnectionLike,
    keys: &Keyspace,
    partitions: u32,
) -> redis::RedisResult<Option<i64>> {
    let mut cmd = redis::cmd("MGET");
    for p in 0..partitions {
        cmd.arg(keys.job_watermark("trending", p));
    }
    let marks: Vec<Option<i64>> = cmd.query(con)?;
    Ok(marks.into_iter().flatten().max())
}

/// Drops buckets and tag entries more than [`KEEP_MS`] behind the newest watermark. Each
/// `SCAN` page of keys costs at most one pipeline.
fn sweep(con: &mut dyn redis::ConnectionLike, keys: &Keyspace) -> redis::RedisResult<u64> {
    // Watermark keys of every partition of this deployment.
    let marks = format!("{}:{{j:trending:*}}:watermark", keys.prefix());
    let mut newest: Option<i64> = None;
    scan_pages(con, &marks, |con, page| {
        let mut read_marks = redis::pipe();
        for key in page {
            read_marks.get(key);
        }
        let marks: Vec<Option<i64>> = read_marks.query(con)?;
        newest = newest.max(marks.into_iter().flatten().max());
        Ok(())
    })?;
    let Some(newest) = newest else { return Ok(0) };
    let cutoff = newest - KEEP_MS;
    let mut removed = 0u64;
    let buckets = format!("{}:trend:*", keys.prefix());
    scan_pages(con, &buckets, |con, page| {
        // A bucket's start is the last part of its name.
        let old = page.iter().map(String::as_str).filter(|key| {
            let start = key.rsplit(':').next().and_then(|s| s.parse::<i64>().ok());
            start.is_some_and(|s| s < cutoff)
        });
        removed += pipelined_sum(con, old, |pipe, key| {
            pipe.del(key);
        })?;
        Ok(())
    })?;
    let tags = format!("{}:{{t:*}}:trend_posts", keys.prefix());
    removed += trim_sorted_sets(con, &tags, cutoff)?;
    Ok(removed)
}
