//! The one Redis script per job and partition batch: fence check, offset check, the job's
//! writes, offset store — atomically.
//!
//! A job contributes Lua that defines `apply(a, i)` (the event's fields are `a[i]`, `a[i+1]`, …
//! as the job's [`Job::encode`](crate::jobs::Job::encode) wrote them). The runtime wraps it:
//!
//! ```text
//! KEYS[1] offset key, KEYS[2] epoch key, KEYS[3] event-time watermark key,
//! KEYS[4..] the job's own keys of the partition (Job::partition_keys), same slot
//! ARGV[1] worker epoch, ARGV[2] next offset after the batch, ARGV[3] new watermark or '',
//! then per event: offset, field count, fields…
//! ```
//!
//! A job with an allowed lateness ([`Job::allowed_lateness`]) has a per-partition event-time
//! watermark: the highest `ts` applied. An event more than the allowed lateness behind it is
//! late: the runtime writes it to the dead-letter topic and the job never sees it. Lateness is
//! decided per partition in offset order, so it does not depend on how partitions interleave;
//! the watermark is stored with the offset, so a restart decides exactly as before.
//!
//! Redis runs a script to completion without interleaving other commands, so the job's writes
//! and the new offset become visible together. A worker whose epoch is no longer the stored one
//! (another worker took the partition) writes nothing; an event below the stored offset (already
//! applied) is skipped, so redelivery changes nothing.

use std::collections::BTreeMap;

use aperture_schema::keys::Keyspace;
use aperture_schema::{Config, Envelope};

use super::target::{Invocation, Scripts};
use crate::jobs::{Job, Records, Routed, library};

/// What applying one batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The batch's writes and its offset were stored.
    Applied,
    /// Every event of the batch was already applied; nothing was written.
    AlreadyApplied,
    /// The worker's epoch is stale: another worker owns the partition. Nothing was written.
    Fenced,
}

impl Outcome {
    pub(crate) fn from_code(code: i64) -> Outcome {
        match code {
            2 => Outcome::Applied,
            1 => Outcome::AlreadyApplied,
            _ => Outcome::Fenced,
        }
    }
}

const PRELUDE: &str = r#"
local stored_epoch = redis.call('GET', KEYS[2])
if stored_epoch ~= ARGV[1] then return 0 end
local applied = tonumber(redis.call('GET', KEYS[1]) or '0')
local next_offset = tonumber(ARGV[2])
if next_offset <= applied then return 1 end
"#;

const LOOP: &str = r#"
local i = 4
local n_args = #ARGV
while i <= n_args do
  local offset = tonumber(ARGV[i])
  local n = tonumber(ARGV[i + 1])
  if offset >= applied then apply(ARGV, i + 2) end
  i = i + 2 + n
end
if ARGV[3] ~= '' then redis.call('SET', KEYS[3], ARGV[3]) end
redis.call('SET', KEYS[1], ARGV[2])
return 2
"#;

/// The full script of a job: prelude, the keyspace's key functions, the shared library, the
/// job's `apply`, the loop.
pub fn compose(keys: &Keyspace, library: &str, job_lua: &str) -> String {
    let mut lua =
        String::with_capacity(PRELUDE.len() + library.len() + job_lua.len() + LOOP.len() + 2048);
    lua.push_str(PRELUDE);
    lua.push_str(&keys.lua_functions());
    lua.push_str(library);
    lua.push('\n');
    lua.push_str(job_lua);
    lua.push('\n');
    lua.push_str(LOOP);
    lua
}

/// What a stepped job's script runs before its `apply_op`: the declared keys, so that a key
/// name built from the keyspace but missing from `KEYS` is an error rather than a write to
/// another slot.
const SLOT_PRELUDE: &str = r#"
local declared_keys = {}
for _, k in ipairs(KEYS) do declared_keys[k] = true end
local function declared(name)
  if not declared_keys[name] then
    error('undeclared key ' .. name .. ': a slot-local update declares every key it touches')
  end
  return name
end
"#;

