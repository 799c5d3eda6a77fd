-- The pools job: recent posts per source partition (KEYS[4] all, KEYS[5] reels, KEYS[6] the
-- newest post time seen), in the partition checkpoint's slot.

local function apply(a, i)
  local kind, member = a[i], a[i + 1]
  if kind == 'pc' then
    local ts = tonumber(a[i + 2])
    local newest = math.max(ts, tonumber(redis.call('GET', KEYS[6]) or '0'))
    redis.call('SET', KEYS[6], newest)
    local floor = '(' .. (newest - POOL_WINDOW)
    redis.call('ZADD', KEYS[4], ts, member)
    redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', floor)
    if a[i + 3] == '1' then
      redis.call('ZADD', KEYS[5], ts, member)
      redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', floor)
    end
  elseif kind == 'pd' then
    redis.call('ZREM', KEYS[4], member)
    redis.call('ZREM', KEYS[5], member)
  end
end
