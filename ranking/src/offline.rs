//! Training data from the event log: every `view` an impression, its [`Inputs`] as the state
//! stood just before it, and its labels from the viewer's engagement after it
//! ([`aperture_schema::truth`] defines both).
//!
//! The log is replayed in event-time order (ts, then event id; the order the jobs' semantics
//! are defined in) through the oracle's engagement model, so post counters, affinity and
//! preference points mean exactly what the engagement job keeps in Redis; the follow graph is
//! folded beside it with the graph job's rules. An impression's inputs are read before the view
//! itself is applied, and every later event is still unapplied then: no feature sees its own
//! label or anything after it.

use std::collections::{HashMap, HashSet};

use aperture_schema::engagement::{Engagement, PostStats};
use aperture_schema::event::{Event, MediaType, Surface};
use aperture_schema::state::utc_day;
use aperture_schema::truth::{LABEL_WINDOW_MS, Task};
use aperture_schema::{Config, Envelope};

use crate::features::{self, Author, Inputs, Pair, Seen, Viewer};
use crate::topics::Topics;

const DAY_MS: i64 = 86_400_000;

/// One impression with what the state said before it and what the viewer did after it.
#[derive(Debug, Clone, PartialEq)]
pub struct Impression {
    /// The `view` event's id: the key of the generator's truth.
    pub event_id: String,
    pub viewer: u64,
    pub post: u64,
    pub author: u64,
    pub ts: i64,
    pub inputs: Inputs,
    /// Per task of [`Task::ALL`], whether the viewer did it within the label window.
    pub labels: [bool; 5],
    /// The view's own watch time, for videos and reels.
    pub watch_ms: Option<f64>,
}

impl Impression {
    pub fn label(&self, task: Task) -> bool {
        self.labels[task.index()]
    }
}

/// Every impression of a log, in event-time order.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    pub impressions: Vec<Impression>,
    /// Event time of the first and last event of the log.
    pub first_ms: i64,
    pub last_ms: i64,
}

impl Dataset {
    /// Builds the dataset from `events`, which must be in event-time order with each id once
    /// (as `aperture_warehouse::replay::events` returns them).
    /// Posts' topics come from `topics`.
    pub fn from_events(events: &[Envelope], config: &Config, topics: &Topics) -> Dataset {
        let mut replay = Replay::new(config, topics.clone());
        let mut impressions = Vec::new();
        for e in events {
            if let Event::View(v) = &e.event
                && let Some(inputs) = replay.inputs(e.actor_id, v.post_id, e.ts, v.surface)
            {
                impressions.push(Impression {
                    event_id: e.event_id.clone(),
                    viewer: e.actor_id,
                    post: v.post_id,
                    author: v.author_id,
                    ts: e.ts,
                    inputs,
                    labels: [false; 5],
                    watch_ms: v.watch_ms.map(|w| w as f64),
                });
            }
            replay.apply(e);
        }
        label(&mut impressions, events);
        Dataset {
            impressions,
            first_ms: events.first().map_or(0, |e| e.ts),
            last_ms: events.last().map_or(0, |e| e.ts),
        }
    }
}

/// The task an engagement event labels, with the post it concerns.
fn labelled(e: &Envelope) -> Option<(Task, u64)> {
    Some(match &e.event {
        Event::Like(r) => (Task::Like, r.post_id),
        Event::CommentCreated(c) => (Task::Comment, c.post_id),
        Event::Share(s) => (Task::Share, s.post_id),
        Event::Save(r) => (Task::Save, r.post_id),
        Event::Hide(h) => (Task::Negative, h.post_id),
        Event::Report(r) => (Task::Negative, r.post_id),
        _ => return None,
    })
}

