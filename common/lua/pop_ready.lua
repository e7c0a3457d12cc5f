-- Move up to ARGV[1] messages from the ready list to the tail of a worker's
-- in-flight list, oldest first, in one round trip (BLMOVE moves one per
-- round trip). At the tail: calls finish roughly in the order they were
-- taken, so the acknowledging LREM, which scans from the head, finds each
-- one near the head instead of scanning thousands of newer ones.
-- KEYS[1] ready  KEYS[2] inflight:<worker>
-- (Also moves spooled results into a worker's writing list: the same move.)
-- Returns the messages moved.
local out = {}
for i = 1, tonumber(ARGV[1]) do
  local message = redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT')
  if not message then
    break
  end
  out[i] = message
end
return out
