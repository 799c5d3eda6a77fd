//! What the jobs' housekeeping ([`super::Job::maintain`]) shares: walking the keys of a
//! pattern with `SCAN`, a page at a time, and sending a page's commands in one pipeline.
//!
//! A page's commands go in one round trip, not one each: a sweep costs the `SCAN` calls that
//! walk the keyspace, and at most one more round trip per page that found keys (two where
//! the keys are read before some are deleted). `SCAN` walks every key whatever the pattern,
//! so that walk still grows with the whole keyspace; only an index of what expires would
//! avoid it. Each command is on one key, so no command spans two hash slots; the sweeps are
//! still not ready for Redis Cluster, where `SCAN` on one connection walks one node's keys.
//! `SCAN` may return a key twice; every command sent here is idempotent, and a repeat
//! removes nothing more.

use redis::{ConnectionLike, Pipeline, RedisResult};

/// How many keys `SCAN` looks at per call (its `COUNT` hint).
const SCAN_COUNT: usize = 1000;

/// Calls `each` with every page of the keys matching `pattern`, as `SCAN` returns them; empty
/// pages are skipped. `each` may change or delete the keys it is given: `SCAN` still returns
/// every matching key that exists from the start of the walk to its end.
pub(crate) fn scan_pages(
    con: &mut dyn ConnectionLike,
    pattern: &str,
    mut each: impl FnMut(&mut dyn ConnectionLike, &[String]) -> RedisResult<()>,
) -> RedisResult<()> {
    let mut cursor = 0u64;
    loop {
        let (next, page): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(SCAN_COUNT)
            .query(con)?;
        if !page.is_empty() {
            each(con, &page)?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

/// Sends the commands `command` writes for each of `keys` in one pipeline, or nothing when
/// there are no keys, and returns the sum of their integer replies (what they removed).
pub(crate) fn pipelined_sum<'a>(
    con: &mut dyn ConnectionLike,
    keys: impl IntoIterator<Item = &'a str>,
    mut command: impl FnMut(&mut Pipeline, &'a str),
) -> RedisResult<u64> {
    let mut pipe = redis::pipe();
    for key in keys {
        command(&mut pipe, key);
    }
    if pipe.is_empty() {
        return Ok(0);
    }
    let replies: Vec<u64> = pipe.query(con)?;
    Ok(replies.iter().sum())
}

/// Removes the entries scored below `cutoff` from every sorted set whose key matches
/// `pattern`, and returns how many it removed.
pub(crate) fn trim_sorted_sets(
    con: &mut dyn ConnectionLike,
    pattern: &str,
    cutoff: i64,
) -> RedisResult<u64> {
    let below = format!("({cutoff}");
    let mut removed = 0u64;
    scan_pages(con, pattern, |con, page| {
        removed += pipelined_sum(con, page.iter().map(String::as_str), |pipe, key| {
            pipe.zrembyscore(key, "-inf", &below);
        })?;
        Ok(())
    })?;
    Ok(removed)
}
