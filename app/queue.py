"""The chunks' arq job records: the one place the client side writes, reads and removes them.

Each chunk is one arq job: its record (``arq:job:<run id>:<index>``, arq's format, encoded
with app.codec) and its entry in the deployment's queue (a sorted set scored by the time it
is due). Job ids are deterministic (:func:`app.keys.job_id`), so a job enqueued twice is
one job. Workers take jobs off the queue through arq's own protocol (app.worker); after
each batch the submitter publishes the batch's job ids so that idle workers claim them at
once: on ``<prefix>:wake`` to all of them, or for a batch one claim takes, to the worker
that went idle last (``<prefix>:idle``, which idle workers join and this module pops).
"""

import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from arq.jobs import serialize_job
from redis.asyncio import Redis

from app import codec, scripts
from app.errors import ChunkingError
from app.keys import (
    ARQ_ABORT_SET,
    SUM_CHUNK_JOB,
    Keys,
    arq_in_progress_key,
    arq_job_key,
    arq_retry_key,
    chunk_of,
    job_id,
    job_pattern,
)
from app.settings import Settings

DEFAULT_JOB_TTL_S = 86_400.0  # a job record's life when results are kept for ever
# Jobs a worker claims with one script (app.worker.claims): enough to fill a worker quickly,
# few enough that one worker woken first doesn't take every chunk of a longer run while the
# others watch. A batch this small wakes one worker (add_wake): one claim takes it all.
CLAIM_BATCH = 8


@dataclass(frozen=True, slots=True)
class ChunkJob:
    """The arq job that sums a chunk: its registered name, and keyword arguments it takes
    beside the chunk's own (for a job registered beside ``sum_chunk``, as the bench's is)."""

    name: str = SUM_CHUNK_JOB
    kwargs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class JobFinish:
    """What finishes a chunk's arq job as arq's worker does once the job returns: delete its
    record, in-progress mark and try count, and take it off the queue and the abort set.
    ``record.lua`` does so as it records the chunk's partial (see RunStore.record)."""

    job_id: str
    job_keys: tuple[str, str, str]  # its record, in-progress mark and try count
    set_keys: tuple[str, str]  # the queue and arq's abort set


