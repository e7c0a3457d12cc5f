-- Give up the dispatcher lease, if the caller holds it (a stopping leader:
-- a standby takes over at once instead of after the lease runs out).
-- KEYS[1] leader
-- ARGV[1] candidate id
-- Returns 1 if the lease was deleted, 0 if another holds it (or none).
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
