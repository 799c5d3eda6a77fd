//! A deterministic, heavy-tailed synthetic workload: the events an Instagram-like app would send
//! for [`Spec::users`] accounts over [`Spec::days`] of activity.
//!
//! [`generate`] turns a [`Spec`] into a [`Workload`]: events of every type of `EVENTS.md`, sorted
//! by event time, each one valid ([`aperture_schema::validate::check`]) and causal — a like comes
//! after its post and names the post's real author, an approval comes after its request, a story
//! view after its story. The same spec gives the same events, byte for byte: every random choice
//! comes from a [`ChaCha8Rng`] seeded from [`Spec::seed`] (one stream per phase), and nothing that
//! shapes the output iterates a hash map.
//!
//! # Model
//!
//! 1. **Accounts.** Every account is created in the first minutes of the span. Each gets a
//!    popularity weight from a Pareto distribution (shape [`POPULARITY_SHAPE`]); the heaviest
//!    [`Spec::celebrities`] accounts are the celebrities, always public and usually verified.
//!    About [`Spec::private_fraction`] of the others are private.
//! 2. **Graph.** Each account follows a log-normal number of others (mean
//!    [`Spec::follows_per_user`]) drawn by popularity weight, so follower counts are heavy
//!    tailed. Celebrities are additionally followed by a fixed set of accounts large enough to
//!    pass [`Spec::celebrity_threshold`] when the population allows it. Most follows happen in
//!    the first quarter of the span, the rest trickle in. A follow of a private account is a
//!    request that the target usually approves hours later; a few follows are undone, a few
//!    accounts block someone, story posters keep a close-friends list.
//! 3. **Posts.** Posting rates are log-normal around [`Spec::posts_per_user_per_day`]. Captions
//!    carry Zipf-distributed hashtags and mentions of real usernames. [`Spec::bursts`] burst tags
//!    are each used by many distinct accounts inside one hour and never outside it; the steady
//!    tag (`love`, the head of the Zipf vocabulary) is used all day.
//! 4. **Engagement.** A post's expected likes grow with its author's follower count, scaled so
//!    that the mean is [`Spec::likes_per_post`]; it is shown to `views_per_like` times as many
//!    accounts, each once: mostly the author's followers (only followers for private authors),
//!    else the most interested of three random accounts. Every impression is a `view` whose
//!    outcomes — like, comment, share, save, hide or report, watch time — are drawn from the
//!    true probabilities of [`super::truth`] (the viewer's latent interest in the post's topic,
//!    the post's quality, the relationship, the viewer's media-type bias, the post's age, the
//!    surface), and sent within a few minutes of the view; [`Workload::impressions`] keeps
//!    those probabilities. Unlikes, unsaves, profile views and the author's replies follow in
//!    fixed proportions, and engagement decays exponentially after the post. A post's topical
//!    hashtags name its topic. About 1% of posts are deleted; a few engagement events still
//!    land after the delete, as real clients send them.
//! 5. **Stories.** A share of accounts post 3–5 stories a day; followers (or close friends)
//!    view them within the following hours.

use std::collections::HashSet;

use aperture_schema::event::{
    Audience, CommentCreated, CommentDeleted, FollowRequestApproved, Hide, Location, MediaType,
    PostCreated, PostDeleted, PostRef, Report, ReportReason, Share, StoryCreated, StoryMediaType,
    StoryViewed, Surface, Target, UserCreated, UserUpdated, View,
};
use aperture_schema::extract::{MAX_HASHTAGS, extract};
use aperture_schema::truth::{ImpressionTruth, Probabilities};
use aperture_schema::{Envelope, Event, WIRE_VERSION};
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::weighted::WeightedAliasIndex;
use rand_distr::{Distribution, LogNormal, Normal, Pareto, Poisson, Zipf};

use super::truth::{
    self, Context, GENERIC_TAGS, Intercepts, MAX_WATCH_MS, TOPICS, Taste, media_index,
};

const SECOND: i64 = 1_000;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// Shape of the Pareto distribution of popularity weights: smaller is more unequal. At 1.3 the
/// top 1% of weights hold about a third of the total.
pub const POPULARITY_SHAPE: f64 = 1.3;

/// The steady high-volume hashtag: the head of the Zipf vocabulary, used throughout the span.
pub const STEADY_TAG: &str = "love";

/// Names of the burst tags, in order; more bursts than names get `breaking<i>`.
const BURST_TAG_NAMES: [&str; 6] = [
    "eclipse2025",
    "finalsnight",
    "auroraalert",
    "meteorshower",
    "heatwave2025",
    "blackout2025",
];

/// Ids live in separate ranges so that a post, a story and a comment id are never confused in a
/// debugging session (the contract does not require it).
const POST_ID_BASE: u64 = 1_000_000_000;
const STORY_ID_BASE: u64 = 2_000_000_000;
const COMMENT_ID_BASE: u64 = 3_000_000_000;

/// What to generate. Every knob has a documented unit and default; build one with struct update
/// syntax: `Spec { users: 2_000, ..Spec::default() }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// Seed of every random choice; the same spec always gives the same events. Default 1.
    pub seed: u64,
    /// Number of accounts, all created at the start of the span. Default 10,000.
    pub users: u32,
    /// Simulated span of activity, in days; fractions allowed, at least one minute is
    /// simulated. Default 1.0.
    pub days: f64,
    /// Start of the span, ms since the Unix epoch. Fixed rather than "now" so that output is
    /// reproducible. Default 1,763,856,000,000 (2025-11-23T00:00:00Z).
    pub start_ms: i64,
    /// Followers at which an author counts as a celebrity. Default 10,000.
    pub celebrity_threshold: u64,
    /// Accounts planted with at least `celebrity_threshold` followers when `users` allows it,
    /// and otherwise followed by most accounts; at most a tenth of `users`. Default 3.
    pub celebrities: u32,
    /// Share of accounts that are private when created (celebrities never are), 0–1.
    /// Default 0.10.
    pub private_fraction: f64,
    /// Mean number of accounts each account follows, celebrity follows included; individual
    /// counts are log-normal. Default 30.
    pub follows_per_user: f64,
    /// Mean posts per account per day; individual rates are log-normal around it, so a minority
    /// of creators posts most. Burst posts come on top. Default 0.25.
    pub posts_per_user_per_day: f64,
    /// Mean likes per post; popular authors get far more, most posts fewer. Default 45.
    pub likes_per_post: f64,
    /// Mean comments per post (proportional to the post's likes). Default 1.0.
    pub comments_per_post: f64,
    /// Views per like: every liker views first, and `views_per_like - 1` views per like come
    /// from people who do not like the post. Default 2.5.
    pub views_per_like: f64,
    /// Share of accounts that post stories (3–5 a day), 0–1; celebrities always do.
    /// Default 0.25.
    pub story_poster_fraction: f64,
    /// Number of burst hashtags, each used in a one-hour window only. Default 2.
    pub bursts: u32,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            seed: 1,
            users: 10_000,
            days: 1.0,
            start_ms: 1_763_856_000_000,
            celebrity_threshold: 10_000,
            celebrities: 3,
            private_fraction: 0.10,
            follows_per_user: 30.0,
            posts_per_user_per_day: 0.25,
            likes_per_post: 45.0,
            comments_per_post: 1.0,
            views_per_like: 2.5,
            story_poster_fraction: 0.25,
            bursts: 2,
        }
    }
}

impl Spec {
    /// Length of the simulated span in ms: `days` in ms, at least one minute.
    pub fn span_ms(&self) -> i64 {
        let ms = self.days * DAY as f64;
        // `as` saturates, and NaN becomes 0, which the floor below turns into one minute.
        (ms as i64).max(MINUTE)
    }

    /// End of the simulated span, ms since the Unix epoch. Events that follow another by a few
    /// seconds (a like after its view) may land up to a few minutes past it.
    pub fn end_ms(&self) -> i64 {
        self.start_ms.saturating_add(self.span_ms())
    }
}

/// One burst: a tag used by many accounts inside `[start_ms, end_ms]` and never outside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Burst {
    pub tag: String,
    pub start_ms: i64,
    pub end_ms: i64,
}

/// A generated workload: the events and what a test or a demo needs to know about them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Workload {
    /// Every event, sorted by `ts` (ties in generation order). `event_id`s are
    /// `g<seed>-<position>` with the position zero-padded to nine digits, so ties broken by
    /// `event_id` keep this order too.
    pub events: Vec<Envelope>,
    /// The steady high-volume tag, [`STEADY_TAG`].
    pub steady_tag: String,
    /// The burst tags, as [`burst_tags`] names them.
    pub burst_tags: Vec<String>,
    /// Each burst tag with its window.
    pub bursts: Vec<Burst>,
    /// User ids of the planted celebrities.
    pub celebrities: Vec<u64>,
    /// One line per `view` event, in event order: the true engagement probabilities the
    /// generator drew that impression's outcomes from (see [`super::truth`]).
    pub impressions: Vec<ImpressionTruth>,
}

/// The burst tags a spec produces (they depend only on [`Spec::bursts`]).
pub fn burst_tags(spec: &Spec) -> Vec<String> {
    (0..spec.bursts as usize)
        .map(|i| match BURST_TAG_NAMES.get(i) {
            Some(name) => (*name).to_string(),
            None => format!("breaking{i}"),
        })
        .collect()
}

