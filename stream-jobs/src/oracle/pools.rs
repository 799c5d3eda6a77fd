//! The pools job's model: every post with its author, time and kind; a partition's pool is a
//! filter over them.

use std::collections::BTreeMap;

use aperture_schema::Envelope;
use aperture_schema::event::{Event, MediaType};
use aperture_schema::topics::partition_for;

use crate::jobs::pools::POOL_WINDOW_MS;

#[derive(Debug, Clone, Default)]
pub struct Pools {
    /// post → (author, time, is a reel, deleted by its author).
    pub posts: BTreeMap<u64, (u64, i64, bool, bool)>,
}

impl Pools {
    /// Applies one event (in event-time order, each id once).
    pub fn apply(&mut self, e: &Envelope) {
        match &e.event {
            Event::PostCreated(p) => {
                self.posts.entry(p.post_id).or_insert((
                    e.actor_id,
                    e.ts,
                    p.media_type == MediaType::Reel,
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

    /// The pool of source partition `partition` (of `partitions`): `author:post` → time, all
    /// posts or reels only.
    pub fn pool(&self, partition: u32, partitions: u32, reels: bool) -> BTreeMap<String, i64> {
        let mine = || {
            self.posts
                .iter()
                .filter(move |(_, p)| partition_for(p.0, partitions) == partition)
        };
        let Some(newest) = mine().map(|(_, p)| p.1).max() else {
            return BTreeMap::new();
        };
        mine()
            .filter(|(_, p)| !p.3 && p.1 >= newest - POOL_WINDOW_MS && (p.2 || !reels))
            .map(|(post, p)| (format!("{}:{post}", p.0), p.1))
            .collect()
    }
}
