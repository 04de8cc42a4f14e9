-- Record a chunk's partial sum once, and hand it to the submitter; with the chunk's arq
-- job's keys, finish that job too, as arq's worker would once it returns.
-- KEYS: run, partials, inbox, sender; then, to finish the job: its record, in-progress
-- mark and try count, the queue and arq's abort set (app.queue.JobFinish).
-- ARGV: ttl, chunk index, inbox entry, now, the chunk's seconds (added to the run's
-- chunk_seconds, and kept in chunk_seconds_max if the longest yet); then the job's id.
-- Returns a Recorded value (app.runs); the run's 'enqueued' field is set once every job
-- is enqueued (the run is sealed). The job is left unfinished when the reply asks its
-- worker to finalise (2) or abandon (3) the run: if the worker dies first, another runs
-- the job again and does it.
local run, partials, inbox, sender = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local ttl, index, entry, now, seconds = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]

local function finished(reply)
  if #KEYS > 4 then
    redis.call('DEL', KEYS[5], KEYS[6], KEYS[7])
    redis.call('ZREM', KEYS[8], ARGV[6])
    redis.call('ZREM', KEYS[9], ARGV[6])
  end
  return reply
end

local status = redis.call('HGET', run, 'status')
if not is_active(status) then return finished(0) end
local enqueued = redis.call('HGET', run, 'enqueued')
if redis.call('HSETNX', partials, index, entry) == 0 then
  -- a repeat; if the run is complete but still active, the worker that recorded the last
  -- partial died or lost Redis before it finalised: this one does it instead
  local done = redis.call('HGET', run, 'done_chunks')
  if enqueued and tonumber(done) == tonumber(enqueued) then return 2 end
  return finished(0)
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
return finished(1)
