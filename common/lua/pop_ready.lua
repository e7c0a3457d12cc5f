-- Move up to ARGV[1] messages from the ready list to a worker's in-flight
-- list, oldest first, in one round trip (BLMOVE moves one per round trip).
-- KEYS[1] ready  KEYS[2] inflight:<worker>
-- Returns the messages moved.
local out = {}
for i = 1, tonumber(ARGV[1]) do
  local message = redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'LEFT')
  if not message then
    break
  end
  out[i] = message
end
return out
