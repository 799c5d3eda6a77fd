-- Reads notification batches of one recipient as the recipient may see them. Every key is in the
-- recipient's hash slot.
--
-- KEYS[1] blocks, KEYS[2] blocked_by, KEYS[3] followers, KEYS[4] follow requests (of the
-- recipient), KEYS[5..] the batches.
-- ARGV[1] how many latest actors to name; ARGV[1 + i] the kind of batch i: 'f' for follows,
-- 'o' for anything else.
--
-- Returns per batch { visible actors, of them active followers (follow batches; else 0),
-- then actor, time, pending (0/1) for up to ARGV[1] latest visible actors }.

local wanted = tonumber(ARGV[1])
-- Most batch members looked at to find the latest visible actors.
local SCAN_CAP = 1000

local hidden = {}
local hidden_list = {}
for _, key in ipairs({ KEYS[1], KEYS[2] }) do
  for _, who in ipairs(redis.call('SMEMBERS', key)) do
    if not hidden[who] then
      hidden[who] = true
      hidden_list[#hidden_list + 1] = who
    end
  end
end

local function latest(batch, visible_as)
  local out = {}
  local from = 0
  local step = math.max(wanted * 3, 10)
  while #out < wanted * 3 and from < SCAN_CAP do
    local page = redis.call('ZREVRANGE', batch, from, from + step - 1, 'WITHSCORES')
    if #page == 0 then break end
    for i = 1, #page, 2 do
      local pending = visible_as(page[i])
      if pending ~= nil and #out < wanted * 3 then
        out[#out + 1] = tonumber(page[i])
        out[#out + 1] = tonumber(page[i + 1])
        out[#out + 1] = pending
      end
    end
    from = from + step
  end
  return out
end

local result = {}
for i = 5, #KEYS do
  local batch = KEYS[i]
  local kind = ARGV[i - 3]
  local row
  if kind == 'f' then
    -- A follow counts while it stands (followers) or waits (requests); blocks end both.
    local followers = redis.call('ZINTERCARD', 2, batch, KEYS[3])
    local requests = redis.call('ZINTERCARD', 2, batch, KEYS[4])
    row = latest(batch, function(who)
      if redis.call('ZSCORE', KEYS[3], who) then return 0 end
      if redis.call('ZSCORE', KEYS[4], who) then return 1 end
      return nil
    end)
    table.insert(row, 1, followers)
    table.insert(row, 1, followers + requests)
  else
    local card = redis.call('ZCARD', batch)
    local blocked = 0
    if #hidden_list <= card then
      for _, who in ipairs(hidden_list) do
        if redis.call('ZSCORE', batch, who) then blocked = blocked + 1 end
      end
    else
      for _, who in ipairs(redis.call('ZRANGE', batch, 0, -1)) do
        if hidden[who] then blocked = blocked + 1 end
      end
    end
    row = latest(batch, function(who)
      if hidden[who] then return nil end
      return 0
    end)
    table.insert(row, 1, 0)
    table.insert(row, 1, card - blocked)
  end
  result[#result + 1] = row
end
return result
