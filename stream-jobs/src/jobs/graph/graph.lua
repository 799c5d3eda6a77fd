-- The graph job: users, follows (requests, approvals), blocks, counts, last-active.
--
-- A pair (a follows b) is decided by the ordered log of the events about it, wherever they were
-- published: a's follow/unfollow (F/U), b's approval (A), a's block/unblock of b (B/N) and b's
-- block/unblock of a (b/n), plus b's `private` flag at the time of each follow. The log lives in
-- a's `relations` hash under b; every change re-folds it, so the state does not depend on the
-- order in which partitions were applied.

local function parse_log(s)
  local entries = {}
  if not s then return entries end
  for ts, eid, code in string.gmatch(s, '([^,;]+),([^,;]+),([^,;]+)') do
    entries[#entries + 1] = { tonumber(ts), ts, eid, code }
  end
  return entries
end

local function format_log(entries)
  local parts = {}
  for j, e in ipairs(entries) do parts[j] = e[2] .. ',' .. e[3] .. ',' .. e[4] end
  return table.concat(parts, ';')
end

-- Inserts an entry in (ts, eid) order; false when the event is already in the log.
local function insert_entry(entries, ts_s, eid, code)
  local ts = tonumber(ts_s)
  local pos = #entries + 1
  for j, e in ipairs(entries) do
    if e[3] == eid then return false end
    if pos > #entries and after(e[1], e[3], ts, eid) then pos = j end
  end
  table.insert(entries, pos, { ts, ts_s, eid, code })
  return true
end

-- The user's private flag just before (ts, eid); false for a user not (yet) known.
local function private_at(user, ts, eid)
  local hist = redis.call('ZRANGEBYSCORE', k_private_history(user), '-inf', ts, 'WITHSCORES')
  local best_ts, best_eid, value = nil, nil, false
  for j = 1, #hist, 2 do
    local member, s = hist[j], tonumber(hist[j + 1])
    local sep = string.find(member, '|', 1, true)
    local e, v = string.sub(member, 1, sep - 1), string.sub(member, sep + 1)
    if after(ts, eid, s, e) and (best_ts == nil or after(s, e, best_ts, best_eid)) then
      best_ts, best_eid, value = s, e, (v == '1')
    end
  end
  return value
end

-- Folds a pair's log: 'none' | 'pending' | 'active', the time it became so, whether a blocks
-- b, and whether a ever blocked b (only then can b be in a's blocks set).
local function fold(entries, b)
  local state, since = 'none', nil
  local a_blocks, b_blocks, ever_blocked = false, false, false
  for _, e in ipairs(entries) do
    local code = e[4]
    if code == 'F' then
      if state == 'none' and not a_blocks and not b_blocks then
        if private_at(b, e[1], e[3]) then state = 'pending' else state = 'active' end
        since = e[2]
      end
    elseif code == 'U' then
      state = 'none'
    elseif code == 'A' then
      if state == 'pending' then state, since = 'active', e[2] end
    elseif code == 'B' then
      a_blocks, ever_blocked, state = true, true, 'none'
    elseif code == 'b' then
      b_blocks, state = true, 'none'
    elseif code == 'N' then
      a_blocks = false
    elseif code == 'n' then
      b_blocks = false
    end
  end
  return state, since, a_blocks, ever_blocked
end

-- Hysteresis: on at CELEB_ON followers, off only below CELEB_OFF. Every follower's
-- celebrity_followees set follows the flag (the feed pulls from exactly that set). An author
-- who stops being a celebrity has their recent posts pushed to every follower, since nobody
-- pulls them any more. `n` is the user's follower count; returns whether the flag is on.
local function check_celebrity(user, n)
  local celebrity = is_celebrity(user)
  if not celebrity and n >= CELEB_ON then
    redis.call('HSET', k_profile(user), 'celebrity', '1')
    for _, f in ipairs(redis.call('ZRANGE', k_followers(user), 0, -1)) do
      redis.call('SADD', k_celebrity_followees(f), user)
    end
    return true
  elseif celebrity and n < CELEB_OFF then
    redis.call('HSET', k_profile(user), 'celebrity', '0')
    for _, f in ipairs(redis.call('ZRANGE', k_followers(user), 0, -1)) do
      redis.call('SREM', k_celebrity_followees(f), user)
      backfill(f, user)
    end
    return false
  end
  return celebrity
end

-- Brings the derived sets of pair (a, b) in line with its folded log.
--
-- Most events leave a pair's edge as it was (or change only its time), so everything that
-- depends on the edge alone is touched only when the edge comes or goes: the counts, the
-- celebrity flag (which moves with b's follower count only), a's celebrity_followees (which
-- holds b exactly while a follows b and b is a celebrity) and a's timeline.
local function settle(a, b, entries)
  entries = entries or parse_log(redis.call('HGET', k_relations(a), b))
  local state, since, a_blocks, ever_blocked = fold(entries, b)
  -- b is in a's blocks set only if a ever blocked b.
  if a_blocks then
    redis.call('SADD', k_blocks(a), b)
    redis.call('SADD', k_blocked_by(b), a)
  elseif ever_blocked then
    redis.call('SREM', k_blocks(a), b)
    redis.call('SREM', k_blocked_by(b), a)
  end
  -- Whether the edge came or went: ZADD counts a member added, ZREM one removed.
  local active = state == 'active'
  local changed
  if active then
    changed = redis.call('ZADD', k_followers(b), since, a) == 1
    redis.call('ZADD', k_following(a), since, b)
  else
    changed = redis.call('ZREM', k_followers(b), a) == 1
    if changed then redis.call('ZREM', k_following(a), b) end
  end
  if state == 'pending' then
    redis.call('ZADD', k_follow_requests(b), since, a)
  else
    redis.call('ZREM', k_follow_requests(b), a)
  end
  if not changed then return end
  -- The counts move with the sets they count, in the same script. A count back at zero goes,
  -- so whether the field exists does not depend on the order partitions were applied in (an
  -- edge can stand for a while in one order and never in another).
  local step = active and 1 or -1
  local followers = redis.call('HINCRBY', k_profile(b), 'followers', step)
  if followers == 0 then redis.call('HDEL', k_profile(b), 'followers') end
  if redis.call('HINCRBY', k_profile(a), 'following', step) == 0 then
    redis.call('HDEL', k_profile(a), 'following')
  end
  local celebrity = check_celebrity(b, followers)
  if active then
    if celebrity then
      redis.call('SADD', k_celebrity_followees(a), b)
    else
      backfill(a, b)
    end
  else
    redis.call('SREM', k_celebrity_followees(a), b)
    remove_author(a, b)
  end
end

local function add_relation(a, b, ts_s, eid, code)
  local key = k_relations(a)
  local entries = parse_log(redis.call('HGET', key, b))
  -- A pair with a log is already among b's inbound pairs.
  if #entries == 0 then redis.call('SADD', k_inbound(b), a) end
  if not insert_entry(entries, ts_s, eid, code) then return end
  redis.call('HSET', key, b, format_log(entries))
  settle(a, b, entries)
end

-- Last writer wins per profile field, by (ts, eid).
local function set_field(user, field, value, ts_s, eid)
  local key = k_profile(user)
  local stamp = redis.call('HGET', key, 's_' .. field)
  if stamp then
    local sep = string.find(stamp, '|', 1, true)
    if not after(tonumber(ts_s), eid, tonumber(string.sub(stamp, 1, sep - 1)), string.sub(stamp, sep + 1)) then
      return
    end
  end
  redis.call('HSET', key, field, value, 's_' .. field, ts_s .. '|' .. eid)
end

local function set_private(user, value, ts_s, eid)
  local added = redis.call('ZADD', k_private_history(user), ts_s, eid .. '|' .. value)
  set_field(user, 'private', value, ts_s, eid)
  if added == 1 then
    -- Follows decided under the old history may change: re-fold every pair aimed at the user.
    for _, a in ipairs(redis.call('SMEMBERS', k_inbound(user))) do settle(a, user) end
  end
end

local function apply(a, i)
  local kind = a[i]
  if kind == 'rel' then
    add_relation(a[i + 1], a[i + 2], a[i + 3], a[i + 4], a[i + 5])
  elseif kind == 'uc' then
    local user, ts_s, eid = a[i + 1], a[i + 2], a[i + 3]
    set_field(user, 'username', a[i + 4], ts_s, eid)
    set_field(user, 'created_at', ts_s, ts_s, eid)
    if a[i + 5] ~= '' then set_field(user, 'display_name', a[i + 5], ts_s, eid) end
    set_field(user, 'verified', a[i + 7], ts_s, eid)
    set_private(user, a[i + 6], ts_s, eid)
  elseif kind == 'uu' then
    local user, ts_s, eid = a[i + 1], a[i + 2], a[i + 3]
    if a[i + 4] == '1' then set_field(user, 'display_name', a[i + 5], ts_s, eid) end
    if a[i + 7] ~= '' then set_field(user, 'verified', a[i + 7], ts_s, eid) end
    if a[i + 6] ~= '' then set_private(user, a[i + 6], ts_s, eid) end
  elseif kind == 'act' then
    local user, ts = a[i + 1], tonumber(a[i + 2])
    -- Set, then put the old time back in the rare case it was later: a user's events mostly
    -- arrive in time order, so this is one command where a read and a write would be two.
    local key = k_last_active(user)
    local was = redis.call('SET', key, a[i + 2], 'GET')
    if ts > tonumber(was or '0') then
      if redis.call('HGET', k_profile(user), 'stale') == '1' then rebuild(user) end
    elseif was then
      redis.call('SET', key, was)
    else
      redis.call('DEL', key)
    end
  end
end
