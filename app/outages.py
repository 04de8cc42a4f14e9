"""A submitter's recovery from a lost Redis: ride out the outage, then check what Redis kept.

While Redis is unreachable (a restart, a failover, a dropped connection) the submitter
backs off, for up to ``CHUNKSUM_OUTAGE_S`` or the run's deadline if sooner. Once Redis
answers, it reads what Redis kept of the run: the run hash gone means Redis lost the run's
state (eviction, or a restart without persistence: :class:`RunLostError`); chunks with
neither a job nor a partial mean a failover lost them; otherwise it takes the partials
recorded meanwhile and goes on (a pipeline the outage cut off is re-sent by its caller).
"""

import time

from app.connection import LOST_REDIS, Backoff, redis_name
from app.errors import RedisUnavailableError, RunFailedError, RunLostError
from app.faults import describe
from app.queue import ChunkQueue
from app.run_status import Status
from app.runs import RunStore
from app.settings import Settings


def lost_chunks(
    indexes: list[int], jobs: list[bool], status: Status | None, partials: list[bytes | None]
) -> list[int]:
    """Return those of chunks ``indexes`` that Redis lost: with neither a job nor a partial,
    in a run that is active, or whose hash is gone too (then all are lost). An ended run's
    partials are gone, but nothing is lost then."""
    if status is None:
        return indexes
    if not status.active:
        return []
    found = zip(indexes, jobs, partials, strict=True)
    return [index for index, job, partial in found if not job and partial is None]


def run_lost(run_id: str) -> RunLostError:
    """Return the error for a run whose state Redis no longer holds."""
    return RunLostError(
        f"run {run_id}'s state is gone from Redis: evicted (see its maxmemory-policy; "
        "noeviction keeps it), or Redis restarted without persistence (appendonly yes "
        "keeps it). Submit the numbers again",
        run_id=run_id,
    )


class Outages:
    """One run's submitter through Redis outages: how long to wait, and what Redis kept."""

    def __init__(self, queue: ChunkQueue, runs: RunStore, settings: Settings, run_id: str) -> None:
        self.queue, self.runs, self.settings, self.run_id = queue, runs, settings, run_id
        self._redis_name = redis_name(settings)
        self._backoff = Backoff("submitter")

    @property
    def failing(self) -> bool:
        """Return whether Redis was unreachable at the last try (no recovery since)."""
        return self._backoff.failing

    async def ride_out(
        self,
        exc: Exception,
        *,
        pending: set[int],
        created: bool,
        deadline: float | None,
        unsent: frozenset[int],
    ) -> list[bytes]:
        """Wait until Redis is back (see :meth:`back_off` for how long), then return the
        partials it kept (see :meth:`recover`); chunks ``unsent`` are not looked for."""
        while True:
            await self.back_off(exc, deadline=deadline)
            try:
                return await self.recover(pending, created=created, unsent=unsent)
            except LOST_REDIS as again:
                exc = again

    async def recover(
        self, pending: set[int], *, created: bool, unsent: frozenset[int] = frozenset()
    ) -> list[bytes]:
        """Back from an outage: return the partials recorded meanwhile (an inbox entry popped
        as the connection broke is lost with it), and fail the run if Redis lost any chunks.

        Jobs are read before partials: a worker records a chunk's partial before arq deletes
        its job, so a chunk with no job then and no partial after was lost, not finished
        in between. An ended run's partials are gone, but nothing is lost then.

        Args:
            pending: the chunks sent and not yet summed, as the submitter knows them.
            created: whether the run hash reached Redis (if so, its absence is a loss).
            unsent: chunks of a pipeline the outage cut off, not looked for.
        """
        indexes = sorted(pending - unsent)
        jobs = await self.queue.exist(self.run_id, indexes)
        status, partials = await self.runs.snapshot(self.run_id, indexes)
        if status is None and created:
            raise run_lost(self.run_id)
        if lost := lost_chunks(indexes, jobs, status, partials):  # a failover lost them
            raise RunFailedError(
                f"Redis came back without {len(lost)} of run {self.run_id}'s chunks (e.g. chunk "
                f"{lost[0]}): a failover promoted a replica that had not received them. Submit "
                "the numbers again; CHUNKSUM_WAIT_REPLICAS=1 or more makes this rarer",
                run_id=self.run_id,
            )
        self._backoff.reset()
        return [entry for entry in partials if entry is not None]

    async def back_off(self, exc: Exception, *, deadline: float | None) -> None:
        """Wait a little while Redis is unreachable; give up after CHUNKSUM_OUTAGE_S, or at
        the run's ``deadline`` (monotonic time) if that is sooner."""
        failing_s, outage_s = self._backoff.failing_for_s(), self.settings.outage_s
        past_deadline = deadline is not None and time.monotonic() >= deadline
        if past_deadline or failing_s > outage_s:
            raise RedisUnavailableError(
                f"lost Redis at {self._redis_name} for {failing_s:.1f} s (past "
                f"CHUNKSUM_OUTAGE_S={outage_s:g}, or the run's timeout) during run {self.run_id} "
                f"({describe(exc)}); once every chunk was enqueued its workers may still "
                f"finish it: see `chunksum status {self.run_id}` later"
            ) from exc
        await self._backoff.wait(exc)
