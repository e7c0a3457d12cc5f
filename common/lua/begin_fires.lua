-- Just before a worker sends a batch of calls that share a send instant:
-- check each fire against its job as it is now, and take the fire's mark,
-- so that at most one call per (execution id, attempt) leaves the system.
-- Per fire, in order:
--  'taken'    another message of the same fire attempt holds the mark (or
--             held it and was recorded), or the reaper handed this message
--             on while its worker was stalled (the mark names the copy it
--             queued: "r:<its redelivery count>"; a message held longer than
--             a heartbeat is also looked for in the in-flight list, in case
--             that mark is gone): dropped, unrecorded;
--  'deleted'  the job was deleted (no spec while the schedule is built);
--  'paused'   the job was paused since the fire was queued (unless the fire
--             was asked for by a user: run now, replay);
--  'go'       marked: call it as queued;
--  a spec     marked: the job was edited since, call it as it is now.
-- 'deleted' and 'paused' take the mark too: the fire is settled, as skipped.
-- The mark says who holds it: the message's ticket, "<worker id>#<n>", one
-- per message a worker holds. A message asking again with its own ticket
-- (the answer to its first ask was lost with the connection) is answered
-- as the first time, so the fire is neither dropped nor called twice.
-- KEYS[1] jobs  KEYS[2] initialized  KEYS[3] inflight:<worker>
-- KEYS[3+i] the mark of fire i
-- ARGV[1] worker id  ARGV[2] mark time-to-live while calling (ms)
-- then per fire, six values: job id, version of the message's spec, '1' if
-- asked for by a user, the message's redelivery count, the message itself
-- if it must still be in the in-flight list ('' otherwise), and its ticket
-- ('': the worker id is the mark, and a second ask finds it taken)
local out = {}
local initialized = redis.call('EXISTS', KEYS[2]) == 1
for i = 1, #KEYS - 3 do
  local base = 2 + (i - 1) * 6
  local id, version = ARGV[base + 1], tonumber(ARGV[base + 2])
  local manual, redelivery = ARGV[base + 3] == '1', ARGV[base + 4]
  local message, ticket = ARGV[base + 5], ARGV[base + 6]
  local mark = KEYS[3 + i]
  local holder = redis.call('GET', mark)
  local result
  if holder and holder ~= 'r:' .. redelivery and (ticket == '' or holder ~= ticket) or
      message ~= '' and not redis.call('LPOS', KEYS[3], message) then
    result = 'taken'
  else
    -- (A holder here is the ticket of the copy the reaper queued, or this
    -- message's own: this one.)
    redis.call('SET', mark, ticket ~= '' and ticket or ARGV[1], 'PX', ARGV[2])
    local spec = redis.call('HGET', KEYS[1], id)
    if not spec then
      -- Redis lost its data and the schedule is being rebuilt: the job may
      -- well exist; the fire runs as queued.
      result = initialized and 'deleted' or 'go'
    else
      -- (A spec that does not decode cannot say otherwise: as queued.)
      local ok, stored = pcall(cjson.decode, spec)
      if not ok or type(stored) ~= 'table' or (tonumber(stored['v']) or 0) <= version then
        result = 'go'
      elseif stored['enabled'] == false and not manual then
        result = 'paused'
      else
        result = spec
      end
    end
  end
  out[i] = result
end
return out
