//! What the jobs' housekeeping ([`super::Job::maintain`]) shares: walking the keys of a
//! pattern with `SCAN`, a page at a time, and sending a page's commands in one pipeline.
//!
//! A page's commands go in one round trip, not one each: a sweep costs the `SCAN` calls that
//! walk the keyspace, and one more round trip per page that found keys. `SCAN` walks every
//! key whatever the pattern, so that walk still grows with the whole keyspace; only an index
//! of what expires would avoid it. Each command is on one key, so a pipeline never asks for
//! keys of two hash slots at once. `SCAN` may return a key twice; every command sent here is
//! idempotent, and a repeat removes nothing more.

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

/// Sends one command per key of `keys`, as `command` writes it into the pipeline, in one
/// round trip, and returns the sum of their integer replies (what they removed).
pub(crate) fn removed_by<'a>(
    con: &mut dyn ConnectionLike,
    keys: impl IntoIterator<Item = &'a String>,
    mut command: impl FnMut(&mut Pipeline, &'a str),
) -> RedisResult<u64> {
    let mut pipe = redis::pipe();
    let mut any = false;
    for key in keys {
        command(&mut pipe, key);
        any = true;
    }
    if !any {
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
        removed += removed_by(con, page, |pipe, key| {
            pipe.zrembyscore(key, "-inf", &below);
        })?;
        Ok(())
    })?;
    Ok(removed)
}
