-- The engagement job: post counters, affinity, content preference, negative feedback, rollups.

local FIRST_HOUR = 3600000

-- Whether this is the first delivery of an increment-only event of `actor` (the actor's
-- events arrive in order, so ids older than the window behind this one can go). The trim runs
-- at every new event, so what is remembered does not depend on where batches begin.
local function first_time(actor, eid, ts)
  local key = k_engagement_seen(actor)
  if redis.call('ZADD', key, 'NX', ts, eid) == 0 then return false end
  redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. (ts - DEDUPE_MS))
  return true
end

-- The affinity term of `weight` at event time `ts` (see the module documentation).
local function term(weight, ts)
  return weight * math.pow(2, (ts - AFFINITY_EPOCH) / AFFINITY_HALF_LIFE)
end

local function add_pref(user, post, points)
  local media = redis.call('HGET', k_post_counts(post), 'media_type')
  if media then
    redis.call('HINCRBY', k_content_pref(user), media, points)
  else
    redis.call('HINCRBY', k_post_pending_pref(post), user, points)
  end
end

-- An interaction (like, comment, share, save) counted (+1) or taken back (-1): in the post's
-- velocity and the creator's daily interactions when `counted`, in the accounts engaged,
-- affinity and preference when `acted`.
local function interaction(actor, post, author, ts, sign, weight, points, counted, acted)
  local day = utc_day(ts)
  if counted then
    local counts = k_post_counts(post)
    local created = tonumber(redis.call('HGET', counts, 'created_at') or '')
    if created then
      if ts >= created and ts < created + FIRST_HOUR then
        redis.call('HINCRBY', counts, 'first_hour', sign)
      end
    else
      local early = k_post_early(post)
      if redis.call('HINCRBY', early, ts, sign) == 0 then redis.call('HDEL', early, ts) end
    end
  end
  if actor == author then return end
  if counted then redis.call('HINCRBY', k_creator_daily(author, day), 'interactions', sign) end
  if not acted then return end
  if sign > 0 then
    redis.call('PFADD', k_creator_engaged(author, day), actor)
    local engaged = k_engaged_posts(actor)
    redis.call('ZADD', engaged, 'NX', ts, post)
    redis.call('ZREMRANGEBYRANK', engaged, 0, -(ENGAGED_CAP + 1))
  end
  redis.call('ZINCRBY', k_affinity(actor), sign * term(weight, ts), author)
  add_pref(actor, post, sign * points)
end

-- Per-(user, post) state kept as a set of users (likes, saves): on or off.
local function toggle(set_key, field, on, actor, post, author, ts, weight, points)
  local since = redis.call('ZSCORE', set_key, actor)
  local counts = k_post_counts(post)
  if on then
    if since then return end
    redis.call('ZADD', set_key, ts, actor)
    redis.call('HSET', counts, field, redis.call('ZCARD', set_key))
    interaction(actor, post, author, ts, 1, weight, points, true, true)
  else
    if not since then return end
    redis.call('ZREM', set_key, actor)
    redis.call('HSET', counts, field, redis.call('ZCARD', set_key))
    -- The like's own term goes, at the like's time.
    interaction(actor, post, author, tonumber(since), -1, weight, points, true, true)
  end
end

