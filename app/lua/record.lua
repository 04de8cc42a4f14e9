-- Record the partial sums of one or more chunks of a run, each once, and hand them to the
-- submitter (in one inbox entry, their msgpack entries one after another); finish each
-- chunk's arq job too, as arq's worker would once it returns.
-- KEYS: run, partials, inbox, sender, timeline; then, to finish the jobs, the queue and
-- arq's abort set, and each job's record, in-progress mark and try count
-- (app.queue.JobFinish).
-- ARGV: ttl, now, the timeline's room (see keep_spans), then for each chunk: its index, its
-- inbox entry, its seconds (added to the run's chunk_seconds, and kept in chunk_seconds_max
-- if the longest yet), its job id ('' for none: the job is not finished here), its numbers
-- (added to done_numbers) and its span for the timeline ('' for none).
-- Returns a Recorded value (app.run_status) for each chunk. The run's 'enqueued' field is set
-- once every job is enqueued (the run is sealed). One chunk of the call at most is told to
-- finalise (2) or abandon (3) the run, and its job is left unfinished: if its worker dies
-- first, another runs the job again and does it.
local run, partials, inbox, sender, timeline = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local ttl, now, room = ARGV[1], ARGV[2], ARGV[3]
local chunks = (#ARGV - 3) / 6

local function finish(i)
  local id = ARGV[6 * i + 1]
  if id ~= '' then
    local k = 3 * i + 5
    redis.call('DEL', KEYS[k], KEYS[k + 1], KEYS[k + 2])
    redis.call('ZREM', KEYS[6], id)
    redis.call('ZREM', KEYS[7], id)
  end
end

local replies = {}
local status = redis.call('HGET', run, 'status')
if not is_active(status) then
  for i = 1, chunks do replies[i] = 0; finish(i) end
  return replies
end

local fresh, spans, seconds_sum, seconds_max, numbers, asks = {}, {}, 0, 0, 0, nil
for i = 1, chunks do
  local index, entry, seconds = ARGV[6 * i - 2], ARGV[6 * i - 1], tonumber(ARGV[6 * i])
  if redis.call('HSETNX', partials, index, entry) == 1 then
    fresh[#fresh + 1] = entry
    seconds_sum = seconds_sum + seconds
    if seconds > seconds_max then seconds_max = seconds end
    numbers = numbers + tonumber(ARGV[6 * i + 2])
    spans[#spans + 1] = index
    spans[#spans + 1] = ARGV[6 * i + 3]
    replies[i] = 1
  else
    replies[i] = 0  -- a repeat
  end
  asks = i  -- the chunk that finalises or abandons the run, if that is needed: the last
end

local done
if #fresh > 0 then
  redis.call('RPUSH', inbox, table.concat(fresh))  -- one entry: the submitter pops them at once
  done = redis.call('HINCRBY', run, 'done_chunks', #fresh)
  redis.call('HINCRBY', run, 'done_numbers', numbers)
  redis.call('HINCRBYFLOAT', run, 'chunk_seconds', seconds_sum)
  if seconds_max > tonumber(redis.call('HGET', run, 'chunk_seconds_max') or '0') then
    redis.call('HSET', run, 'chunk_seconds_max', seconds_max)
  end
  if status == 'queued' then
    redis.call('HSET', run, 'status', 'running', 'started_at', now)
  end
  expire(partials, ttl)
  expire(inbox, ttl)
  keep_spans(run, timeline, ttl, room, spans)
else
  done = tonumber(redis.call('HGET', run, 'done_chunks'))
end

local enqueued = redis.call('HGET', run, 'enqueued')
if enqueued and done == tonumber(enqueued) then
  -- complete: a repeat too may say so, if the worker that recorded the last partial died
  -- or lost Redis before it finalised the run
  replies[asks] = 2
elseif not enqueued and #fresh > 0 and redis.call('EXISTS', sender) == 0 then
  replies[asks] = 3
else
  asks = nil
end
for i = 1, chunks do
  if i ~= asks then finish(i) end
end
return replies