/// Generates the workload `spec` describes. Deterministic: the same spec gives the same events.
pub fn generate(spec: &Spec) -> Workload {
    let clock = Clock::new(spec);
    let mut out = Out::with_capacity_for(spec);
    let mut world = World::new(spec, clock, &mut phase_rng(spec.seed, Phase::Accounts));
    world.create_accounts(&mut out);
    world.build_graph(&mut out, &mut phase_rng(spec.seed, Phase::Graph));
    world.draw_tastes(&mut phase_rng(spec.seed, Phase::Latent));
    world.social(&mut out, &mut phase_rng(spec.seed, Phase::Social));
    let bursts = world.posts(&mut out, &mut phase_rng(spec.seed, Phase::Posts));
    world.stories(&mut out, &mut phase_rng(spec.seed, Phase::Stories));
    let celebrities = (0..world.users.len())
        .filter(|&u| world.users[u].celebrity)
        .map(|u| user_id(u as u32))
        .collect();
    let (events, impressions) = out.into_sorted(spec.seed);
    Workload {
        events,
        impressions,
        steady_tag: STEADY_TAG.to_string(),
        burst_tags: bursts.iter().map(|b| b.tag.clone()).collect(),
        bursts,
        celebrities,
    }
}

/// One random stream per phase, so that tuning one phase does not reshuffle the others.
#[derive(Clone, Copy)]
enum Phase {
    Accounts = 1,
    Graph = 2,
    Social = 3,
    Posts = 4,
    Stories = 5,
    /// Interests, media biases and close authors.
    Latent = 6,
    /// The sample the truth's intercepts are calibrated on.
    Calibrate = 7,
}

fn phase_rng(seed: u64, phase: Phase) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(phase as u64);
    rng
}

/// Account index (0-based, dense) to user id (1-based, as ids must be ≥ 1).
fn user_id(index: u32) -> u64 {
    u64::from(index) + 1
}

/// The time landmarks of the span.
#[derive(Clone, Copy)]
struct Clock {
    start: i64,
    end: i64,
    /// Accounts are created in `[start, created_end)`; everything else happens after.
    created_end: i64,
    /// Most follows happen in `[created_end, graph_end]`.
    graph_end: i64,
}

impl Clock {
    fn new(spec: &Spec) -> Clock {
        let span = spec.span_ms();
        let start = spec.start_ms;
        let created_end = start + (10 * MINUTE).min(span / 20).max(1);
        let end = spec.end_ms();
        Clock {
            start,
            end,
            created_end,
            graph_end: created_end + (end - created_end) / 4,
        }
    }

    /// The latest time an engagement chain may start so that it (view, dwell, like, save) still
    /// ends before `end` in the usual case.
    fn engage_end(&self, from: i64) -> i64 {
        (self.end - 10 * MINUTE).max(from + 1)
    }
}

/// The events in generation order, before sorting and numbering.
///
/// Envelopes are large (about 200 bytes, most of it the inline `post_created` variant) and this
/// crate is built without optimisation in tests, where sorting a million of them dominates the
/// run. So the frequent small events are kept as compact [`Raw`] records (about 40 bytes, the
/// rest boxed), ordered with a radix sort on `ts` ([`order_by_ts`]), and turned into envelopes
/// in their final order.
struct Out {
    records: Vec<Record>,
    /// The truth of each view, by the index of its record.
    truth: Vec<Pending>,
}

/// An impression's truth before its view has an event id.
struct Pending {
    record: usize,
    viewer: u32,
    post: u64,
    ts: i64,
    p: Probabilities,
}

struct Record {
    ts: i64,
    actor: u32,
    raw: Raw,
}

/// An event in the compact form [`Out`] keeps until the events are sorted.
enum Raw {
    /// An event about another account.
    User(UserVerb, u32),
    /// `follow_request_approved` of the requester.
    Approve(u32),
    /// An event about a post: post id and author.
    Post(PostVerb, u64, u32),
    View {
        post: u64,
        author: u32,
        surface: Surface,
        dwell_ms: u32,
        watch_ms: Option<u32>,
    },
    /// `story_viewed`: story id and author.
    StoryViewed(u64, u32),
    /// Anything else, as it will be sent.
    Boxed(Box<Event>),
}

#[derive(Clone, Copy)]
enum UserVerb {
    Follow,
    Unfollow,
    Block,
    Unblock,
    CloseFriendAdded,
    CloseFriendRemoved,
    ProfileView,
}

#[derive(Clone, Copy)]
enum PostVerb {
    Like,
    Unlike,
    Save,
    Unsave,
}

impl Raw {
    fn into_event(self) -> Event {
        match self {
            Raw::User(verb, to) => {
                let t = target(to);
                match verb {
                    UserVerb::Follow => Event::Follow(t),
                    UserVerb::Unfollow => Event::Unfollow(t),
                    UserVerb::Block => Event::Block(t),
                    UserVerb::Unblock => Event::Unblock(t),
                    UserVerb::CloseFriendAdded => Event::CloseFriendAdded(t),
                    UserVerb::CloseFriendRemoved => Event::CloseFriendRemoved(t),
                    UserVerb::ProfileView => Event::ProfileView(t),
                }
            }
            Raw::Approve(requester) => Event::FollowRequestApproved(FollowRequestApproved {
                requester_id: user_id(requester),
            }),
            Raw::Post(verb, post_id, author) => {
                let r = PostRef {
                    post_id,
                    author_id: user_id(author),
                };
                match verb {
                    PostVerb::Like => Event::Like(r),
                    PostVerb::Unlike => Event::Unlike(r),
                    PostVerb::Save => Event::Save(r),
                    PostVerb::Unsave => Event::Unsave(r),
                }
            }
            Raw::View {
                post,
                author,
                surface,
                dwell_ms,
                watch_ms,
            } => Event::View(View {
                post_id: post,
                author_id: user_id(author),
                surface,
                dwell_ms: u64::from(dwell_ms),
                watch_ms: watch_ms.map(u64::from),
            }),
            Raw::StoryViewed(story_id, author) => Event::StoryViewed(StoryViewed {
                story_id,
                author_id: user_id(author),
            }),
            Raw::Boxed(event) => *event,
        }
    }
}

impl Out {
    /// Reserves room for the records `spec` is expected to produce, so that the vector is not
    /// copied as it grows: about 100 per account-day at default settings. Capped, so that a huge
    /// spec grows the vector instead of reserving gigabytes up front.
    fn with_capacity_for(spec: &Spec) -> Out {
        let per_user = 1.0 + spec.follows_per_user.max(0.0) * 1.2 + 70.0 * spec.days.max(0.0);
        let estimate = (f64::from(spec.users) * per_user).min(10_000_000.0) as usize;
        Out {
            records: Vec::with_capacity(estimate),
            truth: Vec::new(),
        }
    }

    fn push(&mut self, actor: u32, ts: i64, raw: Raw) {
        self.records.push(Record { ts, actor, raw });
    }

    fn emit(&mut self, actor: u32, ts: i64, event: Event) {
        self.push(actor, ts, Raw::Boxed(Box::new(event)));
    }

    fn user(&mut self, actor: u32, ts: i64, verb: UserVerb, to: u32) {
        self.push(actor, ts, Raw::User(verb, to));
    }

    fn post(&mut self, actor: u32, ts: i64, verb: PostVerb, post: &Posted) {
        self.push(actor, ts, Raw::Post(verb, post.id, post.author));
    }

    /// A view, with the probabilities its outcomes are drawn from.
    fn view(&mut self, viewer: u32, ts: i64, view: Raw, p: Probabilities) {
        let post = match &view {
            Raw::View { post, .. } => *post,
            _ => unreachable!("only views carry a truth"),
        };
        self.truth.push(Pending {
            record: self.records.len(),
            viewer,
            post,
            ts,
            p,
        });
        self.push(viewer, ts, view);
    }

    /// Sorts by `ts` (ties in generation order), builds the envelopes and numbers them in that
    /// order; the views' truths come back in the same order, with their views' event ids.
    fn into_sorted(self, seed: u64) -> (Vec<Envelope>, Vec<ImpressionTruth>) {
        let ts: Vec<i64> = self.records.iter().map(|r| r.ts).collect();
        let order = order_by_ts(&ts);
        let mut position = vec![0usize; order.len()];
        for (k, &i) in order.iter().enumerate() {
            position[i] = k;
        }
        let mut slots: Vec<Option<Record>> = self.records.into_iter().map(Some).collect();
        let mut ids = EventIds::new(seed);
        let events: Vec<Envelope> = order
            .iter()
            .map(|&i| {
                // `order` is a permutation: each slot is taken exactly once.
                let r = slots[i]
                    .take()
                    .expect("every record is placed exactly once");
                Envelope {
                    v: WIRE_VERSION,
                    event_id: ids.next_id(),
                    actor_id: user_id(r.actor),
                    ts: r.ts,
                    event: r.raw.into_event(),
                }
            })
            .collect();
        let mut truth = self.truth;
        truth.sort_by_key(|t| position[t.record]);
        let impressions = truth
            .into_iter()
            .map(|t| ImpressionTruth {
                event_id: events[position[t.record]].event_id.clone(),
                viewer_id: user_id(t.viewer),
                post_id: t.post,
                ts: t.ts,
                p: t.p,
            })
            .collect();
        (events, impressions)
    }
}

