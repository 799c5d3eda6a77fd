-- Shared by every job script. Ids are decimal strings; times are ms as Lua numbers (exact below
-- 2^53). Keys come from the k_* functions generated from the schema crate's keyspace.

-- Is (ts, eid) after (ts2, eid2)? Ties of event time are broken by event id.
local function after(ts, eid, ts2, eid2)
  if ts ~= ts2 then return ts > ts2 end
  return eid > eid2
end

local function is_celebrity(user)
  return redis.call('HGET', k_profile(user), 'celebrity') == '1'
end

local function trim_timeline(user)
  redis.call('ZREMRANGEBYRANK', k_timeline(user), 0, -(TIMELINE_CAP + 1))
end

-- Followers' last-active times are read in chunks of this many keys per MGET.
local MGET_CHUNK = 1000

-- A new post into the timelines of `followers`: one MGET per chunk of followers for their
-- last-active times, then per active follower an add and a trim. A follower inactive at `ts`
-- is skipped and marked stale; their timeline is rebuilt when they return (and served by pull
-- until then).
local function push_post(followers, author, post, ts)
  local member = author .. ':' .. post
  for from = 1, #followers, MGET_CHUNK do
    local to = math.min(from + MGET_CHUNK - 1, #followers)
    local keys = {}
    for j = from, to do keys[#keys + 1] = k_last_active(followers[j]) end
    local lasts = redis.call('MGET', unpack(keys))
    for j = from, to do
      local follower = followers[j]
      if tonumber(lasts[j - from + 1] or '0') >= ts - INACTIVE_MS then
        local key = k_timeline(follower)
        redis.call('ZADD', key, ts, member)
        redis.call('ZREMRANGEBYRANK', key, 0, -(TIMELINE_CAP + 1))
      else
        redis.call('HSET', k_profile(follower), 'stale', '1')
      end
    end
  end
end

-- The author's recent posts into one follower's timeline (follow, return, celebrity no more).
local function backfill(follower, author)
  local posts = redis.call('ZRANGE', k_recent_posts(author), 0, -1, 'WITHSCORES')
  if #posts == 0 then return end
  local args = {}
  for j = 1, #posts, 2 do
    args[#args + 1] = posts[j + 1]
    args[#args + 1] = author .. ':' .. posts[j]
  end
  redis.call('ZADD', k_timeline(follower), unpack(args))
  trim_timeline(follower)
end

-- Every post of `author` out of `follower`'s timeline (unfollow, block).
local function remove_author(follower, author)
  local key = k_timeline(follower)
  local prefix = author .. ':'
  local members = redis.call('ZRANGE', key, 0, -1)
  local gone = {}
  for _, m in ipairs(members) do
    if string.sub(m, 1, #prefix) == prefix then gone[#gone + 1] = m end
  end
  if #gone > 0 then redis.call('ZREM', key, unpack(gone)) end
end

-- A returning user's timeline, regenerated from the recent posts of everyone they follow.
local function rebuild(user)
  local followees = redis.call('ZRANGE', k_following(user), 0, -1)
  for _, author in ipairs(followees) do
    if not is_celebrity(author) then backfill(user, author) end
  end
  redis.call('HDEL', k_profile(user), 'stale')
end

-- YYYY-MM-DD (UTC) of a time in ms (Howard Hinnant's civil_from_days).
local function utc_day(ts)
  local z = math.floor(ts / 86400000) + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp + 3
  if mp >= 10 then m = mp - 9 end
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  return string.format('%04d-%02d-%02d', y, m, d)
end
