-- End an active run: its partials go, the entry (a chunk's failure, a cancellation) is
-- left for the submitter, the run hash stays for the retention time, and waiters (on the
-- run's channel) and workers (on the deployment's) hear of it.
-- The timeline (app.timeline) stays as long as the run hash, with the failing chunk's span.
-- KEYS: run, partials, inbox, sender, timeline.
-- ARGV: ttl, new status, now, inbox entry ('' for none), the run's ended channel, the
-- deployment's ends channel, run id, 'lapsed' to end the run only if its submitter's lease
-- lapsed before it sealed the run ('' to end it regardless), a span for the timeline ('' for
-- none) and the timeline's room, then field/value pairs.
-- Returns an EndResult value (app.run_status): 'ended', 'live', or the status the run already had
-- ('missing' if it has none).
local run, partials, inbox, sender, timeline = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local ttl, new_status, now, entry = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local ended_channel, ends_channel, run_id, only_if = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local span, room = ARGV[9], ARGV[10]

local status = redis.call('HGET', run, 'status')
if not status then return 'missing' end
if not is_active(status) then return status end
if only_if == 'lapsed'
    and (redis.call('HEXISTS', run, 'enqueued') == 1 or redis.call('EXISTS', sender) == 1) then
  return 'live'
end
redis.call('HSET', run, 'status', new_status, 'finished_at', now, unpack(ARGV, 11))
redis.call('DEL', partials, inbox, sender)
if entry ~= '' then
  redis.call('RPUSH', inbox, entry)
  expire(inbox, ttl)
end
expire(run, ttl)
keep_spans(run, timeline, ttl, room, {'', span})
expire(timeline, ttl)
redis.call('PUBLISH', ended_channel, new_status)
redis.call('PUBLISH', ends_channel, run_id .. ' ' .. new_status)
return 'ended'
