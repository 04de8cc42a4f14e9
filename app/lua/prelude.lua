-- Shared by every chunksum script (app.scripts prepends it).

-- A run accepts partials, and can be ended, only while it is active.
local function is_active(status)
  return status == 'queued' or status == 'running'
end

-- Lists vanish when drained and hashes are created by their first field, so every write
-- (re)sets the expiry: a run whose submitter died can't leave keys behind for good.
-- ttl is in seconds, '' for none.
local function expire(key, ttl)
  if ttl ~= '' then redis.call('EXPIRE', key, ttl) end
end

-- Append chunks' spans to the run's timeline (app.timeline) in one RPUSH, the list expiring
-- with the run. spans is {index, span, ...}: a span '' is none; of chunks with an index (done
-- ones; '' for a retry or a failure) every 'span_stride'-th only; nothing past `room` spans.
local function keep_spans(run, timeline, ttl, room, spans)
  local stride, kept = nil, {}
  for i = 1, #spans, 2 do
    local index, span = spans[i], spans[i + 1]
    if span ~= '' and index ~= '' then
      stride = stride or tonumber(redis.call('HGET', run, 'span_stride')) or 1
      if tonumber(index) % stride == 0 then kept[#kept + 1] = span end
    elseif span ~= '' then
      kept[#kept + 1] = span
    end
  end
  if #kept == 0 then return end
  local free = tonumber(room) - redis.call('LLEN', timeline)
  if free <= 0 then return end
  if #kept > free then kept = {unpack(kept, 1, free)} end
  if redis.call('RPUSH', timeline, unpack(kept)) == #kept then expire(timeline, ttl) end
end