/// Sets each impression's labels: an engagement event labels the latest impression of its
/// (viewer, post) at or before it, within [`LABEL_WINDOW_MS`].
fn label(impressions: &mut [Impression], events: &[Envelope]) {
    let mut by_pair: HashMap<(u64, u64), Vec<usize>> = HashMap::new();
    for (i, imp) in impressions.iter().enumerate() {
        by_pair.entry((imp.viewer, imp.post)).or_default().push(i);
    }
    for e in events {
        let Some((task, post)) = labelled(e) else {
            continue;
        };
        let Some(list) = by_pair.get(&(e.actor_id, post)) else {
            continue;
        };
        // Impressions are in event-time order, so the list is too.
        let before = list.partition_point(|&i| impressions[i].ts <= e.ts);
        if before == 0 {
            continue;
        }
        let i = list[before - 1];
        if e.ts - impressions[i].ts <= LABEL_WINDOW_MS {
            impressions[i].labels[task.index()] = true;
        }
    }
}

/// A post as the replay knows it.
#[derive(Debug, Clone)]
struct Post {
    author: u64,
    created_at: i64,
    media_type: MediaType,
    hashtags: Vec<String>,
    deleted: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Follow {
    Pending,
    Active,
}

/// The state the features read, as of the last event applied: the engagement job's (through
/// its oracle), posts as the fan-out job keeps them, and the follow graph by the graph job's
/// rules.
#[derive(Debug)]
pub struct Replay {
    engagement: Engagement,
    posts: HashMap<u64, Post>,
    private: HashMap<u64, bool>,
    follows: HashMap<(u64, u64), Follow>,
    blocks: HashSet<(u64, u64)>,
    followers: HashMap<u64, i64>,
    topics: Topics,
}

impl Replay {
    pub fn new(config: &Config, topics: Topics) -> Replay {
        Replay {
            topics,
            engagement: Engagement::new(config),
            posts: HashMap::new(),
            private: HashMap::new(),
            follows: HashMap::new(),
            blocks: HashSet::new(),
            followers: HashMap::new(),
        }
    }

    /// Applies one event (in event-time order, each id once).
    pub fn apply(&mut self, e: &Envelope) {
        self.engagement.apply(e);
        let actor = e.actor_id;
        match &e.event {
            Event::UserCreated(u) => {
                self.private.insert(actor, u.private);
            }
            Event::UserUpdated(u) => {
                if let Some(p) = u.private {
                    self.private.insert(actor, p);
                }
            }
            // The graph job's rules, as the oracle states them.
            Event::Follow(t) => {
                let b = t.target_id;
                if !self.follows.contains_key(&(actor, b))
                    && !self.blocks.contains(&(actor, b))
                    && !self.blocks.contains(&(b, actor))
                {
                    let next = if self.private.get(&b).copied().unwrap_or(false) {
                        Follow::Pending
                    } else {
                        Follow::Active
                    };
                    self.set(actor, b, Some(next));
                }
            }
            Event::Unfollow(t) => self.set(actor, t.target_id, None),
            Event::FollowRequestApproved(r)
                if self.follows.get(&(r.requester_id, actor)) == Some(&Follow::Pending) =>
            {
                self.set(r.requester_id, actor, Some(Follow::Active));
            }
            Event::Block(t) => {
                self.blocks.insert((actor, t.target_id));
                self.set(actor, t.target_id, None);
                self.set(t.target_id, actor, None);
            }
            Event::Unblock(t) => {
                self.blocks.remove(&(actor, t.target_id));
            }
            Event::PostCreated(p) => {
                self.posts.entry(p.post_id).or_insert_with(|| Post {
                    author: actor,
                    created_at: e.ts,
                    media_type: p.media_type,
                    hashtags: p.hashtags.clone(),
                    deleted: false,
                });
            }
            Event::PostDeleted(d) => {
                if let Some(p) = self.posts.get_mut(&d.post_id)
                    && p.author == actor
                {
                    p.deleted = true;
                }
            }
            _ => {}
        }
    }

