-- Mark a job's call as running (overlap policy "forbid").
-- Succeeds when no call of the job runs, or when the running call is this
-- same fire (a redelivery after its worker died mid-call).
-- KEYS[1] running:<job>
-- ARGV[1] execution id  ARGV[2] expiry in ms (bounds a mark left by a crash)
-- Returns 1 when acquired, 0 when another fire of the job is running.
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
