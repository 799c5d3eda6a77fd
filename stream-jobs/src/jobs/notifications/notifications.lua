-- The notifications job: batches per (recipient, post, type, window).

-- Keeps the newest NOTIFY_KEPT batches of the recipient's list.
local function trim_list(recipient, list)
  local over = redis.call('ZCARD', list) - NOTIFY_KEPT
  if over > 0 then
    for _, old in ipairs(redis.call('ZRANGE', list, 0, over - 1)) do
      redis.call('DEL', k_notification_batch(recipient, old))
    end
    redis.call('ZREMRANGEBYRANK', list, 0, over - 1)
  end
end

-- Sets a batch's place in the recipient's list from its latest actor, or drops an empty one.
local function settle_batch(recipient, batch)
  local key = k_notification_batch(recipient, batch)
  local latest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  local list = k_notifications(recipient)
  if #latest == 0 then
    redis.call('ZREM', list, batch)
    return
  end
  if redis.call('ZADD', list, latest[2], batch) == 1 then trim_list(recipient, list) end
end

local function batch_of(kind, post, ts)
  return kind .. ':' .. post .. ':' .. math.floor(ts / NOTIFY_WINDOW)
end

local function notify(recipient, kind, post, actor, ts)
  if recipient == actor then return end
  local batch = batch_of(kind, post, ts)
  local key = k_notification_batch(recipient, batch)
  -- An actor's time in a batch is their latest event in it: GT keeps a later time, and CH
  -- reports whether the actor was added or moved (nothing else changes if not).
  if redis.call('ZADD', key, 'GT', 'CH', ts, actor) == 0 then return end
  -- A batch's place is its latest actor's time, and an actor was only added or moved later:
  -- the place moves to `ts` if that is later (or the batch is new to the list).
  local list = k_notifications(recipient)
  if redis.call('ZADD', list, 'GT', ts, batch) == 1 then trim_list(recipient, list) end
end

local function apply(a, i)
  local kind, actor, ts_s, post, other = a[i], a[i + 1], a[i + 2], a[i + 3], a[i + 4]
  local ts = tonumber(ts_s)
  if kind == 'like' then
    if redis.call('SADD', k_post_like_notified(post), actor) == 0 then return end
    notify(other, kind, post, actor, ts)
  elseif kind == 'comment' or kind == 'follow' then
    notify(other, kind, post, actor, ts)
  elseif kind == 'unlike' then
    if redis.call('SREM', k_post_like_notified(post), actor) == 0 then return end
    -- Retracts the like only while it is in the same window.
    local batch = batch_of('like', post, ts)
    if redis.call('ZREM', k_notification_batch(other, batch), actor) == 1 then
      settle_batch(other, batch)
    end
  elseif kind == 'mention' then
    local recipient = redis.call('GET', k_mention_user(other))
    if recipient then
      notify(recipient, 'mention', post, actor, ts)
    else
      redis.call('HSET', k_pending_mentions(other), actor .. ':' .. post .. ':' .. ts_s, '1')
    end
  elseif kind == 'user' then
    local key = k_mention_user(other)
    if redis.call('SETNX', key, actor) == 0 then return end
    local pending = k_pending_mentions(other)
    for _, m in ipairs(redis.call('HKEYS', pending)) do
      local who, p, t = string.match(m, '^([^:]+):([^:]+):(.+)$')
      notify(actor, 'mention', p, who, tonumber(t))
    end
    redis.call('DEL', pending)
  end
end
