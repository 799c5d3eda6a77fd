//! A summary of a generated workload: what `aperture generate` prints and what tests assert on.
//!
//! Everything is computed from the events themselves (not from the generator's internals), so
//! the summary also describes a workload that was read back from a file. The follow graph is
//! replayed with the semantics of `EVENTS.md` — pending requests, approvals, unfollows, blocks —
//! so follower counts are the active edges at the end of the span.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use aperture_schema::event::MediaType;
use aperture_schema::{Event, EventKind};

use super::workload::{Spec, Workload};

/// How many tags [`Summary::top_hashtags`] lists.
const TOP_TAGS: usize = 10;

/// Follower counts over every account, including those nobody follows.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Degrees {
    pub max: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub mean: f64,
}

/// The shape of a workload.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Summary {
    /// All events.
    pub events: u64,
    /// Events per type; every type is listed, with 0 when absent.
    pub by_kind: BTreeMap<EventKind, u64>,
    /// Accounts created (`user_created` events).
    pub users: u64,
    /// Accounts private at the end of the span.
    pub private_users: u64,
    /// Accounts verified at the end of the span.
    pub verified_users: u64,
    /// `follow` events sent.
    pub follow_events: u64,
    /// Active follow edges at the end of the span, after requests, approvals, unfollows and
    /// blocks.
    pub active_follows: u64,
    /// Follow requests still pending at the end of the span.
    pub pending_requests: u64,
    /// Active followers per account at the end of the span.
    pub followers: Degrees,
    /// Share of the active follows held by the 1% of accounts with most followers (at least one
    /// account), 0–1.
    pub top_percent_share: f64,
    /// The threshold the counts below use ([`Spec::celebrity_threshold`]).
    pub celebrity_threshold: u64,
    /// Accounts with at least `celebrity_threshold` active followers.
    pub celebrities_above_threshold: u64,
    /// `post_created` events.
    pub posts: u64,
    /// `post_deleted` events.
    pub deleted_posts: u64,
    /// Posts per media type, in [`MediaType::ALL`] order.
    pub media_mix: Vec<(MediaType, u64)>,
    /// Mean `like` events per post.
    pub likes_per_post: f64,
    /// Mean `comment_created` events per post.
    pub comments_per_post: f64,
    /// Mean `view` events per post.
    pub views_per_post: f64,
    /// `story_created` events.
    pub stories: u64,
    /// Distinct hashtags over all posts.
    pub distinct_hashtags: u64,
    /// The most used hashtags with the number of posts carrying each, most used first (ties by
    /// name).
    pub top_hashtags: Vec<(String, u64)>,
    /// The steady tag and the number of posts carrying it.
    pub steady_tag: (String, u64),
    /// Each burst tag and the number of posts carrying it.
    pub burst_tags: Vec<(String, u64)>,
    /// Earliest and latest event time, ms since the Unix epoch (0 for no events).
    pub first_ts: i64,
    pub last_ts: i64,
}

#[derive(Clone, Copy, PartialEq)]
enum Edge {
    Pending,
    Active,
}