/// One slot-local update (see [`run_steps`]):
///
/// ```text
/// KEYS[1] the slot's applied record (with its outbox),
/// KEYS[2..] every key the operations touch, all in the slot
/// ARGV[1] record field `<job>:<partition>:<step>`, ARGV[2] worker epoch,
/// ARGV[3] next offset after the batch, ARGV[4] the batch's first offset (what is below it
/// is behind the partition's checkpoint), then per operation: source offset, JSON
/// ```
///
/// Returns `{code, applied before, emitted…}`: code 0 fenced, 1 all applied before, 2 applied;
/// each emitted operation as `<offset>:<seq>|<json>`, including what operations applied
/// before emitted (from the outbox: the record's `<field>:out`, one line per emitted
/// operation), so a replay carries the first try's decisions on.
const SLOT_LOOP: &str = r#"
local field, epoch = ARGV[1], tonumber(ARGV[2])
local next_offset, committed = tonumber(ARGV[3]), tonumber(ARGV[4])
local out_field = field .. ':out'
local stored = redis.call('HMGET', KEYS[1], field, out_field)
local stored_epoch, applied = 0, 0
if stored[1] then
  local e, o = string.match(stored[1], '^(%d+):(%d+)$')
  stored_epoch, applied = tonumber(e), tonumber(o)
