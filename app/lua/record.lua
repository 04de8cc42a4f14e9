-- Record a chunk's partial sum once, and hand it to the submitter.
-- KEYS: run, partials, inbox, sender.
-- ARGV: ttl, chunk index, inbox entry, now, the chunk's seconds (added to the run's
-- chunk_seconds, and kept in chunk_seconds_max if the longest yet).
-- Returns a Recorded value (app.runs); the run's 'enqueued' field is set once every job
-- is enqueued (the run is sealed).
local run, partials, inbox, sender = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local ttl, index, entry, now, seconds = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]

local status = redis.call('HGET', run, 'status')
if not is_active(status) then return 0 end
local enqueued = redis.call('HGET', run, 'enqueued')
if redis.call('HSETNX', partials, index, entry) == 0 then
  -- a repeat; if the run is complete but still active, the worker that recorded the last
  -- partial died or lost Redis before it finalised: this one does it instead
  local done = redis.call('HGET', run, 'done_chunks')
  if enqueued and tonumber(done) == tonumber(enqueued) then return 2 end
  return 0
end
redis.call('RPUSH', inbox, entry)
local done = redis.call('HINCRBY', run, 'done_chunks', 1)
redis.call('HINCRBYFLOAT', run, 'chunk_seconds', seconds)
if tonumber(seconds) > tonumber(redis.call('HGET', run, 'chunk_seconds_max') or '0') then
  redis.call('HSET', run, 'chunk_seconds_max', seconds)
end
if status == 'queued' then
  redis.call('HSET', run, 'status', 'running', 'started_at', now)
end
expire(partials, ttl)
expire(inbox, ttl)
if enqueued then
  if done == tonumber(enqueued) then return 2 end
elseif redis.call('EXISTS', sender) == 0 then
  return 3
end
return 1