    fn set(&mut self, a: u64, b: u64, next: Option<Follow>) {
        let before = match next {
            Some(s) => self.follows.insert((a, b), s),
            None => self.follows.remove(&(a, b)),
        };
        let was = before == Some(Follow::Active);
        let is = next == Some(Follow::Active);
        if was != is {
            *self.followers.entry(b).or_default() += if is { 1 } else { -1 };
        }
    }

    /// The viewer's state: preference points and their history's posts that are known and
    /// not deleted.
    pub fn viewer(&self, viewer: u64) -> Viewer {
        let e = &self.engagement;
        let engaged = e.engaged.get(&viewer);
        let history = e.history_posts(viewer).filter_map(|id| {
            let o = self.posts.get(&id).filter(|o| !o.deleted)?;
            Some(Seen {
                media_type: o.media_type,
                hashtags: &o.hashtags,
                engaged: engaged.is_some_and(|m| m.contains_key(&id)),
            })
        });
        Viewer::new(e.content_pref(viewer), history, &self.topics)
    }

    /// The post's state, or `None` when it is unknown or deleted.
    pub fn post(&self, post: u64) -> Option<features::Post> {
        let p = self.posts.get(&post).filter(|p| !p.deleted)?;
        let s = self.engagement.posts.get(&post);
        let count = |f: &dyn Fn(&PostStats) -> i64| s.map_or(0, f);
        Some(features::Post {
            author: p.author,
            created_at: p.created_at,
            media_type: p.media_type,
            hashtags: p.hashtags.clone(),
            likes: count(&|s| s.likers.len() as i64),
            comments: count(&|s| s.comments() as i64),
            shares: count(&|s| s.shares),
            saves: count(&|s| s.savers.len() as i64),
            views: count(&|s| s.views),
            negative: count(&|s| s.hides + s.reports),
            first_hour: s.and_then(|s| s.first_hour()).unwrap_or(0),
            watch_ms: count(&|s| s.watch_ms),
            watch_views: count(&|s| s.watch_views),
        })
    }

    /// The author's state on the UTC day of `at_ms` and the six before.
    pub fn author(&self, author: u64, at_ms: i64) -> Author {
        let mut a = Author {
            followers: self.followers.get(&author).copied().unwrap_or(0),
            ..Author::default()
        };
        for back in 0..7 {
            if let Some(d) = self
                .engagement
                .daily
                .get(&(author, utc_day(at_ms - back * DAY_MS)))
            {
                a.views_7d += d.views;
                a.interactions_7d += d.interactions;
                a.watch_ms_7d += d.watch_ms;
                a.watch_views_7d += d.watch_views;
            }
        }
        a
    }

    /// The viewer and the author together, at `at_ms`.
    pub fn pair(&self, viewer: u64, author: u64, at_ms: i64) -> Pair {
        let e = &self.engagement;
        Pair {
            follows: self.follows.get(&(viewer, author)) == Some(&Follow::Active),
            affinity: e.affinity_at(viewer, author, at_ms),
            negative: e
                .negative
                .get(&viewer)
                .and_then(|m| m.get(&author))
                .copied()
                .unwrap_or(0),
        }
    }

    /// The topics posts are mapped with.
    pub fn topics(&self) -> &Topics {
        &self.topics
    }

    /// The inputs of `viewer` seeing `post` at `at_ms`, or `None` when the post is unknown,
    /// deleted or the viewer's own (nothing a ranker would serve).
    pub fn inputs(&self, viewer: u64, post: u64, at_ms: i64, surface: Surface) -> Option<Inputs> {
        let p = self.post(post)?;
        if p.author == viewer {
            return None;
        }
        Some(features::assemble(
            &self.viewer(viewer),
            &p,
            &self.author(p.author, at_ms),
            &self.pair(viewer, p.author, at_ms),
            &self.topics,
            at_ms,
            surface,
        ))
    }
}

#[cfg(test)]
mod tests {
    use aperture_schema::event::{PostCreated, PostRef, Target, View};

    use super::*;

