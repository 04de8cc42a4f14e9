"""A run's state in Redis: its hash, its partials, its inbox; every write is atomic (Lua).

Status moves ``queued -> running -> done``, or to ``failed``/``cancelled`` from either
active state. Only an active run accepts partials, and only once per chunk index, so a
chunk run twice (a retry, a duplicate delivery) never counts twice. The total is written
once, after every chunk's partial has arrived: by the submitter, or, if the submitter
hasn't within a grace period (jobs.chunks), by the worker that recorded the last partial
of a *sealed* run (one whose jobs are all enqueued), so that a run outlives its submitter.
While a run is not yet sealed, its submitter holds a lease (``<prefix>:sender:{<run id>}``);
if that lapses, the run is abandoned (failed, its queued jobs removed) by the next worker or
reader to notice.
"""

import enum
import math
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio import Redis

from app import codec
from app.errors import RunNotFoundError
from app.exact import ExactSum, parse_total, total_text
from app.keys import Keys, arq_job_key, job_id, job_pattern
from app.replication import Replicas

ACTIVE = ("queued", "running")
# The inbox entry a worker leaves on finalising a run: its partials are gone from the inbox
# then, and its submitter, if still waiting, reads the total from the run hash instead.
FINALISED = codec.dumps(["finalised"])

# Lists vanish when drained and hashes are created by their first field, so every write
# (re)sets the expiry: a run whose submitter died can't leave keys behind for good.
# ARGV[1] is the expiry in seconds, '' for none.
_EXPIRE = """
local function expire(key)
  if ARGV[1] ~= '' then redis.call('EXPIRE', key, ARGV[1]) end
end
"""

# KEYS: run, partials, inbox, sender. ARGV: ttl, chunk index, inbox entry, now, the
# chunk's seconds (added to the run's chunk_seconds, and kept in chunk_seconds_max if the
# longest yet).
# Returns a Recorded value: the run's 'enqueued' field is set once every job is enqueued.
_RECORD = (
    _EXPIRE
    + """
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'queued' and status ~= 'running' then return 0 end
local enqueued = redis.call('HGET', KEYS[1], 'enqueued')
if redis.call('HSETNX', KEYS[2], ARGV[2], ARGV[3]) == 0 then
  -- a repeat; if the run is complete but still active, the worker that recorded the last
  -- partial died or lost Redis before it finalised: this one does it instead
  local done = redis.call('HGET', KEYS[1], 'done_chunks')
  if enqueued and tonumber(done) == tonumber(enqueued) then return 2 end
  return 0
end
redis.call('RPUSH', KEYS[3], ARGV[3])
local done = redis.call('HINCRBY', KEYS[1], 'done_chunks', 1)
redis.call('HINCRBYFLOAT', KEYS[1], 'chunk_seconds', ARGV[5])
if tonumber(ARGV[5]) > tonumber(redis.call('HGET', KEYS[1], 'chunk_seconds_max') or '0') then
  redis.call('HSET', KEYS[1], 'chunk_seconds_max', ARGV[5])
end
if status == 'queued' then
  redis.call('HSET', KEYS[1], 'status', 'running', 'started_at', ARGV[4])
end
expire(KEYS[2])
expire(KEYS[3])
if enqueued then
  if done == tonumber(enqueued) then return 2 end
elseif redis.call('EXISTS', KEYS[4]) == 0 then
  return 3
end
return 1
"""
)

# KEYS: run. Counts a chunk retry on an active run (never recreating an expired hash).
_RETRIED = """
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'queued' or status == 'running' then
  redis.call('HINCRBY', KEYS[1], 'retried_chunks', 1)
end
"""

# KEYS: run, partials, inbox, sender. ARGV: chunks enqueued, numbers in them. Marks an active
# run's jobs all enqueued (its submitter's lease is no longer needed) and returns its status
# then, or false.
_SEAL = """
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'queued' and status ~= 'running' then return status end
redis.call('HSET', KEYS[1], 'enqueued', ARGV[1], 'count', ARGV[2])
redis.call('DEL', KEYS[4])
return status
"""

