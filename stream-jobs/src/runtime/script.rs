//! The one Redis script per job and partition batch: fence check, offset check, the job's
//! writes, offset store — atomically.
//!
//! A job contributes Lua that defines `apply(a, i)` (the event's fields are `a[i]`, `a[i+1]`, …
//! as the job's [`Job::encode`](crate::jobs::Job::encode) wrote them). The runtime wraps it:
//!
//! ```text
//! KEYS[1] offset key, KEYS[2] epoch key
//! ARGV[1] worker epoch, ARGV[2] next offset after the batch,
//! then per event: offset, field count, fields…
//! ```
//!
//! Redis runs a script to completion without interleaving other commands, so the job's writes
//! and the new offset become visible together. A worker whose epoch is no longer the stored one
//! (another worker took the partition) writes nothing; an event below the stored offset (already
//! applied) is skipped, so redelivery changes nothing.

use aperture_schema::Envelope;
use aperture_schema::config::FanoutConfig;
use aperture_schema::keys::Keyspace;

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
local i = 3
local n_args = #ARGV
while i <= n_args do
  local offset = tonumber(ARGV[i])
  local n = tonumber(ARGV[i + 1])
  if offset >= applied then apply(ARGV, i + 2) end
  i = i + 2 + n
end
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

/// A job with its composed script, ready to apply batches.
pub struct JobScript {
    job: Box<dyn Job>,
    script: redis::Script,
}

impl std::fmt::Debug for JobScript {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobScript")
            .field("job", &self.job.name())
            .finish()
    }
}

impl JobScript {
    pub fn new(job: Box<dyn Job>, keys: &Keyspace, fanout: &FanoutConfig) -> JobScript {
        let script = redis::Script::new(&compose(keys, &library(fanout), &job.lua()));
        JobScript { job, script }
    }

    pub fn name(&self) -> &'static str {
        self.job.name()
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
        let mut records = Records::default();
        self.job.encode(events, &mut records);
        let code: i64 = self
            .script
            .key(keys.job_offset(self.name(), partition))
            .key(keys.job_epoch(self.name(), partition))
            .arg(epoch)
            .arg(next_offset)
            .arg(&records.args)
            .invoke(con)?;
        Ok((Outcome::from_code(code), records.len()))
    }
}
