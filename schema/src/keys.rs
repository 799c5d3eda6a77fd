//! The Redis keyspace: every key Aperture reads or writes is built here.
//!
//! Keys start with a configurable prefix, so several deployments and test runs share one server
//! without colliding, and a whole deployment is removed with one `SCAN MATCH <prefix>:*`.
//!
//! # Hash tags
//!
//! Redis Cluster hashes only the part of a key between the first `{` and the next `}`. Keys that
//! one atomic update touches together carry the same tag:
//!
//! - everything about one user (`{u:42}`): profile, follower and following sets, requests,
//!   blocks, close friends, recent posts, timeline, last-active time — so a follow, which changes
//!   the follower's following set and counts, is one slot per side;
//! - everything about one post (`{p:9001}`): its hash and per-post counters;
//! - a job partition's checkpoint (`{j:fanout:3}`): the applied offset and the fencing epoch, which
//!   the runtime reads and writes in the same script.
//!
//! The prefix stays outside the tag, so one user's keys share a slot whatever the prefix.

/// What a key prefix may contain: no `{`/`}` (they would change what Redis Cluster hashes), no
/// quotes or spaces (the prefix is also written into Lua source).
pub const PREFIX_CHARS: &str = "A-Z a-z 0-9 _ . : -";

/// Whether `prefix` is non-empty and made of [`PREFIX_CHARS`].
pub fn is_valid_prefix(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'))
}

/// Builds key names under one prefix. Cheap to clone; build once from configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyspace {
    prefix: String,
}

