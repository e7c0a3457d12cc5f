-- Give up a worker's hold on in-flight messages: the worker died (its
-- heartbeat expired), restarted under the same id, or could not finish them.
-- Each message still in the in-flight list goes by its fire's mark:
--  * no mark (never called): back to the head of the ready list, its
--    redelivery counter "r" plus one (the message decoded and encoded again
--    by cjson: common/message.py's format, any version);
--  * marked by this worker (it may have called): an ATLEAST_ONCE fire goes
--    back too (the duplicate at-least-once allows, with the same execution
--    id); an ATMOST_ONCE fire is never called again: a lost record (written
--    as FAILED) takes its place and the mark says done;
--  * marked by another worker, or done: another message of the fire holds
--    it; this one is dropped.
-- A message sent back leaves the mark "r:<its new redelivery count>": only
-- that copy may take it (begin_fires.lua), never the one the worker still
-- holds if it was only stalled.
-- Records (skip, lost) are never called: they always go back. Spooled
-- results the worker had taken to write go back to the spool.
-- The leader judges a worker dead when it finds its heartbeat lapsed twice,
-- at least a beat apart by Redis's clock, with no beat between (each beat
-- deletes `lapsed`). Once is not enough: when Redis stops answering for
-- longer than a heartbeat lives (a cluster failing over refuses every
-- command until a replica is promoted), the leader's command, waiting
-- too, may run first when Redis answers again, before the live worker's
-- next beat.
-- KEYS[1] heartbeat  KEYS[2] inflight  KEYS[3] ready  KEYS[4] workers  KEYS[5] leader
-- KEYS[6] results-writing:<worker>  KEYS[7] results  KEYS[8] lapsed:<worker>
-- KEYS[8+i] the mark of message i
-- ARGV[1] worker id  ARGV[2] leader id, or '' when the worker itself gives
-- up (no lease or heartbeat check)  ARGV[3] time-to-live of a done mark (ms)
-- ARGV[4] time-to-live of a mark naming the copy sent back (ms)
-- ARGV[5] the beat: how long after the first finding the lapse is confirmed (ms)
-- then per message, two values: the message and its kind: 'L' ATLEAST_ONCE,
-- 'M' ATMOST_ONCE, 'R' a record
-- Returns {requeued, lost, dropped}, -1 without the lease, -2 while the
-- worker's heartbeat is alive or its lapse is not confirmed yet.
if ARGV[2] ~= '' then
  if redis.call('GET', KEYS[5]) ~= ARGV[2] then
    return -1
  end
  if redis.call('EXISTS', KEYS[1]) == 1 then
    redis.call('DEL', KEYS[8])
    return -2
  end
  local time = redis.call('TIME')
  local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  local first = tonumber(redis.call('GET', KEYS[8]))
  if not first then
    -- (Its lifetime only bounds a leak: a release deletes it.)
    redis.call('SET', KEYS[8], now, 'PX', 3600000)
    return -2
  end
  if now - first < tonumber(ARGV[5]) then
    return -2
  end
  redis.call('DEL', KEYS[8])
end
local requeued, lost, dropped = 0, 0, 0
while redis.call('LMOVE', KEYS[6], KEYS[7], 'RIGHT', 'LEFT') do end
for i = 1, #KEYS - 8 do
  local message, kind = ARGV[4 + 2 * i], ARGV[5 + 2 * i]
  if redis.call('LREM', KEYS[2], 1, message) == 1 then
    local ok, fields = pcall(cjson.decode, message)
    local n = ok and type(fields) == 'table' and tonumber(fields['r'])
    local mark = KEYS[8 + i]
    local holder = kind ~= 'R' and redis.call('GET', mark)
    -- This worker's mark: its id, or a ticket of one of its messages.
    local mine = holder and (holder == ARGV[1] or
                             string.sub(holder, 1, #ARGV[1] + 1) == ARGV[1] .. '#')
    -- A mark of this message's own: this worker's, or the ticket of this copy.
    local own = mine or (n and holder == 'r:' .. n)
    if not n then
      dropped = dropped + 1   -- not a message of ours: nothing to hand on
    elseif holder and not own then
      dropped = dropped + 1
    elseif mine and kind == 'M' then
      redis.call('SET', mark, 'done', 'PX', ARGV[3])
      -- LPUSH: redelivered work goes to the head, it is already late.
      fields['lost'] = 1
      redis.call('LPUSH', KEYS[3], cjson.encode(fields))
      lost = lost + 1
    else
      local again = n + 1
      if kind ~= 'R' then
        redis.call('SET', mark, 'r:' .. again, 'PX', ARGV[4])
      end
      fields['r'] = again
      redis.call('LPUSH', KEYS[3], cjson.encode(fields))
      requeued = requeued + 1
    end
  end
end
if ARGV[2] ~= '' and redis.call('LLEN', KEYS[2]) == 0 then
  redis.call('SREM', KEYS[4], ARGV[1])
end
return {requeued, lost, dropped}