/// Event ids `g<seed>-<position>`, the position zero-padded to nine digits (`g1-000000042`),
/// for positions 0, 1, 2, …: counted up in place rather than formatted, several times cheaper in
/// an unoptimised build.
struct EventIds {
    prefix_len: usize,
    current: Vec<u8>,
}

impl EventIds {
    fn new(seed: u64) -> EventIds {
        let prefix = format!("g{seed}-");
        EventIds {
            prefix_len: prefix.len(),
            current: format!("{prefix}{:09}", 0).into_bytes(),
        }
    }

    fn next_id(&mut self) -> String {
        // Only ASCII letters, digits and '-' are ever written.
        let id = String::from_utf8(self.current.clone()).expect("event ids are ASCII");
        let mut k = self.current.len();
        loop {
            if k == self.prefix_len {
                // All nines: one more digit, as `{:09}` would print it.
                self.current.insert(k, b'1');
                break;
            }
            k -= 1;
            if self.current[k] == b'9' {
                self.current[k] = b'0';
            } else {
                self.current[k] += 1;
                break;
            }
        }
        id
    }
}

/// The indices of `ts` in ascending order, ties by index: a least-significant-digit radix sort
/// on `ts - min`, 11 bits a pass (three passes for a day of milliseconds). Linear and stable,
/// where a comparison sort of a million keys is slow in an unoptimised build; each pass reads
/// sequentially and writes to 2,048 streams, which the cache handles well.
fn order_by_ts(ts: &[i64]) -> Vec<usize> {
    const DIGIT_BITS: u32 = 11;
    const RADIX: usize = 1 << DIGIT_BITS;
    let (Some(&min), Some(&max)) = (ts.iter().min(), ts.iter().max()) else {
        return Vec::new();
    };
    let key_bits = u64::BITS - max.abs_diff(min).leading_zeros();
    let mut current: Vec<(u64, usize)> = ts
        .iter()
        .enumerate()
        .map(|(i, &t)| (t.abs_diff(min), i))
        .collect();
    let mut spare = vec![(0u64, 0usize); ts.len()];
    let mut shift = 0;
    while shift < key_bits {
        let digit = |key: u64| (key >> shift) as usize & (RADIX - 1);
        let mut next = vec![0usize; RADIX];
        for &(key, _) in &current {
            next[digit(key)] += 1;
        }
        let mut sum = 0;
        for slot in next.iter_mut() {
            let count = *slot;
            *slot = sum;
            sum += count;
        }
        for &(key, i) in &current {
            let d = digit(key);
            spare[next[d]] = (key, i);
            next[d] += 1;
        }
        std::mem::swap(&mut current, &mut spare);
        shift += DIGIT_BITS;
    }
    current.into_iter().map(|(_, i)| i).collect()
}

fn target(index: u32) -> Target {
    Target {
        target_id: user_id(index),
    }
}

/// A uniform time in `[lo, hi]` (just `lo` when the range is empty).
fn uniform(rng: &mut ChaCha8Rng, lo: i64, hi: i64) -> i64 {
    if hi <= lo {
        lo
    } else {
        rng.random_range(lo..=hi)
    }
}

/// A time after `from` (by at least 1 ms): exponential with mean `mean`, truncated so that it
/// does not pass `limit` (unless `from` already has).
fn after_within(rng: &mut ChaCha8Rng, from: i64, mean: i64, limit: i64) -> i64 {
    let room = limit - from;
    if room <= 1 {
        return from + 1;
    }
    let mean = mean as f64;
    let p = 1.0 - (-(room as f64) / mean).exp();
    let u: f64 = rng.random();
    let delay = -mean * (1.0 - u * p).ln();
    from + 1 + (delay as i64).min(room - 1)
}

/// A time after `from` (by at least 1 ms): exponential with mean `mean`; `None` when it falls
/// after `limit`, i.e. the thing never happens within the span.
fn after_or_never(rng: &mut ChaCha8Rng, from: i64, mean: i64, limit: i64) -> Option<i64> {
    let u: f64 = rng.random();
    let delay = -(mean as f64) * (1.0 - u).ln();
    let at = from.saturating_add(1 + delay as i64);
    (at <= limit).then_some(at)
}

/// A Poisson count with mean `lambda` (0 for a mean that is not positive and finite).
fn poisson(rng: &mut ChaCha8Rng, lambda: f64) -> u64 {
    match Poisson::new(lambda) {
        Ok(d) => d.sample(rng) as u64,
        Err(_) => 0,
    }
}

/// A uniformly chosen account other than `not`; needs at least two accounts.
fn other_user(rng: &mut ChaCha8Rng, n: usize, not: u32) -> u32 {
    let v = rng.random_range(0..n as u32 - 1);
    if v >= not { v + 1 } else { v }
}

struct User {
    username: String,
    /// Whether `@username` extracts back to the username (a `.` ends a mention).
    mentionable: bool,
    display_name: Option<String>,
    created: i64,
    weight: f64,
    celebrity: bool,
    private_at_creation: bool,
    /// From when the account is private: its creation, or the `user_updated` that made it so.
    private_since: Option<i64>,
    verified: bool,
    posts_per_day: f64,
    story_poster: bool,
}

impl User {
    fn private_at(&self, ts: i64) -> bool {
        self.private_since.is_some_and(|since| ts >= since)
    }
}

struct CloseFriend {
    user: u32,
    added: i64,
    removed: Option<i64>,
}

struct World<'a> {
    spec: &'a Spec,
    clock: Clock,
    users: Vec<User>,
    /// `followers[u]`: every account whose follow of `u` became active, with the time it did.
    followers: Vec<Vec<(u32, i64)>>,
    /// `followees[u]`: every account `u` follows (actively, at some point).
    followees: Vec<Vec<u32>>,
    close_friends: Vec<Vec<CloseFriend>>,
    /// Each account's latent tastes ([`World::draw_tastes`]).
    tastes: Vec<Taste>,
}

const FIRST_NAMES: [&str; 48] = [
    "ana", "ben", "carla", "dan", "elena", "felix", "gina", "hugo", "ines", "jon", "kai", "lena",
    "marco", "nina", "omar", "paula", "quinn", "rosa", "sam", "tara", "uma", "vic", "wen", "xavi",
    "yara", "zoe", "leo", "mia", "noah", "luca", "emma", "ivan", "sofia", "diego", "maya", "arjun",
    "priya", "kenji", "yuki", "amara", "tomas", "lucia", "mateo", "olga", "pedro", "sara", "theo",
    "jade",
];
const LAST_NAMES: [&str; 32] = [
    "silva", "smith", "kim", "garcia", "rossi", "muller", "novak", "sato", "khan", "costa",
    "lopez", "brown", "nguyen", "cohen", "dubois", "jensen", "ali", "ivanova", "moreau", "santos",
    "okafor", "berg", "tanaka", "patel", "reyes", "walsh", "fischer", "romano", "haddad", "lind",
    "mensah", "chen",
];
const HANDLE_WORDS: [&str; 16] = [
    "travels", "eats", "photos", "art", "fit", "studio", "daily", "official", "life", "films",
    "designs", "cooks", "runs", "music", "shots", "world",
];

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A unique, valid username (3–30 of `[a-z0-9._]`) and a display name for account `index`.
fn make_name(
    rng: &mut ChaCha8Rng,
    index: usize,
    taken: &mut HashSet<String>,
) -> (String, Option<String>) {
    let first = *FIRST_NAMES.choose(rng).expect("the list is not empty");
    let last = *LAST_NAMES.choose(rng).expect("the list is not empty");
    let word = *HANDLE_WORDS.choose(rng).expect("the list is not empty");
    let mut name = match rng.random_range(0..7) {
        0 => format!("{first}{last}"),
        1 => format!("{first}_{last}"),
        2 => format!("{first}.{last}"),
        3 => format!("{first}{}", rng.random_range(1..10_000)),
        4 => format!("{first}_{word}"),
        5 => format!("the{first}{last}"),
        _ => format!("{first}.{word}"),
    };
    let mut attempts = 0;
    while taken.contains(&name) {
        attempts += 1;
        name = if attempts <= 5 {
            format!("{name}{}", rng.random_range(0..10))
        } else {
            // No first name is "user", so this form is never produced above and is unique.
            format!("user_{index}")
        };
    }
    taken.insert(name.clone());
    let display = match rng.random_range(0..10) {
        0 => None,
        1 => Some(format!("{} ✨", capitalised(first))),
        2 => Some(capitalised(first)),
        _ => Some(format!("{} {}", capitalised(first), capitalised(last))),
    };
    (name, display)
}

