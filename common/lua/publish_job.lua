-- Publish a job's committed state: its spec and its next fire. Every writer
-- of a job's Redis state (the API, the reconciler, the automatic disable)
-- comes here through common/publish.py, and no slower, older write can win:
--  * a deleted job (its tombstone in `deleted`) is never written again;
--  * a spec never replaces a newer version, and the same version only
--    repairs a job that is off the schedule (a repeated write must not re-time it);
--  * a next fire at or before the job's last claimed fire is refused: that
--    fire is queued already and would run twice. The caller computes the
--    next fire after the floor returned and writes again.
-- A job left with no next fire while enabled has had its last fire: it is
-- recorded in `finished` (with its version and that fire) until the database
-- says so; a job given a next fire leaves `finished`.
-- Wakes the dispatcher when this job became the earliest fire.
-- Resharding (common/shards.py): a write routed by another layout than this
-- shard serves is refused ({-4}: the writer follows the layout and routes
-- again). A write that may go on to the job's new shard (ARGV[7]) is sent
-- there ({-3, its state when moved, '' when installed or new}) if the job
-- moved or was never here; a moved job's spec is still kept current here,
-- for the fires queued here before it moved.
-- KEYS[1] jobs  KEYS[2] schedule  KEYS[3] pending  KEYS[4] claimed  KEYS[5] finished
-- KEYS[6] deleted  KEYS[7] wake  KEYS[8] layout  KEYS[9] moved
-- ARGV[1] job id  ARGV[2] spec json  ARGV[3] its version
-- ARGV[4] next fire ms, or '' for none  ARGV[5] '1' if the job is enabled
-- ARGV[6] the writer's layout  ARGV[7] '1' if the job's new shard is another
-- Returns {1} written, {0} a newer or the same (scheduled) version is stored,
-- {-1} the job was deleted, {-2, floor} the next fire is not after floor.
local id, version, nxt = ARGV[1], tonumber(ARGV[3]), ARGV[4]
local layout = redis.call('GET', KEYS[8])
if layout and layout ~= ARGV[6] then
  return {-4}
end
if redis.call('ZSCORE', KEYS[6], id) then
  return {-1}
end
local stored = redis.call('HGET', KEYS[1], id)
if ARGV[7] == '1' then
  local moved = redis.call('HGET', KEYS[9], id)
  if not stored or moved then
    if moved then
      local ok, fields = pcall(cjson.decode, stored)
      if not (ok and type(fields) == 'table' and (tonumber(fields['v']) or 0) >= version) then
        redis.call('HSET', KEYS[1], id, ARGV[2])
      end
    end
    return {-3, (moved and moved ~= '1') and moved or ''}
  end
end
if stored then
  local ok, fields = pcall(cjson.decode, stored)
  local stored_version = ok and type(fields) == 'table' and tonumber(fields['v'])
  if stored_version and stored_version > version then
    return {0}
  end
  if stored_version == version and (redis.call('ZSCORE', KEYS[2], id)
                                    or redis.call('ZSCORE', KEYS[3], id)) then
    return {0}
  end
end
local finished = redis.call('HGET', KEYS[5], id)
local floor = tonumber(redis.call('ZSCORE', KEYS[4], id))
if finished then
  local last = tonumber(string.match(finished, ':(%d+)$'))
  if not floor or last > floor then
    floor = last
  end
end
if nxt ~= '' and floor and tonumber(nxt) <= floor then
  return {-2, floor}
end
redis.call('HSET', KEYS[1], id, ARGV[2])
redis.call('ZREM', KEYS[3], id)
if nxt == '' then
  redis.call('ZREM', KEYS[2], id)
  if ARGV[5] == '1' or finished then
    -- No further fire: finished at this version (a pause keeps it finished).
    redis.call('HSET', KEYS[5], id, version .. ':' .. (floor or 0))
  end
  return {1}
end
redis.call('HDEL', KEYS[5], id)
redis.call('ZADD', KEYS[2], nxt, id)
local head = redis.call('ZRANGE', KEYS[2], 0, 0)
if head[1] == id then
  redis.call('DEL', KEYS[7])
  redis.call('RPUSH', KEYS[7], '1')
end
return {1}
