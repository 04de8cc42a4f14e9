-- Count a chunk retry on an active run (never recreating an expired hash), and keep its span.
-- KEYS: run, timeline. ARGV: ttl, the span ('' for none), the timeline's room (keep_spans).
if is_active(redis.call('HGET', KEYS[1], 'status')) then
  redis.call('HINCRBY', KEYS[1], 'retried_chunks', 1)
  keep_spans(KEYS[1], KEYS[2], ARGV[1], ARGV[3], {'', ARGV[2]})
end
