-- Install jobs that `jobsched reshard` moved out of their old shard
-- (move_out.lua): each one's spec, last claimed fire, finished entry and
-- next fire. Safe to repeat, and never over what was written here since:
-- a tombstone, a newer version, a fire scheduled or claimed here win.
-- KEYS[1] jobs  KEYS[2] schedule  KEYS[3] pending  KEYS[4] claimed  KEYS[5] finished
-- KEYS[6] deleted  KEYS[7] wake
-- ARGV: per job, its id and its state (JSON: s spec, n next fire, f last
-- claimed fire, d finished entry)
local function version_of(spec)
  local ok, fields = pcall(cjson.decode, spec or '')
  return ok and type(fields) == 'table' and tonumber(fields['v']) or -1
end
local wake = false
for i = 1, #ARGV, 2 do
  local id, state = ARGV[i], cjson.decode(ARGV[i + 1])
  if not redis.call('ZSCORE', KEYS[6], id) then
    local floor = tonumber(state['f'])
    local claimed = tonumber(redis.call('ZSCORE', KEYS[4], id))
    if floor and (not claimed or floor > claimed) then
      redis.call('ZADD', KEYS[4], floor, id)
      claimed = floor
    end
    local stored = redis.call('HGET', KEYS[1], id)
    local version = version_of(state['s'])
    if version_of(stored) <= version then
      redis.call('HSET', KEYS[1], id, state['s'])
      if state['d'] and redis.call('HEXISTS', KEYS[5], id) == 0 then
        redis.call('HSET', KEYS[5], id, state['d'])
      end
      local nxt = tonumber(state['n'])
      if nxt and (not claimed or nxt > claimed)
          and not redis.call('ZSCORE', KEYS[2], id) and not redis.call('ZSCORE', KEYS[3], id)
          and redis.call('HEXISTS', KEYS[5], id) == 0 then
        redis.call('ZADD', KEYS[2], nxt, id)
        wake = true
      end
    end
  end
end
if wake then
  redis.call('DEL', KEYS[7])
  redis.call('RPUSH', KEYS[7], '1')
end
return 1
