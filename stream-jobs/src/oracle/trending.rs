//! The trending job's model: every tagged post that counts, with its time; buckets are sums.

use std::collections::{BTreeMap, BTreeSet};

use aperture_schema::Envelope;
use aperture_schema::event::Event;

use crate::jobs::trending::{COARSE_MS, FINE_MS};

#[derive(Debug, Clone, Default)]
pub struct Trending {
    /// post → (author, time, tags, deleted).
    pub posts: BTreeMap<u64, (u64, i64, Vec<String>, bool)>,
    /// Events the runtime dead-letters as late: they never reach the job.
    pub late: BTreeSet<String>,
}

impl Trending {
    /// Applies one event (in event-time order, each id once).
    pub fn apply(&mut self, e: &Envelope) {
        if self.late.contains(&e.event_id) {
            return;
        }
        match &e.event {
            Event::PostCreated(p) if !p.hashtags.is_empty() => {
                self.posts.entry(p.post_id).or_insert((
                    e.actor_id,
                    e.ts,
                    p.hashtags.clone(),
                    false,
                ));
            }
            Event::PostDeleted(d) => {
                if let Some(post) = self.posts.get_mut(&d.post_id)
                    && post.0 == e.actor_id
                {
                    post.3 = true;
                }
            }
            _ => {}
        }
    }

    /// Per (granularity, bucket start): tag → posts, as the job's buckets hold them.
    pub fn buckets(&self) -> BTreeMap<(&'static str, i64), BTreeMap<String, i64>> {
        let mut out: BTreeMap<(&'static str, i64), BTreeMap<String, i64>> = BTreeMap::new();
        for (_, ts, tags, deleted) in self.posts.values() {
            if *deleted {
                continue;
            }
            for (g, size) in [("5m", FINE_MS), ("1h", COARSE_MS)] {
                let bucket = out.entry((g, ts.div_euclid(size) * size)).or_default();
                for tag in tags {
                    *bucket.entry(tag.clone()).or_default() += 1;
                }
            }
        }
        out
    }

    /// The earliest time of a tagged post ever counted (deleted or not).
    pub fn since(&self) -> Option<i64> {
        self.posts.values().map(|p| p.1).min()
    }

    /// Per tag: its live posts as `author:post` → time.
    pub fn tag_posts(&self) -> BTreeMap<String, BTreeMap<String, i64>> {
        let mut out: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
        for (post, (author, ts, tags, deleted)) in &self.posts {
            if *deleted {
                continue;
            }
            for tag in tags {
                out.entry(tag.clone())
                    .or_default()
                    .insert(format!("{author}:{post}"), *ts);
            }
        }
        out
    }
}

/// The tagged posts of one partition (events in offset order) that trending, with
/// `allowed_ms` of lateness, dead-letters: those more than that behind the highest time of a
/// tagged post before them. Other events are never late.
pub fn late_events<'a>(
    partition: impl IntoIterator<Item = &'a Envelope>,
    allowed_ms: i64,
) -> BTreeSet<String> {
    let mut watermark: Option<i64> = None;
    let mut late = BTreeSet::new();
    for e in partition {
        if !matches!(&e.event, Event::PostCreated(p) if !p.hashtags.is_empty()) {
            continue;
        }
        match watermark {
            Some(w) if e.ts < w - allowed_ms => {
                late.insert(e.event_id.clone());
            }
            _ => watermark = Some(watermark.map_or(e.ts, |w| w.max(e.ts))),
        }
    }
    late
}