impl<'a> World<'a> {
    /// Draws the accounts (no events yet: those come in [`World::create_accounts`]).
    fn new(spec: &'a Spec, clock: Clock, rng: &mut ChaCha8Rng) -> World<'a> {
        let n = spec.users as usize;
        let pareto = Pareto::new(1.0, POPULARITY_SHAPE).expect("constant parameters are valid");
        // Mean 1: exp(mu + sigma^2 / 2) = 1.
        let creator = LogNormal::new(-0.5, 1.0).expect("constant parameters are valid");
        let mut taken = HashSet::with_capacity(n);
        let mut users = Vec::with_capacity(n);
        for i in 0..n {
            let (username, display_name) = make_name(rng, i, &mut taken);
            users.push(User {
                mentionable: !username.contains('.'),
                username,
                display_name,
                created: uniform(rng, clock.start, clock.created_end - 1),
                weight: pareto.sample(rng),
                celebrity: false,
                private_at_creation: false,
                private_since: None,
                verified: false,
                posts_per_day: spec.posts_per_user_per_day.max(0.0) * creator.sample(rng),
                story_poster: false,
            });
        }

        // The heaviest accounts become the celebrities; ties broken by index for determinism.
        let mut by_weight: Vec<usize> = (0..n).collect();
        by_weight.sort_by(|&a, &b| users[b].weight.total_cmp(&users[a].weight).then(a.cmp(&b)));
        let celebrities = (spec.celebrities as usize).min(n / 10);
        let heaviest = by_weight.first().map_or(1.0, |&i| users[i].weight);
        for &i in &by_weight[..celebrities] {
            users[i].celebrity = true;
            users[i].weight = users[i].weight.max(heaviest * 1.5);
        }
        let top_percent = (n / 100).max(1).min(n);
        let private_p = spec.private_fraction.clamp(0.0, 1.0);
        let story_p = spec.story_poster_fraction.clamp(0.0, 1.0);
        for (rank, &i) in by_weight.iter().enumerate() {
            let u = &mut users[i];
            let verified_p = if u.celebrity {
                0.9
            } else if rank < top_percent {
                0.15
            } else {
                0.003
            };
            u.verified = rng.random_bool(verified_p);
            u.story_poster = u.celebrity || rng.random_bool(story_p);
            if u.celebrity {
                continue;
            }
            if rng.random_bool(private_p) {
                u.private_at_creation = true;
                u.private_since = Some(u.created);
            } else if rng.random_bool(0.005) {
                // Goes private later; `social` sends the `user_updated`.
                u.private_since = Some(uniform(rng, clock.created_end, clock.end));
            }
        }

        World {
            spec,
            clock,
            users,
            followers: vec![Vec::new(); n],
            followees: vec![Vec::new(); n],
            close_friends: (0..n).map(|_| Vec::new()).collect(),
            tastes: Vec::new(),
        }
    }

    /// Interests, media biases and close authors (see [`super::truth`]); after the graph,
    /// since close authors are chosen among the accounts one follows.
    fn draw_tastes(&mut self, rng: &mut ChaCha8Rng) {
        let bias = Normal::new(0.0, 0.5).expect("constant parameters are valid");
        self.tastes = (0..self.n())
            .map(|u| {
                let first = rng.random_range(0..TOPICS as u8);
                let second = (first + rng.random_range(1..TOPICS as u8)) % TOPICS as u8;
                let media_bias = [(); 4].map(|_| bias.sample(rng) as f32);
                let followees = &self.followees[u];
                let k = rng.random_range(0..=3usize).min(followees.len());
                let mut close: Vec<u32> = rand::seq::index::sample(rng, followees.len(), k)
                    .into_iter()
                    .map(|j| followees[j])
                    .collect();
                close.sort_unstable();
                close.dedup();
                Taste {
                    topics: [first, second],
                    media_bias,
                    close,
                }
            })
            .collect();
    }

    fn n(&self) -> usize {
        self.users.len()
    }

    fn create_accounts(&self, out: &mut Out) {
        for (i, u) in self.users.iter().enumerate() {
            out.emit(
                i as u32,
                u.created,
                Event::UserCreated(UserCreated {
                    username: u.username.clone(),
                    display_name: u.display_name.clone(),
                    private: u.private_at_creation,
                    verified: u.verified,
                }),
            );
        }
    }

    /// Follows, requests, approvals and unfollows.
    fn build_graph(&mut self, out: &mut Out, rng: &mut ChaCha8Rng) {
        let n = self.n();
        if n < 2 {
            return;
        }
        // Celebrity follows: a fixed set of followers per celebrity, so that the threshold is
        // passed whenever the population allows it, whatever the dice say.
        let mut planted: Vec<Vec<u32>> = vec![Vec::new(); n];
        let threshold = self.spec.celebrity_threshold;
        for c in 0..n {
            if !self.users[c].celebrity {
                continue;
            }
            let others = n - 1;
            let wanted = if (others as u64) >= threshold {
                let share = rng.random_range(0.3..0.6);
                let floor = (threshold as f64 * 1.05).ceil() as usize + 1;
                ((others as f64 * share) as usize).max(floor)
            } else {
                // The threshold is out of reach: make the account as big as is plausible.
                (others as f64 * rng.random_range(0.8..0.95)) as usize
            };
            let wanted = wanted.min(others);
            for j in rand::seq::index::sample(rng, others, wanted) {
                let follower = if j >= c { j + 1 } else { j };
                planted[follower].push(c as u32);
            }
        }

        let weights: Vec<f64> = self.users.iter().map(|u| u.weight).collect();
        // Pareto weights are finite and ≥ 1 and there are at least two of them.
        let popularity = WeightedAliasIndex::new(weights).expect("weights are positive");
        // The celebrity follows count towards the mean out-degree.
        let planted_total: usize = planted.iter().map(Vec::len).sum();
        let mean = self.spec.follows_per_user - planted_total as f64 / n as f64;
        let degree = (mean > 0.0)
            .then(|| LogNormal::new(mean.ln() - 0.5, 1.0).ok())
            .flatten();
        let max_degree = (n - 1).min(7_500);
        // `mark[t] == stamp` means the current account already follows `t`: O(1) duplicate
        // checks without clearing a set per account.
        let mut mark = vec![0u32; n];
        let mut targets = Vec::new();
        for u in 0..n {
            let stamp = u as u32 + 1;
            mark[u] = stamp;
            targets.clear();
            for &c in &planted[u] {
                mark[c as usize] = stamp;
                targets.push(c);
            }
            let planted_count = targets.len();
            let d = degree.map_or(0, |d| (d.sample(rng) as usize).min(max_degree));
            let mut tries = 0;
            let mut added = 0;
            while added < d && tries < d * 4 + 20 {
                tries += 1;
                let t = popularity.sample(rng);
                if mark[t] == stamp {
                    continue;
                }
                mark[t] = stamp;
                targets.push(t as u32);
                added += 1;
            }
            for (k, &t) in targets.iter().enumerate() {
                self.follow(out, rng, u as u32, t, k < planted_count);
            }
        }
    }

    /// One follow from `from` to `to`, with its request, approval, profile view and unfollow.
    fn follow(&mut self, out: &mut Out, rng: &mut ChaCha8Rng, from: u32, to: u32, planted: bool) {
        let clock = self.clock;
        let ts = if rng.random_bool(0.85) {
            uniform(rng, clock.created_end, clock.graph_end)
        } else {
            uniform(rng, clock.created_end, clock.end)
        };
        if rng.random_bool(0.05) {
            // Looked at the profile first. Every account exists by `created_end`.
            let at = (ts - rng.random_range(SECOND..=2 * MINUTE)).max(clock.created_end);
            out.user(from, at, UserVerb::ProfileView, to);
        }
        out.user(from, ts, UserVerb::Follow, to);
        let active = if self.users[to as usize].private_at(ts) {
            match after_or_never(rng, ts, 4 * HOUR, clock.end) {
                Some(at) if rng.random_bool(0.85) => {
                    out.push(to, at, Raw::Approve(from));
                    Some(at)
                }
                _ => {
                    if rng.random_bool(0.1) {
                        // Withdraws the request that nobody answered.
                        let at = uniform(rng, ts + 1, clock.end);
                        out.user(from, at, UserVerb::Unfollow, to);
                    }
                    None
                }
            }
        } else {
            Some(ts)
        };
        if let Some(at) = active {
            self.followers[to as usize].push((from, at));
            self.followees[from as usize].push(to);
            // Planted celebrity follows stay, so that the celebrities stay above the threshold.
            if !planted && rng.random_bool(0.03) {
                let when = uniform(rng, at + 1, clock.end);
                out.user(from, when, UserVerb::Unfollow, to);
            }
        }
    }

    /// Profile updates, blocks and close-friends lists.
    fn social(&mut self, out: &mut Out, rng: &mut ChaCha8Rng) {
        let n = self.n();
        let clock = self.clock;
        for (i, u) in self.users.iter().enumerate() {
            if let Some(since) = u.private_since
                && !u.private_at_creation
            {
                out.emit(
                    i as u32,
                    since,
                    Event::UserUpdated(UserUpdated {
                        display_name: None,
                        private: Some(true),
                        verified: None,
                    }),
                );
            }
            if rng.random_bool(0.02) {
                let name = format!(
                    "{} {}",
                    capitalised(FIRST_NAMES.choose(rng).expect("the list is not empty")),
                    capitalised(LAST_NAMES.choose(rng).expect("the list is not empty")),
                );
                let at = uniform(rng, clock.created_end, clock.end);
                out.emit(
                    i as u32,
                    at,
                    Event::UserUpdated(UserUpdated {
                        display_name: Some(name),
                        private: None,
                        verified: None,
                    }),
                );
            }
            // Accounts that grew popular get verified during the span.
            if !u.verified && self.followers[i].len() >= 200 && rng.random_bool(0.2) {
                let at = uniform(rng, clock.graph_end, clock.end);
                out.emit(
                    i as u32,
                    at,
                    Event::UserUpdated(UserUpdated {
                        display_name: None,
                        private: None,
                        verified: Some(true),
                    }),
                );
            }
        }

        // Blocks: about 0.5% of accounts block someone, often one of their followers.
        // Celebrities are left out so that their planted follows survive.
        if n >= 2 {
            let blockers = ((n as f64) * 0.005).round() as usize;
            for _ in 0..blockers {
                let b = rng.random_range(0..n as u32);
                if self.users[b as usize].celebrity {
                    continue;
                }
                let victim = match self.followers[b as usize].choose(rng) {
                    Some(&(f, _)) if rng.random_bool(0.6) => f,
                    _ => other_user(rng, n, b),
                };
                if self.users[victim as usize].celebrity {
                    continue;
                }
                let at = uniform(rng, clock.created_end, clock.end);
                out.user(b, at, UserVerb::Block, victim);
                if rng.random_bool(0.3) {
                    let later = uniform(rng, at + 1, clock.end);
                    out.user(b, later, UserVerb::Unblock, victim);
                }
            }
        }

        // Close friends: a handful of each story poster's followers; some removed later.
        for u in 0..n {
            if !self.users[u].story_poster || self.followers[u].is_empty() {
                continue;
            }
            let fl = &self.followers[u];
            let k = rng.random_range(0..=8usize).min(fl.len());
            let mut picks: Vec<usize> = rand::seq::index::sample(rng, fl.len(), k).into_vec();
            picks.sort_unstable();
            for j in picks {
                let (friend, since) = fl[j];
                if since >= clock.end - MINUTE {
                    continue;
                }
                let added = uniform(rng, since + MINUTE, (since + 12 * HOUR).min(clock.end));
                out.user(u as u32, added, UserVerb::CloseFriendAdded, friend);
                let removed = if rng.random_bool(0.15) {
                    let at = uniform(rng, added + 1, clock.end);
                    out.user(u as u32, at, UserVerb::CloseFriendRemoved, friend);
                    Some(at)
                } else {
                    None
                };
                self.close_friends[u].push(CloseFriend {
                    user: friend,
                    added,
                    removed,
                });
            }
        }
    }

    /// Posts with their engagement; returns the bursts.
    fn posts(&self, out: &mut Out, rng: &mut ChaCha8Rng) -> Vec<Burst> {
        let n = self.n();
        let clock = self.clock;
        let vocab = Vocabulary::new(rng);
        let mentionable: Vec<u32> = (0..n as u32)
            .filter(|&u| self.users[u as usize].mentionable)
            .collect();

        let mut plans = Vec::new();
        for u in 0..n {
            let count = poisson(rng, self.users[u].posts_per_day * self.spec.days);
            for _ in 0..count {
                let ts = uniform(rng, clock.created_end, clock.end);
                plans.push(self.plan_post(rng, u as u32, ts, None, &vocab, &mentionable));
            }
        }

        // Bursts: evenly spaced windows in the middle of the span, each with many distinct
        // authors (2.5% of accounts, at least 25) posting the tag within the hour.
        let tags = burst_tags(self.spec);
        let mut bursts = Vec::with_capacity(tags.len());
        if !tags.is_empty() {
            let lo = clock.start + (clock.end - clock.start) * 3 / 10;
            let hi = clock.start + (clock.end - clock.start) * 9 / 10;
            let segment = (hi - lo) / tags.len() as i64;
            let window = HOUR.min(segment / 2).max(1);
            for (b, tag) in tags.into_iter().enumerate() {
                let seg_start = lo + segment * b as i64;
                let start = uniform(rng, seg_start, seg_start + segment - window);
                let end = start + window;
                let authors = ((n as f64 * 0.025) as usize).max(25).min(n);
                let mut chosen = rand::seq::index::sample(rng, n, authors).into_vec();
                chosen.sort_unstable();
                for a in chosen {
                    let ts = uniform(rng, start, end);
                    plans.push(self.plan_post(rng, a as u32, ts, Some(&tag), &vocab, &mentionable));
                }
                bursts.push(Burst {
                    tag,
                    start_ms: start,
                    end_ms: end,
                });
            }
        }

        // Post ids increase with time, as with snowflake ids; stable sort keeps ties in order.
        plans.sort_by_key(|p| p.ts);

        // Expected likes: grows with the author's audience and with the time left in the span
        // for the post to collect them, scaled so the mean is `likes_per_post`.
        let noise = LogNormal::new(-0.18, 0.6).expect("constant parameters are valid");
        let raw: Vec<f64> = plans
            .iter()
            .map(|p| {
                let audience = self.followers[p.author as usize].len() as f64;
                let left = (clock.end - p.ts) as f64 / ENGAGE_MEAN as f64;
                (audience + 5.0).powf(0.9) * noise.sample(rng) * (1.0 - (-left).exp())
            })
            .collect();
        let caps: Vec<f64> = plans.iter().map(|p| self.like_cap(p.author)).collect();
        let expected = normalise(&raw, &caps, self.spec.likes_per_post.max(0.0));

        let intercepts = self.calibrate(&plans, &expected);
        let dists = Dists::new();
        let mut mark = vec![0u32; n];
        let mut next_comment = COMMENT_ID_BASE + 1;
        let views_per_like = self.spec.views_per_like.max(0.0);
        for (k, plan) in plans.into_iter().enumerate() {
            let post = self.emit_post(out, rng, plan, POST_ID_BASE + 1 + k as u64);
            if n >= 2 {
                let mut e = Engagement {
                    world: self,
                    out: &mut *out,
                    rng: &mut *rng,
                    dists: &dists,
                    intercepts: &intercepts,
                    post: &post,
                    mark: &mut mark,
                    stamp: k as u32 + 1,
                    next_comment: &mut next_comment,
                };
                e.run(expected[k] * views_per_like);
            }
        }
        bursts
    }

    /// The intercepts of the truth ([`truth::calibrate`]), on a sample of impressions drawn
    /// the way [`Engagement`] draws them (posts in proportion to their expected views), so
    /// that a view is liked with probability `1 / views_per_like` on average and a post gets
    /// `comments_per_post` comments (replies included).
    fn calibrate(&self, plans: &[PostPlan], expected: &[f64]) -> Intercepts {
        let spec = self.spec;
        let like = if spec.views_per_like > 0.0 {
            1.0 / spec.views_per_like
        } else {
            0.0
        };
        let views_per_post = spec.likes_per_post * spec.views_per_like;
        // One comment in eleven is the author's reply.
        let comment = if views_per_post > 0.0 {
            spec.comments_per_post.max(0.0) / views_per_post / 1.1
        } else {
            0.0
        };
        let targets = [like, comment, like * 0.02, like * 0.05, 0.006];
        let mut rng = phase_rng(spec.seed, Phase::Calibrate);
        let mut sample = Vec::new();
        let n = self.n();
        if n >= 2
            && let Ok(posts) = WeightedAliasIndex::new(expected.to_vec())
        {
            for _ in 0..4_000 {
                let plan = &plans[posts.sample(&mut rng)];
                let restricted = self.users[plan.author as usize].private_since.is_some();
                let Some(viewer) = self.pick_viewer(&mut rng, plan.author, restricted, plan.topic)
                else {
                    continue;
                };
                let seen = after_within(
                    &mut rng,
                    plan.ts,
                    ENGAGE_MEAN,
                    self.clock.engage_end(plan.ts),
                );
                let surface = surface(&mut rng, plan.media_type, true, viewer.follower);
                sample.push(self.context(
                    &viewer,
                    plan.author,
                    plan.topic,
                    plan.quality,
                    plan.media_type,
                    plan.ts,
                    seen,
                    surface,
                ));
            }
        }
        truth::calibrate(&sample, targets)
    }

    /// Someone to be shown a post of `author` about `topic`: mostly a follower of the author
    /// (only followers when the author is private), else the most interested of three
    /// accounts drawn at random, as Explore would pick.
    fn pick_viewer(
        &self,
        rng: &mut ChaCha8Rng,
        author: u32,
        restricted: bool,
        topic: u8,
    ) -> Option<Viewer> {
        let followers = &self.followers[author as usize];
        if restricted || (!followers.is_empty() && rng.random_bool(0.75)) {
            followers.choose(rng).map(|&(user, since)| Viewer {
                user,
                follower: true,
                since: Some(since),
            })
        } else {
            let n = self.n();
            let mut best = other_user(rng, n, author);
            for _ in 0..2 {
                let other = other_user(rng, n, author);
                if self.tastes[other as usize].interest(topic)
                    > self.tastes[best as usize].interest(topic)
                {
                    best = other;
                }
            }
            Some(Viewer {
                user: best,
                follower: false,
                since: None,
            })
        }
    }

    /// What the truth needs to know about `viewer` seeing a post at `seen`.
    #[allow(clippy::too_many_arguments)]
    fn context(
        &self,
        viewer: &Viewer,
        author: u32,
        topic: u8,
        quality: f64,
        media: MediaType,
        posted: i64,
        seen: i64,
        surface: Surface,
    ) -> Context {
        let taste = &self.tastes[viewer.user as usize];
        Context {
            matched: taste.interest(topic),
            quality,
            follows: viewer.since.is_some_and(|since| since <= seen),
            close: taste.is_close(author),
            media_bias: f64::from(taste.media_bias[media_index(media)]),
            age_ms: seen - posted,
            surface,
        }
    }

    /// The most likes a post by `author` may get: most of its possible audience.
    fn like_cap(&self, author: u32) -> f64 {
        let pool = if self.users[author as usize].private_since.is_some() {
            self.followers[author as usize].len()
        } else {
            self.n().saturating_sub(1)
        };
        (pool as f64 * 0.7).ceil()
    }

    /// The most views a post by `author` may get: nearly all of its possible audience.
    fn view_cap(&self, author: u32) -> u64 {
        let pool = if self.users[author as usize].private_since.is_some() {
            self.followers[author as usize].len()
        } else {
            self.n().saturating_sub(1)
        };
        (pool as f64 * 0.9) as u64
    }

    fn plan_post(
        &self,
        rng: &mut ChaCha8Rng,
        author: u32,
        ts: i64,
        burst: Option<&str>,
        vocab: &Vocabulary,
        mentionable: &[u32],
    ) -> PostPlan {
        let media_type = match rng.random_range(0..100) {
            0..55 => MediaType::Photo,
            55..75 => MediaType::Carousel,
            75..90 => MediaType::Reel,
            _ => MediaType::Video,
        };
        let media_count = match media_type {
            // Skewed towards small carousels: 2–10 with 2 and 3 the most common.
            MediaType::Carousel => 2 + ((rng.random::<f64>().powi(2) * 9.0) as usize).min(8),
            _ => 1,
        };

        let mut tags: Vec<String> = Vec::new();
        let tag_count = match burst {
            Some(tag) => {
                tags.push(tag.to_string());
                rng.random_range(0..=3)
            }
            None => *TAG_COUNTS.choose(rng).expect("the list is not empty"),
        };
        // Mostly about what the author cares about most.
        let topic = if rng.random_bool(0.7) {
            self.tastes[author as usize].topics[0]
        } else {
            rng.random_range(0..TOPICS as u8)
        };
        let quality = rng.sample::<f64, _>(rand_distr::StandardNormal);
        let mut tries = 0;
        while tags.len() < tag_count.min(MAX_HASHTAGS) && tries < 200 {
            tries += 1;
            let tag = vocab.sample_in(rng, topic);
            if !tags.iter().any(|t| t == tag) {
                tags.push(tag.to_string());
            }
        }

        let mut mentions: Vec<&str> = Vec::new();
        if rng.random_bool(0.15) {
            let want = rng.random_range(1..=3);
            let followees = &self.followees[author as usize];
            for _ in 0..want * 3 {
                if mentions.len() >= want {
                    break;
                }
                let candidate = match followees.choose(rng) {
                    Some(&f) if rng.random_bool(0.8) => f,
                    _ => match mentionable.choose(rng) {
                        Some(&m) => m,
                        None => break,
                    },
                };
                let user = &self.users[candidate as usize];
                if candidate != author
                    && user.mentionable
                    && !mentions.contains(&user.username.as_str())
                {
                    mentions.push(&user.username);
                }
            }
        }

        let caption = if burst.is_none() && tags.is_empty() && rng.random_bool(0.15) {
            String::new()
        } else {
            let phrases: &[&str] = if burst.is_some() {
                &BURST_PHRASES
            } else {
                &CAPTION_PHRASES
            };
            let mut c = (*phrases.choose(rng).expect("the list is not empty")).to_string();
            if rng.random_bool(0.4) {
                c.push(' ');
                c.push_str(EMOJI.choose(rng).expect("the list is not empty"));
            }
            if !mentions.is_empty() {
                c.push_str(" with ");
                let list: Vec<String> = mentions.iter().map(|m| format!("@{m}")).collect();
                c.push_str(&list.join(", "));
            }
            if !tags.is_empty() {
                c.push_str(if rng.random_bool(0.3) { "\n\n" } else { " " });
                let list: Vec<String> = tags
                    .iter()
                    .map(|t| {
                        // Apps send tags as typed; extraction case-folds them.
                        if rng.random_bool(0.1) {
                            format!("#{}", capitalised(t))
                        } else {
                            format!("#{t}")
                        }
                    })
                    .collect();
                c.push_str(&list.join(" "));
            }
            c
        };

        let location = rng.random_bool(0.2).then(|| {
            let (name, lat, lng) = *PLACES.choose(rng).expect("the list is not empty");
            // Five decimals (about a metre), as apps send them; short decimals also parse back
            // to exactly the same f64, which long ones do not with serde_json's default parser.
            let round = |x: f64| (x * 1e5).round() / 1e5;
            Location {
                name: name.to_string(),
                lat: round(lat + rng.random_range(-0.05..0.05)),
                lng: round(lng + rng.random_range(-0.05..0.05)),
            }
        });
        let video_ms = match media_type {
            MediaType::Reel => rng.random_range(5_000..90_000),
            MediaType::Video => rng.random_range(15_000..600_000),
            _ => 0,
        };
        PostPlan {
            author,
            ts,
            topic,
            quality,
            media_type,
            media_count,
            caption,
            location,
            video_ms,
        }
    }

    /// Sends `post_created` (and `post_deleted` for the ~1% that are deleted).
    fn emit_post(&self, out: &mut Out, rng: &mut ChaCha8Rng, plan: PostPlan, id: u64) -> Posted {
        let author_id = user_id(plan.author);
        let ext = if plan.media_type.is_video() {
            "mp4"
        } else {
            "jpg"
        };
        let media = (0..plan.media_count)
            .map(|i| format!("m/{author_id}/{id}/{i}.{ext}"))
            .collect();
        let extracted = extract(&plan.caption);
        let has_tags = !extracted.hashtags.is_empty();
        out.emit(
            plan.author,
            plan.ts,
            Event::PostCreated(PostCreated {
                post_id: id,
                media_type: plan.media_type,
                media,
                caption: plan.caption,
                location: plan.location,
                hashtags: extracted.hashtags,
                mentions: extracted.mentions,
            }),
        );
        // 1.25% are picked; a delete that would fall after the span never happens, which
        // leaves about 1% deleted.
        let deleted = if rng.random_bool(0.0125) {
            after_or_never(rng, plan.ts, 6 * HOUR, self.clock.end)
        } else {
            None
        };
        if let Some(at) = deleted {
            out.emit(
                plan.author,
                at,
                Event::PostDeleted(PostDeleted { post_id: id }),
            );
        }
        Posted {
            id,
            author: plan.author,
            ts: plan.ts,
            topic: plan.topic,
            quality: plan.quality,
            media_type: plan.media_type,
            video_ms: plan.video_ms,
            has_tags,
            deleted,
            restricted: self.users[plan.author as usize].private_since.is_some(),
        }
    }

    /// Stories and their views.
    fn stories(&self, out: &mut Out, rng: &mut ChaCha8Rng) {
        let clock = self.clock;
        let days = self.spec.days.max(0.0);
        let whole = days.floor() as u64;
        let fraction = days - days.floor();
        let mut plans: Vec<(i64, u32, Audience)> = Vec::new();
        for u in 0..self.n() {
            if !self.users[u].story_poster {
                continue;
            }
            let mut count: u64 = (0..whole).map(|_| rng.random_range(3..=5u64)).sum();
            if fraction > 0.0 {
                count += (fraction * rng.random_range(3..=5) as f64).round() as u64;
            }
            for _ in 0..count {
                let ts = uniform(rng, clock.created_end, clock.end);
                let audience = if !self.close_friends[u].is_empty() && rng.random_bool(0.1) {
                    Audience::CloseFriends
                } else {
                    Audience::Followers
                };
                plans.push((ts, u as u32, audience));
            }
        }
        plans.sort_by_key(|p| p.0);

        for (k, (ts, author, audience)) in plans.into_iter().enumerate() {
            let story_id = STORY_ID_BASE + 1 + k as u64;
            let video = rng.random_bool(0.3);
            let media_ref = format!(
                "s/{}/{story_id}.{}",
                user_id(author),
                if video { "mp4" } else { "jpg" }
            );
            out.emit(
                author,
                ts,
                Event::StoryCreated(StoryCreated {
                    story_id,
                    media_type: if video {
                        StoryMediaType::Video
                    } else {
                        StoryMediaType::Photo
                    },
                    media: vec![media_ref],
                    audience,
                }),
            );
            // Stories expire after a day.
            let limit = (ts + DAY).min(clock.end);
            match audience {
                Audience::Followers => {
                    for &(f, since) in &self.followers[author as usize] {
                        if since <= ts && rng.random_bool(0.2) {
                            let at = after_within(rng, ts, 2 * HOUR, limit);
                            out.push(f, at, Raw::StoryViewed(story_id, author));
                        }
                    }
                }
                Audience::CloseFriends => {
                    for cf in &self.close_friends[author as usize] {
                        let listed = cf.added <= ts && cf.removed.is_none_or(|r| r > ts);
                        if listed && rng.random_bool(0.6) {
                            let at = after_within(rng, ts, 2 * HOUR, limit);
                            out.push(cf.user, at, Raw::StoryViewed(story_id, author));
                        }
                    }
                }
            }
        }
    }
}

/// Scales `raw` so that the capped values average `mean`: a few fixed-point rounds, since
/// capping the largest posts lowers the mean.
fn normalise(raw: &[f64], caps: &[f64], mean: f64) -> Vec<f64> {
    let total: f64 = raw.iter().sum();
    if raw.is_empty() || total <= 0.0 || mean <= 0.0 {
        return vec![0.0; raw.len()];
    }
    let want = mean * raw.len() as f64;
    let mut scale = want / total;
    for _ in 0..6 {
        let got: f64 = raw.iter().zip(caps).map(|(r, c)| (r * scale).min(*c)).sum();
        if got <= 0.0 {
            break;
        }
        scale *= want / got;
    }
    raw.iter()
        .zip(caps)
        .map(|(r, c)| (r * scale).min(*c))
        .collect()
}

/// Mean delay of engagement after a post, in ms: most of it comes within a few hours.
const ENGAGE_MEAN: i64 = 2 * HOUR;

/// A post as planned, before it has an id.
struct PostPlan {
    author: u32,
    ts: i64,
    /// Latent: what the post is about, and how good it is.
    topic: u8,
    quality: f64,
    media_type: MediaType,
    media_count: usize,
    caption: String,
    location: Option<Location>,
    /// Length of the clip for videos and reels, in ms.
    video_ms: u32,
}

/// What engagement needs to know about a sent post.
struct Posted {
    id: u64,
    author: u32,
    ts: i64,
    topic: u8,
    quality: f64,
    media_type: MediaType,
    video_ms: u32,
    has_tags: bool,
    deleted: Option<i64>,
    /// Only followers see it: the author is private (or goes private during the span).
    restricted: bool,
}

/// Distributions built once and shared by every post.
struct Dists {
    /// Dwell on a photo, in ms: median 2.5 s.
    dwell: LogNormal<f64>,
}

impl Dists {
    fn new() -> Dists {
        Dists {
            dwell: LogNormal::new((2_500f64).ln(), 0.8).expect("constant parameters are valid"),
        }
    }
}

/// An account picked to be shown a post.
struct Viewer {
    user: u32,
    /// Picked among the author's followers.
    follower: bool,
    /// When the follow became active, for a follower.
    since: Option<i64>,
}

/// The surface a post is shown on: feeds for followers, Explore, hashtag pages and Reels for
/// the others, profiles for both.
fn surface(rng: &mut ChaCha8Rng, media: MediaType, has_tags: bool, follower: bool) -> Surface {
    let reel = media == MediaType::Reel;
    let roll = rng.random_range(0..100);
    match (follower, reel) {
        (true, false) => match roll {
            0..85 => Surface::Feed,
            _ => Surface::Profile,
        },
        (true, true) => match roll {
            0..50 => Surface::Reels,
            50..90 => Surface::Feed,
            _ => Surface::Profile,
        },
        (false, false) => match roll {
            0..60 => Surface::Explore,
            60..85 if has_tags => Surface::Hashtag,
            60..85 => Surface::Explore,
            _ => Surface::Profile,
        },
        (false, true) => match roll {
            0..70 => Surface::Reels,
            70..90 => Surface::Explore,
            90..95 if has_tags => Surface::Hashtag,
            _ => Surface::Profile,
        },
    }
}

/// The engagement one post draws: impressions, each with outcomes drawn from its truth.
struct Engagement<'w, 'o> {
    world: &'o World<'w>,
    out: &'o mut Out,
    rng: &'o mut ChaCha8Rng,
    dists: &'o Dists,
    intercepts: &'o Intercepts,
    post: &'o Posted,
    /// `mark[u] == stamp`: `u` was already shown this post.
    mark: &'o mut [u32],
    stamp: u32,
    next_comment: &'o mut u64,
}

impl Engagement<'_, '_> {
    /// About `expected_views` impressions, each by a different account.
    fn run(&mut self, expected_views: f64) {
        let cap = self.world.view_cap(self.post.author);
        let target = poisson(self.rng, expected_views).min(cap) as usize;
        let mut done = 0;
        let mut tries = 0;
        while done < target && tries < target * 3 + 10 {
            tries += 1;
            let Some(viewer) = self.world.pick_viewer(
                self.rng,
                self.post.author,
                self.post.restricted,
                self.post.topic,
            ) else {
                break;
            };
            if self.mark[viewer.user as usize] == self.stamp {
                continue;
            }
            self.mark[viewer.user as usize] = self.stamp;
            done += 1;
            self.impression(&viewer);
        }
    }

