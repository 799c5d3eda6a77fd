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

-- Folds a pair's log: 'none' | 'pending' | 'active', the time it became so, and whether a
-- blocks b.
local function fold(entries, b)
  local state, since = 'none', nil
  local a_blocks, b_blocks = false, false
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
      a_blocks, state = true, 'none'
    elseif code == 'b' then
      b_blocks, state = true, 'none'
    elseif code == 'N' then
      a_blocks = false
    elseif code == 'n' then
      b_blocks = false
    end
  end
  return state, since, a_blocks
end

local function update_counts(user)
  redis.call('HSET', k_profile(user),
    'followers', redis.call('ZCARD', k_followers(user)),
    'following', redis.call('ZCARD', k_following(user)))
end

-- Hysteresis: on at CELEB_ON followers, off only below CELEB_OFF. Every follower's
-- celebrity_followees set follows the flag (the feed pulls from exactly that set). An author
-- who stops being a celebrity has their recent posts pushed to every follower, since nobody
-- pulls them any more.
local function check_celebrity(user)
  local n = redis.call('ZCARD', k_followers(user))
  local celebrity = is_celebrity(user)
  if not celebrity and n >= CELEB_ON then
    redis.call('HSET', k_profile(user), 'celebrity', '1')
    for _, f in ipairs(redis.call('ZRANGE', k_followers(user), 0, -1)) do
      redis.call('SADD', k_celebrity_followees(f), user)
    end
  elseif celebrity and n < CELEB_OFF then
    redis.call('HSET', k_profile(user), 'celebrity', '0')
    for _, f in ipairs(redis.call('ZRANGE', k_followers(user), 0, -1)) do
      redis.call('SREM', k_celebrity_followees(f), user)
      backfill(f, user)
    end
  end
end

-- Brings the derived sets of pair (a, b) in line with its folded log.
local function settle(a, b)
  local entries = parse_log(redis.call('HGET', k_relations(a), b))
  local state, since, a_blocks = fold(entries, b)
  if a_blocks then
    redis.call('SADD', k_blocks(a), b)
    redis.call('SADD', k_blocked_by(b), a)
  else
    redis.call('SREM', k_blocks(a), b)
    redis.call('SREM', k_blocked_by(b), a)
  end
  local was_active = redis.call('ZSCORE', k_followers(b), a)
  if state == 'active' then
    redis.call('ZADD', k_followers(b), since, a)
    redis.call('ZADD', k_following(a), since, b)
  elseif was_active then
    redis.call('ZREM', k_followers(b), a)
    redis.call('ZREM', k_following(a), b)
  end
  if state == 'pending' then
    redis.call('ZADD', k_follow_requests(b), since, a)
  else
    redis.call('ZREM', k_follow_requests(b), a)
  end
  update_counts(a)
  update_counts(b)
  check_celebrity(b)
  if state == 'active' and is_celebrity(b) then
    redis.call('SADD', k_celebrity_followees(a), b)
  else
    redis.call('SREM', k_celebrity_followees(a), b)
  end
  if state == 'active' and not was_active then
    if not is_celebrity(b) then backfill(a, b) end
  elseif state ~= 'active' and was_active then
    remove_author(a, b)
  end
end

local function add_relation(a, b, ts_s, eid, code)
  local key = k_relations(a)
  local entries = parse_log(redis.call('HGET', key, b))
  if not insert_entry(entries, ts_s, eid, code) then return end
  redis.call('HSET', key, b, format_log(entries))
  redis.call('SADD', k_inbound(b), a)
  settle(a, b)
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
    local key = k_last_active(user)
    local last = tonumber(redis.call('GET', key) or '0')
    if ts > last then
      redis.call('SET', key, a[i + 2])
      if redis.call('HGET', k_profile(user), 'stale') == '1' then rebuild(user) end
    end
  end
end
