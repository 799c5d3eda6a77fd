-- Appends a batch to a ranked session, only if the session is as long as when the batch was
-- computed (another request of the same session may have extended it meanwhile).
-- KEYS[1]: the session LIST (Keyspace::rank_session), in the viewer's slot.
-- ARGV[1]: the length the batch was computed for; ARGV[2]: the session's TTL, ms;
-- ARGV[3..]: the items, as JSON.
-- Returns the new length, or -1 when the session had changed (nothing written).
if redis.call('LLEN', KEYS[1]) ~= tonumber(ARGV[1]) then
  return -1
end
redis.call('RPUSH', KEYS[1], unpack(ARGV, 3))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return redis.call('LLEN', KEYS[1])
