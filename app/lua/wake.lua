-- Wake one idle worker for a few jobs: the one that went idle last (its caches are warm),
-- popped from the idle set. A worker gone since it went idle hears nothing: try the next,
-- a few at most; if none hears it, every idle worker is woken.
-- KEYS: the idle workers (a sorted set). ARGV: the wake channel, the prefix of one worker's
-- channel (its id follows), the message (the job ids).
-- Returns how many workers heard it.
for _ = 1, 3 do
  local idle = redis.call('ZPOPMAX', KEYS[1])
  if not idle[1] then break end
  local heard = redis.call('PUBLISH', ARGV[2] .. idle[1], ARGV[3])
  if heard > 0 then return heard end
end
return redis.call('PUBLISH', ARGV[1], ARGV[3])
