-- Take a deleted job out of Redis and leave a tombstone: a slower write of
-- the job (an edit racing the delete, a reconcile pass that read the row
-- before) finds it and writes nothing. Queued fires find the spec gone and
-- are skipped by the worker (begin_fires.lua).
-- Its other state goes with it: its failure streak and its running mark.
-- A removal routed by another layout than this shard serves is refused (0;
-- common/shards.py routes it again).
-- KEYS[1] jobs  KEYS[2] schedule  KEYS[3] pending  KEYS[4] claimed  KEYS[5] finished
-- KEYS[6] deleted  KEYS[7] streaks  KEYS[8] running:<job>  KEYS[9] layout
-- ARGV[1] job id  ARGV[2] now (epoch ms)  ARGV[3] the writer's layout
local id = ARGV[1]
local layout = redis.call('GET', KEYS[9])
if layout and layout ~= ARGV[3] then
  return 0
end
redis.call('HDEL', KEYS[7], id)
redis.call('DEL', KEYS[8])
redis.call('HDEL', KEYS[1], id)
redis.call('ZREM', KEYS[2], id)
redis.call('ZREM', KEYS[3], id)
redis.call('ZREM', KEYS[4], id)
redis.call('HDEL', KEYS[5], id)
redis.call('ZADD', KEYS[6], ARGV[2], id)
return 1
