//! The engagement job's model: every counter kept exactly (distinct viewers and accounts as
//! sets, where Redis keeps HyperLogLogs), affinity as a plain sum of decayed terms.
//!
//! It lives here, beside the keyspace, because two sides replay it: the stream jobs' oracle
//! (what the engagement job must have written) and ranking's offline features (what serving
//! would have read at an impression's time), and ranking must not import the jobs.

use std::collections::{BTreeMap, BTreeSet};

use crate::event::Event;
use crate::state::{AFFINITY_EPOCH_MS, ENGAGED_CAP, HISTORY_CAP, utc_day};
use crate::{Config, Envelope};

const FIRST_HOUR_MS: i64 = 3_600_000;

/// Which parts of an interaction change: (counted: velocity and daily interactions, acted:
/// accounts engaged, affinity and preference).
const BOTH: (bool, bool) = (true, true);
const COUNTED: (bool, bool) = (true, false);
const ACTED: (bool, bool) = (false, true);

/// One post's engagement.
#[derive(Debug, Clone, Default)]
pub struct PostStats {
    pub created_at: Option<i64>,
    pub media_type: Option<String>,
    /// user → time of their standing like.
    pub likers: BTreeMap<u64, i64>,
    pub savers: BTreeMap<u64, i64>,
    /// comment → (time, commenter) while it stands; `None` once deleted.
    pub comments: BTreeMap<u64, Option<(i64, u64)>>,
    /// Deletes seen before their comment: comment → everyone who deleted it (the comment's
    /// creation decides which of them count, whatever order they came in).
    pub deleted_early: BTreeMap<u64, BTreeSet<u64>>,
    pub shares: i64,
    pub views: i64,
    pub dwell_ms: i64,
    pub watch_ms: i64,
    pub watch_views: i64,
    pub hides: i64,
    pub reports: i64,
    pub viewers: BTreeSet<u64>,
    /// Event times of the interactions that stand (likes, comments, shares, saves).
    pub interactions: Vec<i64>,
}

impl PostStats {
    pub fn comments(&self) -> usize {
        self.comments.values().filter(|c| c.is_some()).count()
    }

    /// Interactions in the first hour after creation, once the creation is known.
    pub fn first_hour(&self) -> Option<i64> {
        let c = self.created_at?;
        Some(
            self.interactions
                .iter()
                .filter(|&&t| t >= c && t < c + FIRST_HOUR_MS)
                .count() as i64,
        )
    }
}

/// One creator's day.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Daily {
    pub views: i64,
    /// Views by surface (`feed`, `explore`, `reels`, `profile`, `hashtag`).
    pub views_by_surface: BTreeMap<String, i64>,
    pub interactions: i64,
    /// The standing interactions by kind (`likes`, `comments`, `shares`, `saves`).
    pub by_kind: BTreeMap<String, i64>,
    /// Visits of the creator's profile by others.
    pub profile_visits: i64,
    pub follows: i64,
    pub unfollows: i64,
    pub watch_ms: i64,
    pub watch_views: i64,
    pub reach: BTreeSet<u64>,
    /// The accounts that viewed, per surface.
    pub reach_by_surface: BTreeMap<String, BTreeSet<u64>>,
    pub engaged: BTreeSet<u64>,
}

#[derive(Debug, Clone)]
pub struct Engagement {
    half_life_ms: f64,
    pub posts: BTreeMap<u64, PostStats>,
    /// (viewer, author) → Σ decayed terms.
    pub affinity: BTreeMap<(u64, u64), f64>,
    /// (user, post) → points; media type resolved when read.
    points: BTreeMap<(u64, u64), i64>,
    /// viewer → author → hides and reports.
    pub negative: BTreeMap<u64, BTreeMap<u64, i64>>,
    /// viewer → post → time hidden or reported (latest).
    pub hidden: BTreeMap<u64, BTreeMap<u64, i64>>,
    /// (author, day) → rollup.
    pub daily: BTreeMap<(u64, String), Daily>,
    /// viewer → their latest views of others' posts as (time, `post:event_id`), the
    /// members and order of Redis's `view_history`.
    pub history: BTreeMap<u64, BTreeSet<(i64, String)>>,
    /// viewer → others' posts they engaged with → time of the first act (`engaged_posts`).
    pub engaged: BTreeMap<u64, BTreeMap<u64, i64>>,
}

impl Engagement {
    pub fn new(config: &Config) -> Engagement {
        Engagement {
            half_life_ms: config.engagement.affinity_half_life.as_millis() as f64,
            posts: BTreeMap::new(),
            affinity: BTreeMap::new(),
            points: BTreeMap::new(),
            negative: BTreeMap::new(),
            hidden: BTreeMap::new(),
            daily: BTreeMap::new(),
            history: BTreeMap::new(),
            engaged: BTreeMap::new(),
        }
    }

