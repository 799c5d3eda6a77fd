-- The trending job: hashtag counts in 5-minute and 1-hour buckets of event time.

local function count(tags, ts, author, post, sign)
  local fine = k_trend_bucket('5m', math.floor(ts / TREND_FINE) * TREND_FINE)
  local coarse = k_trend_bucket('1h', math.floor(ts / TREND_COARSE) * TREND_COARSE)
  local member = author .. ':' .. post
  for _, tag in ipairs(tags) do
    for _, bucket in ipairs({ fine, coarse }) do
      if redis.call('HINCRBY', bucket, tag, sign) <= 0 then redis.call('HDEL', bucket, tag) end
    end
    if sign > 0 then
      redis.call('ZADD', k_trend_posts(tag), ts, member)
    else
      redis.call('ZREM', k_trend_posts(tag), member)
    end
  end
end

local function apply(a, i)
  local kind, actor, ts_s, post = a[i], a[i + 1], a[i + 2], a[i + 3]
  local counts = k_post_counts(post)
  if kind == 'pc' then
    -- The post's tags and time, kept for its delete; a duplicate stops here.
    if redis.call('HSETNX', counts, 'trend_tags', a[i + 4]) == 0 then return end
    redis.call('HSET', counts, 'trend_at', ts_s, 'trend_author', actor)
    local since = tonumber(redis.call('GET', k_trend_since()) or '')
    if not since or tonumber(ts_s) < since then redis.call('SET', k_trend_since(), ts_s) end
    count(cjson.decode(a[i + 4]), tonumber(ts_s), actor, post, 1)
  elseif kind == 'pd' then
    local tags = redis.call('HGET', counts, 'trend_tags')
    -- Only the author deletes; a post without tags was never counted.
    if not tags or redis.call('HGET', counts, 'trend_author') ~= actor then return end
    if redis.call('HSETNX', counts, 'trend_deleted', '1') == 0 then return end
    count(cjson.decode(tags), tonumber(redis.call('HGET', counts, 'trend_at')), actor, post, -1)
  end
end
