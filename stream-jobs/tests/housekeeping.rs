//! The jobs' housekeeping ([`Job::maintain`]) on a real Redis: what the stories and trending
//! sweeps remove and what they keep, over more keys than one `SCAN` page holds, and that a
//! second sweep finds nothing more.

mod support;

use aperture_schema::state::{STORY_TTL_MS, TREND_KEEP_MS};
use aperture_stream_jobs::jobs::Job;
use aperture_stream_jobs::jobs::stories::{self, Stories};
use aperture_stream_jobs::jobs::trending::Trending;
use support::compare::now_ms;
use support::*;

/// More keys of each kind than a `SCAN` page, so a sweep has to walk several.
const MANY: u64 = 2_500;

fn zmembers_of(con: &mut redis::Connection, key: &str) -> Vec<String> {
    redis::cmd("ZRANGE")
        .arg(key)
        .arg(0)
        .arg(-1)
        .query(con)
        .unwrap()
}

fn exists(con: &mut redis::Connection, key: &str) -> bool {
    redis::cmd("EXISTS").arg(key).query(con).unwrap()
}

/// Deletes the test's keys, so they do not lengthen other tests' `SCAN`s.
fn wipe(con: &mut redis::Connection, prefix: &str) {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query(con)
        .unwrap();
    let mut del = redis::pipe();
    for key in &keys {
        del.del(key);
    }
    del.query::<()>(con).unwrap();
}

#[test]
fn the_stories_sweep_removes_expired_stories_and_keeps_live_ones() {
    let config = test_config("sweep-stories", 1);
    let k = config.keyspace();
    let mut con = redis(&config);
    let now = now_ms();
    let cutoff = now - STORY_TTL_MS;

    // Author a has story 2a (expired, as its TTLs were lost) and 2a + 1 (live). Expired
    // stories are even ids, live ones odd; each has metadata and viewers, and no TTL.
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
        .hset(k.story(3), "author", 5);
    setup.query::<()>(&mut con).unwrap();

    let removed = stories::sweep(&mut con, &k, now).unwrap();
    assert_eq!(
        removed,
        3 * MANY,
        "one set entry, one metadata and one viewer list per expired story"
    );
    for a in 0..MANY {
        let (old, live) = (2 * a + 10_000, 2 * a + 10_001);
        assert_eq!(zmembers_of(&mut con, &k.stories(a)), [live.to_string()]);
        assert!(!exists(&mut con, &k.story(old)), "story {old}");
        assert!(!exists(&mut con, &k.story_viewers(old)), "story {old}");
        assert!(exists(&mut con, &k.story(live)), "story {live}");
        assert!(exists(&mut con, &k.story_viewers(live)), "story {live}");
    }
    assert_eq!(zmembers_of(&mut con, &k.stories(MANY)), ["1"]);
    assert!(exists(&mut con, &k.story(1)));
    assert!(exists(&mut con, &k.story(3)));

    assert_eq!(Stories.maintain(&mut con, &k, now).unwrap(), 0);
    wipe(&mut con, k.prefix());
}

#[test]
fn the_trending_sweep_drops_what_is_older_than_the_kept_history() {
    let config = test_config("sweep-trending", 3);
    let k = config.keyspace();
    let mut con = redis(&config);
    let newest = now_ms();
    let cutoff = newest - TREND_KEEP_MS;
    let hour = 3_600_000;

    // Buckets and tag entries, half before the cutoff: 2,500 hourly buckets reach back
    // 104 days.
    let mut setup = redis::pipe();
    let start = |i: u64| cutoff - (MANY as i64 / 2 - i as i64) * hour;
    for i in 0..MANY {
        setup
            .hset(k.trend_bucket("1h", start(i)), "sunset", 1)
            .zadd(k.trend_posts(&format!("tag{i}")), "1:1", cutoff - 1)
            .zadd(k.trend_posts(&format!("tag{i}")), "1:2", cutoff);
    }
    setup.query::<()>(&mut con).unwrap();

    // No partition has a watermark yet: there is no "now" to measure history from.
    assert_eq!(Trending.maintain(&mut con, &k, 0).unwrap(), 0);

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
            zmembers_of(&mut con, &k.trend_posts(&format!("tag{i}"))),
            ["1:2"]
        );
    }

    assert_eq!(Trending.maintain(&mut con, &k, 0).unwrap(), 0);
    wipe(&mut con, k.prefix());
}