    /// Whether an interaction starting at `ts` is dropped because the post was deleted
    /// before: most are (the post is gone), a few are kept (clients that had it on screen).
    fn gone(&mut self, ts: i64) -> bool {
        self.post.deleted.is_some_and(|d| ts > d) && self.rng.random_bool(0.9)
    }

    /// One impression: the view, then what the viewer does about it, each outcome drawn from
    /// the impression's true probabilities and sent within a few minutes of the view (well
    /// inside the label window).
    fn impression(&mut self, viewer: &Viewer) {
        let post = self.post;
        let seen = after_within(
            self.rng,
            post.ts,
            ENGAGE_MEAN,
            self.world.clock.engage_end(post.ts),
        );
        if self.gone(seen) {
            return;
        }
        let shown_on = surface(self.rng, post.media_type, post.has_tags, viewer.follower);
        let context = self.world.context(
            viewer,
            post.author,
            post.topic,
            post.quality,
            post.media_type,
            post.ts,
            seen,
            shown_on,
        );
        let p = truth::probabilities(&context, self.intercepts, post.media_type, post.video_ms);
        let liked = self.rng.random_bool(p.like);
        let commented = self.rng.random_bool(p.comment);
        let shared = self.rng.random_bool(p.share);
        let saved = self.rng.random_bool(p.save);
        let negative = self.rng.random_bool(p.negative);

        let glance = self.dists.dwell.sample(self.rng);
        let watch_ms = p
            .watch_ms
            .map(|w| (w * self.rng.random_range(0.5..1.5)) as u32);
        let dwell = match watch_ms {
            Some(w) => f64::from(w) + glance * 0.3,
            None if liked => glance * 1.5,
            None => glance,
        };
        // At most five minutes: far below both `u32::MAX` and the one-day limit of a view.
        let dwell = (dwell as u32).clamp(200, MAX_WATCH_MS as u32);
        let u = viewer.user;
        self.out.view(
            u,
            seen,
            Raw::View {
                post: post.id,
                author: post.author,
                surface: shown_on,
                dwell_ms: dwell,
                watch_ms,
            },
            p,
        );
        let after = seen + i64::from(dwell) + 1;
        let end = self.world.clock.end;
        if liked {
            self.out.post(u, after, PostVerb::Like, post);
            if self.rng.random_bool(0.03)
                && let Some(at) = after_or_never(self.rng, after, 2 * HOUR, end)
            {
                self.out.post(u, at, PostVerb::Unlike, post);
            }
        }
        if saved {
            let at = after + self.rng.random_range(SECOND..30 * SECOND);
            self.out.post(u, at, PostVerb::Save, post);
            if self.rng.random_bool(0.1)
                && let Some(later) = after_or_never(self.rng, at, 4 * HOUR, end)
            {
                self.out.post(u, later, PostVerb::Unsave, post);
            }
        }
        if shared {
            let at = after + self.rng.random_range(SECOND..2 * MINUTE);
            let to_id = self
                .rng
                .random_bool(0.6)
                .then(|| user_id(other_user(self.rng, self.world.n(), u)));
            self.out.emit(
                u,
                at,
                Event::Share(Share {
                    post_id: post.id,
                    author_id: user_id(post.author),
                    to_id,
                }),
            );
        }
        if commented {
            let at = after + self.rng.random_range(5 * SECOND..2 * MINUTE);
            self.comment(u, at);
        }
        if negative {
            let author_id = user_id(post.author);
            if self.rng.random_bool(0.85) {
                let on = surface(self.rng, post.media_type, post.has_tags, viewer.follower);
                self.out.emit(
                    u,
                    after,
                    Event::Hide(Hide {
                        post_id: post.id,
                        author_id,
                        surface: on,
                    }),
                );
            } else {
                let reason = *REPORT_REASONS
                    .choose(self.rng)
                    .expect("the list is not empty");
                self.out.emit(
                    u,
                    after + 1,
                    Event::Report(Report {
                        post_id: post.id,
                        author_id,
                        reason,
                    }),
                );
            }
        }
        if self.rng.random_bool(0.03) {
            self.out
                .user(u, after + 2, UserVerb::ProfileView, post.author);
        }
    }