local function apply(a, i)
  local kind, actor, ts_s, eid = a[i], a[i + 1], a[i + 2], a[i + 3]
  local post, author = a[i + 4], a[i + 5]
  local day = utc_day(tonumber(ts_s))
  local ts = tonumber(ts_s)
  local counts = k_post_counts(post)
  if kind == 'pc' then
    if redis.call('HSETNX', counts, 'created_at', ts_s) == 0 then return end
    local media = a[i + 6]
    redis.call('HSET', counts, 'media_type', media, 'author', author)
    local early = redis.call('HGETALL', k_post_early(post))
    for j = 1, #early, 2 do
      local t = tonumber(early[j])
      if t >= ts and t < ts + FIRST_HOUR then
        redis.call('HINCRBY', counts, 'first_hour', early[j + 1])
      end
    end
    redis.call('DEL', k_post_early(post))
    local pending = redis.call('HGETALL', k_post_pending_pref(post))
    for j = 1, #pending, 2 do
      redis.call('HINCRBY', k_content_pref(pending[j]), media, pending[j + 1])
    end
    redis.call('DEL', k_post_pending_pref(post))
  elseif kind == 'like' or kind == 'unlike' then
    toggle(k_post_likers(post), 'likes', kind == 'like', actor, post, author, ts, 1, 3)
  elseif kind == 'save' or kind == 'unsave' then
    toggle(k_post_savers(post), 'saves', kind == 'save', actor, post, author, ts, 2, 4)
  elseif kind == 'cc' then
    local comments = k_post_comments(post)
    local comment = a[i + 6]
    local was = redis.call('HGET', comments, comment)
    if was then
      -- A duplicate, or deleted before its creation arrived: that delete counts when it came
      -- from the commenter or the post's author.
      if string.sub(was, 1, 2) ~= '-:' then return end
      local deleter = string.sub(was, 3)
      if deleter == actor or deleter == author then
        -- Commenting was still an act of the commenter's, whoever removed it.
        redis.call('HSET', comments, comment, '-')
        interaction(actor, post, author, ts, 1, 2, 4, false, true)
        return
      end
    end
    redis.call('HSET', comments, comment, ts_s .. ':' .. actor)
    redis.call('HINCRBY', counts, 'comments', 1)
    interaction(actor, post, author, ts, 1, 2, 4, true, true)
  elseif kind == 'cd' then
    local comments = k_post_comments(post)
    local comment = a[i + 6]
    local was = redis.call('HGET', comments, comment)
    if not was then
      -- Not created yet here: remember who deleted it; the creation decides.
      redis.call('HSET', comments, comment, '-:' .. actor)
      return
    end
    if was == '-' or string.sub(was, 1, 2) == '-:' then return end
    local at_s, commenter = string.match(was, '^([^:]+):(.+)$')
    -- Only the commenter or the post's author deletes a comment.
    if actor ~= commenter and actor ~= author then return end
    redis.call('HSET', comments, comment, '-')
    redis.call('HINCRBY', counts, 'comments', -1)
    -- The count goes; the act stays in affinity and preference (so the commenter's affinity is
    -- written only from the commenter's own partition, in one order).
    interaction(commenter, post, author, tonumber(at_s), -1, 2, 4, true, false)
  elseif kind == 'share' then
    if not first_time(actor, eid, ts) then return end
    redis.call('HINCRBY', counts, 'shares', 1)
    interaction(actor, post, author, ts, 1, 3, 5, true, true)
  elseif kind == 'view' then
    if not first_time(actor, eid, ts) then return end
    local dwell = tonumber(a[i + 6])
    redis.call('HINCRBY', counts, 'views', 1)
    redis.call('HINCRBY', counts, 'dwell_ms', a[i + 6])
    if a[i + 7] ~= '' then
      redis.call('HINCRBY', counts, 'watch_ms', a[i + 7])
      redis.call('HINCRBY', counts, 'watch_views', 1)
    end
    redis.call('PFADD', k_post_viewers(post), actor)
    if actor == author then return end
    redis.call('HINCRBY', k_creator_daily(author, day), 'views', 1)
    redis.call('PFADD', k_creator_reach(author, day), actor)
    if a[i + 7] ~= '' then
      redis.call('HINCRBY', k_creator_daily(author, day), 'watch_ms', a[i + 7])
      redis.call('HINCRBY', k_creator_daily(author, day), 'watch_views', 1)
    end
    local history = k_view_history(actor)
    redis.call('ZADD', history, ts, post .. ':' .. eid)
    redis.call('ZREMRANGEBYRANK', history, 0, -(HISTORY_CAP + 1))
    local points = 1
    if dwell >= 5000 then points = 2 end
    add_pref(actor, post, points)
    redis.call('ZINCRBY', k_affinity(actor), term(0.2 + 0.3 * math.min(dwell, 30000) / 30000, ts), author)
  elseif kind == 'hide' or kind == 'report' then
    if not first_time(actor, eid, ts) then return end
    redis.call('HINCRBY', counts, kind .. 's', 1)
    redis.call('ZINCRBY', k_negative_authors(actor), 1, author)
    local hidden = k_hidden_posts(actor)
    redis.call('ZADD', hidden, ts, post)
    redis.call('ZREMRANGEBYRANK', hidden, 0, -1001)
  elseif kind == 'pv' then
    if actor == author or not first_time(actor, eid, ts) then return end
    redis.call('ZINCRBY', k_affinity(actor), term(1, ts), author)
  elseif kind == 'follow' or kind == 'unfollow' then
    if not first_time(actor, eid, ts) then return end
    redis.call('HINCRBY', k_creator_daily(author, day), kind .. 's', 1)
  end
end