impl Summary {
    /// Summarises `workload`, which `spec` generated (the spec gives the celebrity threshold).
    pub fn of(workload: &Workload, spec: &Spec) -> Summary {
        let mut by_kind: BTreeMap<EventKind, u64> =
            EventKind::ALL.iter().map(|&k| (k, 0)).collect();
        let mut private: HashMap<u64, bool> = HashMap::new();
        let mut verified: HashMap<u64, bool> = HashMap::new();
        let mut edges: HashMap<(u64, u64), Edge> = HashMap::new();
        let mut blocks: HashSet<(u64, u64)> = HashSet::new();
        let mut media: [u64; 4] = [0; 4];
        let mut tags: HashMap<&str, u64> = HashMap::new();

        // Events are in event-time order, ties in `event_id` order: replaying them in list order
        // applies the "latest event by ts, ties by event_id" rule.
        for e in &workload.events {
            *by_kind.entry(e.kind()).or_insert(0) += 1;
            let actor = e.actor_id;
            match &e.event {
                Event::UserCreated(u) => {
                    private.insert(actor, u.private);
                    verified.insert(actor, u.verified);
                }
                Event::UserUpdated(u) => {
                    if let Some(p) = u.private {
                        private.insert(actor, p);
                    }
                    if let Some(v) = u.verified {
                        verified.insert(actor, v);
                    }
                }
                Event::Follow(t) => {
                    let blocked = blocks.contains(&(actor, t.target_id))
                        || blocks.contains(&(t.target_id, actor));
                    if !blocked {
                        let state = if private.get(&t.target_id).copied().unwrap_or(false) {
                            Edge::Pending
                        } else {
                            Edge::Active
                        };
                        edges.insert((actor, t.target_id), state);
                    }
                }
                Event::Unfollow(t) => {
                    edges.remove(&(actor, t.target_id));
                }
                Event::FollowRequestApproved(a) => {
                    if let Some(state) = edges.get_mut(&(a.requester_id, actor))
                        && *state == Edge::Pending
                    {
                        *state = Edge::Active;
                    }
                }
                Event::Block(t) => {
                    blocks.insert((actor, t.target_id));
                    edges.remove(&(actor, t.target_id));
                    edges.remove(&(t.target_id, actor));
                }
                Event::Unblock(t) => {
                    blocks.remove(&(actor, t.target_id));
                }
                Event::PostCreated(p) => {
                    let slot = MediaType::ALL
                        .iter()
                        .position(|m| *m == p.media_type)
                        .expect("ALL lists every media type");
                    media[slot] += 1;
                    for tag in &p.hashtags {
                        *tags.entry(tag.as_str()).or_insert(0) += 1;
                    }
                }
                _ => {}
            }
        }

        let users = by_kind[&EventKind::UserCreated];
        let mut in_degree: HashMap<u64, u64> = HashMap::new();
        let mut active_follows = 0;
        let mut pending_requests = 0;
        for (&(_, to), state) in &edges {
            match state {
                Edge::Active => {
                    active_follows += 1;
                    *in_degree.entry(to).or_insert(0) += 1;
                }
                Edge::Pending => pending_requests += 1,
            }
        }
        // One count per account, zeros included, largest first.
        let mut counts: Vec<u64> = private
            .keys()
            .map(|u| in_degree.get(u).copied().unwrap_or(0))
            .collect();
        counts.sort_unstable_by(|a, b| b.cmp(a));
        let followers = degrees(&counts);
        let top = counts.len().div_ceil(100).max(1).min(counts.len());
        let top_sum: u64 = counts[..top].iter().sum();
        let threshold = spec.celebrity_threshold;

        let posts = by_kind[&EventKind::PostCreated];
        let per_post = |kind: EventKind| {
            if posts == 0 {
                0.0
            } else {
                by_kind[&kind] as f64 / posts as f64
            }
        };
        let tag_count = |tag: &str| tags.get(tag).copied().unwrap_or(0);
        let mut ranked: Vec<(&str, u64)> = tags.iter().map(|(t, c)| (*t, *c)).collect();
        ranked.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));

        Summary {
            events: workload.events.len() as u64,
            users,
            private_users: private.values().filter(|p| **p).count() as u64,
            verified_users: verified.values().filter(|v| **v).count() as u64,
            follow_events: by_kind[&EventKind::Follow],
            active_follows,
            pending_requests,
            followers,
            top_percent_share: if active_follows == 0 {
                0.0
            } else {
                top_sum as f64 / active_follows as f64
            },
            celebrity_threshold: threshold,
            celebrities_above_threshold: counts.iter().filter(|&&c| c >= threshold).count() as u64,
            posts,
            deleted_posts: by_kind[&EventKind::PostDeleted],
            media_mix: MediaType::ALL.iter().copied().zip(media).collect(),
            likes_per_post: per_post(EventKind::Like),
            comments_per_post: per_post(EventKind::CommentCreated),
            views_per_post: per_post(EventKind::View),
            stories: by_kind[&EventKind::StoryCreated],
            distinct_hashtags: tags.len() as u64,
            top_hashtags: ranked
                .iter()
                .take(TOP_TAGS)
                .map(|(t, c)| ((*t).to_string(), *c))
                .collect(),
            steady_tag: (workload.steady_tag.clone(), tag_count(&workload.steady_tag)),
            burst_tags: workload
                .burst_tags
                .iter()
                .map(|t| (t.clone(), tag_count(t)))
                .collect(),
            first_ts: workload.events.first().map_or(0, |e| e.ts),
            last_ts: workload.events.last().map_or(0, |e| e.ts),
            by_kind,
        }
    }
}