    /// A comment by `commenter` at `at`; sometimes deleted, sometimes answered by the author.
    fn comment(&mut self, commenter: u32, at: i64) {
        let clock = self.world.clock;
        let author = self.post.author;
        let users = &self.world.users;
        let mut text = String::new();
        if self.rng.random_bool(0.1) {
            let other = other_user(self.rng, self.world.n(), commenter);
            if users[other as usize].mentionable {
                text.push_str(&format!("@{} ", users[other as usize].username));
            }
        }
        text.push_str(COMMENTS.choose(self.rng).expect("the list is not empty"));
        if self.rng.random_bool(0.05) {
            let tag = POPULAR_TAGS[..20]
                .choose(self.rng)
                .expect("the list is not empty");
            text.push_str(&format!(" #{tag}"));
        }
        let id = self.new_comment(commenter, at, text);
        if self.rng.random_bool(0.03)
            && let Some(gone) = after_or_never(self.rng, at, 3 * HOUR, clock.end)
        {
            // The commenter deletes it, or the author removes it from their post.
            let actor = if self.rng.random_bool(0.75) {
                commenter
            } else {
                author
            };
            self.out.emit(
                actor,
                gone,
                Event::CommentDeleted(CommentDeleted {
                    comment_id: id,
                    post_id: self.post.id,
                    author_id: user_id(author),
                }),
            );
        }
        if self.rng.random_bool(0.1) {
            let reply_at = after_within(self.rng, at, HOUR, clock.end);
            let who = &users[commenter as usize];
            let reply = if who.mentionable {
                format!(
                    "@{} {}",
                    who.username,
                    REPLIES.choose(self.rng).expect("the list is not empty")
                )
            } else {
                (*REPLIES.choose(self.rng).expect("the list is not empty")).to_string()
            };
            self.new_comment(author, reply_at, reply);
        }
    }

