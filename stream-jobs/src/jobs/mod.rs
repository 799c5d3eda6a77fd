//! The stream jobs. Each job is a folder: `mod.rs` (what it keeps and how events are encoded
//! for its script) and a `.lua` file (what it does to Redis state, atomically, per event).
//!
//! Job logic runs inside Redis, in the runtime's per-batch script, because that is what makes
//! a job's writes atomic with the offset it stores and makes each event's read-modify-write
//! atomic with respect to the other partitions' workers: two scripts never interleave. The
//! semantics are kept order-independent (EVENTS.md, "Semantics") by folding ordered per-pair
//! event logs rather than trusting arrival order.

pub mod engagement;
pub mod fanout;
pub mod graph;
pub mod notifications;
pub mod pools;
pub mod stories;
mod sweep;
pub mod trending;

use aperture_schema::{Config, Envelope};

/// One stream job: a name, the Lua that applies one event, and how an event becomes the
/// script's arguments.
pub trait Job: Send + Sync + std::fmt::Debug {
    /// Stable name, used in offset keys and metrics labels.
    fn name(&self) -> &'static str;

    /// Lua defining `apply(a, i)`; may use the key functions and the shared library.
    fn lua(&self) -> String;

    /// Appends the records of a partition batch this job needs: for each, the offset it
    /// belongs to and its fields. Events the job ignores add nothing.
    fn encode(&self, batch: &[(i64, &Envelope)], out: &mut Records);

    /// Keys of one partition the job's script writes besides the runtime's own (offset, epoch,
    /// watermark), passed as `KEYS[4]` onwards. They must share the partition checkpoint's hash
    /// tag, so every key of the script is declared and in one slot.
    fn partition_keys(
        &self,
        keys: &aperture_schema::keys::Keyspace,
        partition: u32,
    ) -> Vec<String> {
        let _ = (keys, partition);
        Vec::new()
    }

    /// For a job over event-time windows: how far behind its partition's watermark an event
    /// may arrive and still be applied. Later events go to the dead-letter topic.
    fn allowed_lateness(&self, config: &Config) -> Option<std::time::Duration> {
        let _ = config;
        None
    }

    /// For a job with an allowed lateness: whether `event` is placed in a window by its own
    /// event time. Only such events move the partition's watermark and can be late; the others
    /// (events the job ignores, or a delete that retracts from the window of what it deletes)
    /// are always applied.
    fn windowed(&self, event: &Envelope) -> bool {
        let _ = event;
        true
    }

    /// For a job whose writes are slot-local updates (DESIGN.md §3): how a batch becomes them.
    /// Its [`Job::lua`] then defines `apply_op(op, emit)` instead of `apply(a, i)`, and
    /// [`Job::encode`] adds nothing.
    fn steps(&self) -> Option<&dyn Steps> {
        None
    }

    /// Housekeeping a worker runs now and then (every `stories.sweep-every`), outside any
    /// batch: sweeping what expired. `now_ms` is wall-clock time. Returns how much it removed.
    /// It must be idempotent: several workers may run it.
    fn maintain(
        &self,
        con: &mut dyn redis::ConnectionLike,
        keys: &aperture_schema::keys::Keyspace,
        now_ms: i64,
    ) -> redis::RedisResult<u64> {
        let _ = (con, keys, now_ms);
        Ok(0)
    }
}

/// One slot-local update operation: for the keys of one hash tag, from the event at `offset`.
#[derive(Debug, Clone, PartialEq)]
pub struct Routed {
    pub offset: i64,
    /// The hash tag every key of the operation carries (`u:42`).
    pub tag: String,
    /// Every key the operation may touch, all with `tag`.
    pub keys: Vec<String>,
    /// The operation as JSON, decoded by the job's `apply_op`.
    pub op: String,
}

