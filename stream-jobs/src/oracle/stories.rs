//! The stories job's model: every story ever created, views and close friends; what is live
//! is decided against a clock when read.

use std::collections::{BTreeMap, BTreeSet};

use aperture_schema::Envelope;
use aperture_schema::event::{Audience, Event};

use crate::jobs::stories::STORY_TTL_MS;

#[derive(Debug, Clone)]
pub struct Story {
    pub author: u64,
    pub ts: i64,
    pub close_friends: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Stories {
    pub stories: BTreeMap<u64, Story>,
    /// story → viewer → first view.
    pub viewers: BTreeMap<u64, BTreeMap<u64, i64>>,
    /// (author, friend).
    pub close_friends: BTreeSet<(u64, u64)>,
}

impl Stories {
    /// Applies one event (in event-time order, each id once).
    pub fn apply(&mut self, e: &Envelope) {
        let actor = e.actor_id;
        match &e.event {
            Event::StoryCreated(s) => {
                self.stories.entry(s.story_id).or_insert(Story {
                    author: actor,
                    ts: e.ts,
                    close_friends: s.audience == Audience::CloseFriends,
                });
            }
            Event::StoryViewed(v) if v.author_id != actor => {
                self.viewers
                    .entry(v.story_id)
                    .or_default()
                    .entry(actor)
                    .or_insert(e.ts);
            }
            Event::CloseFriendAdded(t) => {
                self.close_friends.insert((actor, t.target_id));
            }
            Event::CloseFriendRemoved(t) => {
                self.close_friends.remove(&(actor, t.target_id));
            }
            _ => {}
        }
    }

    /// Whether a story is live at `now_ms`.
    pub fn live(&self, story: u64, now_ms: i64) -> bool {
        self.stories
            .get(&story)
            .is_some_and(|s| s.ts + STORY_TTL_MS > now_ms)
    }

    /// The viewer's tray at `now_ms` given whom they follow: per author with a live story the
    /// viewer may see, (author, newest story time, any unseen, story ids oldest first); authors
    /// with unseen stories first, then by newest story.
    pub fn tray(
        &self,
        viewer: u64,
        following: &BTreeSet<u64>,
        now_ms: i64,
    ) -> Vec<(u64, i64, bool, Vec<u64>)> {
        let mut by_author: BTreeMap<u64, Vec<(i64, u64)>> = BTreeMap::new();
        for (&id, s) in &self.stories {
            if !following.contains(&s.author) || !self.live(id, now_ms) {
                continue;
            }
            if s.close_friends && !self.close_friends.contains(&(s.author, viewer)) {
                continue;
            }
            by_author.entry(s.author).or_default().push((s.ts, id));
        }
        let mut tray: Vec<(u64, i64, bool, Vec<u64>)> = by_author
            .into_iter()
            .map(|(author, mut stories)| {
                stories.sort();
                let newest = stories.last().map_or(0, |s| s.0);
                let unseen = stories.iter().any(|(_, id)| {
                    !self
                        .viewers
                        .get(id)
                        .is_some_and(|v| v.contains_key(&viewer))
                });
                (
                    author,
                    newest,
                    unseen,
                    stories.into_iter().map(|s| s.1).collect(),
                )
            })
            .collect();
        tray.sort_by_key(|&(author, newest, unseen, _)| {
            (std::cmp::Reverse(unseen), std::cmp::Reverse(newest), author)
        });
        tray
    }
}
