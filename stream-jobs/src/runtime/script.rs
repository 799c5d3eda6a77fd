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

use aperture_schema::keys::Keyspace;
use aperture_schema::{Config, Envelope};

use crate::jobs::{Job, Records, library};

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
        let script = redis::Script::new(&compose(&config.keyspace(), &library(config), &job.lua()));
        let lateness = job.allowed_lateness(config);
        JobScript {
            job,
            script,
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
        con: &mut dyn redis::ConnectionLike,
        keys: &Keyspace,
        partition: u32,
        epoch: &str,
        events: &[(i64, &Envelope)],
        next_offset: i64,
    ) -> redis::RedisResult<(Outcome, usize)> {
        self.call(keys, partition, epoch, events, next_offset, None)
            .invoke(con)
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
        let mut invocation = self.script.prepare_invoke();
        invocation
            .key(keys.job_offset(self.name(), partition))
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
            script: &self.script,
            invocation,
            records: records.len(),
        }
    }
}

/// One job's script call for one partition batch, ready to send.
pub struct Call<'a> {
    script: &'a redis::Script,
    invocation: redis::ScriptInvocation<'a>,
    records: usize,
}

impl Call<'_> {
    /// Sends this call alone (loading the script if the server does not know it); returns
    /// its outcome and the number of records written.
    pub fn invoke(
        &self,
        con: &mut dyn redis::ConnectionLike,
    ) -> redis::RedisResult<(Outcome, usize)> {
        let code: i64 = self.invocation.invoke(con)?;
        Ok((Outcome::from_code(code), self.records))
    }
}

impl std::fmt::Debug for Call<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("script", &self.script.get_hash())
            .field("records", &self.records)
            .finish()
    }
}

/// Sends `calls` in one round trip and returns each one's outcome and records written, in
/// order. Each script stands alone (its own epoch check, offset and writes), so one that is
/// fenced or already applied does not affect the others, and sending them all again after an
/// error changes nothing that was applied.
///
/// A script the server does not know (it restarted, or its scripts were flushed) fails the
/// round trip with NOSCRIPT; the scripts are then loaded and the calls sent once more. Any
/// other error is returned as it is.
pub fn apply_all(
    con: &mut dyn redis::ConnectionLike,
    calls: &[Call<'_>],
) -> redis::RedisResult<Vec<(Outcome, usize)>> {
    let mut pipe = redis::pipe();
    for call in calls {
        pipe.invoke_script(&call.invocation);
    }
    let codes: Vec<i64> = match pipe.query(con) {
        Ok(codes) => codes,
        Err(error) if names_unknown_script(&error) => {
            let mut load = redis::pipe();
            for call in calls {
                load.load_script(call.script);
            }
            load.query::<()>(con)?;
            pipe.query(con)?
        }
        Err(error) => return Err(error),
    };
    Ok(codes
        .into_iter()
        .zip(calls)
        .map(|(code, call)| (Outcome::from_code(code), call.records))
        .collect())
}

/// Whether any command behind `error` failed because the server does not know its script.
fn names_unknown_script(error: &redis::RedisError) -> bool {
    error.clone().into_server_errors().is_some_and(|errors| {
        errors
            .iter()
            .any(|(_, e)| e.kind() == Some(redis::ServerErrorKind::NoScript))
    })
}
