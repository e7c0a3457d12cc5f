-- Store a job's spec and its next fire, unless a newer version is stored.
-- Wakes the dispatcher when this job became the earliest fire.
-- KEYS[1] jobs  KEYS[2] schedule  KEYS[3] pending  KEYS[4] wake
-- ARGV[1] job id  ARGV[2] spec json (with integer field "v")
-- ARGV[3] next fire ms, or '' to take the job off the schedule
-- ARGV[4] version of this spec
-- ARGV[5] '1' to refuse a next fire that is already due by Redis' clock while
-- the job still has a schedule entry: the dispatcher may have claimed that
-- fire from the old entry while this write was in flight, and queuing it
-- again would run it twice. (A job with no entry at all, as after Redis lost
-- its data, cannot have been claimed: a due fire is then accepted.)
-- Returns 1 when applied, 0 when a newer version was already stored, -2 when
-- the next fire is already due (the caller computes a later one).
local has_entry = redis.call('ZSCORE', KEYS[2], ARGV[1]) or redis.call('ZSCORE', KEYS[3], ARGV[1])
if ARGV[5] == '1' and ARGV[3] ~= '' and has_entry then
  local t = redis.call('TIME')
  if tonumber(ARGV[3]) <= tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) then
    return -2
  end
end
local stored = redis.call('HGET', KEYS[1], ARGV[1])
if stored then
  local ok, decoded = pcall(cjson.decode, stored)
  if ok and tonumber(decoded['v']) and tonumber(decoded['v']) > tonumber(ARGV[4]) then
    return 0
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZREM', KEYS[3], ARGV[1])
if ARGV[3] == '' then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 1
end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
local head = redis.call('ZRANGE', KEYS[2], 0, 0)
if head[1] == ARGV[1] then
  redis.call('DEL', KEYS[4])
  redis.call('RPUSH', KEYS[4], '1')
end
return 1
