//! The graph job: who follows whom (with requests to private accounts and approvals), blocks,
//! user flags and counts, and each user's last-active time.
//!
//! State (keys in [`aperture_schema::keys`]): `profile`, `followers`, `following`, `requests`,
//! `blocks`, `relations` (the per-pair event logs), `inbound`, `private_history`,
//! `last_active`. Edge changes also move posts in and out of home timelines (backfill on
//! follow, removal on unfollow and block) through the shared library, in the same script.

use std::collections::BTreeMap;

use aperture_schema::Envelope;
use aperture_schema::event::{Event, UserCreated, UserUpdated};

use super::{Job, Records};

/// See the module documentation.
#[derive(Debug, Clone, Copy, Default)]
pub struct Graph;

fn flag(b: bool) -> String {
    if b { "1" } else { "0" }.to_owned()
}

fn opt_flag(b: Option<bool>) -> String {
    b.map(flag).unwrap_or_default()
}

fn relation(out: &mut Records, offset: i64, e: &Envelope, a: u64, b: u64, code: &str) {
    out.push(
        offset,
        [
            "rel".into(),
            a.to_string(),
            b.to_string(),
            e.ts.to_string(),
            e.event_id.clone(),
            code.into(),
        ],
    );
}

impl Job for Graph {
    fn name(&self) -> &'static str {
        "graph"
    }

    fn lua(&self) -> String {
        include_str!("graph.lua").to_owned()
    }

    fn encode(&self, batch: &[(i64, &Envelope)], out: &mut Records) {
        // Every event is activity of its actor; one record per actor and batch carries the
        // latest time (a max, so its offset only needs to be the actor's last in the batch).
        let mut active: BTreeMap<u64, (i64, i64)> = BTreeMap::new();
        for &(offset, e) in batch {
            let seen = active.entry(e.actor_id).or_insert((offset, e.ts));
            *seen = (offset.max(seen.0), e.ts.max(seen.1));
            let actor = e.actor_id;
            match &e.event {
                Event::UserCreated(UserCreated {
                    username,
                    display_name,
                    private,
                    verified,
                }) => out.push(
                    offset,
                    [
                        "uc".into(),
                        actor.to_string(),
                        e.ts.to_string(),
                        e.event_id.clone(),
                        username.clone(),
                        display_name.clone().unwrap_or_default(),
                        flag(*private),
                        flag(*verified),
                    ],
                ),
                Event::UserUpdated(UserUpdated {
                    display_name,
                    private,
                    verified,
                }) => out.push(
                    offset,
                    [
                        "uu".into(),
                        actor.to_string(),
                        e.ts.to_string(),
                        e.event_id.clone(),
                        flag(display_name.is_some()),
                        display_name.clone().unwrap_or_default(),
                        opt_flag(*private),
                        opt_flag(*verified),
                    ],
                ),
                Event::Follow(t) => relation(out, offset, e, actor, t.target_id, "F"),
                Event::Unfollow(t) => relation(out, offset, e, actor, t.target_id, "U"),
                Event::FollowRequestApproved(r) => {
                    relation(out, offset, e, r.requester_id, actor, "A")
                }
                Event::Block(t) => {
                    relation(out, offset, e, actor, t.target_id, "B");
                    relation(out, offset, e, t.target_id, actor, "b");
                }
                Event::Unblock(t) => {
                    relation(out, offset, e, actor, t.target_id, "N");
                    relation(out, offset, e, t.target_id, actor, "n");
                }
                _ => {}
            }
        }
        for (actor, (offset, ts)) in active {
            out.push(offset, ["act".into(), actor.to_string(), ts.to_string()]);
        }
    }
}
