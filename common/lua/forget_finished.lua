-- Drop a job's `finished` entry once the database records it, unless the job
-- finished again (a newer version) meanwhile.
-- KEYS[1] finished
-- ARGV[1] job id  ARGV[2] the entry recorded: "<version>:<last fire ms>"
-- Returns 1 if dropped, 0 if the entry changed.
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
