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