/// How a stepped job turns a partition batch into slot-local updates.
///
/// The first step's operations come from the events; each operation runs in the slot of its
/// tag, atomically with that slot's record of what it applied, and may emit operations for
/// the next step (to other slots), which the runtime routes with [`Steps::route`]. A decision
/// that needs one slot's state to write another's (was this view a duplicate? did this like
/// change anything?) is made where that state lives and travels on in what it emits.
pub trait Steps: Send + Sync {
    /// The first step's operations of a batch.
    fn first(
        &self,
        keys: &aperture_schema::keys::Keyspace,
        batch: &[(i64, &Envelope)],
        out: &mut Vec<Routed>,
    );

    /// Where an operation a step emitted goes, and the keys it touches; an error names what
    /// could not be read (the job's Lua and Rust disagree).
    fn route(
        &self,
        keys: &aperture_schema::keys::Keyspace,
        offset: i64,
        op: &str,
    ) -> Result<Routed, String>;
}

/// The records a job encodes for one batch: per record, its offset and its string fields.
#[derive(Debug, Default)]
pub struct Records {
    pub(crate) args: Vec<String>,
    pub(crate) count: usize,
}

impl Records {
    /// Adds one record for the event at `offset`.
    pub fn push<const N: usize>(&mut self, offset: i64, fields: [String; N]) {
        self.args.push(offset.to_string());
        self.args.push(N.to_string());
        self.args.extend(fields);
        self.count += 1;
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// Every job, in the order a worker applies them to a batch.
pub fn all() -> Vec<Box<dyn Job>> {
    vec![
        Box::new(graph::Graph),
        Box::new(fanout::Fanout),
        Box::new(engagement::Engagement),
        Box::new(notifications::Notifications),
        Box::new(stories::Stories),
        Box::new(trending::Trending),
        Box::new(pools::Pools),
    ]
}

/// The names of every job, in [`all`]'s order.
pub fn names() -> Vec<&'static str> {
    all().iter().map(|j| j.name()).collect()
}

/// The jobs named on the command line (`all` for every job).
pub fn by_names(names: &[String]) -> Result<Vec<Box<dyn Job>>, String> {
    let every = all();
    if names.iter().any(|n| n == "all") {
        return Ok(every);
    }
    let known: Vec<&str> = every.iter().map(|j| j.name()).collect();
    if let Some(unknown) = names.iter().find(|n| !known.contains(&n.as_str())) {
        return Err(format!(
            "no job is named {unknown:?}; the jobs are {}, or all",
            known.join(", ")
        ));
    }
    Ok(every
        .into_iter()
        .filter(|j| names.iter().any(|n| n == j.name()))
        .collect())
}

/// The Lua every job script shares: configuration constants and the timeline mechanics that
/// both the graph job (follows, returns) and the fan-out job (posts) use.
pub fn library(config: &Config) -> String {
    let fanout = &config.fanout;
    let celebrity_off =
        (fanout.celebrity_threshold as f64 * (1.0 - fanout.celebrity_hysteresis)).floor() as u64;
    format!(
        "local TIMELINE_CAP = {}\nlocal RECENT_CAP = {}\nlocal CELEB_ON = {}\nlocal CELEB_OFF = {}\n\
         local INACTIVE_MS = {}\nlocal DEDUPE_MS = {}\nlocal AFFINITY_EPOCH = {}\n\
         local AFFINITY_HALF_LIFE = {}\nlocal NOTIFY_WINDOW = {}\nlocal NOTIFY_KEPT = {}\n\
         local STORY_TTL = {}\nlocal TREND_KEEP = {}\nlocal TREND_FINE = {}\nlocal TREND_COARSE = {}\n\
         local HISTORY_CAP = {}\nlocal ENGAGED_CAP = {}\n{}",
        fanout.timeline_cap,
        fanout.recent_posts_cap,
        fanout.celebrity_threshold,
        celebrity_off,
        fanout.inactive_after.as_millis(),
        config.engagement.dedupe_window.as_millis(),
        engagement::AFFINITY_EPOCH_MS,
        config.engagement.affinity_half_life.as_millis(),
        config.notifications.window.as_millis(),
        config.notifications.kept,
        stories::STORY_TTL_MS,
        trending::KEEP_MS,
        trending::FINE_MS,
        trending::COARSE_MS,
        engagement::HISTORY_CAP,
        engagement::ENGAGED_CAP,
        include_str!("library.lua")
    )
}
