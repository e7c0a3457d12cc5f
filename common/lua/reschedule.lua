-- Put claimed jobs back on the schedule at their next fire time.
-- A job is rescheduled only if it is still pending with the fire time this
-- dispatcher claimed: if the API replaced the job meanwhile, the API's own
-- schedule entry wins.
-- KEYS[1] leader  KEYS[2] schedule  KEYS[3] pending
-- ARGV[1] leader id, then triples: job id, claimed fire ms, next fire ms
-- (an empty next fire ms means the job has no further fire).
-- Returns the number of jobs rescheduled, or -1 without the lease.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return -1
end
local done = 0
for i = 2, #ARGV, 3 do
  local id, claimed, nxt = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local current = redis.call('ZSCORE', KEYS[3], id)
  if current and tonumber(current) == tonumber(claimed) then
    redis.call('ZREM', KEYS[3], id)
    if nxt ~= '' then
      redis.call('ZADD', KEYS[2], nxt, id)
      done = done + 1
    end
  end
end
return done
