-- Apply a batch of outcomes to the per-job failure streaks, in order.
-- KEYS[1] streaks
-- ARGV pairs: job id, 'F' (a fire failed for good) or 'S' (a success)
-- Returns, per pair: the new streak after an 'F'; the streak that ended
-- (0 if none) for an 'S'.
local out = {}
for i = 1, #ARGV, 2 do
  local job, kind = ARGV[i], ARGV[i + 1]
  if kind == 'F' then
    out[#out + 1] = redis.call('HINCRBY', KEYS[1], job, 1)
  else
    out[#out + 1] = tonumber(redis.call('HGET', KEYS[1], job) or '0')
    redis.call('HDEL', KEYS[1], job)
  end
end
return out
