-- Claim the jobs that are due and not already running, as arq's worker does one at a time.
-- KEYS: the queue, then each job's in-progress key. ARGV: now (ms), expiry (ms), job ids.
-- Returns {id, score, id, score, ...} of the jobs claimed.
local now = tonumber(ARGV[1])
local claimed = {}
for i = 2, #KEYS do
  local id = ARGV[i + 1]
  local score = redis.call('ZSCORE', KEYS[1], id)
  if score and tonumber(score) <= now
      and redis.call('SET', KEYS[i], '1', 'NX', 'PX', ARGV[2]) then
    claimed[#claimed + 1] = id
    claimed[#claimed + 1] = score
  end
end
return claimed
