"""A run's own state in Redis: its hash, its partials, its inbox and its submitter's lease.

Status moves ``queued -> running -> done``, or to ``failed``/``cancelled`` from either
active state. Only an active run accepts partials, and only once per chunk index, so a
chunk run twice (a retry, a duplicate delivery) never counts twice. The total is written
once, after every chunk's partial has arrived: by the submitter, or, if the submitter
hasn't within a grace period (jobs.chunks), by the worker that recorded the last partial
of a *sealed* run (one whose jobs are all enqueued), so that a run outlives its submitter.
While a run is not yet sealed, its submitter holds a lease (``<prefix>:sender:{<run id>}``);
if that lapses, the run is abandoned (failed) by the next worker or reader to notice.

:class:`RunStore` is the one owner of these keys: every write is one Lua script
(``app/lua/``), and a read never writes. The chunks' arq job records are
:class:`app.queue.ChunkQueue`'s.
"""

import math
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio import Redis

from app import codec, scripts
from app.errors import RunNotFoundError
from app.exact import ExactSum, total_text
from app.faults import bounded
from app.keys import Keys
from app.queue import JobFinish
from app.replication import Replicas
from app.run_status import EndResult, Recorded, RunStatus, Status
from app.script_batches import ScriptBatch
from app.settings import Settings
from app.timeline import SPANS_KEPT, Attempt, Outcome, Span, stride

# The inbox entry a worker leaves on finalising a run: its partials are gone from the inbox
# then, and its submitter, if still waiting, reads the total from the run hash instead.
FINALISED = codec.dumps(["finalised"])
ABANDONED_ERROR = (
    "abandoned: the submitter stopped renewing its lease (CHUNKSUM_SUBMITTER_LEASE_S) "
    "before it had enqueued every chunk; submit the numbers again"
)


