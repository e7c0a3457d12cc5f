-- Hand a dead worker's in-flight messages back to the ready list.
-- Only acts when the worker's heartbeat has expired, checked in the same
-- atomic step. Each message's redelivery counter "r" is incremented, so the
-- execution row can say it was redelivered; the execution id is unchanged.
-- KEYS[1] heartbeat  KEYS[2] inflight  KEYS[3] ready  KEYS[4] workers  KEYS[5] leader
-- ARGV[1] worker id  ARGV[2] leader id, or '' when a worker that restarts
-- under the same id hands back what its previous life held (no checks then:
-- the caller knows it holds nothing yet).
-- Returns the number of messages requeued, or -1 without the lease.
if ARGV[2] ~= '' then
  if redis.call('GET', KEYS[5]) ~= ARGV[2] then
    return -1
  end
  if redis.call('EXISTS', KEYS[1]) == 1 then
    return 0
  end
end
local moved = 0
while true do
  local msg = redis.call('RPOP', KEYS[2])
  if not msg then break end
  local n, rest = string.match(msg, '^{"r":(%d+),(.*)$')
  if n then
    msg = '{"r":' .. (tonumber(n) + 1) .. ',' .. rest
  end
  -- LPUSH: redelivered work goes to the head, it is already late.
  redis.call('LPUSH', KEYS[3], msg)
  moved = moved + 1
end
redis.call('SREM', KEYS[4], ARGV[1])
return moved