impl Keyspace {
    /// A keyspace under `prefix` (for example `ap`). The prefix must not contain `{` or `}`:
    /// they would change which part of every key Redis Cluster hashes.
    pub fn new(prefix: impl Into<String>) -> Self {
        let prefix = prefix.into();
        assert!(
            is_valid_prefix(&prefix),
            "key prefix {prefix:?} must not contain characters other than {PREFIX_CHARS} \
             (checked by config validation)"
        );
        Keyspace { prefix }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `SCAN MATCH` pattern for every key of this deployment.
    pub fn pattern(&self) -> String {
        format!("{}:*", self.prefix)
    }

    fn user(&self, user_id: u64, what: &str) -> String {
        format!("{}:{{u:{user_id}}}:{what}", self.prefix)
    }

    fn post(&self, post_id: u64, what: &str) -> String {
        format!("{}:{{p:{post_id}}}:{what}", self.prefix)
    }

    fn story_key(&self, story_id: u64, what: &str) -> String {
        format!("{}:{{s:{story_id}}}:{what}", self.prefix)
    }

    /// ZSET: the actors of one notification batch of a recipient (`batch` as in
    /// [`Keyspace::notifications`]), scored by the time of their event.
    pub fn notification_batch(&self, user_id: u64, batch: &str) -> String {
        format!("{}:{{u:{user_id}}}:notif:{batch}", self.prefix)
    }

    /// HASH: a creator's rollup for one UTC day (`YYYY-MM-DD`): views, interactions, follows,
    /// unfollows.
    pub fn creator_daily(&self, user_id: u64, day: &str) -> String {
        format!("{}:{{u:{user_id}}}:daily:{day}", self.prefix)
    }

    /// HyperLogLog: the distinct accounts that viewed a creator's posts on one day.
    pub fn creator_reach(&self, user_id: u64, day: &str) -> String {
        format!("{}:{{u:{user_id}}}:reach:{day}", self.prefix)
    }

    /// HyperLogLog: the distinct accounts that viewed a creator's posts on one day from one
    /// surface (`feed`, `explore`, `reels`, `profile`, `hashtag`), so a breakdown by surface can
    /// fold the surfaces too few accounts used.
    pub fn creator_surface_reach(&self, user_id: u64, day: &str, surface: &str) -> String {
        format!("{}:{{u:{user_id}}}:reach:{day}:{surface}", self.prefix)
    }

    /// HyperLogLog: the distinct accounts that interacted with a creator's posts on one day.
    pub fn creator_engaged(&self, user_id: u64, day: &str) -> String {
        format!("{}:{{u:{user_id}}}:engaged:{day}", self.prefix)
    }

    /// STRING: the user id of a username, as the notifications job learnt it (mentions name
    /// users by username).
    pub fn mention_user(&self, username: &str) -> String {
        format!("{}:{{n:{username}}}:user", self.prefix)
    }

    /// HASH: mentions of a username not known yet, by event id, until its `user_created`.
    pub fn pending_mentions(&self, username: &str) -> String {
        format!("{}:{{n:{username}}}:pending", self.prefix)
    }

    /// HASH: one trending bucket (`granularity` `5m` or `1h`, `bucket` its start in ms): per
    /// hashtag, the posts created in it.
    pub fn trend_bucket(&self, granularity: &str, bucket: i64) -> String {
        format!("{}:trend:{granularity}:{bucket}", self.prefix)
    }

    /// STRING: the earliest post time the trending job has counted: how much history the
    /// baselines have (a young deployment must not mistake its first day for a quiet one).
    pub fn trend_since(&self) -> String {
        format!("{}:trend_since", self.prefix)
    }

    /// ZSET: a hashtag's live posts as `author:post`, scored by event time (kept for the
    /// longest window and its baseline), for the distinct-accounts floor.
    pub fn trend_posts(&self, tag: &str) -> String {
        format!("{}:{{t:{tag}}}:trend_posts", self.prefix)
    }

    /// STRING: the event-time watermark of a job's partition (the highest event time applied),
    /// stored with the partition's offset.
    pub fn job_watermark(&self, job: &str, partition: u32) -> String {
        format!("{}:{{j:{job}:{partition}}}:watermark", self.prefix)
    }

    /// STRING: user id owning a username.
    pub fn username(&self, username: &str) -> String {
        format!("{}:username:{username}", self.prefix)
    }

    /// STRING: the next offset a job has applied for one partition.
    pub fn job_offset(&self, job: &str, partition: u32) -> String {
        format!("{}:{{j:{job}:{partition}}}:offset", self.prefix)
    }

    /// ZSET: the live workers of a worker group, scored by their last heartbeat (ms).
    pub fn workers(&self, group: &str) -> String {
        format!("{}:{{r:{group}}}:workers", self.prefix)
    }

    /// STRING (with a TTL): the worker holding the lease on one partition for a worker group.
    pub fn lease(&self, group: &str, partition: u32) -> String {
        format!("{}:{{r:{group}}}:lease:{partition}", self.prefix)
    }

    /// ZSET: the posts created in one source partition within the pool window, members
    /// `author:post` scored by post time; in the pools job's checkpoint slot.
    pub fn pool_fresh(&self, partition: u32) -> String {
        format!("{}:{{j:pools:{partition}}}:fresh", self.prefix)
    }

    /// ZSET: [`Keyspace::pool_fresh`] for reels only.
    pub fn pool_fresh_reels(&self, partition: u32) -> String {
        format!("{}:{{j:pools:{partition}}}:fresh_reels", self.prefix)
    }

    /// STRING: the newest post time the pools job has seen in one source partition.
    pub fn pool_newest(&self, partition: u32) -> String {
        format!("{}:{{j:pools:{partition}}}:newest", self.prefix)
    }

    /// LIST (with a TTL): the items of one ranked session of a viewer (`surface` `explore`,
    /// `reels` or `feed`), in the order served, as JSON; written by the read API so a cursor
    /// never repeats an item. In the viewer's slot.
    pub fn rank_session(&self, user_id: u64, surface: &str, session: &str) -> String {
        format!("{}:{{u:{user_id}}}:rank:{surface}:{session}", self.prefix)
    }

    /// HASH in the slot of hash tag `tag` (`u:42`, `p:9001`, …): per job, source partition and
    /// step (`engagement:3:1`), `<epoch>:<next offset>` of the last slot-local update applied
    /// here, so a redelivered update is skipped and a stale worker's is refused; and beside it
    /// (`engagement:3:1:out`) the outbox: what those updates emitted for the next step, one
    /// line per operation, kept until a batch starts past it, so a replay re-emits what the
    /// first try decided.
    pub fn slot_applied(&self, tag: &str) -> String {
        format!("{}:{{{tag}}}:applied", self.prefix)
    }

    /// STRING: the fencing epoch of the worker that owns a job partition.
    pub fn job_epoch(&self, job: &str, partition: u32) -> String {
        format!("{}:{{j:{job}:{partition}}}:epoch", self.prefix)
    }
}

/// Declares the keys of one entity: a method per key on [`Keyspace`], and the same list for
/// [`Keyspace::lua_functions`], so Rust and the jobs' Lua scripts build identical names.
macro_rules! entity_keys {
    ($list:ident, $builder:ident, $id:ident; $($(#[$doc:meta])* $name:ident => $what:literal),* $(,)?) => {
        impl Keyspace {
            $(
                $(#[$doc])*
                pub fn $name(&self, $id: u64) -> String {
                    self.$builder($id, $what)
                }
            )*
        }
        const $list: &[(&str, &str)] = &[$((stringify!($name), $what)),*];
    };
}

entity_keys! { USER_KEYS, user, user_id;
    /// HASH: username, display name, flags (`private`, `verified`, `celebrity`, `stale`), counts
    /// and the stamps of the latest update of each field.
    profile => "profile",
    /// ZSET: the user's active followers, scored by the time the follow became active.
    followers => "followers",
    /// ZSET: the accounts the user actively follows, scored like `followers`.
    following => "following",
    /// ZSET: pending follow requests to a private user, scored by request time.
    follow_requests => "requests",
    /// SET: the accounts the user blocks.
    blocks => "blocks",
    /// SET: the accounts that block the user (the mirror of `blocks`, so reads about the user
    /// honour blocks both ways from the user's own slot).
    blocked_by => "blocked_by",
    /// SET: the accounts the user actively follows that are celebrities now: whose recent
    /// posts the feed pulls at read time, found without reading every followee's profile.
    celebrity_followees => "celebrity_followees",
    /// SET: the user's close-friends list.
    close_friends => "close_friends",
    /// HASH: per account the user relates to (follows, requested, blocked, was blocked by), the
    /// ordered log of the events that decide the pair's state, so any arrival order folds to
    /// the same result.
    relations => "relations",
    /// SET: the accounts whose `relations` hold a log about this user.
    inbound => "inbound",
    /// ZSET: changes of the user's `private` flag, scored by event time (member `event_id|0/1`).
    private_history => "private_history",
    /// ZSET: the author's recent posts (capped), scored by post time; for pull and backfill.
    recent_posts => "recent_posts",
    /// ZSET: the user's pushed home timeline (capped), members `author_id:post_id` scored by
    /// post time.
    timeline => "timeline",
    /// STRING: the user's last-active event time in ms.
    last_active => "last_active",
    /// ZSET: the event ids of the user's recent engagement events (scored by event time,
    /// trimmed to the dedupe window), so a redelivered view or share counts once.
    engagement_seen => "engagement_seen",
    /// ZSET: the viewer's decayed affinity to each author, stored as
    /// `Σ weight · 2^((ts − epoch) / half-life)` so that adding is order-free; divide by
    /// `2^((now − epoch) / half-life)` to read it at `now`.
    affinity => "affinity",
    /// HASH: the viewer's engagement points per media type (`photo`, `video`, `reel`,
    /// `carousel`), from views and interactions.
    content_pref => "content_pref",
    /// ZSET: the authors the viewer hid or reported posts of, scored by how many times.
    negative_authors => "negative_authors",
    /// ZSET: the posts the viewer hid or reported, scored by event time (capped).
    hidden_posts => "hidden_posts",
    /// ZSET: the viewer's latest views of others' posts (capped), members `post_id:event_id`
    /// scored by event time: the history ranking features count by media type and topic.
    view_history => "view_history",
    /// ZSET: the others' posts the viewer liked, commented, shared or saved (capped), scored by
    /// the first such act: the engaged half of the history, and the co-engagement source.
    engaged_posts => "engaged_posts",
    /// ZSET: the user's notification batches (`<type>:<post>:<window>`), scored by the time of
    /// the latest event in each.
    notifications => "notifications",
    /// STRING: the score of the newest notification the user has marked read. Written by the
    /// API, not derived from the log.
    notifications_read => "notifications_read",
    /// ZSET: the author's live stories, scored by event time.
    stories => "stories",
    /// ZSET: the stories the viewer has seen, scored by when.
    stories_seen => "stories_seen",
}

entity_keys! { POST_KEYS, post, post_id;
    /// HASH: a post's author, media, caption, hashtags, created time and deleted flag.
    post_meta => "meta",
    /// HASH: a post's counters (likes, comments, shares, saves, views, hides, reports, dwell and
    /// watch totals, first-hour interactions) and the engagement job's copy of its creation.
    post_counts => "counts",
    /// ZSET: the users who like the post now, scored by the like's event time.
    post_likers => "likers",
    /// ZSET: the users who have the post saved now, scored like `post_likers`.
    post_savers => "savers",
    /// SET: the users whose like on the post is on, as the notifications job tracks it, so a
    /// repeated like notifies once.
    post_like_notified => "like_notified",
    /// HASH: per comment id, `<ts>:<commenter>` while it stands, `-` once deleted
    /// (`-:<who>,<who>…` for deletes that arrived before the comment).
    post_comments => "comments",
    /// HyperLogLog: the post's distinct viewers (standard error 0.81%).
    post_viewers => "viewers",
    /// HASH: interactions that arrived before the post itself, by event time, until its
    /// creation decides whether they fall in its first hour.
    post_early => "early",
    /// HASH: engagement points per user that arrived before the post, until its creation says
    /// which media type they count for.
    post_pending_pref => "pending_pref",
}

entity_keys! { STORY_KEYS, story_key, story_id;
    /// HASH: a story's author, event time, media and audience; expires 24 h after its event time.
    story => "meta",
    /// ZSET: who has seen the story, scored by when; read by the author only.
    story_viewers => "viewers",
}

impl Keyspace {
    /// Lua that defines `k_<name>(id)` for every user and post key (ids as decimal strings), for
    /// the jobs' Redis scripts.
    pub fn lua_functions(&self) -> String {
        self.lua_key_functions(false)
    }

    /// [`Keyspace::lua_functions`] for a script that declares its keys: every name built goes
    /// through `declared(name)`, which the script defines to refuse a key not in its `KEYS`.
    pub fn lua_functions_declared(&self) -> String {
        self.lua_key_functions(true)
    }

    fn lua_key_functions(&self, checked: bool) -> String {
        let (open, close) = if checked {
            ("declared(", ")")
        } else {
            ("", "")
        };
        let mut lua = format!("local PREFIX = '{}'\n", self.prefix);
        let families = [("u", USER_KEYS), ("p", POST_KEYS), ("s", STORY_KEYS)];
        for (tag, list) in families {
            for (name, what) in list {
                lua.push_str(&format!(
                    "local function k_{name}(id) return {open}PREFIX .. ':{{{tag}:' .. id .. '}}:{what}'{close} end\n"
                ));
            }
        }
        let others = [
            (
                "notification_batch(id, batch)",
                "':{u:' .. id .. '}:notif:' .. batch",
            ),
            (
                "creator_daily(id, day)",
                "':{u:' .. id .. '}:daily:' .. day",
            ),
            (
                "creator_reach(id, day)",
                "':{u:' .. id .. '}:reach:' .. day",
            ),
            (
                "creator_engaged(id, day)",
                "':{u:' .. id .. '}:engaged:' .. day",
            ),
            (
                "creator_surface_reach(id, day, surface)",
                "':{u:' .. id .. '}:reach:' .. day .. ':' .. surface",
            ),
            ("mention_user(name)", "':{n:' .. name .. '}:user'"),
            ("pending_mentions(name)", "':{n:' .. name .. '}:pending'"),
            ("trend_bucket(g, bucket)", "':trend:' .. g .. ':' .. bucket"),
            ("trend_since()", "':trend_since'"),
            ("trend_posts(tag)", "':{t:' .. tag .. '}:trend_posts'"),
        ];
        for (signature, rest) in others {
            lua.push_str(&format!(
                "local function k_{signature} return {open}PREFIX .. {rest}{close} end\n"
            ));
        }
        lua
    }
}

/// The part of `key` Redis Cluster hashes: the text inside the first `{…}` when it is non-empty,
/// otherwise the whole key.
pub fn hash_tag(key: &str) -> &str {
    if let Some(open) = key.find('{')
        && let Some(len) = key[open + 1..].find('}')
        && len > 0
    {
        return &key[open + 1..open + 1 + len];
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_starts_with_the_prefix() {
        let k = Keyspace::new("test-7");
        for key in [
            k.profile(1),
            k.followers(1),
            k.timeline(1),
            k.username("ana"),
            k.post_meta(9),
            k.job_offset("fanout", 3),
        ] {
            assert!(key.starts_with("test-7:"), "{key}");
        }
    }

    #[test]
    fn keys_of_one_user_share_a_hash_tag() {
        let k = Keyspace::new("ap");
        let tags: Vec<_> = [
            k.profile(42),
            k.followers(42),
            k.following(42),
            k.follow_requests(42),
            k.blocks(42),
            k.close_friends(42),
            k.recent_posts(42),
            k.timeline(42),
            k.last_active(42),
        ]
        .iter()
        .map(|key| hash_tag(key).to_owned())
        .collect();
        assert!(tags.iter().all(|t| t == "u:42"), "{tags:?}");
        assert_ne!(hash_tag(&k.timeline(43)), "u:42");
    }

    #[test]
    fn checkpoint_keys_of_a_partition_share_a_hash_tag() {
        let k = Keyspace::new("ap");
        assert_eq!(
            hash_tag(&k.job_offset("fanout", 3)),
            hash_tag(&k.job_epoch("fanout", 3))
        );
        assert_ne!(
            hash_tag(&k.job_offset("fanout", 3)),
            hash_tag(&k.job_offset("fanout", 4))
        );
    }

    #[test]
    fn a_worker_group_s_keys_share_a_hash_tag() {
        let k = Keyspace::new("ap");
        assert_eq!(hash_tag(&k.workers("g")), hash_tag(&k.lease("g", 7)));
    }

    #[test]
    fn post_keys_share_a_hash_tag() {
        let k = Keyspace::new("ap");
        assert_eq!(hash_tag(&k.post_meta(9)), "p:9");
        assert_eq!(hash_tag(&k.post_counts(9)), "p:9");
    }

    #[test]
    fn hash_tag_follows_redis_rules() {
        assert_eq!(hash_tag("a{b}c"), "b");
        assert_eq!(hash_tag("a{}c{d}"), "a{}c{d}");
        assert_eq!(hash_tag("plain"), "plain");
    }

    #[test]
    fn lua_functions_cover_every_key() {
        let lua = Keyspace::new("ap").lua_functions();
        for (name, _) in USER_KEYS.iter().chain(POST_KEYS).chain(STORY_KEYS) {
            assert!(
                lua.contains(&format!("local function k_{name}(id)")),
                "{name}"
            );
        }
        assert!(lua.contains("PREFIX .. ':{u:' .. id .. '}:timeline'"));
    }

    #[test]
    fn lua_and_rust_build_the_same_names() {
        // The hand-written Lua builders above must match their Rust twins.
        let k = Keyspace::new("ap");
        let lua = k.lua_functions();
        for (rust, lua_body) in [
            (
                k.notification_batch(7, "like:9:3"),
                "':{u:' .. id .. '}:notif:' .. batch",
            ),
            (
                k.creator_daily(7, "2026-01-02"),
                "':{u:' .. id .. '}:daily:' .. day",
            ),
            (
                k.creator_reach(7, "2026-01-02"),
                "':{u:' .. id .. '}:reach:' .. day",
            ),
            (
                k.creator_engaged(7, "2026-01-02"),
                "':{u:' .. id .. '}:engaged:' .. day",
            ),
            (
                k.creator_surface_reach(7, "2026-01-02", "feed"),
                "':{u:' .. id .. '}:reach:' .. day .. ':' .. surface",
            ),
            (k.mention_user("ana"), "':{n:' .. name .. '}:user'"),
            (k.pending_mentions("ana"), "':{n:' .. name .. '}:pending'"),
            (
                k.trend_bucket("5m", 300_000),
                "':trend:' .. g .. ':' .. bucket",
            ),
            (k.trend_posts("sunset"), "':{t:' .. tag .. '}:trend_posts'"),
            (k.trend_since(), "':trend_since'"),
        ] {
            assert!(lua.contains(lua_body), "{lua_body}");
            let filled = lua_body
                .replace("' .. id .. '", "7")
                .replace("' .. name .. '", "ana")
                .replace("' .. tag .. '", "sunset")
                .replace("' .. g .. ':' .. bucket", "5m:300000")
                .replace("' .. batch", "like:9:3")
                .replace("' .. day .. ':' .. surface", "2026-01-02:feed")
                .replace("' .. day", "2026-01-02")
                .trim_matches('\'')
                .to_owned();
            assert_eq!(rust, format!("ap{filled}"), "{lua_body}");
        }
    }

    #[test]
    #[should_panic(expected = "must not contain")]
    fn prefix_with_braces_is_refused() {
        let _ = Keyspace::new("a{b}");
    }
}