    fn new_comment(&mut self, actor: u32, at: i64, text: String) -> u64 {
        let id = *self.next_comment;
        *self.next_comment += 1;
        let extracted = extract(&text);
        self.out.emit(
            actor,
            at,
            Event::CommentCreated(CommentCreated {
                comment_id: id,
                post_id: self.post.id,
                author_id: user_id(self.post.author),
                text,
                hashtags: extracted.hashtags,
                mentions: extracted.mentions,
            }),
        );
        id
    }
}

/// The hashtag vocabulary, Zipf-distributed by rank: real-looking popular tags first (the
/// steady tag at rank 1), then generated ones in a seed-dependent order.
struct Vocabulary {
    tags: Vec<String>,
    zipf: Zipf<f64>,
}

impl Vocabulary {
    fn new(rng: &mut ChaCha8Rng) -> Vocabulary {
        let mut tags: Vec<String> = POPULAR_TAGS.iter().map(|t| (*t).to_string()).collect();
        let mut seen: HashSet<String> = tags.iter().cloned().collect();
        let mut generated: Vec<String> = TAG_PREFIXES
            .iter()
            .flat_map(|p| TAG_SUFFIXES.iter().map(move |s| format!("{p}{s}")))
            .collect();
        generated.shuffle(rng);
        for tag in generated {
            if seen.insert(tag.clone()) {
                tags.push(tag);
            }
        }
        let zipf = Zipf::new(tags.len() as f64, 1.05).expect("the vocabulary is not empty");
        Vocabulary { tags, zipf }
    }