/// Max, percentiles (nearest rank) and mean of counts sorted largest first.
fn degrees(desc: &[u64]) -> Degrees {
    if desc.is_empty() {
        return Degrees::default();
    }
    let n = desc.len();
    // The p-th percentile of the ascending order is at ascending rank ceil(p·n), i.e. at
    // descending index n − ceil(p·n).
    let pct = |p: usize| desc[n - (p * n).div_ceil(100).max(1)];
    Degrees {
        max: desc[0],
        p50: pct(50),
        p90: pct(90),
        p99: pct(99),
        mean: desc.iter().sum::<u64>() as f64 / n as f64,
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let span_h = (self.last_ts - self.first_ts) as f64 / 3_600_000.0;
        writeln!(
            f,
            "events: {} over {span_h:.1} h (ts {} to {})",
            self.events, self.first_ts, self.last_ts
        )?;
        writeln!(f, "by type:")?;
        for (kind, count) in &self.by_kind {
            writeln!(f, "  {:<24} {count:>9}", kind.as_str())?;
        }
        writeln!(
            f,
            "users: {} ({} private, {} verified at the end)",
            self.users, self.private_users, self.verified_users
        )?;
        writeln!(
            f,
            "follows: {} events, {} active edges and {} pending requests at the end",
            self.follow_events, self.active_follows, self.pending_requests
        )?;
        let d = &self.followers;
        writeln!(
            f,
            "followers per account: max {}, p50 {}, p90 {}, p99 {}, mean {:.1}; top 1% hold {:.1}%",
            d.max,
            d.p50,
            d.p90,
            d.p99,
            d.mean,
            self.top_percent_share * 100.0
        )?;
        writeln!(
            f,
            "accounts with at least {} followers: {}",
            self.celebrity_threshold, self.celebrities_above_threshold
        )?;
        let mix: Vec<String> = self
            .media_mix
            .iter()
            .map(|(m, c)| format!("{} {c}", m.as_str()))
            .collect();
        writeln!(
            f,
            "posts: {} ({}), {} deleted",
            self.posts,
            mix.join(", "),
            self.deleted_posts
        )?;
        writeln!(
            f,
            "per post: {:.1} likes, {:.2} comments, {:.1} views",
            self.likes_per_post, self.comments_per_post, self.views_per_post
        )?;
        writeln!(f, "stories: {}", self.stories)?;
        let top: Vec<String> = self
            .top_hashtags
            .iter()
            .map(|(t, c)| format!("#{t} {c}"))
            .collect();
        writeln!(
            f,
            "hashtags: {} distinct; top: {}",
            self.distinct_hashtags,
            top.join(", ")
        )?;
        writeln!(
            f,
            "steady tag: #{} on {} posts",
            self.steady_tag.0, self.steady_tag.1
        )?;
        let bursts: Vec<String> = self
            .burst_tags
            .iter()
            .map(|(t, c)| format!("#{t} {c}"))
            .collect();
        write!(f, "burst tags: {}", bursts.join(", "))
    }
}