    const T0: i64 = 1_763_856_000_000;
    const MIN: i64 = 60_000;

    fn ev(id: &str, actor: u64, ts: i64, event: Event) -> Envelope {
        Envelope {
            v: 1,
            event_id: id.into(),
            actor_id: actor,
            ts,
            event,
        }
    }

    fn post(id: &str, author: u64, post: u64, ts: i64) -> Envelope {
        ev(
            id,
            author,
            ts,
            Event::PostCreated(PostCreated {
                post_id: post,
                media_type: MediaType::Photo,
                media: vec!["m".into()],
                caption: "#sea".into(),
                location: None,
                hashtags: vec!["sea".into()],
                mentions: vec![],
            }),
        )
    }

    fn view(id: &str, viewer: u64, post: u64, ts: i64) -> Envelope {
        ev(
            id,
            viewer,
            ts,
            Event::View(View {
                post_id: post,
                author_id: 1,
                surface: Surface::Feed,
                dwell_ms: 6_000,
                watch_ms: None,
            }),
        )
    }

    fn like(id: &str, viewer: u64, post: u64, ts: i64) -> Envelope {
        ev(
            id,
            viewer,
            ts,
            Event::Like(PostRef {
                post_id: post,
                author_id: 1,
            }),
        )
    }

    fn dataset(mut events: Vec<Envelope>) -> Dataset {
        events.sort_by(|a, b| (a.ts, &a.event_id).cmp(&(b.ts, &b.event_id)));
        Dataset::from_events(&events, &Config::load(None).unwrap(), &Topics::default())
    }

    #[test]
    fn engagement_labels_the_latest_view_before_it_within_the_window() {
        let d = dataset(vec![
            post("p", 1, 10, T0),
            view("v1", 2, 10, T0 + MIN),
            view("v2", 2, 10, T0 + 2 * MIN),
            like("l", 2, 10, T0 + 3 * MIN),
            view("v3", 3, 10, T0 + MIN),
            like("late", 3, 10, T0 + MIN + LABEL_WINDOW_MS + 1),
            // The author's own view is no impression; a view of an unknown post neither.
            view("own", 1, 10, T0 + MIN),
            view("unknown", 2, 99, T0 + MIN),
        ]);
        let labels: Vec<(&str, bool)> = d
            .impressions
            .iter()
            .map(|i| (i.event_id.as_str(), i.label(Task::Like)))
            .collect();
        assert_eq!(labels, [("v1", false), ("v3", false), ("v2", true)]);
    }

    #[test]
    fn an_impression_sees_the_state_before_it_and_nothing_after() {
        let events = vec![
            ev("f", 2, T0 - MIN, Event::Follow(Target { target_id: 1 })),
            post("p", 1, 10, T0),
            like("l0", 3, 10, T0 + MIN),
            view("v", 2, 10, T0 + 2 * MIN),
            like("l", 2, 10, T0 + 3 * MIN),
            view("w", 4, 10, T0 + 4 * MIN),
        ];
        let d = dataset(events.clone());
        let v = &d.impressions[0];
        assert_eq!(v.event_id, "v");
        assert_eq!(
            v.inputs.likes, 1,
            "the like before counts, its own does not"
        );
        assert!(v.inputs.follows_author);
        assert_eq!(v.inputs.author_followers, 1);
        assert_eq!(
            v.inputs.views, 0,
            "its own view is applied after it is read"
        );
        assert_eq!(v.inputs.age_ms, 2 * MIN);
        assert!(v.inputs.affinity == 0.0 && v.inputs.total_points == 0);
        let w = &d.impressions[1];
        assert_eq!((w.inputs.likes, w.inputs.views), (2, 1));
        assert!(!w.inputs.follows_author);
        // Cutting the log after an impression changes nothing of it.
        let cut = dataset(events[..4].to_vec());
        assert_eq!(cut.impressions[0].inputs, v.inputs);
    }
}
