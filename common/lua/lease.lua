-- Acquire or renew the dispatcher lease.
-- KEYS[1] leader  KEYS[2] leader:since
-- ARGV[1] candidate id  ARGV[2] lease length in ms
-- Returns 1 if the caller holds the lease now, 0 otherwise.
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  local t = redis.call('TIME')
  redis.call('SET', KEYS[2], tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
  return 1
end
return 0
