-- Acquire or renew the dispatcher lease.
-- KEYS[1] leader
-- ARGV[1] candidate id  ARGV[2] lease length in ms
-- Returns 1 if the caller holds the lease now, 0 otherwise.
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