end
if epoch < stored_epoch then return {0, applied} end
local reply = {2, applied}
-- What earlier tries emitted at or after the batch's start stays until a later batch starts
-- past it; what this batch's operations emitted before is returned again.
local kept = {}
if stored[2] then
  local upto = math.min(applied, next_offset)
  for m in string.gmatch(stored[2], '[^\n]+') do
    local offset = tonumber(string.match(m, '^(%d+):'))
    if offset >= committed then
      kept[#kept + 1] = m
      if offset < upto then reply[#reply + 1] = m end
    end
  end
end
local seq, any = 0, false
local i = 5
while i <= #ARGV do
  local offset = tonumber(ARGV[i])
  if offset >= applied then
    any = true
    apply_op(cjson.decode(ARGV[i + 1]), function(op)
      seq = seq + 1
      local m = string.format('%d:%d|%s', offset, seq, cjson.encode(op))
      kept[#kept + 1] = m
      reply[#reply + 1] = m
    end)
  end
  i = i + 2
end
if not any then reply[1] = 1 end
local record = string.format('%d:%d', math.max(stored_epoch, epoch),
  math.max(applied, next_offset))
if #kept > 0 then
  redis.call('HSET', KEYS[1], field, record, out_field, table.concat(kept, '\n'))
else
  redis.call('HSET', KEYS[1], field, record)
  if stored[2] then redis.call('HDEL', KEYS[1], out_field) end
end
return reply
"#;

/// The script of one slot-local update of a stepped job: declared keys, key functions that
/// refuse undeclared names, the shared library, the job's `apply_op`, the loop.
pub fn compose_slot(keys: &Keyspace, library: &str, job_lua: &str) -> String {
    let mut lua = String::with_capacity(library.len() + job_lua.len() + 8192);
    lua.push_str(SLOT_PRELUDE);
    // Only the key functions the job calls: a script's whole chunk runs at every call, and the
    // closures of the other forty keys would be built for nothing each time.
    for line in keys.lua_functions_declared().lines() {
        let used = match line
            .strip_prefix("local function ")
            .and_then(|rest| rest.split_once('('))
        {
            Some((name, _)) => job_lua.contains(&format!("{name}(")),
            None => true,
        };
        if used {
            lua.push_str(line);
            lua.push('\n');
        }
    }
    lua.push_str(library);
    lua.push('\n');
    lua.push_str(job_lua);
    lua.push('\n');
    lua.push_str(SLOT_LOOP);
    lua
}

/// How many steps a batch of a stepped job may take before the runtime calls it a loop.
const MAX_STEPS: u32 = 8;

/// A job's hold on one partition: its fencing epoch, the next offset it has to apply, and its
/// event-time watermark when it has an allowed lateness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lane {
    pub epoch: String,
    pub from: i64,
    pub watermark: Option<i64>,
}

/// A batch split by lateness: what the job applies, what goes to the dead-letter topic (offset
/// and reason), and the watermark to store with the batch.
#[derive(Debug)]
pub struct Split<'a> {
    pub kept: Vec<(i64, &'a Envelope)>,
    pub late: Vec<(i64, String)>,
    pub watermark: Option<i64>,
}

/// A job with its composed script, ready to apply batches.
pub struct JobScript {
    job: Box<dyn Job>,
    script: redis::Script,
    /// For a stepped job: the slot-local update script.
    slot_script: Option<redis::Script>,
    lateness: Option<std::time::Duration>,
}

impl std::fmt::Debug for JobScript {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobScript")
            .field("job", &self.job.name())
            .finish()
    }
}

impl JobScript {
    pub fn new(job: Box<dyn Job>, config: &Config) -> JobScript {
        let keys = config.keyspace();
        let library = library(config);
        let (script, slot_script) = if job.steps().is_some() {
            // The partition script of a stepped job only moves its checkpoint.
            let checkpoint = compose(&keys, "", "local function apply(a, i) end");
            let slot = compose_slot(&keys, &library, &job.lua());
            (
                redis::Script::new(&checkpoint),
                Some(redis::Script::new(&slot)),
            )
        } else {
            let script = redis::Script::new(&compose(&keys, &library, &job.lua()));
            (script, None)
        };
        let lateness = job.allowed_lateness(config);
        JobScript {
            job,
            script,
            slot_script,
            lateness,
        }
    }

    pub fn name(&self) -> &'static str {
        self.job.name()
    }

    /// The job's housekeeping ([`Job::maintain`]).
    pub fn maintain(
        &self,
        con: &mut dyn redis::ConnectionLike,
        keys: &Keyspace,
        now_ms: i64,
    ) -> redis::RedisResult<u64> {
        self.job.maintain(con, keys, now_ms)
    }

    /// Takes ownership of a partition for this job: a new epoch (fencing the previous owner)
    /// and the next offset to apply.
    pub fn claim(
        &self,
        con: &mut dyn redis::ConnectionLike,
        keys: &Keyspace,
        partition: u32,
    ) -> redis::RedisResult<(String, i64)> {
        let epoch: i64 = redis::cmd("INCR")
            .arg(keys.job_epoch(self.name(), partition))
            .query(con)?;
        let offset: Option<i64> = redis::cmd("GET")
            .arg(keys.job_offset(self.name(), partition))
            .query(con)?;
        Ok((epoch.to_string(), offset.unwrap_or(0)))
    }

    /// [`JobScript::claim`], with the stored watermark for a job that has one.
    pub fn claim_lane(
        &self,
        con: &mut dyn redis::ConnectionLike,
        keys: &Keyspace,
        partition: u32,
    ) -> redis::RedisResult<Lane> {
        let (epoch, from) = self.claim(con, keys, partition)?;
        let watermark = match self.lateness {
            Some(_) => redis::cmd("GET")
                .arg(keys.job_watermark(self.name(), partition))
                .query::<Option<i64>>(con)?,
            None => None,
        };
        Ok(Lane {
            epoch,
            from,
            watermark,
        })
    }

    /// Splits a batch by lateness against the lane's watermark. Events below `lane.from` were
    /// applied before (the script skips them) and decide nothing.
    pub fn split<'a>(&self, lane: &Lane, events: &[(i64, &'a Envelope)]) -> Split<'a> {
        let Some(lateness) = self.lateness else {
            return Split {
                kept: events.to_vec(),
                late: Vec::new(),
                watermark: None,
            };
        };
        let allowed = lateness.as_millis() as i64;
        let mut watermark = lane.watermark;
        let mut kept = Vec::with_capacity(events.len());
        let mut late = Vec::new();
        for &(offset, e) in events {
            if offset < lane.from || !self.job.windowed(e) {
                kept.push((offset, e));
                continue;
            }
            match watermark {
                Some(w) if e.ts < w - allowed => late.push((
                    offset,
                    format!(
                        "late for job {}: event time {} is {} ms behind the partition's \
                         watermark {w}; allowed lateness is {allowed} ms",
                        self.name(),
                        e.ts,
                        w - e.ts
                    ),
                )),
                _ => {
                    watermark = Some(watermark.map_or(e.ts, |w| w.max(e.ts)));
                    kept.push((offset, e));
                }
            }
        }
        Split {
            kept,
            late,
            watermark,
        }
    }

    /// Applies the events of one partition batch (offsets ascending, ending before
    /// `next_offset`) under `epoch`. Returns the outcome and the number of records written.
    pub fn apply(
        &self,
        con: &mut dyn Scripts,
        keys: &Keyspace,
        partition: u32,
        epoch: &str,
        events: &[(i64, &Envelope)],
        next_offset: i64,
    ) -> redis::RedisResult<(Outcome, usize)> {
        self.call(keys, partition, epoch, events, next_offset, None)
            .invoke(con, keys)
    }

    /// The script call that applies `events` as [`JobScript::apply`] does, storing `watermark`
    /// (from [`JobScript::split`]) with the offset: to [`Call::invoke`] alone, or for
    /// [`apply_all`] to send with others.
    pub fn call<'a>(
        &'a self,
        keys: &Keyspace,
        partition: u32,
        epoch: &str,
        events: &[(i64, &Envelope)],
        next_offset: i64,
        watermark: Option<i64>,
    ) -> Call<'a> {
        let mut records = Records::default();
        self.job.encode(events, &mut records);
        let steps = self.job.steps().map(|steps| {
            let mut ops = Vec::new();
            steps.first(keys, events, &mut ops);
            Stepped {
                ops,
                partition,
                committed: events.iter().map(|(o, _)| *o).min().unwrap_or(next_offset),
            }
        });
        let mut invocation = self.script.prepare_invoke();
        let route = keys.job_offset(self.name(), partition);
        invocation
            .key(&route)
            .key(keys.job_epoch(self.name(), partition))
            .key(keys.job_watermark(self.name(), partition));
        for key in self.job.partition_keys(keys, partition) {
            invocation.key(key);
        }
        invocation
            .arg(epoch)
            .arg(next_offset)
            .arg(watermark.map(|w| w.to_string()).unwrap_or_default())
            .arg(&records.args);
        Call {
            job: self,
            checkpoint: Invocation {
                script: &self.script,
                invocation,
                route,
            },
            epoch: epoch.to_owned(),
            next_offset,
            records: records.len() + steps.as_ref().map_or(0, |s| s.ops.len()),
            steps,
        }
    }
}

