-- A worker takes spooled results to write to the database: into a list of
-- its own, so that if it dies on the way the reaper hands them back. What it
-- took before and could not write yet comes first.
-- KEYS[1] results (the spool)  KEYS[2] results-writing:<worker>
-- ARGV[1] how many to take at most
-- Returns the entries to write.
local held = redis.call('LRANGE', KEYS[2], 0, -1)
if #held > 0 then
  return held
end
local out = {}
for i = 1, tonumber(ARGV[1]) do
  local entry = redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT')
  if not entry then
    break
  end
  out[i] = entry
end
return out
