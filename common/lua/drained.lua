-- What `jobsched reshard` waits for before it ends: in a shard jobs moved
-- out of, the messages of those jobs still queued, waiting to retry or held
-- by a worker (their fires are called from here, with the spec kept here);
-- in a shard being retired, everything it still holds.
-- KEYS[1] ready  KEYS[2] retry  KEYS[3] moved  KEYS[4] schedule  KEYS[5] pending
-- KEYS[6] results  KEYS[7..] inflight:<worker> of every registered worker,
-- then results-writing:<worker> of each
-- ARGV[1] '1' if the shard is being retired  ARGV[2] the number of workers
-- Returns the number of such messages (and, retired, jobs and results).
local retired = ARGV[1] == '1'
local function counts(message)
  if retired then
    return true
  end
  local ok, fields = pcall(cjson.decode, message)
  if not ok or type(fields) ~= 'table' then
    return false
  end
  local id = fields['j']
  if not id then   -- (format 2: the spec holds it)
    local spec = fields['spec']
    if type(spec) == 'string' then
      ok, spec = pcall(cjson.decode, spec)
    end
    id = ok and type(spec) == 'table' and spec['id']
  end
  return type(id) == 'string' and redis.call('HEXISTS', KEYS[3], id) == 1
end
local left = 0
local function look(messages)
  for _, message in ipairs(messages) do
    if counts(message) then
      left = left + 1
    end
  end
end
look(redis.call('LRANGE', KEYS[1], 0, -1))
look(redis.call('ZRANGE', KEYS[2], 0, -1))
local workers = tonumber(ARGV[2])
for i = 7, 6 + workers do
  look(redis.call('LRANGE', KEYS[i], 0, -1))
end
if retired then
  for i = 7 + workers, #KEYS do
    left = left + redis.call('LLEN', KEYS[i])
  end
  left = left + redis.call('ZCARD', KEYS[4]) + redis.call('ZCARD', KEYS[5])
    + redis.call('LLEN', KEYS[6])
end
return left
