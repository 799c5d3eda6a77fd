-- The fan-out job: posts into followers' timelines, deleted posts out of them.

local function apply(a, i)
  local kind = a[i]
  if kind == 'pc' then
    local author, post, ts_s = a[i + 1], a[i + 2], a[i + 3]
    local meta = k_post_meta(post)
    local owner = redis.call('HGET', meta, 'author')
    if owner then return end -- a duplicate
    -- A delete applied before the create (another partition got there first) counts only when
    -- it came from the author.
    if redis.call('HGET', meta, 'deleted_by') == author then
      redis.call('HSET', meta, 'author', author, 'created_at', ts_s, 'deleted', '1')
      return
    end
    redis.call('HSET', meta, 'author', author, 'created_at', ts_s, 'media_type', a[i + 5],
      'media', a[i + 6], 'caption', a[i + 7], 'hashtags', a[i + 8], 'deleted', '0')
    local recent = k_recent_posts(author)
    redis.call('ZADD', recent, ts_s, post)
    redis.call('ZREMRANGEBYRANK', recent, 0, -(RECENT_CAP + 1))
    if not is_celebrity(author) then
      local ts = tonumber(ts_s)
      push_post(redis.call('ZRANGE', k_followers(author), 0, -1), author, post, ts)
    end
  elseif kind == 'pd' then
    local author, post = a[i + 1], a[i + 2]
    local meta = k_post_meta(post)
    local owner = redis.call('HGET', meta, 'author')
    if not owner then
      -- Not created yet here: remember who deleted it; the create decides whether it counts.
      redis.call('HSET', meta, 'deleted_by', author)
      return
    end
    -- Only the author deletes a post; anyone else's delete changes nothing.
    if owner ~= author then return end
    redis.call('HSET', meta, 'deleted', '1')
    redis.call('ZREM', k_recent_posts(author), post)
    local member = author .. ':' .. post
    for _, f in ipairs(redis.call('ZRANGE', k_followers(author), 0, -1)) do
      redis.call('ZREM', k_timeline(f), member)
    end
  end
end
