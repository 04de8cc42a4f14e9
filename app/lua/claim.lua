-- Claim the jobs that are due and not already running, and read each as arq's worker then
-- does (its record; its try count, raised by one; whether an abort was asked for), for a
-- batch of jobs in one round trip where arq's worker takes five for each.
-- KEYS: the queue, arq's abort set, then for each job its in-progress key, record and try
-- count. ARGV: now (ms), the lease (ms), '1' to take abort requests, then the job ids.
-- Returns {id, score, record (nil if gone), try, aborted (0 or 1), ...} of the jobs claimed.
local now = tonumber(ARGV[1])
local claimed = {}
for i = 4, #ARGV do
  local id = ARGV[i]
  local in_progress, record, tries = KEYS[3 * i - 9], KEYS[3 * i - 8], KEYS[3 * i - 7]
  local score = redis.call('ZSCORE', KEYS[1], id)
  if score and tonumber(score) <= now
      and redis.call('SET', in_progress, '1', 'NX', 'PX', ARGV[2]) then
    local try = redis.call('INCR', tries)
    redis.call('EXPIRE', tries, 88400)  -- arq's
    local aborted = 0
    if ARGV[3] == '1' then aborted = redis.call('ZREM', KEYS[2], id) end
    local n = #claimed
    claimed[n + 1], claimed[n + 2], claimed[n + 3] = id, score, redis.call('GET', record)
    claimed[n + 4], claimed[n + 5] = try, aborted
  end
end
return claimed