@dataclass(frozen=True, slots=True)
class ChunkRecord:
    """A summed chunk, for :meth:`RunStore.record_chunks`."""

    index: int
    partial: ExactSum
    count: int  # how many numbers it held
    seconds: float = 0.0  # how long it took to sum
    finish: JobFinish | None = None  # its arq job, to finish as it is recorded
    attempt: Attempt | None = None  # who ran it, from when: kept in the run's timeline


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
        self._record = ScriptBatch(redis, scripts.source("record"))  # a worker's jobs' together
        self._record_now = redis.register_script(scripts.source("record"))  # a batch already
        self._retried = redis.register_script(scripts.source("retried"))

    @classmethod
    def for_settings(cls, redis: Redis, settings: Settings) -> "RunStore":
        """Return the run store of ``settings``' deployment, with its retention and replicas."""
        keys, replicas = Keys(settings.key_prefix), Replicas.for_settings(settings)
        return cls(redis, keys, ttl_s=settings.result_ttl_s, replicas=replicas)

    def add_create(
        self, pipe: Any, run_id: str, *, chunks: int | None, sender_lease_s: float | None
    ) -> None:
        """Add the commands that store a new queued run to ``pipe`` (ahead of its jobs).

        Args:
            sender_lease_s: how long the submitter's lease lasts unless renewed; while the
                run isn't sealed (:meth:`add_seal`), a lapsed lease abandons it.
        """
        key = self.keys.run(run_id)
        fields = {"status": Status.QUEUED.value, "chunks": "" if chunks is None else chunks}
        if (every := stride(chunks)) > 1:  # read by record.lua: see app.timeline
            fields["span_stride"] = every
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
        keys = self.keys.run_keys(run_id)
        count_arg = "" if count is None else count
        pipe.eval(scripts.source("seal"), len(keys), *keys, chunks, count_arg)

    async def record(
        self,
        run_id: str,
        index: int,
        partial: ExactSum,
        *,
        count: int,
        seconds: float = 0.0,
        finish: JobFinish | None = None,
        attempt: Attempt | None = None,
    ) -> Recorded:
        """Record chunk ``index``'s partial once; say what that did (see :class:`Recorded`).

        Args:
            count: how many numbers the chunk held (a file's ranges are counted by workers).
            seconds: how long the chunk took, for the run's chunk timings.
            finish: the chunk's arq job, to finish in the same script, unless the reply is
                LAST or ABANDONED (the job then stays until its worker has acted on that).
            attempt: who ran the chunk, from when: kept in the run's timeline.
        """
        chunk = ChunkRecord(index, partial, count, seconds=seconds, finish=finish, attempt=attempt)
        (recorded,) = await self.record_chunks(run_id, [chunk])
        return recorded

    async def record_chunks(self, run_id: str, chunks: Sequence["ChunkRecord"]) -> list[Recorded]:
        """Record the partials of chunks of one run in one script call, as :meth:`record`
        does each; return what that did for each. One of them at most is LAST or ABANDONED.

        Raises:
            ValueError: some chunks have a job to finish and others not.
        """
        finishes = [chunk.finish for chunk in chunks if chunk.finish is not None]
        if finishes and len(finishes) != len(chunks):
            raise ValueError("record_chunks finishes the job of every chunk, or of none")
        keys: list[str] = [*self.keys.run_keys(run_id)]
        if finishes:
            keys += finishes[0].set_keys
            keys += [key for finish in finishes for key in finish.job_keys]
        now = time.time()
        args: list[str | int | bytes] = [self._ttl, f"{now:.3f}", SPANS_KEPT]
        for chunk in chunks:
            entry = codec.dumps([chunk.index, chunk.partial.to_wire(), chunk.count])
            job = "" if chunk.finish is None else chunk.finish.job_id
            span = _packed(chunk.index, chunk.attempt, now, Outcome.DONE, chunk.count)
            args += [chunk.index, entry, f"{chunk.seconds:.6f}", job, chunk.count, span]
        record = self._record if len(chunks) == 1 else self._record_now
        replies = await record(keys=keys, args=args)
        return [Recorded(reply) for reply in replies]

    async def note_retry(self, run_id: str, index: int, attempt: Attempt) -> None:
        """Count a chunk run that failed and will be tried again, if the run is active, and
        keep its span in the run's timeline."""
        span = _packed(index, attempt, time.time(), Outcome.RETRIED, None)
        keys = [self.keys.run(run_id), self.keys.timeline(run_id)]
        await self._retried(keys=keys, args=[self._ttl, span, SPANS_KEPT])

    async def finalise(self, run_id: str) -> EndResult:
        """Write the total of a sealed run from its stored partials, if it is still active.

        A worker does this on recording the last partial, so that a run whose submitter died
        after enqueueing still ends (its submitter, if alive, races it to the same total:
        the total is written once).
        """
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hmget(self.keys.run(run_id), ["status", "enqueued", "count"])
            pipe.hvals(self.keys.partials(run_id))
            (status, enqueued, count), entries = await pipe.execute()
        if status is None:
            return EndResult.MISSING
        if enqueued is None or len(entries) != int(enqueued):  # ended meanwhile: partials gone
            return EndResult(status.decode())
        total, counted = ExactSum(), 0
        for entry in entries:
            _, wire, chunk_count = codec.loads(entry)
            total += ExactSum.from_wire(wire)
            counted += chunk_count
        # the submitter stored the count at the seal if it knew it (not for a file's ranges)
        count = int(count) if count else counted
        return await self.finish(
            run_id, total, count=count, chunks=int(enqueued), inbox_entry=FINALISED
        )

    async def finish(
        self, run_id: str, total: ExactSum, *, count: int, chunks: int, inbox_entry: bytes = b""
    ) -> EndResult:
        """Write the total of a run whose partials have all arrived: once, to an active run."""
        text, kind = total_text(total.value())
        return await self.end(
            run_id,
            Status.DONE,
            inbox_entry=inbox_entry,
            total=text,
            total_type=kind,
            count=count,
            chunks=chunks,
        )

    async def fail_chunk(
        self, run_id: str, index: int, message: str, attempt: Attempt | None = None
    ) -> EndResult:
        """Fail the run because chunk ``index`` can't be summed, and tell the submitter.

        Args:
            attempt: the chunk's failed run, if a worker ran it: kept in the run's timeline.
        """
        message = bounded(message)
        entry = codec.dumps([index, None, message])
        worker = "" if attempt is None else attempt.worker
        span = _packed(index, attempt, time.time(), Outcome.FAILED, None)
        return await self.end(
            run_id,
            Status.FAILED,
            inbox_entry=entry,
            span=span,
            error=message,
            failed_chunk=index,
            failed_worker=worker,
        )

    async def cancel(self, run_id: str, reason: str) -> EndResult:
        """Cancel an active run and wake its submitter (its queued jobs are the queue's)."""
        reason = bounded(reason)
        entry = codec.dumps([-1, None, reason])
        return await self.end(run_id, Status.CANCELLED, inbox_entry=entry, error=reason)

    async def abandon(self, run_id: str) -> EndResult:
        """Fail the run if its submitter's lease lapsed before every job was enqueued;
        :attr:`EndResult.LIVE` if the submitter still holds it, or sealed it."""
        return await self.end(run_id, Status.FAILED, only_if_lapsed=True, error=ABANDONED_ERROR)

    async def end(
        self,
        run_id: str,
        status: Status,
        *,
        inbox_entry: bytes = b"",
        only_if_lapsed: bool = False,
        span: bytes = b"",
        **fields: object,
    ) -> EndResult:
        """Move an active run to ``status`` with ``fields``; say what that found.

        Args:
            only_if_lapsed: end it only if its submitter's lease lapsed before sealing it.
            span: a packed span (app.timeline) to add to the run's timeline as it ends.
        """
        channels = [self.keys.ended_channel(run_id), self.keys.ends_channel, run_id]
        condition = "lapsed" if only_if_lapsed else ""
        args: list[Any] = [self._ttl, status.value, _now(), inbox_entry, *channels, condition]
        args += [span, SPANS_KEPT]
        if "error" in fields:  # stored, shown and raised again: never a whole pipeline
            fields["error"] = bounded(str(fields["error"]))
        for name, value in fields.items():
            args += [name, str(value)]
        keys = self.keys.run_keys(run_id)
        # EVAL in a pipeline (see app.scripts), so that WAIT follows on the same connection;
        # an abandonment a failover loses needs none: the next reader abandons the run again
        replicas = Replicas(0) if only_if_lapsed else self.replicas
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.eval(scripts.source("end"), len(keys), *keys, *args)
            (outcome,) = await replicas.execute(pipe, f"the end of run {run_id}")
        return EndResult(outcome.decode())

    async def partials(self, run_id: str, indexes: list[int]) -> list[bytes]:
        """Return the recorded partials (inbox entries) of those of ``indexes`` that have one."""
        _, found = await self.snapshot(run_id, indexes)
        return [entry for entry in found if entry is not None]

    async def snapshot(
        self, run_id: str, indexes: list[int]
    ) -> tuple[Status | None, list[bytes | None]]:
        """Return, read together, the run's status (None if it has no hash) and the
        recorded partials of chunks ``indexes`` (None for each that has none)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hget(self.keys.run(run_id), "status")
            if indexes:
                pipe.hmget(self.keys.partials(run_id), indexes)
            status, *found = await pipe.execute()
        return (None if status is None else Status(status.decode())), (found[0] if found else [])

    async def recent(self, limit: int, offset: int = 0) -> list[RunStatus]:
        """Return up to ``limit`` runs, newest first, skipping the ``offset`` newest (runs
        whose hash expired are skipped too)."""
        newest = await self.redis.zrevrange(self.keys.runs, offset, offset + limit - 1)
        run_ids = [run_id.decode() for run_id in newest]
        async with self.redis.pipeline(transaction=False) as pipe:
            for run_id in run_ids:
                pipe.hgetall(self.keys.run(run_id))
            hashes: list[dict[bytes, bytes]] = await pipe.execute()
        return [
            RunStatus.from_hash(run_id, _decoded(raw))
            for run_id, raw in zip(run_ids, hashes, strict=True)
            if raw
        ]

    async def count(self) -> int:
        """Return how many runs the index holds (some may have expired since it was pruned)."""
        return int(await self.redis.zcard(self.keys.runs))

    async def timeline(self, run_id: str) -> list[Span]:
        """Return the spans the run's timeline kept, in the order they ended (app.timeline)."""
        entries = await cast(
            Awaitable[list[bytes]], self.redis.lrange(self.keys.timeline(run_id), 0, -1)
        )
        return [Span.unpack(entry) for entry in entries]

    async def has_traces(self, run_id: str) -> bool:
        """Return whether any key of the run besides its hash is left (its partials, its
        inbox, its sender's lease): then the run existed, and Redis lost its hash."""
        # not the timeline: it outlives the hash by a moment if the run never ended
        _, *others, _ = self.keys.run_keys(run_id)
        return bool(await self.redis.exists(*others))

    async def read(self, run_id: str) -> RunStatus:
        """Return the run, or raise RunNotFoundError."""
        raw = await cast(Awaitable[dict[bytes, bytes]], self.redis.hgetall(self.keys.run(run_id)))
        if not raw:
            raise RunNotFoundError(
                f"no run {run_id!r} under key prefix {self.keys.prefix!r}: check the id and "
                "CHUNKSUM_KEY_PREFIX (finished runs expire after CHUNKSUM_RESULT_TTL_S)"
            )
        return RunStatus.from_hash(run_id, _decoded(raw))


def _decoded(raw: dict[bytes, bytes]) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in raw.items()}


def _packed(
    index: int, attempt: Attempt | None, now: float, outcome: Outcome, numbers: int | None
) -> bytes:
    """Return chunk ``index``'s span, packed for a script ('' for no attempt: no span)."""
    return b"" if attempt is None else Span(index, attempt, now, outcome, numbers).pack()


def _now() -> str:
    return f"{time.time():.3f}"