    /// A tag for a post about `topic`: a Zipf draw by rank; a topical tag (past the
    /// [`GENERIC_TAGS`] head) is swapped for the tag of the same block of [`TOPICS`] ranks that
    /// belongs to `topic`, so every tag keeps about its Zipf frequency while a post's topical
    /// tags all name its topic. Rank `GENERIC_TAGS + j` belongs to topic `j % TOPICS`.
    fn sample_in(&self, rng: &mut ChaCha8Rng, topic: u8) -> &str {
        // Zipf samples integers in [1, len] as floats.
        let index = self.zipf.sample(rng) as usize;
        let mut index = index.clamp(1, self.tags.len()) - 1;
        if index >= GENERIC_TAGS {
            let j = index - GENERIC_TAGS;
            let swapped = GENERIC_TAGS + j - j % TOPICS + usize::from(topic);
            if swapped < self.tags.len() {
                index = swapped;
            }
        }
        &self.tags[index]
    }
}

/// Hashtags per post: most use a few, some none, a few stuff the caption.
const TAG_COUNTS: [usize; 17] = [0, 0, 0, 1, 1, 1, 2, 2, 3, 3, 4, 5, 6, 8, 10, 15, 30];

const POPULAR_TAGS: [&str; 50] = [
    "love",
    "instagood",
    "photooftheday",
    "fashion",
    "beautiful",
    "happy",
    "cute",
    "tbt",
    "like4like",
    "followme",
    "picoftheday",
    "follow",
    "me",
    "selfie",
    "summer",
    "art",
    "instadaily",
    "friends",
    "repost",
    "nature",
    "girl",
    "fun",
    "style",
    "smile",
    "food",
    "travel",
    "fitness",
    "life",
    "beauty",
    "amazing",
    "instagram",
    "photography",
    "photo",
    "family",
    "nofilter",
    "sunset",
    "dog",
    "music",
    "pretty",
    "beach",
    "motivation",
    "coffee",
    "foodie",
    "wanderlust",
    "ootd",
    "throwback",
    "cat",
    "sky",
    "weekend",
    "gym",
];
const TAG_PREFIXES: [&str; 40] = [
    "sunset", "coffee", "city", "beach", "mountain", "street", "food", "travel", "yoga", "vegan",
    "vintage", "urban", "ocean", "forest", "desert", "night", "morning", "rainy", "sunday",
    "monday", "summer", "winter", "autumn", "spring", "puppy", "kitty", "bookish", "plant",
    "retro", "neon", "island", "lake", "snow", "garden", "pasta", "sushi", "taco", "pizza",
    "brunch", "matcha",
];
const TAG_SUFFIXES: [&str; 15] = [
    "vibes", "life", "lover", "daily", "gram", "time", "mood", "goals", "club", "diaries",
    "addict", "squad", "world", "hunter", "nation",
];

const CAPTION_PHRASES: [&str; 24] = [
    "Golden hour at the pier",
    "Sunday mornings like this",
    "Can't get enough of this view",
    "New week, new goals",
    "Throwback to the best trip",
    "Little things",
    "Finally tried this place",
    "Home is wherever this is",
    "Weekend mode: on",
    "Made it to the top!",
    "Coffee first, then everything else",
    "Lazy afternoon",
    "Not a bad office today",
    "Found my happy place",
    "City lights",
    "Some days are just perfect",
    "Out with the crew",
    "Trying something new",
    "Missing this already",
    "Caught this on the way home",
    "Rainy day reads",
    "Dinner is served",
    "Good vibes only",
    "Swipe for the best one →",
];
const BURST_PHRASES: [&str; 6] = [
    "Did anyone else see this?!",
    "Unreal. Just unreal.",
    "Can't believe we got to see this",
    "Everyone is out here right now",
    "Not missing this one",
    "Happening right now",
];
const EMOJI: [&str; 12] = [
    "😍", "🔥", "✨", "🌅", "☕", "🙌", "💛", "🌊", "📸", "🎉", "😎", "🌿",
];
const COMMENTS: [&str; 20] = [
    "Love this! 😍",
    "so good",
    "🔥🔥🔥",
    "Where is this?",
    "Congrats!!",
    "Wow",
    "This is amazing",
    "Need to go there",
    "Stunning shot",
    "haha yes",
    "Miss you!",
    "goals",
    "Beautiful ✨",
    "Take me with you next time",
    "👏👏",
    "omg",
    "This made my day",
    "Recipe please!",
    "So jealous",
    "Incredible colours",
];
const REPLIES: [&str; 6] = [
    "thank you!",
    "thanks so much 💛",
    "haha right?",
    "come with me next time!",
    "🙌",
    "appreciate it",
];
const REPORT_REASONS: [ReportReason; 10] = [
    ReportReason::Spam,
    ReportReason::Spam,
    ReportReason::Spam,
    ReportReason::Spam,
    ReportReason::Spam,
    ReportReason::Abuse,
    ReportReason::Abuse,
    ReportReason::Nudity,
    ReportReason::Violence,
    ReportReason::Other,
];
const PLACES: [(&str, f64, f64); 20] = [
    ("Lisbon, Portugal", 38.7223, -9.1393),
    ("Tokyo, Japan", 35.6762, 139.6503),
    ("New York, New York", 40.7128, -74.0060),
    ("Paris, France", 48.8566, 2.3522),
    ("Rio de Janeiro, Brazil", -22.9068, -43.1729),
    ("Cape Town, South Africa", -33.9249, 18.4241),
    ("Sydney, Australia", -33.8688, 151.2093),
    ("Reykjavik, Iceland", 64.1466, -21.9426),
    ("Bali, Indonesia", -8.3405, 115.0920),
    ("Santorini, Greece", 36.3932, 25.4615),
    ("Banff National Park", 51.4968, -115.9281),
    ("Marrakesh, Morocco", 31.6295, -7.9811),
    ("Mexico City, Mexico", 19.4326, -99.1332),
    ("Seoul, South Korea", 37.5665, 126.9780),
    ("Berlin, Germany", 52.5200, 13.4050),
    ("Istanbul, Turkey", 41.0082, 28.9784),
    ("London, United Kingdom", 51.5074, -0.1278),
    ("Buenos Aires, Argentina", -34.6037, -58.3816),
    ("Mumbai, India", 19.0760, 72.8777),
    ("Los Angeles, California", 34.0522, -118.2437),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_by_ts_is_a_stable_sort() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for n in [0usize, 1, 2, 17, 5_000] {
            let ts: Vec<i64> = (0..n)
                .map(|_| 1_763_856_000_000 + rng.random_range(0..(3 * DAY)) / 1_000 * 1_000)
                .collect();
            let mut expected: Vec<usize> = (0..n).collect();
            expected.sort_by_key(|&i| (ts[i], i));
            assert_eq!(order_by_ts(&ts), expected, "n = {n}");
        }
    }

    #[test]
    fn event_ids_count_like_zero_padded_formatting() {
        let mut ids = EventIds::new(7);
        for seq in 0..2_000u64 {
            assert_eq!(ids.next_id(), format!("g7-{seq:09}"));
        }
        let mut ids = EventIds {
            prefix_len: 3,
            current: b"g7-999999999".to_vec(),
        };
        assert_eq!(ids.next_id(), "g7-999999999");
        assert_eq!(ids.next_id(), format!("g7-{:09}", 1_000_000_000u64));
    }
}
