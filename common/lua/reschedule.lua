-- Put claimed jobs back on the schedule at their next fire time, and queue
-- the records of fires skipped by misfire policy, in one atomic step.
-- A job is rescheduled only if it is still pending with the fire time this
-- dispatcher claimed: if the API replaced the job meanwhile, the API's own
-- schedule entry wins. A job with no further fire is recorded in `finished`
-- (its version and that last fire) until the database says so: no reconcile
-- pass may then put the fire back.
-- KEYS[1] leader  KEYS[2] schedule  KEYS[3] pending  KEYS[4] ready  KEYS[5] jobs
-- KEYS[6] finished
-- ARGV[1] leader id  ARGV[2] number of triples N
-- then N triples: job id, claimed fire ms, next fire ms ('' = no further fire)
-- then skip-record messages to push onto the ready list.
-- Returns the number of jobs rescheduled, or -1 without the lease.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return -1
end
local n = tonumber(ARGV[2])
local done = 0
for i = 3, 2 + 3 * n, 3 do
  local id, claimed, nxt = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local current = redis.call('ZSCORE', KEYS[3], id)
  if current and tonumber(current) == tonumber(claimed) then
    redis.call('ZREM', KEYS[3], id)
    if nxt ~= '' then
      redis.call('ZADD', KEYS[2], nxt, id)
      done = done + 1
    else
      local spec = redis.call('HGET', KEYS[5], id)
      local ok, fields = pcall(cjson.decode, spec or '')
      local version = ok and type(fields) == 'table' and tonumber(fields['v'])
      if version then
        redis.call('HSET', KEYS[6], id, version .. ':' .. claimed)
      end
    end
  end
end
for i = 3 + 3 * n, #ARGV do
  redis.call('RPUSH', KEYS[4], ARGV[i])
end
return done
