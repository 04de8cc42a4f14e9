-- Count a chunk retry on an active run (never recreating an expired hash).
-- KEYS: run.
if is_active(redis.call('HGET', KEYS[1], 'status')) then
  redis.call('HINCRBY', KEYS[1], 'retried_chunks', 1)
end
