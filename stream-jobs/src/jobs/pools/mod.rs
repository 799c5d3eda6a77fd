//! The pools job: the recent posts Explore and Reels draw their out-of-network candidates
//! from, kept where the cluster rule of DESIGN.md §3 lets one script write them.
//!
//! # What it keeps (keys in [`aperture_schema::keys`])
//!
//! Per source partition `P`, in the partition checkpoint's own hash slot (`{j:pools:P}`), so
//! the runtime's script declares every key it touches and they all hash to one slot:
//!
//! - `pool_fresh(P)`: ZSET of the partition's posts created within [`POOL_WINDOW_MS`] of the
//!   newest one it holds, members `author:post`, scored by post time;
//! - `pool_fresh_reels(P)`: the same for reels only;
//! - `pool_newest(P)`: the newest post time the partition has seen, which the window is
//!   measured from.
//!
//! A post's creation and its deletion are both its author's events, so they reach the same
//! partition in order: a delete takes the post out of its pool, and only its author's delete
//! matches the member. A post is added at most once whatever is redelivered (`ZADD` of the same
//! member), and the window only moves forward, so what a pool holds in the end is every
//! undeleted post at most [`POOL_WINDOW_MS`] older than the newest the partition has seen,
//! whatever order posts arrived in. Readers take the
//! union of the partitions' pools (one command per partition) and apply visibility at read
//! time: a pool holds candidates, never a decision about who may see them.

use aperture_schema::Envelope;
use aperture_schema::event::{Event, MediaType};
use aperture_schema::keys::Keyspace;

use super::{Job, Records};

/// How far behind a pool's newest post its oldest may be: three days.
pub const POOL_WINDOW_MS: i64 = 3 * 86_400_000;

/// See the module documentation.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pools;

impl Job for Pools {
    fn name(&self) -> &'static str {
        "pools"
    }

    fn lua(&self) -> String {
        format!(
            "local POOL_WINDOW = {POOL_WINDOW_MS}\n{}",
            include_str!("pools.lua")
        )
    }

    fn partition_keys(&self, keys: &Keyspace, partition: u32) -> Vec<String> {
        vec![
            keys.pool_fresh(partition),
            keys.pool_fresh_reels(partition),
            keys.pool_newest(partition),
        ]
    }

    fn encode(&self, batch: &[(i64, &Envelope)], out: &mut Records) {
        for &(offset, e) in batch {
            match &e.event {
                Event::PostCreated(p) => out.push(
                    offset,
                    [
                        "pc".into(),
                        format!("{}:{}", e.actor_id, p.post_id),
                        e.ts.to_string(),
                        if p.media_type == MediaType::Reel {
                            "1"
                        } else {
                            "0"
                        }
                        .into(),
                    ],
                ),
                Event::PostDeleted(d) => out.push(
                    offset,
                    [
                        "pd".into(),
                        format!("{}:{}", e.actor_id, d.post_id),
                        String::new(),
                        String::new(),
                    ],
                ),
                _ => {}
            }
        }
    }
}
