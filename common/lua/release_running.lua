-- Clear a job's running mark if it is still ours.
-- KEYS[1] running:<job>
-- ARGV[1] execution id
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
