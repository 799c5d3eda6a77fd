//! The engagement job: per-post counters, per-viewer affinity and content preference,
//! negative feedback, and per-creator daily rollups.
//!
//! # What it keeps (keys in [`aperture_schema::keys`])
//!
//! - `post_counts`: `likes`, `saves` (the sizes of `post_likers` / `post_savers`, per-(user,
//!   post) state, so a repeated like counts once and an unlike after a like takes one away),
//!   `comments` (live comments in `post_comments`), `shares`, `views`, `dwell_ms`, `watch_ms`,
//!   `watch_views`, `hides`, `reports`, `first_hour` (likes, comments, shares and saves whose
//!   event time falls in the post's first hour: its engagement velocity) and the job's own copy
//!   of `created_at` and `media_type`. Unique viewers are a HyperLogLog (`post_viewers`,
//!   standard error 0.81%): exact distinct counts per post would cost a set of every viewer.
//! - `affinity` (viewer → author): decayed with a half-life, stored as
//!   `Σ weight · 2^((ts − epoch) / half-life)` so each event adds a term independent of the
//!   others and of the order they arrive in; read it at time `t` by multiplying with
//!   `2^(−(t − epoch) / half-life)`. Weights: like 1, comment 2, share 3, save 2, profile view
//!   1, view 0.2 plus up to 0.3 for 30 s of dwell. An unlike or unsave takes its term back; a
//!   deleted comment keeps it (commenting was an act of the commenter's, and this way a
//!   viewer's affinity is written only by events of their own partition, in one order).
//! - `content_pref` (per viewer): integer points per media type: view 1 (+1 with 5 s of dwell),
//!   like 3, comment 4, share 5, save 4. A post not created yet holds the points in
//!   `post_pending_pref` until its creation names the media type.
//! - `negative_authors`, `hidden_posts`: hides and reports, for ranking.
//! - `view_history` (per viewer): their latest [`HISTORY_CAP`] views of others' posts, and
//!   `engaged_posts`: the latest [`ENGAGED_CAP`] others' posts they liked, commented, shared or
//!   saved (kept at the first such act; an undo leaves it, the act happened). Both are trimmed
//!   by (event time, member), so what stays does not depend on arrival order.
//! - `creator_daily` (per author and UTC day): `views` (and `views_<surface>` per surface),
//!   `interactions` (and by kind: `likes`, `comments`, `shares`, `saves`, as they stand),
//!   `profile_visits`, `follows`, `unfollows`, `watch_ms` and `watch_views` (views that report
//!   a watch time); with `creator_reach` and `creator_engaged` (HyperLogLogs of the accounts
//!   that viewed, and that interacted) and `creator_surface_reach` (the viewers per surface).
//!
//! Self-engagement counts on the post but not in affinity, preference or rollups.
//!
//! # Order and duplicates
//!
//! Likes, saves and their undos of one user are that user's events, in order in one
//! partition, so per-(user, post) state needs no log. Views, shares, hides, reports and
//! follows are plain increments: their event ids are remembered per actor for
//! `engagement.dedupe-window` of event time (`engagement_seen`), so a redelivered event counts
//! once. Interactions that arrive before their post wait in `post_early`; the creation moves
//! those of the first hour into `first_hour`. Engagement after a post's delete still counts on
//! the post, which is never served again once deleted.

//! # Steps
//!
//! Each event becomes slot-local operations ([`Op`]), run where the state that decides them
//! lives; what they decide travels on in what they emit:
//!
//! 1. in the **actor's** slot, views, shares, hides, reports, profile views and follows are
//!    deduplicated (and the viewer's history, affinity and negative feedback kept), and likes,
//!    saves and comments pass through; in the **post's** slot, a post's creation and comment
//!    deletes change the post's state;
//! 2. the post's slot counts what the actor's let through and decides what an interaction
//!    changes (a like already on changes nothing): it emits to the **creator's** slot (daily
//!    rollup, reach, accounts engaged) and back to the actor's (affinity, engaged posts,
//!    content preference, which needs the post's media type);
//! 3. what step 2 emitted: every interaction of an actor, and every affinity term (views' and
//!    profile views' too), is back in the actor's slot at this step, in offset order: the
//!    engaged history keeps the first act, and a float sum added in one order is the same bit
//!    for bit however the log was cut into batches.

use std::collections::BTreeMap;

use aperture_schema::Envelope;
use aperture_schema::event::Event;
use aperture_schema::keys::Keyspace;
use serde::{Deserialize, Serialize};

use super::{Job, Records, Routed, Steps};

pub use aperture_schema::state::{ENGAGED_CAP, HISTORY_CAP};

pub use aperture_schema::state::{AFFINITY_EPOCH_MS, utc_day};

/// See the module documentation.
#[derive(Debug, Clone, Copy, Default)]
pub struct Engagement;

/// An id on the way to Lua: a decimal string, since Lua's numbers are doubles and its JSON
/// encoder keeps 14 digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Id(pub u64);

impl Serialize for Id {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map(Id).map_err(serde::de::Error::custom)
    }
}

