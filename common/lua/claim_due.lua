-- Claim due jobs: for each job whose fire time has come (or comes within the
-- dispatch-ahead time: workers hold such fires until their time), push one fire
-- message onto the ready list and park the job in `pending` until the
-- dispatcher reschedules it. All in one atomic step, so a dispatcher that dies
-- right after the claim loses nothing: the fire is already queued and the
-- next leader reschedules whatever is left in `pending`.
-- A fire later than the misfire grace is not queued when its job's misfire
-- policy is "skip" (the dispatcher records it as skipped instead).
-- Each claimed fire is remembered in `claimed` for a while, so that an edit
-- racing the claim cannot schedule the same fire again (publish_job.lua).
-- KEYS[1] leader  KEYS[2] schedule  KEYS[3] pending  KEYS[4] ready  KEYS[5] jobs
-- KEYS[6] claimed
-- ARGV[1] leader id (fencing token)  ARGV[2] now (epoch ms)  ARGV[3] max jobs
-- ARGV[4] misfire grace (ms)  ARGV[5] claim fires due up to this (epoch ms)
-- ARGV[6] how long a claimed fire is remembered after its time (ms)
-- ARGV[7] the fire message format written (common/message.py): its fields
-- are encoded by cjson, the spec carried as the string stored.
-- Returns -1 when the caller does not hold the lease, else a flat array
-- {job id, fire ms, spec json, queued (1) or skipped (0), ...}.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return -1
end
local now, grace, format = tonumber(ARGV[2]), tonumber(ARGV[4]), tonumber(ARGV[7])
redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', '(' .. (now - tonumber(ARGV[6])))
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[5], 'WITHSCORES',
                       'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
local messages = {}
for i = 1, #due, 2 do
  local id, fire = due[i], due[i + 1]
  redis.call('ZREM', KEYS[2], id)
  local spec = redis.call('HGET', KEYS[5], id)
  if spec then
    local queue = 1
    if now - tonumber(fire) > grace then
      -- Rare path: only misfired jobs pay for decoding their spec.
      local ok, decoded = pcall(cjson.decode, spec)
      if ok and decoded['misfire'] ~= 'fire_once' then
        queue = 0
      end
    end
    if queue == 1 then
      messages[#messages + 1] = cjson.encode({v = format, j = id, r = 0, t = fire, a = 1,
                                              spec = spec})
    end
    redis.call('ZADD', KEYS[3], fire, id)
    redis.call('ZADD', KEYS[6], fire, id)
    out[#out + 1] = id
    out[#out + 1] = fire
    out[#out + 1] = spec
    out[#out + 1] = queue
  end
  if #messages == 500 then
    redis.call('RPUSH', KEYS[4], unpack(messages))
    messages = {}
  end
end
if #messages > 0 then
  redis.call('RPUSH', KEYS[4], unpack(messages))
end
return out
