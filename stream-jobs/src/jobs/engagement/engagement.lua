-- The engagement job as slot-local operations (the steps are in mod.rs). Every key is built by
-- a k_ function, which refuses a name the update did not declare.

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

-- Post's slot: an interaction at `ts` counted (+1) or taken back (-1) in the first-hour
-- velocity, or held in `post_early` until the post's creation says when its first hour is.
local function velocity(post, ts, sign)
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

-- Post's slot: `user`'s preference points for the post's media type go to the user's slot,
-- or wait here until the post's creation names the media type.
local function pref(post, user, points, emit)
  local media = redis.call('HGET', k_post_counts(post), 'media_type')
  if media then
    emit({op = 'pref', user = user, media = media, points = points})
  else
    redis.call('HINCRBY', k_post_pending_pref(post), user, points)
  end
end

-- Post's slot: an interaction (`kind` likes, comments, shares or saves) counted (+1) or taken
-- back (-1): in the post's velocity and the creator's daily interactions (in all and by kind)
-- when `counted`, in the accounts engaged, affinity and preference when `acted`.
local function interaction(post, actor, author, ts, sign, weight, points, kind, counted, acted,
                           emit)
  if counted then velocity(post, ts, sign) end
  if actor == author then return end
  local add = {}
  if counted then
    add.interactions = sign
    add[kind] = sign
  end
  local creator = {op = 'creator', creator = author, day = utc_day(ts), add = add}
  if acted and sign > 0 then creator.engaged = actor end
  if counted or creator.engaged then emit(creator) end
  if not acted then return end
  emit({op = 'act', actor = actor, author = author, post = post, ts = ts, sign = sign,
        weight = weight})
  pref(post, actor, sign * points, emit)
end

-- Post's slot: per-(user, post) state kept as a set of users (likes, saves): on or off.
local function toggle(o, emit)
  local set_key, weight, points = k_post_likers(o.post), 1, 3
  if o.set == 'saves' then set_key, weight, points = k_post_savers(o.post), 2, 4 end
  local since = redis.call('ZSCORE', set_key, o.actor)
  local counts = k_post_counts(o.post)
  if o.on then
    if since then return end
    redis.call('ZADD', set_key, o.ts, o.actor)
    redis.call('HSET', counts, o.set, redis.call('ZCARD', set_key))
    interaction(o.post, o.actor, o.author, o.ts, 1, weight, points, o.set, true, true, emit)
  else
    if not since then return end
    redis.call('ZREM', set_key, o.actor)
    redis.call('HSET', counts, o.set, redis.call('ZCARD', set_key))
    -- The like's own term goes, at the like's time.
    interaction(o.post, o.actor, o.author, tonumber(since), -1, weight, points, o.set, true, true,
                emit)
  end
end

local post_ops = {}

function post_ops.created(o, emit)
  local counts = k_post_counts(o.post)
  if redis.call('HSETNX', counts, 'created_at', o.ts) == 0 then return end
  redis.call('HSET', counts, 'media_type', o.media, 'author', o.author)
  local early = redis.call('HGETALL', k_post_early(o.post))
  for j = 1, #early, 2 do
    local t = tonumber(early[j])
    if t >= o.ts and t < o.ts + FIRST_HOUR then
      redis.call('HINCRBY', counts, 'first_hour', early[j + 1])
    end
  end
  redis.call('DEL', k_post_early(o.post))
  local pending = redis.call('HGETALL', k_post_pending_pref(o.post))
  for j = 1, #pending, 2 do
    emit({op = 'pref', user = pending[j], media = o.media, points = tonumber(pending[j + 1])})
  end
  redis.call('DEL', k_post_pending_pref(o.post))
end

post_ops.toggle = toggle

function post_ops.comment(o, emit)
  local comments = k_post_comments(o.post)
  local was = redis.call('HGET', comments, o.comment)
  if was then
    -- A duplicate, or deleted before its creation arrived: those deletes count when one came
    -- from the commenter or the post's author.
    if string.sub(was, 1, 2) ~= '-:' then return end
    local deleters = ',' .. string.sub(was, 3) .. ','
    if string.find(deleters, ',' .. o.actor .. ',', 1, true)
        or string.find(deleters, ',' .. o.author .. ',', 1, true) then
      -- Commenting was still an act of the commenter's, whoever removed it.
      redis.call('HSET', comments, o.comment, '-')
      interaction(o.post, o.actor, o.author, o.ts, 1, 2, 4, 'comments', false, true, emit)
      return
    end
  end
  redis.call('HSET', comments, o.comment, string.format('%d:%s', o.ts, o.actor))
  redis.call('HINCRBY', k_post_counts(o.post), 'comments', 1)
  interaction(o.post, o.actor, o.author, o.ts, 1, 2, 4, 'comments', true, true, emit)
end