class ChunkQueue:
    """Enqueues, finds and removes the chunk jobs of one deployment's runs.

    Args:
        job_ttl_s: how long a job record lives unless a worker finishes it first.
        max_chunk_bytes: the largest encoded job accepted (CHUNKSUM_MAX_CHUNK_BYTES).
    """

    def __init__(self, redis: Redis, keys: Keys, *, job_ttl_s: float, max_chunk_bytes: int) -> None:
        self.redis = redis
        self.keys = keys
        self.max_chunk_bytes = max_chunk_bytes
        self._job_ttl_ms = int(job_ttl_s * 1000)

    @classmethod
    def for_settings(cls, redis: Redis, settings: Settings) -> "ChunkQueue":
        """Return the queue of ``settings``' deployment: job records live as long as results
        (a day if those are kept for ever)."""
        return cls(
            redis,
            Keys(settings.key_prefix),
            job_ttl_s=settings.result_ttl_s or DEFAULT_JOB_TTL_S,
            max_chunk_bytes=settings.max_chunk_bytes,
        )

    def add(
        self, pipe: Any, run_id: str, index: int, chunk: Mapping[str, Any], job: ChunkJob
    ) -> int:
        """Add to ``pipe`` the commands that enqueue chunk ``index``; return its size in bytes.

        Args:
            chunk: the chunk's own job arguments: its packed numbers (``parts``), or where
                they are (a file's byte range).

        Raises:
            ChunkingError: the encoded job is over ``max_chunk_bytes``.
        """
        now_ms = int(time.time() * 1000)
        kwargs = {**job.kwargs, **chunk, "run_id": run_id, "index": index}
        data = serialize_job(job.name, (), kwargs, None, now_ms, serializer=codec.dumps)
        if len(data) > self.max_chunk_bytes:
            raise ChunkingError(
                f"chunk {index} packs to {len(data):,} bytes, over CHUNKSUM_MAX_CHUNK_BYTES="
                f"{self.max_chunk_bytes:,}; pass a smaller chunk_size (or more chunks)"
            )
        chunk_job = job_id(run_id, index)
        pipe.psetex(arq_job_key(chunk_job), self._job_ttl_ms, data)
        pipe.zadd(self.keys.queue, {chunk_job: now_ms})
        return len(data)

    def job_finish(self, chunk_job: str) -> JobFinish:
        """Return what finishes the arq job ``chunk_job`` (see :class:`JobFinish`)."""
        job_keys = arq_job_key(chunk_job), arq_in_progress_key(chunk_job), arq_retry_key(chunk_job)
        return JobFinish(chunk_job, job_keys, (self.keys.queue, ARQ_ABORT_SET))

    def add_wake(self, pipe: Any, run_id: str, indexes: list[int]) -> None:
        """Add to ``pipe`` the wake-up that names chunk jobs just enqueued (see app.worker):
        for up to CLAIM_BATCH jobs, which one worker claims at once, the worker that went idle
        last alone (``wake.lua``; all of them if none is idle); for more, every idle worker."""
        if not indexes:
            return
        names = " ".join(job_id(run_id, index) for index in indexes)
        if len(indexes) > CLAIM_BATCH:
            pipe.publish(self.keys.wake_channel, names)
            return
        one_worker = self.keys.worker_wake_channel("")  # the worker's id follows
        wake = scripts.source("wake", prelude=False)  # 0.5 KB with each small batch, not 2
        pipe.eval(wake, 1, self.keys.idle_workers, self.keys.wake_channel, one_worker, names)

    async def mark_idle(self, worker_id: str) -> None:
        """Add a worker that waits for jobs to the idle workers, whom :meth:`add_wake` wakes
        one at a time (it takes a worker it wakes out)."""
        await self.redis.zadd(self.keys.idle_workers, {worker_id: time.time()})

    async def mark_busy(self, worker_id: str) -> None:
        """Take a worker out of the idle workers (it found jobs, or it stops)."""
        await self.redis.zrem(self.keys.idle_workers, worker_id)

    async def queued(self, run_id: str) -> list[int]:
        """Return the chunk indexes of a run's jobs still on the queue."""
        members = self.redis.zscan_iter(self.keys.queue, match=job_pattern(run_id))
        return [chunk[1] async for member, _ in members if (chunk := chunk_of(member.decode()))]

    async def exist(self, run_id: str, indexes: list[int]) -> list[bool]:
        """Return, for each chunk of ``indexes``, whether its job record exists (queued or
        running; arq deletes it once a worker has finished the chunk)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for index in indexes:
                pipe.exists(arq_job_key(job_id(run_id, index)))
            return [bool(found) for found in await pipe.execute()]

    async def remove(self, run_id: str, indexes: list[int]) -> None:
        """Take chunk jobs of a run off the queue, records and all.

        Not in a transaction: Redis out of memory refuses every command queued in MULTI, and
        removing a run's jobs is what frees it. A worker that read the queue just before
        finds the job gone (arq's "job expired"), as it would have after a transaction.
        """
        if not indexes:
            return
        job_ids = [job_id(run_id, i) for i in indexes]
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrem(self.keys.queue, *job_ids)
            pipe.delete(*[arq_job_key(job_id) for job_id in job_ids])
            await pipe.execute()

    async def remove_queued(self, run_id: str) -> None:
        """Take every job of a run still on the queue off it (a run that ended early)."""
        await self.remove(run_id, await self.queued(run_id))

    async def depth(self) -> int:
        """Return how many chunk jobs are queued or running, across every run."""
        return int(await cast(Awaitable[int], self.redis.zcard(self.keys.queue)))
