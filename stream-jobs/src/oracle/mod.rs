//! The oracle: an in-memory model of every job's semantics (graph and fan-out here; engagement,
//! notifications, stories and trending in their modules), obviously correct rather than fast,
//! against which tests compare the real pipeline's Redis state and API answers.
//!
//! It applies events one at a time in event-time order (`ts`, ties by `event_id`), each
//! `event_id` once, with the rules of `EVENTS.md` written as plainly as possible. The real jobs
//! reach the same state from any interleaving of partitions by folding per-pair logs; the
//! oracle needs none of that, because it sees every event in order.

pub use aperture_schema::engagement;
pub mod notifications;
pub mod pools;
pub mod stories;
pub mod trending;

use std::collections::{BTreeMap, BTreeSet, HashSet};

use aperture_schema::config::FanoutConfig;
use aperture_schema::{Config, Envelope, Event};

/// A follow's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Follow {
    #[default]
    None,
    Pending,
    Active,
}

#[derive(Debug, Clone, Default)]
pub struct User {
    pub username: String,
    pub private: bool,
    pub verified: bool,
    pub celebrity: bool,
    pub stale: bool,
    pub last_active: i64,
}

#[derive(Debug, Clone)]
pub struct Post {
    pub author: u64,
    pub created_at: i64,
    pub deleted: bool,
}

/// Where a feed item came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    Push,
    Pull,
}

/// The model's whole state.
#[derive(Debug, Clone)]
pub struct Oracle {
    config: FanoutConfig,
    seen: HashSet<String>,
    pub users: BTreeMap<u64, User>,
    /// (follower, followee) → state, for pairs that ever had one.
    pub follows: BTreeMap<(u64, u64), Follow>,
    /// (blocker, blocked).
    pub blocks: BTreeSet<(u64, u64)>,
    pub posts: BTreeMap<u64, Post>,
    /// Deletes seen before their post's creation: post → who deleted it.
    deleted_before_created: BTreeMap<u64, u64>,
    /// author → (created_at, post) of their recent posts, capped.
    pub recent: BTreeMap<u64, BTreeSet<(i64, u64)>>,
    /// user → (created_at, author, post) of their pushed timeline, capped.
    pub timelines: BTreeMap<u64, BTreeSet<(i64, u64, u64)>>,
    pub engagement: engagement::Engagement,
    pub notifications: notifications::Notifications,
    pub stories: stories::Stories,
    pub trending: trending::Trending,
    pub pools: pools::Pools,
}

impl Oracle {
    pub fn new(config: &Config) -> Oracle {
        Oracle {
            config: config.fanout.clone(),
            engagement: engagement::Engagement::new(config),
            notifications: notifications::Notifications::new(config),
            stories: stories::Stories::default(),
            trending: trending::Trending::default(),
            pools: pools::Pools::default(),
            seen: HashSet::new(),
            users: BTreeMap::new(),
            follows: BTreeMap::new(),
            blocks: BTreeSet::new(),
            posts: BTreeMap::new(),
            deleted_before_created: BTreeMap::new(),
            recent: BTreeMap::new(),
            timelines: BTreeMap::new(),
        }
    }

