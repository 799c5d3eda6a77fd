//! The notifications job's model: batches per (recipient, type, post, window), each a map of
//! actor → time of their latest event in it.

use std::collections::{BTreeMap, BTreeSet};

use aperture_schema::event::Event;
use aperture_schema::{Config, Envelope};

/// recipient → batch id (`<type>:<post>:<window>`) → actor → time.
pub type Batches = BTreeMap<u64, BTreeMap<String, BTreeMap<u64, i64>>>;

#[derive(Debug, Clone)]
pub struct Notifications {
    window_ms: i64,
    pub batches: Batches,
    /// (post, user) whose like notified and stands.
    liked: BTreeSet<(u64, u64)>,
    usernames: BTreeMap<String, u64>,
    /// Mentions of usernames not created yet: (actor, post, ts).
    pending: BTreeMap<String, Vec<(u64, u64, i64)>>,
}

impl Notifications {
    pub fn new(config: &Config) -> Notifications {
        Notifications {
            window_ms: config.notifications.window.as_millis() as i64,
            batches: BTreeMap::new(),
            liked: BTreeSet::new(),
            usernames: BTreeMap::new(),
            pending: BTreeMap::new(),
        }
    }

    fn batch(&self, kind: &str, post: u64, ts: i64) -> String {
        format!("{kind}:{post}:{}", ts.div_euclid(self.window_ms))
    }

    fn notify(&mut self, recipient: u64, kind: &str, post: u64, actor: u64, ts: i64) {
        if recipient == actor {
            return;
        }
        let batch = self.batch(kind, post, ts);
        let at = self
            .batches
            .entry(recipient)
            .or_default()
            .entry(batch)
            .or_default()
            .entry(actor)
            .or_insert(ts);
        *at = (*at).max(ts);
    }

    /// Applies one event (in event-time order, each id once).
    pub fn apply(&mut self, e: &Envelope) {
        let actor = e.actor_id;
        let ts = e.ts;
        match &e.event {
            Event::Like(r) if self.liked.insert((r.post_id, actor)) => {
                self.notify(r.author_id, "like", r.post_id, actor, ts);
            }
            Event::Unlike(r) => {
                if !self.liked.remove(&(r.post_id, actor)) {
                    return;
                }
                let batch = self.batch("like", r.post_id, ts);
                if let Some(batches) = self.batches.get_mut(&r.author_id)
                    && let Some(actors) = batches.get_mut(&batch)
                {
                    actors.remove(&actor);
                    if actors.is_empty() {
                        batches.remove(&batch);
                    }
                }
            }
            Event::CommentCreated(c) => {
                self.notify(c.author_id, "comment", c.post_id, actor, ts);
                for name in &c.mentions {
                    self.mention(name, c.post_id, actor, ts);
                }
            }
            Event::PostCreated(p) => {
                for name in &p.mentions {
                    self.mention(name, p.post_id, actor, ts);
                }
            }
            Event::Follow(t) => self.notify(t.target_id, "follow", 0, actor, ts),
            Event::UserCreated(u) => {
                if self.usernames.contains_key(&u.username) {
                    return;
                }
                self.usernames.insert(u.username.clone(), actor);
                for (who, post, at) in self.pending.remove(&u.username).unwrap_or_default() {
                    self.notify(actor, "mention", post, who, at);
                }
            }
            _ => {}
        }
    }

    fn mention(&mut self, name: &str, post: u64, actor: u64, ts: i64) {
        match self.usernames.get(name) {
            Some(&recipient) => self.notify(recipient, "mention", post, actor, ts),
            None => self
                .pending
                .entry(name.to_owned())
                .or_default()
                .push((actor, post, ts)),
        }
    }
}
