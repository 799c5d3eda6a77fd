-- The stories job: live stories per author, views, close friends.

-- The author's stories set lives until its newest story expires.
local function expire_author_set(author)
  local key = k_stories(author)
  local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if #newest > 0 then redis.call('PEXPIREAT', key, tonumber(newest[2]) + STORY_TTL) end
end

local function apply(a, i)
  local kind, actor, ts_s, id = a[i], a[i + 1], a[i + 2], a[i + 3]
  local ts = tonumber(ts_s)
  if kind == 'sc' then
    local meta = k_story(id)
    if redis.call('HSETNX', meta, 'author', actor) == 0 then return end
    redis.call('HSET', meta, 'ts', ts_s, 'media_type', a[i + 4], 'media', a[i + 5],
      'audience', a[i + 6])
    redis.call('PEXPIREAT', meta, ts + STORY_TTL)
    if redis.call('EXISTS', k_story_viewers(id)) == 1 then
      redis.call('PEXPIREAT', k_story_viewers(id), ts + STORY_TTL)
    end
    local stories = k_stories(actor)
    redis.call('ZADD', stories, ts, id)
    expire_author_set(actor)
  elseif kind == 'sv' then
    local author = a[i + 4]
    if actor == author then return end
    local viewers = k_story_viewers(id)
    -- The first view counts; the viewer's own events arrive in order.
    redis.call('ZADD', viewers, 'NX', ts, actor)
    local created = tonumber(redis.call('HGET', k_story(id), 'ts') or '')
    -- A view comes after its story, so `ts` + 24 h is never early.
    redis.call('PEXPIREAT', viewers, (created or ts) + STORY_TTL)
    local seen = k_stories_seen(actor)
    redis.call('ZADD', seen, 'NX', ts, id)
    redis.call('ZREMRANGEBYSCORE', seen, '-inf', '(' .. (ts - 2 * STORY_TTL))
    redis.call('PEXPIREAT', seen, ts + STORY_TTL)
  elseif kind == 'cf+' then
    redis.call('SADD', k_close_friends(actor), id)
  elseif kind == 'cf-' then
    redis.call('SREM', k_close_friends(actor), id)
  end
end