    /// Applies `events` in event-time order, whatever order they are given in.
    pub fn apply_all<'a>(&mut self, events: impl IntoIterator<Item = &'a Envelope>) {
        let mut sorted: Vec<&Envelope> = events.into_iter().collect();
        sorted.sort_by(|a, b| (a.ts, &a.event_id).cmp(&(b.ts, &b.event_id)));
        for e in sorted {
            self.apply(e);
        }
    }

    /// Applies one event; call in event-time order.
    pub fn apply(&mut self, e: &Envelope) {
        if !self.seen.insert(e.event_id.clone()) {
            return;
        }
        self.engagement.apply(e);
        self.notifications.apply(e);
        self.stories.apply(e);
        self.trending.apply(e);
        self.pools.apply(e);
        let actor = e.actor_id;
        match &e.event {
            Event::UserCreated(u) => {
                let user = self.users.entry(actor).or_default();
                user.username = u.username.clone();
                user.private = u.private;
                user.verified = u.verified;
            }
            Event::UserUpdated(u) => {
                let user = self.users.entry(actor).or_default();
                if let Some(p) = u.private {
                    user.private = p;
                }
                if let Some(v) = u.verified {
                    user.verified = v;
                }
            }
            Event::Follow(t) => {
                let b = t.target_id;
                if self.state(actor, b) == Follow::None
                    && !self.blocks.contains(&(actor, b))
                    && !self.blocks.contains(&(b, actor))
                {
                    let private = self.users.get(&b).is_some_and(|u| u.private);
                    let next = if private {
                        Follow::Pending
                    } else {
                        Follow::Active
                    };
                    self.set_state(actor, b, next);
                }
            }
            Event::Unfollow(t) => self.set_state(actor, t.target_id, Follow::None),
            Event::FollowRequestApproved(r)
                if self.state(r.requester_id, actor) == Follow::Pending =>
            {
                self.set_state(r.requester_id, actor, Follow::Active);
            }
            Event::Block(t) => {
                self.blocks.insert((actor, t.target_id));
                self.set_state(actor, t.target_id, Follow::None);
                self.set_state(t.target_id, actor, Follow::None);
            }
            Event::Unblock(t) => {
                self.blocks.remove(&(actor, t.target_id));
            }
            Event::PostCreated(p) => self.post_created(actor, p.post_id, e.ts),
            Event::PostDeleted(d) => self.post_deleted(actor, d.post_id),
            _ => {}
        }
        self.touch(actor, e.ts);
    }

    pub fn state(&self, a: u64, b: u64) -> Follow {
        self.follows.get(&(a, b)).copied().unwrap_or_default()
    }

    /// Active followers of `b`.
    pub fn followers(&self, b: u64) -> BTreeSet<u64> {
        self.follows
            .iter()
            .filter(|((_, to), s)| *to == b && **s == Follow::Active)
            .map(|(&(from, _), _)| from)
            .collect()
    }

    /// Accounts `a` actively follows.
    pub fn following(&self, a: u64) -> BTreeSet<u64> {
        self.follows
            .range((a, 0)..=(a, u64::MAX))
            .filter(|(_, s)| **s == Follow::Active)
            .map(|(&(_, to), _)| to)
            .collect()
    }

    /// Pending requests to `b`.
    pub fn requests(&self, b: u64) -> BTreeSet<u64> {
        self.follows
            .iter()
            .filter(|((_, to), s)| *to == b && **s == Follow::Pending)
            .map(|(&(from, _), _)| from)
            .collect()
    }

    fn is_celebrity(&self, user: u64) -> bool {
        self.users.get(&user).is_some_and(|u| u.celebrity)
    }

    fn set_state(&mut self, a: u64, b: u64, next: Follow) {
        let before = self.state(a, b);
        if before == next {
            return;
        }
        self.follows.insert((a, b), next);
        self.check_celebrity(b);
        if next == Follow::Active {
            if !self.is_celebrity(b) {
                self.backfill(a, b);
            }
        } else if before == Follow::Active
            && let Some(tl) = self.timelines.get_mut(&a)
        {
            tl.retain(|&(_, author, _)| author != b);
        }
    }

    fn check_celebrity(&mut self, b: u64) {
        let n = self.followers(b).len() as u64;
        let off = (self.config.celebrity_threshold as f64
            * (1.0 - self.config.celebrity_hysteresis))
            .floor() as u64;
        let celebrity = self.is_celebrity(b);
        if !celebrity && n >= self.config.celebrity_threshold {
            self.users.entry(b).or_default().celebrity = true;
        } else if celebrity && n < off {
            self.users.entry(b).or_default().celebrity = false;
            for f in self.followers(b) {
                self.backfill(f, b);
            }
        }
    }

    fn backfill(&mut self, follower: u64, author: u64) {
        let posts: Vec<(i64, u64)> = self
            .recent
            .get(&author)
            .map(|r| r.iter().copied().collect())
            .unwrap_or_default();
        for (ts, post) in posts {
            self.push(follower, author, post, ts);
        }
    }

    fn push(&mut self, follower: u64, author: u64, post: u64, ts: i64) {
        let cap = self.config.timeline_cap;
        let tl = self.timelines.entry(follower).or_default();
        tl.insert((ts, author, post));
        while tl.len() > cap {
            tl.pop_first();
        }
    }

    fn post_created(&mut self, author: u64, post: u64, ts: i64) {
        if self.posts.contains_key(&post) {
            return;
        }
        if self.deleted_before_created.remove(&post) == Some(author) {
            self.posts.insert(
                post,
                Post {
                    author,
                    created_at: ts,
                    deleted: true,
                },
            );
            return;
        }
        self.posts.insert(
            post,
            Post {
                author,
                created_at: ts,
                deleted: false,
            },
        );
        let cap = self.config.recent_posts_cap;
        let recent = self.recent.entry(author).or_default();
        recent.insert((ts, post));
        while recent.len() > cap {
            recent.pop_first();
        }
        if self.is_celebrity(author) {
            return;
        }
        let inactive_ms = self.config.inactive_after.as_millis() as i64;
        for f in self.followers(author) {
            let last = self.users.get(&f).map_or(0, |u| u.last_active);
            if last >= ts - inactive_ms {
                self.push(f, author, post, ts);
            } else {
                self.users.entry(f).or_default().stale = true;
            }
        }
    }

    fn post_deleted(&mut self, actor: u64, post: u64) {
        match self.posts.get_mut(&post) {
            Some(p) if p.author != actor => return,
            Some(p) => p.deleted = true,
            None => {
                self.deleted_before_created.insert(post, actor);
                return;
            }
        }
        if let Some(r) = self.recent.get_mut(&actor) {
            r.retain(|&(_, p)| p != post);
        }
        for tl in self.timelines.values_mut() {
            tl.retain(|&(_, author, p)| !(author == actor && p == post));
        }
    }

    fn touch(&mut self, user: u64, ts: i64) {
        let u = self.users.entry(user).or_default();
        if ts > u.last_active {
            u.last_active = ts;
            if u.stale {
                u.stale = false;
                for author in self.following(user) {
                    if !self.is_celebrity(author) {
                        self.backfill(user, author);
                    }
                }
            }
        }
    }

    /// The viewer's home feed, newest first: `(created_at, post_id, author_id, source)`.
    pub fn feed(&self, viewer: u64) -> Vec<(i64, u64, u64, Source)> {
        let following = self.following(viewer);
        let stale = self.users.get(&viewer).is_some_and(|u| u.stale);
        let mut items: BTreeMap<u64, (i64, u64, Source)> = BTreeMap::new();
        if !stale {
            for &(ts, author, post) in self.timelines.get(&viewer).into_iter().flatten() {
                items.insert(post, (ts, author, Source::Push));
            }
        }
        for &author in &following {
            if stale || self.is_celebrity(author) {
                for &(ts, post) in self.recent.get(&author).into_iter().flatten() {
                    items.entry(post).or_insert((ts, author, Source::Pull));
                }
            }
        }
        let mut feed: Vec<(i64, u64, u64, Source)> = items
            .into_iter()
            .filter(|(post, (_, author, _))| {
                self.posts.get(post).is_some_and(|p| !p.deleted)
                    && following.contains(author)
                    && !self.blocks.contains(&(viewer, *author))
                    && !self.blocks.contains(&(*author, viewer))
            })
            .map(|(post, (ts, author, source))| (ts, post, author, source))
            .collect();
        feed.sort_by_key(|&(ts, post, _, _)| std::cmp::Reverse((ts, post)));
        feed
    }
}