/// A stepped job's part of a call: its first step's operations.
#[derive(Debug)]
struct Stepped {
    ops: Vec<Routed>,
    partition: u32,
    committed: i64,
}

/// One job's script call for one partition batch, ready to send.
pub struct Call<'a> {
    job: &'a JobScript,
    /// The partition script: the job's writes (a partition job) or only its checkpoint.
    checkpoint: Invocation<'a>,
    epoch: String,
    next_offset: i64,
    records: usize,
    steps: Option<Stepped>,
}

impl Call<'_> {
    /// Sends this call alone; returns its outcome and the number of records written.
    pub fn invoke(
        &self,
        con: &mut dyn Scripts,
        keys: &Keyspace,
    ) -> redis::RedisResult<(Outcome, usize)> {
        apply_all(con, keys, std::slice::from_ref(self)).map(|mut o| o.remove(0))
    }
}

impl std::fmt::Debug for Call<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("job", &self.job.name())
            .field("records", &self.records)
            .finish()
    }
}

/// Sends `calls` and returns each one's outcome and records written, in order.
///
/// Stepped jobs' slot-local updates go first, step by step ([`run_steps`]); then every call's
/// partition script in one round trip per node. Each script stands alone (its own epoch check,
/// offset and writes), so one that is fenced or already applied does not affect the others,
/// and sending them all again after an error changes nothing that was applied. A stepped
/// job's checkpoint is sent only once all its steps are applied.
pub fn apply_all(
    con: &mut dyn Scripts,
    keys: &Keyspace,
    calls: &[Call<'_>],
) -> redis::RedisResult<Vec<(Outcome, usize)>> {
    let mut fenced = vec![false; calls.len()];
    for (i, call) in calls.iter().enumerate() {
        let Some(steps) = &call.steps else { continue };
        // A worker that already lost the partition writes no slot at all. (One that loses it
        // while its steps run is refused by every slot the new owner has reached, and writes
        // elsewhere only what the new owner would write there, which it then skips.)
        let epoch_key = keys.job_epoch(call.job.name(), steps.partition);
        let current: Option<String> = redis::cmd("GET")
            .arg(&epoch_key)
            .query(con.for_key(&epoch_key)?)?;
        if current.as_deref() != Some(call.epoch.as_str()) {
            fenced[i] = true;
            continue;
        }
        if !run_steps(con, keys, call, steps)? {
            fenced[i] = true;
        }
    }
    let pending: Vec<&Invocation<'_>> = calls
        .iter()
        .zip(&fenced)
        .filter(|(_, f)| !**f)
        .map(|(c, _)| &c.checkpoint)
        .collect();
    let mut codes = con.run_scripts(&pending)?.into_iter();
    calls
        .iter()
        .zip(fenced)
        .map(|(call, fenced)| {
            if fenced {
                return Ok((Outcome::Fenced, call.records));
            }
            let code: i64 = redis::from_redis_value(codes.next().expect("one reply per call"))?;
            Ok((Outcome::from_code(code), call.records))
        })
        .collect()
}

/// Applies a stepped job's batch: its first step's operations grouped by hash tag, one
/// slot-local update per tag (pipelined per node), then what they emitted, step after step,
/// until nothing is emitted. Returns false when a slot refused the worker's epoch.
///
/// Why this is exactly once, per slot: an update applies, in one script, its operations at or
/// after the offset its slot's record holds for this job, partition and step, and moves that
/// record to the batch's end; a redelivered update finds the record past it and applies
/// nothing. What an applied update emitted stays in the slot's outbox until the partition's
/// checkpoint passes it, and a redelivered update returns it, so the next step receives the
/// same operations whether the first try got that far or not. The checkpoint moves only after
/// the last step, so a crash anywhere replays the batch, and every slot skips what it has.
fn run_steps(
    con: &mut dyn Scripts,
    keys: &Keyspace,
    call: &Call<'_>,
    steps: &Stepped,
) -> redis::RedisResult<bool> {
    let job = call.job;
    let script = job
        .slot_script
        .as_ref()
        .expect("a stepped job has a slot script");
    let router = job.job.steps().expect("a stepped job has steps");
    let mut ops: Vec<Routed> = steps.ops.clone();
    let mut step = 1u32;
    while !ops.is_empty() {
        if step > MAX_STEPS {
            return Err(redis::RedisError::from((
                redis::ErrorKind::Client,
                "a stepped job kept emitting",
                format!("job {} emitted past step {MAX_STEPS}", job.name()),
            )));
        }
        // Per tag: its keys and its operations in offset order (a stable sort keeps the order
        // of one event's operations).
        let mut by_tag: BTreeMap<&str, (Vec<&str>, Vec<&Routed>)> = BTreeMap::new();
        for op in &ops {
            let entry = by_tag.entry(op.tag.as_str()).or_default();
            for key in &op.keys {
                if !entry.0.contains(&key.as_str()) {
                    entry.0.push(key);
                }
            }
            entry.1.push(op);
        }
        let field = format!("{}:{}:{step}", job.name(), steps.partition);
        let invocations: Vec<Invocation<'_>> = by_tag
            .into_iter()
            .map(|(tag, (tag_keys, mut tag_ops))| {
                tag_ops.sort_by_key(|op| op.offset);
                let route = keys.slot_applied(tag);
                let mut invocation = script.prepare_invoke();
                invocation.key(&route);
                for key in tag_keys {
                    invocation.key(key);
                }
                invocation
                    .arg(&field)
                    .arg(&call.epoch)
                    .arg(call.next_offset)
                    .arg(steps.committed);
                for op in tag_ops {
                    invocation.arg(op.offset).arg(&op.op);
                }
                Invocation {
                    script,
                    invocation,
                    route,
                }
            })
            .collect();
        let refs: Vec<&Invocation<'_>> = invocations.iter().collect();
        let replies = con.run_scripts(&refs)?;
        let mut emitted = Vec::new();
        for reply in replies {
            let reply: Vec<redis::Value> = redis::from_redis_value(reply)?;
            let mut fields = reply.into_iter();
            let code: i64 = redis::from_redis_value(fields.next().unwrap_or(redis::Value::Nil))?;
            if code == 0 {
                return Ok(false);
            }
            fields.next();
            for value in fields {
                let m: String = redis::from_redis_value(value)?;
                let parsed = m.split_once('|').and_then(|(head, op)| {
                    let offset = head.split_once(':')?.0.parse::<i64>().ok()?;
                    Some((offset, op))
                });
                let Some((offset, op)) = parsed else {
                    return Err(bad_emit(job.name(), &m, "not <offset>:<seq>|<json>"));
                };
                emitted.push(
                    router
                        .route(keys, offset, op)
                        .map_err(|e| bad_emit(job.name(), &m, &e))?,
                );
            }
        }
        ops = emitted;
        step += 1;
    }
    Ok(true)
}

fn bad_emit(job: &str, emitted: &str, why: &str) -> redis::RedisError {
    redis::RedisError::from((
        redis::ErrorKind::Client,
        "a stepped job emitted an operation its router cannot read",
        format!("job {job}: {why}: {emitted}"),
    ))
}
