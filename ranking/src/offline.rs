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

use aperture_schema::event::{Event, MediaType};
use aperture_schema::truth::{LABEL_WINDOW_MS, Task};
use aperture_schema::{Config, Envelope};
use aperture_stream_jobs::jobs::engagement::utc_day;
use aperture_stream_jobs::oracle::engagement::Engagement;

use crate::features::Inputs;
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
    topic: Option<u32>,
    deleted: bool,
    /// Watch time of its views so far: total ms, views with a watch time.
    watch: (i64, i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Follow {
    Pending,
    Active,
}

/// The state the features read, as of the last event applied.
#[derive(Debug)]
pub struct Replay {
    engagement: Engagement,
    posts: HashMap<u64, Post>,
    private: HashMap<u64, bool>,
    follows: HashMap<(u64, u64), Follow>,
    blocks: HashSet<(u64, u64)>,
    followers: HashMap<u64, i64>,
    topics: Topics,
    /// Viewer → the posts they viewed, in order.
    seen: HashMap<u64, Vec<u64>>,
    /// (viewer, post) pairs with a like, comment, share or save.
    engaged: HashSet<(u64, u64)>,
    /// Author → watch time of views of their posts: total ms, views with a watch time.
    author_watch: HashMap<u64, (i64, i64)>,
}

impl Replay {
    pub fn new(config: &Config, topics: Topics) -> Replay {
        Replay {
            topics,
            seen: HashMap::new(),
            engaged: HashSet::new(),
            author_watch: HashMap::new(),
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
                    topic: self.topics.of_post(&p.hashtags),
                    deleted: false,
                    watch: (0, 0),
                });
            }
            Event::View(v) => {
                self.seen.entry(actor).or_default().push(v.post_id);
                if let Some(w) = v.watch_ms
                    && let Some(p) = self.posts.get_mut(&v.post_id)
                {
                    let w = w as i64;
                    p.watch.0 += w;
                    p.watch.1 += 1;
                    let a = self.author_watch.entry(p.author).or_default();
                    a.0 += w;
                    a.1 += 1;
                }
            }
            Event::Like(r) | Event::Save(r) => {
                self.engaged.insert((actor, r.post_id));
            }
            Event::CommentCreated(c) => {
                self.engaged.insert((actor, c.post_id));
            }
            Event::Share(sh) => {
                self.engaged.insert((actor, sh.post_id));
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

    /// The inputs of `viewer` seeing `post` at `at_ms`, or `None` when the post is unknown,
    /// deleted or the viewer's own (nothing a ranker would serve).
    pub fn inputs(
        &self,
        viewer: u64,
        post: u64,
        at_ms: i64,
        surface: aperture_schema::event::Surface,
    ) -> Option<Inputs> {
        let p = self.posts.get(&post)?;
        if p.deleted || p.author == viewer {
            return None;
        }
        let e = &self.engagement;
        let stats = e.posts.get(&post);
        let count = |f: &dyn Fn(&aperture_stream_jobs::oracle::engagement::PostStats) -> i64| {
            stats.map_or(0, f)
        };
        let pref = e.content_pref(viewer);
        let total_points: i64 = pref.values().sum();
        let media_points = pref.get(p.media_type.as_str()).copied().unwrap_or(0);
        let (mut tag_points, mut total_tag_points) = (0, 0);
        for (other, points) in e.points_of(viewer) {
            let Some(o) = self.posts.get(&other) else {
                continue;
            };
            for tag in &o.hashtags {
                total_tag_points += points;
                if p.hashtags.contains(tag) {
                    tag_points += points;
                }
            }
        }
        let (mut media_views, mut media_engaged) = (0, 0);
        let (mut topic_views, mut topic_engaged, mut total_topic_engaged) = (0, 0, 0);
        for other in self.seen.get(&viewer).into_iter().flatten() {
            let Some(o) = self.posts.get(other) else {
                continue;
            };
            let engaged = self.engaged.contains(&(viewer, *other));
            if o.media_type == p.media_type {
                media_views += 1;
                media_engaged += i64::from(engaged);
            }
            if o.topic.is_some() {
                total_topic_engaged += i64::from(engaged);
                if o.topic == p.topic {
                    topic_views += 1;
                    topic_engaged += i64::from(engaged);
                }
            }
        }
        let author_watch = self.author_watch.get(&p.author).copied().unwrap_or((0, 0));
        let (mut author_views_7d, mut author_interactions_7d) = (0, 0);
        for back in 0..7 {
            if let Some(d) = e.daily.get(&(p.author, utc_day(at_ms - back * DAY_MS))) {
                author_views_7d += d.views;
                author_interactions_7d += d.interactions;
            }
        }
        Some(Inputs {
            age_ms: (at_ms - p.created_at).max(0),
            media_type: p.media_type,
            surface,
            likes: count(&|s| s.likers.len() as i64),
            comments: count(&|s| s.comments() as i64),
            shares: count(&|s| s.shares),
            saves: count(&|s| s.savers.len() as i64),
            views: count(&|s| s.views),
            negative: count(&|s| s.hides + s.reports),
            first_hour: stats.and_then(|s| s.first_hour()).unwrap_or(0),
            author_followers: self.followers.get(&p.author).copied().unwrap_or(0),
            follows_author: self.follows.get(&(viewer, p.author)) == Some(&Follow::Active),
            affinity: e.affinity_at(viewer, p.author, at_ms),
            media_points,
            total_points,
            tag_points,
            total_tag_points,
            has_tags: !p.hashtags.is_empty(),
            viewer_negative_author: e
                .negative
                .get(&viewer)
                .and_then(|m| m.get(&p.author))
                .copied()
                .unwrap_or(0),
            author_views_7d,
            author_interactions_7d,
            media_views,
            media_engaged,
            has_topic: p.topic.is_some(),
            topic_views,
            topic_engaged,
            total_topic_engaged,
            post_watch_ms: p.watch.0,
            post_watched: p.watch.1,
            author_watch_ms: author_watch.0,
            author_watched: author_watch.1,
        })
    }
}

#[cfg(test)]
mod tests {
    use aperture_schema::event::{PostCreated, PostRef, Surface, Target, View};

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
