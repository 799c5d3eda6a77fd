//! The fan-out job: a new post goes into the home timeline of each active follower of its
//! author, unless the author is a celebrity (pulled at read time instead); a deleted post
//! leaves every timeline. The job also keeps each author's capped recent posts (for pull and
//! backfill) and the post's metadata for hydration.
//!
//! A follower list is walked inside the job's Redis script: one round trip per batch, however
//! many followers.

use aperture_schema::Envelope;
use aperture_schema::event::Event;
use serde_json::json;

use super::{Job, Records};

/// See the module documentation. Its settings (caps, celebrity threshold, inactivity) are
/// constants of the shared library, [`super::library`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Fanout;

impl Job for Fanout {
    fn name(&self) -> &'static str {
        "fanout"
    }

    fn lua(&self) -> String {
        include_str!("fanout.lua").to_owned()
    }

    fn encode(&self, batch: &[(i64, &Envelope)], out: &mut Records) {
        for &(offset, e) in batch {
            match &e.event {
                Event::PostCreated(p) => out.push(
                    offset,
                    [
                        "pc".into(),
                        e.actor_id.to_string(),
                        p.post_id.to_string(),
                        e.ts.to_string(),
                        e.event_id.clone(),
                        p.media_type.as_str().into(),
                        json!(p.media).to_string(),
                        p.caption.clone(),
                        json!(p.hashtags).to_string(),
                    ],
                ),
                Event::PostDeleted(d) => out.push(
                    offset,
                    [
                        "pd".into(),
                        e.actor_id.to_string(),
                        d.post_id.to_string(),
                        e.ts.to_string(),
                        e.event_id.clone(),
                    ],
                ),
                _ => {}
            }
        }
    }
}
