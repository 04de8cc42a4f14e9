-- Mark an active run's jobs all enqueued: from then on it can finish without its
-- submitter, whose lease is no longer needed.
-- KEYS: run, partials, inbox, sender. ARGV: chunks enqueued, numbers in them.
-- Returns the run's status then, or false if it has none.
local status = redis.call('HGET', KEYS[1], 'status')
if not is_active(status) then return status end
redis.call('HSET', KEYS[1], 'enqueued', ARGV[1], 'count', ARGV[2])
redis.call('DEL', KEYS[4])
return status
