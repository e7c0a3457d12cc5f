-- Acknowledge attempts: each message leaves the worker's in-flight list and
-- its fire's mark is settled, the retries are scheduled, and the results
-- the database could not take are kept in the spool, in one atomic step (a
-- retry exists exactly when its failed attempt left; a spooled result
-- exactly when its message left).
-- KEYS[1] inflight:<worker>  KEYS[2] retry  KEYS[3] results (the spool)
-- KEYS[3+i] the mark of message i
-- ARGV[1] time-to-live of a done mark (ms)  ARGV[2] number of messages N
-- ARGV[3] number of retries R
-- then N pairs: message, what to do with its mark ('done': recorded or
-- spooled; 'clear': the same attempt runs later; '': not this worker's mark)
-- then R pairs of a retry: due time (ms), message
-- then the spool entries (worker/spool.py)
-- Returns, per message, 1 if it was still in flight, else 0 (the reaper or
-- a hand-back had moved it).
local n, r = tonumber(ARGV[2]), tonumber(ARGV[3])
local found = {}
for i = 1, n do
  local message, mark = ARGV[2 + 2 * i], ARGV[3 + 2 * i]
  found[i] = redis.call('LREM', KEYS[1], 1, message)
  if mark == 'done' then
    redis.call('SET', KEYS[3 + i], 'done', 'PX', ARGV[1])
  elseif mark == 'clear' then
    redis.call('DEL', KEYS[3 + i])
  end
end
local first_retry = 4 + 2 * n
for i = first_retry, first_retry + 2 * r - 1, 2 do
  redis.call('ZADD', KEYS[2], ARGV[i], ARGV[i + 1])
end
for i = first_retry + 2 * r, #ARGV do
  redis.call('RPUSH', KEYS[3], ARGV[i])
end
return found
