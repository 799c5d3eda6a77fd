//! The notifications job: likes, comments, follows and mentions become notification batches
//! for the right recipient.
//!
//! Events on the same (recipient, post, type) within one window of event time
//! (`notifications.window`, windows aligned to the epoch so every worker cuts them alike) are
//! one batch: a ZSET of its actors scored by their event time (`notification_batch`), listed in
//! the recipient's `notifications` ZSET under `<type>:<post>:<window>` and scored by its latest
//! actor. "ana, ben and 9,998 others liked your post" is one batch of 10,000 actors, not 10,000
//! notifications. An unlike whose window still holds the like takes the actor back out.
//!
//! Never to oneself. Mentions name users by username: the job learns each username's id from
//! `user_created` (`mention_user`) and parks mentions of a username it does not know yet
//! (`pending_mentions`) until it does, so the result does not depend on which partition
//! arrives first. Blocks, follows that were withdrawn and deleted posts are decided when the
//! notifications are read, with the state at that moment: a block made after a batch formed
//! still hides its actor.

use aperture_schema::Envelope;
use aperture_schema::event::Event;

use super::{Job, Records};

/// See the module documentation.
#[derive(Debug, Clone, Copy, Default)]
pub struct Notifications;

impl Job for Notifications {
    fn name(&self) -> &'static str {
        "notifications"
    }

    fn lua(&self) -> String {
        include_str!("notifications.lua").to_owned()
    }

    fn encode(&self, batch: &[(i64, &Envelope)], out: &mut Records) {
        for &(offset, e) in batch {
            let record = |kind: &str, post: u64, other: String| {
                [
                    kind.to_owned(),
                    e.actor_id.to_string(),
                    e.ts.to_string(),
                    post.to_string(),
                    other,
                ]
            };
            match &e.event {
                Event::UserCreated(u) => out.push(offset, record("user", 0, u.username.clone())),
                Event::Like(r) => {
                    out.push(offset, record("like", r.post_id, r.author_id.to_string()))
                }
                Event::Unlike(r) => {
                    out.push(offset, record("unlike", r.post_id, r.author_id.to_string()))
                }
                Event::CommentCreated(c) => {
                    out.push(
                        offset,
                        record("comment", c.post_id, c.author_id.to_string()),
                    );
                    for name in &c.mentions {
                        out.push(offset, record("mention", c.post_id, name.clone()));
                    }
                }
                Event::PostCreated(p) => {
                    for name in &p.mentions {
                        out.push(offset, record("mention", p.post_id, name.clone()));
                    }
                }
                Event::Follow(t) => out.push(offset, record("follow", 0, t.target_id.to_string())),
                _ => {}
            }
        }
    }
}