/// One operation of the engagement job, in the slot of the account or post it names first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// Actor's slot: a share, counted once per event id.
    Share {
        actor: Id,
        eid: String,
        ts: i64,
        post: Id,
        author: Id,
    },
    /// Actor's slot: a view, counted once per event id.
    View {
        actor: Id,
        eid: String,
        ts: i64,
        post: Id,
        author: Id,
        dwell: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        watch: Option<i64>,
        surface: String,
    },
    /// Actor's slot: a hide or report (`counter` `hides` or `reports`).
    Negative {
        actor: Id,
        eid: String,
        ts: i64,
        post: Id,
        author: Id,
        counter: String,
    },
    /// Actor's slot: a profile view.
    ProfileView {
        actor: Id,
        eid: String,
        ts: i64,
        author: Id,
    },
    /// Actor's slot: a follow or unfollow (`counter` `follows` or `unfollows`) for the rollup.
    Follow {
        actor: Id,
        eid: String,
        ts: i64,
        author: Id,
        counter: String,
    },
    /// Actor's slot: passes `next` on to the post's slot. Likes, saves and comments take this
    /// step so that every interaction reaches the actor's slot again at the same step, in the
    /// actor's own order (the engaged history keeps the first act).
    Relay { actor: Id, next: Box<Op> },
    /// Post's slot: the post's creation.
    Created {
        post: Id,
        author: Id,
        ts: i64,
        media: String,
    },
    /// Post's slot: a like or save (`set` `likes` or `saves`) turned on or off.
    Toggle {
        post: Id,
        actor: Id,
        author: Id,
        ts: i64,
        set: String,
        on: bool,
    },
    /// Post's slot: a comment.
    Comment {
        post: Id,
        actor: Id,
        author: Id,
        ts: i64,
        comment: Id,
    },
    /// Post's slot: a comment's delete.
    CommentDeleted {
        post: Id,
        actor: Id,
        author: Id,
        comment: Id,
    },
    /// Post's slot, from [`Op::Share`]: a share counted.
    Shared {
        post: Id,
        actor: Id,
        author: Id,
        ts: i64,
    },
    /// Post's slot, from [`Op::View`]: a view counted.
    Viewed {
        post: Id,
        actor: Id,
        author: Id,
        ts: i64,
        dwell: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        watch: Option<i64>,
        surface: String,
    },
    /// Post's slot, from [`Op::Negative`]: a hide or report counted.
    Bump { post: Id, counter: String },
    /// Creator's slot: additions to one day's rollup and its distinct accounts.
    Creator {
        creator: Id,
        day: String,
        #[serde(default)]
        add: BTreeMap<String, i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reach: Option<Id>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        engaged: Option<Id>,
        /// With `reach`: the surface of the view, for the day's reach per surface.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        surface: Option<String>,
    },
    /// Actor's slot, from the post's: an interaction's affinity and engaged history.
    Act {
        actor: Id,
        author: Id,
        post: Id,
        ts: i64,
        sign: i64,
        weight: f64,
    },
    /// Actor's slot, at the third step: a view's (weight from its dwell) or a profile view's
    /// (weight given) affinity term.
    Affinity {
        actor: Id,
        author: Id,
        ts: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        weight: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dwell: Option<i64>,
    },
    /// Actor's slot, from the post's: content-preference points for a media type.
    Pref {
        user: Id,
        media: String,
        points: i64,
    },
}

impl Op {
    /// The operation's slot and every key it may touch there.
    fn routed(&self, keys: &Keyspace, offset: i64, json: String) -> Routed {
        let user = |id: Id| Routed {
            offset,
            tag: format!("u:{}", id.0),
            keys: vec![
                keys.engagement_seen(id.0),
                keys.view_history(id.0),
                keys.affinity(id.0),
                keys.negative_authors(id.0),
                keys.hidden_posts(id.0),
                keys.engaged_posts(id.0),
                keys.content_pref(id.0),
            ],
            op: json.clone(),
        };
        let post = |id: Id| Routed {
            offset,
            tag: format!("p:{}", id.0),
            keys: vec![
                keys.post_counts(id.0),
                keys.post_likers(id.0),
                keys.post_savers(id.0),
                keys.post_comments(id.0),
                keys.post_viewers(id.0),
                keys.post_early(id.0),
                keys.post_pending_pref(id.0),
            ],
            op: json.clone(),
        };
        match self {
            Op::Share { actor, .. }
            | Op::View { actor, .. }
            | Op::Negative { actor, .. }
            | Op::ProfileView { actor, .. }
            | Op::Follow { actor, .. }
            | Op::Relay { actor, .. }
            | Op::Affinity { actor, .. }
            | Op::Act { actor, .. } => user(*actor),
            Op::Pref { user: id, .. } => user(*id),
            Op::Created { post: id, .. }
            | Op::Toggle { post: id, .. }
            | Op::Comment { post: id, .. }
            | Op::CommentDeleted { post: id, .. }
            | Op::Shared { post: id, .. }
            | Op::Viewed { post: id, .. }
            | Op::Bump { post: id, .. } => post(*id),
            Op::Creator {
                creator,
                day,
                surface,
                ..
            } => {
                let mut declared = vec![
                    keys.creator_daily(creator.0, day),
                    keys.creator_reach(creator.0, day),
                    keys.creator_engaged(creator.0, day),
                ];
                if let Some(surface) = surface {
                    declared.push(keys.creator_surface_reach(creator.0, day, surface));
                }
                Routed {
                    offset,
                    tag: format!("u:{}", creator.0),
                    keys: declared,
                    op: json,
                }
            }
        }
    }