function post_ops.comment_deleted(o, emit)
  local comments = k_post_comments(o.post)
  local was = redis.call('HGET', comments, o.comment)
  if not was then
    -- Not created yet here: remember who deleted it; the creation decides.
    redis.call('HSET', comments, o.comment, '-:' .. o.actor)
    return
  end
  if string.sub(was, 1, 2) == '-:' then
    -- More deletes before the creation: all are remembered, so which one came first does
    -- not matter.
    if not string.find(',' .. string.sub(was, 3) .. ',', ',' .. o.actor .. ',', 1, true) then
      redis.call('HSET', comments, o.comment, was .. ',' .. o.actor)
    end
    return
  end
  if was == '-' then return end
  local at_s, commenter = string.match(was, '^([^:]+):(.+)$')
  -- Only the commenter or the post's author deletes a comment.
  if o.actor ~= commenter and o.actor ~= o.author then return end
  redis.call('HSET', comments, o.comment, '-')
  redis.call('HINCRBY', k_post_counts(o.post), 'comments', -1)
  -- The count goes; the act stays in affinity and preference (so the commenter's affinity is
  -- written only from the commenter's own partition, in one order).
  interaction(o.post, commenter, o.author, tonumber(at_s), -1, 2, 4, 'comments', true, false, emit)
end

function post_ops.shared(o, emit)
  redis.call('HINCRBY', k_post_counts(o.post), 'shares', 1)
  interaction(o.post, o.actor, o.author, o.ts, 1, 3, 5, 'shares', true, true, emit)
end

function post_ops.viewed(o, emit)
  local counts = k_post_counts(o.post)
  redis.call('HINCRBY', counts, 'views', 1)
  redis.call('HINCRBY', counts, 'dwell_ms', o.dwell)
  if o.watch then
    redis.call('HINCRBY', counts, 'watch_ms', o.watch)
    redis.call('HINCRBY', counts, 'watch_views', 1)
  end
  redis.call('PFADD', k_post_viewers(o.post), o.actor)
  if o.actor == o.author then return end
  local add = {views = 1, ['views_' .. o.surface] = 1}
  if o.watch then
    add.watch_ms = o.watch
    add.watch_views = 1
  end
  emit({op = 'creator', creator = o.author, day = utc_day(o.ts), add = add, reach = o.actor,
        surface = o.surface})
  local points = 1
  if o.dwell >= 5000 then points = 2 end
  pref(o.post, o.actor, points, emit)
  emit({op = 'affinity', actor = o.actor, author = o.author, ts = o.ts, dwell = o.dwell})
end

function post_ops.bump(o, emit)
  redis.call('HINCRBY', k_post_counts(o.post), o.counter, 1)
end

local user_ops = {}

-- Actor's slot, first step: increment-only events count once per event id.

function user_ops.share(o, emit)
  if not first_time(o.actor, o.eid, o.ts) then return end
  emit({op = 'shared', post = o.post, actor = o.actor, author = o.author, ts = o.ts})
end

function user_ops.view(o, emit)
  if not first_time(o.actor, o.eid, o.ts) then return end
  emit({op = 'viewed', post = o.post, actor = o.actor, author = o.author, ts = o.ts,
        dwell = o.dwell, watch = o.watch, surface = o.surface})
  if o.actor == o.author then return end
  local history = k_view_history(o.actor)
  redis.call('ZADD', history, o.ts, o.post .. ':' .. o.eid)
  redis.call('ZREMRANGEBYRANK', history, 0, -(HISTORY_CAP + 1))
end

function user_ops.negative(o, emit)
  if not first_time(o.actor, o.eid, o.ts) then return end
  emit({op = 'bump', post = o.post, counter = o.counter})
  redis.call('ZINCRBY', k_negative_authors(o.actor), 1, o.author)
  local hidden = k_hidden_posts(o.actor)
  redis.call('ZADD', hidden, o.ts, o.post)
  redis.call('ZREMRANGEBYRANK', hidden, 0, -1001)
end

function user_ops.profile_view(o, emit)
  if o.actor == o.author or not first_time(o.actor, o.eid, o.ts) then return end
  emit({op = 'creator', creator = o.author, day = utc_day(o.ts), add = {profile_visits = 1}})
  -- Two steps on, with every other affinity term (see user_ops.affinity).
  emit({op = 'relay', actor = o.actor,
        next = {op = 'affinity', actor = o.actor, author = o.author, ts = o.ts, weight = 1}})
end

function user_ops.follow(o, emit)
  if not first_time(o.actor, o.eid, o.ts) then return end
  emit({op = 'creator', creator = o.author, day = utc_day(o.ts), add = {[o.counter] = 1}})
end

function user_ops.relay(o, emit)
  emit(o.next)
end

-- Actor's slot, emitted by the post's: an interaction's affinity and engaged history.
function user_ops.act(o, emit)
  if o.sign > 0 then
    local engaged = k_engaged_posts(o.actor)
    redis.call('ZADD', engaged, 'NX', o.ts, o.post)
    redis.call('ZREMRANGEBYRANK', engaged, 0, -(ENGAGED_CAP + 1))
  end
  redis.call('ZINCRBY', k_affinity(o.actor), o.sign * term(o.weight, o.ts), o.author)
end

-- Actor's slot, step 3: a view's or profile view's affinity term. Every term of an actor's
-- affinity is added at this step, in offset order, so the float sums come out bit for bit the
-- same however the log was cut into batches.
function user_ops.affinity(o, emit)
  local weight = o.weight
  if not weight then weight = 0.2 + 0.3 * math.min(o.dwell, 30000) / 30000 end
  redis.call('ZINCRBY', k_affinity(o.actor), term(weight, o.ts), o.author)
end

function user_ops.pref(o, emit)
  redis.call('HINCRBY', k_content_pref(o.user), o.media, o.points)
end

-- Creator's slot: the daily rollup and the day's distinct accounts.
function user_ops.creator(o, emit)
  local daily = k_creator_daily(o.creator, o.day)
  for field, n in pairs(o.add) do redis.call('HINCRBY', daily, field, n) end
  if o.reach then redis.call('PFADD', k_creator_reach(o.creator, o.day), o.reach) end
  if o.surface then
    redis.call('PFADD', k_creator_surface_reach(o.creator, o.day, o.surface), o.reach)
  end
  if o.engaged then redis.call('PFADD', k_creator_engaged(o.creator, o.day), o.engaged) end
end

local function apply_op(o, emit)
  local handler = post_ops[o.op] or user_ops[o.op]
  if not handler then error('engagement: unknown operation ' .. tostring(o.op)) end
  handler(o, emit)
end
