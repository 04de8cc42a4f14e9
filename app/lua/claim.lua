-- Claim the jobs that are due and not already running, and read the small ones as arq's
-- worker then does (the record; the try count, raised by one; whether an abort was asked
-- for), for a batch of jobs in one round trip where arq's worker takes five for each.
-- A bigger record is left for its job to read as arq does, in a round trip of its own: the
-- claim's reply would hold up every job of the batch until the last byte had come.
-- KEYS: the queue, arq's abort set, then for each job its in-progress key, record and try
-- count. ARGV: now (ms), the lease (ms), '1' to take abort requests, the most bytes of a
-- record to read, then the job ids.
-- Returns {id, score, record, try, aborted (0 or 1), ...} of the jobs claimed; a job left
-- unread has try 0 (and a record gone, nil).
local now, read_bytes = tonumber(ARGV[1]), tonumber(ARGV[4])
local claimed = {}
for i = 5, #ARGV do
  local id = ARGV[i]
  local in_progress, record, tries = KEYS[3 * i - 12], KEYS[3 * i - 11], KEYS[3 * i - 10]
  local score = redis.call('ZSCORE', KEYS[1], id)
  if score and tonumber(score) <= now
      and redis.call('SET', in_progress, '1', 'NX', 'PX', ARGV[2]) then
    local n = #claimed
    claimed[n + 1], claimed[n + 2], claimed[n + 3] = id, score, false
    claimed[n + 4], claimed[n + 5] = 0, 0
    if redis.call('STRLEN', record) <= read_bytes then
      claimed[n + 3], claimed[n + 4] = redis.call('GET', record), redis.call('INCR', tries)
      redis.call('EXPIRE', tries, 88400)  -- arq's
      if ARGV[3] == '1' then claimed[n + 5] = redis.call('ZREM', KEYS[2], id) end
    end
  end
end
return claimed
