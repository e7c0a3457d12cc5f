-- Acknowledge recorded attempts: each message leaves the worker's in-flight
-- list and its fire's mark is settled, and the retries are scheduled, in one
-- atomic step (a retry exists exactly when its failed attempt left).
-- KEYS[1] inflight:<worker>  KEYS[2] retry  KEYS[2+i] the mark of message i
-- ARGV[1] time-to-live of a done mark (ms)  ARGV[2] number of messages N
-- then N pairs: message, what to do with its mark ('done': recorded;
-- 'clear': the same attempt runs later; '': not this worker's mark)
-- then pairs of a retry: due time (ms), message
-- Returns, per message, 1 if it was still in flight, else 0 (the reaper or
-- a hand-back had moved it).
local n = tonumber(ARGV[2])
local found = {}
for i = 1, n do
  local message, mark = ARGV[1 + 2 * i], ARGV[2 + 2 * i]
  found[i] = redis.call('LREM', KEYS[1], 1, message)
  if mark == 'done' then
    redis.call('SET', KEYS[2 + i], 'done', 'PX', ARGV[1])
  elseif mark == 'clear' then
    redis.call('DEL', KEYS[2 + i])
  end
end
for i = 3 + 2 * n, #ARGV, 2 do
  redis.call('ZADD', KEYS[2], ARGV[i], ARGV[i + 1])
end
return found