# KEYS: run, partials, inbox, sender. ARGV: ttl, new status, now, inbox entry ('' for none),
# the run's ended channel, the deployment's ends channel, run id, then field/value pairs.
# Ends an active run: its partials go, the entry (a chunk's failure, a cancellation) is left
# for the submitter, the run hash stays for the retention time, and waiters (on the run's
# channel) and workers (on the deployment's) hear of it.
_END = (
    _EXPIRE
    + """
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'queued' and status ~= 'running' then return status or false end
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'finished_at', ARGV[3], unpack(ARGV, 8))
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
if ARGV[4] ~= '' then
  redis.call('RPUSH', KEYS[3], ARGV[4])
  expire(KEYS[3])
end
expire(KEYS[1])
redis.call('PUBLISH', ARGV[5], ARGV[2])
redis.call('PUBLISH', ARGV[6], ARGV[7] .. ' ' .. ARGV[2])
return 'ok'
"""
)


@dataclass(frozen=True, slots=True)
class ChunkCheck:
    """What :meth:`RunStore.check_chunks` found: recorded partials (inbox entries), and the
    indexes of chunks with neither a job nor a partial."""

    partials: list[bytes]
    lost: list[int]


class Recorded(enum.IntEnum):
    """What recording a chunk's partial did (the RECORD script's reply)."""

    NOTHING = 0  # a duplicate, or the run has ended: nothing changed
    RECORDED = 1
    LAST = 2  # the last partial of a sealed run: it can be finalised
    ABANDONED = 3  # recorded, but the submitter's lease lapsed while it was enqueueing


@dataclass(frozen=True, slots=True)
class RunStatus:
    """A run as stored in Redis."""

    run_id: str
    status: str
    total: int | float | None
    count: int | None
    chunks: int | None
    done_chunks: int
    created_at: float
    started_at: float | None  # when the first partial came in
    finished_at: float | None
    error: str | None
    chunk_seconds: float | None = None  # summed over the chunks recorded
    chunk_seconds_max: float | None = None  # the longest chunk
    retried_chunks: int = 0  # chunk runs that failed and were tried again

    @classmethod
    def from_hash(cls, run_id: str, fields: dict[str, str]) -> "RunStatus":
        """Parse the run hash's fields (all strings)."""
        total = fields.get("total")

        def number(name: str) -> int | None:
            return int(fields[name]) if fields.get(name) else None

        def moment(name: str) -> float | None:
            return float(fields[name]) if fields.get(name) else None

        return cls(
            run_id=run_id,
            status=fields["status"],
            total=parse_total(total, fields["total_type"]) if total is not None else None,
            count=number("count"),
            chunks=number("chunks"),
            done_chunks=int(fields.get("done_chunks", 0)),
            created_at=float(fields["created_at"]),
            started_at=moment("started_at"),
            finished_at=moment("finished_at"),
            error=fields.get("error"),
            chunk_seconds=moment("chunk_seconds"),
            chunk_seconds_max=moment("chunk_seconds_max"),
            retried_chunks=int(fields.get("retried_chunks", 0)),
        )


