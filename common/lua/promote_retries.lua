-- Move retries whose time has come from the retry ZSET to the ready list.
-- KEYS[1] leader  KEYS[2] retry  KEYS[3] ready
-- ARGV[1] leader id  ARGV[2] now (epoch ms)  ARGV[3] max messages
-- Returns the number moved, or -1 without the lease.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return -1
end
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[2], 'LIMIT', 0,
                       tonumber(ARGV[3]))
for i = 1, #due do
  redis.call('RPUSH', KEYS[3], due[i])
  redis.call('ZREM', KEYS[2], due[i])
end
return #due
