//! The jobs' housekeeping ([`Job::maintain`]) on a real Redis: what the stories and trending
//! sweeps remove and what they keep, over more keys than one `SCAN` page holds, and that a
//! second sweep finds nothing more.

mod support;

use aperture_schema::state::{STORY_TTL_MS, TREND_KEEP_MS};
use aperture_stream_jobs::jobs::Job;
use aperture_stream_jobs::jobs::stories::{self, Stories};
use aperture_stream_jobs::jobs::trending::Trending;
use support::compare::{now_ms, zset};
use support::*;

/// More keys of each kind than a `SCAN` call looks at (`COUNT` 1,000, in `jobs::sweep`), so a
/// sweep has to walk several pages.
const MANY: u64 = 2_500;

fn members(con: &mut redis::Connection, key: &str) -> Vec<String> {
    zset(con, key).into_keys().collect()
}

fn exists(con: &mut redis::Connection, key: &str) -> bool {
    redis::cmd("EXISTS").arg(key).query(con).unwrap()
}

#[test]
fn the_stories_sweep_removes_expired_stories_and_keeps_live_ones() {
    let config = test_config("sweep-stories", 1);
    let _wipe = WipeOnDrop(&config);
    let k = config.keyspace();
    let mut con = redis(&config);
    let now = now_ms();
    let cutoff = now - STORY_TTL_MS;

    // Author a has story 10,000 + 2a (expired, as its TTLs were lost) and 10,001 + 2a
    // (live). Each has metadata and viewers, and no TTL.
    let mut setup = redis::pipe();
    for a in 0..MANY {
        let (old, live) = (2 * a + 10_000, 2 * a + 10_001);
        setup
            .zadd(k.stories(a), old, cutoff - 1)
            .zadd(k.stories(a), live, now)
            .hset(k.story(old), "ts", cutoff - 1)
            .zadd(k.story_viewers(old), 7, cutoff - 1)
            .hset(k.story(live), "ts", now)
            .zadd(k.story_viewers(live), 7, now);
    }
    // At the cutoff itself a story is still live: it has lived exactly 24 h.
    setup
        .zadd(k.stories(MANY), 1, cutoff)
        .hset(k.story(1), "ts", cutoff)
        // Metadata with no time (never written by the job) is not the sweep's to judge.
        .hset(k.story(3), "author", 5)
        // An expired story nobody viewed: its metadata alone goes, and counts once.
        .hset(k.story(5), "ts", cutoff - 1);
    setup.query::<()>(&mut con).unwrap();

    let removed = stories::sweep(&mut con, &k, now).unwrap();
    assert_eq!(
        removed,
        3 * MANY + 1,
        "one set entry, one metadata and one viewer list per expired story, and the metadata \
         of the unviewed one"
    );
    for a in 0..MANY {
        let (old, live) = (2 * a + 10_000, 2 * a + 10_001);
        assert_eq!(members(&mut con, &k.stories(a)), [live.to_string()]);
        assert!(!exists(&mut con, &k.story(old)), "story {old}");
        assert!(!exists(&mut con, &k.story_viewers(old)), "story {old}");
        assert!(exists(&mut con, &k.story(live)), "story {live}");
        assert!(exists(&mut con, &k.story_viewers(live)), "story {live}");
    }
    assert_eq!(members(&mut con, &k.stories(MANY)), ["1"]);
    assert!(exists(&mut con, &k.story(1)));
    assert!(exists(&mut con, &k.story(3)));
    assert!(!exists(&mut con, &k.story(5)));

    assert_eq!(Stories.maintain(&mut con, &k, now).unwrap(), 0);
}

#[test]
fn the_trending_sweep_drops_what_is_older_than_the_kept_history() {
    let config = test_config("sweep-trending", 3);
    let _wipe = WipeOnDrop(&config);
    let k = config.keyspace();
    let mut con = redis(&config);
    let newest = now_ms();
    let cutoff = newest - TREND_KEEP_MS;
    let hour = 3_600_000;

    // Hourly buckets, half of them starting before the cutoff, and two entries per tag, one
    // on each side of it. Keys that only share the pattern's prefix are not buckets.
    let mut setup = redis::pipe();
    let start = |i: u64| cutoff - (MANY as i64 / 2 - i as i64) * hour;
    for i in 0..MANY {
        setup
            .hset(k.trend_bucket("1h", start(i)), "sunset", 1)
            .zadd(k.trend_posts(&format!("tag{i}")), "1:1", cutoff - 1)
            .zadd(k.trend_posts(&format!("tag{i}")), "1:2", cutoff);
    }
    setup
        .set(k.trend_since(), cutoff - 10 * TREND_KEEP_MS)
        .hset(format!("{}:trend:1h:start", k.prefix()), "sunset", 1);
    setup.query::<()>(&mut con).unwrap();

    // No partition has a watermark yet: there is no "now" to measure history from, and the
    // wall clock (which would make the old half old) is not one.
    assert_eq!(Trending.maintain(&mut con, &k, newest).unwrap(), 0);

    // The newest watermark of any partition decides, whichever partition holds it.
    let mut marks = redis::pipe();
    marks
        .set(k.job_watermark("trending", 0), newest - hour)
        .set(k.job_watermark("trending", 1), newest)
        .set(k.job_watermark("trending", 2), newest - 2 * hour);
    marks.query::<()>(&mut con).unwrap();

    let removed = Trending.maintain(&mut con, &k, 0).unwrap();
    assert_eq!(
        removed,
        MANY / 2 + MANY,
        "the buckets that start before the cutoff, and one entry of each tag"
    );
    for i in 0..MANY {
        let bucket = k.trend_bucket("1h", start(i));
        assert_eq!(exists(&mut con, &bucket), start(i) >= cutoff, "{bucket}");
        assert_eq!(
            members(&mut con, &k.trend_posts(&format!("tag{i}"))),
            ["1:2"]
        );
    }
    assert!(exists(&mut con, &k.trend_since()));
    assert!(exists(&mut con, &format!("{}:trend:1h:start", k.prefix())));

    assert_eq!(Trending.maintain(&mut con, &k, 0).unwrap(), 0);
}