class RunStore:
    """Reads and writes runs for one deployment (one key prefix).

    Args:
        replicas: the replicas that must have a run's end before :meth:`end` returns.
    """

    def __init__(
        self, redis: Redis, keys: Keys, *, ttl_s: float | None, replicas: Replicas | None = None
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.ttl_s = ttl_s
        self.replicas = replicas or Replicas(0)
        self._ttl = "" if ttl_s is None else str(math.ceil(ttl_s))
        self._record = redis.register_script(_RECORD)
        self._retried = redis.register_script(_RETRIED)

    async def create(self, run_id: str, *, chunks: int, count: int | None = None) -> None:
        """Store a new queued run, sealed: its ``chunks`` jobs are enqueued (or will be by
        hand), with ``count`` numbers in them if that is known."""
        async with self.redis.pipeline(transaction=True) as pipe:
            self.add_create(pipe, run_id, chunks=chunks, sender_lease_s=None)
            self.add_seal(pipe, run_id, chunks=chunks, count=count)
            await pipe.execute()

    def add_create(
        self, pipe: Any, run_id: str, *, chunks: int | None, sender_lease_s: float | None
    ) -> None:
        """Add the commands that store a new queued run to ``pipe`` (ahead of its jobs).

        Args:
            sender_lease_s: how long the submitter's lease lasts unless renewed; while the
                run isn't sealed (:meth:`add_seal`), a lapsed lease abandons it.
        """
        key = self.keys.run(run_id)
        fields = {"status": "queued", "chunks": "" if chunks is None else chunks}
        now = _now()
        pipe.hset(key, mapping={**fields, "done_chunks": 0, "created_at": now})
        pipe.zadd(self.keys.runs, {run_id: now})
        if self.ttl_s is not None:
            pipe.expire(key, math.ceil(self.ttl_s))
            # the index forgets runs as their hashes expire (give or take a run's length)
            pipe.zremrangebyscore(self.keys.runs, "-inf", float(now) - self.ttl_s)
            pipe.expire(self.keys.runs, math.ceil(self.ttl_s))
        if sender_lease_s is not None:
            pipe.set(self.keys.sender(run_id), b"1", px=int(sender_lease_s * 1000))

    def add_seal(self, pipe: Any, run_id: str, *, chunks: int, count: int | None) -> None:
        """Add to ``pipe`` the mark that all ``chunks`` jobs (``count`` numbers) are enqueued:
        from then on the run can finish without its submitter (see :meth:`finalise`)."""
        # EVAL, not a registered script: a pipeline holding one first checks it is loaded,
        # a round trip of its own; Redis caches the compiled script either way
        keys = self.keys.run_keys(run_id)
        pipe.eval(_SEAL, len(keys), *keys, chunks, "" if count is None else count)

    async def record(
        self, run_id: str, index: int, partial: ExactSum, *, seconds: float = 0.0
    ) -> "Recorded":
        """Record chunk ``index``'s partial once; say what that did (see :class:`Recorded`).

        Args:
            seconds: how long the chunk took, for the run's chunk timings.
        """
        entry = codec.dumps([index, partial.to_wire()])
        args: list[str | int | bytes] = [self._ttl, index, entry, _now(), f"{seconds:.6f}"]
        return Recorded(await self._record(keys=self.keys.run_keys(run_id), args=args))

    async def finalise(self, run_id: str) -> str | None:
        """Write the total of a sealed run from its stored partials, if it is still active.

        A worker does this on recording the last partial, so that a run whose submitter died
        after enqueueing still ends (its submitter, if alive, races it to the same total:
        the total is written once). Returns None, or the status the run already had.
        """
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hmget(self.keys.run(run_id), ["enqueued", "count"])
            pipe.hvals(self.keys.partials(run_id))
            (enqueued, count), entries = await pipe.execute()
        if enqueued is None or len(entries) != int(enqueued):  # ended meanwhile: partials gone
            return "ended"
        total = ExactSum()
        for entry in entries:
            _, wire = codec.loads(entry)
            total += ExactSum.from_wire(wire)
        return await self.finish(
            run_id, total, count=int(count or 0), chunks=int(enqueued), inbox_entry=FINALISED
        )

    async def abandon(self, run_id: str) -> str | None:
        """Fail a run whose submitter's lease lapsed before every job was enqueued, and take
        its queued jobs off the queue. Returns None, or the status the run already had."""
        error = (
            "abandoned: the submitter stopped renewing its lease (CHUNKSUM_SUBMITTER_LEASE_S) "
            "before it had enqueued every chunk; submit the numbers again"
        )
        ended = await self.end(run_id, "failed", error=error)
        await self.remove_jobs(run_id, await self.queued_indexes(run_id))
        return ended

    async def note_retry(self, run_id: str) -> None:
        """Count a chunk run that failed and will be tried again, if the run is active."""
        await self._retried(keys=[self.keys.run(run_id)], args=[])

    async def fail_chunk(self, run_id: str, index: int, message: str) -> None:
        """Fail the run because chunk ``index`` can't be summed, and tell the submitter."""
        await self.end(
            run_id, "failed", inbox_entry=codec.dumps([index, None, message]), error=message
        )

    async def end(
        self, run_id: str, status: str, *, inbox_entry: bytes = b"", **fields: object
    ) -> str | None:
        """Move an active run to ``status`` with ``fields``; return None, or the status it had."""
        channels = [self.keys.ended_channel(run_id), self.keys.ends_channel, run_id]
        args: list[Any] = [self._ttl, status, _now(), inbox_entry, *channels]
        for name, value in fields.items():
            args += [name, str(value)]
        keys = self.keys.run_keys(run_id)
        # EVAL in a pipeline (see add_seal), so that WAIT follows on the same connection
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.eval(_END, len(keys), *keys, *args)
            (outcome,) = await self.replicas.execute(pipe, f"the end of run {run_id}")
        if outcome == b"ok":
            return None
        return outcome.decode() if outcome else "missing"

    async def finish(
        self, run_id: str, total: ExactSum, *, count: int, chunks: int, inbox_entry: bytes = b""
    ) -> str | None:
        """Write the total of a run whose partials have all arrived: once, to an active run."""
        text, kind = total_text(total.value())
        return await self.end(
            run_id,
            "done",
            inbox_entry=inbox_entry,
            total=text,
            total_type=kind,
            count=count,
            chunks=chunks,
        )

    async def cancel(self, run_id: str, reason: str) -> str | None:
        """Cancel an active run, wake its submitter, and take its queued jobs off the queue.

        Returns None, or the status the run had if it had already ended.
        """
        ended = await self.end(
            run_id, "cancelled", inbox_entry=codec.dumps([-1, None, reason]), error=reason
        )
        await self.remove_jobs(run_id, await self.queued_indexes(run_id))
        return ended

    async def queued_indexes(self, run_id: str) -> list[int]:
        """Return the chunk indexes of a run's jobs still on the queue."""
        members = self.redis.zscan_iter(self.keys.queue, match=job_pattern(run_id))
        return [int(member.rsplit(b":", 1)[1]) async for member, _ in members]

    async def remove_jobs(self, run_id: str, indexes: list[int]) -> None:
        """Take a run's not-yet-finished chunk jobs off the queue."""
        if not indexes:
            return
        job_ids = [job_id(run_id, i) for i in indexes]
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(self.keys.queue, *job_ids)
            pipe.delete(*[arq_job_key(job_id) for job_id in job_ids])
            await pipe.execute()

    async def partials(self, run_id: str, indexes: list[int]) -> list[bytes]:
        """Return the recorded partials (inbox entries) of those of ``indexes`` that have one."""
        if not indexes:
            return []
        found = await cast(
            Awaitable[list[bytes | None]], self.redis.hmget(self.keys.partials(run_id), indexes)
        )
        return [entry for entry in found if entry is not None]

    async def check_chunks(self, run_id: str, indexes: list[int]) -> "ChunkCheck":
        """Return, in one snapshot, the recorded partials of an active run's chunk ``indexes``
        and those of them that have neither a job nor a partial: writes that a Redis failover
        lost (see app.replication). All are lost if the run's hash is gone too; none if the
        run has ended (its partials go then)."""
        if not indexes:
            return ChunkCheck([], [])
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hget(self.keys.run(run_id), "status")
            pipe.hmget(self.keys.partials(run_id), indexes)
            for index in indexes:
                pipe.exists(arq_job_key(job_id(run_id, index)))
            status, partials, *jobs = await pipe.execute()
        recorded = [entry for entry in partials if entry is not None]
        if status is None:
            return ChunkCheck(recorded, indexes)
        if status.decode() not in ACTIVE:
            return ChunkCheck(recorded, [])
        found = zip(indexes, partials, jobs, strict=True)
        return ChunkCheck(
            recorded, [index for index, partial, job in found if partial is None and not job]
        )

    async def recent(self, limit: int) -> list[RunStatus]:
        """Return up to ``limit`` runs, newest first (runs whose hash expired are skipped)."""
        run_ids = [r.decode() for r in await self.redis.zrevrange(self.keys.runs, 0, limit - 1)]
        async with self.redis.pipeline(transaction=False) as pipe:
            for run_id in run_ids:
                pipe.hgetall(self.keys.run(run_id))
            hashes: list[dict[bytes, bytes]] = await pipe.execute()
        return [
            RunStatus.from_hash(run_id, {k.decode(): v.decode() for k, v in raw.items()})
            for run_id, raw in zip(run_ids, hashes, strict=True)
            if raw
        ]

    async def read(self, run_id: str) -> RunStatus:
        """Return the run, or raise RunNotFoundError.

        A run still being enqueued whose submitter's lease has lapsed is abandoned first (a
        worker recording a partial does the same): its submitter is gone.
        """
        fields = await self._fields(run_id)
        sending = fields["status"] in ACTIVE and "enqueued" not in fields
        if sending and not await self.redis.exists(self.keys.sender(run_id)):
            await self.abandon(run_id)
            fields = await self._fields(run_id)
        return RunStatus.from_hash(run_id, fields)

    async def _fields(self, run_id: str) -> dict[str, str]:
        raw = await cast(Awaitable[dict[bytes, bytes]], self.redis.hgetall(self.keys.run(run_id)))
        if not raw:
            raise RunNotFoundError(
                f"no run {run_id!r} under key prefix {self.keys.prefix!r}: check the id and "
                "CHUNKSUM_KEY_PREFIX (finished runs expire after CHUNKSUM_RESULT_TTL_S)"
            )
        return {k.decode(): v.decode() for k, v in raw.items()}


def _now() -> str:
    return f"{time.time():.3f}"
