-- Move messages from a worker's in-flight list back to the ready list, each
-- only if it is still in flight (the reaper, or an earlier hand-back, may
-- have moved it already: pushing it again would run the fire twice).
-- KEYS[1] inflight:<worker>  KEYS[2] ready
-- ARGV messages
-- Returns the number moved.
local moved = 0
for i = 1, #ARGV do
  if redis.call('LREM', KEYS[1], 1, ARGV[i]) == 1 then
    redis.call('LPUSH', KEYS[2], ARGV[i])
    moved = moved + 1
  end
end
return moved