    /// The posts of `viewer`'s view history, oldest first (a post once per view).
    pub fn history_posts(&self, viewer: u64) -> impl Iterator<Item = u64> + '_ {
        self.history
            .get(&viewer)
            .into_iter()
            .flatten()
            .map(|(_, m)| {
                m.split_once(':')
                    .and_then(|(p, _)| p.parse().ok())
                    .expect("members are post:event_id")
            })
    }

    fn engage(&mut self, viewer: u64, post: u64, ts: i64) {
        let posts = self.engaged.entry(viewer).or_default();
        posts.entry(post).or_insert(ts);
        if posts.len() > ENGAGED_CAP {
            // Redis drops the lowest rank: the lowest score, ties by member bytes.
            let oldest = posts
                .iter()
                .map(|(p, t)| (*t, p.to_string()))
                .min()
                .expect("more than the cap");
            posts.remove(&oldest.1.parse::<u64>().expect("a post id"));
        }
    }

    fn term(&self, weight: f64, ts: i64) -> f64 {
        weight * 2f64.powf((ts - AFFINITY_EPOCH_MS) as f64 / self.half_life_ms)
    }

    /// The viewer's content preference: points per media type.
    pub fn content_pref(&self, user: u64) -> BTreeMap<String, i64> {
        let mut out: BTreeMap<String, i64> = BTreeMap::new();
        for (&(_, post), &p) in self.points.range((user, 0)..=(user, u64::MAX)) {
            if let Some(media) = self.posts.get(&post).and_then(|s| s.media_type.clone()) {
                *out.entry(media).or_default() += p;
            }
        }
        out.retain(|_, v| *v != 0);
        out
    }

    /// The viewer's preference points per post they engaged with (the points `content_pref`
    /// sums by media type), for features that sum them another way (by hashtag).
    pub fn points_of(&self, user: u64) -> impl Iterator<Item = (u64, i64)> + '_ {
        self.points
            .range((user, 0)..=(user, u64::MAX))
            .map(|(&(_, post), &p)| (post, p))
    }

    /// Affinity of `viewer` to `author` as it reads at `at_ms` (the stored sum decayed to then).
    pub fn affinity_at(&self, viewer: u64, author: u64, at_ms: i64) -> f64 {
        let sum = self.affinity.get(&(viewer, author)).copied().unwrap_or(0.0);
        crate::state::affinity_at(sum, at_ms, self.half_life_ms)
    }

    #[allow(clippy::too_many_arguments)]
    fn interaction(
        &mut self,
        actor: u64,
        post: u64,
        author: u64,
        ts: i64,
        sign: i64,
        weight: f64,
        points: i64,
        kind: &str,
        (counted, acted): (bool, bool),
    ) {
        let stats = self.posts.entry(post).or_default();
        if counted {
            if sign > 0 {
                stats.interactions.push(ts);
            } else if let Some(i) = stats.interactions.iter().position(|&t| t == ts) {
                stats.interactions.swap_remove(i);
            }
        }
        if actor == author {
            return;
        }
        let daily = self.daily.entry((author, utc_day(ts))).or_default();
        if counted {
            daily.interactions += sign;
            *daily.by_kind.entry(kind.to_owned()).or_default() += sign;
        }
        if !acted {
            return;
        }
        if sign > 0 {
            daily.engaged.insert(actor);
            self.engage(actor, post, ts);
        }
        let term = self.term(weight, ts);
        *self.affinity.entry((actor, author)).or_default() += sign as f64 * term;
        *self.points.entry((actor, post)).or_default() += sign * points;
    }

    /// Applies one event (in event-time order, each id once).
    pub fn apply(&mut self, e: &Envelope) {
        let actor = e.actor_id;
        let ts = e.ts;
        match &e.event {
            Event::PostCreated(p) => {
                let stats = self.posts.entry(p.post_id).or_default();
                if stats.created_at.is_none() {
                    stats.created_at = Some(ts);
                    stats.media_type = Some(p.media_type.as_str().to_owned());
                }
            }
            Event::Like(r) | Event::Save(r) => {
                let like = matches!(e.event, Event::Like(_));
                let stats = self.posts.entry(r.post_id).or_default();
                let set = if like {
                    &mut stats.likers
                } else {
                    &mut stats.savers
                };
                if set.contains_key(&actor) {
                    return;
                }
                set.insert(actor, ts);
                let (w, p, kind) = if like {
                    (1.0, 3, "likes")
                } else {
                    (2.0, 4, "saves")
                };
                self.interaction(actor, r.post_id, r.author_id, ts, 1, w, p, kind, BOTH);
            }
            Event::Unlike(r) | Event::Unsave(r) => {
                let like = matches!(e.event, Event::Unlike(_));
                let stats = self.posts.entry(r.post_id).or_default();
                let set = if like {
                    &mut stats.likers
                } else {
                    &mut stats.savers
                };
                let Some(since) = set.remove(&actor) else {
                    return;
                };
                let (w, p, kind) = if like {
                    (1.0, 3, "likes")
                } else {
                    (2.0, 4, "saves")
                };
                self.interaction(actor, r.post_id, r.author_id, since, -1, w, p, kind, BOTH);
            }
            Event::CommentCreated(c) => {
                let stats = self.posts.entry(c.post_id).or_default();
                if stats.comments.contains_key(&c.comment_id) {
                    return;
                }
                if let Some(deleters) = stats.deleted_early.remove(&c.comment_id)
                    && (deleters.contains(&actor) || deleters.contains(&c.author_id))
                {
                    stats.comments.insert(c.comment_id, None);
                    // Still the commenter's act.
                    self.interaction(
                        actor,
                        c.post_id,
                        c.author_id,
                        ts,
                        1,
                        2.0,
                        4,
                        "comments",
                        ACTED,
                    );
                    return;
                }
                stats.comments.insert(c.comment_id, Some((ts, actor)));
                self.interaction(
                    actor,
                    c.post_id,
                    c.author_id,
                    ts,
                    1,
                    2.0,
                    4,
                    "comments",
                    BOTH,
                );
            }
            Event::CommentDeleted(c) => {
                let stats = self.posts.entry(c.post_id).or_default();
                match stats.comments.get(&c.comment_id).copied() {
                    None => {
                        stats
                            .deleted_early
                            .entry(c.comment_id)
                            .or_default()
                            .insert(actor);
                    }
                    Some(Some((at, commenter))) if actor == commenter || actor == c.author_id => {
                        stats.comments.insert(c.comment_id, None);
                        self.interaction(
                            commenter,
                            c.post_id,
                            c.author_id,
                            at,
                            -1,
                            2.0,
                            4,
                            "comments",
                            COUNTED,
                        );
                    }
                    Some(_) => {}
                }
            }
            Event::Share(s) => {
                self.posts.entry(s.post_id).or_default().shares += 1;
                self.interaction(actor, s.post_id, s.author_id, ts, 1, 3.0, 5, "shares", BOTH);
            }
            Event::View(v) => {
                let stats = self.posts.entry(v.post_id).or_default();
                stats.views += 1;
                stats.dwell_ms += v.dwell_ms as i64;
                if let Some(w) = v.watch_ms {
                    stats.watch_ms += w as i64;
                    stats.watch_views += 1;
                }
                stats.viewers.insert(actor);
                if actor == v.author_id {
                    return;
                }
                let daily = self.daily.entry((v.author_id, utc_day(ts))).or_default();
                daily.views += 1;
                *daily
                    .views_by_surface
                    .entry(v.surface.as_str().to_owned())
                    .or_default() += 1;
                daily.reach.insert(actor);
                daily
                    .reach_by_surface
                    .entry(v.surface.as_str().to_owned())
                    .or_default()
                    .insert(actor);
                if let Some(w) = v.watch_ms {
                    daily.watch_ms += w as i64;
                    daily.watch_views += 1;
                }
                let history = self.history.entry(actor).or_default();
                history.insert((ts, format!("{}:{}", v.post_id, e.event_id)));
                if history.len() > HISTORY_CAP {
                    history.pop_first();
                }
                let points = if v.dwell_ms >= 5000 { 2 } else { 1 };
                *self.points.entry((actor, v.post_id)).or_default() += points;
                let weight = 0.2 + 0.3 * v.dwell_ms.min(30_000) as f64 / 30_000.0;
                let term = self.term(weight, ts);
                *self.affinity.entry((actor, v.author_id)).or_default() += term;
            }
            Event::Hide(_) | Event::Report(_) => {
                let (post, author) = match &e.event {
                    Event::Hide(h) => (h.post_id, h.author_id),
                    Event::Report(r) => (r.post_id, r.author_id),
                    _ => unreachable!("matched above"),
                };
                let stats = self.posts.entry(post).or_default();
                if matches!(e.event, Event::Hide(_)) {
                    stats.hides += 1;
                } else {
                    stats.reports += 1;
                }
                *self
                    .negative
                    .entry(actor)
                    .or_default()
                    .entry(author)
                    .or_default() += 1;
                self.hidden.entry(actor).or_default().insert(post, ts);
            }
            Event::ProfileView(t) if t.target_id != actor => {
                let term = self.term(1.0, ts);
                *self.affinity.entry((actor, t.target_id)).or_default() += term;
                self.daily
                    .entry((t.target_id, utc_day(ts)))
                    .or_default()
                    .profile_visits += 1;
            }
            Event::Follow(t) => {
                self.daily
                    .entry((t.target_id, utc_day(ts)))
                    .or_default()
                    .follows += 1;
            }
            Event::Unfollow(t) => {
                self.daily
                    .entry((t.target_id, utc_day(ts)))
                    .or_default()
                    .unfollows += 1;
            }
            _ => {}
        }
    }
}
