-- Queue a fire a user asked for (run now, replay) in its job's shard, once
-- per token when one is given: a repeated request within the guard time (a
-- client retrying a replay, a double click) queues nothing.
-- Resharding (common/shards.py): a request routed by another layout than
-- this shard serves is refused; one that may go on to the job's new shard
-- is sent there if the job moved or is not here.
-- KEYS[1] ready  KEYS[2] layout  KEYS[3] moved  KEYS[4] jobs  KEYS[5] once:<token>, if any
-- ARGV[1] message  ARGV[2] the writer's layout  ARGV[3] job id
-- ARGV[4] '1' if the job's new shard is another  ARGV[5] guard time in ms
-- Returns 1 queued, 0 the token was used already, -3 queue it in the job's
-- new shard, -4 route it again by the layout this shard serves.
local layout = redis.call('GET', KEYS[2])
if layout and layout ~= ARGV[2] then
  return -4
end
if ARGV[4] == '1' and (redis.call('HEXISTS', KEYS[3], ARGV[3]) == 1
                       or redis.call('HEXISTS', KEYS[4], ARGV[3]) == 0) then
  return -3
end
if KEYS[5] and not redis.call('SET', KEYS[5], '1', 'NX', 'PX', ARGV[5]) then
  return 0
end
redis.call('RPUSH', KEYS[1], ARGV[1])
return 1
