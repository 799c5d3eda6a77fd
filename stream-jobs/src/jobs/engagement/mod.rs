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
//! - `creator_daily` (per author and UTC day): `views`, `interactions`, `follows`,
//!   `unfollows`, `watch_ms` and `watch_views` (views that report a watch time); with `creator_reach` and `creator_engaged` (HyperLogLogs of the accounts that
//!   viewed, and that interacted).
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

use aperture_schema::Envelope;
use aperture_schema::event::Event;

use super::{Job, Records};

pub use aperture_schema::state::{ENGAGED_CAP, HISTORY_CAP};

pub use aperture_schema::state::{AFFINITY_EPOCH_MS, utc_day};

/// See the module documentation.
#[derive(Debug, Clone, Copy, Default)]
pub struct Engagement;

impl Job for Engagement {
    fn name(&self) -> &'static str {
        "engagement"
    }

    fn lua(&self) -> String {
        include_str!("engagement.lua").to_owned()
    }

    fn encode(&self, batch: &[(i64, &Envelope)], out: &mut Records) {
        for &(offset, e) in batch {
            let head = |kind: &str, post: u64, author: u64| {
                [
                    kind.to_owned(),
                    e.actor_id.to_string(),
                    e.ts.to_string(),
                    e.event_id.clone(),
                    post.to_string(),
                    author.to_string(),
                ]
            };
            let with = |kind: &str, post: u64, author: u64, a: String, b: String| {
                let [k, actor, ts, eid, post, author] = head(kind, post, author);
                [k, actor, ts, eid, post, author, a, b]
            };
            match &e.event {
                Event::PostCreated(p) => out.push(
                    offset,
                    with(
                        "pc",
                        p.post_id,
                        e.actor_id,
                        p.media_type.as_str().to_owned(),
                        String::new(),
                    ),
                ),
                Event::Like(r) => out.push(offset, head("like", r.post_id, r.author_id)),
                Event::Unlike(r) => out.push(offset, head("unlike", r.post_id, r.author_id)),
                Event::Save(r) => out.push(offset, head("save", r.post_id, r.author_id)),
                Event::Unsave(r) => out.push(offset, head("unsave", r.post_id, r.author_id)),
                Event::CommentCreated(c) => out.push(
                    offset,
                    with(
                        "cc",
                        c.post_id,
                        c.author_id,
                        c.comment_id.to_string(),
                        String::new(),
                    ),
                ),
                Event::CommentDeleted(c) => out.push(
                    offset,
                    with(
                        "cd",
                        c.post_id,
                        c.author_id,
                        c.comment_id.to_string(),
                        String::new(),
                    ),
                ),
                Event::Share(s) => out.push(offset, head("share", s.post_id, s.author_id)),
                Event::View(v) => out.push(
                    offset,
                    with(
                        "view",
                        v.post_id,
                        v.author_id,
                        v.dwell_ms.to_string(),
                        v.watch_ms.map(|w| w.to_string()).unwrap_or_default(),
                    ),
                ),
                Event::Hide(h) => out.push(offset, head("hide", h.post_id, h.author_id)),
                Event::Report(r) => out.push(offset, head("report", r.post_id, r.author_id)),
                Event::ProfileView(t) => out.push(offset, head("pv", 0, t.target_id)),
                Event::Follow(t) => out.push(offset, head("follow", 0, t.target_id)),
                Event::Unfollow(t) => out.push(offset, head("unfollow", 0, t.target_id)),
                _ => {}
            }
        }
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