    /// The first step's operation of an event, if the job keeps anything of it.
    pub fn of(e: &Envelope) -> Option<Op> {
        let actor = Id(e.actor_id);
        let eid = || e.event_id.clone();
        let ts = e.ts;
        let relay = |next: Op| Op::Relay {
            actor,
            next: Box::new(next),
        };
        let toggle = |post: u64, author: u64, set: &str, on: bool| {
            relay(Op::Toggle {
                post: Id(post),
                actor,
                author: Id(author),
                ts,
                set: set.to_owned(),
                on,
            })
        };
        let negative = |post: u64, author: u64, counter: &str| Op::Negative {
            actor,
            eid: eid(),
            ts,
            post: Id(post),
            author: Id(author),
            counter: counter.to_owned(),
        };
        let follow = |author: u64, counter: &str| Op::Follow {
            actor,
            eid: eid(),
            ts,
            author: Id(author),
            counter: counter.to_owned(),
        };
        Some(match &e.event {
            Event::PostCreated(p) => Op::Created {
                post: Id(p.post_id),
                author: actor,
                ts,
                media: p.media_type.as_str().to_owned(),
            },
            Event::Like(r) => toggle(r.post_id, r.author_id, "likes", true),
            Event::Unlike(r) => toggle(r.post_id, r.author_id, "likes", false),
            Event::Save(r) => toggle(r.post_id, r.author_id, "saves", true),
            Event::Unsave(r) => toggle(r.post_id, r.author_id, "saves", false),
            Event::CommentCreated(c) => relay(Op::Comment {
                post: Id(c.post_id),
                actor,
                author: Id(c.author_id),
                ts,
                comment: Id(c.comment_id),
            }),
            Event::CommentDeleted(c) => Op::CommentDeleted {
                post: Id(c.post_id),
                actor,
                author: Id(c.author_id),
                comment: Id(c.comment_id),
            },
            Event::Share(s) => Op::Share {
                actor,
                eid: eid(),
                ts,
                post: Id(s.post_id),
                author: Id(s.author_id),
            },
            Event::View(v) => Op::View {
                actor,
                eid: eid(),
                ts,
                post: Id(v.post_id),
                author: Id(v.author_id),
                dwell: v.dwell_ms as i64,
                watch: v.watch_ms.map(|w| w as i64),
                surface: v.surface.as_str().to_owned(),
            },
            Event::Hide(h) => negative(h.post_id, h.author_id, "hides"),
            Event::Report(r) => negative(r.post_id, r.author_id, "reports"),
            Event::ProfileView(t) => Op::ProfileView {
                actor,
                eid: eid(),
                ts,
                author: Id(t.target_id),
            },
            Event::Follow(t) => follow(t.target_id, "follows"),
            Event::Unfollow(t) => follow(t.target_id, "unfollows"),
            _ => return None,
        })
    }
}

impl Job for Engagement {
    fn name(&self) -> &'static str {
        "engagement"
    }

    fn lua(&self) -> String {
        include_str!("engagement.lua").to_owned()
    }

    fn encode(&self, _batch: &[(i64, &Envelope)], _out: &mut Records) {}

    fn steps(&self) -> Option<&dyn Steps> {
        Some(self)
    }
}

impl Steps for Engagement {
    fn first(&self, keys: &Keyspace, batch: &[(i64, &Envelope)], out: &mut Vec<Routed>) {
        for &(offset, e) in batch {
            if let Some(op) = Op::of(e) {
                let json = serde_json::to_string(&op).expect("an operation serialises");
                out.push(op.routed(keys, offset, json));
            }
        }
    }

    fn route(&self, keys: &Keyspace, offset: i64, op: &str) -> Result<Routed, String> {
        let parsed: Op = serde_json::from_str(op).map_err(|e| e.to_string())?;
        Ok(parsed.routed(keys, offset, op.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_days_match_the_calendar() {
        assert_eq!(utc_day(0), "1970-01-01");
        assert_eq!(utc_day(1_763_856_000_000), "2025-11-23");
        assert_eq!(utc_day(AFFINITY_EPOCH_MS), "2025-01-01");
        assert_eq!(utc_day(AFFINITY_EPOCH_MS - 1), "2024-12-31");
        // 2024 is a leap year.
        assert_eq!(utc_day(1_709_164_800_000), "2024-02-29");
        assert_eq!(utc_day(-1), "1969-12-31");
    }
}
