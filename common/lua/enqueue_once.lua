-- Queue a message once per token: a repeated request within the guard time
-- (a client retrying a replay, a double click) queues nothing.
-- KEYS[1] once:<token>  KEYS[2] ready
-- ARGV[1] message  ARGV[2] guard time in ms
-- Returns 1 when queued, 0 when the token was already used.
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[2]) then
  return 0
end
redis.call('RPUSH', KEYS[2], ARGV[1])
return 1
