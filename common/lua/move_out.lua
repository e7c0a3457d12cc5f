-- Move jobs out of this shard for `jobsched reshard` (jobsched/reshard.py):
-- each job leaves the schedule here, with its last claimed fire and its
-- finished entry, in one step, so that its fires are claimed here up to
-- this instant and in its new shard after it, never in both. Its state is
-- kept in `moved` until the new shard has it (move_in.lua, safe to repeat),
-- and its spec stays here for the fires queued here before the move.
-- KEYS[1] jobs  KEYS[2] schedule  KEYS[3] pending  KEYS[4] claimed  KEYS[5] finished
-- KEYS[6] moved  KEYS[7] layout
-- ARGV[1] the layout of the reshard; ARGV[2..] job ids
-- Returns -1 when this shard serves another layout, else per job: its state
-- to install in its new shard (JSON: s spec, n next fire, f last claimed
-- fire, d finished entry), '1' installed there already, 'busy' (a fire of it
-- was claimed and is being rescheduled: try again), '' not here.
if redis.call('GET', KEYS[7]) ~= ARGV[1] then
  return -1
end
local out = {}
for i = 2, #ARGV do
  local id = ARGV[i]
  local moved = redis.call('HGET', KEYS[6], id)
  local spec = redis.call('HGET', KEYS[1], id)
  if moved then
    out[#out + 1] = moved
  elseif not spec then
    out[#out + 1] = ''
  elseif redis.call('ZSCORE', KEYS[3], id) then
    out[#out + 1] = 'busy'
  else
    local state = {s = spec}
    state['n'] = redis.call('ZSCORE', KEYS[2], id) or nil
    state['f'] = redis.call('ZSCORE', KEYS[4], id) or nil
    state['d'] = redis.call('HGET', KEYS[5], id) or nil
    redis.call('ZREM', KEYS[2], id)
    redis.call('ZREM', KEYS[4], id)
    redis.call('HDEL', KEYS[5], id)
    local text = cjson.encode(state)
    redis.call('HSET', KEYS[6], id, text)
    out[#out + 1] = text
  end
end
return out
